"""Which of the processes sharing a state folder are still alive.

Each process that reserves holds a lock on a mark file of its own (`ledger-owners/<pid>-<random>.lock`) for
its whole life; a lock dies with its process (api/money/locks.py), so a mark that nobody holds belongs to a
process that ended, however it ended (killed, crashed, power cut). Whoever finds such a mark removes it.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

from filelock import BaseFileLock

from ..money.locks import try_lock


# Every mark this process made, held until it ends: the reservations a mark vouches for may outlive the
# Owners object that made it, and a lock object that is dropped lets its lock go.
_marks: list[BaseFileLock] = []


class Owners:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder) / "ledger-owners"
        self._mine: str | None = None
        self._lock = threading.Lock()

    def me(self) -> str:
        """This process's mark, made on first use."""
        with self._lock:
            if self._mine is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
                tmp = self.folder / f".{token}.tmp"
                if os.name == "nt":
                    # Windows cannot rename an open file; a mark found unlocked in the instant before the lock
                    # is only a new, empty one.
                    tmp = self.folder / f"{token}.lock"
                mark = try_lock(tmp)
                if mark is None:
                    raise RuntimeError(f"cannot lock {tmp}")
                if os.name != "nt":
                    # Locked before it gets its name, so nobody can find it unlocked and call us dead.
                    os.replace(tmp, self.folder / f"{token}.lock")
                _marks.append(mark)
                self._mine = token
                # The marks of processes that ended with nothing in flight: nobody else would remove them.
                for other in self.folder.glob("*.lock"):
                    if other.stem != token:
                        self.alive(other.stem)
            return self._mine

    def alive(self, owner: str) -> bool:
        if owner == self._mine:
            return True
        path = self.folder / f"{owner}.lock"
        if not path.exists():
            return False
        probe = try_lock(path)   # (made again if someone removed it meanwhile: it is removed below)
        if probe is None:
            return True
        # Nobody holds it: its process is gone.
        try:
            path.unlink()
        except OSError:
            pass   # (Windows: filelock removes it on release)
        probe.release()
        return False
