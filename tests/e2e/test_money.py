"""Money under control, through real ComfyUI servers: the daily limit (before sending, across a restart),
and two servers on one base directory (one journal, one cache, one ledger, one set of slots)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from comfy_host import ComfyHost, execution_error
from e2e_support import E2E_KEY


def host_on(base_dir: Path, emulator, **env: str) -> ComfyHost:
    return ComfyHost({"DASHSCOPE_HTTP_BASE_URL": emulator.base_url, "DASHSCOPE_API_KEY": E2E_KEY, **env},
                     base_dir=base_dir)


def t2i(seed: int, n: int, *, nodes: int = 1, prefix: str = "money") -> dict:
    """A graph of `nodes` independent Wan nodes (ComfyUI runs them at the same time), each saved."""
    g: dict = {}
    for i in range(nodes):
        g[f"{i + 1}"] = {"class_type": "WanTextToImage",
                         "inputs": {"model": "wan2.7-image", "prompt": f"a lighthouse, view {i}", "n": n,
                                    "size": "1K", "seed": seed}}
        g[f"{100 + i}"] = {"class_type": "SaveImage",
                           "inputs": {"images": [f"{i + 1}", 0], "filename_prefix": f"{prefix}{seed}_{i}"}}
    return g


def creations(emulator) -> int:
    return emulator.backend.stats()["creations"]


def max_in_flight(emulator) -> int:
    """The most generations the service ran at once, from the emulator's own task times."""
    events = []
    for task in list(emulator.backend.tasks.values()):
        events.append((task.created, 1))
        events.append((task.created + task.queue_time + task.service_time, -1))
    peak = level = 0
    for _, step in sorted(events):
        level += step
        peak = max(peak, level)
    return peak


def env_of(emulator, **env: str) -> dict[str, str]:
    return {"DASHSCOPE_HTTP_BASE_URL": emulator.base_url, "DASHSCOPE_API_KEY": E2E_KEY, **env}


def pair_on_one_folder(env: dict[str, str]) -> list[ComfyHost]:
    first = ComfyHost(env)
    return [first, ComfyHost(env, base_dir=first.base)]


# Servers of these tests' own, launched while the tests before them run (conftest.py).
EARLY_SERVERS = {
    "test_daily_limit_of_3_refuses_before_sending_and_across_a_restart":
        lambda emulator: [ComfyHost(env_of(emulator, WAN_DAILY_IMAGE_LIMIT="3"))],
    "test_two_servers_together_stay_within_max_concurrent":
        lambda emulator: pair_on_one_folder(env_of(emulator, WAN_MAX_CONCURRENT="2")),
}


def test_daily_limit_of_3_refuses_before_sending_and_across_a_restart(emulator, early):
    seed = int(time.time()) % 100000
    (first,) = early    # a server of its own, on a base directory of its own, WAN_DAILY_IMAGE_LIMIT=3
    try:
        entry = first.run(t2i(seed, 2))
        assert execution_error(entry) is None, execution_error(entry)
        assert creations(emulator) == 1
        entry = first.run(t2i(seed + 1, 2))
        error = execution_error(entry)
        assert error is not None, "a second n=2 passes the limit of 3 and must be refused"
        message = error["exception_message"]
        assert "WAN_DAILY_IMAGE_LIMIT" in message and "limit is 3" in message and "2 billed" in message, message
        assert "Nothing was sent" in message
        assert creations(emulator) == 1, "the refused run reached the service"
        entry = first.run(t2i(seed + 2, 1))
        assert execution_error(entry) is None, execution_error(entry)
        assert creations(emulator) == 2
    finally:
        first.stop()
    second = first.start()   # the same server started again: same folder, same environment
    try:
        entry = second.run(t2i(seed + 3, 1))
        error = execution_error(entry)
        assert error is not None and "limit is 3" in error["exception_message"] and \
            "3 billed" in error["exception_message"], error
        assert creations(emulator) == 2, "after a restart the count of 3 must still hold"
        # The ledger, as the WanUsage node shows it.
        entry = second.run({"1": {"class_type": "WanUsage", "inputs": {}},
                            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
                            "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 1],
                                                                        "filename_prefix": "usage"}}})
        assert execution_error(entry) is None, execution_error(entry)
        text = entry["outputs"]["2"]["text"][0]
        row = next(line.split() for line in text.splitlines() if line.startswith("wan2.7-image "))
        assert row[1] == "3", text
        assert "3 of 3 today" in text, text
        assert len(entry["outputs"]["3"]["images"]) == 1
        assert E2E_KEY not in text
    finally:
        second.stop()


def test_two_servers_on_one_folder_run_at_once_with_one_creation_each(emulator, comfy):
    """The session's server and a second one started on its base directory."""
    emulator.backend.configure(queue_time=0.2, service_time=1.0)
    a = comfy
    a_log_from = len(a.log())
    b = host_on(comfy.base, emulator).start()
    try:
        seed = int(time.time()) % 100000
        # 8 Wan nodes in flight: 4 in a graph on each server, queued at the same moment.
        with ThreadPoolExecutor(2) as pool:
            entries = list(pool.map(lambda hs: hs[0].run(t2i(hs[1], 1, nodes=4, prefix="two"), timeout=120),
                                    [(a, seed), (b, seed + 1)]))
        for entry in entries:
            assert execution_error(entry) is None, execution_error(entry)
            assert all(len(entry["outputs"][str(100 + i)]["images"]) == 1 for i in range(4))
        stats = emulator.backend.stats()
        assert stats["creations"] == 8 and set(stats["creations_by_fingerprint"].values()) == {1}
        for log in (a.log()[a_log_from:], b.log()):
            assert "database is locked" not in log and "OperationalError" not in log
        # A result one server fetched is served from the shared cache by the other: nothing is sent.
        before = len(emulator.backend.log)
        entry = b.run(t2i(seed, 1, nodes=4, prefix="again"))
        assert execution_error(entry) is None, execution_error(entry)
        assert len(emulator.backend.log) == before, "the other server's cached results were asked for again"
        assert all(len(entry["outputs"][str(100 + i)]["images"]) == 1 for i in range(4))
    finally:
        b.stop()


def test_two_servers_together_stay_within_max_concurrent(emulator, early):
    emulator.backend.configure(queue_time=0.1, service_time=1.0)
    a, b = early    # two servers on one base directory of their own, WAN_MAX_CONCURRENT=2 on both
    try:
        seed = int(time.time()) % 100000 + 500
        with ThreadPoolExecutor(2) as pool:
            entries = list(pool.map(lambda hs: hs[0].run(t2i(hs[1], 1, nodes=4, prefix="slots"), timeout=120),
                                    [(a, seed), (b, seed + 1)]))
        for entry in entries:
            assert execution_error(entry) is None, execution_error(entry)
        assert creations(emulator) == 8
        # Each server alone would allow 2, so 4 at once; together they hold 2.
        assert max_in_flight(emulator) == 2
    finally:
        a.stop()
        b.stop()
