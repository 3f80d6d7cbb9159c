"""The pack's nodes as a real ComfyUI serves them (/object_info), saved and compared: a change that only moves
code around (where the nodes' inputs are declared, how files are split) must leave what ComfyUI serves, and so
every saved workflow, byte for byte as it was.

    python scripts/object_info_snapshot.py save DIR      # before the change
    python scripts/object_info_snapshot.py compare DIR   # after: exits 1 and prints the first differences

Each of both hosts (0.33.0, 0.3.75) is asked twice: with no settings, and with an endpoint and WAN_PRICES set
(the price badge reads them). One file per host and setting, the pack's nodes in the order ComfyUI serves
them, each exactly as served (key order kept).
"""

from __future__ import annotations

import difflib
import json
import sys
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hosts  # noqa: E402
from comfy_host import PACK_DIR_NAME, ComfyHost, start_together  # noqa: E402

SETTINGS = {
    "plain": {},
    "endpoint_and_prices": {"DASHSCOPE_HTTP_BASE_URL": "http://127.0.0.1:9/api/v1",
                            "WAN_PRICES": '{"wan2.6-image": {"amount": 0.03, "currency": "USD"}}'},
}


def pack_nodes(host: ComfyHost) -> str:
    served = requests.get(host.url + "/object_info", timeout=60).json()
    ours = {name: spec for name, spec in served.items() if PACK_DIR_NAME in str(spec.get("python_module", ""))}
    if not ours:
        raise SystemExit(f"ComfyUI {host.version} serves none of the pack's nodes")
    return json.dumps(ours, indent=1, ensure_ascii=False) + "\n"


def snapshots() -> dict[str, str]:
    servers = {f"{version}-{name}.json": ComfyHost(dict(env), version=version)
               for version in hosts.VERSIONS for name, env in SETTINGS.items()}
    try:
        start_together(*servers.values())
        return {file: pack_nodes(host) for file, host in servers.items()}
    finally:
        for host in servers.values():
            host.cleanup()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("save", "compare"):
        print(__doc__)
        return 2
    folder = Path(argv[1])
    got = snapshots()
    if argv[0] == "save":
        folder.mkdir(parents=True, exist_ok=True)
        for file, text in got.items():
            (folder / file).write_text(text)
        print(f"saved {len(got)} snapshots in {folder}")
        return 0
    differ = 0
    for file, text in got.items():
        before = (folder / file).read_text()
        if text == before:
            print(f"{file}: identical ({len(text)} bytes, {text.count(chr(10))} lines)")
            continue
        differ += 1
        print(f"{file}: DIFFERS")
        sys.stdout.writelines(list(difflib.unified_diff(before.splitlines(True), text.splitlines(True),
                                                        "before", "after", n=1))[:60])
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
