#!/usr/bin/env bash
# Makes a CUDA root in DIR with which `cargo build --release --features cuda` builds and links on a
# machine with no GPU and no CUDA toolkit (as the H100 binary is built here):
#
#   heads/ai/cuda-build-root.sh .cuda
#   PATH=$PWD/.cuda/bin:$PATH CUDA_ROOT=$PWD/.cuda CUDA_COMPUTE_CAP=90 cargo build --release --features cuda
#
# nvcc, its headers and NVRTC come from PyPI (pinned to 13.0, the H100 driver's CUDA; nvvm too:
# pip's newest emits PTX that nvcc 13.0's assembler refuses). candle's `cuda` feature links the
# driver, cuBLAS and cuRAND: here they are link-time stubs generated from cudarc's bindings, under
# the real sonames. At run time the real libraries are loaded: the driver's libcuda.so.1, and
# cuBLAS, cuRAND and NVRTC from the CUDA toolkit or from the nvidia-* packages of PyPI on
# LD_LIBRARY_PATH. Every stub function returns 100 (CUDA_ERROR_NO_DEVICE), so that where they are
# loaded instead they act as a machine without a GPU (tests/docker/check-dockerfile-cuda.sh).
set -euo pipefail
dir=${1:?usage: $0 DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
python3 -m venv "$dir/venv"
"$dir/venv/bin/pip" install --quiet --disable-pip-version-check \
    "nvidia-cuda-nvcc==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cuda-crt==13.0.*" \
    "nvidia-cuda-cccl==13.0.*" "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-nvrtc==13.0.*"
cu13=$("$dir/venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
ln -sfn "$cu13/bin" "$dir/bin"
ln -sfn "$cu13/include" "$dir/include"
ln -sfn "$cu13/nvvm" "$dir/nvvm"
mkdir -p "$dir/lib"
for lib in cudart nvrtc; do
    ln -sf "$(ls "$cu13"/lib/lib$lib.so.* | head -1)" "$dir/lib/lib$lib.so"
done
cudarc=$(cargo metadata --format-version 1 2>/dev/null | "$dir/venv/bin/python" -c '
import json, sys, os
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "cudarc":
        print(os.path.dirname(p["manifest_path"]))')
# module:library:soname version
for spec in driver:cuda:1 curand:curand:10 cublas:cublas:13 cublaslt:cublasLt:13; do
    IFS=: read -r module name version <<< "$spec"
    grep -hoE '^\s+fn [A-Za-z0-9_]+\(' "$cudarc/src/$module/sys/mod.rs" | sort -u |
        sed -E 's/\s+fn ([A-Za-z0-9_]+)\(/int \1(void) { return 100; }/' > "$dir/lib/$name-stub.c"
    cc -shared -fPIC -Wl,-soname,lib$name.so.$version -o "$dir/lib/lib$name.so" "$dir/lib/$name-stub.c"
done
echo "CUDA root in $dir: PATH=$dir/bin:\$PATH CUDA_ROOT=$dir CUDA_COMPUTE_CAP=90 cargo build --release --features cuda"
