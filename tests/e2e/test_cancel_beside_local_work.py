"""Cancel reaches every Wan task, whatever else runs in the graph (through a real ComfyUI).

A local node that works like a sampler (tests/e2e/slow_node, a second custom node pack) checks ComfyUI's
interrupt flag between its steps, and that check CLEARS the flag. A Wan task still queued at the service
beside it must be canceled there all the same: nothing generated, nothing billed.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from comfy_host import ComfyHost
from e2e_support import E2E_KEY

SLOW_NODE = Path(__file__).resolve().parent / "slow_node"
MAX_CONCURRENT = 2


@pytest.fixture(scope="module")
def comfy_with_local_node(emulator):
    # Two generations at a time: a list of 4 has 2 tasks queued at the service and 2 requests waiting here.
    host = ComfyHost({"DASHSCOPE_HTTP_BASE_URL": emulator.base_url, "DASHSCOPE_API_KEY": E2E_KEY,
                      "WAN_MAX_CONCURRENT": str(MAX_CONCURRENT)}, extra_nodes=[SLOW_NODE])
    host.start()
    yield host
    host.cleanup()


def _graph(tag: str, *, prompts: int = 1, seconds: float = 60.0, step: float = 0.05) -> dict:
    g: dict = {
        "1": {"class_type": "WanTextToImage",
              "inputs": {"model": "wan2.7-image", "prompt": f"a lighthouse {tag}", "n": 1, "size": "1K",
                         "seed": 11}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"cancel_{tag}"}},
        "3": {"class_type": "WanTestSlowLocal", "inputs": {"seconds": seconds, "tag": tag, "step": step}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
    }
    if prompts > 1:
        g["5"] = {"class_type": "WanPromptList",
                  "inputs": {"prompts": "\n".join(f"a lighthouse {tag}, view {i}" for i in range(prompts))}}
        g["1"]["inputs"]["prompt"] = ["5", 0]
        g["3"]["inputs"]["after"] = ["5", 0]   # the list first, then the Wan node, then the local node
    return g


def _wait_for(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _cancel_beside_local_node(comfy, emulator, prompts: int, *, queue_time: float = 300.0,
                              step: float = 0.05) -> None:
    emulator.backend.configure(queue_time=queue_time, service_time=0.5)
    tag = uuid.uuid4().hex[:8]
    prompt_id = comfy.queue(_graph(tag, prompts=prompts, step=step))
    # Both at work: the Wan task(s) created and queued at the service, the local node in its steps.
    created = min(prompts, MAX_CONCURRENT)   # the rest wait for a generation slot, here
    _wait_for(lambda: emulator.backend.stats()["tasks"].get("PENDING", 0) == created,
              f"the {created} Wan task(s) were never created")
    _wait_for(lambda: f"slow local node {tag}: working" in comfy.log(), "the local node never started")
    time.sleep(0.3)   # a few of its steps, each one asking ComfyUI whether Cancel was pressed
    comfy.interrupt()
    entry = comfy.wait(prompt_id, timeout=60)
    kinds = [m[0] for m in entry["status"]["messages"]]
    assert "execution_interrupted" in kinds, kinds
    # The local node took the interrupt (it cleared the flag); the Wan tasks must be canceled all the same.
    _wait_for(lambda: emulator.backend.stats()["tasks"] == {"CANCELED": created},
              f"the Wan task(s) were not canceled at the service: {emulator.backend.stats()['tasks']}",
              timeout=20)
    time.sleep(1.0)   # and the requests that were waiting for a slot are never sent
    stats = emulator.backend.stats()
    assert stats["images_billed"] == 0, stats
    assert stats["creations"] == created, stats
    assert stats["requests_by_kind"].get("cancel", 0) == created, stats["requests_by_kind"]


def test_cancel_reaches_a_queued_wan_task_after_a_local_node_took_the_interrupt(comfy_with_local_node, emulator):
    _cancel_beside_local_node(comfy_with_local_node, emulator, prompts=1)


def test_cancel_reaches_every_request_of_a_prompt_list_beside_a_local_node(comfy_with_local_node, emulator):
    # 4 prompts: 2 tasks queued at the service (canceled there), 2 requests waiting for a slot (never sent).
    _cancel_beside_local_node(comfy_with_local_node, emulator, prompts=4)


def test_cancel_reaches_a_queued_wan_task_while_a_long_local_step_holds_comfyui(comfy_with_local_node, emulator):
    # A local step of 12 s (a big sampler on a CPU): ComfyUI's event loop is busy with it, so no Wan coroutine
    # runs until it ends, and it ends the prompt by taking the interrupt. The Wan task leaves the service's
    # queue 4 s after it was created; it must be canceled before that, not when the local step ends (by then
    # it is running, and will be billed).
    _cancel_beside_local_node(comfy_with_local_node, emulator, prompts=1, queue_time=4.0, step=12.0)
