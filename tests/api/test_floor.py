"""The client on the lowest requests and urllib3 the pack declares (requirements.txt), installed by
scripts/setup_floor.sh: a stream must be read, not billed and then reported as a broken connection. And the
locks shared by processes on the lowest filelock it declares: each an operating-system lock that dies with
its process, threads competing like processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from apitest import ROOT, TEST_KEY

FLOOR = ROOT / ".venv" / "floor"

SCRIPT = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import requests, urllib3
from api import PollSchedule, WanClient, build_request, errors
from api.config import Endpoint
base, key = sys.argv[1], sys.argv[2]
client = WanClient(key, endpoint=Endpoint(base_url=base, region=None, overridden=True),
                   poll=PollSchedule(fast=0.05, fast_until=5, medium=0.1))
out = {"requests": requests.__version__, "urllib3": urllib3.__version__,
       "read1": hasattr(urllib3.response.HTTPResponse, "read1")}
tea = build_request("wan2.6-image", "a tutorial for tea", [], mode="interleave", max_images=3, size="1024*1024", seed=1)
# The emulator cuts this first stream half way: what arrived comes back, saying what happened.
first = client.generate(tea, transport="stream")
out["cut"] = first.incomplete or "not cut"
texts = []
result = client.generate(tea, transport="stream", on_progress=lambda p: p.kind == "text" and texts.append(p.text))
out["stream"] = {"images": len(result.images), "text_pieces": len(texts)}
t2i = build_request("wan2.7-image", "a fox", [], mode="t2i", n=1, size="1K", seed=1)
out["async"] = len(client.generate(t2i, transport="async").images)
out["sync"] = len(client.generate(t2i, transport="sync").images)
print(json.dumps(out))
"""

# Another process: takes one of two generation slots, the whole query bucket and its owner mark, then waits
# to be killed.
HOLDER = r"""
import sys, time
from pathlib import Path
from api.ledger.owners import Owners
from api.service.ratelimit import SharedSlots, SharedTokenBucket
folder = Path(sys.argv[1])
slots = SharedSlots(folder / "slots", 2)
assert slots.acquire(blocking=False)
bucket = SharedTokenBucket(folder / "bucket" / "queries", 0.01, burst=5)
for _ in range(5):
    bucket._reserve()
print(Owners(folder).me(), flush=True)
time.sleep(120)
"""

LOCKS = r"""
import json, subprocess, sys, threading
from pathlib import Path
import filelock
from api.keystore import PageKeys
from api.ledger.owners import Owners
from api.money.locks import process_lock
from api.money.request_lock import RequestLocks
from api.service.ratelimit import SharedSlots, SharedTokenBucket
folder, holder_code = Path(sys.argv[1]), sys.argv[2]
out = {"filelock": filelock.__version__, "fallback_to_soft": process_lock(folder / "probe.lock").fallback_to_soft}

def in_another_thread(call):
    got = []
    thread = threading.Thread(target=lambda: got.append(call()))
    thread.start()
    thread.join(timeout=60)
    return got[0] if got else "hung"

holder = subprocess.Popen([sys.executable, "-c", holder_code, str(folder)], stdout=subprocess.PIPE, text=True)
try:
    mark = holder.stdout.readline().strip()
    slots = SharedSlots(folder / "slots", 2)
    out["slots"] = [slots.acquire(blocking=False), slots.acquire(blocking=False),
                    in_another_thread(lambda: slots.acquire(blocking=False))]
    out["bucket_first_waits"] = SharedTokenBucket(folder / "bucket" / "queries", 0.01, burst=5)._reserve() > 0
    owners = Owners(folder)
    out["holder_alive"] = owners.alive(mark)
finally:
    holder.kill()
    holder.wait()
out["after_kill"] = {"alive": owners.alive(mark), "mark_left": (folder / "ledger-owners" / f"{mark}.lock").exists(),
                     "slot": slots.acquire(blocking=False)}
in_another_thread(slots.release)   # given back by another thread than the one that took it
out["released"] = {"held_here": slots.held_here(),
                   "free_for_another_process": SharedSlots(folder / "slots", 2).acquire(blocking=False)}
locks = RequestLocks(folder)
held = locks.acquire("abc", None, lambda: None)
out["request_lock"] = {"refused_while_held": RequestLocks(folder)._try("abc") is None}
held.release()
out["request_lock"]["file_left"] = (folder / "locks" / "abc.lock").exists()
again = RequestLocks(folder)._try("abc")
out["request_lock"]["taken_again"] = again is not None
again.release()
keys = PageKeys(folder)
keys.set("all", "sk-floor-test-key-00001234")
out["page_key"] = keys.status()["all"]
print(json.dumps(out))
"""


def _floor(package: str) -> str:
    text = (ROOT / "requirements.txt").read_text()
    match = re.search(rf"^{package}>=([\d.]+)", text, re.M)
    assert match, f"requirements.txt declares no floor for {package}"
    parts = match.group(1).split(".")
    return ".".join(parts + ["0"] * (3 - len(parts)))


def test_streaming_works_on_the_oldest_supported_urllib3(emulator):
    assert FLOOR.is_dir(), "the floor versions are missing: run scripts/setup_floor.sh (make test does)"
    emulator.backend.add_fault({"kind": "stream_cut", "model": "wan2.6-image"})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FLOOR), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, emulator.base_url, TEST_KEY], env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["urllib3"] == _floor("urllib3") and got["requests"] == _floor("requests"), got
    assert got["read1"] is False, "this urllib3 must be one without HTTPResponse.read1"
    # A cut stream is a network fault; a missing method is not, and must never be reported as one.
    assert "AttributeError" not in got["cut"] and ("the stream broke" in got["cut"] or "ended before" in got["cut"])
    assert got["stream"]["images"] == 3 and got["stream"]["text_pieces"] > 10, got["stream"]
    assert got["async"] == 1 and got["sync"] == 1


def test_locks_work_on_the_oldest_supported_filelock(tmp_path):
    assert FLOOR.is_dir(), "the floor versions are missing: run scripts/setup_floor.sh (make test does)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FLOOR), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", LOCKS, str(tmp_path), HOLDER], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["filelock"] == _floor("filelock"), got
    assert got["fallback_to_soft"] is False, "a lock must never become a soft lock file that outlives a crash"
    # One slot free: this process takes it; the holder's is refused, to this thread and to another one.
    assert got["slots"] == [True, False, False], got["slots"]
    assert got["bucket_first_waits"], "the other process emptied the shared query bucket"
    assert got["holder_alive"] is True
    # Killed: its slot and its mark die with it; the mark is cleared by whoever finds it unheld.
    assert got["after_kill"] == {"alive": False, "mark_left": False, "slot": True}, got["after_kill"]
    assert got["released"] == {"held_here": 1, "free_for_another_process": True}, got["released"]
    assert got["request_lock"] == {"refused_while_held": True, "file_left": False, "taken_again": True}
    assert got["page_key"] == {"set": True, "ends": "1234"}
