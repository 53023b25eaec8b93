#!/usr/bin/env bash
# The GPU path end to end on a machine with an NVIDIA GPU, nvcc, CMake, CUDA torch and
# transformers but no package registry (under 10 minutes there). What it lacks comes carried in
# .gpu_bundle/ (made here by `python scripts/gpu_bundle.py build`, which prints the device calls):
#   1. unpack the bundle; exit 3, naming the parts still to carry, while some are missing
#   2. install the carried wheels this machine lacks; build llama-cpp-python with -DGGML_CUDA=on
#   3. the parity test with every llama.cpp layer on the GPU, `seller bench llm --gpu`,
#      `seller bench app` with SELLER_GPU_LAYERS=-1, `seller bench train` on CUDA torch
# Writes to $OUT (default ./gpu_out): gpu_check.json (each step's status and seconds, the
# machine), gpu_check.log, and each benchmark's JSON + markdown. Exit status: 0 when every step passed.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-$PWD/gpu_out}
work=${GPU_WORK:-/tmp/seller-gpu}
python=${PYTHON:-python3}
mkdir -p "$out" "$work"
exec > >(tee -a "$out/gpu_check.log") 2>&1

"$python" scripts/gpu_bundle.py unpack "$work/bundle" || exit $?  # 3: parts still to carry
site=$work/site
gguf=$(ls "$work"/bundle/*.gguf)
export PYTHONPATH=$site:$PWD SELLER_GGUF=$gguf SELLER_CACHE_DIR=$work/bundle SELLER_CACHE=$work/cache \
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
steps=$work/steps.tsv
: >"$steps"

step() {  # name, timeout_s, command...: run it, record status and seconds
  local name=$1 limit=$2 start rc
  shift 2
  echo "== $name"
  start=$(date +%s%N)
  timeout "$limit" "$@"
  rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((($(date +%s%N) - start) / 1000000))" >>"$steps"
  return $rc
}

install_missing_wheels() {  # this machine's own versions of the rest stay
  local wheel module
  for wheel in "$work"/bundle/wheels/*.whl; do
    module=$(basename "$wheel" | cut -d- -f1)  # diskcache, gguf, scikit_build_core, pathspec
    "$python" -c "import $module" 2>/dev/null && continue
    "$python" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$wheel" || return 1
  done
}

build_llama_cpp() {  # skipped when a GPU build is already in $site (a second run)
  "$python" -c "import sys, llama_cpp; sys.exit(0 if llama_cpp.llama_supports_gpu_offload() else 1)" 2>/dev/null \
    && return 0
  CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES:-native} -DLLAVA_BUILD=off" \
    CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "$python" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target "$site" \
    "$work"/bundle/llama_cpp_python-*.tar.gz
}

preflight() {  # the GPU is really used, not a silent CPU fallback
  "$python" - <<'EOF'
import importlib, sys
import llama_cpp, torch
problems = []
if not torch.cuda.is_available():
    problems.append("torch sees no CUDA device")
if not llama_cpp.llama_supports_gpu_offload():
    problems.append("llama-cpp-python was built without GPU offload")
for module in ("numpy", "pandas", "safetensors", "transformers", "gguf", "diskcache", "pytest", "tqdm", "scipy"):
    try:
        importlib.import_module(module)
    except ImportError as e:
        problems.append(f"{module} missing ({e}): add it to WHEELS in scripts/gpu_bundle.py")
print("\n".join(problems) or f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
      f"llama-cpp-python {llama_cpp.__version__}")
sys.exit(1 if problems else 0)
EOF
}

export work site python
export -f install_missing_wheels build_llama_cpp preflight  # so `timeout` can run them
ok=1
step install_wheels 120 bash -c install_missing_wheels || ok=0
[ $ok = 1 ] && { step build_llama_cpp_cuda 420 bash -c build_llama_cpp || ok=0; }
[ $ok = 1 ] && { step preflight 60 bash -c preflight || ok=0; }
if [ $ok = 1 ]; then
  SELLER_GPU_LAYERS=-1 step parity_test_gpu 180 "$python" -m pytest -q -ra tests/test_llm_parity.py
  step bench_llm_gpu 240 "$python" -m seller bench llm --gpu --out "$out/llm_gpu.json"
  SELLER_GPU_LAYERS=-1 step bench_app_gpu 240 "$python" -m seller bench app --out "$out/app_gpu.json"
  step bench_train_cuda 300 "$python" -m seller bench train --out "$out/train_gpu.json"
fi

"$python" - "$steps" "$out/gpu_check.json" <<'EOF'
import json, platform, shutil, subprocess, sys
steps = [{"step": name, "status": int(rc), "seconds": int(ms) / 1000}
         for name, rc, ms in (line.split("\t") for line in open(sys.argv[1]).read().splitlines())]
def tool(*command):
    return subprocess.run(command, capture_output=True, text=True).stdout.strip() if shutil.which(command[0]) else None
gpu = tool("nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader")
nvcc = (tool("nvcc", "--version") or "").splitlines()[-1:]
result = {"check": "gpu", "passed": bool(steps) and all(s["status"] == 0 for s in steps) and len(steps) == 7,
          "steps": steps, "gpu": gpu, "nvcc": nvcc, "python": platform.python_version(),
          "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")}
json.dump(result, open(sys.argv[2], "w"), indent=1)
print(json.dumps(result, indent=1))
sys.exit(0 if result["passed"] else 1)
EOF
