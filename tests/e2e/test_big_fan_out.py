"""Big fan-outs stay small (through a real ComfyUI): a list of 200 prompts feeding one Wan node runs with
threads and open files bounded by WAN_MAX_CONCURRENT plus a constant, not by the list's length, under the
open-file limit a Mac gives a process (`ulimit -n` 256); the node sends progress a few times a second.

The ComfyUI process is sampled from /proc while it runs (threads: /proc/<pid>/task, open files:
/proc/<pid>/fd), and what it sends to the page is counted on its websocket.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from comfy_host import ComfyHost, execution_error
from comfy_watch import Messages, Sampler
from e2e_support import E2E_KEY

MAX_CONCURRENT = 4
OPEN_FILES = 256
# What one generation in flight may cost the process: a worker thread, and in open files that worker's
# SQLite connections (journal and ledger, each a database, its WAL and its shared memory), its sockets and a
# slot's lock file. The bound is WAN_MAX_CONCURRENT times that plus a constant (the shared download threads,
# the query bucket's file, ...); and, more to the point, 200 prompts may not cost more than 4 plus a little.
THREADS_PER_GENERATION = 2
FILES_PER_GENERATION = 8
CONSTANT = 16
# The peak is sampled: which request locks, slot locks and sockets (the API's and the result host's) of the 4
# requests in flight are open at that instant differs from run to run of the same list, by up to 8 files
# measured here (43 to 51 for either list); a cost per prompt would be hundreds.
MORE_THAN_FOUR_PROMPTS_MAY_COST = 8
PROGRESS_PER_SECOND = 5   # "a few times a second", per node, counting each kind of progress message apart

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")


@pytest.fixture(scope="module")
def comfy_small(emulator):
    host = ComfyHost({"DASHSCOPE_HTTP_BASE_URL": emulator.base_url, "DASHSCOPE_API_KEY": E2E_KEY,
                      "WAN_MAX_CONCURRENT": str(MAX_CONCURRENT)}, open_files=OPEN_FILES)
    host.start()
    yield host
    host.cleanup()


def prompt_list_graph(count: int, tag: str) -> dict:
    return {
        "1": {"class_type": "WanPromptList",
              "inputs": {"prompts": "\n".join(f"a lighthouse {tag}, view {i}" for i in range(count))}},
        "2": {"class_type": "WanTextToImage",
              "inputs": {"model": "wan2.7-image", "prompt": ["1", 0], "n": 1, "size": "1K", "seed": 5}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 2]}},
    }


def run_list(comfy, emulator, count: int, service_time: float) -> tuple[Sampler, Messages, float]:
    emulator.backend.reset()
    emulator.backend.configure(queue_time=0.05, service_time=service_time)
    tag = uuid.uuid4().hex[:8]
    with Messages(comfy) as messages, Sampler(comfy.proc.pid) as sampler:
        started = time.monotonic()
        entry = comfy.run(prompt_list_graph(count, tag), timeout=900)
        took = time.monotonic() - started
    error = execution_error(entry)
    assert error is None, error and error["exception_message"]
    stats = emulator.backend.stats()
    assert stats["creations"] == count and stats["images_billed"] == count, stats
    infos = [json.loads(text) for text in entry["outputs"]["3"]["text"]]
    assert len(infos) == count and all(i["images_billed_this_run"] == 1 for i in infos)
    assert "Errno 24" not in comfy.log() and "Too many open files" not in comfy.log()
    return sampler, messages, took


def test_a_list_of_200_prompts_runs_in_threads_and_files_bounded_by_max_concurrent(comfy_small, emulator):
    pid = comfy_small.proc.pid
    with Sampler(pid) as idle:
        time.sleep(0.5)
    # The 4 prompts' tasks last long enough for the sampler to see all four in flight and downloading at
    # once (in a run of a second it may catch them part way, understating what 4 cost).
    small, small_messages, small_s = run_list(comfy_small, emulator, 4, service_time=2.0)
    big, big_messages, big_s = run_list(comfy_small, emulator, 200, service_time=0.2)

    kinds = Counter(k for _, k, n, _ in big_messages.seen if n == "2")
    per_second = {kind: big_messages.most_in_one_second(kind, "2") for kind in ("progress_text", "progress",
                                                                                 "progress_state")}
    report = (f"idle: {idle.threads} threads, {idle.files} files; 4 prompts: {small.threads} threads, "
              f"{small.files} files ({small_s:.1f} s); 200 prompts: {big.threads} threads, {big.files} files "
              f"({big_s:.1f} s); node 2's messages in the 200 run: {dict(kinds)}, most in one second: "
              f"{per_second}")
    print(report)
    bound_threads = idle.threads + MAX_CONCURRENT * THREADS_PER_GENERATION + CONSTANT
    bound_files = idle.files + MAX_CONCURRENT * FILES_PER_GENERATION + CONSTANT
    assert big.threads <= bound_threads, report
    assert big.files <= bound_files, report
    assert big.threads <= small.threads + MORE_THAN_FOUR_PROMPTS_MAY_COST, report
    assert big.files <= small.files + MORE_THAN_FOUR_PROMPTS_MAY_COST, report
    assert kinds["progress_text"] > 0, report   # the node does show its progress
    for kind, most in per_second.items():
        assert most <= PROGRESS_PER_SECOND, report
