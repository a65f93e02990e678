#!/usr/bin/env bash
# The test suite: installs dependencies, builds (Release, and an
# AddressSanitizer + UBSan build for the tests that take hostile input), and
# runs CTest in both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)"
# Parsers of untrusted files run again under the sanitizers.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DG3_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$(nproc)" --target test_gguf test_types test_eval_api
ctest --test-dir build-asan --output-on-failure -R 'test_gguf|test_types|test_eval_api'
