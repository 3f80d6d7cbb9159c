"""ComfyUI's own frontend (comfyui-frontend-package 1.32.9, as the host pins) in headless Chromium, driven by
Playwright: node search, the template browser, a run showing its output, drawing a box.
Screenshots of every step go to test_artifacts/browser/."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT, ROOT / "scripts"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from api.emulator import EmulatorServer, Settings  # noqa: E402
from comfy_host import ComfyHost  # noqa: E402

playwright = pytest.importorskip("playwright.sync_api", reason="run scripts/setup_browser.sh (make test does)")
from browser_support import (  # noqa: E402
    fresh_seed, launch, open_page, open_template, run_and_wait_for_output, search_nodes,
)

ARTIFACTS = ROOT / "test_artifacts" / "browser"
KEY = "sk-browser-fake-key-00k1"


@pytest.fixture(scope="module")
def stack():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    emu = EmulatorServer(settings=Settings(queue_time=0.2, service_time=0.5, api_keys=[KEY])).start()
    host = ComfyHost({"DASHSCOPE_HTTP_BASE_URL": emu.base_url, "DASHSCOPE_API_KEY": KEY}, frontend=True).start()
    for picture in (ROOT / "example_workflows" / "inputs").glob("*.png"):
        host.upload_image(picture)
    with playwright.sync_playwright() as p:
        browser = launch(p)
        yield emu, host, browser
        browser.close()
    host.cleanup()
    emu.stop()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_the_nodes_appear_in_the_node_search(stack):
    emu, host, browser = stack
    page = open_page(host, browser)
    search_nodes(page, "Wan Box Edit")
    shot(page, "node_search")
    assert page.get_by_text("Wan Box Edit").first.is_visible()
    page.close()


def test_an_example_loads_from_the_template_browser_and_its_run_shows_the_output(stack):
    emu, host, browser = stack
    page = open_page(host, browser)
    # A new user sees the template browser; the pack's examples are listed under its name.
    open_template(page, "wan_text_to_image")
    page.wait_for_function("app.graph._nodes.some(n => n.type === 'WanTextToImage')", timeout=30000)
    shot(page, "template_loaded")
    fresh_seed(page, "WanTextToImage")
    run_and_wait_for_output(page, "WanTextToImage_")
    shot(page, "template_run_output")
    assert [e for e in emu.backend.log if e.get("billable")], "the run never reached the emulator"
    page.close()


def test_a_box_drawn_with_the_mouse_reaches_the_service(stack):
    emu, host, browser = stack
    page = open_page(host, browser)
    open_template(page, "wan_bbox")
    page.wait_for_function("app.graph._nodes.some(n => n.type === 'WanBBox')", timeout=30000)
    # Clear the example's box, make the editor large on screen, and show the 1000x800 room picture.
    page.evaluate("""() => {
        const node = app.graph._nodes.find(n => n.type === 'WanBBox');
        node.widgets.find(w => w.name === 'boxes').value = '';
        node.widgets.find(w => w.name === 'seed').value = Date.now() % 100000;
        node.setSize([1000, 1300]);
        app.canvas.ds.scale = 1;
        app.canvas.ds.offset = [-node.pos[0] + 60, -node.pos[1] - 650];
        app.canvas.setDirty(true, true);
        node.__wanBoxEditor.refresh();
    }""")
    page.wait_for_function("document.querySelector('.wan-bbox-canvas') && "
                           "document.querySelector('.wan-bbox-editor').textContent.includes('1000x800')",
                           timeout=20000)
    time.sleep(0.5)
    r = page.evaluate("(() => { const r = document.querySelector('.wan-bbox-canvas').getBoundingClientRect();"
                      " return [r.x, r.y, r.width, r.height]; })()")
    x, y, w, h = r
    scale = min(w / 1000, h / 800)
    ox, oy = (w - 1000 * scale) / 2, (h - 800 * scale) / 2

    def screen(px, py):
        return x + ox + px * scale, y + oy + py * scale

    page.mouse.move(*screen(100, 150))
    page.mouse.down()
    page.mouse.move(*screen(250, 300), steps=5)
    page.mouse.move(*screen(400, 500), steps=5)
    page.mouse.up()
    shot(page, "box_drawn")
    stored = page.evaluate("app.graph._nodes.find(n => n.type === 'WanBBox').widgets"
                           ".find(w => w.name === 'boxes').value")
    assert stored.startswith("[[[")
    before = len(emu.backend.log)
    page.get_by_role("button", name="Run").first.click()
    deadline = time.monotonic() + 60
    while not [e for e in emu.backend.log[before:] if e.get("billable")]:
        assert time.monotonic() < deadline, "the run never reached the emulator"
        time.sleep(0.2)
    sent = [e for e in emu.backend.log[before:] if e.get("billable")][0]["body"]["parameters"]["bbox_list"]
    assert len(sent) == 2 and sent[1] == []
    (box,) = sent[0]
    assert all(abs(a - b) <= 2 for a, b in zip(box, [100, 150, 400, 500])), box
    page.wait_for_function("Array.from(document.querySelectorAll('img')).some(i => i.src.includes('WanBBox_'))",
                           timeout=60000)
    shot(page, "box_run_output")
    page.close()


def test_the_zh_locale_shows_the_chinese_names(stack):
    emu, host, browser = stack
    page = open_page(host, browser, locale="zh")
    search_nodes(page, "万相")
    shot(page, "zh_node_search")
    for name in ("万相 框选编辑", "万相 图像编辑", "万相 颜色主题"):
        assert page.get_by_text(name).first.is_visible(), name
    page.close()
