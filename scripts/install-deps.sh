#!/usr/bin/env bash
# Installs the Debian 12 packages the build and tests need (run as root, or
# with sudo available). Every dependency is listed in README.md with why.
set -euo pipefail
packages=(build-essential cmake pkg-config libcmocka-dev libcjson-dev libstb-dev libwebp-dev libexif-dev
          libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libedit-dev libmicrohttpd-dev libsqlite3-dev
          # MuPDF (PDF text) comes as static archives only: the -dev packages of what it links too
          libmupdf-dev libmujs-dev libgumbo-dev libopenjp2-7-dev libjbig2dec0-dev libjpeg-dev libfreetype-dev
          libharfbuzz-dev zlib1g-dev
          python3 python3-pip python3-venv
          # the web page's browser tests drive Debian's chromium (playwright-core, tests/browser)
          chromium)
# node and npm build the web page (web/) and run the node tests; Debian's
# nodejs only when there is no node already (a newer one may be installed).
command -v node > /dev/null && command -v npm > /dev/null || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}"
