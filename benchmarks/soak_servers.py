"""The soak's second part: two real ComfyUI servers on one base directory, 8 Wan nodes in flight at once.

Each round queues, at the same moment, a graph of 4 independent Wan nodes on each server (ComfyUI runs a
graph's independent async nodes together, so 8 requests are in flight), with faults armed in the emulator
for whichever requests meet them. Scenarios:

  clean / 429 + resets / cut streams / failed tasks   two servers, WAN_MAX_CONCURRENT=4 between them
  same graph + outage / + UNKNOWN                     both servers are sent the IDENTICAL graph (the same 4
                                                      Wan nodes, prompts and seeds) at the same moment, with
                                                      the result host down for 5 s (under the pack's default
                                                      patience of 30 s) or the next 6 task queries answered
                                                      UNKNOWN: one creation per request, made by whichever
                                                      server takes its request lock first; the other follows
                                                      it through the shared journal, and both get the pictures
  server killed mid-task                              one server is killed while its 4 tasks run at the
                                                      service; its graph is queued again on the other
                                                      server (which finds the tasks in the shared journal),
                                                      then the killed server is started again
  daily limit crossed                                 WAN_DAILY_IMAGE_LIMIT on both servers, crossed in the
                                                      second round by 8 nodes at once

A logical request is one Wan node's request (its own prompt, so its own fingerprint at the emulator); in the
identical-graph scenarios a logical request is the pair of nodes, one per server, that share a prompt. When a
node fails, ComfyUI stops the rest of that graph, and the siblings still running finish in the background
(the pack fetches and caches their results); once the service is quiet, the siblings whose pictures were not
saved are queued again (faults cleared), and must come back without a new creation. The emulator counts
creations and billed pictures itself; the pack's claims are not used for those figures.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfy_host import ComfyHost, execution_error, start_together

CLEAR = {"WanError", "WanInputError", "DailyLimitError", "ConfigError", "WanAPIError", "InvalidParameterError",
         "ContentModerationError", "RateLimitError", "ServerError", "ServiceUnavailableError", "TaskFailedError",
         "TaskCanceledError", "TaskExpiredError", "WanConnectionError", "WanTimeoutError", "StreamCutError",
         "DownloadError", "Interrupted", "RequestTimeoutError", "AuthenticationError", "AccessDeniedError",
         "ArrearageError", "ModelNotFoundError", "MissingApiKeyError"}
LIMIT = 12


@dataclass
class Node:
    label: str                       # also in the prompt, so the emulator's log names the node
    kind: str
    verdict: str = "pending"         # succeeded | clear | UNCLEAR | pending
    delivered: int = 0
    error: str = ""
    sibling: bool = False            # judged by the service's record (see ended_at_service)


@dataclass
class Scenario:
    name: str
    kind: str                        # which Wan node: t2i | interleave
    faults: list[dict[str, Any]]
    env: dict[str, str]
    group: str
    kill: bool = False
    same: bool = False               # both servers get the identical graph (their nodes share labels)
    nodes: list[Node] = field(default_factory=list)
    seconds: float = 0.0
    first_seq: int = 0
    last_seq: int = 0
    killed: int = 0
    faults_met: Counter = field(default_factory=Counter)   # fault kind -> requests it hit
    served: Counter = field(default_factory=Counter)       # how the servers' logs say requests were answered


def scenarios(rounds: int) -> list[Scenario]:
    four = {"WAN_MAX_CONCURRENT": "4"}
    return [
        Scenario("2 servers: clean", "t2i", [], four, "a"),
        Scenario("2 servers: 429 + resets", "t2i",
                 [{"kind": "http", "status": 429, "code": "Throttling.RateQuota", "retry_after": 1, "times": 3},
                  {"kind": "reset_before_body", "times": 2}, {"kind": "reset_after_body", "times": 1},
                  {"kind": "http", "on": "query", "status": 500, "code": "InternalError", "times": 2},
                  {"kind": "reset_after_body", "on": "query", "times": 2}], four, "a"),
        Scenario("2 servers: cut streams", "interleave",
                 [{"kind": "stream_cut", "times": 2},
                  {"kind": "stream_error", "status": 400, "code": "DataInspectionFailed",
                   "message": "Output data may contain inappropriate content.", "times": 1}], four, "a"),
        Scenario("2 servers: failed tasks", "t2i",
                 [{"kind": "task_failed", "code": "DataInspectionFailed",
                   "message": "Output data may contain inappropriate content.", "times": 2}], four, "a"),
        Scenario("2 servers: same graph + outage", "t2i",
                 [{"kind": "http", "on": "download", "status": 503, "code": "ServiceUnavailable",
                   "for_seconds": 5}], four, "a", same=True),
        Scenario("2 servers: same graph + UNKNOWN", "t2i",
                 [{"kind": "task_unknown", "on": "query", "times": 6}], four, "a", same=True),
        # All 8 sent at once (8 slots), so that a kill finds every task of the killed server created.
        Scenario("2 servers: server killed", "t2i",
                 [{"kind": "http", "status": 429, "code": "Throttling.RateQuota", "retry_after": 1, "times": 2}],
                 {"WAN_MAX_CONCURRENT": "8"}, "b", kill=True),
        Scenario(f"2 servers: daily limit {LIMIT}", "t2i", [],
                 {**four, "WAN_DAILY_IMAGE_LIMIT": str(LIMIT)}, "c"),
    ]


def met(backend: Any, fault: Any, initial_times: int) -> int:
    """How many requests an armed fault has hit so far: an outage (for_seconds) every download or query in
    its window; any other, the times it was used. Call it before the fault is cleared."""
    if fault.for_seconds <= 0:
        return initial_times - max(0, fault.times)
    if fault.started is None:
        return 0
    end = min(fault.started + fault.for_seconds, backend.now())
    with backend.lock:
        if fault.on == "download":
            return sum(1 for d in backend.downloads if fault.started <= d["time"] < end)
        return sum(1 for e in backend.log if e.get("kind") == fault.on and fault.started <= e["time"] < end)


def wan_node(kind: str, prompt: str, seed: int) -> dict[str, Any]:
    if kind == "interleave":
        return {"class_type": "WanInterleave",
                "inputs": {"model": "wan2.6-image", "prompt": prompt, "max_images": 2, "size": "1024*1024",
                           "seed": seed}}
    return {"class_type": "WanTextToImage",
            "inputs": {"model": "wan2.7-image", "prompt": prompt, "n": 1, "size": "1K", "seed": seed}}


def graph_of(nodes: list[Node], attempt: int) -> dict[str, Any]:
    g: dict[str, Any] = {}
    for i, node in enumerate(nodes):
        g[f"{10 + i}"] = wan_node(node.kind, f"soak2 {node.label}", 1)
        g[f"{50 + i}"] = {"class_type": "SaveImage",
                          "inputs": {"images": [f"{10 + i}", 0],
                                     "filename_prefix": f"soak2_{re.sub(r'[^a-z0-9]+', '_', node.label)}_{attempt}"}}
    return g


def judge(nodes: list[Node], entry: dict[str, Any] | None) -> None:
    """A finished prompt: which nodes saved pictures, which failed (and how clearly)."""
    if entry is None:
        return
    error = execution_error(entry)
    for i, node in enumerate(nodes):
        saved = (entry.get("outputs", {}).get(f"{50 + i}") or {}).get("images")
        if saved is not None:
            node.verdict, node.delivered = "succeeded", len(saved)
    if error is not None:
        failed = error.get("node_id")
        for i, node in enumerate(nodes):
            if f"{10 + i}" == failed:
                kind = str(error.get("exception_type", "")).rsplit(".", 1)[-1]
                node.verdict = "clear" if kind in CLEAR and error.get("exception_message") else "UNCLEAR"
                node.error = f"{kind}: {str(error.get('exception_message'))[:160]}"


class Pair:
    """Two ComfyUI servers on one base directory (one user/ folder: one journal, cache, ledger, slots)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="wan-soak2-"))
        self.hosts = [ComfyHost(env, base_dir=self.base) for _ in range(2)]

    def start(self) -> None:
        start_together(*self.hosts)

    def launch(self) -> None:
        for host in self.hosts:
            host.launch()

    def wait_ready(self) -> None:
        for host in self.hosts:
            host.wait_ready()

    def stop(self) -> None:
        for host in self.hosts:
            host.stop()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(host.log() for host in self.hosts)


def quiet(backend: Any, seconds: float = 2.0, timeout: float = 120.0) -> None:
    """Wait until the service has nothing running and nobody has asked it anything for `seconds`."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        stats = backend.stats()
        busy = stats["tasks"].get("PENDING", 0) + stats["tasks"].get("RUNNING", 0)
        if stats["requests"] != last or busy:
            last, since = stats["requests"], time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
        time.sleep(0.2)


def wait_created_and_polled(backend: Any, labels: list[str], timeout: float = 60.0) -> bool:
    """True once every one of these nodes' tasks exists and has been queried (so it is journaled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with backend.lock:
            log = list(backend.log)
        tasks = {}
        for e in log:
            if e.get("billable") and "task_id" in e and any(f"soak2 {l}\"" in json.dumps(e.get("body")) for l in labels):
                tasks[e["task_id"]] = False
        for e in log:
            if e.get("kind") == "query" and e["path"].rsplit("/", 1)[-1].split("?")[0] in tasks:
                tasks[e["path"].rsplit("/", 1)[-1].split("?")[0]] = True
        if len(tasks) == len(labels) and all(tasks.values()):
            return True
        time.sleep(0.05)
    return False


def creations_of(backend: Any, label: str) -> list[dict[str, Any]]:
    with backend.lock:
        log = list(backend.log)
    return [e for e in log if e.get("billable") and f"soak2 {label}\"" in json.dumps(e.get("body"), ensure_ascii=False)]


def ended_at_service(backend: Any, node: Node) -> bool:
    """A sibling ComfyUI stopped waiting for, whose request ended in a way the pack reports as an error (its
    task FAILED, or the answer was cut after the service took it): the pack raised a clear error that ComfyUI,
    already past the graph, did not report. A user would not queue it again blindly (it might pay twice), so
    neither does the soak: the service's own record is its verdict."""
    created = creations_of(backend, node.label)
    if not created:
        return False
    for e in created:
        task = backend.tasks.get(e.get("task_id", ""))
        if task is None:   # sync or stream: ended early only where a fault cut it
            if e.get("fault") not in ("stream_cut", "stream_error", "reset_after_body"):
                return False
        elif not e.get("task_id_lost") and (task.finished or {}).get("task_status") != "FAILED":
            return False
    node.verdict, node.sibling = "clear", True
    node.error = "stopped sibling: the service's record shows a failed task or a cut answer"
    return True


def run_scenario(sc: Scenario, pair: Pair, backend: Any, rounds: int, log: Any) -> None:
    sc.first_seq = len(backend.log)
    log_from = [len(host.log()) for host in pair.hosts]
    started = time.monotonic()
    for r in range(rounds):
        with backend.lock:
            backend.faults.clear()
        armed = [(backend.add_fault(dict(fault)), fault.get("times", 1)) for fault in sc.faults]
        # Identical graphs: each server's node i carries the same label (prompt), so one logical request.
        batches = [[Node(f"{sc.name} r{r}{'' if sc.same else f' s{s}'} n{i}", sc.kind) for i in range(4)]
                   for s in range(2)]
        sc.nodes += [n for batch in batches for n in batch]
        ids = [host.queue(graph_of(batch, 0)) for host, batch in zip(pair.hosts, batches)]
        entries: list[dict[str, Any] | None] = [None, None]
        if sc.kill:
            victim = r % 2
            other = 1 - victim
            if wait_created_and_polled(backend, [n.label for n in batches[victim]]):
                time.sleep(0.3)
                pair.hosts[victim].proc.kill()   # as a crash or a power cut: no goodbye
                pair.hosts[victim].proc.wait()
                sc.killed += 1
                # Its graph again, on the other server: the shared journal has the tasks.
                again = pair.hosts[other].queue(graph_of(batches[victim], 1))
                entries[other] = pair.hosts[other].wait(ids[other], timeout=180)
                judge(batches[other], entries[other])
                judge(batches[victim], pair.hosts[other].wait(again, timeout=180))
                pair.hosts[victim].start()
            else:
                log(f"{sc.name}: round {r}: the tasks were not all created in time; no kill")
                for s in range(2):
                    judge(batches[s], pair.hosts[s].wait(ids[s], timeout=180))
        else:
            for s in range(2):
                judge(batches[s], pair.hosts[s].wait(ids[s], timeout=180))
        # Siblings of a failed node that ComfyUI stopped waiting for: their pictures were fetched and kept
        # by the pack; queue them again (faults cleared) once the service is quiet.
        with backend.lock:
            for fault, times in armed:
                sc.faults_met[f"{fault.kind} on {fault.on}"] += met(backend, fault, times)
            backend.faults.clear()
        for s, batch in enumerate(batches):
            quiet(backend)
            rest = [n for n in batch if n.verdict == "pending" and not ended_at_service(backend, n)]
            for attempt in range(2, 5):
                if not rest:
                    break
                quiet(backend)
                judge(rest, pair.hosts[s].run(graph_of(rest, attempt), timeout=180))
                rest = [n for n in rest if n.verdict == "pending"]
    quiet(backend, seconds=1.0)
    sc.seconds = time.monotonic() - started
    text = "".join(host.log()[start:] for host, start in zip(pair.hosts, log_from))
    # The pack's own log lines (api/money/resumable.py): a task another run created, found in the journal; a
    # result another run fetched, found in the cache.
    sc.served["followed a task from the journal"] = text.count("instead of creating a new one")
    sc.served["answered from the result cache"] = text.count("from the result cache (no request sent)")
    sc.last_seq = len(backend.log)


def account(sc: Scenario, backend: Any) -> dict[str, Any]:
    """The emulator's view of one scenario's requests, per logical request (node)."""
    with backend.lock:
        entries = backend.log[sc.first_seq:sc.last_seq]
        billed_by_request = Counter(spec.request_id for spec in backend.results.values())
        tasks = dict(backend.tasks)
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in entries:
        if not e.get("billable"):
            continue
        match = re.search(r"soak2 ([^\"]+)\"", json.dumps(e.get("body"), ensure_ascii=False))
        if match:
            by_label[match.group(1)].append(e)
    row = Counter()
    intervals = []
    announced_by_label: dict[str, int] = {}
    for label in dict.fromkeys(node.label for node in sc.nodes):   # each logical request once
        created, canceled = [], 0
        for e in by_label.get(label, []):
            task = tasks.get(e.get("task_id", ""))
            if task is not None and task.canceled_at is not None and task.finished is None:
                # Canceled while still queued at the service (the pack cancels a PENDING task when its run
                # is stopped): nothing was made or billed. Counted apart, not as a creation.
                canceled += 1
                intervals.append((task.created, task.canceled_at, False))
            else:
                created.append(e)
        billed = sum(billed_by_request[e["request_id"]] for e in created)
        announced = 0
        for e in created:
            if "task_id" in e:
                task = tasks[e["task_id"]]
                intervals.append((task.created, task.created + task.queue_time + task.service_time,
                                  bool(e.get("task_id_lost"))))
                if task.announced and task.finished and task.finished.get("task_status") == "SUCCEEDED":
                    announced += billed_by_request[e["request_id"]]
            else:
                announced += e.get("images_announced", 0)
        announced_by_label[label] = announced
        row["requests"] += 1
        row["canceled"] += canceled
        row["creations"] += len(created)
        row["multi"] += len(created) > 1
        row["billed"] += billed
        row["transit"] += billed - announced
    for node in sc.nodes:
        # Every node that asked for a logical request's pictures must get them (in the identical-graph
        # scenarios, both servers' nodes).
        row["runs"] += 1
        row["siblings"] += node.sibling
        row[node.verdict] += 1
        row["delivered"] += node.delivered
        row["lost"] += max(0, announced_by_label[node.label] - node.delivered)
    # The most generations at once at the service, leaving out tasks whose id never reached the pack (the
    # answer to their creation was cut): no client can know they run, so the pack frees their slot.
    known = [(a, b) for a, b, lost in intervals if not lost]
    row["orphans"] = sum(1 for *_, lost in intervals if lost)
    level = peak = 0
    for _, step in sorted([(b, -1) for _, b in known] + [(a, 1) for a, _ in known]):
        level += step
        peak = max(peak, level)
    row["peak"] = peak
    limit = int(sc.env.get("WAN_DAILY_IMAGE_LIMIT", 0) or 0)
    row["over"] = max(0, row["billed"] - limit) if limit else 0
    return row


def ledger_totals(path: Path) -> dict[str, int]:
    import sqlite3

    if not path.exists():
        return {}
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT status, SUM(pictures) FROM billed GROUP BY status").fetchall())


def run(emulator_module: Any, key: str, rounds: int, log: Any = print) -> tuple[bool, str]:
    server = emulator_module.EmulatorServer(settings=emulator_module.Settings(
        queue_time=0.1, service_time=0.6, api_keys=[key])).start()
    backend = server.backend
    env = {"DASHSCOPE_HTTP_BASE_URL": server.base_url, "DASHSCOPE_API_KEY": key}
    plan = scenarios(rounds)
    locked_logs = 0
    ledgers: dict[str, dict[str, int]] = {}
    billed_by_group: dict[str, int] = {}
    billed_before = 0
    groups = [g for g in ("a", "b", "c") if any(sc.group == g for sc in plan)]   # a short pass may skip one
    pairs = {group: Pair({**env, **next(sc for sc in plan if sc.group == group).env}) for group in groups}
    try:
        pairs["a"].launch()
        for i, group in enumerate(groups):
            members = [sc for sc in plan if sc.group == group]
            pair = pairs[group]
            try:
                backend.configure(service_time=2.5 if members[0].kill else 0.6)
                pair.wait_ready()
                if i + 1 < len(groups):
                    pairs[groups[i + 1]].launch()   # starts while this group's rounds run
                for sc in members:
                    # The limit is crossed in the second round, so that scenario always has two.
                    count = max(2, rounds) if "WAN_DAILY_IMAGE_LIMIT" in sc.env else rounds
                    log(f"{sc.name}: {count} round(s) of 8 nodes")
                    run_scenario(sc, pair, backend, count, log)
                text = pair.logs()
                locked_logs += text.count("database is locked")
                ledgers[group] = ledger_totals(pair.base / "user" / "wan_image" / "ledger.sqlite3")
                billed_by_group[group] = backend.stats()["images_billed"] - billed_before
                billed_before = backend.stats()["images_billed"]
            finally:
                pair.cleanup()
        rows = {sc.name: account(sc, backend) for sc in plan}
    finally:
        for pair in pairs.values():
            pair.cleanup()
        server.stop()

    lines = [f"{'scenario':<32}{'runs':>5}{'ok':>5}{'clear':>6}{'unclear':>8}{'creat.':>7}{'canc.':>6}{'billed':>7}"
             f"{'deliv.':>7}{'lost':>5}{'transit':>8}{'peak':>5}{'over':>5}{'secs':>6}"]
    for sc in plan:
        r = rows[sc.name]
        lines.append(f"{sc.name:<32}{r['runs']:>5}{r['succeeded']:>5}{r['clear']:>6}"
                     f"{r['UNCLEAR'] + r['pending']:>8}{r['creations']:>7}{r['canceled']:>6}{r['billed']:>7}"
                     f"{r['delivered']:>7}"
                     f"{r['lost']:>5}{r['transit']:>8}{r['peak'] or '-':>5}{r['over']:>5}{sc.seconds:>6.0f}")
    total = sum((rows[sc.name] for sc in plan), Counter())
    multi = total["multi"]
    unclear = total["UNCLEAR"] + total["pending"]
    killed = sum(sc.killed for sc in plan)
    lines += [
        "",
        f"runs: {total['runs']} (8 Wan nodes in flight per round, 2 servers on one base directory; "
        f"servers killed and restarted: {killed})",
        f"succeeded: {total['succeeded']}",
        f"failed with a clear error: {total['clear']} (of which {total['siblings']} siblings of a failed node, "
        "judged by the service's record: their task FAILED or their answer was cut)",
        f"failed without a clear error: {unclear}",
        "billable creations per logical request: " + ("exactly 1" if not multi else f"MORE THAN 1 in {multi}") +
        f" wherever the service accepted one ({total['creations']} creations for {total['requests']} logical "
        "requests: in the same-graph scenarios both servers' nodes with one prompt are one request)",
        f"results lost: {total['lost']}",
        f"pictures billed over the daily limit: {total['over']}",
        f"tasks canceled while still queued (a run stopped; nothing made or billed), not counted as creations: "
        f"{total['canceled']}",
        f"most generations at once at the service with WAN_MAX_CONCURRENT=4 on both servers: "
        f"{max(rows[sc.name]['peak'] for sc in plan if sc.env.get('WAN_MAX_CONCURRENT') == '4')} (leaving out "
        f"{total['orphans']} task(s) whose id never reached the pack)",
        f"'database is locked' in the servers' logs: {locked_logs}",
        "the ledger (user/wan_image) against the service's own count of billed pictures: " + "; ".join(
            f"{', '.join(sc.name.split(': ')[1] for sc in plan if sc.group == g)}: ledger {t.get('billed', 0)} "
            f"billed + {t.get('unsure', 0)} unsure, service {billed_by_group[g]}" for g, t in ledgers.items()),
    ]
    for sc in plan:
        if sc.same:
            lines.append(f"{sc.name}: the faults hit " + ", ".join(
                f"{count} {what}" for what, count in sc.faults_met.items()) + " requests; the servers' logs: " +
                ", ".join(f"{what} {count}" for what, count in sc.served.items()))
    for sc in plan:
        for node in sc.nodes:
            if node.verdict == "clear":
                log(f"clear error: {node.label}: {node.error}")
    for sc in plan:
        for node in sc.nodes:
            if node.verdict in ("UNCLEAR", "pending"):
                lines.append(f"UNCLEAR: {node.label}: {node.error or 'no verdict'}")
    four_peak_ok = all(rows[sc.name]["peak"] <= 4 for sc in plan if sc.env.get("WAN_MAX_CONCURRENT") == "4")
    # The ledger may count a cut request as unsure, never fewer pictures than the service billed.
    ledger_ok = all(t.get("billed", 0) + t.get("unsure", 0) >= billed_by_group[g] for g, t in ledgers.items())
    # Where every billed picture reached the pack (nothing lost in transit), the ledger must be exact: a
    # request settled by one server must not stay counted as unsure for the other (a server killed).
    for g, t in ledgers.items():
        if sum(rows[sc.name]["transit"] for sc in plan if sc.group == g) == 0:
            ledger_ok = ledger_ok and t.get("billed", 0) == billed_by_group[g] and not t.get("unsure", 0)
    ok = (multi == 0 and total["lost"] == 0 and unclear == 0 and total["over"] == 0 and four_peak_ok
          and locked_logs == 0 and killed >= 1 and ledger_ok)
    return ok, "\n".join(lines)
