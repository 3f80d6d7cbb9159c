"""Does a comfyui-frontend-package version run on our ComfyUI host? Used to pick the newest one the browser
tests cover (see browser_support.FRONTENDS and docs/development.md).

    .venv/bin/python scripts/frontend_probe.py 1.58.1 1.57.5 ...

Each version is installed into its own folder under /tmp/wan-frontends (never over the pinned 1.32.9), served
with ComfyUI's --front-end-root, and must: load the page (window.app with a graph), load the pack's
text-to-image example, and run it from the page's Run button to a picture in /history, against the emulator.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_support import close_dialogs, launch, static_root  # noqa: E402
from comfy_host import ROOT, ComfyHost  # noqa: E402

CACHE = Path("/tmp/wan-frontends")


def install(version: str) -> Path:
    target = CACHE / version
    if not (target / "comfyui_frontend_package").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--no-deps", "--target", str(target), f"comfyui-frontend-package=={version}"], check=True)
    return static_root(target)


def probe(version: str, browser) -> str:
    import json

    import requests

    from api.emulator import EmulatorServer, Settings

    emu = EmulatorServer(settings=Settings(queue_time=0.1, service_time=0.2)).start()
    host = ComfyHost({"DASHSCOPE_HTTP_BASE_URL": emu.base_url, "DASHSCOPE_API_KEY": "sk-probe-fake"},
                     front_end_root=install(version)).start()
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    errors: list[str] = []
    missing: set[str] = set()  # server routes the frontend asks for that this ComfyUI does not have
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: r.status == 404 and r.url.startswith(host.url) and missing.add(
        r.url[len(host.url):].split("?")[0]))
    try:
        page.goto(host.url)
        try:
            page.wait_for_function("window.app && window.app.graph && window.app.extensionManager", timeout=60000)
        except Exception:
            return f"page does not load ({'; '.join(errors)[:300]})"
        close_dialogs(page)
        workflow = json.loads((ROOT / "example_workflows" / "wan_text_to_image.json").read_text())
        page.evaluate("w => app.loadGraphData(w)", workflow)
        page.evaluate("""() => { const n = app.graph._nodes.find(n => n.type === 'WanTextToImage');
                                 n.widgets.find(w => w.name === 'seed').value = Date.now() % 100000; }""")
        before = requests.get(host.url + "/history", timeout=10).json()
        page.get_by_role("button", name="Run").first.click()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            history = requests.get(host.url + "/history", timeout=10).json()
            done = [h for k, h in history.items() if k not in before]
            if done and done[0].get("status", {}).get("status_str") == "success":
                time.sleep(1.0)
                return (f"ok; routes missing on this host: {sorted(missing) or 'none'}; "
                        f"page errors: {len(errors)}")
            if done and done[0].get("status", {}).get("status_str") == "error":
                return f"run failed: {done[0]['status']}"
            time.sleep(0.3)
        return f"the run did not finish ({'; '.join(errors)[:300]})"
    finally:
        page.close()
        host.cleanup()
        emu.stop()


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        for version in sys.argv[1:]:
            t = time.monotonic()
            try:
                verdict = probe(version, browser)
            except Exception as exc:  # a probe answers, it does not stop at the first broken version
                verdict = f"failed: {type(exc).__name__}: {str(exc)[:300]}"
            print(f"{version}: {verdict} ({time.monotonic() - t:.0f} s)", flush=True)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
