"""`make demo`: every example workflow through a real ComfyUI, offline, against the emulator.

Writes the pictures and texts under demo_output/<workflow>/ and prints a summary. With DASHSCOPE_API_KEY
set and no DASHSCOPE_HTTP_BASE_URL, the same workflows run against the real service instead (billed!):
`WAN_DEMO_REAL=1 make demo`. `scripts/demo.py --thumbnails` also writes the template-browser thumbnail
(example_workflows/<workflow>.jpg) of each example that has none, from the first picture it saved.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_host import ROOT, ComfyHost, execution_error, ui_to_api  # noqa: E402
from PIL import Image  # noqa: E402

OUT = ROOT / "demo_output"
EXAMPLES = ROOT / "example_workflows"


def thumbnail(picture: Path, name: str) -> None:
    with Image.open(picture) as img:
        img = img.convert("RGB")
        img.thumbnail((384, 384), Image.Resampling.LANCZOS)
        img.save(EXAMPLES / f"{name}.jpg", quality=85)


def main() -> int:
    thumbnails = "--thumbnails" in sys.argv[1:]
    real = os.environ.get("WAN_DEMO_REAL") == "1" and os.environ.get("DASHSCOPE_API_KEY") \
        and not os.environ.get("DASHSCOPE_HTTP_BASE_URL")
    emulator = None
    if real:
        env = {k: v for k, v in os.environ.items() if k.startswith("DASHSCOPE_")}
        where = "the real DashScope service (billed)"
    else:
        sys.path.insert(0, str(ROOT))
        from api.emulator import EmulatorServer, Settings

        emulator = EmulatorServer(settings=Settings(queue_time=0.5, service_time=2.0)).start()
        env = {"DASHSCOPE_HTTP_BASE_URL": emulator.base_url, "DASHSCOPE_API_KEY": "sk-emulator-demo-key"}
        where = f"the offline emulator at {emulator.base_url}"
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    print(f"demo: example workflows through a real ComfyUI, against {where}")
    rows = []
    failed = 0
    with ComfyHost(env) as host:
        for picture in sorted((EXAMPLES / "inputs").glob("*.png")):
            host.upload_image(picture)
        info = host.object_info()
        for path in sorted(EXAMPLES.glob("*.json")):
            name = path.stem
            graph = ui_to_api(json.loads(path.read_text()), info)
            started = time.monotonic()
            entry = host.run(graph, timeout=600)
            seconds = time.monotonic() - started
            folder = OUT / name
            folder.mkdir()
            error = execution_error(entry)
            pictures = texts = 0
            for node_id, output in entry.get("outputs", {}).items():
                title = graph[node_id]["_meta"]["title"]
                for image in output.get("images", []):
                    shutil.copy(host.output_file(image), folder / image["filename"])
                    if thumbnails and pictures == 0 and not (EXAMPLES / f"{name}.jpg").exists():
                        thumbnail(host.output_file(image), name)
                    pictures += 1
                for text in output.get("text", []):
                    (folder / f"{title}.txt").write_text(text)
                    texts += 1
            if error:
                failed += 1
                (folder / "error.txt").write_text(error.get("exception_message", ""))
            rows.append((name, "error" if error else "ok", pictures, texts, seconds,
                         (error or {}).get("exception_message", "")[:120]))
    if emulator is not None:
        stats = emulator.backend.stats()
        emulator.stop()
    print(f"\n{'workflow':<30} {'status':<7} {'pictures':>8} {'texts':>6} {'seconds':>8}")
    for name, status, pictures, texts, seconds, message in rows:
        print(f"{name:<30} {status:<7} {pictures:>8} {texts:>6} {seconds:>8.1f}  {message}")
    if emulator is not None:
        print(f"\nthe emulator counted {stats['creations']} billable creations and {stats['images_billed']} "
              f"pictures billed (play money)")
    print(f"outputs in {OUT.relative_to(ROOT)}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
