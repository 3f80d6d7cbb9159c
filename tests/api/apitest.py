"""Helpers shared by the client and emulator tests (a module of its own: two conftest.py files in one
pytest session would shadow each other's names)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from api import PollSchedule, RetryPolicy, Timeouts, WanClient  # noqa: E402
from api.config import Endpoint  # noqa: E402

TEST_KEY = "sk-test-fake-key-0000abcd"
FAST_RETRY = RetryPolicy(attempts=4, backoff=0.05, backoff_max=0.2)


def make_client(emulator, *, key=TEST_KEY, retry=FAST_RETRY, timeouts=None, **kw) -> WanClient:
    endpoint = Endpoint(base_url=emulator.base_url, region=None, overridden=True)
    return WanClient(key, endpoint=endpoint, retry=retry, timeouts=timeouts or Timeouts(),
                     poll=kw.pop("poll", PollSchedule(fast=0.05, fast_until=5, medium=0.1)), **kw)


def photo(h: int, w: int, seed: int = 0, noise: float = 0.04) -> np.ndarray:
    """A float32 HxWx3 picture with smooth structure and noise, like a photograph."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([np.sin(x / 37.0 + seed), np.cos(y / 23.0), np.sin((x + y) / 51.0)], axis=-1) * 0.35 + 0.5
    return np.clip(base + rng.normal(0, noise, (h, w, 3)), 0, 1).astype(np.float32)


def cancel_once_seen(emulator, kind: str, then: float = 0.0) -> threading.Event:
    """ComfyUI's Cancel, pressed `then` seconds after the service received the next request of `kind`
    ("async", "sync", "stream", "query": a query means the task exists). Tied to what the service saw, not to
    a clock: on a loaded machine a timer can fire before the request was even sent, and the test would then
    check another story than the one it tells."""
    cancel = threading.Event()
    since = len(emulator.backend.log)

    def press() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(e["kind"] == kind for e in emulator.backend.log[since:]):
            time.sleep(0.01)
        time.sleep(then)
        cancel.set()

    threading.Thread(target=press, daemon=True).start()
    return cancel


def wait_for(pred, timeout: float = 30.0) -> None:
    """Until `pred()` holds (polled every 5 ms); fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "waited in vain"
        time.sleep(0.005)
