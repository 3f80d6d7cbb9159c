"""The paths users really take, through a real ComfyUI: moving a graph from the emulator to another service
and key, a task that failed and is queued again, a sync run interrupted and queued again."""

from __future__ import annotations

import time
import uuid

import numpy as np

from api.emulator import EmulatorServer, Settings
from comfy_host import execution_error
from e2e_support import E2E_KEY
from test_comfyui import saved_pixels, served_pixels

OTHER_KEY = "sk-e2e-OTHER-account-5e6f"


def t2i(seed: int, **extra) -> dict:
    return {"1": {"class_type": "WanTextToImage",
                  "inputs": {"model": "wan2.7-image", "prompt": "a lighthouse", "n": 2, "size": "1K", "seed": seed,
                             **extra}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"p{uuid.uuid4().hex[:6]}"}}}


def served_for(emulator, entry_filter) -> list[np.ndarray]:
    entry = next(e for e in emulator.backend.log if entry_filter(e))
    task = emulator.backend.tasks.get(entry.get("task_id")) if entry.get("task_id") else None
    content = task.finished["choices"][0]["message"]["content"]
    return [served_pixels(c["image"]) for c in content]


def same_pictures(a, b) -> bool:
    return len(a) == len(b) and all(np.abs(x.astype(int) - y.astype(int)).max() <= 1 for x, y in zip(a, b))


def test_a_graph_moved_to_another_service_and_key_is_sent_anew(emulator, comfy_to_restart):
    """The emulator's cached picture must never be served as the real service's (nor one account's pictures
    to another); back on the first service and key, the cached answer is used again. One ComfyUI, restarted
    on its base directory with the other service and key, then with the first again."""
    comfy = comfy_to_restart
    first_env = dict(comfy.env)
    assert (first_env["DASHSCOPE_HTTP_BASE_URL"], first_env["DASHSCOPE_API_KEY"]) == (emulator.base_url, E2E_KEY)
    other = EmulatorServer(settings=Settings(queue_time=0.1, service_time=0.3, api_keys=[OTHER_KEY])).start()
    seed = int(time.time()) % 100000
    # The test's own prompt: the session's server has the results of every earlier test in its cache.
    prompt = f"a lighthouse, moved ({uuid.uuid4().hex[:8]})"
    try:
        entry = comfy.run(t2i(seed, prompt=prompt))
        assert execution_error(entry) is None, execution_error(entry)
        original = saved_pixels(comfy, entry, "2")
        comfy.restart({**first_env, "DASHSCOPE_HTTP_BASE_URL": other.base_url, "DASHSCOPE_API_KEY": OTHER_KEY})
        entry = comfy.run(t2i(seed, prompt=prompt))
        assert execution_error(entry) is None, execution_error(entry)
        assert other.backend.stats()["creations"] == 1, "a cached answer crossed to another service and key"
        assert same_pictures(saved_pixels(comfy, entry, "2"), served_for(other, lambda e: e.get("billable")))
        requests_before = len(emulator.backend.log)
        comfy.restart(first_env)
        entry = comfy.run(t2i(seed, prompt=prompt))
        assert execution_error(entry) is None, execution_error(entry)
        assert len(emulator.backend.log) == requests_before, "the original service was asked again"
        assert same_pictures(saved_pixels(comfy, entry, "2"), original)
    finally:
        other.stop()


def test_a_failed_task_is_reported_and_queuing_again_creates_a_new_one(comfy, emulator):
    emulator.backend.add_fault({"kind": "task_failed", "code": "DataInspectionFailed",
                                "message": "Output data may contain inappropriate content."})
    seed = int(time.time()) % 100000 + 7
    entry = comfy.run(t2i(seed))
    error = execution_error(entry)
    assert error is not None and "DataInspectionFailed" in error["exception_message"]
    assert "inappropriate content" in error["exception_message"]
    entry = comfy.run(t2i(seed))   # the same graph again: the failed task must not be resumed
    assert execution_error(entry) is None, execution_error(entry)
    assert emulator.backend.stats()["creations"] == 2
    assert len(entry["outputs"]["2"]["images"]) == 2


def test_a_sync_run_interrupted_is_kept_and_queuing_again_sends_nothing(comfy, emulator):
    emulator.backend.configure(queue_time=0.0, service_time=3.0)
    seed = int(time.time()) % 100000 + 11
    results = comfy.base / "user" / "wan_image" / "results"
    cached_before = len(list(results.iterdir())) if results.exists() else 0
    prompt_id = comfy.queue(t2i(seed, transport="sync"))
    deadline = time.monotonic() + 30
    while not any(e.get("kind") == "sync" for e in emulator.backend.log):
        assert time.monotonic() < deadline, "the sync request never arrived"
        time.sleep(0.05)
    time.sleep(0.3)
    comfy.interrupt()   # ComfyUI's Cancel, while the service is generating (and will bill)
    entry = comfy.wait(prompt_id, timeout=30)
    assert entry["status"]["status_str"] == "error" or any(
        m[0] == "execution_interrupted" for m in entry["status"].get("messages", []))
    # The answer still arrives; the pack downloads it and keeps it.
    deadline = time.monotonic() + 30
    while not (results.exists() and len([p for p in results.iterdir() if not p.name.startswith(".")]) > cached_before):
        assert time.monotonic() < deadline, "the paid answer of the interrupted run was not kept"
        time.sleep(0.1)
    requests_before = len(emulator.backend.log)
    entry = comfy.run(t2i(seed, transport="sync"))
    assert execution_error(entry) is None, execution_error(entry)
    assert len(emulator.backend.log) == requests_before, "queuing again sent a request (and paid twice)"
    assert emulator.backend.stats()["creations"] == 1
    sync = next(e for e in emulator.backend.log if e.get("kind") == "sync")
    made = sorted((spec for spec in emulator.backend.results.values() if spec.request_id == sync["request_id"]),
                  key=lambda spec: spec.index)
    served = [served_pixels(emulator.backend._url(spec)) for spec in made]
    assert same_pictures(saved_pixels(comfy, entry, "2"), served), "not the pictures the interrupted run paid for"
    assert "kept in the result cache" in comfy.log() or "already been paid for" in comfy.log()
