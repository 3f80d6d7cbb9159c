"""Node-level tests: ComfyUI's modules loaded in this process, the pack loaded by file path as ComfyUI
loads custom nodes, each node's execute called with tensors against the emulator.

Run in a pytest process of their own (see the Makefile): the repo root must never be on sys.path while
ComfyUI is loaded, or ComfyUI's `import nodes` would find our nodes/ package instead of its nodes.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# scripts/ holds no nodes.py, so it may be on the path; the repo root may not (inprocess.load removes it).
sys.path.insert(0, str(ROOT / "scripts"))
import inprocess  # noqa: E402

loaded = inprocess.load()
wan, tensors, api, emulator_mod = loaded.wan, loaded.tensors, loaded.api, loaded.emulator

KEY = "sk-nodelevel-fake-key1"


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
