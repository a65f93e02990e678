#!/usr/bin/env bash
# bench/tokenizer.sh: tokenizer speed (a benchmark: it reports, it never fails on time).
#
# Builds a ~100 KB mixed document (license prose interleaved with this repo's
# C sources), then runs `gemma-chat tokenize --verbose` on the real 262144-token
# Gemma 3 vocabulary a few times and prints the vocabulary load time and the
# tokenize time of each run, then the best and the median.
# Targets: load well under 100 ms, 100 KB tokenize well under 100 ms.
#
# usage: bench/tokenizer.sh [GEMMA_CHAT_BINARY]   (default build/gemma-chat)
#   RUNS=N (default 5), VOCAB=path (default ../shared/golden/tokenizer/gemma3-vocab.gguf)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/gemma-chat}
vocab=${VOCAB:-$root/../shared/golden/tokenizer/gemma3-vocab.gguf}
runs=${RUNS:-5}
size=102400

[ -x "$bin" ] || { echo "no binary at $bin (build first: bash scripts/build.sh)" >&2; exit 2; }
[ -f "$vocab" ] || { echo "no vocabulary at $vocab" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
doc=$work/doc.txt

# Prose and code, alternating file by file, until there is enough.
mapfile -t prose < <(ls /usr/share/common-licenses/* 2>/dev/null | sort)
mapfile -t code < <(find "$root/src" -name '*.c' | sort)
: >"$doc"
i=0
while [ "$(stat -c %s "$doc")" -lt "$size" ]; do
    [ ${#prose[@]} -gt 0 ] && cat "${prose[i % ${#prose[@]}]}" >>"$doc"
    [ ${#code[@]} -gt 0 ] && cat "${code[i % ${#code[@]}]}" >>"$doc"
    i=$((i + 1))
    [ "$i" -gt 1000 ] && break
done
head -c "$size" "$doc" >"$work/cut" && mv "$work/cut" "$doc"
echo "document: $(stat -c %s "$doc") bytes, $(wc -l <"$doc") lines (licenses + src/*.c)"
echo "vocabulary: $vocab"

loads=() toks=()
for r in $(seq 1 "$runs"); do
    line=$("$bin" tokenize -m "$vocab" --file "$doc" --no-bos --verbose 2>&1 >"$work/ids.json" | grep 'loaded in')
    load=$(sed -E 's/.*loaded in ([0-9.]+) ms.*/\1/' <<<"$line")
    tok=$(sed -E 's/.* tokens in ([0-9.]+) ms.*/\1/' <<<"$line")
    n=$(sed -E 's/.*bytes -> ([0-9]+) tokens.*/\1/' <<<"$line")
    printf 'run %d: load %8.2f ms   tokenize %8.2f ms   (%s tokens)\n' "$r" "$load" "$tok" "$n"
    loads+=("$load") toks+=("$tok")
done

stats() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {printf "best %.2f ms, median %.2f ms", v[1], v[int((NR+1)/2)]}'; }
echo "vocabulary load: $(stats "${loads[@]}")   (target: well under 100 ms)"
echo "100 KB tokenize: $(stats "${toks[@]}")   (target: well under 100 ms)"
