#!/usr/bin/env bash
# device-check.sh: the CUDA backend's checks and figures on a GPU machine, in
# one run (meant for the lent H200 machine: 16 cores, nvcc 13, no network,
# none of the project's system libraries; the working tree arrives without
# build folders and without ../shared).
#
# On the build machine, once, stage the golden data into the tree (ignored,
# carried to the GPU machine; about 30 MiB):
#   bash scripts/device-check.sh --stage-golden
# then run there, with .device carried:
#   bash scripts/device-check.sh                  (run(command=..., carry=[".device"], timeout_s=570))
# and here, to check the script's CPU parts (no GPU: the CUDA test skips,
# the bench runs the tiny shape on the CPU):
#   bash scripts/device-check.sh --cpu-only
# or to compile the GPU build and run only test_cuda_ops (it skips without
# a GPU): bash scripts/device-check.sh --build-only
#
# What it does, each step under its own time limit, everything logged to
# $OUT/device-check.log (or /tmp/g3-device-check/) with a summary at the end:
#  1. builds the engine (src/base, src/tensor, src/model, src/cuda) with gcc
#     and nvcc (-arch sm_90 unless G3_CUDA_ARCH says otherwise) into
#     /tmp/g3-device-build: tests/test_cuda_ops.c (every CUDA operation
#     against the CPU reference, the golden models CUDA vs CPU and the
#     golden README's rule (a) on the GPU) and gemma-chat-lite
#     (scripts/device-lite.c: gemma-chat's own bench and make-test-model
#     without the media, store, server and terminal layers, which need
#     libraries the GPU machine lacks);
#  2. runs test_cuda_ops;
#  3. makes random-weight Q4_0 models of the real 1B and 27B shapes there
#     (never carried: ~0.6 and ~15.6 GB), the 27B in the background;
#  4. gemma-chat bench on the GPU: pp512 and tg128 (1 stream), tg128 with 4
#     streams (--parallel 4), the GPU memory in use after the runs; 1B at a
#     4096 context, 27B at 32768.
# Total under 8 minutes on that machine (the 27B generation, ~3 minutes on
# one core, is the longest step); G3_DEVICE_CHECK_BUDGET (default 520 s)
# bounds it whatever happens.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MODE=gpu
BUILD_ONLY=0
case "${1:-}" in
  --cpu-only) MODE=cpu ;;
  --build-only) BUILD_ONLY=1 ;;
  --stage-golden)
    src=""
    for d in "$ROOT/../shared/golden" "$ROOT/shared/golden"; do [ -d "$d/tiny-gemma3" ] && src=$d && break; done
    if [ -z "$src" ]; then echo "device-check: no golden data beside the checkout (../shared/golden)" >&2; exit 1; fi
    dst="$ROOT/.device/golden/tiny-gemma3"
    rm -rf "$dst"
    mkdir -p "$dst/models" "$dst/text"
    cp "$src"/tiny-gemma3/models/g3-1b-*.gguf "$dst/models/"
    for d in "$src"/tiny-gemma3/text/*/; do
      t="$dst/text/$(basename "$d")"
      mkdir -p "$t"
      cp "$d"*.tokens.json "$d"*.exact.f32 "$d"*.exact_greedy.json "$t/"
    done
    grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
    du -sh "$ROOT/.device" >&2
    echo "device-check: golden data staged in .device/ (carry it: carry=[\".device\"])" >&2
    exit 0 ;;
  "") ;;
  *) echo "usage: bash scripts/device-check.sh [--cpu-only | --build-only | --stage-golden]" >&2; exit 2 ;;
esac

OUT_DIR="${OUT:-/tmp/g3-device-check}"
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/device-check.log"
SUMMARY="$OUT_DIR/summary.txt"
: > "$LOG"
: > "$SUMMARY"
exec > >(tee -a "$LOG") 2>&1

B="${G3_DEVICE_BUILD:-/tmp/g3-device-build}"
MODELS="${G3_DEVICE_MODELS:-/tmp/g3-device-models}"
JOBS="${JOBS:-$(nproc)}"
ARCH="${G3_CUDA_ARCH:-90}"
T0=$(date +%s)

say() { echo "[device-check +$(( $(date +%s) - T0 ))s] $*"; }
note() { echo "$*" | tee -a "$SUMMARY"; }
# The whole run stays inside BUDGET seconds (default 520: a run(timeout_s=570)
# gets its summary back): each step's limit is cut to what is left, and a
# step with under 15 s left is skipped and said so.
BUDGET="${G3_DEVICE_CHECK_BUDGET:-520}"
# step NAME SECONDS CMD...: runs CMD under a time limit; the summary gets its status
step() {
  local name=$1 limit=$2; shift 2
  local left=$(( BUDGET - ($(date +%s) - T0) ))
  if [ "$left" -lt 15 ]; then note "$name: SKIPPED (the ${BUDGET}s budget is spent)"; return 124; fi
  [ "$limit" -gt "$left" ] && limit=$left
  local s; s=$(date +%s)
  say "$name (limit ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  local took=$(( $(date +%s) - s ))
  case $rc in
    0) note "$name: ok (${took}s)" ;;
    77) note "$name: skipped (${took}s)" ;;
    124|137) note "$name: TIMED OUT after ${limit}s" ;;
    *) note "$name: FAILED rc=$rc (${took}s)" ;;
  esac
  return $rc
}

# ---- the toolchain ----
NVCC=""
if [ "$MODE" = gpu ]; then
  for c in "$(command -v nvcc 2>/dev/null)" /usr/local/cuda/bin/nvcc "${CUDA_HOME:-/nonexistent}/bin/nvcc" "$ROOT/.cuda/toolkit/bin/nvcc"; do
    [ -n "$c" ] && [ -x "$c" ] && NVCC=$c && break
  done
  if [ -z "$NVCC" ]; then note "toolchain: FAILED: no nvcc (PATH, /usr/local/cuda, CUDA_HOME, .cuda/toolkit)"; exit 1; fi
  say "nvcc: $NVCC ($("$NVCC" --version | tail -n1))"
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'
fi
GOLDEN=""
for d in "$ROOT/.device/golden" "$ROOT/../shared/golden" "$ROOT/shared/golden"; do
  [ -d "$d/tiny-gemma3/models" ] && GOLDEN=$(cd "$d" && pwd) && break
done
[ -n "$GOLDEN" ] || say "warning: no golden data (run --stage-golden on the build machine and carry .device)"
say "mode $MODE, $JOBS jobs, build $B, models $MODELS, golden ${GOLDEN:-none}, output $OUT_DIR"

# ---- 1. build ----
build() {
  rm -rf "$B"
  mkdir -p "$B/obj"
  local CFLAGS="-O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Iinclude -Isrc -pthread"
  local srcs=(src/base/*.c src/tensor/*.c src/model/*.c src/app/cmd_bench.c src/app/cmd_make_test_model.c
              src/app/flags.c scripts/device-lite.c)
  [ "$MODE" = cpu ] && srcs+=(src/cuda/g3_cuda_stub.c)
  printf '%s\n' "${srcs[@]}" | xargs -P "$JOBS" -I{} sh -c '
    f={}; o='"$B"'/obj/$(echo "$f" | tr / _).o; extra=""
    case "$f" in
      */kernels_avx2.c) extra="-mavx2 -mfma -mf16c" ;;
      */kernels_avx512.c) extra="-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni" ;;
    esac
    gcc '"$CFLAGS"' $extra -c "$f" -o "$o" || exit 255' || return 1
  gcc $CFLAGS -DG3_GOLDEN_DIR="\"${GOLDEN:-/nonexistent}\"" -c tests/test_cuda_ops.c -o "$B/test_cuda_ops.o" || return 1
  local engine=()
  for o in "$B"/obj/*.o; do case "$o" in *device-lite*|*cmd_bench*|*cmd_make_test_model*|*app_flags*) ;; *) engine+=("$o") ;; esac; done
  local app=("$B"/obj/scripts_device-lite.c.o "$B"/obj/src_app_cmd_bench.c.o "$B"/obj/src_app_cmd_make_test_model.c.o
             "$B"/obj/src_app_flags.c.o)
  if [ "$MODE" = gpu ]; then
    local NVFLAGS="-O3 -std=c++17 -arch=sm_$ARCH -Iinclude -Isrc -D_GNU_SOURCE --expt-relaxed-constexpr -Xptxas=-warn-spills"
    "$NVCC" $NVFLAGS -c src/cuda/cuda_kernels.cu -o "$B/cuda_kernels.o" &
    local p1=$!
    "$NVCC" $NVFLAGS -c src/cuda/cuda_backend.cu -o "$B/cuda_backend.o" || return 1
    wait $p1 || return 1
    engine+=("$B/cuda_kernels.o" "$B/cuda_backend.o")
    # nvcc links the static CUDA runtime itself
    "$NVCC" -arch=sm_$ARCH -o "$B/gemma-chat-lite" "${app[@]}" "${engine[@]}" -lpthread -lm || return 1
    "$NVCC" -arch=sm_$ARCH -o "$B/test_cuda_ops" "$B/test_cuda_ops.o" "${engine[@]}" -lpthread -lm || return 1
  else
    gcc -o "$B/gemma-chat-lite" "${app[@]}" "${engine[@]}" -pthread -lm || return 1
    gcc -o "$B/test_cuda_ops" "$B/test_cuda_ops.o" "${engine[@]}" -pthread -lm || return 1
  fi
}
step build 200 bash -c "$(declare -f build); B='$B' MODE='$MODE' JOBS='$JOBS' GOLDEN='$GOLDEN' NVCC='$NVCC' ARCH='$ARCH' build" || {
  say "the build failed: nothing else can run"; cat "$SUMMARY"; exit 1; }
LITE="$B/gemma-chat-lite"
if [ "$BUILD_ONLY" = 1 ]; then
  step test_cuda_ops 240 "$B/test_cuda_ops"
  echo "==== summary ===="; cat "$SUMMARY"; exit 0
fi

# ---- 3a. the 27B model, in the background while the tests run ----
mkdir -p "$MODELS"
if [ "$MODE" = gpu ]; then SHAPES=(1b 27b); DEV=cuda; else SHAPES=(tiny); DEV=cpu; fi
BIG=${SHAPES[${#SHAPES[@]}-1]}
if [ "$MODE" = gpu ]; then
  timeout 300 "$LITE" make-test-model --shape 27b --type q4_0 --quiet -o "$MODELS/g3-27b-q4_0.gguf" \
    > "$OUT_DIR/make-27b.log" 2>&1 &
  BIG_PID=$!
  say "making the 27B Q4_0 model in the background (pid $BIG_PID)"
fi

# ---- 2. the CUDA tests ----
step test_cuda_ops 150 "$B/test_cuda_ops"

# ---- 3b/4. models and bench figures ----
bench_shape() {
  local shape=$1 ctx=$2 file="$MODELS/g3-$1-q4_0.gguf"
  if [ ! -f "$file" ] || [ "$shape" != 27b ]; then
    step "make-test-model $shape" 90 "$LITE" make-test-model --shape "$shape" --type q4_0 --quiet -o "$file" || return 1
  fi
  ls -la "$file"
  step "bench $shape pp512+tg128 c$ctx" 150 "$LITE" bench -m "$file" -p 512 -n 128 -r 2 -c "$ctx" --device "$DEV" \
    | tee "$OUT_DIR/bench-$shape-1.txt"
  step "bench $shape tg128 x4 streams c$ctx" 150 "$LITE" bench -m "$file" -p 0 -n 128 -r 2 -c "$ctx" --parallel 4 \
    --device "$DEV" | tee "$OUT_DIR/bench-$shape-4.txt"
  for f in "$OUT_DIR/bench-$shape-1.txt" "$OUT_DIR/bench-$shape-4.txt"; do
    grep -E '^\| |^device:|^\(tg' "$f" | grep -v -- '---' | sed "s/^/$shape: /" >> "$SUMMARY"
  done
}
if [ "$MODE" = gpu ]; then
  bench_shape 1b 4096
  say "waiting for the 27B model"
  # never past the budget: the 27B figures need about a minute after it
  while kill -0 "$BIG_PID" 2>/dev/null && [ $(( $(date +%s) - T0 )) -lt $(( BUDGET - 60 )) ]; do sleep 2; done
  kill -0 "$BIG_PID" 2>/dev/null && kill "$BIG_PID" 2>/dev/null # timeout passes it on to the generator
  wait "$BIG_PID"
  BIG_RC=$?
  if [ "$BIG_RC" = 0 ]; then
    note "make-test-model 27b: ok"
    bench_shape 27b 32768
  else
    note "make-test-model 27b: FAILED or cut by the budget, rc=$BIG_RC ($(tail -n2 "$OUT_DIR/make-27b.log" | tr '\n' ' '))"
  fi
else
  bench_shape tiny 512
fi
rm -f "$MODELS"/*.gguf "$MODELS"/*.gguf.tmp 2>/dev/null

say "done in $(( $(date +%s) - T0 ))s"
echo "==== summary ===="
cat "$SUMMARY"
