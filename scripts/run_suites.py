"""`make test`'s suites, each in a pytest process of its own, with their times printed at the end.

    .venv/bin/python scripts/run_suites.py [SUITE ...]     (no SUITE: all of them, as CI runs them)

Suites (see SUITES): the client and emulator; the end-to-end and browser suites and the in-process node tests
on the newest host, ComfyUI 0.33.0; a smoke of the end-to-end suite on the oldest supported host, 0.3.75.
Runs them one after another and goes on past a failure; exits non-zero if any failed. The times also go to
test_artifacts/suite_times.txt (`.ci/run` prints it last).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hosts  # noqa: E402

ROOT = hosts.ROOT
TIMES = ROOT / "test_artifacts" / "suite_times.txt"
PYTEST = ["-q", "-p", "no:cacheprovider", "--durations=8"]


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


SUITES = [
    Suite("api", None, ["tests/api"]),
    Suite(f"e2e @ {hosts.NEWEST}", hosts.NEWEST, ["tests/e2e"]),
    Suite(f"browser @ {hosts.NEWEST}", hosts.NEWEST, ["tests/browser"]),
    Suite(f"comfy (in-process) @ {hosts.NEWEST}", hosts.NEWEST, ["tests/comfy"], in_host_python=True),
    Suite(f"e2e smoke @ {hosts.OLDEST}", hosts.OLDEST, ["-m", "smoke", "tests/e2e"]),
]


def main(argv: list[str]) -> int:
    wanted = [s for s in SUITES if not argv or any(a in s.name for a in argv)]
    if not wanted:
        print(f"no suite matches {argv}; suites: {', '.join(s.name for s in SUITES)}", file=sys.stderr)
        return 2
    rows = []
    started_all = time.monotonic()
    for suite in wanted:
        env = {**os.environ}
        if suite.host:
            env[hosts.VARIABLE] = suite.host
        print(f"\n=== {suite.name}: {' '.join(suite.command()[1:])}", flush=True)
        started = time.monotonic()
        code = subprocess.call(suite.command(), cwd=ROOT, env=env)
        rows.append((suite.name, time.monotonic() - started, code))
    total = time.monotonic() - started_all
    lines = [f"{'suite':<32}{'time':>9}  result"]
    lines += [f"{name:<32}{fmt(seconds):>9}  {'passed' if code == 0 else f'FAILED ({code})'}"
              for name, seconds, code in rows]
    lines.append(f"{'all suites':<32}{fmt(total):>9}")
    TIMES.parent.mkdir(parents=True, exist_ok=True)
    TIMES.write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines), flush=True)
    return 0 if all(code == 0 for _, _, code in rows) else 1


def fmt(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
