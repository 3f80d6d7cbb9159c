#!/usr/bin/env bash
# The lowest versions of the HTTP stack the pack declares (requirements.txt: requests>=2.28, urllib3>=1.26),
# installed beside the venv in .venv/floor so tests/api/test_floor.py can run the client on them (PYTHONPATH
# first). Only these two: they are what the client's transport and stream reading depend on.
set -euo pipefail
cd "$(dirname "$0")/.."
V="${VENV:-.venv}"
FLOOR=(requests==2.28.0 urllib3==1.26.0)
STAMP="$V/floor/.stamp"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "${FLOOR[*]}" ]; then
  exit 0
fi
rm -rf "$V/floor"
"$V/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --target "$V/floor" "${FLOOR[@]}"
echo "${FLOOR[*]}" > "$STAMP"
