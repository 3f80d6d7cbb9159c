"""ComfyUI's modules loaded in this process, and the pack loaded by file path as ComfyUI loads custom
nodes. For node-level tests and benchmarks that call a node's execute directly.

Which ComfyUI: scripts/hosts.py (`WAN_COMFY_HOST`). Its modules import what that host needs (torch,
torchaudio on 0.33.0, ...), so this runs under the host's own Python (`python3 scripts/hosts.py python`).

The repo root must never be on sys.path while ComfyUI is loaded: ComfyUI's `import nodes` would find our
nodes/ package instead of its nodes.py. `load()` removes it and checks the result.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hosts  # noqa: E402

ROOT = hosts.ROOT
PACK = "comfyui_wan_image"


def load() -> SimpleNamespace:
    sys.path[:] = [p for p in sys.path if p not in ("", ".") and Path(p).resolve() != ROOT]
    version = hosts.require()
    if Path(sys.prefix).resolve() != hosts.venv(version).resolve():
        raise RuntimeError(f"ComfyUI {version} runs with {hosts.python(version)}, not {sys.executable} "
                           f"(WAN_COMFY_HOST picks the host)")
    comfy_dir = hosts.comfy_dir(version)
    if str(comfy_dir) not in sys.path:
        sys.path.insert(0, str(comfy_dir))
    # ComfyUI's own `utils` package, imported before anything puts ComfyUI's comfy/ folder (with its
    # utils.py) at the front of sys.path, as some of its modules do.
    import utils.install_util  # noqa: F401
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # as `main.py --cpu`: this torch has no CUDA
    if PACK not in sys.modules:
        spec = importlib.util.spec_from_file_location(PACK, ROOT / "__init__.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACK] = module
        spec.loader.exec_module(module)
    import nodes as comfy_nodes

    if Path(comfy_nodes.__file__).parent != comfy_dir:
        raise RuntimeError(f"`import nodes` found {comfy_nodes.__file__}, not ComfyUI's nodes.py")
    return SimpleNamespace(
        pack=sys.modules[PACK],
        wan=importlib.import_module(f"{PACK}.nodes.wan_nodes"),
        tensors=importlib.import_module(f"{PACK}.nodes.tensors"),
        api=importlib.import_module(f"{PACK}.api"),
        emulator=importlib.import_module(f"{PACK}.api.emulator"),
        comfy_dir=comfy_dir,
        version=version,
    )
