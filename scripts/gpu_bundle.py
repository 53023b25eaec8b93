"""Carry to a GPU machine what scripts/gpu_check.sh needs and that machine lacks.

The GPU machine has nvcc, CMake, CUDA torch and transformers (with their own needs: numpy, jinja2,
pandas, ...) but no package registry, and the device tool carries at most 64 MiB per call, the
working tree included. So the bundle holds only:
  - llama-cpp-python's source archive, the version installed here, stripped of what a CUDA build
    never reads (its .git, the vocabulary test models, docs, the server's web UI): 76 -> ~13 MB;
  - wheels of the pure-Python packages that machine lacks (--no-deps; see WHEELS);
  - the default GGUF (SmolLM2-135M Q4_1, 94 MiB) as a file for SELLER_GGUF;
  - MiniLM vectors of the sample catalogue (SELLER_CACHE_DIR/minilm), so the 88 MB MiniLM
    model need not travel: the encoder reads its content-hash cache and never loads the model.
packed as one tar split into parts that each fit one call beside the tree.

    python scripts/gpu_bundle.py build [--part-mib N]   # here (CPU + registry): .gpu_bundle/
    python scripts/gpu_bundle.py check                  # here: parts vs MANIFEST, the carry plan
    python3 scripts/gpu_bundle.py unpack DEST           # there (stdlib only): verify, extract

`unpack` exits 3 naming the parts not carried yet; scripts/gpu_check.sh runs it first.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUNDLE = Path(os.environ.get("GPU_BUNDLE", REPO / ".gpu_bundle"))  # the carried folder (env: tests)
MANIFEST = "MANIFEST.json"
CARRY_LIMIT = 64 << 20  # the device tool's limit per call: working tree + carried paths
CARRY_PATHS_MAX = 8
MISSING_PARTS = 3  # unpack's exit status when some parts have not been carried yet
# pure-Python packages the four GPU checks import that a CUDA torch + transformers machine lacks
# (llama-cpp-python's build backend too, for machines without it); versions as installed here
WHEELS = ("diskcache", "gguf", "scikit-build-core", "pathspec")
# parts of the llama-cpp-python source archive a -DGGML_CUDA=on build never reads
STRIP = (".git/", "vendor/llama.cpp/.git", "vendor/llama.cpp/models/ggml-vocab-", "vendor/llama.cpp/docs/",
         "vendor/llama.cpp/tools/server/public", "vendor/llama.cpp/media/", "docs/", "examples/")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def installed_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


# -- build (here) ------------------------------------------------------------------------------
def strip_sdist(source: Path, target: Path) -> tuple[int, int]:
    """Copy the source archive without the STRIP paths; returns (members kept, members dropped)."""
    kept = dropped = 0
    with tarfile.open(source) as src, tarfile.open(target, "w:gz") as dst:
        for member in src:
            inside = member.name.split("/", 1)[1] if "/" in member.name else ""
            if any(inside.startswith(prefix) for prefix in STRIP):
                dropped += 1
                continue
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
            kept += 1
    required = ("pyproject.toml", "CMakeLists.txt", "vendor/llama.cpp/ggml/src/ggml-cuda/CMakeLists.txt")
    with tarfile.open(target) as check:
        names = {m.name.split("/", 1)[1] for m in check if "/" in m.name}
    missing = [r for r in required if r not in names]
    if missing:
        raise SystemExit(f"gpu_bundle: {source.name} lacks {missing}: not a llama-cpp-python source archive")
    return kept, dropped


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def stage(stage_dir: Path, downloads: Path, python_version: str) -> dict:
    """Download (cached in `downloads`) and lay out everything the GPU machine gets."""
    sys.path.insert(0, str(REPO))
    from seller.llm import resolve_gguf

    llama = installed_version("llama_cpp_python")
    if llama is None:
        raise SystemExit("gpu_bundle: llama-cpp-python is not installed here; run from the project's venv")
    sdist = downloads / f"llama_cpp_python-{llama}.tar.gz"
    if not sdist.is_file():
        pip("download", "--no-deps", "--no-binary", ":all:", f"llama-cpp-python=={llama}", "-d", str(downloads))
    stage_dir.mkdir(parents=True)
    kept, dropped = strip_sdist(sdist, stage_dir / sdist.name)
    wheels = stage_dir / "wheels"
    pins = [f"{name}=={installed_version(name)}" if installed_version(name) else name for name in WHEELS]
    pip("download", "--no-deps", "--only-binary=:all:", "--python-version", python_version,
        "--implementation", "py", "-d", str(wheels), *pins)
    gguf = resolve_gguf()
    shutil.copy2(gguf, stage_dir / gguf.name)
    vectors = cache_sample_vectors(stage_dir)
    return {"llama_cpp_python": llama, "sdist": sdist.name, "sdist_members": {"kept": kept, "dropped": dropped},
            "wheels": sorted(p.name for p in wheels.iterdir()), "gguf": gguf.name,
            "minilm_vectors": vectors, "python": python_version}


def cache_sample_vectors(stage_dir: Path) -> int:
    """MiniLM vectors of every sample item's text, in the encoder's own cache layout."""
    os.environ["SELLER_CACHE_DIR"] = str(stage_dir)
    from seller.data.dataset import load_sample
    from seller.encoders.item import item_text
    from seller.encoders.text import embed_texts

    items = load_sample().items
    return len(embed_texts([item_text(row) for _, row in items.iterrows()]))


def pack(stage_dir: Path, bundle: Path, part_bytes: int, about: dict) -> dict:
    """One tar of `stage_dir`, split into parts of `part_bytes`, and their manifest."""
    parts_dir = bundle / "parts"
    shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir(parents=True)
    tar_path = bundle / "bundle.tar"
    with tarfile.open(tar_path, "w") as tar:
        for path in sorted(stage_dir.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(stage_dir)), recursive=False)
    parts = []
    with tar_path.open("rb") as f:
        for index, block in enumerate(iter(lambda: f.read(part_bytes), b"")):
            part = parts_dir / f"part-{index:02d}"
            part.write_bytes(block)
            parts.append({"name": part.name, "bytes": len(block), "sha256": hashlib.sha256(block).hexdigest()})
    manifest = {"about": about, "tar_sha256": sha256(tar_path), "tar_bytes": tar_path.stat().st_size,
                "parts": parts}
    tar_path.unlink()
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def tree_bytes() -> int:
    """What the device tool sends besides carried paths: tracked and untracked-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, check=True, capture_output=True).stdout.split(b"\0")
    return sum((REPO / os.fsdecode(p)).stat().st_size for p in listed if p and (REPO / os.fsdecode(p)).is_file())


def carry_plan(manifest: dict, tree: int) -> list[list[str]]:
    """The `carry` list of each device call: the manifest always, then parts while they fit."""
    room = CARRY_LIMIT - tree - (len(json.dumps(manifest, indent=1)) + 4096)
    calls, current, used = [], [], 0
    for part in manifest["parts"]:
        if part["bytes"] > room:
            raise SystemExit(f"gpu_bundle: {part['name']} ({part['bytes'] >> 20} MiB) does not fit beside the "
                             f"{tree >> 20} MiB working tree under the {CARRY_LIMIT >> 20} MiB carry limit; "
                             f"build again with a smaller --part-mib")
        if current and (used + part["bytes"] > room or len(current) + 1 >= CARRY_PATHS_MAX):
            calls.append(current)
            current, used = [], 0
        current.append(f".gpu_bundle/parts/{part['name']}")
        used += part["bytes"]
    calls.append(current)
    return [[f".gpu_bundle/{MANIFEST}", *c] for c in calls]


# -- unpack (there; stdlib only) -----------------------------------------------------------------
def unpack(bundle: Path, dest: Path) -> dict:
    """Verify every part against the manifest, join them and extract into `dest`."""
    manifest_path = bundle / MANIFEST
    if not manifest_path.is_file():
        raise SystemExit(f"gpu_bundle: no {manifest_path}: carry .gpu_bundle/{MANIFEST} "
                         f"(made by `python scripts/gpu_bundle.py build`)")
    manifest = json.loads(manifest_path.read_text())
    present = [p for p in manifest["parts"] if (bundle / "parts" / p["name"]).is_file()]
    missing = [p["name"] for p in manifest["parts"] if p not in present]
    if missing:
        print(f"gpu_bundle: carried {len(present)} of {len(manifest['parts'])} parts; still to carry: "
              f"{', '.join(missing)}", file=sys.stderr)
        raise SystemExit(MISSING_PARTS)
    joined = io.BytesIO()
    for part in manifest["parts"]:
        block = (bundle / "parts" / part["name"]).read_bytes()
        if hashlib.sha256(block).hexdigest() != part["sha256"]:
            raise SystemExit(f"gpu_bundle: {part['name']} is corrupt (sha256 differs from {MANIFEST}); carry it again")
        joined.write(block)
    if hashlib.sha256(joined.getbuffer()).hexdigest() != manifest["tar_sha256"]:
        raise SystemExit("gpu_bundle: the joined parts differ from the bundle that was built; build and carry again")
    dest.mkdir(parents=True, exist_ok=True)
    joined.seek(0)
    with tarfile.open(fileobj=joined) as tar:
        tar.extractall(dest, filter="data")
    return manifest["about"]


# -- command line ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="download, stage, pack into .gpu_bundle/ (needs the registry)")
    build.add_argument("--part-mib", type=int, default=24, help="size of each part")
    build.add_argument("--python-version", default="3.12", help="the GPU machine's Python")
    sub.add_parser("check", help="verify the built parts and print the device calls that carry them")
    unpack_cmd = sub.add_parser("unpack", help="verify the carried parts and extract them (GPU side)")
    unpack_cmd.add_argument("dest", type=Path)
    args = parser.parse_args(argv)

    if args.command == "unpack":
        about = unpack(BUNDLE, args.dest)
        print(json.dumps(about))
        return 0
    if args.command == "build":
        downloads = BUNDLE / "downloads"  # kept: a rebuild downloads nothing again
        downloads.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=BUNDLE) as tmp:
            about = stage(Path(tmp) / "stage", downloads, args.python_version)
            pack(Path(tmp) / "stage", BUNDLE, args.part_mib << 20, about)
    manifest = json.loads((BUNDLE / MANIFEST).read_text())
    with tempfile.TemporaryDirectory() as tmp:  # the GPU side's own check, here
        about = unpack(BUNDLE, Path(tmp))
        print(f"bundle verified: {len(manifest['parts'])} parts, {manifest['tar_bytes'] >> 20} MiB, "
              f"llama-cpp-python {about['llama_cpp_python']}, wheels {', '.join(about['wheels'])}")
    plan = carry_plan(manifest, tree_bytes())
    for n, carry in enumerate(plan, 1):
        print(f"device call {n}/{len(plan)}: run(command='bash scripts/gpu_check.sh', carry={json.dumps(carry)})")
    print("each call but the last exits 3 (parts still to carry); the machine keeps carried parts while it "
          "stays warm, so make the calls back to back")
    return 0


if __name__ == "__main__":
    sys.exit(main())
