"""One creation per request, across threads and processes.

Identical requests at the same moment (two ComfyUI servers on one folder, two nodes of one graph, a graph
queued again while its request is still on its way, repeated frames of a `per_image` clip) must make ONE
creation: the others wait for its answer and serve it. The lock is per account + endpoint + request
fingerprint, a file in the state folder (`locks/<key>.lock`, an exclusive advisory lock that dies with its
process), held from the cache and journal check until the task id or the paid answer is written down;
whoever gets it next finds that record and follows it instead of creating.

A lock file is removed by its holder on release (while still locked), so files do not pile up, one per
request ever made. Whoever opened it meanwhile and gets its lock next holds a file that no longer guards
anything: filelock (3.30.0 on) sees the removed file and does not count that as taken, and the next try
opens the path afresh.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable

from .locks import try_lock
from ..errors import Interrupted

POLL_S = 0.05


class Held:
    """A taken request lock. `release()` may be called more than once (the first one counts)."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release = release
        self._done = False
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        self._release()


class RequestLocks:
    def __init__(self, folder: Path | None) -> None:
        self.folder = Path(folder) / "locks" if folder is not None else None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            if os.name == "nt":
                # Windows cannot remove a lock file while someone has it open, so a release may leave one behind:
                # remove those nobody has open (Windows refuses the others). Never on POSIX, where removing a file
                # another process holds would let a third one lock a new file at the same path.
                for stale in self.folder.glob("*.lock"):
                    try:
                        stale.unlink()
                    except OSError:
                        pass
        self._local: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def acquire(self, key: str, cancel: threading.Event | None, on_wait: Callable[[], None]) -> Held:
        """Take the lock of `key`; `on_wait()` once if someone else holds it. Interruptible by `cancel`."""
        if not key.isalnum():
            raise ValueError("a request key is a hex digest")
        waited = False
        while True:
            held = self._try(key)
            if held is not None:
                return held
            if not waited:
                on_wait()
                waited = True
            if cancel is not None:
                if cancel.wait(POLL_S):
                    raise Interrupted("stopped by the user while an identical request was on its way; nothing "
                                      "was sent")
            else:
                time.sleep(POLL_S)

    def _try(self, key: str) -> Held | None:
        if self.folder is None:
            with self._guard:
                lock = self._local.setdefault(key, threading.Lock())
            if not lock.acquire(blocking=False):
                return None
            return Held(lock.release)
        path = self.folder / f"{key}.lock"
        lock = try_lock(path)
        if lock is None:
            return None

        def release() -> None:
            try:
                os.unlink(path)   # still locked: whoever opened it will see it gone and start again
            except OSError:
                pass              # (Windows cannot remove an open file; filelock removes it on release)
            lock.release()

        return Held(release)
