#!/usr/bin/env bash
# bench/compare_llamacpp.sh: gemma-chat against llama.cpp on the same GGUF
# file in the same run: prefill (pp512) and decode (tg128) speed, the peak
# resident memory of a short chat, and whether both engines give the same
# greedy continuation of a chat-templated prompt.
#
#   bash bench/compare_llamacpp.sh LLAMA_BUILD_DIR [MODEL]
#
# LLAMA_BUILD_DIR: a llama.cpp CMake build folder (binaries in it or in its
# bin/) with llama-bench and llama-completion. MODEL defaults to
# models/gemma-3-270m-q4_k_m.gguf (bash scripts/get-model.sh fetches it).
#
# Environment: G3_BIN (default build/gemma-chat), THREADS (2), ROUNDS (3),
# REPS (repetitions per engine and round after the warm-up, 3), N_PROMPT
# (512), N_GEN (128), CTX (context of the chat runs, 4096), CHAT_TOKENS (32),
# BENCH_OUT (raw output, default bench/out/compare, git-ignored).
#
# Each round runs both engines, alternating which goes first, with the same
# thread count and an f16 KV cache (llama.cpp's default; its other defaults
# stay: flash attention auto, weight repacking on, n_ubatch 512):
#   gemma-chat bench -p 512 -n 128 -r REPS -t THREADS --kv-type f16 --json
#   llama-bench      -p 512 -n 128 -r REPS -t THREADS -ctk f16 -ctv f16 -o jsonl
#   a chat: the prompt below, CHAT_TOKENS greedy tokens, context CTX, through
#   `gemma-chat run --raw` and `llama-completion -no-cnv`, under
#   /usr/bin/time -v for the peak RSS (VmHWM; mapped weights count once touched).
# The table gives the median over the rounds (and min-max). Benchmarks print
# figures; this script fails only when something is missing or a command
# fails, never on time.
#
# Run it on an idle machine. llama.cpp's default CPU build uses OpenMP, whose
# threads spin at the many barriers of a graph: when other processes hold the
# cores, its figures collapse (measured here with a load average of 8 on 2
# CPUs: tg 2.9 tok/s, against 14.9 with OMP_WAIT_POLICY=passive). The
# environment reaches llama.cpp, so `OMP_WAIT_POLICY=passive bash
# bench/compare_llamacpp.sh ...` shows it under load; the header says so.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "bench/compare_llamacpp.sh: $*" >&2; exit 1; }
. bench/lib.sh

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: bash bench/compare_llamacpp.sh LLAMA_BUILD_DIR [MODEL]"
LLAMA_DIR=$1
MODEL=${2:-models/gemma-3-270m-q4_k_m.gguf}
BIN=${G3_BIN:-build/gemma-chat}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-3}
N_PROMPT=${N_PROMPT:-512}
N_GEN=${N_GEN:-128}
CTX=${CTX:-4096}
CHAT_TOKENS=${CHAT_TOKENS:-32}
OUT=${BENCH_OUT:-bench/out/compare}

[ -d "$LLAMA_DIR" ] || die "$LLAMA_DIR: no such llama.cpp build folder"
LLAMA_BENCH=$(find_llama "$LLAMA_DIR" llama-bench) ||
  die "llama-bench not found in $LLAMA_DIR or $LLAMA_DIR/bin (cmake --build $LLAMA_DIR --target llama-bench llama-completion)"
LLAMA_COMPLETION=$(find_llama "$LLAMA_DIR" llama-completion) ||
  die "llama-completion not found in $LLAMA_DIR or $LLAMA_DIR/bin (cmake --build $LLAMA_DIR --target llama-completion)"
[ -x "$BIN" ] || die "$BIN not found; build gemma-chat first (bash scripts/build.sh) or set G3_BIN"
[ -f "$MODEL" ] || die "model $MODEL not found (bash scripts/get-model.sh fetches the default one)"
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install time): needed for the peak RSS"
mkdir -p "$OUT"

# The chat: one user question in Gemma 3's template (<bos> is added by both).
PROMPT=$'<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n'

# Peak RSS (kB) from /usr/bin/time -v's output file.
peak_kb() { sed -n 's/.*Maximum resident set size (kbytes): *\([0-9]*\).*/\1/p' "$1"; }

g3_bench() { # round
  local log="$OUT/g3-bench-$1.log" json
  json=$("$BIN" bench -m "$MODEL" -p "$N_PROMPT" -n "$N_GEN" -r "$REPS" -t "$THREADS" --kv-type f16 \
           -c "$CTX" --json 2>"$log") || { cat "$log" >&2; die "gemma-chat bench failed (round $1)"; }
  echo "$json" >"$OUT/g3-bench-$1.json"
  g3_pp[$1]=$(nested "$json" pp tok_s)
  g3_tg[$1]=$(nested "$json" tg tok_s)
  echo "  gemma-chat bench: pp$N_PROMPT ${g3_pp[$1]} tok/s, tg$N_GEN ${g3_tg[$1]} tok/s" >&2
}
llama_bench() { # round
  local log="$OUT/llama-bench-$1.log" jsonl
  jsonl=$("$LLAMA_BENCH" -m "$MODEL" -p "$N_PROMPT" -n "$N_GEN" -r "$REPS" -t "$THREADS" -ctk f16 -ctv f16 \
            -o jsonl 2>"$log") || { tail -20 "$log" >&2; die "llama-bench failed (round $1)"; }
  echo "$jsonl" >"$OUT/llama-bench-$1.jsonl"
  ll_pp[$1]=$(llama_ts "$jsonl" "$N_PROMPT" 0)
  ll_tg[$1]=$(llama_ts "$jsonl" 0 "$N_GEN")
  echo "  llama-bench:      pp$N_PROMPT ${ll_pp[$1]} tok/s, tg$N_GEN ${ll_tg[$1]} tok/s" >&2
}
g3_chat() { # round
  /usr/bin/time -v -o "$OUT/g3-chat-$1.time" "$BIN" run -m "$MODEL" --raw -p "$PROMPT" -n "$CHAT_TOKENS" \
    --temp 0 --repeat-penalty 1 -c "$CTX" -t "$THREADS" --kv-type f16 -v \
    >"$OUT/g3-chat-$1.txt" 2>"$OUT/g3-chat-$1.log" ||
    { tail -20 "$OUT/g3-chat-$1.log" >&2; die "gemma-chat run failed (round $1)"; }
  g3_rss[$1]=$(peak_kb "$OUT/g3-chat-$1.time")
  echo "  gemma-chat run:   peak RSS ${g3_rss[$1]} kB" >&2
}
llama_chat() { # round
  /usr/bin/time -v -o "$OUT/llama-chat-$1.time" "$LLAMA_COMPLETION" -m "$MODEL" -p "$PROMPT" -n "$CHAT_TOKENS" \
    --temp 0 -c "$CTX" -t "$THREADS" -ctk f16 -ctv f16 -no-cnv --no-display-prompt \
    >"$OUT/llama-chat-$1.txt" 2>"$OUT/llama-chat-$1.log" </dev/null ||
    { tail -20 "$OUT/llama-chat-$1.log" >&2; die "llama-completion failed (round $1)"; }
  ll_rss[$1]=$(peak_kb "$OUT/llama-chat-$1.time")
  echo "  llama-completion: peak RSS ${ll_rss[$1]} kB" >&2
}

declare -a g3_pp g3_tg g3_rss ll_pp ll_tg ll_rss
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== $MODEL: $ROUNDS rounds, $THREADS threads, load average $load_before" >&2
for ((r = 1; r <= ROUNDS; r++)); do
  echo "== round $r/$ROUNDS" >&2
  if ((r % 2)); then
    g3_bench "$r"; llama_bench "$r"; g3_chat "$r"; llama_chat "$r"
  else
    llama_bench "$r"; g3_bench "$r"; llama_chat "$r"; g3_chat "$r"
  fi
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

read -r gpp gpp_lo gpp_hi < <(stat3 "${g3_pp[@]}")
read -r gtg gtg_lo gtg_hi < <(stat3 "${g3_tg[@]}")
read -r grss _ _ < <(stat3 "${g3_rss[@]}")
read -r lpp lpp_lo lpp_hi < <(stat3 "${ll_pp[@]}")
read -r ltg ltg_lo ltg_hi < <(stat3 "${ll_tg[@]}")
read -r lrss _ _ < <(stat3 "${ll_rss[@]}")

# The greedy continuations (trailing newlines dropped: llama-completion adds one).
g3_text=$(cat "$OUT/g3-chat-1.txt")
ll_text=$(cat "$OUT/llama-chat-1.txt")
if [ "$g3_text" = "$ll_text" ]; then same="yes"; else same="NO"; fi
esc() { sed -z 's/\n/\\n/g' <<<"$1" | sed 's/\\n$//'; }

llama_version=$("$LLAMA_BENCH" --version 2>&1 | sed -n 1p)
g3_version=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n 1p)
kernels=$(sed -n 's/.*kernels \([a-z0-9]*\) on .*/\1/p' "$OUT/g3-bench-1.log" | sed -n 1p)
fsize=$(stat -c %s "$MODEL")

echo
echo "gemma-chat $g3_version (kernels ${kernels:-?}) vs llama.cpp $llama_version"
echo "CPU: $cpu, $(nproc) CPUs; $THREADS threads; f16 KV cache; median of $ROUNDS alternating rounds"
echo "(each round: mean of $REPS runs after a warm-up); load average $load_before before, $load_after after"
if [ -n "${OMP_WAIT_POLICY:-}" ]; then echo "llama.cpp ran with OMP_WAIT_POLICY=$OMP_WAIT_POLICY"; fi
echo
echo "| model file | size | gemma-chat pp$N_PROMPT | llama.cpp pp$N_PROMPT | ratio | gemma-chat tg$N_GEN | llama.cpp tg$N_GEN | ratio | gemma-chat chat RSS | llama.cpp chat RSS |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
awk -v f="$(basename "$MODEL")" -v sz="$fsize" -v gpp="$gpp" -v lpp="$lpp" -v gtg="$gtg" -v ltg="$ltg" \
    -v grss="$grss" -v lrss="$lrss" 'BEGIN {
  rpp = (lpp > 0) ? gpp / lpp : 0; rtg = (ltg > 0) ? gtg / ltg : 0
  printf "| %s | %.1f MiB | %.1f | %.1f | %.2fx | %.2f | %.2f | %.2fx | %.1f MiB | %.1f MiB |\n",
         f, sz / 1048576, gpp, lpp, rpp, gtg, ltg, rtg, grss / 1024, lrss / 1024 }'
echo
echo "Ratio = gemma-chat / llama.cpp. Per round (tok/s):"
echo
echo "| round | gemma-chat pp | llama.cpp pp | gemma-chat tg | llama.cpp tg | gemma-chat RSS kB | llama.cpp RSS kB |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for ((r = 1; r <= ROUNDS; r++)); do
  awk -v r="$r" -v a="${g3_pp[$r]}" -v b="${ll_pp[$r]}" -v c="${g3_tg[$r]}" -v d="${ll_tg[$r]}" \
      -v e="${g3_rss[$r]}" -v f="${ll_rss[$r]}" 'BEGIN {
    printf "| %d | %.1f | %.1f | %.2f | %.2f | %d | %d |\n", r, a, b, c, d, e, f }'
done
echo
awk -v a="$gpp_lo" -v b="$gpp_hi" -v c="$gtg_lo" -v d="$gtg_hi" -v e="$lpp_lo" -v f="$lpp_hi" -v g="$ltg_lo" \
    -v h="$ltg_hi" 'BEGIN {
  printf "Ranges: gemma-chat pp %.1f-%.1f, tg %.2f-%.2f; llama.cpp pp %.1f-%.1f, tg %.2f-%.2f tok/s.\n", a, b, c, d, e, f, g, h }'
echo "Chat: the prompt above, $CHAT_TOKENS greedy tokens, context $CTX for both (gemma-chat run --raw;"
echo "llama-completion -no-cnv; peak RSS = VmHWM from /usr/bin/time -v)."
echo "Same greedy continuation: $same"
echo "  gemma-chat: $(esc "$g3_text")"
echo "  llama.cpp:  $(esc "$ll_text")"
