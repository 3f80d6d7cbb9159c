"""Advisory file locks shared by every process on one machine (POSIX flock, Windows msvcrt).

Used where several ComfyUI servers share one state folder: the generation slots and the task-query
bucket (ratelimit.py) and the ledger's owner marks (ledger/owners.py). A lock dies with its process, so a killed
server never leaves a slot taken. flock locks belong to an open file description: two descriptors of the
same file conflict even inside one process, which is what lets threads compete for the same slot files.
"""

from __future__ import annotations

import os

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


def open_lock_file(path: "os.PathLike[str] | str") -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    if fcntl is None:
        # msvcrt locks byte ranges; make sure byte 0 exists.
        if os.fstat(fd).st_size == 0:
            os.write(fd, b"\0")
    return fd


def try_lock(fd: int) -> bool:
    """Take the exclusive lock if nobody holds it; never waits."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        return True
    except OSError:
        return False


def lock(fd: int) -> None:
    """Wait for the exclusive lock (only for locks held a few microseconds, like the bucket's)."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)


def unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
