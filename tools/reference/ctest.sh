#!/usr/bin/env bash
# CTest entry point for the real-weights tests: skips (exit 77) with the
# command to run when the model or the reference venv is missing, else runs
# real_model_test.py STEP ... in the venv.
# Usage: ctest.sh STEP --binary GEMMA_CHAT --out-dir DIR [more real_model_test.py flags]
#        ctest.sh selfcheck [GOLDEN_DIR]   (the reference against the tiny golden models)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
model="${G3_REAL_MODEL:-$root/models/gemma-3-270m-q4_k_m.gguf}"
py="$root/build/reference-venv/bin/python"
if [ "${1:-}" != selfcheck ] && [ ! -f "$model" ]; then
    echo "SKIP: real model $model not found: run 'bash scripts/get-model.sh' (or set G3_REAL_MODEL to a gemma3 GGUF)"
    exit 77
fi
if [ ! -x "$py" ] || ! "$py" -c 'import gguf, numpy' 2>/dev/null; then
    echo "SKIP: reference venv $root/build/reference-venv missing or incomplete: run 'bash tools/reference/setup.sh'"
    exit 77
fi
if [ "${1:-}" = selfcheck ]; then
    shift
    exec "$py" "$here/selfcheck_golden.py" "$@"
fi
exec "$py" "$here/real_model_test.py" "$@" --model "$model"
