"""Shared limits per account, for every node of every ComfyUI process on this machine.

The service allows about 20 task queries per second per account, and runs a few generations per account at
once; more only queue there or come back as Throttling. Several ComfyUI servers (one per GPU) often share
one ComfyUI folder and one key, so a per-process limit is not enough: with a state folder (the one that
holds the journal) the limits live in lock files there and hold across processes:

* generation slots: WAN_MAX_CONCURRENT lock files per account; a generation holds one (an exclusive file
  lock, api/money/locks.py) from before its request is sent until its result is in. A killed process's locks
  vanish with it.
* task queries: one token bucket per account whose state (tokens, time) sits in a file, read and written
  under the lock of a file beside it, so all processes draw from the same bucket.

Without a folder (a script with no Store) both are per process, as before.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

from filelock import BaseFileLock

from ..money.locks import process_lock, try_lock
from .waiting import pause, until

ENV_TASK_QPS = "WAN_TASK_QUERY_QPS"
# Below the service's ~20/s so that another client of the same account (a script, the console) has room.
DEFAULT_TASK_QPS = 10.0
# How often a waiter looks for a free slot (inside waiting.until's slices, which watch for an interrupt).
SLOT_POLL_S = 0.03


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


class SharedTokenBucket(TokenBucket):
    """The same bucket, its state in a file under an exclusive lock, so every process draws from it.

    Wall-clock time (not monotonic, which differs per process); a clock step backwards adds nothing."""

    # The lock is held for a read and a write: a process that finds it taken looks again this soon.
    LOCK_POLL_S = 0.001

    def __init__(self, path: Path, rate: float, burst: float | None = None) -> None:
        super().__init__(rate, burst)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # The state has a file of its own: filelock may empty a lock file when it takes it.
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._file_lock = process_lock(path.with_name(path.name + ".lock"))

    def _reserve(self) -> float:
        with self._lock:  # threads of this process take turns here, then on the file lock with other processes
            with self._file_lock.acquire(poll_interval=self.LOCK_POLL_S):
                now = time.time()
                os.lseek(self._fd, 0, os.SEEK_SET)   # (not os.pread/pwrite: Windows has neither)
                raw = os.read(self._fd, 64).decode("ascii", "replace").strip("\0 \n").split()
                try:
                    tokens, stamp = float(raw[0]), float(raw[1])
                except (IndexError, ValueError):
                    tokens, stamp = self.capacity, now
                tokens = min(self.capacity, tokens + max(0.0, now - stamp) * self.rate) - 1.0
                state = f"{tokens:.6f} {now:.6f}".encode().ljust(64)
                os.lseek(self._fd, 0, os.SEEK_SET)
                os.write(self._fd, state)
        return 0.0 if tokens >= 0 else -tokens / self.rate


_buckets: dict[tuple, TokenBucket] = {}
_buckets_lock = threading.Lock()


def _account_dir(folder: Path, base_url: str, key_fingerprint: str) -> Path:
    # One set of lock files per account at one endpoint; the name is a hash (no URL characters in paths).
    name = hashlib.sha256(f"{key_fingerprint}@{base_url}".encode()).hexdigest()[:16]
    return Path(folder) / "limits" / name


def task_query_limiter(base_url: str, key_fingerprint: str, folder: Path | None = None) -> TokenBucket:
    """The account's task-query bucket: shared by every process using `folder`, else by this process."""
    key = (base_url, key_fingerprint, str(folder) if folder else None)
    with _buckets_lock:
        bucket = _buckets.get(key)
        if bucket is None:
            rate = float(os.environ.get(ENV_TASK_QPS, DEFAULT_TASK_QPS))
            if folder is None:
                bucket = TokenBucket(rate)
            else:
                bucket = SharedTokenBucket(_account_dir(folder, base_url, key_fingerprint) / "task-queries", rate)
            _buckets[key] = bucket
        return bucket


# ---- generations in flight ----------------------------------------------------------------------------------

ENV_MAX_CONCURRENT = "WAN_MAX_CONCURRENT"
# The service limits how many tasks an account runs at once (a few per model); more would only queue
# there, or be refused with Throttling. Every node of every process on the folder shares these slots.
DEFAULT_MAX_CONCURRENT = 4


def max_concurrent() -> int:
    """WAN_MAX_CONCURRENT: generations in flight per account (at least 1)."""
    return max(1, int(os.environ.get(ENV_MAX_CONCURRENT, DEFAULT_MAX_CONCURRENT)))


class SharedSlots:
    """`count` generation slots as lock files in a folder: at most `count` holders among all processes.

    Semaphore-like (acquire(blocking, timeout) / release()), so it stands where a BoundedSemaphore stood.
    Each holder takes one file's exclusive lock; a thread that finds them all taken polls every
    SLOT_POLL_S. A process that dies releases its slots with its file descriptors."""

    def __init__(self, folder: Path, count: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.count = count
        self._paths = [folder / f"slot-{i}.lock" for i in range(count)]
        self._held: list[BaseFileLock | None] = [None] * count   # the slots a thread of this process holds
        self._lock = threading.Lock()
        self._mine = threading.local()

    def _try(self) -> bool:
        for i in range(self.count):
            with self._lock:
                if self._held[i] is not None:
                    continue
                # A lock object per try: one shared by the threads would count a second thread's take as a
                # re-entry of the first one's hold instead of refusing it.
                lock = try_lock(self._paths[i])
                if lock is None:
                    continue
                self._held[i] = lock
            self._stack().append(i)
            return True
        return False

    def _stack(self) -> list[int]:
        stack = getattr(self._mine, "held", None)
        if stack is None:
            stack = self._mine.held = []
        return stack

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._try():
                return True
            if not blocking or (deadline is not None and time.monotonic() >= deadline):
                return False
            time.sleep(SLOT_POLL_S if deadline is None else max(0.0, min(SLOT_POLL_S, deadline - time.monotonic())))

    def release(self) -> None:
        stack = self._stack()
        with self._lock:
            if stack:
                i = stack.pop()
            else:  # released by another thread than the one that took it
                i = next((j for j, held in enumerate(self._held) if held is not None), None)
                if i is None:
                    raise ValueError("released more slots than were taken")
            lock, self._held[i] = self._held[i], None
            lock.release()

    def held_here(self) -> int:
        with self._lock:
            return sum(held is not None for held in self._held)


_slots: dict[tuple, "SharedSlots | threading.BoundedSemaphore"] = {}


def generation_slots(base_url: str, key_fingerprint: str,
                     folder: Path | None = None) -> "SharedSlots | threading.BoundedSemaphore":
    """The account's generation slots: shared by every process using `folder`, else by this process."""
    key = (base_url, key_fingerprint, str(folder) if folder else None)
    with _buckets_lock:
        slots = _slots.get(key)
        if slots is None:
            count = max_concurrent()
            if folder is None:
                slots = threading.BoundedSemaphore(count)
            else:
                slots = SharedSlots(_account_dir(folder, base_url, key_fingerprint), count)
            _slots[key] = slots
        return slots


def acquire_slot(slots: "SharedSlots | threading.BoundedSemaphore", cancel: threading.Event | None) -> None:
    until(lambda timeout: slots.acquire(timeout=timeout), cancel,
          "waiting for a free generation slot; nothing was sent")
