#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (ASan + UBSan) and runs one
# or all of them for a bounded time. Needs clang and its runtime (Debian 12:
# clang-14 with libclang-rt-14-dev; `clang` or clang-14..19 is found). Not part
# of the default test run: CI replays the committed corpora instead
# (fuzz_replay_TARGET in CTest, built by the normal compiler).
#   bash scripts/fuzz.sh TARGET|all [SECONDS]      (default 60 seconds each)
#   bash scripts/fuzz.sh list                      (the targets)
# Targets: gguf tokenizer conversation image video document openai_request
#          data_url store (and any fuzz/fuzz_NAME.c added later).
# The inputs a run finds are kept in build-fuzz/corpus/TARGET (the committed
# seeds in fuzz/corpus/TARGET are read, never written); a crash leaves its
# input in build-fuzz/artifacts/TARGET/ and the script exits 1. Copy a crash
# input into fuzz/corpus/TARGET/ with the fix, so the replay keeps it fixed.
# An hour of one target: bash scripts/fuzz.sh store 3600
set -euo pipefail
cd "$(dirname "$0")/.."
targets_all=$(ls fuzz/fuzz_*.c | sed 's|fuzz/fuzz_||; s|\.c$||' | tr '\n' ' ')
what=${1:-}
seconds=${2:-60}
if [ -z "$what" ]; then echo "usage: $0 TARGET|all|list [SECONDS]; targets: $targets_all" >&2; exit 2; fi
if [ "$what" = list ]; then echo "$targets_all"; exit 0; fi
if [ "$what" = all ]; then targets=$targets_all; else
  [ -f "fuzz/fuzz_$what.c" ] || { echo "fuzz.sh: no target '$what' (have: $targets_all)" >&2; exit 2; }
  targets=$what
fi
cc=""
for c in clang clang-19 clang-18 clang-17 clang-16 clang-15 clang-14; do
  if command -v "$c" >/dev/null; then cc=$c; break; fi
done
[ -n "$cc" ] || { echo "fuzz.sh: needs clang (Debian: apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 1; }
out=build-fuzz
mkdir -p "$out/obj" "$out/tmp"
# Scratch files of the video and store targets: in memory when /dev/shm is
# there (the store fsyncs every commit: on a disk that, not the parser, is
# what a run would measure)
scratch="$PWD/$out/tmp"
if [ -d /dev/shm ] && [ -w /dev/shm ]; then scratch=/dev/shm/g3-fuzz-$$; mkdir -p "$scratch"; trap 'rm -rf "$scratch"' EXIT; fi
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cflags="-std=c11 -D_GNU_SOURCE -g -O1 $san -Isrc -Iinclude $(pkg-config --cflags mupdf libwebp libexif libavformat) -I/usr/include/stb"
libs="$(pkg-config --libs libwebp libexif libavformat libavcodec libavutil libswscale libmicrohttpd sqlite3)"
# MuPDF: static archives only in Debian 12; see CMakeLists.txt
libs="$libs $(pkg-config --static --libs mupdf) $(pkg-config --libs harfbuzz) -lcjson -lm -lpthread"

# The library once, as instrumented objects (fuzzer-no-link: coverage
# without libFuzzer's main), rebuilt when a source or header is newer.
lib="$out/libg3fuzz.a"
if [ ! -f "$lib" ] || [ -n "$(find src include -newer "$lib" -name '*.[ch]' | head -1)" ]; then
  echo "== building the library with $cc (ASan + UBSan + coverage)"
  rm -f "$lib" "$out"/obj/*.o
  find src -name '*.c' ! -path 'src/app/*' | sort | while read -r f; do
    extra=""
    case "$f" in
      */kernels_avx2.c) extra="-mavx2 -mfma -mf16c" ;;
      */kernels_avx512.c) extra="-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni" ;;
    esac
    echo "$cc $cflags -fsanitize=fuzzer-no-link $extra -c $f -o $out/obj/$(echo "$f" | tr / _).o"
  done | xargs -P"$(nproc)" -I{} sh -c '{}'
  ar rcs "$lib" "$out"/obj/*.o
fi

status=0
for t in $targets; do
  "$cc" $cflags -fsanitize=fuzzer "fuzz/fuzz_$t.c" "$lib" $libs -o "$out/fuzz_$t"
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t" "fuzz/corpus/$t"
  echo "== fuzz_$t for ${seconds}s"
  start=$(date +%s)
  rc=0
  # TMPDIR: the video and store targets write their scratch files there
  TMPDIR="$scratch" G3_FUZZ_VOCAB=${G3_FUZZ_VOCAB:-$PWD/../shared/golden/tokenizer/gemma3-vocab.gguf} \
    bash -c 'TIMEFORMAT="cpu %U user + %S sys s"; time "$@"' _ \
    "$out/fuzz_$t" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=4096 -timeout=30 \
      -artifact_prefix="$out/artifacts/$t/" -print_final_stats=1 "$out/corpus/$t" "fuzz/corpus/$t" \
      >"$out/fuzz_$t.log" 2>&1 || rc=$?
  grep -E '^(#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|stat::peak_rss_mb|cpu )' "$out/fuzz_$t.log" | tail -4
  echo "   wall $(( $(date +%s) - start ))s, corpus $(ls "$out/corpus/$t" | wc -l) inputs, log $out/fuzz_$t.log"
  if [ "$rc" -ne 0 ]; then
    echo "!! fuzz_$t found a problem (exit $rc): $(ls "$out/artifacts/$t" | tail -3 | tr '\n' ' ')"
    grep -m3 -E 'ERROR|SUMMARY|runtime error' "$out/fuzz_$t.log" || true
    status=1
  fi
done
exit $status
