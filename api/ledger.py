"""The ledger of billed pictures, and the daily limit per account.

Every picture the service bills is written down: when, which account (the key's fingerprint, never the
key), where (endpoint, region), which model, request_id, task_id, how many, and an estimated cost where a
price is known (pricing.py). The ledger is a SQLite file (WAL, busy timeout) next to the task journal, so
it survives restarts and is shared by every ComfyUI process using the same folder.

The daily limit (WAN_DAILY_IMAGE_LIMIT pictures, and WAN_DAILY_BUDGET in the price's currency, per account
per local day) is checked before a request is sent:

    reservation = ledger.reserve(account, endpoint, model, pictures, answer_id=...)   # refuses past the limit
    ... send ...
    ledger.settle(entry, billing, reservation)   # what the request's Billing (api/billing.py) says

A request's entries are keyed by its answer id (the journal's record id), so settling is idempotent: a task
whose run was interrupted (counted unsure), then fetched later by another run, a background follower or
another process, replaces the unsure entry by what the service billed, and counting it twice is impossible.

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
from .billing import Billing
from .db import Database
from .errors import WanInputError
from .config import cli_state_dir
from .pricing import ENV_PRICES, unit_price
from .secrets import get_logger

log = get_logger("wan.ledger")

ENV_DAILY_LIMIT = "WAN_DAILY_IMAGE_LIMIT"
ENV_DAILY_BUDGET = "WAN_DAILY_BUDGET"
LEDGER_FILE = "ledger.sqlite3"

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
    answer_id: str
    done: bool = False

    def entry(self, request_id: str | None = None, task_id: str | None = None) -> "Entry":
        """The ledger line this reservation settles into (for callers without a journal record)."""
        return Entry(answer_id=self.answer_id, account=self.account,
                     endpoint=self.endpoint, region=self.region, model=self.model, max_pictures=self.pictures,
                     fingerprint=self.fingerprint, request_id=request_id, task_id=task_id)


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
        self._owner: str | None = None
        self._owner_fd: int | None = None
        self._owner_lock = threading.Lock()
        self.db = Database(self.path, _schema, what="ledger")

    def _write(self, work: Any) -> Any:
        return self.db.write(work)

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
        self._write(self._sweep)   # its own transaction: what it finds stays found when the check refuses
        self._write(lambda db: self._check(db, account, model, region, pictures))

    def reserve(self, account: str, endpoint: str, model: str, pictures: int, *, region: str | None = None,
                fingerprint: str | None = None, answer_id: str | None = None) -> Reservation:
        """Count `pictures` as in flight for `account`, or raise DailyLimitError if that passes today's limit.
        `answer_id` names the journal record the request's settlement (and, if this process dies first, its
        unsure entry) will carry."""
        owner = self._me()
        pictures = max(0, int(pictures))
        answer_id = answer_id or uuid.uuid4().hex
        price = unit_price(model, region)
        cost, currency = (price[0] * pictures, price[1]) if price else (None, None)
        self._write(self._sweep)   # its own transaction: what it finds stays found when the check refuses

        def work(db: sqlite3.Connection) -> int:
            if pictures:
                self._check(db, account, model, region, pictures)
            cur = db.execute("INSERT INTO reservations (time, account, endpoint, region, model, pictures, cost, "
                             "currency, fingerprint, owner, resumed, answer_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                             (time.time(), account, endpoint, region, model, pictures, cost, currency, fingerprint,
                              owner, 0, answer_id))
            return cur.lastrowid
        rid = self._write(work)
        return Reservation(rid, account, endpoint, region, model, pictures, fingerprint, answer_id)

    def release(self, reservation: Reservation) -> None:
        """Nothing was sent: the room is free again (a request that reached the service is settled instead)."""
        if reservation.done:
            return
        reservation.done = True
        self._write(lambda db: db.execute("DELETE FROM reservations WHERE id=?", (reservation.id,)))

    def settle(self, entry: Entry, billing: Billing, reservation: Reservation | None = None) -> None:
        """Write down what `billing` says the request cost, replacing whatever was written for the same
        answer before (an unsure entry left by an interrupted run or a process that died), and end the
        reservation. Billed pictures are entries of status billed; pictures that may have been billed without
        our knowing are one entry of status unsure, at the most the request could still have billed."""
        if reservation is not None:
            reservation.done = True
        now = time.time()
        price = unit_price(entry.model, entry.region)
        rows = []
        if billing.pictures > 0:
            rows.append((BILLED, billing.pictures, billing.why if billing.unsure else None))
        if billing.unsure and entry.max_pictures > billing.pictures:
            rows.append((UNSURE, entry.max_pictures - billing.pictures, billing.why))

        def work(db: sqlite3.Connection) -> None:
            if reservation is not None:
                db.execute("DELETE FROM reservations WHERE id=?", (reservation.id,))
            # The request's reservation in another process (one that died with it in flight, its task resumed
            # here from the journal): settled now, so a later sweep must not turn it into an unsure entry too.
            db.execute("DELETE FROM reservations WHERE account=? AND answer_id=?", (entry.account, entry.answer_id))
            db.execute("DELETE FROM billed WHERE account=? AND answer_id=?", (entry.account, entry.answer_id))
            if entry.task_id:
                # Unsure entries of journals before 0.3 name the task, not the answer.
                db.execute("DELETE FROM billed WHERE account=? AND status=? AND task_id=? AND answer_id IS NULL",
                           (entry.account, UNSURE, entry.task_id))
            for status, pictures, note in rows:
                cost, currency = (round(price[0] * pictures, 6), price[1]) if price else (None, None)
                db.execute("INSERT INTO billed (time, day, account, endpoint, region, model, request_id, task_id, "
                           "pictures, status, cost, currency, fingerprint, note, answer_id) "
                           "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           (now, local_day(now), entry.account, entry.endpoint, entry.region, entry.model,
                            entry.request_id, entry.task_id, pictures, status, cost, currency, entry.fingerprint,
                            note, entry.answer_id))
        self._write(work)

    # ---- reading it back ------------------------------------------------------------------------------------------

    def entries(self, since_day: str | None = None) -> list[dict[str, Any]]:
        query = ("SELECT time, day, account, endpoint, region, model, request_id, task_id, pictures, status, cost, "
                 "currency, note FROM billed")
        args: tuple = ()
        if since_day:
            query += " WHERE day>=?"
            args = (since_day,)
        rows = self.db.read(lambda db: db.execute(query + " ORDER BY time", args).fetchall())
        return [dict(zip(CSV_FIELDS, row)) for row in rows]

    def in_flight(self) -> int:
        return self.db.read(lambda db: db.execute("SELECT COALESCE(SUM(pictures), 0) FROM reservations").fetchone()[0])

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
    round trip reserves before a request can be sent, then settles to what its Billing says."""

    def __init__(self, ledger: Ledger, account: str, endpoint: str, region: str | None) -> None:
        self.ledger, self.account, self.endpoint, self.region = ledger, account, endpoint, region

    def reserve(self, req: Any, fingerprint: str, answer_id: str) -> Reservation:
        return self.ledger.reserve(self.account, self.endpoint, req.model, req.max_billable_images,
                                   region=self.region, fingerprint=fingerprint, answer_id=answer_id)

    def entry(self, rec: Any) -> Entry:
        """The ledger's view of a journal record (api/journal.py Answer)."""
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.ledger",
                                     description="Pictures billed today and this month, per model; CSV export.")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="the folder with ledger.sqlite3: ComfyUI/user/wan_image (found when run from the pack "
                             "inside custom_nodes), or WAN_STATE_DIR")
    parser.add_argument("--csv", metavar="FILE", help="write every entry (or those since --since) as CSV; - for stdout")
    parser.add_argument("--since", metavar="YYYY-MM-DD", help="CSV: only entries from this local day on")
    args = parser.parse_args(argv)
    folder = args.state_dir or cli_state_dir()
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
