#!/usr/bin/env bash
# The web page's browser tests (page.test.mjs), for CTest. Needs node,
# `npm ci --prefix tests/browser` (playwright-core) and Debian's chromium;
# without one of them it exits 77 (CTest: skipped), except under CI, where
# all are required.
set -euo pipefail
cd "$(dirname "$0")"
chromium_bin="${G3_CHROMIUM:-/usr/bin/chromium}"
missing=""
command -v node > /dev/null || missing="node is not installed"
[ -n "$missing" ] || [ -d node_modules/playwright-core ] || missing="node_modules is missing: run 'npm ci --prefix tests/browser'"
[ -n "$missing" ] || [ -x "$chromium_bin" ] || missing="no chromium at $chromium_bin (apt-get install chromium)"
if [ -n "$missing" ]; then
  if [ "${CI:-}" = "true" ]; then echo "FAIL: $missing (required under CI)"; exit 1; fi
  echo "SKIP: $missing"
  exit 77
fi
export G3_CHROMIUM="$chromium_bin"
exec node --test --test-reporter=spec sse.test.mjs page.test.mjs
