"""Every payment becomes a kept picture, through real ComfyUI servers: faults after payment (a result host
down, a locked ledger, UNKNOWN task answers), two servers sending the same request, Cancel while the task
runs (then Wan Recent Results), a damaged cache, journal or ledger. The emulator counts creations itself."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from comfy_host import ComfyHost, execution_error
from e2e_support import E2E_KEY, info_of, saved_pixels, served_pixels



def host_on(base_dir: Path, emulator, **env: str) -> ComfyHost:
    return ComfyHost({"DASHSCOPE_HTTP_BASE_URL": emulator.base_url, "DASHSCOPE_API_KEY": E2E_KEY,
                      "WAN_DOWNLOAD_PATIENCE_S": "2", **env}, base_dir=base_dir)


def creations(emulator) -> int:
    return emulator.backend.stats()["creations"]


def wan_graph(node: str, inputs: dict, prefix: str = "paid") -> dict:
    return {"1": {"class_type": node, "inputs": inputs},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                         "filename_prefix": f"{prefix}_{uuid.uuid4().hex[:6]}"}},
            "3": {"class_type": "PreviewAny", "inputs": {"source": ["1", 2]}}}


def interleave(seed: int) -> dict:
    return wan_graph("WanInterleave", {"model": "wan2.6-image", "prompt": f"a tea tutorial {seed}",
                                       "max_images": 3, "size": "1024*1024", "seed": seed})


def t2i(seed: int, transport: str = "auto", n: int = 2) -> dict:
    return wan_graph("WanTextToImage", {"model": "wan2.7-image", "prompt": f"a lighthouse {seed}", "n": n,
                                        "size": "1K", "seed": seed, "transport": transport})


def served_urls(emulator) -> list[str]:
    """Every result URL the emulator handed out, in order."""
    base = emulator.backend.results_base
    return [f"{base}/results/{spec.token}.png" for spec in sorted(emulator.backend.results.values(),
                                                                   key=lambda r: (r.created, r.index))]


def assert_saved_are_served(comfy, entry, node_id: str = "2") -> list[np.ndarray]:
    info = info_of(entry, "3")
    saved = saved_pixels(comfy, entry, node_id)
    served = [served_pixels(r["url"]) for r in info["results"]]
    assert len(saved) == len(served) and saved
    for a, b in zip(saved, served):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1, "a saved picture is not the one the service made"
    return saved


@pytest.mark.parametrize("graph", [interleave, lambda seed: t2i(seed, "sync")], ids=["interleave-stream", "sync"])
def test_downloads_failing_after_payment_then_queued_again_costs_one_creation(comfy, emulator, graph):
    """The answer is paid; the result host then fails longer than the pack's patience. The run fails
    clearly, saying the pictures are recorded; the same graph queued again downloads them: no new creation."""
    seed = int(time.time() * 1000) % 10**8
    emulator.backend.add_fault({"kind": "http", "on": "download", "status": 503, "code": "ServiceUnavailable",
                                "message": "result host busy", "times": -1})
    entry = comfy.run(graph(seed), timeout=120)
    error = execution_error(entry)
    assert error is not None, "the downloads failed: the run cannot have succeeded"
    message = error["exception_message"]
    assert "paid for" in message and "Wan Recent Results" in message and E2E_KEY not in message, message
    assert creations(emulator) == 1
    with emulator.backend.lock:
        emulator.backend.faults.clear()
    entry = comfy.run(graph(seed), timeout=120)
    assert execution_error(entry) is None, execution_error(entry)
    assert creations(emulator) == 1, "queuing the same graph again paid for the same pictures twice"
    info = info_of(entry, "3")
    assert info["images_billed_this_run"] == 0 and info["billed"] == "yes"
    assert_saved_are_served(comfy, entry)


def test_a_short_result_host_outage_is_ridden_out(comfy, emulator):
    seed = int(time.time() * 1000) % 10**8 + 1
    # Shorter than the pack's patience with downloads (WAN_DOWNLOAD_PATIENCE_S=2 on the session's server,
    # tests/e2e/conftest.py; 30 s by default).
    emulator.backend.add_fault({"kind": "http", "on": "download", "status": 503, "code": "ServiceUnavailable",
                                "message": "result host busy", "for_seconds": 1.0})
    logged = len(comfy.log())
    entry = comfy.run(interleave(seed), timeout=120)
    assert execution_error(entry) is None, execution_error(entry)
    assert "retrying in" in comfy.log()[logged:], "no download met the outage"
    assert creations(emulator) == 1
    assert len(assert_saved_are_served(comfy, entry)) == 3


def test_unknown_task_answers_are_waited_out_with_one_creation(comfy, emulator):
    """The wan2.7 page: UNKNOWN means "the task does not exist OR its status is unknown"."""
    seed = int(time.time() * 1000) % 10**8 + 2
    emulator.backend.add_fault({"kind": "task_unknown", "on": "query", "times": 2})
    entry = comfy.run(t2i(seed), timeout=120)
    assert execution_error(entry) is None, execution_error(entry)
    assert emulator.backend.stats()["faults_left"] == [], "the two UNKNOWN answers were never given"
    assert creations(emulator) == 1
    assert len(assert_saved_are_served(comfy, entry)) == 2


def test_cancel_while_running_then_recent_results_pick_1_fetches_the_paid_task(comfy, emulator):
    emulator.backend.configure(queue_time=0.1, service_time=4.0)
    seed = int(time.time() * 1000) % 10**8 + 3
    comfy.queue(t2i(seed, n=1))
    deadline = time.monotonic() + 60
    while not any(t.created + t.queue_time + 0.3 < emulator.backend.now() for t in list(emulator.backend.tasks.values())):
        assert time.monotonic() < deadline, "the task was never created"
        time.sleep(0.05)
    comfy.interrupt()   # the task RUNS at the service: it will finish and be billed
    deadline = time.monotonic() + 60
    while "Wan Recent Results" not in comfy.log():
        assert time.monotonic() < deadline, "the message after Cancel does not name Wan Recent Results"
        time.sleep(0.1)
    # The seed widget has moved on: the next run of the graph would be a new request. The paid task is
    # fetched by Wan Recent Results instead, sending nothing billable.
    entry = comfy.run(wan_graph("WanRecentResults", {"pick": 1}), timeout=120)
    assert execution_error(entry) is None, execution_error(entry)
    assert creations(emulator) == 1, "fetching a recent result created something"
    info = info_of(entry, "3")
    task = next(iter(emulator.backend.tasks.values()))
    assert info["task_id"] == task.task_id and info["images_billed_this_run"] == 0
    assert not [e for e in emulator.backend.log if e["kind"] in ("sync", "stream", "async", "synthesis")][1:]
    assert_saved_are_served(comfy, entry)


def test_two_servers_sending_the_identical_request_at_once_make_one_creation(emulator, base_dir):
    emulator.backend.configure(queue_time=0.3, service_time=1.0)
    a = host_on(base_dir, emulator).start()
    b = host_on(base_dir, emulator).start()
    try:
        seed = int(time.time() * 1000) % 10**8 + 4
        for transport in ("async", "sync"):
            before = creations(emulator)
            start = threading.Barrier(2)

            def run(host):
                start.wait()
                return host.run(t2i(seed, transport), timeout=120)
            with ThreadPoolExecutor(2) as pool:
                entries = list(pool.map(run, [a, b]))
            for host, entry in zip((a, b), entries):
                assert execution_error(entry) is None, execution_error(entry)
                assert len(saved_pixels(host, entry, "2")) == 2
            assert creations(emulator) - before == 1, f"{transport}: the identical request was created twice"
            seed += 1
        for host in (a, b):
            assert "database is locked" not in host.log() and "OperationalError" not in host.log()
    finally:
        a.stop()
        b.stop()


def test_a_locked_ledger_after_payment_never_fails_the_run(emulator, base_dir):
    """Another process holds the ledger when the answer arrives: the settlement is logged, the pictures are
    returned, and the graph queued again sends nothing."""
    emulator.backend.configure(queue_time=0.1, service_time=1.5)
    host = host_on(base_dir, emulator).start()
    holder = None
    try:
        seed = int(time.time() * 1000) % 10**8 + 6
        assert execution_error(host.run(t2i(seed - 100))) is None   # the ledger exists
        prompt_id = host.queue(t2i(seed, "sync"))
        deadline = time.monotonic() + 60
        while not any(e["kind"] == "sync" for e in emulator.backend.log):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        holder = sqlite3.connect(base_dir / "user" / "wan_image" / "ledger.sqlite3", isolation_level=None,
                                 check_same_thread=False)
        holder.execute("BEGIN EXCLUSIVE")
        entry = host.wait(prompt_id, timeout=120)
        assert execution_error(entry) is None, execution_error(entry)
        holder.execute("ROLLBACK")
        assert "OperationalError" not in host.log() and "ledger could not record" in host.log()
        made = creations(emulator)
        entry = host.run(t2i(seed, "sync"))   # (a new prompt id: ComfyUI's own cache is per prompt)
        assert execution_error(entry) is None and creations(emulator) == made
    finally:
        if holder is not None:
            holder.close()
        host.stop()


def test_a_zero_byte_cached_picture_is_fetched_again_without_a_creation(emulator, base_dir):
    seed = int(time.time() * 1000) % 10**8 + 7
    first = host_on(base_dir, emulator).start()
    try:
        assert execution_error(first.run(t2i(seed))) is None
    finally:
        first.stop()
    pictures = sorted((base_dir / "user" / "wan_image" / "results").glob("*/0.png"))
    assert len(pictures) == 1
    pictures[0].write_bytes(b"")   # renamed into place, then the power went before the data reached the disk
    made = creations(emulator)
    second = host_on(base_dir, emulator).start()
    try:
        entry = second.run(t2i(seed))
        assert execution_error(entry) is None, execution_error(entry)
        assert creations(emulator) == made, "a damaged cache entry was paid for again"
        assert_saved_are_served(second, entry)
        healed = sorted((base_dir / "user" / "wan_image" / "results").glob("*/0.png"))
        assert len(healed) == 1 and Image.open(healed[0]).size == (1024, 1024), "the cache entry was not healed"
    finally:
        second.stop()


def test_a_damaged_journal_and_ledger_are_moved_aside_and_the_run_goes_on(emulator, base_dir):
    state = base_dir / "user" / "wan_image"
    state.mkdir(parents=True)
    for name in ("journal.sqlite3", "ledger.sqlite3"):
        (state / name).write_bytes(b"this is not a database, a disk filled up mid-write\n" * 100)
    host = host_on(base_dir, emulator).start()
    try:
        seed = int(time.time() * 1000) % 10**8 + 8
        entry = host.run(t2i(seed))
        assert execution_error(entry) is None, execution_error(entry)
        for name in ("journal.sqlite3", "ledger.sqlite3"):
            aside = list(state.glob(f"{name}.damaged-*"))
            assert len(aside) == 1, f"{name} was not moved aside"
            assert b"not a database" in aside[0].read_bytes()
            assert any(name in line and aside[0].name in line for line in host.log().splitlines()), \
                f"no log line names both {name} and {aside[0].name}"
            with sqlite3.connect(state / name) as db:
                assert db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    finally:
        host.stop()
