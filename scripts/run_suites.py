"""`make test`'s suites, each in a pytest process of its own, with their times printed at the end.

    .venv/bin/python scripts/run_suites.py [SUITE ...]     (no SUITE: all of them, as CI runs them)

Suites (see SUITES): the client and emulator; the end-to-end suite, the short pass of the fault soak, the
browser suite and the in-process node tests on the newest host, ComfyUI 0.33.0; a smoke of the end-to-end
suite on the oldest supported host, 0.3.75.

The suites run in two lanes at once (LANES), each lane taking the next suite from one queue, longest first
(ORDER): most of a suite's time is waiting (for the emulator's service time, for ComfyUI), and most of the
CPU goes to starting ComfyUI servers and drawing pages, so two lanes keep both cores of these machines busy.
No test depends on another suite: each has its own emulator and servers on free ports and its own temporary
folders. A suite's output is printed whole when it ends (and kept in test_artifacts/suites/); a failure does
not stop the other suites. Exits non-zero if any suite failed. The times also go to
test_artifacts/suite_times.txt (`.ci/run` prints it last). WAN_TEST_LANES=1 runs the suites one after another.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hosts  # noqa: E402

ROOT = hosts.ROOT
ARTIFACTS = ROOT / "test_artifacts"
TIMES = ARTIFACTS / "suite_times.txt"
PYTEST = ["-q", "-p", "no:cacheprovider", "--durations=10"]


@dataclass
class Suite:
    name: str
    host: str | None          # WAN_COMFY_HOST for the suite (None: no ComfyUI in it)
    args: list[str]
    in_host_python: bool = False  # ComfyUI loaded into the pytest process itself

    def command(self) -> list[str]:
        if self.in_host_python:
            # pytest's own script, not `python -m pytest`: -m would put the repo root (and our nodes/) on
            # sys.path, where ComfyUI's `import nodes` must find its own nodes.py.
            return [str(hosts.python(self.host).parent / "pytest"), *PYTEST, *self.args]
        return [str(ROOT / os.environ.get("VENV", ".venv") / "bin" / "python"), "-m", "pytest", *PYTEST, *self.args]


SOAK = "tests/e2e/test_soak.py"
SUITES = {
    "api": Suite("api", None, ["tests/api"]),
    "e2e": Suite(f"e2e @ {hosts.NEWEST}", hosts.NEWEST, ["tests/e2e", f"--ignore={SOAK}"]),
    "soak": Suite(f"soak, short pass @ {hosts.NEWEST}", hosts.NEWEST, [SOAK]),
    "browser": Suite(f"browser @ {hosts.NEWEST}", hosts.NEWEST, ["tests/browser"]),
    "comfy": Suite(f"comfy, in-process @ {hosts.NEWEST}", hosts.NEWEST, ["tests/comfy"], in_host_python=True),
    "smoke": Suite(f"e2e smoke @ {hosts.OLDEST}", hosts.OLDEST, ["-m", "smoke", "tests/e2e", f"--ignore={SOAK}"]),
}
# Longest first (minutes measured in CI on this kind of machine, two lanes at once): two lanes take suites
# from the one queue in this order, so the long ones start at once and the short ones fill the gaps.
ORDER = ["browser", "e2e", "api", "soak", "comfy", "smoke"]   # 10:49, 9:58, 6:06, 3:05, 1:14, 1:09
LANES = 2
assert set(ORDER) == set(SUITES), "every suite has its place in ORDER (a suite missing there would never run)"


def run(suite: Suite, rows: dict, lock: threading.Lock) -> None:
    env = {**os.environ}
    if suite.host:
        env[hosts.VARIABLE] = suite.host
    log_path = ARTIFACTS / "suites" / (suite.name.replace(" @ ", "-").replace(", ", "-").replace(" ", "_") + ".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with lock:
        print(f"=== {suite.name}: started ({' '.join(suite.command()[1:])})", flush=True)
    started = time.monotonic()
    with open(log_path, "w") as log:
        code = subprocess.call(suite.command(), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - started
    with lock:
        rows[suite.name] = (seconds, code)
        print(f"\n=== {suite.name}: {'passed' if code == 0 else 'FAILED'} in {fmt(seconds)}", flush=True)
        print(log_path.read_text(errors="replace"), flush=True)


def main(argv: list[str]) -> int:
    unknown = [a for a in argv if a not in SUITES]
    if unknown:
        print(f"unknown suite(s) {unknown}; suites: {', '.join(SUITES)}", file=sys.stderr)
        return 2
    chosen = [key for key in ORDER if not argv or key in argv]
    lanes = 1 if os.environ.get("WAN_TEST_LANES") == "1" else min(LANES, len(chosen))
    queue = list(chosen)
    rows: dict[str, tuple[float, int]] = {}
    lock = threading.Lock()
    started = time.monotonic()
    make_started = os.environ.get("WAN_MAKE_STARTED", "")
    setup = time.time() - int(make_started) if make_started.isdigit() else None

    def lane() -> None:
        while True:
            with lock:
                if not queue:
                    return
                key = queue.pop(0)
            run(SUITES[key], rows, lock)

    threads = [threading.Thread(target=lane) for _ in range(lanes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = time.monotonic() - started
    order = [SUITES[k].name for k in chosen]
    lines = [f"{'suite':<34}{'time':>7}  result"]
    if setup is not None:
        lines.append(f"{'set-up (make test, before these)':<34}{fmt(setup):>7}")
    lines += [f"{name:<34}{fmt(rows[name][0]):>7}  {'passed' if rows[name][1] == 0 else 'FAILED'}"
              for name in order if name in rows]
    lines.append(f"{'all suites (' + str(len(threads)) + ' lanes at once)':<34}{fmt(total):>7}")
    TIMES.parent.mkdir(parents=True, exist_ok=True)
    TIMES.write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines), flush=True)
    return 0 if len(rows) == len(order) and all(code == 0 for _, code in rows.values()) else 1


def fmt(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
