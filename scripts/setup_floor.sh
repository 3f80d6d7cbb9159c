#!/usr/bin/env bash
# The lowest versions the pack declares of the HTTP stack (requirements.txt: requests>=2.28, urllib3>=1.26)
# and of its file lock (filelock>=3.30), installed beside the venv in .venv/floor so tests/api/test_floor.py
# can run the client and the locks on them (PYTHONPATH first). Only these: the client's transport and stream
# reading depend on the first two, every lock shared by processes on the third.
set -euo pipefail
cd "$(dirname "$0")/.."
V="${VENV:-.venv}"
FLOOR=(requests==2.28.0 urllib3==1.26.0 filelock==3.30.0)
STAMP="$V/floor/.stamp"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "${FLOOR[*]}" ]; then
  exit 0
fi
rm -rf "$V/floor"
"$V/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --target "$V/floor" "${FLOOR[@]}"
echo "${FLOOR[*]}" > "$STAMP"
