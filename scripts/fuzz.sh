#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang (ASan + UBSan) and runs
# each for SECONDS (default 60). Needs clang and libclang-rt (Debian
# clang-14 / libclang-rt-14-dev). Not part of the default test run.
#   bash scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
out=build-fuzz
mkdir -p "$out"
lib_sources=$(find src/base src/tensor src/model src/text src/chat src/media -name '*.c' | sort)
# the SIMD files need their instruction sets; G3_CPU=scalar below keeps the
# fuzzers on the reference kernels
flags="-std=c11 -D_GNU_SOURCE -g -O1 -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Isrc -Iinclude"
export G3_CPU=scalar G3_FUZZ_VOCAB=${G3_FUZZ_VOCAB:-../shared/golden/tokenizer/gemma3-vocab.gguf}
media_libs=$(pkg-config --cflags --libs libwebp libexif libavformat libavcodec libavutil libswscale)
# MuPDF (src/media/document_pdf.c): static archives; see CMakeLists.txt
media_libs="$media_libs $(pkg-config --static --libs mupdf) $(pkg-config --libs harfbuzz)"
# SQLite: src/chat/store_sqlite.c is among the library sources
media_libs="$media_libs $(pkg-config --libs sqlite3)"
for target in gguf tokenizer conversation image video document; do
  clang $flags -DG3_FUZZ_BUILD fuzz/fuzz_$target.c $lib_sources $media_libs -lcjson -lm -lpthread -o "$out/fuzz_$target"
  mkdir -p "$out/corpus_$target"
  if [ "$target" = gguf ]; then cp -n ../shared/golden/tiny-gemma3/models/mmproj-g3-s99-f32.gguf "$out/corpus_$target/" 2>/dev/null || true; fi
  if [ "$target" = document ]; then # mode byte 1 (a .pdf as is), then a one-page PDF without an xref table
    printf '\001%%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj 3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Resources<</Font<</F1 4 0 R>>>>/Contents 5 0 R>>endobj 4 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj 5 0 obj<</Length 36>>stream\nBT /F1 24 Tf 72 700 Td (Hello) Tj ET\nendstream endobj trailer<</Root 1 0 R>>\n' \
      > "$out/corpus_$target/seed-pdf"
  fi
  echo "== fuzz_$target for ${seconds}s"
  "$out/fuzz_$target" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=4096 "$out/corpus_$target" 2>&1 | tail -3
done
