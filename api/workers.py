"""A small pool of worker threads that a long queue of work cannot grow.

A list of 200 prompts, or an edit over 200 frames, must not become 200 threads (each with its own SQLite
connections and lock files: a Mac's 256 open files run out at about 60). Work beyond the pool's size waits
in a queue, costing no thread and no file; threads are made as work arrives, reused, and end after a while
idle. They are daemon threads: one still waiting on the network must not hold the host's exit (which is
why concurrent.futures' pool, whose threads the interpreter joins at exit, is not used).
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable

IDLE_S = 30.0   # a thread with nothing to do for this long ends; the next piece of work makes a new one


class Workers:
    def __init__(self, size: int, name: str, idle_s: float = IDLE_S) -> None:
        self.size = max(1, int(size))
        self.name = name
        self.idle_s = idle_s
        self._queue: deque[tuple[Future, Callable[[], Any]]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._threads = 0
        self._idle = 0
        self._running = 0

    def submit(self, work: Callable[..., Any], *args: Any) -> Future:
        """Run `work(*args)` on a worker; a Future canceled before a worker takes it never runs."""
        future: Future = Future()
        with self._lock:
            self._queue.append((future, (lambda: work(*args)) if args else work))
            if len(self._queue) > self._idle and self._threads < self.size:
                self._threads += 1
                try:
                    threading.Thread(target=self._work, daemon=True, name=f"{self.name}-{self._threads}").start()
                except BaseException:   # no thread to be had: no phantom worker, no job left for nobody
                    self._threads -= 1
                    self._queue.pop()
                    raise
            else:
                self._wake.notify()
        return future

    def threads(self) -> int:
        with self._lock:
            return self._threads

    def busy(self) -> int:
        """Pieces of work running now."""
        with self._lock:
            return self._running

    def waiting(self) -> int:
        with self._lock:
            return len(self._queue)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._idle += 1
                    woken = self._wake.wait(self.idle_s)
                    self._idle -= 1
                    if not woken and not self._queue:
                        self._threads -= 1
                        return
                future, work = self._queue.popleft()
                if not future.set_running_or_notify_cancel():
                    continue   # canceled while it waited: the run it belonged to is over
                self._running += 1
            try:
                result = work()
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for it
                future.set_exception(exc)
            else:
                future.set_result(result)
            finally:
                with self._lock:
                    self._running -= 1
            del future, work
