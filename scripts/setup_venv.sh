#!/usr/bin/env bash
# Creates .venv with everything `make test` and `make demo` need in the test process: the pack's runtime
# dependencies and the test tools, plus what ComfyUI 0.3.75 imports (this venv is that host's Python; its
# tree and the 0.33.0 host come from scripts/setup_host.sh). Idempotent: a finished venv is recognised by its
# stamp file and left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
V="${VENV:-.venv}"
PYTHON="${PYTHON:-python3.11}"
STAMP="$V/.wan-pack-setup-v2"
if [ -f "$STAMP" ] && cmp -s "$STAMP" <(cat constraints.txt requirements-dev.txt scripts/setup_venv.sh); then
  exit 0
fi
echo "setting up $V (one time, about a minute)..."
rm -rf "$V"
"$PYTHON" -m venv "$V"
PY="$V/bin/python"
PIP=("$PY" -m pip install --quiet --disable-pip-version-check)
# torch first, from the CPU wheel on disk; every later call is pinned by constraints.txt.
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" -c constraints.txt --no-deps torchvision==0.28.0
"${PIP[@]}" -c constraints.txt -r requirements-dev.txt
SP=$("$PY" -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')
# torchvision from PyPI is a CUDA build whose compiled ops cannot load against CPU torch; two unguarded
# registrations break `import torchvision`. Make them conditional so its pure-Python parts work.
sed -i 's/^@torch\.library\.register_fake("torchvision::\(q\{0,1\}nms\)")/@register_meta("\1")/' \
  "$SP/torchvision/_meta_registrations.py"
cat constraints.txt requirements-dev.txt scripts/setup_venv.sh > "$STAMP"
echo "venv ready: $V"
