"""The pack's state on disk: the journal of paid answers (journal.py) and the result cache, side by side.

The RESULT CACHE keeps fetched results (the PNG files exactly as the service sent them, the text, the
info), with a size cap and least-recently-used eviction. An unchanged node re-run after a restart is
answered from disk with no request at all; a new seed, or any changed input, is a new key. Keys are made by
resumable.py from WHO asked WHERE for WHAT: the account (a hash of the key, never the key), the endpoint
(base URL) and the request's fingerprint, so a result made by the emulator is never served to a graph that
now points at the real service, nor one account's pictures to another.

Several ComfyUI processes may share the folder: entries are written to a temporary folder, each file
fsynced, and renamed into place whole (a crash or a power cut never leaves half a result, or a 0-byte
picture, to be served); the folder is fsynced after the rename. A fresh answer's files are written while
they are still being decoded (`stage`) and put in place only once they have decoded (`publish`), so a reader
never meets a picture that was not checked.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from ..config import state_dir
from ..secrets import get_logger
from .journal import Journal

log = get_logger("wan.store")

ENV_CACHE_MB = "WAN_CACHE_MAX_MB"
DEFAULT_CACHE_MB = 2048
STALE_TMP_S = 3600.0            # a temporary cache folder this old belongs to a write that died


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _sync_dir(path: Path) -> None:
    if os.name == "nt":
        return   # Windows cannot open a folder to fsync it; NTFS journals the rename itself
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
        self.stage(key, meta, files).publish()

    def stage(self, key: str, meta: dict[str, Any], files: list[bytes]) -> "Staged":
        """Write an entry's files (fsynced) where no reader looks yet; `publish()` puts it in place whole. A
        caller stores pictures this way while it still decodes them, and publishes only those that decode."""
        # (a random part too: two hosts sharing a network folder may have the same pid and thread id)
        tmp = self.path / f".{key}.{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(4)}.tmp"
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for i, data in enumerate(files):
                _write_synced(tmp / f"{i}.png", data)
            _write_synced(tmp / "meta.json",
                          json.dumps({**meta, "count": len(files), "stored": time.time()}).encode())
            _sync_dir(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # a full disk must not also leak a half-written folder
            raise
        return Staged(self, key, tmp)

    def _publish(self, key: str, tmp: Path) -> None:
        folder = self._dir(key)
        try:
            with self._lock:
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(tmp, folder)  # whole or nothing: a crash never leaves half a result to be served
            _sync_dir(self.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            with self._lock:
                self._evict(keep=key)
        except OSError as exc:   # the entry is in place: an eviction that failed is for the next write
            log.warning("result cache: could not evict old entries (%s)", exc)

    def drop(self, key: str) -> None:
        """Remove an entry (one whose pictures no longer decode: fetched again from its record)."""
        with self._lock:
            shutil.rmtree(self._dir(key), ignore_errors=True)

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


class Staged:
    """A cache entry written but not yet in place (ResultCache.stage)."""

    def __init__(self, cache: ResultCache, key: str, tmp: Path) -> None:
        self.cache, self.key, self.tmp = cache, key, tmp

    def publish(self) -> None:
        self.cache._publish(self.key, self.tmp)

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class Store:
    """The journal and the cache, side by side under one folder (`config.state_dir()` unless given)."""

    def __init__(self, folder: Path | None = None, cache_bytes: int | None = None) -> None:
        self.folder = Path(folder) if folder else state_dir()
        self.journal = Journal(self.folder / "journal.sqlite3")
        self.cache = ResultCache(self.folder / "results", cache_bytes)
