"""Never pay twice, never lose a paid picture: the task journal and the result cache.

Both are keyed by the request's fingerprint (model, every parameter, the input pictures' bytes, the seed):
the same fingerprint means the same paid work.

* The JOURNAL (SQLite, standard library) records every async task the moment it is created, before the
  wait begins. If ComfyUI is interrupted or restarted while a task runs, the next identical request finds
  the task (created within 24 hours, not yet fetched) and waits for it instead of creating, and paying
  for, another. Tasks belong to an account, so the journal keeps a hash of the key (never the key).
* The RESULT CACHE keeps fetched results (the PNG files as the service sent them, the text, the info) by
  fingerprint, with a size cap and least-recently-used eviction. An unchanged node re-run after a restart
  is answered from disk with no request at all. A new seed, or any changed input, is a new fingerprint.

Everything lives under one folder: ComfyUI's user directory (`user/wan_image/`) inside ComfyUI, or
WAN_STATE_DIR, or ~/.cache/comfyui-wan-image elsewhere.
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
from typing import Any

from .secrets import get_logger

log = get_logger("wan.store")

ENV_STATE_DIR = "WAN_STATE_DIR"
ENV_CACHE_MB = "WAN_CACHE_MAX_MB"
DEFAULT_CACHE_MB = 2048
TASK_LIFETIME_S = 24 * 3600.0   # task ids and result URLs live 24 hours at the service


def default_state_dir() -> Path:
    env = os.environ.get(ENV_STATE_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/comfyui-wan-image").expanduser()


@dataclass
class JournalEntry:
    fingerprint: str
    task_id: str
    request_id: str | None
    model: str
    mode: str
    created: float
    state: str                 # created | succeeded | fetched | failed | canceled | expired
    urls: list[str]


class TaskJournal:
    """Every async task this machine created, and how far it got."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._db() as db:
            db.execute("""CREATE TABLE IF NOT EXISTS tasks (
                task_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, account TEXT NOT NULL,
                request_id TEXT, model TEXT, mode TEXT, created REAL NOT NULL, updated REAL NOT NULL,
                state TEXT NOT NULL, urls TEXT NOT NULL DEFAULT '[]')""")
            db.execute("CREATE INDEX IF NOT EXISTS tasks_by_fp ON tasks (fingerprint, account, created)")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # One connection per thread; WAL lets several ComfyUI workers (or processes) share the file.
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def record(self, fingerprint: str, account: str, task_id: str, request_id: str | None, model: str,
               mode: str) -> None:
        now = time.time()
        self._db().execute(
            "INSERT OR REPLACE INTO tasks (task_id, fingerprint, account, request_id, model, mode, created, "
            "updated, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'created')",
            (task_id, fingerprint, account, request_id, model, mode, now, now))

    def update(self, task_id: str, state: str, urls: list[str] | None = None) -> None:
        if urls is None:
            self._db().execute("UPDATE tasks SET state=?, updated=? WHERE task_id=?", (state, time.time(), task_id))
        else:
            self._db().execute("UPDATE tasks SET state=?, updated=?, urls=? WHERE task_id=?",
                               (state, time.time(), json.dumps(urls), task_id))

    def resumable(self, fingerprint: str, account: str) -> JournalEntry | None:
        """The newest task for this request that is still worth fetching: created in the last 24 h, not
        fetched, not failed."""
        row = self._db().execute(
            "SELECT fingerprint, task_id, request_id, model, mode, created, state, urls FROM tasks "
            "WHERE fingerprint=? AND account=? AND created>? AND state IN ('created', 'succeeded') "
            "ORDER BY created DESC LIMIT 1",
            (fingerprint, account, time.time() - TASK_LIFETIME_S)).fetchone()
        if row is None:
            return None
        return JournalEntry(row[0], row[1], row[2], row[3], row[4], row[5], row[6], json.loads(row[7]))

    def entries(self) -> list[JournalEntry]:
        rows = self._db().execute("SELECT fingerprint, task_id, request_id, model, mode, created, state, urls "
                                  "FROM tasks ORDER BY created").fetchall()
        return [JournalEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7])) for r in rows]


class ResultCache:
    """Fetched results on disk: <dir>/<fingerprint>/{meta.json, 0.png, 1.png, ...}, LRU within a byte cap."""

    def __init__(self, path: Path, max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        if max_bytes is None:
            max_bytes = int(float(os.environ.get(ENV_CACHE_MB, DEFAULT_CACHE_MB)) * 2**20)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def _dir(self, fingerprint: str) -> Path:
        if not fingerprint.isalnum():
            raise ValueError("a fingerprint is a hex digest")
        return self.path / fingerprint

    def get(self, fingerprint: str) -> tuple[dict[str, Any], list[bytes]] | None:
        folder = self._dir(fingerprint)
        meta_path = folder / "meta.json"
        try:
            meta = json.loads(meta_path.read_text())
            files = [(folder / f"{i}.png").read_bytes() for i in range(meta["count"])]
        except (OSError, ValueError, KeyError):
            return None
        now = time.time()
        os.utime(meta_path, (now, now))  # the access time LRU eviction reads
        return meta, files

    def put(self, fingerprint: str, meta: dict[str, Any], files: list[bytes]) -> None:
        folder = self._dir(fingerprint)
        tmp = self.path / f".{fingerprint}.{os.getpid()}.{threading.get_ident()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for i, data in enumerate(files):
            (tmp / f"{i}.png").write_bytes(data)
        (tmp / "meta.json").write_text(json.dumps({**meta, "count": len(files), "stored": time.time()}))
        with self._lock:
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)  # whole or nothing: a crash never leaves half a result to be served
            self._evict(keep=fingerprint)

    def size(self) -> int:
        return sum(f.stat().st_size for f in self.path.glob("*/*") if f.is_file())

    def _evict(self, keep: str) -> None:
        entries = []
        total = 0
        for folder in self.path.iterdir():
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            try:
                used = (folder / "meta.json").stat().st_mtime
            except OSError:
                used = 0.0
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
    """The journal and the cache, side by side under one folder."""

    def __init__(self, folder: Path | None = None, cache_bytes: int | None = None) -> None:
        self.folder = Path(folder) if folder else default_state_dir()
        self.journal = TaskJournal(self.folder / "journal.sqlite3")
        self.cache = ResultCache(self.folder / "results", cache_bytes)
