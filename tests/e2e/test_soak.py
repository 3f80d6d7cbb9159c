"""One short pass of the fault soak in CI: 23 in-process runs (every scenario once), then one round of 8 Wan
nodes in flight per two-server scenario (two real ComfyUI servers on one base directory, faults, a server
killed and restarted, the daily limit crossed). The full soak is `make soak`, quoted in docs/money.md."""

from __future__ import annotations

import re
import subprocess

import hosts
from comfy_host import ROOT


def test_one_pass_of_the_fault_soak():
    # soak.py loads ComfyUI into its own process: the host's Python.
    proc = subprocess.run([str(hosts.python()), str(ROOT / "benchmarks" / "soak.py"), "--cycles", "1",
                           "--min-runs", "20", "--rounds", "1"], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    out = proc.stdout
    assert out.count("results lost: 0") == 2, out + proc.stderr[-3000:]
    assert out.count("failed without a clear error: 0") == 2, out
    assert out.count("billable creations per logical request: exactly 1") == 2, out
    assert "pictures billed over the daily limit: 0" in out, out
    assert "servers killed and restarted: 1" in out, out
    assert "'database is locked' in the servers' logs: 0" in out, out
    # 16 nodes of one picture against a limit of 12: 12 made, 4 refused before sending.
    assert re.search(r"^2 servers: daily limit 12\s+16\s+12\s+4\s+0\s+12\s+\d+\s+12\s", out, re.M), out
    assert proc.returncode == 0, out + proc.stderr[-3000:]
