"""Fault soak: at least 200 node runs against the emulator with injected faults; prints the verdicts.
Then two real ComfyUI servers on one base directory with 8 Wan nodes in flight (benchmarks/soak_servers.py).

    .venv/bin/python benchmarks/soak.py [--cycles 11] [--rounds 3]

Each run calls a node's execute (ComfyUI loaded in-process, the pack loaded by file path) with one fault
scenario armed in the emulator. Runs go one after another, so every request the emulator sees belongs to
the run in flight and the accounting is exact. The emulator counts billable creations and billed pictures
itself; the pack's own claims are not used for those figures.

Figures:
  creations per logical request   must be exactly 1 wherever the service accepted the first request
  results lost                    pictures the service had shown the pack (a URL in an answer, a stream
                                  frame, a finished task) that did not reach the graph: must be 0
  lost in transit                 pictures billed for requests whose answer never reached the pack (the
                                  connection cut after the service accepted the request, or a stream cut
                                  before their frames): no client can fetch these; async tasks keep it small
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import inprocess  # noqa: E402

KEY = "sk-soak-fake-key-00000k"


def scenarios(big: torch.Tensor) -> list[tuple[str, str, dict, list[dict]]]:
    """(name, node, inputs, faults). Inputs get a unique prompt per run, so no two runs share a fingerprint."""
    small = torch.rand((1, 320, 320, 3))
    edit = {"model": "wan2.7-image", "n": 2, "size": "1K", "image": small}
    t2i = {"model": "wan2.7-image", "n": 1, "size": "1K"}
    inter = {"model": "wan2.6-image", "max_images": 3, "size": "1024*1024"}
    wan25 = {"model": "wan2.5-i2i-preview", "n": 3, "size": "1024*1024", "image": torch.rand((1, 400, 400, 3))}
    return [
        ("clean async edit", "WanImageEdit", edit, []),
        ("429 + Retry-After x2", "WanImageEdit", edit,
         [{"kind": "http", "status": 429, "code": "Throttling.RateQuota", "retry_after": 1, "times": 2}]),
        ("500 on create", "WanImageEdit", edit, [{"kind": "http", "status": 500, "code": "InternalError"}]),
        ("503 on create x2", "WanTextToImage", t2i,
         [{"kind": "http", "status": 503, "code": "ModelUnavailable", "times": 2}]),
        ("reset before a 12 MB body", "WanImageEdit", {**edit, "image": big, "input_format": "png"},
         [{"kind": "reset_before_body"}]),
        ("reset before a small body", "WanTextToImage", t2i, [{"kind": "reset_before_body"}]),
        ("reset after the body", "WanImageEdit", edit, [{"kind": "reset_after_body"}]),
        ("slow task queries", "WanImageEdit", edit, [{"kind": "slow", "on": "query", "delay": 2.0, "times": 2}]),
        ("task query 500 x3", "WanTextToImage", t2i,
         [{"kind": "http", "on": "query", "status": 500, "code": "InternalError", "times": 3}]),
        ("task query reset x2", "WanTextToImage", t2i, [{"kind": "reset_after_body", "on": "query", "times": 2}]),
        ("download fails once", "WanImageEdit", edit,
         [{"kind": "http", "on": "download", "status": 500, "code": "InternalError"}]),
        ("download reset once", "WanImageEdit", edit, [{"kind": "reset_after_body", "on": "download"}]),
        ("clean interleave stream", "WanInterleave", inter, []),
        ("stream cut half way", "WanInterleave", inter, [{"kind": "stream_cut"}]),
        ("error frame mid-stream", "WanInterleave", inter,
         [{"kind": "stream_error", "status": 400, "code": "DataInspectionFailed",
           "message": "Output data may contain inappropriate content."}]),
        ("task FAILED (moderation)", "WanTextToImage", t2i,
         [{"kind": "task_failed", "code": "DataInspectionFailed", "message": "Output data may contain "
                                                                            "inappropriate content."}]),
        ("wan2.5 partial failure", "WanImageEdit", wan25,
         [{"kind": "partial_failure", "failed": 1, "code": "DataInspectionFailed", "message": "one result failed"}]),
        ("clean sync", "WanTextToImage", {**t2i, "transport": "sync"}, []),
        ("sync 503 then ok", "WanTextToImage", {**t2i, "transport": "sync"},
         [{"kind": "http", "status": 503, "code": "ModelUnavailable"}]),
        ("clean sequential of 6", "WanSequential", {"model": "wan2.7-image", "n": 6, "size": "1K"}, []),
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=11, help="passes over the 20 scenarios (11 -> 220 runs)")
    parser.add_argument("--min-runs", type=int, default=200, help="fail unless at least this many runs")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of 8 nodes per two-server scenario (0: skip the two-server part)")
    args = parser.parse_args()
    m = inprocess.load()
    state = tempfile.mkdtemp(prefix="wan-soak-")
    os.environ["WAN_STATE_DIR"] = state
    server = m.emulator.EmulatorServer(settings=m.emulator.Settings(queue_time=0.1, service_time=0.3,
                                                                    api_keys=[KEY])).start()
    os.environ["DASHSCOPE_HTTP_BASE_URL"] = server.base_url
    os.environ["DASHSCOPE_API_KEY"] = KEY
    backend = server.backend
    big = torch.rand((1, 2400, 2400, 3), generator=torch.Generator().manual_seed(1))
    plan = scenarios(big)
    nodes = {cls.__name__: cls for cls in m.wan.NODES}
    runs = []
    for cycle in range(args.cycles):
        for name, node, inputs, faults in plan:
            index = len(runs)
            with backend.lock:
                backend.faults.clear()
            for fault in faults:
                backend.add_fault(fault)
            first = len(backend.log)
            call = {**inputs, "prompt": f"soak run {index}: {name}", "seed": index}
            started = time.monotonic()
            verdict, error, delivered = "succeeded", "", 0
            try:
                out = asyncio.run(nodes[node].execute(**call))
                delivered = int(out.args[0].shape[0])
            except m.api.WanError as exc:
                verdict, error = "failed, clear error", f"{type(exc).__name__}: {str(exc)[:150]}"
            except Exception as exc:  # noqa: BLE001 - an unclear failure is exactly what we count here
                verdict, error = "failed, UNCLEAR", f"{type(exc).__name__}: {exc}"
            runs.append({"name": name, "verdict": verdict, "error": error, "delivered": delivered,
                         "seconds": time.monotonic() - started, "entries": backend.log[first:]})
        print(f"cycle {cycle + 1}/{args.cycles}: {len(runs)} runs", file=sys.stderr, flush=True)
    time.sleep(0.6)  # let tasks whose ids were lost in transit finish, and so be billed, at the service
    stats = backend.stats()

    billed_by_request = Counter(spec.request_id for spec in backend.results.values())
    tasks = backend.tasks
    rows = defaultdict(lambda: Counter())
    lost = transit = multi = accepted_runs = 0
    worst = 0.0
    for run in runs:
        created = [e for e in run["entries"] if e.get("billable")]
        billed = sum(billed_by_request[e["request_id"]] for e in created)
        announced = 0
        for e in created:
            if "task_id" in e:
                task = tasks[e["task_id"]]
                if task.announced and task.finished and task.finished.get("task_status") == "SUCCEEDED":
                    announced += billed_by_request[e["request_id"]]
            else:
                announced += e.get("images_announced", 0)
        run_lost = max(0, announced - run["delivered"])
        lost += run_lost
        transit += billed - announced
        if created:
            accepted_runs += 1
            multi += len(created) > 1
        worst = max(worst, run["seconds"])
        row = rows[run["name"]]
        row["runs"] += 1
        row[run["verdict"]] += 1
        row["creations"] += len(created)
        row["billed"] += billed
        row["delivered"] += run["delivered"]
        row["lost"] += run_lost
        row["transit"] += billed - announced
        row["max_s"] = max(row["max_s"], round(run["seconds"], 2))
    verdicts = Counter(r["verdict"] for r in runs)
    server.stop()

    print(f"\n{'scenario':<28}{'runs':>5}{'ok':>5}{'clear':>6}{'unclear':>8}{'creat.':>7}{'billed':>7}"
          f"{'deliv.':>7}{'lost':>5}{'transit':>8}{'max s':>7}")
    for name, *_ in plan:
        r = rows[name]
        print(f"{name:<28}{r['runs']:>5}{r['succeeded']:>5}{r['failed, clear error']:>6}{r['failed, UNCLEAR']:>8}"
              f"{r['creations']:>7}{r['billed']:>7}{r['delivered']:>7}{r['lost']:>5}{r['transit']:>8}"
              f"{r['max_s']:>7.2f}")
    print(f"\nruns: {len(runs)}")
    print(f"succeeded: {verdicts['succeeded']}")
    print(f"failed with a clear error: {verdicts['failed, clear error']}")
    print(f"failed without a clear error: {verdicts['failed, UNCLEAR']}")
    print(f"billable creations per logical request: {'exactly 1' if not multi else 'MORE THAN 1 in ' + str(multi)}"
          f" in all {accepted_runs} runs the service accepted (emulator's count: {stats['creations']} creations)")
    print(f"results lost: {lost}")
    print(f"pictures lost in transit (billed, never shown to the pack): {transit}")
    print(f"worst time to a verdict: {worst:.2f} s")
    for run in runs:
        if run["verdict"] == "failed, UNCLEAR":
            print("UNCLEAR:", run["name"], run["error"])
    ok = multi == 0 and lost == 0 and verdicts["failed, UNCLEAR"] == 0 and len(runs) >= args.min_runs
    if args.rounds > 0:
        import soak_servers

        print("\ntwo ComfyUI servers on one base directory, 8 Wan nodes in flight:", file=sys.stderr, flush=True)
        servers_ok, table = soak_servers.run(m.emulator, KEY, args.rounds,
                                             log=lambda text: print(text, file=sys.stderr, flush=True))
        print("\n" + table)
        ok = ok and servers_ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
