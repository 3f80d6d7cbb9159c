"""Never pay twice, never lose a paid picture: the journal resumes tasks, the cache answers repeats."""

from __future__ import annotations

import time

import numpy as np
import pytest

from api import MODELS, build_request, encode_image, errors, describe
from api.money.store import ResultCache, Store
from apitest import cancel_once_seen, make_client, photo


def edit(seed=1, n=2):
    spec = MODELS["wan2.7-image"]
    return build_request("wan2.7-image", "make it autumn", [encode_image(photo(300, 300), spec.image)], n=n,
                         size="1K", seed=seed)


def creations(emulator):
    return emulator.backend.stats()["creations"]


def interrupted_once_the_task_exists(emulator):
    """Cancel, pressed once the task was created and asked about (PENDING or RUNNING, by the queue time)."""
    return cancel_once_seen(emulator, "query")


def test_an_unchanged_request_is_answered_from_the_cache_with_no_request(emulator, tmp_path):
    first = make_client(emulator, store=Store(tmp_path)).generate(edit())
    before = len(emulator.backend.log)
    # A new client on the same folder: what a ComfyUI restart looks like.
    again = make_client(emulator, store=Store(tmp_path)).generate(edit())
    assert len(emulator.backend.log) == before, "a cached answer must send nothing"
    assert again.from_cache and describe(again)["cached"] and describe(again)["images_billed_this_run"] == 0
    assert [a.data for a in again.images] == [b.data for b in first.images]
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(again.images, first.images))
    # A new seed is a new request.
    make_client(emulator, store=Store(tmp_path)).generate(edit(seed=2))
    assert creations(emulator) == 2


def test_a_task_interrupted_while_running_is_resumed_not_recreated(emulator, tmp_path):
    emulator.backend.configure(queue_time=0.0, service_time=2.0)
    with pytest.raises(errors.Interrupted) as info:
        make_client(emulator, store=Store(tmp_path)).generate(edit(), cancel=interrupted_once_the_task_exists(emulator))
    assert "RUNNING" in str(info.value)
    task_id = info.value.task_id
    result = make_client(emulator, store=Store(tmp_path)).generate(edit())
    assert result.task_id == task_id
    assert creations(emulator) == 1 and len(result.images) == 2
    assert [(e.state, e.billing.verdict) for e in Store(tmp_path).journal.entries()] == [("fetched", "yes")]


def test_a_task_stopped_while_running_is_fetched_in_the_background(emulator, tmp_path):
    """Cancel while the task RUNS: it will be billed, so it is followed to its end and its pictures are
    downloaded into the cache, with nobody waiting; the next identical run sends nothing at all."""
    emulator.backend.configure(queue_time=0.0, service_time=0.8)
    with pytest.raises(errors.Interrupted) as stopped:
        make_client(emulator, store=Store(tmp_path)).generate(edit(), cancel=interrupted_once_the_task_exists(emulator))
    assert "Wan Recent Results" in str(stopped.value)
    deadline = time.monotonic() + 60
    while [e.state for e in Store(tmp_path).journal.entries()] != ["fetched"]:
        assert time.monotonic() < deadline, "the running task was not followed to its end"
        time.sleep(0.1)
    before = len(emulator.backend.log)
    result = make_client(emulator, store=Store(tmp_path)).generate(edit())
    assert result.from_cache and len(emulator.backend.log) == before
    assert creations(emulator) == 1 and len(result.images) == 2


def test_a_pending_task_interrupted_is_canceled_and_the_next_run_creates_anew(emulator, tmp_path):
    emulator.backend.configure(queue_time=5.0)
    with pytest.raises(errors.Interrupted) as info:
        make_client(emulator, store=Store(tmp_path)).generate(edit(), cancel=interrupted_once_the_task_exists(emulator))
    assert info.value.task_canceled
    emulator.backend.configure(queue_time=0.1)
    make_client(emulator, store=Store(tmp_path)).generate(edit())
    stats = emulator.backend.stats()
    assert stats["creations"] == 2 and stats["tasks"] == {"CANCELED": 1, "SUCCEEDED": 1}
    assert stats["images_billed"] == 2, "the canceled task was never billed"


def test_a_failed_download_is_fetched_again_from_the_same_task(emulator, tmp_path):
    from api.service.transport import RetryPolicy
    from api.service.download import Downloader

    emulator.backend.add_fault({"kind": "http", "on": "download", "status": 500, "code": "InternalError",
                                "times": 10})
    flaky = make_client(emulator, store=Store(tmp_path),
                        downloader=Downloader(retry=RetryPolicy(attempts=2, backoff=0.01)))
    with pytest.raises(errors.DownloadError) as failed:
        flaky.generate(edit())
    # In plain words: what the result host answered, and that the pictures are recorded (not the
    # downloader's internal exception names).
    message = str(failed.value)
    assert "2 picture(s) were made and paid for" in message and "(HTTP 500)" in message, message
    assert "_Transient" not in message and ".)." not in message, message
    with emulator.backend.lock:
        emulator.backend.faults.clear()
    result = make_client(emulator, store=Store(tmp_path)).generate(edit())
    assert creations(emulator) == 1 and len(result.images) == 2


def test_an_expired_task_is_not_waited_for(emulator, tmp_path):
    emulator.backend.configure(queue_time=0.0, service_time=2.0)
    with pytest.raises(errors.Interrupted):
        make_client(emulator, store=Store(tmp_path)).generate(edit(), cancel=interrupted_once_the_task_exists(emulator))
    # The service forgot the task (its clock moved past 24 h); our journal, by our clock, still offers it.
    emulator.backend.advance(25 * 3600)
    emulator.backend.configure(service_time=0.2)
    store = Store(tmp_path)
    assert store.journal.find(make_client(emulator).account, edit().fingerprint()) is not None
    # (Our clock did not move: the task is given up after UNKNOWN answers for query_failure_budget seconds.)
    result = make_client(emulator, store=store, query_failure_budget=0.3).generate(edit())
    assert creations(emulator) == 2 and len(result.images) == 2
    # Whether the lost task ran and billed, nobody can say: it ends as "maybe".
    assert sorted((e.state, e.billing.verdict) for e in store.journal.entries()) == [("ended", "maybe"),
                                                                                      ("fetched", "yes")]


def test_the_cache_evicts_the_least_recently_used(tmp_path):
    cache = ResultCache(tmp_path, max_bytes=2500)
    for name in ("aa", "bb", "cc"):
        cache.put(name, {"urls": []}, [b"x" * 1000])
        time.sleep(0.02)
    assert cache.get("aa") is None, "the oldest entry should have gone"
    assert cache.get("bb") is not None
    time.sleep(0.02)
    cache.put("dd", {"urls": []}, [b"y" * 1000])
    assert cache.get("bb") is not None and cache.get("cc") is None, "bb was used more recently than cc"
    assert cache.size() <= 2500 + 200


def test_cost_is_estimated_where_a_price_is_known(emulator, tmp_path, monkeypatch):
    from api.money.pricing import estimate

    assert estimate("wan2.7-image", "beijing", 3)["total"] == 0.6
    assert estimate("wan2.6-image", "beijing", 3) is None, "no price is invented"
    monkeypatch.setenv("WAN_PRICES", '{"wan2.7-image": {"amount": 0.03, "currency": "USD"}}')
    result = make_client(emulator, store=Store(tmp_path)).generate(edit(seed=77))
    info = describe(result)
    assert info["cost_estimate"] == {"images": 2, "unit_price": 0.03, "currency": "USD", "total": 0.06,
                                     "source": "WAN_PRICES"}
    again = make_client(emulator, store=Store(tmp_path)).generate(edit(seed=77))
    again = describe(again)
    assert again["cost_estimate"]["total"] == 0 and again["images_billed_this_run"] == 0


def test_a_task_whose_queries_keep_failing_stays_resumable(emulator, tmp_path):
    """The service failing to answer about a task is not the task failing: the next run must resume it."""
    emulator.backend.configure(queue_time=0.0, service_time=0.5)
    emulator.backend.add_fault({"kind": "http", "on": "query", "status": 500, "code": "InternalError", "times": -1})
    impatient = make_client(emulator, store=Store(tmp_path), query_failure_budget=0.3)
    with pytest.raises(errors.ServerError):
        impatient.generate(edit(seed=91))
    assert [(e.state, e.billing) for e in Store(tmp_path).journal.entries()] == [("created", None)]
    with emulator.backend.lock:
        emulator.backend.faults.clear()
    result = make_client(emulator, store=Store(tmp_path)).generate(edit(seed=91))
    assert creations(emulator) == 1 and len(result.images) == 2


def test_a_failed_task_is_not_offered_again(emulator, tmp_path):
    emulator.backend.add_fault({"kind": "task_failed", "code": "InternalError", "message": "boom"})
    with pytest.raises(errors.ServerError):
        make_client(emulator, store=Store(tmp_path)).generate(edit(seed=92))
    assert [(e.state, e.billing.verdict) for e in Store(tmp_path).journal.entries()] == [("ended", "no")]
    make_client(emulator, store=Store(tmp_path)).generate(edit(seed=92))
    assert creations(emulator) == 2


def test_a_failed_cache_write_leaves_no_temporary_folder(tmp_path):
    cache = ResultCache(tmp_path, max_bytes=10**9)
    with pytest.raises(TypeError):
        cache.put("abc123", {"urls": []}, [b"x" * 100, object()])  # the second file cannot be written
    assert list(tmp_path.iterdir()) == [], "a half-written temporary folder was left behind"


def test_eviction_counts_and_clears_temporary_folders(tmp_path):
    import os

    cache = ResultCache(tmp_path, max_bytes=3000)
    stale = tmp_path / ".dead.1.2.tmp"
    stale.mkdir()
    (stale / "0.png").write_bytes(b"x" * 5000)
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    fresh = tmp_path / ".busy.3.4.tmp"
    fresh.mkdir()
    (fresh / "0.png").write_bytes(b"x" * 2000)
    cache.put("aaa", {"urls": []}, [b"y" * 500])
    cache.put("bbb", {"urls": []}, [b"z" * 500])
    assert not stale.exists(), "a temporary folder left by a dead write is never cleared"
    # The write in progress counts: its 2000 bytes, two results and their meta.json files pass 3000, so the
    # older result goes.
    assert fresh.exists() and not (tmp_path / "aaa").exists() and (tmp_path / "bbb").exists()
