"""A real ComfyUI server (separate process) with the pack in its custom_nodes, and the emulator.

This test process never imports ComfyUI, so having the repo root on sys.path here (for `api` and the
host harness) cannot clash with ComfyUI's own top-level `nodes.py`.
"""

from __future__ import annotations

import sys
import threading
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
# `early` fixture, started and ready. They are launched while the tests before them run, so that their
# start-up (most of such a test's cost on ComfyUI 0.33.0: about 15 s each on two idle cores) overlaps those
# tests instead of adding to them: one test's servers at a time, in the tests' order, each group up before
# the next is launched (a dozen ComfyUIs starting at once on two cores would slow every test running
# meanwhile by as much as it saves). Only the selected tests' servers are launched (after -m, -k, --lf).

_early_plans: dict = {}   # test node id -> factory, in the session's order
_early: dict = {}         # test node id -> the hosts it made, launched and not yet handed to its test
_claimed: set = set()     # test node ids whose test has asked for its servers (the launcher skips those)
_early_lock = threading.Lock()
_launcher: list = []      # the launcher thread, once started
_closing = threading.Event()


def pytest_collection_finish(session):
    for item in session.items:   # what runs, after every deselection
        factory = getattr(item.module, "EARLY_SERVERS", {}).get(getattr(item, "originalname", item.name))
        if factory is not None:
            _early_plans[item.nodeid] = factory


def _launch_early(emulator) -> None:
    with _early_lock:
        if not _launcher:
            _launcher.append(threading.Thread(target=_launch_in_order, args=(emulator,), daemon=True))
            _launcher[0].start()


def _launch_in_order(emulator) -> None:
    for nodeid, factory in list(_early_plans.items()):
        with _early_lock:
            if _closing.is_set():
                return
            if nodeid in _claimed or nodeid in _early:
                continue
            try:
                hosts = _early[nodeid] = [host.launch() for host in factory(emulator)]
            except Exception:  # noqa: BLE001 - the test launches its own and reports what fails
                continue
        for host in hosts:
            try:
                host.wait_ready()
            except Exception:  # noqa: BLE001 - reported by the test's own wait
                pass


def pytest_sessionfinish(session):
    """Servers launched for tests that never ran (an error before them, -x) are stopped too."""
    with _early_lock:
        _closing.set()
        left = list(_early.values())
        _early.clear()
    for hosts in left:
        for host in reversed(hosts):
            host.cleanup()


@pytest.fixture
def early(request, emulator):
    """The servers this test's EARLY_SERVERS entry made, each up (launched now if the launcher has not got to
    them yet); cleaned up (stopped, folders removed) after the test."""
    _launch_early(emulator)
    nodeid = request.node.nodeid
    with _early_lock:
        _claimed.add(nodeid)
        hosts = _early.pop(nodeid, None)
    if hosts is None:
        factory = request.module.EARLY_SERVERS[getattr(request.node, "originalname", request.node.name)]
        hosts = [host.launch() for host in factory(emulator)]
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


@pytest.fixture(autouse=True)
def _fresh_emulator(emulator):
    emulator.backend.reset()
    emulator.backend.configure(queue_time=0.2, service_time=0.5)
    yield
