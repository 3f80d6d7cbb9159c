#!/usr/bin/env bash
# What the browser tests need on top of scripts/setup_venv.sh: Debian's Chromium (a browser download by a
# test tool does not work on these machines), Playwright's Python package (its driver only; it drives the
# system Chromium), ComfyUI's own frontend at the version ComfyUI 0.3.75 pins (0.33.0's host venv has its own,
# from its requirements), and the newest frontend tested, in a folder of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
V="${VENV:-.venv}"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    echo "installing Debian's chromium (one time)..."
    apt-get update -qq
    # (and a small CJK font, so Chinese text in screenshots is legible)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
  else
    echo "chromium is missing and this user cannot install it: run as root, or 'apt-get install chromium'" >&2
    exit 1
  fi
fi
NEWEST="$("$V/bin/python" -c 'import sys; sys.path.insert(0, "scripts"); import browser_support as b; print(b.NEWEST_FRONTEND)')"
OLDEST_PIN="$("$V/bin/python" scripts/hosts.py frontend 0.3.75)"
STAMP="$V/.wan-browser-setup-v3-$NEWEST-$OLDEST_PIN"
if [ ! -f "$STAMP" ]; then
  "$V/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt \
    playwright==1.65.2 "comfyui-frontend-package==$OLDEST_PIN"
  rm -rf "$V/frontends/$NEWEST"
  "$V/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --target "$V/frontends/$NEWEST" comfyui-frontend-package==$NEWEST
  touch "$STAMP"
fi
