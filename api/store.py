"""Never pay twice, never lose a paid picture: the task journal and the result cache, on disk.

Both are keyed by WHO asked WHERE for WHAT: the account (a hash of the key, never the key), the endpoint
(base URL) and the request's fingerprint (model, every parameter, the input pictures' bytes, the seed). So a
result made by the emulator is never served to a graph that now points at the real service, nor one
account's pictures to another (resumable.py builds the key).

* The JOURNAL (SQLite, standard library) records every async task the moment it is created, before the
  wait begins, and every paid sync or stream answer when it arrives. If ComfyUI is interrupted or restarted
  while a task runs, the next identical request finds the task (created within 24 hours, not yet fetched)
  and waits for it instead of creating, and paying for, another. A task that ended without pictures
  (failed, canceled, expired) is marked so and never offered again.
* The RESULT CACHE keeps fetched results (the PNG files as the service sent them, the text, the info),
  with a size cap and least-recently-used eviction. An unchanged node re-run after a restart is answered
  from disk with no request at all. A new seed, or any changed input, is a new key.

Several ComfyUI processes may share the folder: SQLite in WAL mode with a busy timeout (and a retry on top
for the "database is locked" that WAL can still raise), cache entries written to a temporary folder and
renamed into place whole.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from .config import state_dir
from .secrets import get_logger

log = get_logger("wan.store")

ENV_CACHE_MB = "WAN_CACHE_MAX_MB"
DEFAULT_CACHE_MB = 2048
TASK_LIFETIME_S = 24 * 3600.0   # task ids and result URLs live 24 hours at the service
STALE_TMP_S = 3600.0            # a temporary cache folder this old belongs to a write that died
# How long one journal statement may wait for a database another process holds. Bounded: the journal is
# bookkeeping around a paid run, and SQLite's own wait cannot be interrupted by the user's Cancel.
BUSY_TIMEOUT_S = 0.5
JOURNAL_WAIT_S = 2.0

T = TypeVar("T")


@dataclass
class JournalEntry:
    fingerprint: str
    task_id: str
    request_id: str | None
    model: str
    mode: str
    created: float
    state: str                 # created | succeeded | fetched | failed | canceled | expired


def _locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class TaskJournal:
    """Every async task this machine created, and every paid answer, and how far it got."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # (The `urls` column is no longer written; it stays so that journals of earlier versions open.)
        self._run(lambda db: db.execute("""CREATE TABLE IF NOT EXISTS tasks (
            task_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, account TEXT NOT NULL,
            request_id TEXT, model TEXT, mode TEXT, created REAL NOT NULL, updated REAL NOT NULL,
            state TEXT NOT NULL, urls TEXT NOT NULL DEFAULT '[]')"""))
        self._run(lambda db: db.execute(
            "CREATE INDEX IF NOT EXISTS tasks_by_fp ON tasks (fingerprint, account, created)"))

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # One connection per thread; WAL lets several ComfyUI workers (or processes) share the file.
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def _run(self, statement: Callable[[sqlite3.Connection], T]) -> T:
        """Run one statement; "database is locked" (which WAL can also raise at once, busy timeout or not,
        e.g. while another process checkpoints) is retried for at most JOURNAL_WAIT_S, then let through."""
        deadline = time.monotonic() + JOURNAL_WAIT_S
        pause = 0.02
        while True:
            try:
                return statement(self._db())
            except sqlite3.OperationalError as exc:
                if not _locked(exc) or time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.25)

    def record(self, fingerprint: str, account: str, task_id: str, request_id: str | None, model: str,
               mode: str, state: str = "created") -> None:
        now = time.time()
        self._run(lambda db: db.execute(
            "INSERT OR REPLACE INTO tasks (task_id, fingerprint, account, request_id, model, mode, created, "
            "updated, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (task_id, fingerprint, account, request_id, model, mode, now, now, state)))

    def update(self, task_id: str, state: str) -> None:
        self._run(lambda db: db.execute("UPDATE tasks SET state=?, updated=? WHERE task_id=?",
                                        (state, time.time(), task_id)))

    def resumable(self, fingerprint: str, account: str) -> JournalEntry | None:
        """The newest task for this request that is still worth fetching: created in the last 24 h, not
        fetched, not ended."""
        row = self._run(lambda db: db.execute(
            "SELECT fingerprint, task_id, request_id, model, mode, created, state FROM tasks "
            "WHERE fingerprint=? AND account=? AND created>? AND state IN ('created', 'succeeded') "
            "ORDER BY created DESC LIMIT 1",
            (fingerprint, account, time.time() - TASK_LIFETIME_S)).fetchone())
        return JournalEntry(*row) if row else None

    def entries(self) -> list[JournalEntry]:
        rows = self._run(lambda db: db.execute(
            "SELECT fingerprint, task_id, request_id, model, mode, created, state FROM tasks "
            "ORDER BY created").fetchall())
        return [JournalEntry(*r) for r in rows]


class ResultCache:
    """Fetched results on disk: <dir>/<key>/{meta.json, 0.png, 1.png, ...}, LRU within a byte cap."""

    def __init__(self, path: Path, max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        if max_bytes is None:
            max_bytes = int(float(os.environ.get(ENV_CACHE_MB, DEFAULT_CACHE_MB)) * 2**20)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def _dir(self, key: str) -> Path:
        if not key.isalnum():
            raise ValueError("a cache key is a hex digest")
        return self.path / key

    def get(self, key: str) -> tuple[dict[str, Any], list[bytes]] | None:
        folder = self._dir(key)
        meta_path = folder / "meta.json"
        try:
            meta = json.loads(meta_path.read_text())
            files = [(folder / f"{i}.png").read_bytes() for i in range(meta["count"])]
        except (OSError, ValueError, KeyError):
            return None
        now = time.time()
        try:
            os.utime(meta_path, (now, now))  # the access time LRU eviction reads
        except OSError:
            pass  # evicted by another process in between: the bytes are in hand
        return meta, files

    def put(self, key: str, meta: dict[str, Any], files: list[bytes]) -> None:
        folder = self._dir(key)
        tmp = self.path / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for i, data in enumerate(files):
                (tmp / f"{i}.png").write_bytes(data)
            (tmp / "meta.json").write_text(json.dumps({**meta, "count": len(files), "stored": time.time()}))
            with self._lock:
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(tmp, folder)  # whole or nothing: a crash never leaves half a result to be served
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # a full disk must not also leak a half-written folder
            raise
        with self._lock:
            self._evict(keep=key)

    def size(self) -> int:
        return sum(f.stat().st_size for f in self.path.glob("*/*") if f.is_file())

    def _evict(self, keep: str) -> None:
        entries = []
        total = 0
        now = time.time()
        for folder in self.path.iterdir():
            if not folder.is_dir():
                continue
            try:
                size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
                used = (folder / "meta.json").stat().st_mtime if not folder.name.startswith(".") else \
                    folder.stat().st_mtime
            except OSError:
                continue  # removed by another process meanwhile
            if folder.name.startswith("."):
                # A write in progress (count it: it is on the disk), or one that died long ago (remove it).
                if now - used > STALE_TMP_S:
                    shutil.rmtree(folder, ignore_errors=True)
                    log.info("result cache: removed %s, left by a write that did not finish", folder.name)
                else:
                    total += size
                continue
            entries.append((used, folder, size))
            total += size
        for used, folder, size in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes:
                break
            if folder.name == keep:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            total -= size
            log.info("result cache: evicted %s (%d bytes) to stay under %d", folder.name, size, self.max_bytes)


class Store:
    """The journal and the cache, side by side under one folder (`config.state_dir()` unless given)."""

    def __init__(self, folder: Path | None = None, cache_bytes: int | None = None) -> None:
        self.folder = Path(folder) if folder else state_dir()
        self.journal = TaskJournal(self.folder / "journal.sqlite3")
        self.cache = ResultCache(self.folder / "results", cache_bytes)
