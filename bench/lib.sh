# bench/lib.sh: helpers the comparison scripts share (sourced, not run).

# One field of the nested "pp" / "tg" objects of `gemma-chat bench --json`.
nested() { sed -n "s/.*\"$2\": *{[^}]*\"$3\": *\([0-9.]*\).*/\1/p" <<<"$1" | sed -n 1p; }
# One top-level number or string field of the same JSON.
field() { sed -n "s/.*\"$2\": *\"\{0,1\}\([^\",}]*\).*/\1/p" <<<"$1" | sed -n 1p; }
# avg_ts of the llama-bench jsonl line with the given n_prompt and n_gen.
llama_ts() {
  grep "\"n_prompt\": *$2," <<<"$1" | grep "\"n_gen\": *$3," |
    sed -n 's/.*"avg_ts": *\([0-9.e+-]*\).*/\1/p' | sed -n 1p
}
# Median, minimum and maximum of the arguments, on one line.
stat3() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
  m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
  printf "%s %s %s\n", m, v[1], v[NR] }'; }
# A llama.cpp binary in a CMake build folder (in it or in its bin/).
find_llama() { # DIR NAME
  local b
  for b in "$1/bin/$2" "$1/$2"; do
    if [ -x "$b" ]; then echo "$b"; return 0; fi
  done
  return 1
}
