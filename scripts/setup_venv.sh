#!/usr/bin/env bash
# Creates .venv with everything `make test` and `make demo` need in the test process: the pack's runtime
# dependencies, the test tools (pytest; Playwright and ComfyUI's frontends for the browser tests, see
# scripts/setup_browser.sh; the lowest HTTP stack and file lock the pack declares, see
# scripts/setup_floor.sh), plus what ComfyUI 0.3.75 imports (this venv is that host's Python; the trees come
# from scripts/setup_host.sh).
# Idempotent, and kept outside the clone by the hash of what decides it (scripts/setup_cache.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_cache.sh
V="${VENV:-.venv}"
PYTHON="${PYTHON:-python3.11}"

build_venv() {
  local dir=$1
  echo "setting up the project's venv in $dir (one time, a minute or two)..."
  "$PYTHON" -m venv "$dir"
  local py="$dir/bin/python"
  local pip=("$py" -m pip install --quiet --disable-pip-version-check)
  # torch first, from the CPU wheel on disk; every later call is pinned by constraints.txt.
  "${pip[@]}" torch==2.13.0
  "${pip[@]}" -c constraints.txt --no-deps torchvision==0.28.0
  "${pip[@]}" -c constraints.txt -r requirements-dev.txt
  local sp
  sp=$("$py" -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')
  # torchvision from PyPI is a CUDA build whose compiled ops cannot load against CPU torch; two unguarded
  # registrations break `import torchvision`. Make them conditional so its pure-Python parts work.
  sed -i 's/^@torch\.library\.register_fake("torchvision::\(q\{0,1\}nms\)")/@register_meta("\1")/' \
    "$sp/torchvision/_meta_registrations.py"
  VENV="$dir" bash scripts/setup_browser.sh --python-only
  VENV="$dir" bash scripts/setup_floor.sh
  echo "venv ready: $dir"
}

NEWEST_FRONTEND=$(sed -n 's/^NEWEST_FRONTEND = "\(.*\)"/\1/p' scripts/browser_support.py)
KEY=$(setup_key "$("$PYTHON" -VV)" constraints.txt requirements-dev.txt scripts/setup_venv.sh \
  scripts/setup_browser.sh scripts/setup_floor.sh "$NEWEST_FRONTEND" "$("$PYTHON" scripts/hosts.py frontend 0.3.75)")
cached_build "$V" venv "$KEY" build_venv
