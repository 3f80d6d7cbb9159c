"""A real ComfyUI server (separate process) with the pack in its custom_nodes, and the emulator.

This test process never imports ComfyUI, so having the repo root on sys.path here (for `api` and the
host harness) cannot clash with ComfyUI's own top-level `nodes.py`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
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
    # Downloads that keep failing are given up after 2 s of tries, not the pack's default 30 s: the tests of
    # a result host failing after payment would otherwise each wait out 30 s (test_paid_answers.py).
    host = ComfyHost({"DASHSCOPE_HTTP_BASE_URL": emulator.base_url, "DASHSCOPE_API_KEY": E2E_KEY,
                      "WAN_DOWNLOAD_PATIENCE_S": "2"})
    host.start()
    _launch_early(emulator)
    yield host
    host.cleanup()


# ---- servers launched early ----------------------------------------------------------------------------
# A test that needs ComfyUI servers of its own (another environment, a base directory of its own) names them
# in its module's EARLY_SERVERS: {test name: factory(emulator) -> [ComfyHost, ...]}, and takes them with the
# `early` fixture, started and ready. They are launched as soon as the session's server is up, so that their
# start-up (most of such a test's cost on ComfyUI 0.33.0: about 15 s each on two idle cores) overlaps the
# tests before them instead of adding to them. Only the selected tests' servers are launched.

_early_plans: dict = {}   # test node id -> factory
_early: dict = {}         # test node id -> the hosts it made, launched
_early_launched: list = []


def pytest_collection_finish(session):
    for item in session.items:   # what runs, after every deselection (-m, -k, --lf)
        factory = getattr(item.module, "EARLY_SERVERS", {}).get(getattr(item, "originalname", item.name))
        if factory is not None:
            _early_plans[item.nodeid] = factory


def _launch_early(emulator) -> None:
    # Once: a test takes its servers out of _early, and a second pass would launch them all over again.
    if _early_launched:
        return
    _early_launched.append(True)
    for nodeid, factory in _early_plans.items():
        _early[nodeid] = [host.launch() for host in factory(emulator)]


def pytest_sessionfinish(session):
    """Servers launched for tests that never ran (an error before them, -x), or when no test used the session
    server, are stopped too."""
    for hosts in _early.values():
        for host in reversed(hosts):
            host.cleanup()
    _early.clear()


@pytest.fixture
def early(request, emulator):
    """The servers this test's EARLY_SERVERS entry made, each up; cleaned up (stopped, folders removed) after
    the test."""
    _launch_early(emulator)
    hosts = _early.pop(request.node.nodeid)
    try:
        for host in hosts:
            host.wait_ready()
        yield hosts
    finally:
        for host in reversed(hosts):
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


@pytest.fixture
def base_dir(request):
    """A ComfyUI base directory of a test's own (for servers that share one, or a test that reads it after the
    server has stopped), removed afterwards unless WAN_KEEP_TEST_DIRS is set, as ComfyHost does with its own."""
    path = Path(tempfile.mkdtemp(prefix=f"wan-{request.module.__name__.removeprefix('test_')}-"))
    yield path
    if not os.environ.get("WAN_KEEP_TEST_DIRS"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_emulator(emulator):
    emulator.backend.reset()
    emulator.backend.configure(queue_time=0.2, service_time=0.5)
    yield
