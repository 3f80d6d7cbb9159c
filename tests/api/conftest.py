"""Shared fixtures: a real emulator on a free loopback port, and clients pointed at it.

The repo root is put on sys.path for the `api` package only; tests that load ComfyUI run it in a separate
process (its own top-level `nodes.py` would clash with our `nodes/` package).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from api import PollSchedule, RetryPolicy, Timeouts, WanClient  # noqa: E402
from api.config import Endpoint  # noqa: E402
from api.emulator import EmulatorServer, Settings  # noqa: E402

TEST_KEY = "sk-test0000000000000000000000abcd"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    # No test may find the developer's real key or region, or write to their home.
    for name in ("DASHSCOPE_API_KEY", "DASHSCOPE_API_KEY_FILE_PATH", "DASHSCOPE_HTTP_BASE_URL", "DASHSCOPE_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def emulator():
    server = EmulatorServer(settings=Settings(queue_time=0.2, service_time=0.4, api_keys=[TEST_KEY])).start()
    try:
        yield server
    finally:
        server.stop()


FAST_RETRY = RetryPolicy(attempts=4, backoff=0.05, backoff_max=0.2)


def make_client(emulator, *, key=TEST_KEY, retry=FAST_RETRY, timeouts=None, **kw) -> WanClient:
    endpoint = Endpoint(base_url=emulator.base_url, region=None, overridden=True)
    return WanClient(key, endpoint=endpoint, retry=retry, timeouts=timeouts or Timeouts(),
                     poll=kw.pop("poll", PollSchedule(fast=0.05, fast_until=5, medium=0.1)), **kw)


@pytest.fixture
def client(emulator):
    return make_client(emulator)


def photo(h: int, w: int, seed: int = 0, noise: float = 0.04) -> np.ndarray:
    """A float32 HxWx3 picture with smooth structure and noise, like a photograph."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([np.sin(x / 37.0 + seed), np.cos(y / 23.0), np.sin((x + y) / 51.0)], axis=-1) * 0.35 + 0.5
    return np.clip(base + rng.normal(0, noise, (h, w, 3)), 0, 1).astype(np.float32)
