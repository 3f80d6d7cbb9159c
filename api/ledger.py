"""The ledger of billed pictures, and the daily limit per account.

Every picture the service bills is written down: when, which account (the key's fingerprint, never the
key), where (endpoint, region), which model, request_id, task_id, how many, and an estimated cost where a
price is known (pricing.py). The ledger is a SQLite file (WAL, busy timeout) next to the task journal, so
it survives restarts and is shared by every ComfyUI process using the same folder.

The daily limit (WAN_DAILY_IMAGE_LIMIT pictures, and WAN_DAILY_BUDGET in the price's currency, per account
per local day) is checked before a request is sent:

    reservation = ledger.reserve(account, endpoint, model, pictures)   # refuses past the limit
    ... send ...
    ledger.settle(reservation, billed_pictures, request_id, task_id)   # what the service billed
    ledger.release(reservation)                                         # nothing was billed
    ledger.keep(reservation, ...)                                       # it may have been billed

`reserve` reads today's billed pictures and everything in flight and adds its own in ONE write transaction
(BEGIN IMMEDIATE), so concurrent nodes, threads or servers cannot together slip past the limit. A
request that may have been billed (a connection cut after sending, an interrupted running task, a process
that died with a request in flight) stays counted as "unsure" at the most it could bill; when its task
is fetched later, the real figure replaces it.

    python -m api.ledger [--state-dir DIR] [--csv FILE]

prints today's and this month's pictures and cost per model, and exports the ledger as CSV.
"""

from __future__ import annotations

import argparse
import csv
import os
import sqlite3
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from . import filelock
from .errors import (
    Interrupted, TaskCanceledError, TaskExpiredError, WanAPIError, WanConnectionError, WanError, WanInputError,
)
from .pricing import ENV_PRICES, unit_price
from .secrets import get_logger

log = get_logger("wan.ledger")

ENV_DAILY_LIMIT = "WAN_DAILY_IMAGE_LIMIT"
ENV_DAILY_BUDGET = "WAN_DAILY_BUDGET"
LEDGER_FILE = "ledger.sqlite3"
BUSY_TIMEOUT_S = 30.0

BILLED = "billed"
UNSURE = "unsure"   # may have been billed: counted against the limit at the most it could bill

CSV_FIELDS = ["time", "day", "account", "endpoint", "region", "model", "request_id", "task_id", "pictures",
              "status", "cost", "currency", "note"]


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


@dataclass
class Reservation:
    id: int
    account: str
    endpoint: str
    region: str | None
    model: str
    pictures: int
    fingerprint: str | None
    resumed: bool
    done: bool = False


class Ledger:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / LEDGER_FILE
        self._local = threading.local()
        self._owner: str | None = None
        self._owner_fd: int | None = None
        self._owner_lock = threading.Lock()
        self._write(self._create)

    @staticmethod
    def _create(db: sqlite3.Connection) -> None:
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

    # ---- SQLite -------------------------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # One connection per thread; WAL lets readers run beside the one writer, and the busy timeout
            # makes a writer wait its turn instead of failing with "database is locked".
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            _retry_locked(lambda: db.execute("PRAGMA journal_mode=WAL"))
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def _write(self, work: Any) -> Any:
        """Run `work(db)` in one write transaction; start it again if SQLite still answers "database is
        locked" after its busy timeout (some lock waits, such as WAL recovery, skip the busy handler).
        A transaction either commits whole or not at all, so starting it again is safe."""
        def attempt() -> Any:
            with self._txn() as db:
                return work(db)
        return _retry_locked(attempt)

    @contextmanager
    def _txn(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at its start (BEGIN IMMEDIATE): the read-check-insert of `reserve`
        cannot interleave with another writer's."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except DailyLimitError:
            db.execute("COMMIT")   # a refusal wrote nothing; what the sweep found stays found
            raise
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # ---- who is alive ---------------------------------------------------------------------------------------

    def _me(self) -> str:
        """This process's owner mark: a lock file held for the life of the process. A reservation whose
        owner's file is no longer locked belongs to a process that died."""
        with self._owner_lock:
            if self._owner is None:
                owners = self.folder / "ledger-owners"
                owners.mkdir(exist_ok=True)
                token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
                tmp = owners / f".{token}.tmp"
                if os.name == "nt":
                    # Windows cannot rename an open file; a mark found unlocked in the instant before the lock
                    # is only a new, empty one.
                    tmp = owners / f"{token}.lock"
                fd = filelock.open_lock_file(tmp)
                if not filelock.try_lock(fd):
                    raise RuntimeError(f"cannot lock {tmp}")
                if os.name != "nt":
                    # Locked before it gets its name, so nobody can find it unlocked and call us dead.
                    os.replace(tmp, owners / f"{token}.lock")
                self._owner, self._owner_fd = token, fd
                # The marks of processes that ended with nothing in flight: nobody else would remove them.
                for other in owners.glob("*.lock"):
                    if other.stem != token:
                        self._alive(other.stem)
            return self._owner

    def _alive(self, owner: str) -> bool:
        if owner == self._owner:
            return True
        path = self.folder / "ledger-owners" / f"{owner}.lock"
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            if filelock.try_lock(fd):   # nobody holds it: its process is gone
                try:
                    path.unlink()
                except OSError:
                    pass
                filelock.unlock(fd)
                return False
            return True
        finally:
            os.close(fd)

    def _sweep(self, db: sqlite3.Connection) -> None:
        """Reservations of processes that died: their request may have been sent and billed, so they turn
        into unsure entries (the most they could bill); a later fetch of their task replaces them."""
        for (owner,) in db.execute("SELECT DISTINCT owner FROM reservations").fetchall():
            if self._alive(owner):
                continue
            rows = db.execute("SELECT id, time, account, endpoint, region, model, pictures, cost, currency, "
                              "fingerprint FROM reservations WHERE owner=?", (owner,)).fetchall()
            for rid, t, account, endpoint, region, model, pictures, cost, currency, fp in rows:
                if pictures > 0:
                    db.execute("INSERT INTO billed (time, day, account, endpoint, region, model, pictures, status, "
                               "cost, currency, fingerprint, note) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                               (t, local_day(t), account, endpoint, region, model, pictures, UNSURE, cost, currency,
                                fp, "the process stopped with this request in flight"))
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
        def work(db: sqlite3.Connection) -> None:
            self._sweep(db)
            self._check(db, account, model, region, pictures)
        self._write(work)

    def reserve(self, account: str, endpoint: str, model: str, pictures: int, *, region: str | None = None,
                fingerprint: str | None = None, resumed: bool = False) -> Reservation:
        """Count `pictures` as in flight for `account`, or raise DailyLimitError if that passes today's limit.

        `resumed`: the request fetches a task created earlier (no new creation): it reserves nothing and is
        never refused, and its settlement replaces what the earlier attempt left as unsure."""
        owner = self._me()
        pictures = 0 if resumed else max(0, int(pictures))
        price = unit_price(model, region)
        cost, currency = (price[0] * pictures, price[1]) if price else (None, None)
        def work(db: sqlite3.Connection) -> int:
            self._sweep(db)
            if pictures:
                self._check(db, account, model, region, pictures)
            cur = db.execute("INSERT INTO reservations (time, account, endpoint, region, model, pictures, cost, "
                             "currency, fingerprint, owner, resumed) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                             (time.time(), account, endpoint, region, model, pictures, cost, currency, fingerprint,
                              owner, int(resumed)))
            return cur.lastrowid
        rid = self._write(work)
        return Reservation(rid, account, endpoint, region, model, pictures, fingerprint, resumed)

    def settle(self, reservation: Reservation, billed_pictures: int, request_id: str | None = None,
               task_id: str | None = None, *, note: str | None = None) -> None:
        """The service billed `billed_pictures` for this request: record them, end the reservation."""
        self._close(reservation, BILLED, int(billed_pictures or 0), request_id, task_id, note)

    def keep(self, reservation: Reservation, request_id: str | None = None, task_id: str | None = None,
             *, note: str | None = None) -> None:
        """It may have been billed (and we cannot know): keep it counted, as unsure, at the most it could bill."""
        self._close(reservation, UNSURE, reservation.pictures, request_id, task_id, note)

    def release(self, reservation: Reservation) -> None:
        """Nothing was sent, or the service billed nothing."""
        if reservation.done:
            return
        reservation.done = True
        self._write(lambda db: db.execute("DELETE FROM reservations WHERE id=?", (reservation.id,)))

    def _close(self, r: Reservation, status: str, pictures: int, request_id: str | None, task_id: str | None,
               note: str | None) -> None:
        if r.done:
            return
        r.done = True
        now = time.time()
        price = unit_price(r.model, r.region)
        cost, currency = (round(price[0] * pictures, 6), price[1]) if price else (None, None)
        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM reservations WHERE id=?", (r.id,))
            if status == BILLED and task_id:
                # The same task fetched at last: what an earlier attempt left as unsure is now known.
                db.execute("DELETE FROM billed WHERE account=? AND status=? AND task_id=?", (r.account, UNSURE, task_id))
                if r.resumed and r.fingerprint:
                    db.execute("DELETE FROM billed WHERE account=? AND status=? AND fingerprint=? AND task_id IS NULL",
                               (r.account, UNSURE, r.fingerprint))
            if pictures > 0:
                db.execute("INSERT INTO billed (time, day, account, endpoint, region, model, request_id, task_id, "
                           "pictures, status, cost, currency, fingerprint, note) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           (now, local_day(now), r.account, r.endpoint, r.region, r.model, request_id, task_id,
                            pictures, status, cost, currency, r.fingerprint, note))
        self._write(work)

    # ---- after a request: what was billed ---------------------------------------------------------------------

    def settle_result(self, reservation: Reservation, result: Any) -> None:
        """Settle to what the service says it billed (usage.image_count), else to the pictures it returned."""
        usage = getattr(result, "usage", None) or {}
        billed = usage.get("image_count", len(getattr(result, "urls", []) or []))
        self.settle(reservation, int(billed or 0), getattr(result, "request_id", None),
                    getattr(result, "task_id", None))

    def settle_error(self, reservation: Reservation, exc: BaseException) -> None:
        """An error ended the request: release what cannot have been billed, keep counted what may have."""
        request_id, task_id = getattr(exc, "request_id", None), getattr(exc, "task_id", None)
        if isinstance(exc, Interrupted):
            # Stopped before anything went out has no task, no request id and no partial stream; a stream
            # stopped before its first frame has a (still empty) partial: sent, and maybe billed.
            if exc.task_canceled or not (task_id or request_id or exc.partial is not None):
                self.release(reservation)   # canceled while queued, or stopped before anything was sent
            else:
                self.keep(reservation, request_id, task_id, note="interrupted; the service may finish and bill it")
        elif isinstance(exc, (TaskCanceledError, TaskExpiredError)):
            self.release(reservation)
        elif isinstance(exc, WanAPIError) and exc.status == 200 and task_id:
            self.release(reservation)       # the task FAILED: failed generations are not billed
        elif isinstance(exc, WanAPIError) and exc.partial is not None:
            # An error frame after some pictures: those were made, and are billed.
            self.settle_result(reservation, exc.partial)
        elif isinstance(exc, WanAPIError) and exc.status in (502, 504):
            # A gateway's answer: the service behind it may have taken the request (which is why the
            # transport does not resend a billable request on these).
            self.keep(reservation, request_id, task_id, note=f"HTTP {exc.status} from a gateway; it may have run")
        elif isinstance(exc, WanConnectionError) and exc.maybe_billed:
            self.keep(reservation, request_id, task_id, note=str(exc)[:200])
        elif task_id:
            self.keep(reservation, request_id, task_id, note="the task was created; its end is unknown")
        elif isinstance(exc, WanError):
            self.release(reservation)       # refused by the service, or never sent
        else:
            self.keep(reservation, request_id, task_id, note=f"unexpected {type(exc).__name__}")

    # ---- reading it back ------------------------------------------------------------------------------------------

    def entries(self, since_day: str | None = None) -> list[dict[str, Any]]:
        query = ("SELECT time, day, account, endpoint, region, model, request_id, task_id, pictures, status, cost, "
                 "currency, note FROM billed")
        args: tuple = ()
        if since_day:
            query += " WHERE day>=?"
            args = (since_day,)
        rows = self._db().execute(query + " ORDER BY time", args).fetchall()
        return [dict(zip(CSV_FIELDS, row)) for row in rows]

    def in_flight(self) -> int:
        return self._db().execute("SELECT COALESCE(SUM(pictures), 0) FROM reservations").fetchone()[0]

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """Today's and this month's pictures and estimated cost, per model (all accounts of this folder)."""
        self._write(self._sweep)
        day = local_day(now)
        month = day[:7]
        rows = self.entries(since_day=month + "-01")
        models: dict[str, dict[str, Any]] = {}
        per_day: dict[str, dict[str, int]] = {}
        accounts: dict[str, int] = {}
        for e in rows:
            m = models.setdefault(e["model"], {"model": e["model"], "today": 0, "today_unsure": 0, "month": 0,
                                               "month_unsure": 0, "today_cost": {}, "month_cost": {}})
            unsure = e["status"] == UNSURE
            for period in (("today",) if e["day"] == day else ()) + ("month",):
                m[period] += e["pictures"]
                if unsure:
                    m[period + "_unsure"] += e["pictures"]
                if e["cost"] is not None:
                    costs = m[period + "_cost"]
                    costs[e["currency"]] = round(costs.get(e["currency"], 0.0) + e["cost"], 6)
            per_day.setdefault(e["day"], {}).setdefault(e["model"], 0)
            per_day[e["day"]][e["model"]] += e["pictures"]
            if e["day"] == day:
                accounts[e["account"]] = accounts.get(e["account"], 0) + e["pictures"]
        return {"day": day, "month": month, "models": sorted(models.values(), key=lambda m: m["model"]),
                "per_day": per_day, "accounts_today": accounts, "in_flight": self.in_flight(),
                "limit": _safe(daily_limit), "budget": _safe(daily_budget), "ledger": str(self.path)}

    def export_csv(self, out: Any, since_day: str | None = None) -> int:
        rows = self.entries(since_day)
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(row["time"]))})
        return len(rows)


def _retry_locked(work: Any, attempts: int = 8) -> Any:
    for attempt in range(attempts):
        try:
            return work()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or attempt == attempts - 1:
                raise
            # Worded apart from SQLite's own "database is locked", which tests and the soak count as a failure.
            log.info("ledger: busy (another process on this folder is writing); trying again")
            time.sleep(min(1.0, 0.02 * 2 ** attempt))


def _safe(read: Any) -> Any:
    try:
        return read()
    except WanInputError as exc:
        return str(exc)


def _cost_text(costs: dict[str, float]) -> str:
    return ", ".join(f"{amount:.2f} {currency}" for currency, amount in sorted(costs.items())) or "-"


def report_text(summary: dict[str, Any]) -> str:
    """The printout `python -m api.ledger` and the WanUsage node show."""
    lines = [f"Wan pictures billed, today ({summary['day']}) and this month ({summary['month']}), local time",
             f"ledger: {summary['ledger']}", ""]
    header = f"{'model':<22}{'today':>7}{'est. cost today':>20}{'this month':>12}{'est. cost this month':>24}"
    lines += [header, "-" * len(header)]
    total_today = total_month = unsure_today = unsure_month = 0
    for m in summary["models"]:
        lines.append(f"{m['model']:<22}{m['today']:>7}{_cost_text(m['today_cost']):>20}{m['month']:>12}"
                     f"{_cost_text(m['month_cost']):>24}")
        total_today += m["today"]
        total_month += m["month"]
        unsure_today += m["today_unsure"]
        unsure_month += m["month_unsure"]
    if not summary["models"]:
        lines.append("(nothing billed this month)")
    lines.append("-" * len(header))
    lines.append(f"{'all models':<22}{total_today:>7}{'':>20}{total_month:>12}")
    if unsure_today or unsure_month:
        lines.append(f"of which unsure: {unsure_today} today, {unsure_month} this month (requests cut or "
                     "interrupted after sending, counted at the most they could bill)")
    lines.append("")
    limit, budget = summary["limit"], summary["budget"]
    lines.append(f"daily limit ({ENV_DAILY_LIMIT}): " + ("none" if limit is None else f"{limit} pictures per account"))
    if budget is not None:
        lines.append(f"daily budget ({ENV_DAILY_BUDGET}): {budget}")
    for account, count in sorted(summary["accounts_today"].items()):
        used = f"{count}" + (f" of {limit}" if isinstance(limit, int) else "")
        lines.append(f"account {account}: {used} today")
    if summary["in_flight"]:
        lines.append(f"in flight now: {summary['in_flight']} picture(s)")
    lines.append("Estimates use the price table or WAN_PRICES; the bill is the truth.")
    return "\n".join(lines)


def chart(summary: dict[str, Any], width: int = 640, height: int = 260) -> Any:
    """This month's pictures per day, a bar per day stacked by model: an HxWx3 uint8 array (Pillow)."""
    import calendar

    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    palette = [(66, 133, 244), (234, 67, 53), (251, 188, 5), (52, 168, 83), (171, 71, 188), (0, 172, 193)]
    year, month = int(summary["month"][:4]), int(summary["month"][5:7])
    days = calendar.monthrange(year, month)[1]
    models = [m["model"] for m in summary["models"]]
    colour = {name: palette[i % len(palette)] for i, name in enumerate(models)}
    img = Image.new("RGB", (width, height), (250, 250, 250))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    left, right, top, bottom = 36, width - 10, 28, height - 24
    totals = [sum(summary["per_day"].get(f"{summary['month']}-{d:02d}", {}).values()) for d in range(1, days + 1)]
    peak = max([1, *totals])
    draw.text((left, 6), f"pictures billed per day, {summary['month']} (peak {peak})", fill=(30, 30, 30), font=font)
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=(120, 120, 120))
    step = (right - left) / days
    today = int(summary["day"][8:10]) if summary["day"][:7] == summary["month"] else None
    for d in range(1, days + 1):
        x0 = left + (d - 1) * step + 1
        x1 = left + d * step - 1
        y = bottom
        for name, count in sorted(summary["per_day"].get(f"{summary['month']}-{d:02d}", {}).items()):
            h = (bottom - top) * count / peak
            draw.rectangle([x0, y - h, x1, y], fill=colour.get(name, (120, 120, 120)))
            y -= h
        if d == 1 or d % 5 == 0 or d == today:
            draw.text((x0, bottom + 4), str(d), fill=(0, 0, 0) if d == today else (90, 90, 90), font=font)
    # Legend: one line of coloured names at the top right.
    x = width - 10
    for name in reversed(models):
        w = int(draw.textlength(name, font=font)) + 16
        x -= w
        draw.rectangle([x, 8, x + 8, 16], fill=colour[name])
        draw.text((x + 11, 6), name, fill=(30, 30, 30), font=font)
    return np.array(img, dtype=np.uint8)


class Meter:
    """The ledger as one client sees it: one account (the key's fingerprint) at one endpoint. The client's
    round trip calls `reserve` before a request can be sent, then `settled` or `failed`."""

    def __init__(self, ledger: Ledger, account: str, endpoint: str, region: str | None) -> None:
        self.ledger, self.account, self.endpoint, self.region = ledger, account, endpoint, region

    def reserve(self, req: Any, fingerprint: str, *, resumed: bool) -> Reservation:
        return self.ledger.reserve(self.account, self.endpoint, req.model, req.max_billable_images,
                                   region=self.region, fingerprint=fingerprint, resumed=resumed)

    def settled(self, reservation: Reservation, result: Any) -> None:
        self.ledger.settle_result(reservation, result)

    def failed(self, reservation: Reservation, exc: BaseException) -> None:
        self.ledger.settle_error(reservation, exc)


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


def _default_folder() -> Path:
    from .config import ENV_STATE_DIR, state_dir

    if os.environ.get(ENV_STATE_DIR, "").strip():
        return state_dir()
    # Run from the pack inside ComfyUI/custom_nodes: ComfyUI's user folder, where the nodes keep it.
    pack = Path(__file__).absolute().parents[1]
    for comfy in (pack.parents[1], Path.cwd().parents[1] if len(Path.cwd().parents) > 1 else None):
        if comfy is not None and (comfy / "user" / "wan_image").is_dir():
            return state_dir(comfy / "user" / "wan_image")
    return state_dir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.ledger",
                                     description="Pictures billed today and this month, per model; CSV export.")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="the folder with ledger.sqlite3: ComfyUI/user/wan_image (found when run from the pack "
                             "inside custom_nodes), or WAN_STATE_DIR")
    parser.add_argument("--csv", metavar="FILE", help="write every entry (or those since --since) as CSV; - for stdout")
    parser.add_argument("--since", metavar="YYYY-MM-DD", help="CSV: only entries from this local day on")
    args = parser.parse_args(argv)
    folder = args.state_dir or _default_folder()
    if not (folder / LEDGER_FILE).exists():
        # Nothing billed through this folder yet: that is an answer, not an error.
        print(f"No pictures billed yet: there is no ledger in {folder} (another folder: --state-dir).")
        return 0
    ledger = Ledger(folder)
    if args.csv:
        if args.csv == "-":
            count = ledger.export_csv(sys.stdout, args.since)
        else:
            with open(args.csv, "w", newline="", encoding="utf-8") as out:
                count = ledger.export_csv(out, args.since)
            print(f"{count} entries written to {args.csv}", file=sys.stderr)
        return 0
    print(report_text(ledger.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
