#!/usr/bin/env bash
# Fetches the CUDA compiler and runtime from the Python package index into
# the project's private folder .cuda/ (gitignored) and prints nvcc's path.
#
#   bash scripts/get-cuda.sh          # .cuda/toolkit/bin/nvcc (about 130 MB of wheels, ~340 MB unpacked)
#   cmake -S . -B build-cuda -DG3_CUDA=ON   # finds .cuda/toolkit/bin/nvcc by itself
#
# What it installs: nvcc, ptxas, fatbinary, nvlink (nvidia-cuda-nvcc), cicc
# and libdevice (nvidia-nvvm), the crt headers (nvidia-cuda-crt), the
# runtime headers and static libcudart (nvidia-cuda-runtime) and CCCL's
# headers (nvidia-cuda-cccl), unpacked as one toolkit tree (bin/, include/,
# lib/, nvvm/). No driver: on a machine without an NVIDIA GPU the CUDA code
# compiles and links, and the binary runs CPU-only. cuBLAS is not needed
# (the backend has its own prefill GEMM). Nothing outside .cuda/ is touched;
# an existing toolkit of the same versions is kept. Versions are pinned
# (G3_CUDA_VERSION, G3_CCCL_VERSION override them). Linux x86-64 only.
set -euo pipefail
cd "$(dirname "$0")/.."

CUDA_VERSION="${G3_CUDA_VERSION:-13.5.37}"
CCCL_VERSION="${G3_CCCL_VERSION:-13.3.5.0.6}"
ROOT=.cuda
DEST="$ROOT/toolkit"
STAMP="$DEST/.g3-versions"
WANT="nvcc=$CUDA_VERSION cccl=$CCCL_VERSION"

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "get-cuda.sh: the toolkit wheels used here are for Linux x86-64 (this is $(uname -s)-$(uname -m))" >&2
  exit 1
fi
if [ -x "$DEST/bin/nvcc" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ]; then
  echo "$PWD/$DEST/bin/nvcc"
  exit 0
fi
PY="${PYTHON:-python3}"
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  echo "get-cuda.sh: needs python3 with pip (apt-get install python3-pip)" >&2
  exit 1
fi

wheels="$ROOT/wheels"
mkdir -p "$wheels"
echo "get-cuda.sh: downloading CUDA $CUDA_VERSION (nvcc, nvvm, crt, runtime) and CCCL $CCCL_VERSION from the package index" >&2
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
  --python-version 3.11 --implementation py -d "$wheels" \
  "nvidia-cuda-nvcc==$CUDA_VERSION" "nvidia-nvvm==$CUDA_VERSION" "nvidia-cuda-crt==$CUDA_VERSION" \
  "nvidia-cuda-runtime==$CUDA_VERSION" "nvidia-cuda-cccl==$CCCL_VERSION" >&2

# Every wheel holds nvidia/cu13/<bin|include|lib|nvvm>/...: unpack them over
# one another, then move that tree into place.
tmp="$ROOT/unpack.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
for pkg in nvidia_cuda_nvcc-"$CUDA_VERSION" nvidia_nvvm-"$CUDA_VERSION" nvidia_cuda_crt-"$CUDA_VERSION" \
           nvidia_cuda_runtime-"$CUDA_VERSION" nvidia_cuda_cccl-"$CCCL_VERSION"; do
  whl=$(ls "$wheels"/"$pkg"-*.whl 2>/dev/null | head -n1)
  if [ -z "$whl" ]; then echo "get-cuda.sh: $pkg: no wheel downloaded" >&2; rm -rf "$tmp"; exit 1; fi
  "$PY" -m zipfile -e "$whl" "$tmp" >/dev/null
done
tree=$(ls -d "$tmp"/nvidia/cu* 2>/dev/null | head -n1)
if [ -z "$tree" ] || [ ! -f "$tree/bin/nvcc" ]; then
  echo "get-cuda.sh: the wheels did not hold nvidia/cu*/bin/nvcc" >&2
  rm -rf "$tmp"
  exit 1
fi
chmod +x "$tree"/bin/* "$tree"/nvvm/bin/* 2>/dev/null || true
rm -rf "$DEST"
mv "$tree" "$DEST"
rm -rf "$tmp"
echo "$WANT" > "$STAMP"
"$DEST/bin/nvcc" --version | tail -n2 >&2
echo "$PWD/$DEST/bin/nvcc"
