#!/usr/bin/env bash
# The test suite: installs dependencies, builds (Release, and an
# AddressSanitizer + UBSan build for the tests that take hostile input), and
# runs CTest in both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The web page's pinned packages (web/package-lock.json), before the build
# that bundles the page (the build would run the same npm ci itself; here a
# failure says what is missing).
if ! npm ci --prefix web --no-audit --no-fund >/dev/null; then
  if [ "${CI:-}" = "true" ]; then echo "test.sh: CI needs web/'s npm packages to build the page" >&2; exit 1; fi
  echo "test.sh: npm ci failed in web/: the build will say whether it can make the page" >&2
fi
# The CUDA toolkit (nvcc and the static runtime, from the Python package
# index into .cuda/): the build then compiles the CUDA backend (src/cuda/),
# whose tests skip without a GPU. CI must compile it; elsewhere, without
# the toolkit, the build is CPU-only.
if ! bash scripts/get-cuda.sh >/dev/null; then
  if [ "${CI:-}" = "true" ]; then echo "test.sh: CI needs the CUDA toolkit (scripts/get-cuda.sh)" >&2; exit 1; fi
  echo "test.sh: no CUDA toolkit: the CUDA backend is not compiled" >&2
fi
bash scripts/build.sh
# The real model (Gemma 3 270M) and the Python reference's private venv: the
# tests on real weights skip without them. CI must have them; a developer
# offline still gets the rest of the suite.
if ! { bash scripts/get-model.sh && { [ ! -f tools/reference/setup.sh ] || bash tools/reference/setup.sh; }; }; then
  if [ "${CI:-}" = "true" ]; then echo "test.sh: CI needs the real model and the reference (see above)" >&2; exit 1; fi
  echo "test.sh: without the real model or the reference venv the real-weight tests are skipped" >&2
fi
# The official openai npm client, pinned by tests/node/package-lock.json,
# for the serve tests (they skip without it, except under CI).
if ! npm ci --prefix tests/node --no-audit --no-fund >/dev/null; then
  if [ "${CI:-}" = "true" ]; then echo "test.sh: CI needs tests/node's npm packages" >&2; exit 1; fi
  echo "test.sh: npm ci failed: the openai client tests of serve are skipped" >&2
fi
# playwright-core for the web page's browser tests (tests/browser: skipped
# without it or without chromium, except under CI).
if ! npm ci --prefix tests/browser --no-audit --no-fund >/dev/null; then
  if [ "${CI:-}" = "true" ]; then echo "test.sh: CI needs tests/browser's npm packages" >&2; exit 1; fi
  echo "test.sh: npm ci failed: the web page's browser tests are skipped" >&2
fi
ctest --test-dir build --output-on-failure -j"$(nproc)"
# Everything that parses untrusted input (model files, text, saved
# conversations, images, video, vision projectors) runs again under the
# sanitizers, with the SIMD kernels (masked loads and tails at buffer ends).
asan_tests=(test_gguf test_types test_eval_api test_model_load test_tokenizer test_conversation test_media test_vision
            test_kernels test_weight_types test_base64 test_engine test_server_api test_store test_document
            test_chat_store test_load test_crash_safety test_native_api)
# The fuzz corpora (fuzz/corpus/TARGET, the inputs every fuzzer run found
# worth keeping and every crash it found) replay under the sanitizers too.
fuzz_replays=()
for f in fuzz/fuzz_*.c; do t=${f#fuzz/fuzz_}; fuzz_replays+=("fuzz_replay_${t%.c}"); done
# (without the CUDA backend: its runtime is not built for the sanitizers)
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DG3_SANITIZE=ON -DG3_CUDA=OFF >/dev/null
cmake --build build-asan -j"$(nproc)" --target gemma-chat "${asan_tests[@]}" "${fuzz_replays[@]}"
# test_crash_safety kills the (ASan, ~10x slower) chat and serve 3 times here
# instead of 20 each (the Release run above does all 20): under 2 minutes.
G3_CRASH_KILLS=3 ctest --test-dir build-asan --output-on-failure -R "^($(IFS='|'; echo "${asan_tests[*]}|${fuzz_replays[*]}"))\$"
