"""What loading the pack at ComfyUI's start-up imports: only what a node's first run needs. The comparison
sheet (its drawing and fonts), the ledger's report and chart, the probe and the emulator come when used.

In a fresh interpreter of the host's Python, ComfyUI's modules loaded first (as at its start-up), then the
pack by file path as ComfyUI loads custom nodes; the modules that appeared are listed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = r'''
import sys, importlib.util, pathlib
sys.path.insert(0, sys.argv[1] + "/scripts")
import inprocess
sys.path[:] = [p for p in sys.path if p not in ("", ".")]
sys.path.insert(0, str(inprocess.hosts.comfy_dir(inprocess.hosts.require())))
import utils.install_util, comfy.cli_args
comfy.cli_args.args.cpu = True
import nodes, server, comfy_api.latest
before = set(sys.modules)
spec = importlib.util.spec_from_file_location("wan_pack", pathlib.Path(sys.argv[1]) / "__init__.py")
module = importlib.util.module_from_spec(spec); sys.modules["wan_pack"] = module; spec.loader.exec_module(module)
print(" ".join(sorted(set(sys.modules) - before)))
'''

NOT_AT_START_UP = ("wan_pack.api.sheet", "wan_pack.api.ledger.report", "wan_pack.api.probe", "wan_pack.api.emulator")


def test_the_pack_imports_at_start_up_only_what_a_first_run_needs():
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    loaded = out.stdout.split()
    assert "wan_pack.nodes.wan_nodes" in loaded, loaded   # the pack did load
    early = [name for name in loaded if name.startswith(NOT_AT_START_UP)]
    assert not early, early
