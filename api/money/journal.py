"""The journal: one record per paid (or maybe paid) answer, written the moment the service says so.

A record is written:
  * when an async task is created (state `created`: its task id, so a restart polls it instead of paying
    again), and
  * the moment an answer says what was made: a SUCCEEDED task, a sync body, each stream frame carrying a
    picture (state `paid`: the result URLs and when they expire, usage, text, the account and endpoint and
    the request's fingerprint).
Only then are the ledger settled, the pictures downloaded and the cache filled; each of those steps can be
done again from the record (state `fetched` once the pictures are in the cache). While the URLs live (24 h),
a failure after payment (a download outage, a full disk, Cancel, a restart) never costs a new creation: the
next identical run, or the WanRecentResults node, downloads them. A record that will bring nothing more
(the task failed or was canceled, the service lost it, a sync answer cut after sending) is `ended`, with
what it cost.

Records belong to an ACCOUNT at an ENDPOINT (`account`: the key's fingerprint @ the base URL, never the key)
and are found by the request's fingerprint (model, every parameter, the input pictures, the seed).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..result import WanResult
from ..service.answers import TASK_LIFETIME_S
from ..service.download import url_expiry
from .billing import Billing
from .db import Database

CREATED, PAID, FETCHED, ENDED = "created", "paid", "fetched", "ended"
PROMPT_SHOWN = 80   # characters of the prompt kept for the recent-results list


def new_answer_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Answer:
    """One journal record."""

    id: str
    account: str
    fingerprint: str
    model: str
    mode: str
    transport: str
    prompt: str
    created: float                  # wall clock: when the request was sent
    state: str
    task_id: str | None = None
    request_id: str | None = None
    billing: Billing | None = None
    max_pictures: int = 0
    answer: dict[str, Any] = field(default_factory=dict)   # content, usage, failures, actual_prompts, ...
    expires: float | None = None    # when the first result URL stops working
    updated: float = 0.0

    @property
    def urls(self) -> list[str]:
        return [item["url"] for item in self.answer.get("content", []) if item.get("type") == "image"]

    @property
    def incomplete(self) -> str:
        return self.answer.get("incomplete") or ""

    def urls_alive(self, now: float | None = None) -> bool:
        return bool(self.urls) and (self.expires is None or self.expires > (now or time.time()) + 5)

    def result(self) -> WanResult:
        """The paid answer as a result whose pictures are still to be fetched (or read from the cache)."""
        a = self.answer
        return WanResult(model=self.model, mode=self.mode, transport=self.transport, images=[],
                         content=[dict(c) for c in a.get("content", [])], request_id=self.request_id,
                         task_id=self.task_id, usage=a.get("usage") or {}, failures=a.get("failures") or [],
                         actual_prompts=a.get("actual_prompts") or [], endpoint=a.get("endpoint", ""),
                         region=a.get("region"), incomplete=self.incomplete, billing=self.billing,
                         answer_id=self.id)


_COLUMNS = ("id, account, fingerprint, model, mode, transport, prompt, created, state, task_id, request_id, "
            "pictures, unsure, why, max_pictures, answer, expires, updated")


def _schema(db: sqlite3.Connection) -> None:
    db.execute("""CREATE TABLE IF NOT EXISTS answers (
        id TEXT PRIMARY KEY, account TEXT NOT NULL, fingerprint TEXT NOT NULL, model TEXT NOT NULL,
        mode TEXT NOT NULL, transport TEXT NOT NULL, prompt TEXT NOT NULL DEFAULT '', created REAL NOT NULL,
        state TEXT NOT NULL, task_id TEXT, request_id TEXT, pictures INTEGER, unsure INTEGER, why TEXT,
        max_pictures INTEGER NOT NULL DEFAULT 0, answer TEXT NOT NULL DEFAULT '{}', expires REAL,
        updated REAL NOT NULL)""")
    db.execute("CREATE INDEX IF NOT EXISTS answers_by_request ON answers (account, fingerprint, created)")
    db.execute("CREATE INDEX IF NOT EXISTS answers_by_time ON answers (account, created)")
    # Journals of 0.2 kept only async tasks, in `tasks`: those still worth fetching become records, so an
    # upgrade in the middle of a task does not pay for it again.
    if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='tasks'").fetchone():
        db.execute("""INSERT OR IGNORE INTO answers (id, account, fingerprint, model, mode, transport, created, state,
                      task_id, request_id, updated)
                      SELECT task_id, account, fingerprint, COALESCE(model, ''), COALESCE(mode, ''), 'async',
                             created, 'created', task_id, request_id, updated
                      FROM tasks WHERE state IN ('created', 'succeeded') AND created > ?""",
                   (time.time() - TASK_LIFETIME_S,))
        db.execute("ALTER TABLE tasks RENAME TO tasks_v02")


def _row(row: tuple) -> Answer:
    (id_, account, fingerprint, model, mode, transport, prompt, created, state, task_id, request_id, pictures,
     unsure, why, max_pictures, answer, expires, updated) = row
    billing = None if pictures is None else Billing(pictures=pictures, unsure=bool(unsure),
                                                    final=state != CREATED, why=why or "")
    return Answer(id=id_, account=account, fingerprint=fingerprint, model=model, mode=mode, transport=transport,
                  prompt=prompt, created=created, state=state, task_id=task_id, request_id=request_id,
                  billing=billing, max_pictures=max_pictures, answer=json.loads(answer or "{}"),
                  expires=expires, updated=updated)


def answer_of(result: WanResult) -> dict[str, Any]:
    return {"content": result.content, "usage": result.usage, "failures": result.failures,
            "actual_prompts": result.actual_prompts, "endpoint": result.endpoint, "region": result.region,
            "incomplete": result.incomplete}


def _expiry(result: WanResult) -> float | None:
    stamps = [url_expiry(u) for u in result.urls]
    known = [s for s in stamps if s]
    if known:
        return float(min(known))
    return None


class Journal:
    def __init__(self, path: Path) -> None:
        self.db = Database(Path(path), _schema, what="journal")
        self.path = self.db.path

    # ---- writing -----------------------------------------------------------------------------------------

    def open(self, rec: Answer) -> None:
        """A new record (a task just created, or the first sign of a paid answer)."""
        now = time.time()
        rec.updated = now
        b = rec.billing
        self.db.write(lambda db: db.execute(
            f"INSERT OR REPLACE INTO answers ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (rec.id, rec.account, rec.fingerprint, rec.model, rec.mode, rec.transport, rec.prompt[:PROMPT_SHOWN],
             rec.created, rec.state, rec.task_id, rec.request_id, None if b is None else b.pictures,
             None if b is None else int(b.unsure), None if b is None else b.why, rec.max_pictures,
             json.dumps(rec.answer, ensure_ascii=False), rec.expires, now)))

    def paid(self, rec: Answer, result: WanResult, billing: Billing) -> None:
        """The answer says what was made: keep it, with where the pictures are and when they expire."""
        rec.billing = billing
        rec.request_id = result.request_id or rec.request_id
        rec.task_id = result.task_id or rec.task_id
        rec.answer = answer_of(result)
        # An answer that made no picture and billed none (every picture filtered, interleave in text alone)
        # has nothing to fetch or serve again: it ends here, so the recent-results list does not offer it
        # and an identical run later is simply sent (nothing was paid, no URL expired).
        nothing = not rec.urls and billing.final and billing.verdict == "no"
        rec.state = ENDED if nothing else PAID
        rec.expires = _expiry(result) or rec.created + TASK_LIFETIME_S
        result.answer_id = rec.id
        self.open(rec)

    def fetched(self, rec_id: str) -> None:
        self.db.write(lambda db: db.execute("UPDATE answers SET state=?, updated=? WHERE id=? AND state IN (?, ?)",
                                            (FETCHED, time.time(), rec_id, PAID, FETCHED)))

    def ended(self, rec_id: str, billing: Billing) -> None:
        """Nothing more will come of this record; `billing` says what it cost."""
        self.db.write(lambda db: db.execute(
            "UPDATE answers SET state=?, pictures=?, unsure=?, why=?, updated=? WHERE id=? AND state=?",
            (ENDED, billing.pictures, int(billing.unsure), billing.why, time.time(), rec_id, CREATED)))

    # ---- reading -------------------------------------------------------------------------------------------

    def get(self, rec_id: str) -> Answer | None:
        row = self.db.read(lambda db: db.execute(f"SELECT {_COLUMNS} FROM answers WHERE id=?",
                                                 (rec_id,)).fetchone())
        return _row(row) if row else None

    def find(self, account: str, fingerprint: str) -> Answer | None:
        """The newest record of this request that can still give its pictures without a new creation: a
        task not yet ended (created within 24 h), or a complete paid answer. Answers cut short (a stream
        that broke) are not offered to an identical run: that is the user's to send again."""
        now = time.time()
        rows = self.db.read(lambda db: db.execute(
            f"SELECT {_COLUMNS} FROM answers WHERE account=? AND fingerprint=? AND created>? "
            "AND state IN (?, ?, ?) ORDER BY created DESC", (account, fingerprint, now - TASK_LIFETIME_S,
                                                             CREATED, PAID, FETCHED)).fetchall())
        for row in rows:
            rec = _row(row)
            if rec.state == CREATED or not rec.incomplete:
                return rec
        return None

    def recent(self, account: str, *, within: float = TASK_LIFETIME_S) -> list[Answer]:
        """This account's records that were (or may have been) paid in the last `within` seconds, newest
        first: what the WanRecentResults node and `python -m api.recent` offer."""
        rows = self.db.read(lambda db: db.execute(
            f"SELECT {_COLUMNS} FROM answers WHERE account=? AND created>? AND state IN (?, ?, ?) "
            "ORDER BY created DESC", (account, time.time() - within, CREATED, PAID, FETCHED)).fetchall())
        return [_row(r) for r in rows]

    def entries(self) -> list[Answer]:
        rows = self.db.read(lambda db: db.execute(f"SELECT {_COLUMNS} FROM answers ORDER BY created").fetchall())
        return [_row(r) for r in rows]
