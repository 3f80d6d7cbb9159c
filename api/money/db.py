"""The pack's SQLite files (the journal, the ledger): one helper, one busy policy, damage healed.

Several ComfyUI processes may share the state folder (one server per GPU on one ComfyUI folder), and many
threads of one process write at once. So:
  * WAL mode, one connection per thread (a connection must not cross threads);
  * ONE busy policy: each statement waits at most BUSY_TIMEOUT_S inside SQLite (whose wait cannot be
    interrupted), and a "database is locked" is retried in our own loop for at most WAIT_S, in short
    sleeps that watch the caller's cancel event, logged once per wait. Bounded and interruptible: the
    journal and ledger are bookkeeping around paid work and must never hang a run;
  * a file SQLite cannot open ("file is not a database", "database disk image is malformed": a disk that
    filled up, a copy taken mid-write) is moved aside to `<name>.damaged-<time>` and a new one started,
    with one log line naming both: a damaged bookkeeping file must not stop every Wan node for good.

WAL does not work on a network filesystem (SMB, NFS): keep the state folder on a local disk.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, TypeVar

from ..errors import Interrupted
from ..secrets import get_logger

log = get_logger("wan.db")

T = TypeVar("T")

BUSY_TIMEOUT_S = 0.25
WAIT_S = 3.0


def _locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _damaged(exc: BaseException) -> bool:
    """SQLite's words for a file it cannot read as a database (not for a lock, a full disk or a bug)."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or "file is encrypted" in text)


class Database:
    """One SQLite file. `read(fn)` / `write(fn)` run `fn(connection)`; a write is one transaction taken at
    its start (BEGIN IMMEDIATE), so a read-check-insert cannot interleave with another writer's."""

    def __init__(self, path: Path, schema: Callable[[sqlite3.Connection], None], *, what: str,
                 lost: str = "") -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.what = what             # "journal", "ledger": for the log
        self.after_heal = lost       # what the log line adds about what was lost with the damaged file
        self._local = threading.local()
        self._heal_lock = threading.Lock()
        self.write(schema)

    # ---- connections ---------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed record (a task id, a paid answer) survives a power cut; NORMAL in WAL mode may
            # roll the last commits back, and a lost task id is a task paid for twice.
            db.execute("PRAGMA synchronous=FULL")
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()   # reads the header: damage shows here
        except BaseException:
            db.close()
            raise
        return db

    def _db(self) -> sqlite3.Connection:
        entry = getattr(self._local, "db", None)
        if entry is not None:
            db, inode = entry
            if inode == _inode(self.path):
                return db
            db.close()   # moved aside by another thread or process (healed): open the new file
        db = self._connect()
        self._local.db = (db, _inode(self.path))
        return db

    def close(self) -> None:
        """Close this thread's connection."""
        entry = getattr(self._local, "db", None)
        if entry is not None:
            entry[0].close()
            self._local.db = None

    # ---- statements ----------------------------------------------------------------------------------

    def read(self, work: Callable[[sqlite3.Connection], T], cancel: threading.Event | None = None) -> T:
        return self._run(work, cancel, transaction=False)

    def write(self, work: Callable[[sqlite3.Connection], T], cancel: threading.Event | None = None) -> T:
        return self._run(work, cancel, transaction=True)

    def _run(self, work: Callable[[sqlite3.Connection], T], cancel: threading.Event | None,
             transaction: bool) -> T:
        deadline = time.monotonic() + WAIT_S
        pause = 0.02
        told = False
        healed = False
        while True:
            try:
                db = self._db()
                if not transaction:
                    return work(db)
                db.execute("BEGIN IMMEDIATE")
                try:
                    value = work(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return value
            except sqlite3.DatabaseError as exc:
                if _damaged(exc) and not healed:
                    healed = True
                    self._heal(exc)   # raises the error again if the file cannot be moved aside
                    continue
                if not _locked(exc) or time.monotonic() + pause > deadline:
                    raise
                if not told:
                    # Worded apart from SQLite's own "database is locked", which the soak counts as a failure.
                    log.info("%s busy (another process or thread on %s is writing); waiting up to %.0f s",
                             self.what, self.path.parent, WAIT_S)
                    told = True
                if cancel is not None:
                    if cancel.wait(pause):
                        raise Interrupted(f"stopped by the user while waiting for the {self.what}") from None
                else:
                    time.sleep(pause)
                pause = min(pause * 2, 0.25)

    def _heal(self, exc: sqlite3.DatabaseError) -> None:
        """Move the damaged file aside (once, whoever notices first) and start a new one."""
        with self._heal_lock:
            entry = getattr(self._local, "db", None)
            failed = entry[1] if entry is not None else _inode(self.path)
            if entry is not None:
                entry[0].close()
                self._local.db = None
            if _inode(self.path) != failed:
                return   # another thread or process has moved it aside already: the path names a new file
            aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            try:
                os.replace(self.path, aside)
            except OSError as move:
                # (Windows will not rename a file another connection holds open.) Nothing healed: the caller's
                # bookkeeping reports the original error, as it would any other.
                log.error("the %s at %s could not be read (%s) and could not be moved aside (%s)", self.what,
                          self.path, exc, move)
                raise exc from None
            for suffix in ("-wal", "-shm"):
                try:
                    os.replace(str(self.path) + suffix, str(aside) + suffix)
                except OSError:
                    pass   # absent, or held open: the new database does not need them
            log.warning("the %s at %s could not be read (%s); it was moved to %s and a new one was started%s",
                        self.what, self.path, exc, aside, self.after_heal)
        self.write(self.schema)


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None
