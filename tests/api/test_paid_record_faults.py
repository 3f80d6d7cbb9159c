"""Faults a maintainer's read found in the paid-answer path, each reproduced against the real emulator: a
record that cannot be written, a damaged data page, a file that cannot be moved aside, Cancel of a run that
only follows another's task, a record fetched again, the follower racing the cancelled run's settlement."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest

from api import build_request, errors
from api.ledger import open_ledger
from api.money.journal import CREATED
from api.money.store import Store
from api.recent import fetch
from apitest import make_client, wait_for


def t2i(seed: int, n: int = 2, prompt: str = "a lighthouse at dusk"):
    return build_request("wan2.7-image", prompt, [], n=n, size="1K", seed=seed)


def creations(emulator) -> int:
    return emulator.backend.stats()["creations"]



def test_a_task_record_that_cannot_be_written_keeps_identical_requests_waiting(emulator, tmp_path):
    """Two identical requests (two nodes, two servers). The first creates its task while the journal is
    held by someone else (a DB browser, a long checkpoint) for longer than WAIT_S: its `created` record
    cannot be written, it releases the request lock anyway, and the second, which waited on that lock,
    finds no record and creates (and pays for) the same request again."""
    emulator.backend.configure(queue_time=1.0, service_time=1.0)
    store = Store(tmp_path)
    a, b = make_client(emulator, store=store), make_client(emulator, store=store)
    req = t2i(101)
    other = sqlite3.connect(tmp_path / "journal.sqlite3", isolation_level=None, check_same_thread=False)
    results = {}
    other.execute("BEGIN IMMEDIATE")   # the journal is being written by someone else (reads still work: WAL)
    ta = threading.Thread(target=lambda: results.update(a=a.generate(req)), daemon=True)
    ta.start()
    wait_for(lambda: any(e.get("kind") == "async" for e in list(emulator.backend.log)))
    tb = threading.Thread(target=lambda: results.update(b=b.generate(req)), daemon=True)
    tb.start()
    time.sleep(5.0)            # longer than db.WAIT_S (3 s): A gives up writing and releases the lock
    other.execute("ROLLBACK")
    other.close()
    ta.join(60); tb.join(60)
    print("creations:", creations(emulator), "tasks:", results["a"].task_id, results["b"].task_id)
    assert creations(emulator) == 1, "an identical request waiting on the request lock paid again"


def _corrupt_a_data_page(path):
    """Overwrite the last page of the file (a page of the answers table, not page 1 with the schema)."""
    db = sqlite3.connect(path)
    page = db.execute("PRAGMA page_size").fetchone()[0]
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    size = os.path.getsize(path)
    with open(path, "r+b") as f:      # every page but page 1 (the header and the schema)
        f.seek(page)
        f.write(b"\xde\xad\xbe\xef" * ((size - page) // 4))


def test_a_journal_with_a_damaged_data_page_heals(emulator, tmp_path, caplog):
    """Promise 6: damaged state heals. A journal whose header and schema read fine but one of whose data pages
    is damaged (a torn write, a bad sector) raises 'database disk image is malformed' on every query of the
    answers table. _heal() opens the file, finds sqlite_master readable, concludes 'healed by another
    process' and returns; the query fails again and every Wan run is refused, for good."""
    store = Store(tmp_path)
    client = make_client(emulator, store=store)
    for seed in range(30):     # enough records for the answers table to span several pages
        store.journal.open(__import__("api.money.journal", fromlist=["Answer"]).Answer(
            id=f"r{seed}", account="x", fingerprint="f" * 64, model="wan2.7-image", mode="t2i",
            transport="sync", prompt="p" * 80, created=time.time(), state="fetched",
            answer={"content": [{"type": "text", "text": "x" * 400}]}))
    store.journal.db.close()
    _corrupt_a_data_page(tmp_path / "journal.sqlite3")
    outcomes = []
    for attempt in range(2):
        try:
            client2 = make_client(emulator, store=Store(tmp_path))
            outcomes.append(len(client2.generate(t2i(200 + attempt)).images))
        except Exception as exc:   # noqa: BLE001
            outcomes.append(f"{type(exc).__name__}: {exc}")
    print("\n".join(map(str, outcomes)))
    print("moved aside:", sorted(p.name for p in tmp_path.glob("journal.sqlite3.damaged-*")))
    assert outcomes == [2, 2], "a damaged journal stops every run"


def test_a_damaged_file_that_cannot_be_moved_aside_is_reported_not_retried_forever(emulator, tmp_path,
                                                                                          monkeypatch):
    """On Windows a file that another connection (another thread's, another process's) holds open cannot be
    renamed: os.replace raises PermissionError. _heal() swallows that, logs 'moved', and calls write(schema),
    whose _run() finds the same damaged file, heals again, ... until RecursionError, which is neither
    sqlite3.Error nor OSError: it escapes _book()/_settle() and fails the run (after payment, for the
    ledger). Simulated here by making os.replace fail the way Windows does."""
    (tmp_path / "journal.sqlite3").write_bytes(b"\x00garbage, not SQLite\n" * 200)

    def windows_replace(src, dst):
        raise PermissionError(13, "The process cannot access the file because it is being used by another process")
    import api.money.db
    monkeypatch.setattr(api.money.db.os, "replace", windows_replace)
    try:
        Store(tmp_path)
        outcome = "opened"
    except Exception as exc:  # noqa: BLE001
        outcome = type(exc).__name__
    print("Store():", outcome)
    assert outcome in ("opened", "DatabaseError"), outcome


@pytest.mark.parametrize("how", ["recent", "identical-run"])
def test_cancel_of_a_run_that_only_follows_anothers_task_leaves_that_task_alone(emulator, tmp_path, how):
    """Server A's run created a task, still queued at the service. On server B (same folder) the user
    either fetches it with Wan Recent Results (pick 1: 'task not ended yet') or queues the identical graph
    (which resumes A's task), then presses Cancel on B. B's wait_task starts with status=PENDING, so its
    interrupt POSTs tasks/<id>/cancel: A's task is canceled at the service and A's run, which nobody
    stopped, fails."""
    emulator.backend.configure(queue_time=4.0, service_time=0.5)
    a = make_client(emulator, store=Store(tmp_path))
    b = make_client(emulator, store=Store(tmp_path))
    req = t2i(300)
    outcome = {}

    def run_a():
        try:
            outcome["a"] = f"{len(a.generate(req).images)} pictures"
        except Exception as exc:  # noqa: BLE001
            outcome["a"] = f"{type(exc).__name__}: {exc}"
    ta = threading.Thread(target=run_a, daemon=True)
    ta.start()
    wait_for(lambda: any(r.state == CREATED and r.task_id for r in Store(tmp_path).journal.entries()))
    # Cancel once B itself has asked about the task (seen it PENDING): A polls too, so the emulator's log
    # cannot tell B's first query from A's.
    cancel = threading.Event()
    query = b.calls.get_task

    def query_then_cancel(*args, **kwargs):
        answer = query(*args, **kwargs)
        cancel.set()
        return answer
    b.calls.get_task = query_then_cancel
    try:
        if how == "recent":
            fetch(b, 1, cancel=cancel)
        else:
            b.generate(req, cancel=cancel)
    except Exception as exc:  # noqa: BLE001
        outcome["b"] = f"{type(exc).__name__}: {exc}"
    ta.join(60)
    print(outcome, emulator.backend.stats()["tasks"])
    assert outcome.get("b", "").startswith("Interrupted") and "before the request" not in outcome["b"], \
        f"B was not stopped while following A's task: {outcome.get('b')}"
    assert emulator.backend.stats()["tasks"].get("CANCELED", 0) == 0, \
        "B's Cancel canceled A's task at the service"


def test_fetching_a_paid_record_again_keeps_its_ledger_entrys_day(emulator, tmp_path, monkeypatch):
    """A sync answer paid at 23:50 whose download fails (result host down) is billed today. The user fetches
    it after midnight (identical graph queued again, or Wan Recent Results): deliver() settles the record
    again 'to make sure', and settle() deletes the entry and writes it anew with time=now: the pictures
    move from the day they were billed to today, and count against today's daily limit."""
    import types
    import api.ledger as ledger_mod
    emulator.backend.add_fault({"kind": "http", "on": "download", "status": 503, "times": -1})
    client = make_client(emulator, store=Store(tmp_path))
    client.downloader.patience = 0
    with pytest.raises(errors.DownloadError):
        client.generate(t2i(400), transport="sync")
    before = [(r["day"], r["pictures"], r["status"]) for r in open_ledger(tmp_path).entries()]
    with emulator.backend.lock:
        emulator.backend.faults.clear()
    # The next day, for the ledger's clock only (the result URLs live 24 h and are still valid).
    tomorrow = time.time() + 24 * 3600
    monkeypatch.setattr(ledger_mod, "time", types.SimpleNamespace(
        time=lambda: tomorrow, localtime=time.localtime, strftime=time.strftime))
    again = make_client(emulator, store=Store(tmp_path)).generate(t2i(400), transport="sync")
    assert again.paid_before and creations(emulator) == 1
    after = [(r["day"], r["pictures"], r["status"]) for r in open_ledger(tmp_path).entries()]
    print("before:", before, "\nafter: ", after)
    assert after == before, "the billed entry moved to the day it was fetched again"


def test_the_followers_settlement_is_the_last_word_in_the_ledger(emulator, tmp_path):
    """Cancel while RUNNING: _wait() starts the background follower, THEN the exception unwinds to _create(),
    which settles the same answer id as unsure. settle() replaces whatever was there. If the follower's
    billed settle lands first (the ledger busy for a moment, the task just finishing), the unsure one
    overwrites it and the ledger keeps 'unsure, up to N' for a task known to have billed N."""
    # The task runs 1.5 s: Cancel (0.45 s after the first query) lands while it RUNS even on a loaded machine;
    # the ledger is held from the Cancel until after the task's end, so both settlements wait for it.
    emulator.backend.configure(queue_time=0.0, service_time=1.5)
    wrong = []
    for trial in range(10):
        folder = tmp_path / f"t{trial}"
        client = make_client(emulator, store=Store(folder))
        ledger = open_ledger(folder)
        cancel = threading.Event()
        other = sqlite3.connect(folder / "ledger.sqlite3", isolation_level=None, check_same_thread=False)

        def press_cancel():
            wait_for(lambda: sum(1 for e in list(emulator.backend.log) if e.get("kind") == "query")
                     >= trial * 0 + 1)
            time.sleep(0.45)
            other.execute("BEGIN IMMEDIATE")      # another process writes the ledger for a moment
            cancel.set()
            time.sleep(1.7)
            other.execute("ROLLBACK")
        emulator.backend.log.clear()
        threading.Thread(target=press_cancel, daemon=True).start()
        with pytest.raises(errors.Interrupted):
            client.generate(t2i(500 + trial), cancel=cancel)
        wait_for(lambda: [r.state for r in Store(folder).journal.entries()] == ["fetched"])
        time.sleep(0.5)
        rows = [(r["pictures"], r["status"]) for r in ledger.entries()]
        other.close()
        print(trial, rows)
        if rows != [(2, "billed")]:
            wrong.append(rows)
    assert not wrong, f"the ledger kept a stale outcome: {wrong}"


def test_a_ledger_with_a_damaged_data_page_heals(emulator, tmp_path, monkeypatch):
    monkeypatch.setenv("WAN_DAILY_IMAGE_LIMIT", "1000")
    client = make_client(emulator, store=Store(tmp_path))
    emulator.backend.configure(queue_time=0.0, service_time=0.0)   # only the ledger's rows matter here
    for seed in range(25):
        client.generate(t2i(800 + seed, n=1), transport="sync")
    ledger = open_ledger(tmp_path)
    ledger.db.close()
    _corrupt_a_data_page(tmp_path / "ledger.sqlite3")
    outcomes = []
    for attempt in range(2):
        try:
            outcomes.append(len(make_client(emulator, store=Store(tmp_path)).generate(t2i(900 + attempt)).images))
        except Exception as exc:  # noqa: BLE001
            outcomes.append(f"{type(exc).__name__}: {exc}")
    print("\n".join(map(str, outcomes)))
    print("moved aside:", sorted(p.name for p in tmp_path.glob("ledger.sqlite3.damaged-*")))
    assert outcomes == [2, 2]
