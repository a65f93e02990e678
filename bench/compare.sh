#!/usr/bin/env bash
# bench/compare.sh: prefill and decode speed of gemma-chat and llama.cpp on
# the same GGUF files, run interleaved, with the ratios and the fraction of
# the memory-bandwidth roofline each engine's decode reaches.
#
#   bash bench/compare.sh LLAMA_BUILD_DIR MODEL [MODEL...]
#
# LLAMA_BUILD_DIR: a llama.cpp CMake build folder with llama-bench (see
# bench/RESULTS.md for the build from the npm package node-llama-cpp).
#
# Environment: G3_BIN (default build/gemma-chat), THREADS (2), ROUNDS (3),
# REPS (runs per engine and round after a warm-up, 3), N_PROMPT (512), N_GEN
# (128), ACTIVATIONS (gemma-chat's activation modes, default "int15 int8";
# each runs both tests; the first is the one the roofline columns of
# llama.cpp use), BENCH_OUT (raw output, default bench/out/compare-many,
# git-ignored).
#
# Each round runs, per model, gemma-chat once per activation mode and
# llama-bench once, the order alternating between rounds, with the same
# thread count and an f16 KV cache:
#   gemma-chat bench -p N_PROMPT -n N_GEN -r REPS -t THREADS --kv-type f16 --activations A --json
#   llama-bench      -p N_PROMPT -n N_GEN -r REPS -t THREADS -ctk f16 -ctv f16 -o jsonl
# The table gives medians over the rounds. Roofline: gemma-chat bench
# measures the machine's streaming-read bandwidth in each run and the bytes
# a decoded token reads (weights + the KV cache at the mean position); the
# fraction is tg tok/s x bytes per token / bandwidth, for llama.cpp with the
# same bytes and the bandwidth of the gemma-chat run beside it. Benchmarks
# print figures: this script fails only when something is missing or a
# command fails, never on time. Run it on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "bench/compare.sh: $*" >&2; exit 1; }
. bench/lib.sh

[ $# -ge 2 ] || die "usage: bash bench/compare.sh LLAMA_BUILD_DIR MODEL [MODEL...]"
LLAMA_DIR=$1
shift
BIN=${G3_BIN:-build/gemma-chat}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-3}
N_PROMPT=${N_PROMPT:-512}
N_GEN=${N_GEN:-128}
read -r -a MODES <<<"${ACTIVATIONS:-int15 int8}"
OUT=${BENCH_OUT:-bench/out/compare-many}

[ -d "$LLAMA_DIR" ] || die "$LLAMA_DIR: no such llama.cpp build folder"
LLAMA_BENCH=$(find_llama "$LLAMA_DIR" llama-bench) ||
  die "llama-bench not found in $LLAMA_DIR or $LLAMA_DIR/bin (cmake --build $LLAMA_DIR --target llama-bench)"
[ -x "$BIN" ] || die "$BIN not found; build gemma-chat first (bash scripts/build.sh) or set G3_BIN"
[ ${#MODES[@]} -ge 1 ] || die "ACTIVATIONS names no mode"
for m in "${MODES[@]}"; do
  case $m in int15 | int8 | exact) ;; *) die "ACTIVATIONS: '$m' is not int15, int8 or exact" ;; esac
done
for f in "$@"; do [ -f "$f" ] || die "model $f not found"; done
mkdir -p "$OUT"

# Results, keyed "model index,mode,round" (mode "llama" for llama.cpp).
declare -A PP TG BW BPT RF

g3_run() { # model-index mode round
  local model=${FILES[$1]} p=$N_PROMPT tag json log
  tag="$OUT/g3-$1-$2-$3"
  log="$tag.log"
  json=$("$BIN" bench -m "$model" -p "$p" -n "$N_GEN" -r "$REPS" -t "$THREADS" --kv-type f16 \
           --activations "$2" --json 2>"$log") || { cat "$log" >&2; die "gemma-chat bench failed on $model"; }
  echo "$json" >"$tag.json"
  PP[$1,$2,$3]=$(nested "$json" pp tok_s)
  TG[$1,$2,$3]=$(nested "$json" tg tok_s)
  BW[$1,$2,$3]=$(field "$json" bandwidth_gbs)
  BPT[$1]=$(field "$json" bytes_per_token)
  RF[$1,$2,$3]=$(field "$json" roofline_fraction)
  echo "  gemma-chat $2: pp ${PP[$1,$2,$3]} tg ${TG[$1,$2,$3]} tok/s, bandwidth ${BW[$1,$2,$3]} GB/s" >&2
}
llama_run() { # model-index round
  local model=${FILES[$1]} jsonl log="$OUT/llama-$1-$2.log"
  jsonl=$("$LLAMA_BENCH" -m "$model" -p "$N_PROMPT" -n "$N_GEN" -r "$REPS" -t "$THREADS" -ctk f16 -ctv f16 \
            -o jsonl 2>"$log") || { tail -20 "$log" >&2; die "llama-bench failed on $model"; }
  echo "$jsonl" >"$OUT/llama-$1-$2.jsonl"
  PP[$1,llama,$2]=$(llama_ts "$jsonl" "$N_PROMPT" 0)
  TG[$1,llama,$2]=$(llama_ts "$jsonl" 0 "$N_GEN")
  echo "  llama.cpp:  pp ${PP[$1,llama,$2]} tg ${TG[$1,llama,$2]} tok/s" >&2
}

FILES=("$@")
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= ROUNDS; r++)); do
  for i in "${!FILES[@]}"; do
    echo "== round $r/$ROUNDS: ${FILES[$i]}" >&2
    if (((r + i) % 2)); then
      for m in "${MODES[@]}"; do g3_run "$i" "$m" "$r"; done
      llama_run "$i" "$r"
    else
      llama_run "$i" "$r"
      for m in "${MODES[@]}"; do g3_run "$i" "$m" "$r"; done
    fi
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

med() { # key-prefix: median over the rounds of array $1 at "$2,round"
  local -n arr=$1
  local v=()
  for ((r = 1; r <= ROUNDS; r++)); do v+=("${arr[$2,$r]}"); done
  stat3 "${v[@]}" | cut -d' ' -f1
}
# llama.cpp's roofline fraction in a round: its tg with gemma-chat's bytes
# per token and the bandwidth gemma-chat measured in the same round
llama_rf() { # model-index
  local v=()
  for ((r = 1; r <= ROUNDS; r++)); do
    v+=("$(awk -v t="${TG[$1,llama,$r]}" -v b="${BPT[$1]}" -v w="${BW[$1,${MODES[0]},$r]}" \
             'BEGIN { printf "%.4f", (w > 0 ? t * b / (w * 1e9) : 0) }')")
  done
  stat3 "${v[@]}" | cut -d' ' -f1
}

llama_version=$("$LLAMA_BENCH" --version 2>&1 | sed -n 1p)
g3_version=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n 1p)
kernels=$(sed -n 's/.*kernels \([a-z0-9]*\) on .*/\1/p' "$OUT"/g3-0-"${MODES[0]}"-1.log | sed -n 1p)

echo "gemma-chat $g3_version (kernels ${kernels:-?}) vs llama.cpp $llama_version"
echo "CPU: $cpu, $(nproc) CPUs; $THREADS threads; f16 KV cache; median of $ROUNDS interleaved rounds"
echo "(each: mean of $REPS runs after a warm-up); load average $load_before before, $load_after after"
echo
head="| model file | llama.cpp pp$N_PROMPT"
sep="|---|---:"
for m in "${MODES[@]}"; do
  head+=" | gemma-chat pp$N_PROMPT $m | ratio"
  sep+="|---:|---:"
done
head+=" | llama.cpp tg$N_GEN | roofline"
sep+="|---:|---:"
for m in "${MODES[@]}"; do
  head+=" | gemma-chat tg$N_GEN $m | ratio | roofline"
  sep+="|---:|---:|---:"
done
echo "$head | bandwidth GB/s | MB/token |"
echo "$sep|---:|---:|"
for i in "${!FILES[@]}"; do
  m0=${MODES[0]}
  lpp=$(med PP "$i,llama")
  ltg=$(med TG "$i,llama")
  row=$(awk -v f="$(basename "${FILES[$i]}")" -v a="$lpp" 'BEGIN { printf "| %s | %.1f", f, a }')
  for m in "${MODES[@]}"; do
    row+=$(awk -v a="$lpp" -v b="$(med PP "$i,$m")" 'BEGIN { printf " | %.1f | %.2fx", b, (a > 0 ? b / a : 0) }')
  done
  row+=$(awk -v c="$ltg" -v rf="$(llama_rf "$i")" 'BEGIN { printf " | %.2f | %.0f%%", c, 100 * rf }')
  for m in "${MODES[@]}"; do
    row+=$(awk -v t="$(med TG "$i,$m")" -v l="$ltg" -v rf="$(med RF "$i,$m")" 'BEGIN {
      printf " | %.2f | %.2fx | %.0f%%", t, (l > 0 ? t / l : 0), 100 * rf }')
  done
  row+=$(awk -v w="$(med BW "$i,$m0")" -v b="${BPT[$i]}" 'BEGIN { printf " | %.1f | %.1f |", w, b / 1e6 }')
  echo "$row"
done
echo
echo "Ratio = gemma-chat / llama.cpp. Per round (tok/s; gemma-chat's bandwidth probe in GB/s):"
echo
for i in "${!FILES[@]}"; do
  for ((r = 1; r <= ROUNDS; r++)); do
    line="- $(basename "${FILES[$i]}") round $r: llama.cpp pp ${PP[$i,llama,$r]} tg ${TG[$i,llama,$r]}"
    for m in "${MODES[@]}"; do
      line+="; $m pp ${PP[$i,$m,$r]} tg ${TG[$i,$m,$r]} (bw ${BW[$i,$m,$r]})"
    done
    echo "$line"
  done
done
