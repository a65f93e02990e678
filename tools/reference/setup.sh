#!/usr/bin/env bash
# Creates the reference's private Python venv at build/reference-venv (repo
# root relative; build*/ is gitignored) and installs requirements.txt there.
# Idempotent: when the venv already holds exactly the pinned versions it does
# nothing (a second or so). Usage: bash tools/reference/setup.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/build/reference-venv"
req="$here/requirements.txt"
stamp="$venv/.requirements.installed"
py="${PYTHON:-python3}"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then
    echo "reference venv ready: $venv"
    exit 0
fi

command -v "$py" >/dev/null || { echo "setup.sh: $py not found (need Python >= 3.9)" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ]; then
    mkdir -p "$(dirname "$venv")"
    "$py" -m venv "$venv" || {
        echo "setup.sh: '$py -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
        exit 1
    }
fi
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"; then
    echo "setup.sh: pip could not install $req into $venv." >&2
    echo "  Is the package index reachable (network, proxy, PIP_INDEX_URL)? The real-model" >&2
    echo "  tests are skipped until this succeeds; rerun: bash tools/reference/setup.sh" >&2
    exit 1
fi
"$venv/bin/python" -c 'import gguf, numpy' || { echo "setup.sh: gguf/numpy do not import in $venv" >&2; exit 1; }
cp "$req" "$stamp"
echo "reference venv ready: $venv ($("$venv/bin/python" -c 'import numpy, importlib.metadata as m; print("numpy", numpy.__version__, "gguf", m.version("gguf"))'))"
