"""The ledger of billed pictures, and the daily limit per account.

Every picture the service bills is written down: when, which account (the key's fingerprint, never the
key), where (endpoint, region), which model, request_id, task_id, how many, and an estimated cost where a
price is known (pricing.py). The ledger is a SQLite file (WAL, busy timeout) next to the task journal, so
it survives restarts and is shared by every ComfyUI process using the same folder.

The daily limit (WAN_DAILY_IMAGE_LIMIT pictures, and WAN_DAILY_BUDGET in the price's currency, per account
per local day) is checked before a request is sent:

    reservation = ledger.reserve(account, endpoint, model, pictures, answer_id=...)   # refuses past the limit
    ... send ...
    ledger.settle(entry, billing, reservation)   # what the request's Billing (api/money/billing.py) says

A request's entries are keyed by its answer id (the journal's record id), so settling is idempotent: a task
whose run was interrupted (counted unsure), then fetched later by another run, a background follower or
another process, replaces the unsure entry by what the service billed, and counting it twice is impossible.

`reserve` reads today's billed pictures and everything in flight and adds its own in ONE write transaction
(BEGIN IMMEDIATE), so concurrent nodes, threads or servers cannot together slip past the limit. A
request that may have been billed (a connection cut after sending, an interrupted running task, a process
that died with a request in flight) stays counted as "unsure" at the most it could bill; when its task
is fetched later, the real figure replaces it.

The package, one job per module: this one is the store, all the client's round trip needs (no Pillow, no
argparse: it loads with a node's first run); `owners.py` tells which processes on the folder are alive;
`report.py` reads the ledger back as a table and a chart (the WanUsage node); `__main__.py` is the command
line, `python -m api.ledger [--state-dir DIR] [--csv FILE]`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import WanInputError
from ..money.billing import Billing
from ..money.db import Database
from ..money.pricing import ENV_PRICES, unit_price
from ..secrets import get_logger
from .owners import Owners

log = get_logger("wan.ledger")

ENV_DAILY_LIMIT = "WAN_DAILY_IMAGE_LIMIT"
ENV_DAILY_BUDGET = "WAN_DAILY_BUDGET"
LEDGER_FILE = "ledger.sqlite3"

BILLED = "billed"
UNSURE = "unsure"   # may have been billed: counted against the limit at the most it could bill

# An entry's fields as `entries()` gives them (and the CSV export writes them).
FIELDS = ["time", "day", "account", "endpoint", "region", "model", "request_id", "task_id", "pictures", "status",
          "cost", "currency", "note"]


class DailyLimitError(WanInputError):
    """Refused before sending: the request would take the account past its daily limit."""


def local_day(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(time.time() if t is None else t))


def _env_number(name: str, kind: type) -> Any:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        # A limit that cannot be read must not silently become "no limit".
        raise WanInputError(name, f"is {raw!r}; set it to a number (or unset it for no limit)") from None
    if value < 0:
        raise WanInputError(name, f"is {raw}; it cannot be negative")
    return value


def daily_limit() -> int | None:
    return _env_number(ENV_DAILY_LIMIT, int)


def daily_budget() -> float | None:
    return _env_number(ENV_DAILY_BUDGET, float)


@dataclass(frozen=True)
class Entry:
    """Which request a settlement is about: enough to write its line in the ledger."""

    answer_id: str
    account: str
    endpoint: str
    region: str | None
    model: str
    max_pictures: int               # the most it could bill: what an unsure entry counts
    fingerprint: str | None = None
    request_id: str | None = None
    task_id: str | None = None


@dataclass
class Reservation:
    """What a request may bill, counted as in flight until it is settled or released."""

    id: int
    request: Entry
    done: bool = False

    def entry(self, request_id: str | None = None, task_id: str | None = None) -> Entry:
        """The ledger line this reservation settles into (for callers without a journal record)."""
        return replace(self.request, request_id=request_id, task_id=task_id)


def _schema(db: sqlite3.Connection) -> None:
    db.execute("""CREATE TABLE IF NOT EXISTS billed (
        id INTEGER PRIMARY KEY, time REAL NOT NULL, day TEXT NOT NULL, account TEXT NOT NULL,
        endpoint TEXT, region TEXT, model TEXT NOT NULL, request_id TEXT, task_id TEXT,
        pictures INTEGER NOT NULL, status TEXT NOT NULL, cost REAL, currency TEXT,
        fingerprint TEXT, note TEXT)""")
    db.execute("CREATE INDEX IF NOT EXISTS billed_by_day ON billed (account, day)")
    db.execute("""CREATE TABLE IF NOT EXISTS reservations (
        id INTEGER PRIMARY KEY, time REAL NOT NULL, account TEXT NOT NULL, endpoint TEXT,
        region TEXT, model TEXT NOT NULL, pictures INTEGER NOT NULL, cost REAL, currency TEXT,
        fingerprint TEXT, owner TEXT NOT NULL, resumed INTEGER NOT NULL DEFAULT 0)""")
    # 0.3: entries and reservations name the journal record they belong to (settling is keyed by it).
    for table in ("billed", "reservations"):
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if "answer_id" not in columns:
            db.execute(f"ALTER TABLE {table} ADD COLUMN answer_id TEXT")
    db.execute("CREATE INDEX IF NOT EXISTS billed_by_answer ON billed (answer_id)")


class Ledger:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / LEDGER_FILE
        self.owners = Owners(self.folder)
        self.db = Database(self.path, _schema, what="ledger", lost=(
            ". What it held is not counted any more: today's pictures for the daily limit start again from "
            "what the new ledger records (the service's bill is the truth; the damaged file keeps the rest)"))

    def sweep(self) -> None:
        """Reservations of processes that died: their request may have been sent and billed, so they turn
        into unsure entries (the most they could bill); a later fetch of their task replaces them. Its own
        transaction: what it finds stays found when the check that follows refuses."""
        self.db.write(self._sweep)

    def _sweep(self, db: sqlite3.Connection) -> None:
        for (owner,) in db.execute("SELECT DISTINCT owner FROM reservations").fetchall():
            if self.owners.alive(owner):
                continue
            rows = db.execute("SELECT id, time, account, endpoint, region, model, pictures, cost, currency, "
                              "fingerprint, answer_id FROM reservations WHERE owner=?", (owner,)).fetchall()
            for rid, t, account, endpoint, region, model, pictures, cost, currency, fp, answer_id in rows:
                if pictures > 0:
                    db.execute("INSERT INTO billed (time, day, account, endpoint, region, model, pictures, status, "
                               "cost, currency, fingerprint, note, answer_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                               (t, local_day(t), account, endpoint, region, model, pictures, UNSURE, cost, currency,
                                fp, "the process stopped with this request in flight", answer_id))
                db.execute("DELETE FROM reservations WHERE id=?", (rid,))
            log.info("ledger: %d reservation(s) of a stopped process kept as unsure", len(rows))

    # ---- the limit ---------------------------------------------------------------------------------------

    def _check(self, db: sqlite3.Connection, account: str, model: str, region: str | None, pictures: int) -> None:
        limit, budget = daily_limit(), daily_budget()
        if limit is None and budget is None:
            return
        day = local_day()
        billed = db.execute("SELECT COALESCE(SUM(pictures), 0) FROM billed WHERE account=? AND day=?",
                            (account, day)).fetchone()[0]
        flying = db.execute("SELECT COALESCE(SUM(pictures), 0) FROM reservations WHERE account=?",
                            (account,)).fetchone()[0]
        if limit is not None and billed + flying + pictures > limit:
            raise DailyLimitError(ENV_DAILY_LIMIT, (
                f"the daily limit is {limit} picture(s) per account; today ({day}) this account has {billed} "
                f"billed and {flying} in flight, and this run may bill {pictures} more ({model}), which makes "
                f"{billed + flying + pictures}. To allow more, raise {ENV_DAILY_LIMIT} (or unset it) and "
                f"restart ComfyUI, or wait until midnight (local time)"))
        if budget is None:
            return
        price = unit_price(model, region)
        if price is None:
            raise DailyLimitError(ENV_DAILY_BUDGET, (
                f"is {budget:g}, but no price is known for {model} at {region or 'this endpoint'}, so the "
                f"budget cannot be kept; give its price in {ENV_PRICES}, e.g. "
                f"{ENV_PRICES}='{{\"{model}\": {{\"amount\": 0.03, \"currency\": \"USD\"}}}}', or unset "
                f"{ENV_DAILY_BUDGET}"))
        amount, currency, _ = price
        spent = db.execute("SELECT COALESCE(SUM(cost), 0) FROM billed WHERE account=? AND day=? AND currency=?",
                           (account, day, currency)).fetchone()[0]
        held = db.execute("SELECT COALESCE(SUM(cost), 0) FROM reservations WHERE account=? AND currency=?",
                          (account, currency)).fetchone()[0]
        cost = amount * pictures
        if spent + held + cost > budget + 1e-9:
            raise DailyLimitError(ENV_DAILY_BUDGET, (
                f"the daily budget is {budget:g} {currency} per account; today ({day}) this account has spent "
                f"about {spent:g} {currency} and has {held:g} {currency} in flight, and this run may cost "
                f"{cost:g} {currency} more ({pictures} x {model} at {amount:g}), which makes "
                f"{spent + held + cost:g}. To allow more, raise {ENV_DAILY_BUDGET} (or unset it) and restart "
                f"ComfyUI, or wait until midnight (local time)"))

    def check(self, account: str, model: str, pictures: int, *, region: str | None = None) -> None:
        """Refuse now if `pictures` more would pass the limit (reserves nothing): for a node that is about to
        send several requests, so that the whole fan-out is refused before any is sent."""
        if pictures <= 0:
            return
        self.sweep()
        self.db.write(lambda db: self._check(db, account, model, region, pictures))

    def reserve(self, account: str, endpoint: str, model: str, pictures: int, *, region: str | None = None,
                fingerprint: str | None = None, answer_id: str | None = None) -> Reservation:
        """Count `pictures` as in flight for `account`, or raise DailyLimitError if that passes today's limit.
        `answer_id` names the journal record the request's settlement (and, if this process dies first, its
        unsure entry) will carry."""
        owner = self.owners.me()
        pictures = max(0, int(pictures))
        answer_id = answer_id or uuid.uuid4().hex
        price = unit_price(model, region)
        cost, currency = (price[0] * pictures, price[1]) if price else (None, None)
        self.sweep()

        def work(db: sqlite3.Connection) -> int:
            if pictures:
                self._check(db, account, model, region, pictures)
            cur = db.execute("INSERT INTO reservations (time, account, endpoint, region, model, pictures, cost, "
                             "currency, fingerprint, owner, resumed, answer_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                             (time.time(), account, endpoint, region, model, pictures, cost, currency, fingerprint,
                              owner, 0, answer_id))
            return cur.lastrowid
        rid = self.db.write(work)
        return Reservation(rid, Entry(answer_id, account, endpoint, region, model, pictures, fingerprint))

    def release(self, reservation: Reservation) -> None:
        """Nothing was sent: the room is free again (a request that reached the service is settled instead)."""
        if reservation.done:
            return
        reservation.done = True
        self.db.write(lambda db: db.execute("DELETE FROM reservations WHERE id=?", (reservation.id,)))

    def settle(self, entry: Entry, billing: Billing, reservation: Reservation | None = None) -> None:
        """Write down what `billing` says the request cost, replacing whatever was written for the same
        answer before (an unsure entry left by an interrupted run or a process that died), and end the
        reservation. Billed pictures are entries of status billed; pictures that may have been billed without
        our knowing are one entry of status unsure, at the most the request could still have billed."""
        if reservation is not None:
            reservation.done = True
        price = unit_price(entry.model, entry.region)

        def work(db: sqlite3.Connection) -> None:
            legacy = " OR (task_id=? AND status=? AND answer_id IS NULL)" if entry.task_id else ""
            mine = f"account=? AND (answer_id=?{legacy})"
            args = (entry.account, entry.answer_id) + ((entry.task_id, UNSURE) if entry.task_id else ())
            # Settled again (fetched later, resumed elsewhere): the entry keeps the day it was first written,
            # and an unsure count written before (by a version that knew the request's maximum) is not lowered.
            first, before = db.execute(f"SELECT MIN(time), COALESCE(SUM(pictures), 0) FROM billed WHERE {mine}",
                                       args).fetchone()
            when = first if first is not None else time.time()
            rows = []
            if billing.pictures > 0:
                rows.append((BILLED, billing.pictures, billing.why if billing.unsure else None))
            most = max(entry.max_pictures, before)
            if billing.unsure and most > billing.pictures:
                rows.append((UNSURE, most - billing.pictures, billing.why))
            if reservation is not None:
                db.execute("DELETE FROM reservations WHERE id=?", (reservation.id,))
            # The request's reservation in another process (one that died with it in flight, its task resumed
            # here from the journal): settled now, so a later sweep must not turn it into an unsure entry too.
            db.execute("DELETE FROM reservations WHERE account=? AND answer_id=?", (entry.account, entry.answer_id))
            # (Unsure entries of journals before 0.3 name the task, not the answer.)
            db.execute(f"DELETE FROM billed WHERE {mine}", args)
            for status, pictures, note in rows:
                cost, currency = (round(price[0] * pictures, 6), price[1]) if price else (None, None)
                db.execute("INSERT INTO billed (time, day, account, endpoint, region, model, request_id, task_id, "
                           "pictures, status, cost, currency, fingerprint, note, answer_id) "
                           "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           (when, local_day(when), entry.account, entry.endpoint, entry.region, entry.model,
                            entry.request_id, entry.task_id, pictures, status, cost, currency, entry.fingerprint,
                            note, entry.answer_id))
        self.db.write(work)

    # ---- reading it back ------------------------------------------------------------------------------------------

    def entries(self, since_day: str | None = None) -> list[dict[str, Any]]:
        query = ("SELECT time, day, account, endpoint, region, model, request_id, task_id, pictures, status, cost, "
                 "currency, note FROM billed")
        args: tuple = ()
        if since_day:
            query += " WHERE day>=?"
            args = (since_day,)
        rows = self.db.read(lambda db: db.execute(query + " ORDER BY time", args).fetchall())
        return [dict(zip(FIELDS, row)) for row in rows]

    def in_flight(self) -> int:
        return self.db.read(lambda db: db.execute("SELECT COALESCE(SUM(pictures), 0) FROM reservations").fetchone()[0])


class Meter:
    """The ledger as one client sees it: one account (the key's fingerprint) at one endpoint. The client's
    round trip reserves before a request can be sent, then settles to what its Billing says."""

    def __init__(self, ledger: Ledger, account: str, endpoint: str, region: str | None) -> None:
        self.ledger, self.account, self.endpoint, self.region = ledger, account, endpoint, region

    def reserve(self, req: Any, fingerprint: str, answer_id: str) -> Reservation:
        return self.ledger.reserve(self.account, self.endpoint, req.model, req.max_billable_images,
                                   region=self.region, fingerprint=fingerprint, answer_id=answer_id)

    def entry(self, rec: Any) -> Entry:
        """The ledger's view of a journal record (api/money/journal.py Answer)."""
        return Entry(answer_id=rec.id, account=self.account, endpoint=self.endpoint, region=self.region,
                     model=rec.model, max_pictures=rec.max_pictures, fingerprint=rec.fingerprint,
                     request_id=rec.request_id, task_id=rec.task_id)

    def settle(self, rec: Any, billing: Billing, reservation: Reservation | None = None) -> None:
        self.ledger.settle(self.entry(rec), billing, reservation)

    def release(self, reservation: Reservation) -> None:
        self.ledger.release(reservation)


_ledgers: dict[str, Ledger] = {}
_ledgers_lock = threading.Lock()


def open_ledger(folder: Path) -> Ledger:
    """The ledger of a state folder (one object per folder in a process)."""
    key = str(Path(folder).absolute())
    with _ledgers_lock:
        ledger = _ledgers.get(key)
        if ledger is None:
            ledger = _ledgers[key] = Ledger(Path(folder))
        return ledger
