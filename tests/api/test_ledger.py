"""The daily limit and the ledger (api/ledger/), and the limits shared by processes on one folder
(api/service/ratelimit.py): against the real emulator, with real processes where processes are the point."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from api import MODELS, build_request, encode_image, errors
from api.ledger import DailyLimitError, Entry, Ledger, local_day, open_ledger
from api.ledger.report import report_text, summary
from api.money.billing import made
from api.money.store import Store
from api.service.ratelimit import SharedSlots, SharedTokenBucket, acquire_slot
from apitest import ROOT, TEST_KEY, cancel_once_seen, make_client, photo

ACCOUNT = "acct0123456789ab"


def t2i(seed: int, n: int = 1):
    return build_request("wan2.7-image", "a lighthouse at dusk", [], n=n, size="1K", seed=seed)


def edit(seed: int, n: int = 2):
    spec = MODELS["wan2.7-image"]
    return build_request("wan2.7-image", "make it autumn", [encode_image(photo(200, 200), spec.image)], n=n,
                         size="1K", seed=seed)


def creations(emulator) -> int:
    return emulator.backend.stats()["creations"]


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_limit_of_3_refuses_before_sending_and_survives_a_restart(emulator, tmp_path, monkeypatch):
    monkeypatch.setenv("WAN_DAILY_IMAGE_LIMIT", "3")
    client = make_client(emulator, store=Store(tmp_path))
    assert len(client.generate(edit(1, n=2)).images) == 2
    with pytest.raises(DailyLimitError) as refused:
        client.generate(edit(2, n=2))
    message = str(refused.value)
    assert "WAN_DAILY_IMAGE_LIMIT" in message and "limit is 3" in message and "2 billed" in message
    assert "Nothing was sent" in message and "raise WAN_DAILY_IMAGE_LIMIT" in message
    assert isinstance(refused.value, errors.WanInputError)
    assert creations(emulator) == 1, "a refused request must not reach the service"
    # A repeat of the first request is answered from the cache: costs nothing, counts nothing.
    assert client.generate(edit(1, n=2)).from_cache
    assert len(client.generate(t2i(3, n=1)).images) == 1
    assert creations(emulator) == 2
    # A restart: a new process's client on the same folder still knows today's 3.
    restarted = run_python("""
        import sys
        sys.path.insert(0, ".")
        from api import build_request, errors
        from api.config import Endpoint
        from api.money.store import Store
        from api import WanClient
        from pathlib import Path
        c = WanClient(sys.argv[1], endpoint=Endpoint(base_url=sys.argv[2], region=None, overridden=True),
                      store=Store(Path(sys.argv[3])))
        try:
            c.generate(build_request("wan2.7-image", "one more", [], n=1, size="1K", seed=9))
            print("SENT")
        except errors.WanInputError as exc:
            print("REFUSED", exc)
    """, TEST_KEY, emulator.base_url, str(tmp_path))
    assert restarted.stdout.startswith("REFUSED"), restarted.stdout + restarted.stderr
    assert "limit is 3" in restarted.stdout and "3 billed" in restarted.stdout
    assert creations(emulator) == 2
    ledger = open_ledger(tmp_path)
    rows = ledger.entries()
    assert [r["pictures"] for r in rows] == [2, 1] and all(r["status"] == "billed" for r in rows)
    assert all(r["request_id"] and r["task_id"] for r in rows)
    assert TEST_KEY not in str(rows) and rows[0]["account"] == client.transport.api_key.fingerprint


def test_concurrent_processes_cannot_slip_past_the_limit(tmp_path):
    # 4 processes x 6 reservations of 1 picture against a limit of 10: exactly 10 are granted.
    code = """
        import sys, os
        sys.path.insert(0, ".")
        os.environ["WAN_DAILY_IMAGE_LIMIT"] = "10"
        from pathlib import Path
        from api.money.billing import made
        from api.ledger import Ledger, DailyLimitError
        ledger = Ledger(Path(sys.argv[1]))
        granted = 0
        for i in range(6):
            try:
                r = ledger.reserve("acct", "emulator", "wan2.7-image", 1)
                ledger.settle(r.entry(f"req-{os.getpid()}-{i}"), made(1), r)
                granted += 1
            except DailyLimitError:
                pass
        print(granted)
    """
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert sum(int(o[0]) for o in outs) == 10
    assert sum(r["pictures"] for r in Ledger(tmp_path).entries()) == 10


def test_threads_in_flight_count_before_they_settle(tmp_path, monkeypatch):
    monkeypatch.setenv("WAN_DAILY_IMAGE_LIMIT", "4")
    ledger = Ledger(tmp_path)
    first = ledger.reserve(ACCOUNT, "e", "wan2.7-image", 3)
    with pytest.raises(DailyLimitError, match="0 billed and 3 in flight"):
        ledger.reserve(ACCOUNT, "e", "wan2.7-image", 2)
    ledger.release(first)  # nothing was billed: the room is back
    second = ledger.reserve(ACCOUNT, "e", "wan2.7-image", 4)
    ledger.settle(second.entry("r", "t"), made(1), second)  # the service made fewer than asked
    ledger.reserve(ACCOUNT, "e", "wan2.7-image", 3)
    # Another account has its own limit.
    ledger.reserve("otheraccount0000", "e", "wan2.7-image", 4)


def test_a_dead_process_reservation_stays_counted_as_unsure(tmp_path, monkeypatch):
    monkeypatch.setenv("WAN_DAILY_IMAGE_LIMIT", "5")
    died = run_python("""
        import sys, os
        sys.path.insert(0, ".")
        from pathlib import Path
        from api.ledger import Ledger
        Ledger(Path(sys.argv[1])).reserve("acct", "e", "wan2.7-image", 4, fingerprint="f" * 64, answer_id="a1")
        os._exit(0)   # killed with the request in flight
    """, str(tmp_path))
    assert died.returncode == 0, died.stderr
    ledger = Ledger(tmp_path)
    with pytest.raises(DailyLimitError, match="4 billed and 0 in flight"):
        ledger.reserve("acct", "e", "wan2.7-image", 2)
    rows = ledger.entries()
    assert [(r["pictures"], r["status"]) for r in rows] == [(4, "unsure")]
    # The dead process's mark is gone; only this process's remains.
    assert len(list((tmp_path / "ledger-owners").glob("*.lock"))) == 1
    # Its task, fetched later by a resumed run, replaces the unsure count with what was billed: the
    # settlement names the same journal record (answer id) as the dead process's reservation did.
    ledger.settle(Entry(answer_id="a1", account="acct", endpoint="e", region=None, model="wan2.7-image",
                        max_pictures=4, request_id="req", task_id="task-1"), made(2))
    assert [(r["pictures"], r["status"]) for r in ledger.entries()] == [(2, "billed")]
    assert "of which unsure" not in report_text(summary(ledger))


def test_a_dead_process_task_settled_by_another_before_any_sweep_is_counted_once(tmp_path, monkeypatch):
    """The other order: a server dies with its task running; the other server (same folder) resumes the task
    from the journal and settles it BEFORE anyone sweeps the dead server's reservation. The later sweep must
    not add an unsure entry for a request already settled: it would count the pictures twice against the
    daily limit."""
    monkeypatch.setenv("WAN_DAILY_IMAGE_LIMIT", "5")
    died = run_python("""
        import sys, os
        sys.path.insert(0, ".")
        from pathlib import Path
        from api.ledger import Ledger
        Ledger(Path(sys.argv[1])).reserve("acct", "e", "wan2.7-image", 2, fingerprint="f" * 64, answer_id="a1")
        os._exit(0)   # killed with the request in flight
    """, str(tmp_path))
    assert died.returncode == 0, died.stderr
    ledger = Ledger(tmp_path)
    ledger.settle(Entry(answer_id="a1", account="acct", endpoint="e", region=None, model="wan2.7-image",
                        max_pictures=2, request_id="req", task_id="task-1"), made(2))
    # The next reservation sweeps what the dead process left: 2 billed + 3 more fits a limit of 5.
    ledger.reserve("acct", "e", "wan2.7-image", 3)
    assert [(r["pictures"], r["status"]) for r in ledger.entries()] == [(2, "billed")]


def test_outcomes_release_or_keep_what_may_have_been_billed(emulator, tmp_path, monkeypatch):
    monkeypatch.setenv("WAN_DAILY_IMAGE_LIMIT", "100")
    client = make_client(emulator, store=Store(tmp_path))
    ledger = open_ledger(tmp_path)
    # A task that FAILED is not billed: nothing recorded, nothing held.
    emulator.backend.add_fault({"kind": "task_failed", "code": "DataInspectionFailed", "message": "no"})
    with pytest.raises(errors.ContentModerationError):
        client.generate(t2i(10))
    # Refused by the service before creating anything (400): released.
    emulator.backend.add_fault({"kind": "http", "status": 400, "code": "InvalidParameter", "message": "bad"})
    with pytest.raises(errors.InvalidParameterError):
        client.generate(t2i(11))
    assert ledger.entries() == [] and ledger.in_flight() == 0
    # Cut after the body was sent: it may have been billed, so it stays counted (unsure, n pictures).
    emulator.backend.add_fault({"kind": "reset_after_body"})
    with pytest.raises(errors.WanConnectionError) as cut:
        client.generate(edit(12, n=2))
    assert cut.value.maybe_billed
    assert [(r["pictures"], r["status"]) for r in ledger.entries()] == [(2, "unsure")]
    assert ledger.in_flight() == 0


def test_an_interrupted_running_task_is_counted_once_when_fetched_later(emulator, tmp_path):
    emulator.backend.configure(queue_time=0.0, service_time=3.0)
    client = make_client(emulator, store=Store(tmp_path))
    cancel = cancel_once_seen(emulator, "query")  # RUNNING from its creation: left to finish at the service
    with pytest.raises(errors.Interrupted):
        client.generate(edit(20, n=2), cancel=cancel)
    assert [(r["pictures"], r["status"]) for r in open_ledger(tmp_path).entries()] == [(2, "unsure")]
    result = client.generate(edit(20, n=2))   # resumes the journaled task
    assert creations(emulator) == 1 and len(result.images) == 2
    rows = open_ledger(tmp_path).entries()
    assert [(r["pictures"], r["status"], r["task_id"]) for r in rows] == [(2, "billed", result.task_id)]


def test_daily_budget_uses_prices_and_names_wan_prices_when_none_is_known(emulator, tmp_path, monkeypatch):
    client = make_client(emulator, store=Store(tmp_path))
    monkeypatch.setenv("WAN_DAILY_BUDGET", "0.10")
    with pytest.raises(DailyLimitError, match="WAN_PRICES"):
        client.generate(t2i(30))   # the emulator's endpoint has no region, so no price is known
    monkeypatch.setenv("WAN_PRICES", '{"wan2.7-image": {"amount": 0.04, "currency": "USD"}}')
    client.generate(t2i(31, n=2))   # 0.08 USD
    with pytest.raises(DailyLimitError) as over:
        client.generate(t2i(32, n=1))   # +0.04 > 0.10
    assert "WAN_DAILY_BUDGET" in str(over.value) and "0.1 USD" in str(over.value)
    assert creations(emulator) == 1
    models = summary(open_ledger(tmp_path))["models"]
    assert models[0]["today"] == 2 and models[0]["today_cost"] == {"USD": 0.08}


def test_a_malformed_limit_is_refused_not_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("WAN_DAILY_IMAGE_LIMIT", "ten")
    with pytest.raises(errors.WanInputError, match="WAN_DAILY_IMAGE_LIMIT"):
        Ledger(tmp_path).reserve(ACCOUNT, "e", "wan2.7-image", 1)


def test_cli_prints_the_summary_and_exports_csv(emulator, tmp_path):
    client = make_client(emulator, store=Store(tmp_path))
    client.generate(edit(40, n=2))
    client.generate(t2i(41, n=1))
    out = subprocess.run([sys.executable, "-m", "api.ledger", "--state-dir", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("wan2.7-image "))
    assert line.split()[1] == "3" and line.split()[3] == "3", out.stdout
    path = tmp_path / "ledger.csv"
    subprocess.run([sys.executable, "-m", "api.ledger", "--state-dir", str(tmp_path), "--csv", str(path)],
                   cwd=ROOT, check=True, timeout=60)
    rows = list(csv.DictReader(path.open()))
    assert [int(r["pictures"]) for r in rows] == [2, 1]
    assert {r["model"] for r in rows} == {"wan2.7-image"} and all(r["task_id"] for r in rows)
    assert TEST_KEY not in path.read_text()


# ---- limits shared by processes ------------------------------------------------------------------------------

HOLD_SLOTS = """
    import sys, time
    sys.path.insert(0, ".")
    from pathlib import Path
    from api.service.ratelimit import SharedSlots
    slots = SharedSlots(Path(sys.argv[1]), int(sys.argv[2]))
    for _ in range(int(sys.argv[3])):
        assert slots.acquire(blocking=False)
    print("HOLDING", flush=True)
    time.sleep(float(sys.argv[4]))
"""


def test_generation_slots_hold_across_processes_and_free_when_one_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLD_SLOTS), str(tmp_path), "3", "2", "60"],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "HOLDING"
        slots = SharedSlots(tmp_path, 3)
        assert slots.acquire(blocking=False)          # the third slot
        assert not slots.acquire(blocking=False)      # all three are taken, two by another process
        cancel = threading.Event()
        threading.Timer(0.3, cancel.set).start()
        # Stopped by the interrupt, not by a slot coming free: a wait that ignored it would get the holder's
        # slot when the holder ends (a minute from now) and return instead of raising.
        with pytest.raises(errors.Interrupted, match="nothing was sent"):
            acquire_slot(slots, cancel)
        assert holder.poll() is None and not slots.acquire(blocking=False), "the holder still has its slots"
        holder.kill()   # its locks die with it
        holder.wait()
        assert slots.acquire(timeout=5) and slots.held_here() == 2
        slots.release()
        slots.release()
        assert slots.held_here() == 0
    finally:
        holder.kill()
        holder.wait()


def test_task_query_bucket_is_shared_by_processes(tmp_path):
    """Two processes take 40 tokens each from one bucket (20/s, burst 20), starting together (after their
    interpreters are up). The 80 moments they got one, put together, must keep to the bucket: in any stretch
    of t seconds at most 20 + 20 t, with a margin of 3 for a process that noted its moment late. Buckets of
    their own would give 40 at once, and 80 in 1 s."""
    code = """
        import json, sys, time
        sys.path.insert(0, ".")
        from pathlib import Path
        from api.service.ratelimit import SharedTokenBucket
        b = SharedTokenBucket(Path(sys.argv[1]) / "bucket", 20.0)
        print("READY", flush=True)
        sys.stdin.readline()
        stamps = []
        for _ in range(40):
            b.acquire()
            stamps.append(time.time())
        print(json.dumps(stamps))
    """
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(tmp_path)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        assert [p.stdout.readline().strip() for p in procs] == ["READY", "READY"]
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        stamps = sorted(t for p in procs for t in json.loads(p.communicate(timeout=60)[0]))
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert len(stamps) == 80
    worst = max(((j - i + 1) - (20 + 20 * (stamps[j] - stamps[i])), stamps[j] - stamps[i], j - i + 1)
                for i in range(len(stamps)) for j in range(i, len(stamps)))
    assert worst[0] <= 3, f"{worst[2]} queries in {worst[1]:.2f} s: more than one shared bucket of 20/s allows"
    # And one process alone with its own bucket would have had its 20 at once.
    solo = SharedTokenBucket(tmp_path / "solo", 20.0)
    waits = [solo.acquire() for _ in range(20)]
    assert max(waits) == 0.0


def test_a_resumed_task_found_gone_is_a_new_creation_that_must_pass_the_limit(emulator, tmp_path, monkeypatch):
    """Resuming reserves nothing (no new creation); but when the journaled task turns out expired, the new
    task that replaces it is a creation, checked against the limit before it is sent."""
    monkeypatch.setenv("WAN_DAILY_IMAGE_LIMIT", "3")
    emulator.backend.configure(queue_time=0.0, service_time=3.0)
    # (The emulator's clock jumps 25 h, ours does not: the client gives the task up after UNKNOWN answers
    # for query_failure_budget seconds, not by its age.)
    client = make_client(emulator, store=Store(tmp_path), query_failure_budget=0.3)
    cancel = cancel_once_seen(emulator, "query")  # RUNNING: left to finish, counted as unsure (2)
    with pytest.raises(errors.Interrupted):
        client.generate(edit(21, n=2), cancel=cancel)
    emulator.backend.advance(25 * 3600)        # the service forgets the task (24 h)
    with pytest.raises(DailyLimitError, match="limit is 3"):
        client.generate(edit(21, n=2))         # 2 unsure + 2 new would pass 3
    assert creations(emulator) == 1, "a replacement task was created past the daily limit"


def test_the_store_loads_without_the_report_or_the_command_line():
    """A node's run reserves and settles; the report, the chart and argparse come only with WanUsage or the
    command."""
    loaded = run_python("""
        import sys
        sys.path.insert(0, ".")
        import api
        before = set(sys.modules)
        from api.ledger import open_ledger
        print(" ".join(sorted(set(sys.modules) - before)))
    """)
    assert loaded.returncode == 0, loaded.stderr
    new = loaded.stdout.split()
    assert "api.ledger" in new
    assert not {"argparse", "api.ledger.report", "api.ledger.__main__"} & set(new), new


def test_the_ledger_command_finds_the_state_folder_itself(emulator, tmp_path, monkeypatch):
    """`python -m api.ledger` with no --state-dir: the folder the pack uses (here WAN_STATE_DIR)."""
    client = make_client(emulator, store=Store(tmp_path))
    client.generate(t2i(31, n=1))
    out = subprocess.run([sys.executable, "-m", "api.ledger"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env={**__import__("os").environ, "WAN_STATE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert "wan2.7-image" in out.stdout and "RuntimeWarning" not in out.stderr, out.stderr


@pytest.mark.parametrize("case", ["task queries keep failing", "a gateway's 504 on the creation",
                                  "a stream stopped before its first frame"])
def test_what_may_have_been_billed_stays_counted(emulator, tmp_path, monkeypatch, case):
    """Each of these ends the run with an error, but the service may be making (and billing) the pictures:
    the daily limit must go on counting them."""
    monkeypatch.setenv("WAN_DAILY_IMAGE_LIMIT", "100")
    if case == "task queries keep failing":
        emulator.backend.configure(queue_time=0.1, service_time=5.0)
        emulator.backend.add_fault({"kind": "http", "on": "query", "status": 500, "times": -1})
        client = make_client(emulator, store=Store(tmp_path), query_failure_budget=0.3)
        with pytest.raises(errors.ServerError):
            client.generate(edit(40, n=2))
    elif case == "a gateway's 504 on the creation":
        emulator.backend.add_fault({"kind": "http", "status": 504, "code": "GatewayTimeout", "message": "upstream"})
        with pytest.raises(errors.WanAPIError):
            make_client(emulator, store=Store(tmp_path)).generate(edit(41, n=2))
    else:
        emulator.backend.configure(queue_time=3.0, service_time=1.0)
        req = build_request("wan2.6-image", "tea", [], mode="interleave", max_images=2, size="1024*1024", seed=5)
        cancel = cancel_once_seen(emulator, "stream", then=0.3)   # sent, still queued: no frame yet
        with pytest.raises(errors.Interrupted):
            make_client(emulator, store=Store(tmp_path)).generate(req, transport="stream", cancel=cancel)
    rows = open_ledger(tmp_path).entries()
    assert [(r["pictures"], r["status"]) for r in rows] == [(2, "unsure")], rows


def test_a_task_carried_over_from_0_2_keeps_its_unsure_count_when_it_is_given_up(tmp_path):
    """A 0.2 journal's task knew no maximum (its record carries 0); the 0.2 ledger counted it unsure, by task
    id. Given up later (the service lost it), it may still have billed: the unsure count must stay."""
    ledger = Ledger(tmp_path)
    ledger.db.write(lambda db: db.execute(
        "INSERT INTO billed (time, day, account, endpoint, region, model, task_id, pictures, status) "
        "VALUES (?, ?, 'acct', 'e', NULL, 'wan2.7-image', 'task-02', 2, 'unsure')", (time.time(), local_day())))
    from api.money.billing import maybe
    ledger.settle(Entry(answer_id="task-02", account="acct", endpoint="e", region=None, model="wan2.7-image",
                        max_pictures=0, task_id="task-02"), maybe("the service stopped knowing the task"))
    assert [(r["pictures"], r["status"]) for r in ledger.entries()] == [(2, "unsure")]
