"""A real ComfyUI server (separate process) with the pack in its custom_nodes, and the emulator.

This test process never imports ComfyUI, so having the repo root on sys.path here (for `api` and the
host harness) cannot clash with ComfyUI's own top-level `nodes.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT, ROOT / "scripts"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from api.emulator import EmulatorServer, Settings  # noqa: E402
from comfy_host import ComfyHost  # noqa: E402

from e2e_support import E2E_KEY  # noqa: E402


@pytest.fixture(scope="session")
def emulator():
    server = EmulatorServer(settings=Settings(queue_time=0.2, service_time=0.5, api_keys=[E2E_KEY])).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def comfy(emulator):
    host = ComfyHost({"DASHSCOPE_HTTP_BASE_URL": emulator.base_url, "DASHSCOPE_API_KEY": E2E_KEY})
    host.start()
    yield host
    host.cleanup()


@pytest.fixture
def comfy_to_restart(comfy):
    """The session's server, for a test about restarting ComfyUI (stopped and started again on its base
    directory, perhaps with another environment): a server of the test's own would cost two more starts, the
    slowest thing in this suite. Whatever the test does, the server is left running as the session made it."""
    env = dict(comfy.env)
    try:
        yield comfy
    finally:
        if comfy.env != env or not comfy.running():
            comfy.restart(env)


@pytest.fixture(autouse=True)
def _fresh_emulator(emulator):
    emulator.backend.reset()
    emulator.backend.configure(queue_time=0.2, service_time=0.5)
    yield
