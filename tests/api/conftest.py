"""Fixtures for the client and emulator tests: a real emulator on a free loopback port, clients pointed at
it, and an environment that cannot reach the developer's real key. ComfyUI is never loaded here."""

from __future__ import annotations

import pytest

from apitest import TEST_KEY, make_client
from api.emulator import EmulatorServer, Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    # No test may find the developer's real key or region, or write to their home.
    for name in ("DASHSCOPE_API_KEY", "DASHSCOPE_API_KEY_FILE_PATH", "DASHSCOPE_HTTP_BASE_URL", "DASHSCOPE_REGION",
                 "DASHSCOPE_API_KEY_SINGAPORE", "DASHSCOPE_API_KEY_VIRGINIA", "DASHSCOPE_API_KEY_BEIJING",
                 "WAN_PRICES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def emulator():
    server = EmulatorServer(settings=Settings(queue_time=0.2, service_time=0.4, api_keys=[TEST_KEY])).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(emulator):
    return make_client(emulator)
