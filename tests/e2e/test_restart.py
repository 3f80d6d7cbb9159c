"""ComfyUI restarted: a running task is fetched, not paid for again; a finished graph costs nothing."""

from __future__ import annotations

import io
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from comfy_host import ComfyHost, execution_error
from e2e_support import E2E_KEY


@pytest.fixture
def base_dir():
    path = Path(tempfile.mkdtemp(prefix="wan-restart-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def host_on(base_dir, emulator) -> ComfyHost:
    return ComfyHost({"DASHSCOPE_HTTP_BASE_URL": emulator.base_url, "DASHSCOPE_API_KEY": E2E_KEY},
                     base_dir=base_dir)


def t2i_graph(seed: int) -> dict:
    return {"1": {"class_type": "WanTextToImage",
                  "inputs": {"model": "wan2.7-image", "prompt": "a lighthouse", "n": 2, "size": "1K", "seed": seed}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"restart{seed}"}}}


def test_restart_mid_task_fetches_the_same_task(emulator, base_dir):
    emulator.backend.configure(queue_time=0.2, service_time=8.0)
    seed = int(time.time()) % 100000
    first = host_on(base_dir, emulator).start()
    try:
        first.queue(t2i_graph(seed))
        deadline = time.monotonic() + 30
        while not any(e["kind"] == "query" for e in emulator.backend.log):
            assert time.monotonic() < deadline, "the task was never created"
            time.sleep(0.05)
        time.sleep(0.5)  # past the queue: RUNNING
    finally:
        first.stop()  # ComfyUI goes away while the task runs at the service
    assert emulator.backend.stats()["tasks"] == {"RUNNING": 1}
    second = host_on(base_dir, emulator).start()
    try:
        entry = second.run(t2i_graph(seed), timeout=60)
        assert execution_error(entry) is None, execution_error(entry)
        stats = emulator.backend.stats()
        assert stats["creations"] == 1, "the restart paid for the same pictures twice"
        saved = [np.asarray(Image.open(second.output_file(i)).convert("RGB")) for i in entry["outputs"]["2"]["images"]]
        task = next(iter(emulator.backend.tasks.values()))
        urls = [c["image"] for c in task.finished["choices"][0]["message"]["content"]]
        served = [np.asarray(Image.open(io.BytesIO(requests.get(u, timeout=10).content)).convert("RGB"))
                  for u in urls]
        assert len(saved) == 2
        assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 1 for a, b in zip(saved, served))
    finally:
        second.stop()


def test_an_unchanged_graph_after_a_restart_sends_nothing(emulator, base_dir):
    seed = int(time.time()) % 100000 + 1
    first = host_on(base_dir, emulator).start()
    try:
        assert execution_error(first.run(t2i_graph(seed))) is None
    finally:
        first.stop()
    requests_before = len(emulator.backend.log)
    second = host_on(base_dir, emulator).start()
    try:
        started = time.monotonic()
        entry = second.run(t2i_graph(seed))
        elapsed = time.monotonic() - started
        assert execution_error(entry) is None, execution_error(entry)
        assert len(entry["outputs"]["2"]["images"]) == 2
        assert len(emulator.backend.log) == requests_before, "the service was asked again"
        assert elapsed < 5
    finally:
        second.stop()
