"""ComfyUI restarted: a running task is fetched, not paid for again; a finished graph costs nothing. The
session's server is the one restarted (the comfy_to_restart fixture), on its own base directory."""

from __future__ import annotations

import io
import time
import uuid

import numpy as np
import requests
from PIL import Image

from comfy_host import execution_error
from e2e_support import info_of


def t2i_graph(seed: int, tag: str) -> dict:
    # The tag makes the request the test's own: the session's server has the results of every earlier test
    # in its cache, and a graph that matched one of them would be answered from it.
    return {"1": {"class_type": "WanTextToImage",
                  "inputs": {"model": "wan2.7-image", "prompt": f"a lighthouse ({tag})", "n": 2, "size": "1K",
                             "seed": seed}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"restart{seed}"}},
            "3": {"class_type": "PreviewAny", "inputs": {"source": ["1", 2]}}}


def test_restart_mid_task_fetches_the_same_task(emulator, comfy_to_restart):
    comfy = comfy_to_restart
    emulator.backend.configure(queue_time=0.2, service_time=8.0)
    seed, tag = int(time.time()) % 100000, uuid.uuid4().hex[:8]
    comfy.queue(t2i_graph(seed, tag))
    deadline = time.monotonic() + 30
    while not any(e["kind"] == "query" for e in emulator.backend.log):
        assert time.monotonic() < deadline, "the task was never created"
        time.sleep(0.05)
    time.sleep(0.5)  # past the queue: RUNNING
    comfy.stop()  # ComfyUI goes away while the task runs at the service
    assert emulator.backend.stats()["tasks"] == {"RUNNING": 1}
    comfy.start()
    entry = comfy.run(t2i_graph(seed, tag), timeout=60)
    assert execution_error(entry) is None, execution_error(entry)
    stats = emulator.backend.stats()
    assert stats["creations"] == 1, "the restart paid for the same pictures twice"
    saved = [np.asarray(Image.open(comfy.output_file(i)).convert("RGB")) for i in entry["outputs"]["2"]["images"]]
    task = next(iter(emulator.backend.tasks.values()))
    urls = [c["image"] for c in task.finished["choices"][0]["message"]["content"]]
    served = [np.asarray(Image.open(io.BytesIO(requests.get(u, timeout=10).content)).convert("RGB"))
              for u in urls]
    assert len(saved) == 2
    assert all(np.abs(a.astype(int) - b.astype(int)).max() <= 1 for a, b in zip(saved, served))


def test_an_unchanged_graph_after_a_restart_sends_nothing(emulator, comfy_to_restart):
    comfy = comfy_to_restart
    seed, tag = int(time.time()) % 100000 + 1, uuid.uuid4().hex[:8]
    assert execution_error(comfy.run(t2i_graph(seed, tag))) is None
    requests_before = len(emulator.backend.log)
    comfy.restart()
    entry = comfy.run(t2i_graph(seed, tag))
    assert execution_error(entry) is None, execution_error(entry)
    assert len(entry["outputs"]["2"]["images"]) == 2
    assert len(emulator.backend.log) == requests_before, "the service was asked again"
    # Answered from the result cache the restarted server found on disk: nothing billed by this run.
    info = info_of(entry, "3")
    assert info["cached"] is True and info["images_billed_this_run"] == 0, info
