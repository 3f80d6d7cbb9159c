"""The one kind of file lock the pack takes: the `filelock` library's operating-system lock.

Used where several ComfyUI servers share one state folder: the generation slots and the task-query bucket
(service/ratelimit.py), one creation per request (request_lock.py), the ledger's owner marks (ledger/owners.py)
and the settings page's key file (keystore.py). Each must die with its process, so a killed server never
leaves a slot taken or a request locked: flock on POSIX, LockFileEx on Windows, never filelock's soft lock (a
file whose existence is the lock, which a crash leaves behind). Hence the platform class by name rather than
`FileLock` (a soft lock where flock is missing), and `fallback_to_soft=False` (filelock 3.30.0) so that a
folder on a filesystem without flock fails loudly instead of quietly turning into a soft lock.

`thread_local=False`: a lock taken by one thread may be released by another (a slot is taken by a node's
run and may be given back by whichever thread finishes it). Threads of one process compete for a file
through lock objects of their own: two objects of one path are two descriptors, and conflict like two
processes do.
"""

from __future__ import annotations

import os

from filelock import BaseFileLock, Timeout, UnixFileLock, WindowsFileLock

_PLATFORM_LOCK = WindowsFileLock if os.name == "nt" else UnixFileLock


def process_lock(path: "os.PathLike[str] | str") -> BaseFileLock:
    """A new lock object on `path` (created 0600 if missing), not yet taken."""
    return _PLATFORM_LOCK(path, mode=0o600, thread_local=False, fallback_to_soft=False)


def try_lock(path: "os.PathLike[str] | str") -> BaseFileLock | None:
    """The lock of `path` if nobody holds it (its release is the caller's), else None; never waits."""
    lock = process_lock(path)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        return None
    return lock
