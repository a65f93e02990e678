#!/usr/bin/env bash
# bench/27b_memory.sh: resident memory of Gemma 3 27B (int4) with a 32K
# context, against `gemma-chat plan` and the analysis table's 32.8 GB.
# A benchmark: it reports figures, it never fails on time or memory.
#
# 1. Writes a random-weight 27B-shape Q4_0 model with the real vocabulary
#    (make-test-model streams it: ~15.6 GB on disk, little RAM), unless it
#    is already there.
# 2. Asks `plan -m` for the prediction at --ctx CTX: KV f32 (what the engine
#    allocates today), bf16 and q8_0; and for 131072 positions with a q8_0
#    cache (the issue's second target).
# 3. Runs `gemma-chat run -c CTX` on a prompt of about PREFIX tokens,
#    generating GEN tokens, under /usr/bin/time: peak resident memory
#    (VmHWM), prefill and decode tok/s.
# 4. Projects a full context: a prefix of PREFIX positions touches the ring
#    of every local layer (once PREFIX >= window + n_ubatch) but only PREFIX
#    slots of each global layer (calloc'd pages are resident once written),
#    so projected = peak + plan(CTX).kv - plan(PREFIX).kv.
# 5. Appends a section to bench/RESULTS.md (APPEND=0: print only).
# Targets (issue [5]): 27B int4 + 32K context under 20 GB resident; 27B int4
# + 128K with a q8_0 KV cache under 24 GB (plan only until the engine
# allocates q8_0 KV).
#
# Time: the scalar engine needs tens of seconds per 27B token; the default
# prefix (2048) takes many hours there. PREFIX=1600 is the smallest that
# fills the local rings (1024 + 512); GEN=0 skips decoding.
#
# usage: bench/27b_memory.sh [GEMMA_CHAT_BINARY]   (default build/gemma-chat)
#   MODEL=path (default bench/out/27b-q4_0.gguf; git ignores bench/out and *.gguf)  SHAPE=27b  TYPE=q4_0
#   CTX=32768  PREFIX=2048  GEN=8  THREADS=(all)  APPEND=1  KEEP=1 (keep the model)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/gemma-chat}
shape=${SHAPE:-27b}
type=${TYPE:-q4_0}
model=${MODEL:-$root/bench/out/$shape-$type.gguf}
vocab=${VOCAB:-$root/../shared/golden/tokenizer/gemma3-vocab.gguf}
ctx=${CTX:-32768}
prefix=${PREFIX:-2048}
gen=${GEN:-8}
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

# ---- 2. the plan ------------------------------------------------------------
plan_field() { # CTX KV_TYPE FIELD
    "$bin" plan -m "$model" --ctx "$1" --kv-type "$2" --json 2>/dev/null |
        python3 -c "import json,sys; print(int(json.load(sys.stdin)[0]['$3']))"
}
gbs() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e9 }'; }
plan_f32=$(plan_field "$ctx" f32 total_bytes)
plan_bf16=$(plan_field "$ctx" bf16 total_bytes)
plan_q8=$(plan_field "$ctx" q8_0 total_bytes)
plan_128k_q8=$(plan_field 131072 q8_0 total_bytes)
weights=$(plan_field "$ctx" f32 weights_bytes)
kv_ctx=$(plan_field "$ctx" f32 kv_window_bytes)
kv_full=$(plan_field "$ctx" f32 kv_full_bytes)
kv_prefix=$(plan_field "$prefix" f32 kv_window_bytes)
echo "plan at $ctx positions: total $(gbs "$plan_f32") GB with the f32 KV the engine allocates" \
     "(weights $(gbs "$weights"), KV $(gbs "$kv_ctx"), full-attention KV would be $(gbs "$kv_full"));" \
     "bf16 KV $(gbs "$plan_bf16"), q8_0 KV $(gbs "$plan_q8"); 131072 positions with q8_0 KV $(gbs "$plan_128k_q8")"

# ---- 3. the run ---------------------------------------------------------------
# Prose (licenses), about 4.7 bytes per token with the real vocabulary (the
# run reports the exact count, which the projection uses).
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
echo "running: run -c $ctx, prompt of $(stat -c %s "$prompt") bytes, $n_predict generated tokens..."
start=$(date +%s)
set +e
/usr/bin/time -v -o "$work/time.txt" "$bin" run -m "$model" -c "$ctx" -f "$prompt" -n "$n_predict" \
    --temp 0 --verbose "${threads[@]}" >"$work/out.txt" 2>"$work/err.txt"
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
[ -n "$n_prefill" ] && [ "$n_prefill" != "$prefix" ] && kv_prefix=$(plan_field "$n_prefill" f32 kv_window_bytes)
projected=$((peak + kv_ctx - kv_prefix))

# ---- 4. report ---------------------------------------------------------------------
report=$work/report.md
{
    echo
    echo "## 27B memory ($shape $type, context $ctx) - $(date -u +%Y-%m-%d)"
    echo
    echo "bench/27b_memory.sh on $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GB", $2 * 1024 / 1e9}' /proc/meminfo) RAM;" \
         "$(basename "$model") ($(gbs "$(stat -c %s "$model")") GB); run status $rc in ${elapsed} s."
    echo
    echo "| figure | GB |"
    echo "|---|---|"
    echo "| analysis table: 27B int4 + KV at 32K (full attention) | 32.8 |"
    echo "| plan: weights | $(gbs "$weights") |"
    echo "| plan: KV at $ctx, f32 (allocated today) / full attention | $(gbs "$kv_ctx") / $(gbs "$kv_full") |"
    echo "| plan: total, f32 KV (what the engine allocates) | $(gbs "$plan_f32") |"
    echo "| plan: total, bf16 KV / q8_0 KV | $(gbs "$plan_bf16") / $(gbs "$plan_q8") |"
    echo "| plan: total at 131072 with q8_0 KV (target < 24) | $(gbs "$plan_128k_q8") |"
    echo "| measured peak resident, prefix of ${n_prefill:-?} tokens | $(gbs "$peak") |"
    echo "| projected resident for all $ctx positions (target < 20) | $(gbs "$projected") |"
    echo
    echo "prefill ${prefill_tps:-?} tok/s, decode ${decode_tps:-?} tok/s (${n_predict} tokens)."
    echo "Projected = peak + plan KV at $ctx - plan KV at the prefix (global layers' unwritten slots)."
    echo "The peak also holds what the plan leaves out: the tokenizer's tables (tens of MB for the"
    echo "262144-token vocabulary), the mapped GGUF metadata and the logits buffer."
} >"$report"
cat "$report"
if [ "$append" = 1 ]; then
    cat "$report" >>"$results"
    echo "appended to $results"
fi
