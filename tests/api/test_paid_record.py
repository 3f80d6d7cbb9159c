"""One paid-answer record and one outcome (api/money/journal.py, api/money/billing.py), against the real
emulator: what was paid is written down before anything that can fail, whether a request was billed is decided
once, and identical requests from several processes make one creation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from api import RetryPolicy, build_request, errors
from api.ledger import open_ledger
from api.money.billing import NOT_BILLED, Billing, billing_of
from api.money.journal import CREATED, FETCHED, PAID
from api.money.store import Store
from api.recent import describe_listing, fetch, listing
from api.service.download import Downloader
from apitest import ROOT, TEST_KEY, make_client, wait_for


def t2i(seed: int, n: int = 2, prompt: str = "a lighthouse at dusk"):
    return build_request("wan2.7-image", prompt, [], n=n, size="1K", seed=seed)



def creations(emulator) -> int:
    return emulator.backend.stats()["creations"]


def test_an_error_before_the_body_left_is_not_billed_whatever_its_type(emulator, tmp_path, monkeypatch):
    """A header that will not encode (a key file with a stray character, say) fails inside http.client before
    the request line is written: not billed, nothing counted, nothing reached the service."""
    monkeypatch.setenv("WAN_DAILY_IMAGE_LIMIT", "100")
    client = make_client(emulator, store=Store(tmp_path))
    real = client.transport.headers
    monkeypatch.setattr(client.transport, "headers", lambda extra=None: {**real(extra), "X-Note": "\u2603"})
    with pytest.raises(UnicodeEncodeError) as raised:
        client.generate(t2i(1))
    assert billing_of(raised.value) == Billing(why="UnicodeEncodeError before the request was sent")
    assert creations(emulator) == 0 and emulator.backend.log == []
    ledger = open_ledger(tmp_path)
    assert ledger.entries() == [] and ledger.in_flight() == 0, "a request that never left was counted"


def test_what_the_service_refused_is_not_billed_and_a_cut_after_sending_is_maybe(emulator, tmp_path):
    client = make_client(emulator, store=Store(tmp_path))
    emulator.backend.add_fault({"kind": "http", "status": 400, "code": "InvalidParameter", "message": "bad"})
    with pytest.raises(errors.InvalidParameterError) as refused:
        client.generate(t2i(2), transport="sync")
    assert refused.value.billing == NOT_BILLED
    emulator.backend.add_fault({"kind": "reset_after_body"})
    with pytest.raises(errors.WanConnectionError) as cut:
        client.generate(t2i(3), transport="sync")
    assert cut.value.billing.verdict == "maybe" and cut.value.billing.final
    rows = open_ledger(tmp_path).entries()
    assert [(r["pictures"], r["status"]) for r in rows] == [(2, "unsure")]


def test_the_record_is_written_before_the_download_and_serves_the_next_run(emulator, tmp_path):
    """The result host is down after payment: the record (URLs, usage) is in the journal, the ledger is
    settled, and the next identical run downloads the pictures without a creation."""
    emulator.backend.add_fault({"kind": "http", "on": "download", "status": 503, "times": -1})
    # Two quick tries (a client's downloader otherwise keeps trying for about 30 s).
    quick = Downloader(retry=RetryPolicy(attempts=2, backoff=0.05, backoff_max=0.1))
    client = make_client(emulator, store=Store(tmp_path), downloader=quick)
    with pytest.raises(errors.DownloadError, match="paid for") as failed:
        client.generate(t2i(4), transport="sync")
    assert "Wan Recent Results" in str(failed.value)
    [rec] = Store(tmp_path).journal.entries()
    assert rec.state == PAID and len(rec.urls) == 2 and rec.billing.verdict == "yes" and rec.expires
    assert [(r["pictures"], r["status"]) for r in open_ledger(tmp_path).entries()] == [(2, "billed")]
    with emulator.backend.lock:
        emulator.backend.faults.clear()
    again = make_client(emulator, store=Store(tmp_path)).generate(t2i(4), transport="sync")
    assert creations(emulator) == 1 and len(again.images) == 2 and again.paid_before
    assert [r.state for r in Store(tmp_path).journal.entries()] == [FETCHED]
    assert [(r["pictures"], r["status"]) for r in open_ledger(tmp_path).entries()] == [(2, "billed")], \
        "fetching it again must not count it again"


def test_unknown_answers_are_polled_through_and_a_task_gone_for_good_is_given_up(emulator, tmp_path):
    emulator.backend.configure(queue_time=0.1, service_time=0.5)
    emulator.backend.add_fault({"kind": "task_unknown", "on": "query", "times": 3})
    result = make_client(emulator, store=Store(tmp_path)).generate(t2i(5))
    assert len(result.images) == 2 and creations(emulator) == 1
    # UNKNOWN without a break for longer than the window: given up, and what it cost is unknown.
    emulator.backend.add_fault({"kind": "task_unknown", "on": "query", "times": -1})
    impatient = make_client(emulator, store=Store(tmp_path), query_failure_budget=0.5)
    with pytest.raises(errors.TaskExpiredError, match="UNKNOWN for") as gone:
        impatient.generate(t2i(6))
    assert gone.value.billing.verdict == "maybe"
    assert ("ended", "maybe") in [(r.state, r.billing and r.billing.verdict) for r in
                                  Store(tmp_path).journal.entries()]


def test_identical_requests_from_three_processes_make_one_creation(emulator, tmp_path):
    emulator.backend.configure(queue_time=0.3, service_time=0.8)
    code = """
        import json, sys, time
        sys.path.insert(0, ".")
        from api import PollSchedule, WanClient, build_request
        from api.config import Endpoint
        from api.money.store import Store
        base, key, folder, start = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
        client = WanClient(key, endpoint=Endpoint(base_url=base, region=None, overridden=True),
                           store=Store(folder), poll=PollSchedule(fast=0.05, fast_until=5, medium=0.1))
        req = build_request("wan2.7-image", "one lighthouse", [], n=1, size="1K", seed=77)
        time.sleep(max(0.0, start - time.time()))   # all at the same moment
        result = client.generate(req, transport=sys.argv[5])
        print(json.dumps([len(result.images), result.task_id, result.urls]))
    """
    for transport in ("async", "sync"):
        before = creations(emulator)
        start = time.time() + 3.0
        procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), emulator.base_url, TEST_KEY,
                                   str(tmp_path / transport), str(start), transport], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
        results = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
        assert all(r[0] == 1 for r in results)
        assert creations(emulator) - before == 1, f"{transport}: {results}"
        assert len({json.dumps(r[2]) for r in results}) == 1, "they were served different pictures"
        assert list((tmp_path / transport / "locks").iterdir()) == [], "request lock files were left behind"


def test_recent_results_list_and_fetch_without_sending_anything_billable(emulator, tmp_path):
    client = make_client(emulator, store=Store(tmp_path))
    client.generate(t2i(10, prompt="the first picture, a harbour"))
    client.generate(t2i(11, prompt="the second picture, a forest"))
    entries = listing(client)
    assert [e.prompt for e in entries] == ["the second picture, a forest", "the first picture, a harbour"]
    text = describe_listing(entries)
    assert text.splitlines()[0].startswith("1. ") and "forest" in text.splitlines()[0]
    assert "2 picture(s), fetched" in text
    billable_before = creations(emulator)
    result, rec, _ = fetch(make_client(emulator, store=Store(tmp_path)), 2)
    assert rec.prompt.endswith("harbour") and len(result.images) == 2 and result.from_cache
    # The cache gone (evicted): downloaded again from the record's URLs.
    for folder in (tmp_path / "results").iterdir():
        import shutil
        shutil.rmtree(folder)
    result, rec, _ = fetch(make_client(emulator, store=Store(tmp_path)), 1)
    assert len(result.images) == 2 and not result.from_cache and result.paid_before
    assert creations(emulator) == billable_before, "fetching a recent result created something"
    with pytest.raises(errors.WanInputError, match="pick: is 3, but there are only 2"):
        fetch(client, 3)
    # Another key at the same endpoint sees none of them.
    assert listing(make_client(emulator, key="sk-another-key-0000ffff", store=Store(tmp_path))) == []


def test_python_m_api_recent_prints_the_same_list(emulator, tmp_path):
    client = make_client(emulator, store=Store(tmp_path))
    client.generate(t2i(12, prompt="a quiet street at night"))
    env = {**os.environ, "WAN_STATE_DIR": str(tmp_path), "DASHSCOPE_API_KEY": TEST_KEY,
           "DASHSCOPE_HTTP_BASE_URL": emulator.base_url}
    out = subprocess.run([sys.executable, "-m", "api.recent"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert describe_listing(listing(client)) in out.stdout
    assert TEST_KEY not in out.stdout + out.stderr and "RuntimeWarning" not in out.stderr


def test_a_damaged_journal_is_moved_aside_and_a_new_one_started(emulator, tmp_path, caplog):
    (tmp_path / "journal.sqlite3").write_bytes(b"\x00garbage, not SQLite\n" * 200)
    result = make_client(emulator, store=Store(tmp_path)).generate(t2i(13))
    assert len(result.images) == 2
    [aside] = list(tmp_path.glob("journal.sqlite3.damaged-*"))
    assert aside.read_bytes().startswith(b"\x00garbage")
    assert any("journal.sqlite3" in r.getMessage() and aside.name in r.getMessage() for r in caplog.records)
    assert [r.state for r in Store(tmp_path).journal.entries()] == [FETCHED]


def test_a_stream_cut_short_is_recorded_as_paid_but_not_offered_to_an_identical_run(emulator, tmp_path):
    emulator.backend.add_fault({"kind": "stream_cut"})
    req = build_request("wan2.6-image", "a tea tutorial", [], mode="interleave", max_images=4, size="1024*1024",
                        seed=14)
    client = make_client(emulator, store=Store(tmp_path))
    cut = client.generate(req, transport="stream")
    assert cut.incomplete and 1 <= len(cut.images) < 4
    [rec] = Store(tmp_path).journal.entries()
    assert rec.state == FETCHED and rec.incomplete and len(rec.urls) == len(cut.images)
    whole = client.generate(req, transport="stream")   # the user sends it again: a new creation
    assert len(whole.images) == 4 and creations(emulator) == 2
    # Both are in the recent list; the cut one's pictures are served from the cache.
    entries = listing(client)
    assert len(entries) == 2 and entries[1].incomplete
    again, _, _ = fetch(client, 2)
    assert again.from_cache and [i.data for i in again.images] == [i.data for i in cut.images]


def test_a_task_stopped_while_running_that_then_fails_is_no_longer_counted(emulator, tmp_path, monkeypatch):
    """Counted unsure when the user stopped waiting; the background follower learns it FAILED (not billed)
    and the ledger lets it go."""
    monkeypatch.setenv("WAN_DAILY_IMAGE_LIMIT", "100")
    emulator.backend.configure(queue_time=0.0, service_time=1.0)
    emulator.backend.add_fault({"kind": "task_failed", "code": "DataInspectionFailed", "message": "flagged"})
    client = make_client(emulator, store=Store(tmp_path))
    cancel = threading.Event()

    def cancel_once_polled() -> None:   # the user presses Cancel while the task runs
        while not any(e["kind"] == "query" for e in list(emulator.backend.log)):
            time.sleep(0.01)
        cancel.set()
    threading.Thread(target=cancel_once_polled, daemon=True).start()
    with pytest.raises(errors.Interrupted):
        client.generate(t2i(20), cancel=cancel)
    ledger = open_ledger(tmp_path)
    assert [(r["pictures"], r["status"]) for r in ledger.entries()] == [(2, "unsure")]
    deadline = time.monotonic() + 30
    while ledger.entries():
        assert time.monotonic() < deadline, "the failed task is still counted as maybe billed"
        time.sleep(0.1)
    assert [(r.state, r.billing.verdict) for r in Store(tmp_path).journal.entries()] == [("ended", "no")]


def test_an_answer_with_no_picture_and_nothing_billed_is_not_offered_or_served_again(emulator, tmp_path, caplog):
    """Nothing made, nothing billed: nothing to fetch. The recent-results list leaves it out, and the same
    request sent again is simply sent (no "the URLs expired" warning: nothing was paid and no URL expired)."""
    emulator.backend.add_fault({"kind": "no_pictures", "times": 1})
    client = make_client(emulator, store=Store(tmp_path))
    first = client.generate(t2i(21), transport="sync")
    assert first.images == [] and first.billing.verdict == "no"
    assert listing(client) == [], "a request that brought nothing was offered as a paid one"
    caplog.set_level("INFO")
    again = client.generate(t2i(21), transport="sync")
    assert len(again.images) == 2 and creations(emulator) == 2
    assert "expired" not in caplog.text
    assert [(e.state, e.billing.verdict) for e in Store(tmp_path).journal.entries()] == [("ended", "no"),
                                                                                         ("fetched", "yes")]


def test_a_picture_that_arrives_damaged_is_fetched_again_and_the_cache_keeps_the_good_one(emulator, tmp_path):
    """The files go into the cache as soon as their bytes arrive, before they decode. A body that arrives
    whole but damaged is fetched again; what the cache keeps, and serves next, is the body that decoded."""
    emulator.backend.add_fault({"kind": "damaged_body", "on": "download", "times": 1})
    client = make_client(emulator, store=Store(tmp_path))
    first = client.generate(t2i(31, n=1), transport="sync")
    assert len(emulator.backend.downloads) == 2, "the damaged body was not fetched again"
    again = make_client(emulator, store=Store(tmp_path)).generate(t2i(31, n=1), transport="sync")
    assert again.from_cache and creations(emulator) == 1 and len(emulator.backend.downloads) == 2
    assert again.images[0].data == first.images[0].data
    assert np.array_equal(again.images[0].pixels, first.images[0].pixels)
    assert [r.state for r in Store(tmp_path).journal.entries()] == [FETCHED]


def test_pictures_that_never_decode_leave_no_cache_entry_and_the_record_paid(emulator, tmp_path):
    """Every body arrives damaged: the bodies stored while they decoded are removed again (they are no result
    to serve), the record stays paid, the ledger is settled; once the result host is well, the next identical
    run gets the pictures from the record without a creation."""
    emulator.backend.add_fault({"kind": "damaged_body", "on": "download", "times": -1})
    quick = Downloader(retry=RetryPolicy(attempts=2, backoff=0.05, backoff_max=0.1))
    client = make_client(emulator, store=Store(tmp_path), downloader=quick)
    with pytest.raises(errors.DownloadError, match="paid for"):
        client.generate(t2i(32, n=1), transport="sync")
    # (looked at on disk first: a cache lookup would itself drop an entry that does not decode)
    assert not [p for p in (tmp_path / "results").rglob("*.png")], "a body that never decoded stayed in the cache"
    assert client.cached(t2i(32, n=1)) is None
    [rec] = Store(tmp_path).journal.entries()
    assert rec.state == PAID
    assert [(r["pictures"], r["status"]) for r in open_ledger(tmp_path).entries()] == [(1, "billed")]
    with emulator.backend.lock:
        emulator.backend.faults.clear()
    again = make_client(emulator, store=Store(tmp_path)).generate(t2i(32, n=1), transport="sync")
    assert creations(emulator) == 1 and len(again.images) == 1 and again.paid_before


def test_the_ledger_is_settled_while_a_slow_result_host_still_answers(emulator, tmp_path):
    """The ledger's settlement is done while the pictures decode, once their bytes are in; a result host
    that takes seconds to answer must not hold it that long (a reservation counts the most a request may
    bill, so a second run at the daily limit would be refused meanwhile)."""
    emulator.backend.add_fault({"kind": "slow", "on": "download", "delay": 4.0, "times": 1})
    client = make_client(emulator, store=Store(tmp_path))
    done = threading.Event()
    threading.Thread(target=lambda: (client.generate(t2i(33, n=2), transport="sync"), done.set()),
                     daemon=True).start()
    wait_for(lambda: emulator.backend.downloads)    # the answer has come; its first download is held
    wait_for(lambda: [r["status"] for r in open_ledger(tmp_path).entries()] == ["billed"], timeout=3.0)
    assert not done.is_set(), "the download was not held: this test tested nothing"
    assert done.wait(30)


def test_downloads_that_cannot_begin_before_the_record_still_leave_the_record_written(emulator, tmp_path,
                                                                                       monkeypatch):
    """The downloads begin as the answer arrives, before its record is written. If no thread can be had for
    them then (a process at its thread limit), the record is written all the same and the downloads begin
    after it; if they can never begin, the run fails with the payment recorded, and the next identical run
    sends nothing billable."""
    import api.service.download as download

    real = download.Downloader.start
    calls = []

    def no_thread_at_first(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("can't start new thread")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(download.Downloader, "start", no_thread_at_first)
    result = make_client(emulator, store=Store(tmp_path)).generate(t2i(34, n=1), transport="sync")
    assert len(result.images) == 1 and len(calls) == 2
    assert [r.state for r in Store(tmp_path).journal.entries()] == [FETCHED]

    def never(self, *args, **kwargs):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(download.Downloader, "start", never)
    with pytest.raises(RuntimeError):
        make_client(emulator, store=Store(tmp_path)).generate(t2i(35, n=1), transport="sync")
    assert [r.state for r in Store(tmp_path).journal.entries() if r.fingerprint == t2i(35, n=1).fingerprint()] \
        == [PAID]
    assert [r["status"] for r in open_ledger(tmp_path).entries()] == ["billed", "billed"], \
        "a run that could not download was left unsettled in the ledger"
    monkeypatch.setattr(download.Downloader, "start", real)
    again = make_client(emulator, store=Store(tmp_path)).generate(t2i(35, n=1), transport="sync")
    assert creations(emulator) == 2 and len(again.images) == 1 and again.paid_before
