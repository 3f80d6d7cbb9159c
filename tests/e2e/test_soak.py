"""One pass of the fault soak (20 runs, every scenario once) in CI; the full 220-run soak is
`benchmarks/soak.py`, quoted in the README."""

from __future__ import annotations

import subprocess
import sys

from comfy_host import ROOT


def test_one_pass_of_the_fault_soak():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--cycles", "1", "--min-runs", "20"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = proc.stdout
    assert "results lost: 0" in out, out + proc.stderr[-3000:]
    assert "failed without a clear error: 0" in out, out
    assert "exactly 1" in out, out
    assert proc.returncode == 0, out + proc.stderr[-3000:]
