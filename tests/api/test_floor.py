"""The client on the lowest requests and urllib3 the pack declares (requirements.txt), installed by
scripts/setup_floor.sh: a stream must be read, not billed and then reported as a broken connection."""

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
