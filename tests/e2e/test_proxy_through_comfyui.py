"""A real ComfyUI whose network goes through a SOCKS5 proxy (HTTPS_PROXY=socks5://..., as on a locked-down
network): Wan graphs run, the service is reached only through the proxy, and the ledger shows exactly what
the service billed (`python -m api.ledger`, as a user would read it)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from comfy_host import ComfyHost, execution_error
from e2e_support import E2E_KEY

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "api"))
from proxies import CERT, serve_tls, socks5_proxy  # noqa: E402

from api.emulator import EmulatorServer, Settings  # noqa: E402


@pytest.fixture(scope="module")
def tls_emulator():
    server = EmulatorServer(settings=Settings(queue_time=0.1, service_time=0.3, api_keys=[E2E_KEY]))
    base_url = serve_tls(server)
    server.start()
    yield server, base_url
    server.stop()


@pytest.fixture(scope="module")
def socks():
    with socks5_proxy() as proxy:
        yield proxy


@pytest.fixture(scope="module")
def comfy_behind_socks(tls_emulator, socks):
    server, base_url = tls_emulator
    proxy = f"socks5://127.0.0.1:{socks.port}"
    host = ComfyHost({"DASHSCOPE_HTTP_BASE_URL": base_url, "DASHSCOPE_API_KEY": E2E_KEY,
                      "HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "NO_PROXY": "", "no_proxy": "",
                      # The emulator's certificate is the test's own; the pack verifies TLS as always.
                      "REQUESTS_CA_BUNDLE": str(CERT)})
    host.start()
    yield host
    host.cleanup()


def test_wan_graphs_run_through_a_socks5_proxy_with_the_ledger_clean(comfy_behind_socks, tls_emulator, socks):
    server, _ = tls_emulator
    comfy = comfy_behind_socks
    tag = uuid.uuid4().hex[:8]
    g = {
        "1": {"class_type": "WanTextToImage",
              "inputs": {"model": "wan2.7-image", "prompt": f"a lighthouse {tag}", "n": 2, "size": "1K", "seed": 3}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"socks_{tag}"}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["1", 2]}},
        "4": {"class_type": "WanInterleave",
              "inputs": {"model": "wan2.6-image", "prompt": f"a tutorial for tea {tag}", "max_images": 2,
                         "size": "1024*1024", "seed": 4}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": f"socks_{tag}_i"}},
    }
    entry = comfy.run(g, timeout=180)
    error = execution_error(entry)
    assert error is None, error and error["exception_message"]
    info = json.loads(entry["outputs"]["3"]["text"][0])
    assert info["images_billed_this_run"] == 2
    assert len(entry["outputs"]["2"]["images"]) == 2 and entry["outputs"]["5"]["images"]

    stats = server.backend.stats()
    assert stats["creations"] == 2, stats
    api_target = f"127.0.0.1:{server.port}"
    results_target = f"127.0.0.1:{server.results.server_address[1]}"
    assert api_target in socks.targets and results_target in socks.targets, socks.targets

    # The ledger, read as a user would, holds what the service billed: no more, nothing unsure.
    ledger = subprocess.run([sys.executable, "-m", "api.ledger", "--state-dir", str(comfy.base / "user" / "wan_image"),
                             "--csv", "-"], cwd=str(ROOT), capture_output=True, text=True, timeout=60)
    assert ledger.returncode == 0, ledger.stderr
    rows = list(csv.DictReader(io.StringIO(ledger.stdout)))
    assert sum(int(r["pictures"]) for r in rows) == stats["images_billed"], (rows, stats)
    assert {r["status"] for r in rows} <= {"billed"}, rows
