"""Shared limits per account: the service allows about 20 task queries per second per account, for all
running nodes together. One token bucket per (base URL, key) in this process, whatever the node count.
"""

from __future__ import annotations

import os
import threading
import time

from .waiting import pause, until

ENV_TASK_QPS = "WAN_TASK_QUERY_QPS"
# Below the service's ~20/s so that another client of the same account (a script, the console) has room.
DEFAULT_TASK_QPS = 10.0


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = float(rate)
        self.capacity = float(burst if burst is not None else max(1.0, rate))
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def _reserve(self) -> float:
        """Take a token now or reserve the next one; return how long to wait for it."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1.0
            if self._tokens >= 0:
                return 0.0
            return -self._tokens / self.rate

    def acquire(self, cancel: threading.Event | None = None) -> float:
        wait = self._reserve()
        if wait > 0:
            pause(wait, cancel, "waiting for a turn to query the task (WAN_TASK_QUERY_QPS)")
        return wait


_buckets: dict[tuple[str, str], TokenBucket] = {}
_buckets_lock = threading.Lock()


def task_query_limiter(base_url: str, key_fingerprint: str) -> TokenBucket:
    with _buckets_lock:
        bucket = _buckets.get((base_url, key_fingerprint))
        if bucket is None:
            rate = float(os.environ.get(ENV_TASK_QPS, DEFAULT_TASK_QPS))
            bucket = _buckets[(base_url, key_fingerprint)] = TokenBucket(rate)
        return bucket


# ---- generations in flight ----------------------------------------------------------------------------------

ENV_MAX_CONCURRENT = "WAN_MAX_CONCURRENT"
# The service limits how many tasks an account runs at once (a few per model); more would only queue
# there, or be refused with Throttling. Every node of the process shares these slots.
DEFAULT_MAX_CONCURRENT = 4

_slots: dict[tuple[str, str], threading.BoundedSemaphore] = {}


def generation_slots(base_url: str, key_fingerprint: str) -> threading.BoundedSemaphore:
    with _buckets_lock:
        slots = _slots.get((base_url, key_fingerprint))
        if slots is None:
            count = max(1, int(os.environ.get(ENV_MAX_CONCURRENT, DEFAULT_MAX_CONCURRENT)))
            slots = _slots[(base_url, key_fingerprint)] = threading.BoundedSemaphore(count)
        return slots


def acquire_slot(slots: threading.BoundedSemaphore, cancel: threading.Event | None) -> None:
    until(lambda timeout: slots.acquire(timeout=timeout), cancel,
          "waiting for a free generation slot; nothing was sent")
