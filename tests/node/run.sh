#!/usr/bin/env bash
# The openai-client tests of `gemma-chat serve` (serve.test.mjs), for CTest.
# Needs node and `npm ci --prefix tests/node`; without them it exits 77
# (CTest: skipped), except under CI, where they are required.
set -euo pipefail
cd "$(dirname "$0")"
missing=""
command -v node > /dev/null || missing="node is not installed"
[ -n "$missing" ] || [ -d node_modules/openai ] || missing="node_modules is missing: run 'npm ci --prefix tests/node'"
if [ -n "$missing" ]; then
  if [ -n "${CI:-}" ]; then echo "FAIL: $missing (required under CI)"; exit 1; fi
  echo "SKIP: $missing"
  exit 77
fi
exec node --test serve.test.mjs
