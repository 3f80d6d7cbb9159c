"""The pictures in docs/examples.md, from a real run: each example workflow loaded from the template browser in
ComfyUI's own page (headless Chromium), run against the emulator, and photographed with its output.

    .venv/bin/python scripts/screenshots.py [example ...]   (make screenshots: all; needs scripts/setup_browser.sh)

Examples whose output is itself a picture to read (the comparison sheet) also get that output saved next to
the screenshot, as <example>_output.png.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_support import fresh_seed, launch, open_page, open_template, run_and_wait_for_output  # noqa: E402
from comfy_host import ROOT, ComfyHost  # noqa: E402

OUT = ROOT / "docs" / "images"
# example -> (a Wan node in it, the filename prefix of the picture its run shows)
EXAMPLES = {"wan_image_edit": ("WanImageEdit", "WanImageEdit_"),
            "wan_text_to_image": ("WanTextToImage", "WanTextToImage_"),
            "wan_sequential": ("WanSequential", "WanSequential_"),
            "wan_interleave": ("WanInterleave", "WanInterleave_"),
            "wan_bbox": ("WanBBox", "WanBBox_"),
            "wan_chain_local_wan_local": ("WanImageEdit", "wan_chain_finished_"),
            "wan_chain_mask_to_boxes": ("WanBBox", "WanBBox_"),
            "wan_chain_prompt_experiment": ("WanTextToImage", "wan_chain_sheet_")}
KEEP_OUTPUT = {"wan_chain_prompt_experiment"}


def main() -> int:
    chosen = sys.argv[1:] or list(EXAMPLES)
    unknown = set(chosen) - set(EXAMPLES)
    if unknown:
        print("unknown examples:", *sorted(unknown), "- known:", *EXAMPLES)
        return 2
    sys.path.insert(0, str(ROOT))
    from api.emulator import EmulatorServer, Settings
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    emu = EmulatorServer(settings=Settings(queue_time=0.3, service_time=1.0)).start()
    host = ComfyHost({"DASHSCOPE_HTTP_BASE_URL": emu.base_url, "DASHSCOPE_API_KEY": "sk-emulator-screens"},
                     frontend=True).start()
    try:
        for picture in (ROOT / "example_workflows" / "inputs").glob("*.png"):
            host.upload_image(picture)
        with sync_playwright() as p:
            browser = launch(p)
            for name in chosen:
                node, prefix = EXAMPLES[name]
                page = open_page(host, browser)
                open_template(page, name)
                page.wait_for_function(f"app.graph._nodes.some(n => n.type === '{node}')", timeout=30000)
                fresh_seed(page, node)
                run_and_wait_for_output(page, prefix)
                page.evaluate("app.extensionManager.command.execute('Comfy.Canvas.FitView')")
                time.sleep(0.5)
                # A little smaller than "fit", so nothing hides under the menu bar.
                # Wide graphs fit only below the zoom where nodes are drawn without text: keep the text.
                page.evaluate("app.canvas.min_font_size_for_lod = 0")
                page.evaluate("(() => { const ds = app.canvas.ds; const s = ds.scale * 0.9; "
                              "ds.offset = [ds.offset[0] + 40 / s, ds.offset[1] + 60 / s]; ds.scale = s; "
                              "app.canvas.setDirty(true, true); })()")
                time.sleep(1.5)
                page.screenshot(path=str(OUT / f"{name}.png"))
                print("wrote", (OUT / f"{name}.png").relative_to(ROOT))
                if name in KEEP_OUTPUT:
                    newest = max((host.base / "output").glob(f"{prefix}*.png"), key=lambda f: f.stat().st_mtime)
                    shutil.copy(newest, OUT / f"{name}_output.png")
                    print("wrote", (OUT / f"{name}_output.png").relative_to(ROOT))
                page.close()
            browser.close()
    finally:
        host.cleanup()
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
