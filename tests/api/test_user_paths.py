"""The paths users really take that once cost money or pictures: switching endpoint or key, a task that
failed, a sync run interrupted, a stream stopped after pictures arrived, the journal's database locked."""

from __future__ import annotations

import sqlite3
import threading
import time

import numpy as np
import pytest

from api import MODELS, Store, build_request, describe, encode_image, errors
from api.emulator import EmulatorServer, Settings
from api.money.journal import Answer
from api.service.answers import FAILED, task_failure, task_status
from apitest import TEST_KEY, cancel_once_seen, make_client, photo

OTHER_KEY = "sk-test-other-account-1234"


def edit(seed=1, n=2, model="wan2.7-image"):
    spec = MODELS[model]
    size = "1024*1024" if model.startswith("wan2.5") else "1K"
    return build_request(model, "make it autumn", [encode_image(photo(400, 400), spec.image)], n=n, size=size,
                         seed=seed)


def creations(emulator):
    return emulator.backend.stats()["creations"]


def pixels(result):
    return [img.pixels for img in result.images]


@pytest.fixture
def two_keys():
    server = EmulatorServer(settings=Settings(queue_time=0.1, service_time=0.2,
                                              api_keys=[TEST_KEY, OTHER_KEY])).start()
    yield server
    server.stop()


@pytest.fixture
def second_emulator():
    server = EmulatorServer(settings=Settings(queue_time=0.1, service_time=0.2, api_keys=[TEST_KEY])).start()
    yield server
    server.stop()


# ---- the cache and the journal belong to an account at an endpoint ---------------------------------------

def test_a_result_cached_from_one_endpoint_is_not_served_for_another(emulator, second_emulator, tmp_path):
    first = make_client(emulator, store=Store(tmp_path)).generate(edit())
    assert creations(emulator) == 1
    # The same graph, now pointed at another service (e.g. from the emulator to the real one).
    moved = make_client(second_emulator, store=Store(tmp_path)).generate(edit())
    assert not moved.from_cache, "a picture made by another endpoint was served as this one's"
    assert creations(second_emulator) == 1
    # Back at the first endpoint: its own result, from the cache, nothing sent.
    before = len(emulator.backend.log)
    back = make_client(emulator, store=Store(tmp_path)).generate(edit())
    assert back.from_cache and len(emulator.backend.log) == before
    assert all(np.array_equal(a, b) for a, b in zip(pixels(back), pixels(first)))


def test_a_result_cached_for_one_account_is_not_served_to_another(two_keys, tmp_path):
    make_client(two_keys, store=Store(tmp_path)).generate(edit())
    other = make_client(two_keys, key=OTHER_KEY, store=Store(tmp_path)).generate(edit())
    assert not other.from_cache and creations(two_keys) == 2
    again = make_client(two_keys, store=Store(tmp_path)).generate(edit())
    assert again.from_cache and creations(two_keys) == 2


def test_a_task_journaled_for_one_account_is_not_resumed_by_another(two_keys, tmp_path):
    two_keys.backend.configure(queue_time=0.0, service_time=2.0)
    cancel = cancel_once_seen(two_keys, "query")   # the task exists, RUNNING: journaled
    with pytest.raises(errors.Interrupted):
        make_client(two_keys, store=Store(tmp_path)).generate(edit(), cancel=cancel)
    two_keys.backend.configure(service_time=0.2)
    other = make_client(two_keys, key=OTHER_KEY, store=Store(tmp_path)).generate(edit())
    assert creations(two_keys) == 2, "the other account must create its own task"
    assert other.task_id != Store(tmp_path).journal.entries()[0].task_id


# ---- a task that produced nothing ends its journal entry --------------------------------------------------

@pytest.mark.parametrize("model,fault", [
    ("wan2.7-image", {"kind": "task_failed", "code": "DataInspectionFailed", "message": "output flagged"}),
    ("wan2.5-i2i-preview", {"kind": "partial_failure", "failed": 2, "code": "DataInspectionFailed",
                            "message": "output flagged"}),
], ids=["FAILED", "wan2.5-every-result-failed"])
def test_a_failed_task_is_reported_and_the_next_run_creates_a_new_one(emulator, tmp_path, model, fault):
    emulator.backend.add_fault(fault)
    with pytest.raises(errors.ContentModerationError) as info:
        make_client(emulator, store=Store(tmp_path)).generate(edit(model=model))
    assert info.value.code == "DataInspectionFailed" and "output flagged" in str(info.value)
    assert [(e.state, e.billing.verdict) for e in Store(tmp_path).journal.entries()] == [("ended", "no")]
    result = make_client(emulator, store=Store(tmp_path)).generate(edit(model=model))
    assert creations(emulator) == 2, "the failed task was resumed instead of a new one created"
    assert len(result.images) == 2


def test_the_top_level_error_form_of_a_task_answer_is_a_failed_task():
    # Seed 001 (the wan2.7 page), 任务执行异常: the answer carries code/message at the top, no output.
    answer = {"request_id": "a4d78a5f", "code": "InvalidParameter", "message": "num_images_per_prompt must be 1"}
    assert task_status(answer) == FAILED
    error = task_failure(answer, "task-1", "here")
    assert isinstance(error, errors.InvalidParameterError)
    assert error.code == "InvalidParameter" and "num_images_per_prompt must be 1" in str(error)
    assert task_status({"request_id": "x", "output": {"task_id": "t", "task_status": "SUSPENDED"}}) == "SUSPENDED"
    assert task_status({"request_id": "x"}) is None


# ---- an interrupted run keeps what it paid for --------------------------------------------------------------

def test_a_sync_run_interrupted_keeps_its_paid_pictures_for_the_next_run(emulator, tmp_path):
    emulator.backend.configure(queue_time=0.0, service_time=1.0)
    cancel = cancel_once_seen(emulator, "sync")   # ComfyUI's Cancel lands while the service is generating
    first = make_client(emulator, store=Store(tmp_path)).generate(edit(seed=5), transport="sync", cancel=cancel)
    assert cancel.is_set() and len(first.images) == 2
    before = len(emulator.backend.log)
    again = make_client(emulator, store=Store(tmp_path)).generate(edit(seed=5), transport="sync")
    assert len(emulator.backend.log) == before, "the next identical run sent a request"
    assert again.from_cache and all(np.array_equal(a, b) for a, b in zip(pixels(again), pixels(first)))
    assert [(e.state, e.billing.verdict) for e in Store(tmp_path).journal.entries()] == [("fetched", "yes")]


def test_a_stream_stopped_after_pictures_arrived_keeps_them(emulator, tmp_path):
    emulator.backend.configure(queue_time=0.0, service_time=3.0)
    req = build_request("wan2.6-image", "a tutorial for tea", [], mode="interleave", max_images=4,
                        size="1024*1024", seed=3)
    cancel = threading.Event()
    arrived = []

    def on_progress(p):
        if p.kind == "image":
            arrived.append(p.images_done)
            cancel.set()   # the user presses Cancel once the first picture is in
    with pytest.raises(errors.Interrupted) as info:
        make_client(emulator, store=Store(tmp_path)).generate(req, transport="stream", cancel=cancel,
                                                              on_progress=on_progress)
    kept = info.value.partial
    # Exactly the pictures whose frames had arrived when the reader stopped, as the service made them.
    stream = next(e for e in emulator.backend.log if e["kind"] == "stream")
    made = sorted((r for r in emulator.backend.results.values() if r.request_id == stream["request_id"]),
                  key=lambda r: r.index)
    assert arrived and len(kept.urls) == arrived[-1] < 4, (arrived, kept.urls)
    assert [u.split("/results/")[1].split(".png")[0] for u in kept.urls] == [r.token for r in made[:arrived[-1]]]
    assert len(kept.images) == len(kept.urls)
    before = len(emulator.backend.log)
    again = make_client(emulator, store=Store(tmp_path)).generate(req, transport="stream")
    assert len(emulator.backend.log) == before, "the next identical run sent a request"
    assert again.from_cache and again.incomplete
    assert [i.data for i in again.images] == [i.data for i in kept.images]


# ---- the journal's database locked never fails a paid run --------------------------------------------------

def test_a_locked_journal_never_fails_or_stalls_a_paid_run(emulator, tmp_path):
    store = Store(tmp_path)
    client = make_client(emulator, store=store)
    client.generate(edit(seed=8))   # the journal has been read once: the next run's check finds it open
    # Another process (a DB browser left open, say) takes the journal's database after the run's check,
    # for good: every write after payment must give up (bounded) and the run return its pictures.
    other = sqlite3.connect(tmp_path / "journal.sqlite3", isolation_level=None, check_same_thread=False)
    emulator.backend.configure(queue_time=0.3)
    done: dict = {}
    worker = threading.Thread(target=lambda: done.update(result=client.generate(edit(seed=9))), daemon=True)
    worker.start()
    deadline = time.monotonic() + 30
    while sum(1 for e in list(emulator.backend.log) if e.get("kind") == "async") < 2:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    other.execute("BEGIN EXCLUSIVE")
    try:
        worker.join(60)
        assert not worker.is_alive(), "a locked journal held a paid run (its waits must be bounded)"
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert len(done["result"].images) == 2 and creations(emulator) == 2
    # And the picture is in the cache all the same.
    assert make_client(emulator, store=Store(tmp_path)).generate(edit(seed=9)).from_cache


def test_a_journal_write_waits_out_a_short_lock(emulator, tmp_path):
    store = Store(tmp_path)
    other = sqlite3.connect(tmp_path / "journal.sqlite3", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    threading.Timer(0.5, lambda: other.execute("ROLLBACK")).start()
    store.journal.open(Answer(id="a1", account="acct", fingerprint="fp", model="wan2.7-image", mode="edit",
                              transport="async", prompt="", created=time.time(), state="created", task_id="task-1"))
    assert [e.task_id for e in store.journal.entries()] == ["task-1"]
    other.close()


def test_info_is_described_outside_the_result(emulator, tmp_path):
    result = make_client(emulator, store=Store(tmp_path)).generate(edit(seed=11))
    info = describe(result)
    assert info["images_billed"] == 2 and len(info["results"]) == 2 and not hasattr(result, "info")


@pytest.mark.parametrize("floor", [False, True], ids=["urllib3-current", "urllib3-floor"])
def test_cancel_stops_a_stream_waiting_between_frames(emulator, floor):
    """Cancel pressed while the reader waits for the next frame: the wait ends at once (the service would
    otherwise go on making, and billing, pictures while we wait)."""
    import json
    import os
    import subprocess
    import sys

    from apitest import ROOT

    emulator.backend.configure(queue_time=0.0, service_time=0.5)
    emulator.backend.add_fault({"kind": "stream_stall", "delay": 30.0})
    script = (
        "import json, sys, threading, time\n"
        "from api import WanClient, build_request, errors\n"
        "from api.config import Endpoint\n"
        "c = WanClient(sys.argv[2], endpoint=Endpoint(base_url=sys.argv[1], region=None, overridden=True))\n"
        "req = build_request('wan2.6-image', 'tea', [], mode='interleave', max_images=4, size='1024*1024', seed=4)\n"
        "cancel = threading.Event()\n"
        "def on(p):\n"
        "    if p.kind in ('text', 'image') and not cancel.is_set():\n"
        "        threading.Timer(1.5, cancel.set).start()   # well inside the 30 s silence\n"
        "try:\n"
        "    c.generate(req, transport='stream', cancel=cancel, on_progress=on)\n"
        "    out = 'finished'\n"
        "except errors.Interrupted:\n"
        "    out = 'interrupted'\n"
        "print(json.dumps(out))\n")
    path = [str(ROOT / ".venv" / "floor"), str(ROOT)] if floor else [str(ROOT)]
    proc = subprocess.run([sys.executable, "-c", script, emulator.base_url, TEST_KEY], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": os.pathsep.join(path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == "interrupted"
    # It returned inside the silence: a reader that waited it out would have had all four pictures first.
    stream = next(e for e in emulator.backend.log if e["kind"] == "stream")
    assert stream["images_announced"] < 4, "the reader waited out the silence after Cancel"


def test_a_billable_request_after_a_quiet_spell_does_not_ride_an_old_connection(emulator, monkeypatch):
    import api.service.transport

    client = make_client(emulator)
    client.get_task("task-that-does-not-exist-1")   # leaves a kept-alive connection in the pool
    pool = next(iter(client.transport.session.adapters["http://"].poolmanager.pools._container.values()))
    kept = [c for c in list(pool.pool.queue) if c is not None and c.sock is not None]
    assert kept, "the query's connection should be pooled"
    sockets = {id(c): c.sock for c in kept}
    monkeypatch.setattr(api.service.transport, "STALE_AFTER_S", 0.2)
    time.sleep(0.3)   # the account went quiet (a laptop asleep, a NAT that forgot the connection)
    client.generate(edit(seed=21), transport="sync")
    # The pooled connection was closed before the body was written, and connected anew.
    assert all(c.sock is not sockets[id(c)] for c in kept), "a billable body was written into a connection left idle"


def test_queuing_again_while_an_interrupted_sync_answer_is_on_its_way_pays_once(emulator, tmp_path):
    """The node returns on Cancel within a second, but the paid answer is still on its way: the same graph
    queued again meanwhile waits for it instead of sending (and paying for) the request again."""
    emulator.backend.configure(queue_time=0.0, service_time=2.0)
    client = make_client(emulator, store=Store(tmp_path))   # ComfyUI's nodes share one client per account
    cancel = cancel_once_seen(emulator, "sync")   # while the service is generating
    first: dict = {}
    worker = threading.Thread(target=lambda: first.update(result=client.generate(edit(seed=31), transport="sync",
                                                                                 cancel=cancel)))
    worker.start()
    time.sleep(0.8)   # the user, seeing the node stopped, queues the graph again
    again = client.generate(edit(seed=31), transport="sync")
    worker.join(10)
    assert creations(emulator) == 1, "the identical request was sent (and billed) twice"
    # It waited for the first's paid answer and served it: from the cache, or downloaded from the journal's
    # record of it, billed once (by the first).
    assert again.from_cache or again.paid_before
    assert describe(again)["images_billed_this_run"] == 0
    assert [i.data for i in again.images] == [i.data for i in first["result"].images]


# ---- every answer the service may give to what we send -------------------------------------------------

def test_a_stream_request_answered_with_plain_json_keeps_its_pictures(emulator, tmp_path):
    emulator.backend.add_fault({"kind": "stream_as_json"})
    req = build_request("wan2.6-image", "a tutorial for tea", [], mode="interleave", max_images=2,
                        size="1024*1024", seed=8)
    result = make_client(emulator, store=Store(tmp_path)).generate(req, transport="stream")
    assert len(result.images) == 2 and result.text, "the JSON answer's pictures and text were dropped"
    assert creations(emulator) == 1


def test_the_top_level_error_form_ends_the_task_and_the_next_run_creates_a_new_one(emulator, tmp_path):
    # Seed 001 (the wan2.7 page), 任务执行异常: {"request_id", "code", "message"} and no output.
    emulator.backend.add_fault({"kind": "task_error_body"})
    with pytest.raises(errors.InvalidParameterError) as info:
        make_client(emulator, store=Store(tmp_path)).generate(edit(seed=41))
    assert "num_images_per_prompt must be 1" in str(info.value) and info.value.task_id
    assert [(e.state, e.billing.verdict) for e in Store(tmp_path).journal.entries()] == [("ended", "no")]
    result = make_client(emulator, store=Store(tmp_path)).generate(edit(seed=41))
    assert creations(emulator) == 2 and len(result.images) == 2


def test_wan25_every_result_failed_via_its_own_fault_ends_the_task(emulator, tmp_path):
    emulator.backend.add_fault({"kind": "results_all_failed", "code": "DataInspectionFailed",
                                "message": "every result flagged"})
    with pytest.raises(errors.ContentModerationError, match="every result flagged"):
        make_client(emulator, store=Store(tmp_path)).generate(edit(seed=42, model="wan2.5-i2i-preview"))
    assert [(e.state, e.billing.verdict) for e in Store(tmp_path).journal.entries()] == [("ended", "no")]
    make_client(emulator, store=Store(tmp_path)).generate(edit(seed=42, model="wan2.5-i2i-preview"))
    assert creations(emulator) == 2


def test_an_unknown_task_status_is_reported_as_such_and_waited_out(emulator, tmp_path):
    emulator.backend.configure(queue_time=0.0, service_time=1.0)
    emulator.backend.add_fault({"kind": "task_status", "task_status": "SUSPENDED", "queries": 3})
    seen = []
    result = make_client(emulator, store=Store(tmp_path)).generate(
        edit(seed=43), on_progress=lambda p: p.kind == "status" and seen.append((p.status, p.message)))
    assert ("SUSPENDED", "unknown task status SUSPENDED") in seen
    assert len(result.images) == 2 and creations(emulator) == 1
    emulator.backend.add_fault({"kind": "task_status", "task_status": "SUSPENDED"})
    with pytest.raises(errors.WanTimeoutError, match="SUSPENDED"):
        make_client(emulator, store=Store(tmp_path), max_wait=1.0).generate(edit(seed=44))
