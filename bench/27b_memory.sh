#!/usr/bin/env bash
# bench/27b_memory.sh: resident memory and decode speed of Gemma 3 27B
# (int4) with a 32K context, and with a 128K context and a q8_0 KV cache,
# against `gemma-chat plan` and the analysis table's 32.8 GB.
# A benchmark: it reports figures, it never fails on time or memory.
#
# 1. Writes a random-weight 27B-shape Q4_0 model with the real vocabulary
#    (make-test-model streams it: ~15.6 GB on disk, little RAM), unless it
#    is already there.
# 2. For each configuration (CTX with KV_TYPE; CTX_LONG with KV_TYPE_LONG)
#    asks `plan -m` for the prediction, then runs `gemma-chat run -c N
#    --kv-type T` on a prompt of about PREFIX tokens, generating GEN tokens,
#    under /usr/bin/time: peak resident memory (VmHWM), prefill and decode
#    tok/s. The KV cache is written in full when the context is created
#    (every page touched), so the peak holds the whole context's cache,
#    not just the prefix's.
# 3. Appends a section to bench/RESULTS.md (APPEND=0: print only).
# Targets (issue [5]): 27B int4 + 32K context under 20 GB resident; 27B int4
# + 128K with a q8_0 KV cache under 24 GB.
#
# Time: prefill of the 27B shape runs at a few tokens per second on 2 cores;
# the default prefix (1600, the smallest that fills the local rings of
# 1024 + 512) takes several minutes per configuration.
#
# usage: bench/27b_memory.sh [GEMMA_CHAT_BINARY]   (default build/gemma-chat)
#   MODEL=path (default bench/out/27b-q4_0.gguf; git ignores bench/out and *.gguf)  SHAPE=27b  TYPE=q4_0
#   CTX=32768 KV_TYPE=f16  CTX_LONG=131072 KV_TYPE_LONG=q8_0 (CTX_LONG=0 skips it)
#   PREFIX=1600  GEN=16  THREADS=(all)  APPEND=1  KEEP=1 (keep the model)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/gemma-chat}
shape=${SHAPE:-27b}
type=${TYPE:-q4_0}
model=${MODEL:-$root/bench/out/$shape-$type.gguf}
vocab=${VOCAB:-$root/../shared/golden/tokenizer/gemma3-vocab.gguf}
ctx=${CTX:-32768}
kv_type=${KV_TYPE:-f16}
ctx_long=${CTX_LONG:-131072}
kv_type_long=${KV_TYPE_LONG:-q8_0}
prefix=${PREFIX:-1600}
gen=${GEN:-16}
append=${APPEND:-1}
keep=${KEEP:-1}
results=$root/bench/RESULTS.md

[ -x "$bin" ] || { echo "no binary at $bin (build first: bash scripts/build.sh)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "needs GNU time (/usr/bin/time: apt-get install time)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "needs python3 (JSON of plan --json)" >&2; exit 2; }

work=$(mktemp -d)
cleanup() { rm -rf "$work"; [ "$keep" = 1 ] || rm -f "$model"; }
trap cleanup EXIT

# ---- 1. the model ----------------------------------------------------------
if [ ! -f "$model" ]; then
    mkdir -p "$(dirname "$model")"
    need=$("$bin" plan --model "$shape" --weights "$type" --kv-type bf16 --json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["weights_bytes"])' 2>/dev/null || echo 0)
    avail=$(($(df --output=avail -k "$(dirname "$model")" | tail -1) * 1024))
    if [ "$need" -gt 0 ] && [ "$avail" -lt "$need" ]; then
        echo "not enough disk for $model: about $((need / 1000000000)) GB needed, $((avail / 1000000000)) GB free" >&2
        exit 2
    fi
    vocab_arg=()
    [ -f "$vocab" ] && vocab_arg=(--vocab "$vocab")
    [ -t 2 ] || vocab_arg+=(--quiet) # the progress bar is for terminals, not logs
    echo "writing $model ($shape, $type; streamed)..."
    start=$(date +%s)
    "$bin" make-test-model --shape "$shape" --type "$type" --seed 1 "${vocab_arg[@]}" -o "$model"
    echo "written in $(($(date +%s) - start)) s, $(($(stat -c %s "$model") / 1000000)) MB"
fi

# ---- 2. plans and runs -------------------------------------------------------
plan_field() { # CTX KV_TYPE FIELD
    "$bin" plan -m "$model" --ctx "$1" --kv-type "$2" --json 2>/dev/null |
        python3 -c "import json,sys; print(int(json.load(sys.stdin)[0]['$3']))"
}
gbs() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e9 }'; }

# Prose (licenses), about 4.7 bytes per token with the real vocabulary.
prompt=$work/prompt.txt
: >"$prompt"
mapfile -t prose < <(ls /usr/share/common-licenses/* 2>/dev/null | sort)
[ ${#prose[@]} -gt 0 ] || prose=("$root/README.md")
i=0
bytes=$((prefix * 47 / 10))
while [ "$(stat -c %s "$prompt")" -lt "$bytes" ]; do
    cat "${prose[i % ${#prose[@]}]}" >>"$prompt"
    i=$((i + 1))
done
head -c "$bytes" "$prompt" >"$work/cut" && mv "$work/cut" "$prompt"

threads=()
[ -n "${THREADS:-}" ] && threads=(-t "$THREADS")
n_predict=$((gen > 0 ? gen : 1))
rows=$work/rows.md
: >"$rows"

measure() { # CTX KV_TYPE TARGET_GB
    local c=$1 kv=$2 target=$3
    local weights kv_win kv_full scratch total
    weights=$(plan_field "$c" "$kv" weights_bytes)
    kv_win=$(plan_field "$c" "$kv" kv_window_bytes)
    kv_full=$(plan_field "$c" "$kv" kv_full_bytes)
    scratch=$(plan_field "$c" "$kv" scratch_bytes)
    total=$(plan_field "$c" "$kv" total_bytes)
    echo "plan at $c positions, $kv KV: total $(gbs "$total") GB (weights $(gbs "$weights"), KV $(gbs "$kv_win")," \
         "full-attention KV would be $(gbs "$kv_full"), scratch $(gbs "$scratch"))"
    echo "running: run -c $c --kv-type $kv, prompt of $(stat -c %s "$prompt") bytes, $n_predict generated tokens..."
    local start rc elapsed peak_kb peak stats n_prefill prefill_tps decode_tps
    start=$(date +%s)
    set +e
    /usr/bin/time -v -o "$work/time.txt" "$bin" run -m "$model" -c "$c" --kv-type "$kv" -f "$prompt" \
        -n "$n_predict" --temp 0 --verbose "${threads[@]}" >"$work/out.txt" 2>"$work/err.txt"
    rc=$?
    set -e
    elapsed=$(($(date +%s) - start))
    [ "$rc" = 0 ] || { echo "run failed (status $rc):" >&2; tail -5 "$work/err.txt" >&2; }
    peak_kb=$(sed -nE 's/.*Maximum resident set size \(kbytes\): ([0-9]+).*/\1/p' "$work/time.txt")
    peak=$((${peak_kb:-0} * 1024))
    stats=$(grep -E '^prefill' "$work/err.txt" | tail -1 || true)
    n_prefill=$(sed -nE 's/^prefill ([0-9]+) tokens.*/\1/p' <<<"$stats")
    prefill_tps=$(sed -nE 's/^prefill [0-9]+ tokens[^,]*, ([0-9.]+) tok\/s.*/\1/p' <<<"$stats")
    decode_tps=$(sed -nE 's/.*generated [0-9]+ tokens, ([0-9.]+) tok\/s.*/\1/p' <<<"$stats")
    local verdict="NOT met"
    awk -v p="$peak" -v t="$target" 'BEGIN { exit !(p > 0 && p / 1e9 < t) }' && verdict=met
    echo "| $c | $kv | $(gbs "$weights") | $(gbs "$kv_win") ($(gbs "$kv_full")) | $(gbs "$scratch") |" \
         "$(gbs "$total") | $(gbs "$peak") | < $target: $verdict | ${n_prefill:-?} at ${prefill_tps:-?} |" \
         "${decode_tps:-?} | $rc, ${elapsed} s |" >>"$rows"
    tail -1 "$rows"
}

measure "$ctx" "$kv_type" 20
[ "$ctx_long" -gt 0 ] && measure "$ctx_long" "$kv_type_long" 24

# ---- 3. report ---------------------------------------------------------------------
report=$work/report.md
{
    echo
    echo "## 27B memory ($shape $type) - $(date -u +%Y-%m-%d)"
    echo
    echo "bench/27b_memory.sh on $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GB", $2 * 1024 / 1e9}' /proc/meminfo) RAM;" \
         "$(basename "$model") ($(gbs "$(stat -c %s "$model")") GB), random weights, real vocabulary."
    echo "The analysis table's figure for 27B int4 + KV at 32K (full attention, bf16) is 32.8 GB."
    echo
    echo "| context | KV type | plan: weights GB | plan: KV GB (full attention) | plan: scratch GB | plan: total GB | peak resident GB | target GB | prefill tokens at tok/s | decode tok/s | status, time |"
    echo "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---|"
    cat "$rows"
    echo
    echo "Peak resident = VmHWM of the whole run (mapped weights that were read + the KV cache, written"
    echo "in full at context creation + scratch + the tokenizer's tables and logits). Decode tok/s is"
    echo "over $n_predict tokens right after the prefix, so it reads the weights and a short KV history."
} >"$report"
cat "$report"
if [ "$append" = 1 ]; then
    cat "$report" >>"$results"
    echo "appended to $results"
fi
