"""Error families, retries, and the never-pay-twice rule, against faults injected in the emulator."""

from __future__ import annotations

import time

import numpy as np
import pytest

from api import MODELS, build_request, describe, encode_image, errors, interleave
from api.service.transport import RetryPolicy, Timeouts
from apitest import TEST_KEY, cancel_once_seen, make_client, photo


def small_edit(model="wan2.7-image", **kw):
    spec = MODELS[model]
    side = 400
    kw.setdefault("n", 1)
    return build_request(model, "make it snow", [encode_image(photo(side, side), spec.image)],
                         size=kw.pop("size", "1280*1280" if model.startswith("wan2.5") else "1K"), **kw)


def billable(emulator):
    return [e for e in emulator.backend.log if e.get("billable")]


FAMILIES = [
    (400, "InvalidParameter", errors.InvalidParameterError),
    (400, "DataInspectionFailed", errors.ContentModerationError),
    (400, "IPInfringementSuspect", errors.ContentModerationError),
    (400, "Arrearage", errors.ArrearageError),
    (401, "InvalidApiKey", errors.AuthenticationError),
    (403, "AccessDenied", errors.AccessDeniedError),
    (403, "AccessDenied.Unpurchased", errors.AccessDeniedError),
    (403, "Model.AccessDenied", errors.AccessDeniedError),
    (404, "ModelNotFound", errors.ModelNotFoundError),
    (408, "RequestTimeOut", errors.RequestTimeoutError),
    (429, "Throttling.RateQuota", errors.RateLimitError),
    (429, "Throttling.AllocationQuota", errors.RateLimitError),
    (500, "InternalError.Timeout", errors.ServerError),
    (500, "SystemError", errors.ServerError),
    (503, "ModelUnavailable", errors.ServiceUnavailableError),
]


@pytest.mark.parametrize("status,code,family", FAMILIES, ids=[f[1] for f in FAMILIES])
def test_each_error_family(emulator, status, code, family):
    client = make_client(emulator, retry=RetryPolicy(attempts=1))
    emulator.backend.add_fault({"kind": "http", "status": status, "code": code, "message": f"{code} happened"})
    with pytest.raises(family) as info:
        client.generate(small_edit())
    err = info.value
    assert (err.code, err.status) == (code, status)
    assert err.request_id, "the request_id is what support asks for"
    assert emulator.base_url in str(err), "the message says where the request went"
    assert err.hint and err.hint.split(";")[0][:20] in str(err)


def test_wrong_key_says_region_and_endpoint_and_hides_the_key(emulator):
    wrong = "sk-wrong-wrong-wrong-9876"
    client = make_client(emulator, key=wrong)
    with pytest.raises(errors.AuthenticationError) as info:
        client.generate(small_edit())
    text = str(info.value) + repr(info.value)
    assert "InvalidApiKey" in text and "another region" in text and emulator.base_url in text
    assert wrong not in text
    assert wrong not in repr(client) and "…9876" in repr(client)


def test_429_honours_retry_after_then_succeeds(emulator):
    client = make_client(emulator, retry=RetryPolicy(attempts=3, backoff=0.01))
    emulator.backend.add_fault({"kind": "http", "status": 429, "code": "Throttling", "message": "slow down",
                                "retry_after": 1, "times": 2})
    started = time.monotonic()
    result = client.generate(small_edit())
    waited = time.monotonic() - started
    assert len(result.images) == 1
    assert waited >= 2.0, f"Retry-After: 1 twice, but the whole run took {waited:.2f} s"
    creates = [e for e in emulator.backend.log if e["kind"] == "async"]
    assert len(creates) == 3 and len(billable(emulator)) == 1


@pytest.mark.parametrize("status,code", [(500, "InternalError"), (503, "ModelUnavailable")])
def test_5xx_on_creation_is_retried(emulator, status, code):
    client = make_client(emulator)
    emulator.backend.add_fault({"kind": "http", "status": status, "code": code, "times": 2})
    result = client.generate(small_edit())
    assert len(result.images) == 1 and len(billable(emulator)) == 1


def test_retries_give_up_with_the_last_error(emulator):
    client = make_client(emulator, retry=RetryPolicy(attempts=3, backoff=0.01))
    emulator.backend.add_fault({"kind": "http", "status": 503, "code": "ModelUnavailable", "times": -1})
    with pytest.raises(errors.ServiceUnavailableError):
        client.generate(small_edit())
    assert len([e for e in emulator.backend.log if e["kind"] == "async"]) == 3


def test_retry_after_longer_than_the_cap_is_reported_not_waited(emulator):
    client = make_client(emulator, retry=RetryPolicy(attempts=3, retry_after_max=5))
    emulator.backend.add_fault({"kind": "http", "status": 429, "code": "Throttling", "retry_after": 3600})
    with pytest.raises(errors.RateLimitError):
        client.generate(small_edit())
    # Reported at once: a client that waited (even only up to the cap) would have sent it again, and the
    # service, its one refusal spent, would have created the task.
    assert len([e for e in emulator.backend.log if e["kind"] == "async"]) == 1
    assert emulator.backend.stats()["creations"] == 0


def test_400_is_never_retried(emulator):
    client = make_client(emulator)
    emulator.backend.add_fault({"kind": "http", "status": 400, "code": "DataInspectionFailed", "times": 5})
    with pytest.raises(errors.ContentModerationError):
        client.generate(small_edit())
    assert len([e for e in emulator.backend.log if e["kind"] == "async"]) == 1


@pytest.mark.parametrize("transport", ["async", "sync", "stream"])
def test_reset_after_the_body_is_never_resent(emulator, transport):
    """The service accepted (and will bill) it; sending again would pay twice."""
    client = make_client(emulator)
    emulator.backend.add_fault({"kind": "reset_after_body"})
    # Streaming is documented for wan2.6 interleave only (api/request/models.py), so the stream case streams that.
    req = interleave("wan2.6-image", "a recipe in three steps", max_images=2) if transport == "stream" else small_edit()
    with pytest.raises(errors.WanConnectionError) as info:
        client.generate(req, transport=transport)
    assert info.value.maybe_billed and "NOT sent again" in str(info.value)
    assert emulator.backend.stats()["creations"] == 1
    assert len([e for e in emulator.backend.log if e["kind"] in ("async", "sync", "stream")]) == 1


def test_read_timeout_after_the_body_is_never_resent(emulator):
    client = make_client(emulator, timeouts=Timeouts(create_read=0.5))
    emulator.backend.add_fault({"kind": "slow", "delay": 2.0})
    with pytest.raises(errors.WanTimeoutError) as info:
        client.generate(small_edit())
    assert info.value.maybe_billed
    time.sleep(2.0)
    assert emulator.backend.stats()["creations"] == 1
    assert len([e for e in emulator.backend.log if e["kind"] == "async"]) == 1


def test_reset_before_the_body_is_sent_is_retried(emulator):
    """A body too large for the socket buffers: the reset breaks the upload, the service took nothing,
    so sending again is safe and the request succeeds with one creation."""
    spec = MODELS["wan2.7-image"]
    noise = np.random.default_rng(0).random((2400, 2400, 3), dtype=np.float32)
    req = build_request("wan2.7-image", "x", [encode_image(noise, spec.image, fmt="png")], n=1, size="1K")
    assert len(req.body["input"]["messages"][0]["content"][0]["image"]) > 12_000_000
    client = make_client(emulator)
    emulator.backend.add_fault({"kind": "reset_before_body"})
    result = client.generate(req)
    assert len(result.images) == 1
    assert emulator.backend.stats()["creations"] == 1


def test_unreachable_service_is_retried_and_then_says_so():
    from api import WanClient
    from api.config import Endpoint

    client = WanClient(TEST_KEY, endpoint=Endpoint("http://127.0.0.1:9/api/v1", None, True),
                       retry=RetryPolicy(attempts=3, backoff=0.01))
    with pytest.raises(errors.WanConnectionError) as info:
        client.generate(small_edit())
    assert not info.value.maybe_billed
    assert "could not connect" in str(info.value) and "tried 3 times" in str(info.value)


def test_task_queries_survive_faults(emulator):
    client = make_client(emulator)
    emulator.backend.add_fault({"kind": "http", "on": "query", "status": 500, "code": "InternalError", "times": 2})
    emulator.backend.add_fault({"kind": "reset_after_body", "on": "query"})
    emulator.backend.add_fault({"kind": "http", "on": "query", "status": 502, "code": "BadGateway"})
    result = client.generate(small_edit())
    assert len(result.images) == 1 and emulator.backend.stats()["creations"] == 1


def test_task_failure_is_reported_with_its_code(emulator, client):
    emulator.backend.add_fault({"kind": "task_failed", "code": "DataInspectionFailed",
                                "message": "Output data may contain inappropriate content."})
    with pytest.raises(errors.ContentModerationError) as info:
        client.generate(small_edit())
    assert info.value.task_id and "inappropriate" in str(info.value)


def test_wan25_partial_failure_keeps_the_good_images(emulator, client):
    emulator.backend.add_fault({"kind": "partial_failure", "failed": 2, "code": "DataInspectionFailed",
                                "message": "one result failed moderation"})
    result = client.generate(small_edit("wan2.5-i2i-preview", n=4))
    assert len(result.images) == 2
    assert [f["code"] for f in result.failures] == ["DataInspectionFailed"] * 2
    assert describe(result)["failures"] and describe(result)["images_billed"] == 2


def test_unknown_task_and_cancel(emulator):
    # A task the service does not know is given up once it has answered UNKNOWN without a break for the
    # client's window (2 minutes by default; 2 s here).
    client = make_client(emulator, query_failure_budget=2.0)
    with pytest.raises(errors.TaskExpiredError, match="UNKNOWN for 2 s"):
        client.wait_task("no-such-task")
    emulator.backend.configure(queue_time=5.0)
    task_id, _ = client.submit(small_edit())
    assert client.get_task(task_id)["output"]["task_status"] == "PENDING"
    assert client.cancel_task(task_id) is True
    with pytest.raises(errors.TaskCanceledError):
        client.wait_task(task_id)
    emulator.backend.configure(queue_time=0.0, service_time=5.0)
    running, _ = client.submit(small_edit(seed=1))
    time.sleep(0.1)
    assert client.cancel_task(running) is False, "a RUNNING task cannot be canceled"


def test_interrupt_while_pending_cancels_the_task(emulator):
    client = make_client(emulator)
    emulator.backend.configure(queue_time=30.0)
    cancel = cancel_once_seen(emulator, "query")   # the task exists, queued for 30 s: PENDING
    with pytest.raises(errors.Interrupted) as info:
        client.generate(small_edit(), cancel=cancel)
    assert "canceled" in str(info.value) and info.value.task_id
    # The wait ended with the interrupt: the task was canceled while PENDING (a wait that went on would
    # have seen it through its 30 s queue), and nothing asked about it after the cancel.
    assert emulator.backend.stats()["tasks"] == {"CANCELED": 1}
    log = emulator.backend.log
    cancel_at = next(e["seq"] for e in log if e["kind"] == "cancel")
    assert [e["kind"] for e in log if e["seq"] > cancel_at] == [], "the task was still polled after its cancel"


def test_interrupt_while_running_leaves_the_task(emulator):
    client = make_client(emulator)
    emulator.backend.configure(queue_time=0.0, service_time=30.0)
    cancel = cancel_once_seen(emulator, "query")   # the task exists, generating for 30 s: RUNNING
    with pytest.raises(errors.Interrupted) as info:
        client.generate(small_edit(), cancel=cancel)
    assert "RUNNING" in str(info.value) and info.value.task_id
    assert emulator.backend.stats()["tasks"] == {"RUNNING": 1}
    assert not [e for e in emulator.backend.log if e["kind"] == "cancel"]


def test_the_poll_schedule_is_dense_around_the_time_the_service_reported_for_the_model(emulator, monkeypatch):
    """A model's finished task tells how long it took (its answer's submit_time and end_time); its next task
    is polled every `dense` seconds around that time, not every second."""
    from api.client import PollSchedule
    from api.service import calls

    monkeypatch.setattr(calls, "TASK_DURATIONS", calls.TaskDurations())
    sched = PollSchedule(fast=1.0, fast_until=100, dense=0.1)
    assert sched.interval(5, 5.0, ()) == 1.0
    # Inside the window around 5.5 s: every 0.1 s, on a grid with a query 0.05 s after 5.5 s itself.
    for age in (4.6, 5.0, 5.33, 5.5, 5.549, 5.56, 7.2):
        pause = sched.interval(5, age, (5.5,))
        assert 0 < pause <= 0.1 + 1e-9 and round((age + pause - 5.55) / 0.1, 6) % 1 == 0, (age, pause)
    assert sched.interval(5, 5.5, (5.5,)) == pytest.approx(0.05)   # the query just after the usual end
    assert sched.interval(5, 5.549, (5.5,)) == pytest.approx(0.001)   # a grid point near is not skipped
    # Two usual durations: the nearest point of either grid (5.55 + k/10 and 5.63 + k/10).
    assert sched.interval(5, 5.6, (5.5, 5.58)) == pytest.approx(0.03)
    assert sched.interval(5, 5.6, (5.58, 5.5)) == pytest.approx(0.03)
    assert sched.spacing(5, 5.5, (5.5,)) == 0.1 and sched.spacing(5, 9.0, (5.5,)) == 1.0
    assert sched.interval(5, 3.8, (5.5,)) == pytest.approx(0.7)   # wakes at its start (4.5 s), not after it
    assert sched.interval(5, 9.0, (5.5,)) == 1.0                  # after it: the ordinary schedule

    emulator.backend.configure(queue_time=0.2, service_time=2.8)
    client = make_client(emulator, poll=sched)
    counts = []
    for seed in (1, 2):
        before = len([e for e in emulator.backend.log if e["kind"] == "query"])
        client.generate(small_edit(seed=seed), transport="async")
        counts.append(len([e for e in emulator.backend.log if e["kind"] == "query"]) - before)
    # What the emulator's answer said (its times, to the millisecond): queued 0.2 s + running 2.8 s.
    assert calls.TASK_DURATIONS.usual("wan2.7-image") == (pytest.approx(3.0, abs=0.002),) * 2
    first, second = counts
    assert second > first + 3, counts   # the second task was queried densely from 2 s on


def test_the_poll_schedule_notices_quickly_and_respects_the_account_limit(emulator):
    from api.client import PollSchedule
    from api.service.ratelimit import TokenBucket

    sched = PollSchedule()
    assert sched.interval(0) <= 1.0 and sched.interval(9.9) <= 1.0
    assert sched.interval(200) >= sched.interval(5)
    # Five clients of one account share one limiter of 4 queries/s: together they stay under it.
    import threading

    limiter = TokenBucket(4.0, burst=1)
    emulator.backend.configure(queue_time=0.0, service_time=2.0)
    clients = [make_client(emulator, task_limiter=limiter,
                           poll=PollSchedule(fast=0.01, fast_until=100)) for _ in range(5)]
    threads = [threading.Thread(target=c.generate, args=(small_edit(seed=i),)) for i, c in enumerate(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    queries = [e for e in emulator.backend.log if e["kind"] == "query"]
    assert len(queries) <= 4.0 * elapsed + 2, f"{len(queries)} queries in {elapsed:.1f} s"
