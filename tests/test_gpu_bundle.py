"""The GPU bundle, on CPU: stripping the llama-cpp-python source archive, splitting the bundle into
parts that fit the device tool's carry limit, and the GPU side's unpacking (missing and corrupt
parts refused, the rest byte for byte), as scripts/gpu_check.sh runs it."""
import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import tarfile

import pytest

from seller.llm import resolve_gguf
from seller.paths import REPO_ROOT

spec = importlib.util.spec_from_file_location("gpu_bundle", REPO_ROOT / "scripts" / "gpu_bundle.py")
gpu_bundle = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_bundle)


def write_tar(path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_strip_keeps_what_a_cuda_build_reads(tmp_path):
    root = "llama_cpp_python-0.3.36/"
    keep = ["pyproject.toml", "CMakeLists.txt", "llama_cpp/llama.py", "vendor/llama.cpp/CMakeLists.txt",
            "vendor/llama.cpp/ggml/src/ggml-cuda/CMakeLists.txt", "vendor/llama.cpp/ggml/src/ggml-cuda/mmq.cu",
            "vendor/llama.cpp/tools/mtmd/CMakeLists.txt", "vendor/llama.cpp/vendor/miniaudio/miniaudio.h"]
    drop = [".git/modules/vendor/llama.cpp/objects/pack/pack-1.pack", "vendor/llama.cpp/models/ggml-vocab-gemma-4.gguf",
            "vendor/llama.cpp/docs/ops/CUDA.csv", "docs/server.md"]
    write_tar(tmp_path / "src.tar.gz", {root + n: n.encode() for n in keep + drop})
    assert gpu_bundle.strip_sdist(tmp_path / "src.tar.gz", tmp_path / "out.tar.gz") == (len(keep), len(drop))
    with tarfile.open(tmp_path / "out.tar.gz") as tar:
        assert sorted(m.name for m in tar) == sorted(root + n for n in keep)
        assert tar.extractfile(root + "CMakeLists.txt").read() == b"CMakeLists.txt"

    write_tar(tmp_path / "other.tar.gz", {"other-1.0/pyproject.toml": b""})
    with pytest.raises(SystemExit, match="not a llama-cpp-python source archive"):
        gpu_bundle.strip_sdist(tmp_path / "other.tar.gz", tmp_path / "out2.tar.gz")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The real GGUF (94 MiB) and a wheel-like file, packed into 32 MiB parts."""
    tmp = tmp_path_factory.mktemp("bundle")
    stage = tmp / "stage"
    (stage / "wheels").mkdir(parents=True)
    gguf = resolve_gguf()
    shutil.copy2(gguf, stage / gguf.name)
    (stage / "wheels" / "diskcache-5.6.3-py3-none-any.whl").write_bytes(b"wheel bytes")
    manifest = gpu_bundle.pack(stage, tmp / "carried", 32 << 20, {"gguf": gguf.name})
    return tmp / "carried", manifest, gguf


def test_parts_fit_the_carry_limit_beside_the_tree(bundle):
    _, manifest, gguf = bundle
    assert [p["bytes"] for p in manifest["parts"][:-1]] == [32 << 20] * (len(manifest["parts"]) - 1)
    assert sum(p["bytes"] for p in manifest["parts"]) == manifest["tar_bytes"] > gguf.stat().st_size
    tree = 30 << 20
    plan = gpu_bundle.carry_plan(manifest, tree)
    assert [c[0] for c in plan] == [".gpu_bundle/MANIFEST.json"] * len(plan)  # every call has it
    assert sorted(p for c in plan for p in c[1:]) == [f".gpu_bundle/parts/{p['name']}" for p in manifest["parts"]]
    sizes = {f".gpu_bundle/parts/{p['name']}": p["bytes"] for p in manifest["parts"]}
    assert all(tree + sum(sizes[p] for p in c[1:]) < gpu_bundle.CARRY_LIMIT and len(c) <= 8 for c in plan)
    with pytest.raises(SystemExit, match="does not fit beside the 40 MiB working tree"):
        gpu_bundle.carry_plan(manifest, 40 << 20)


def test_unpack_refuses_missing_and_corrupt_parts_then_restores_the_files(bundle, tmp_path):
    carried, manifest, gguf = bundle
    partial = tmp_path / "partial"
    shutil.copytree(carried, partial)
    last = partial / "parts" / manifest["parts"][-1]["name"]
    last.unlink()
    with pytest.raises(SystemExit) as missing:
        gpu_bundle.unpack(partial, tmp_path / "out")
    assert missing.value.code == gpu_bundle.MISSING_PARTS
    assert not (tmp_path / "out").exists()  # nothing half-extracted

    shutil.copy2(carried / "parts" / last.name, last)
    first = partial / "parts" / manifest["parts"][0]["name"]
    data = bytearray(first.read_bytes())
    data[1000] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(SystemExit, match=f"{first.name} is corrupt"):
        gpu_bundle.unpack(partial, tmp_path / "out")

    assert gpu_bundle.unpack(carried, tmp_path / "out") == {"gguf": gguf.name}
    restored = tmp_path / "out" / gguf.name
    assert hashlib.sha256(restored.read_bytes()).hexdigest() == gpu_bundle.sha256(gguf)
    assert (tmp_path / "out" / "wheels" / "diskcache-5.6.3-py3-none-any.whl").read_bytes() == b"wheel bytes"


def test_gpu_check_stops_with_status_3_naming_the_parts_to_carry(bundle, tmp_path):
    carried, manifest, _ = bundle
    partial = tmp_path / "partial"
    shutil.copytree(carried, partial)
    (partial / "parts" / manifest["parts"][1]["name"]).unlink()
    done = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "gpu_check.sh")], capture_output=True, text=True,
                          env=os.environ | {"GPU_BUNDLE": str(partial), "OUT": str(tmp_path / "out"),
                                            "GPU_WORK": str(tmp_path / "work")}, timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"still to carry: {manifest['parts'][1]['name']}" in done.stdout + done.stderr
