#!/usr/bin/env bash
# What the browser tests need: Debian's Chromium (a browser download by a test tool does not work on these
# machines), and in the venv Playwright's Python package (its driver only; it drives the system Chromium),
# ComfyUI's own frontend at the version ComfyUI 0.3.75 pins (0.33.0's host venv has its own, from its
# requirements), and the newest frontend tested, in a folder of its own. scripts/setup_venv.sh runs the venv
# part (--python-only) when it builds the venv; `make test` runs this for Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
V="${VENV:-.venv}"
if [ "${1:-}" != "--python-only" ] && ! command -v chromium >/dev/null 2>&1; then
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
NEWEST="$(sed -n 's/^NEWEST_FRONTEND = "\(.*\)"/\1/p' scripts/browser_support.py)"
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
