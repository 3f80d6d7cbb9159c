"""What ComfyUI v0.33.0's own page (its pinned frontend) brings, driven in headless Chromium as a user
drives it: the price badge on the billing nodes, the API key typed into the settings, and a box drawn in
core's "Create Bounding Boxes" wired to Wan Box Edit.

Two servers, started together: one priced as a real user's would be (no DASHSCOPE_HTTP_BASE_URL, so the
price table applies; nothing is run on it), and one on the emulator without any key in its environment,
so a run only works with the key typed into the page. Screenshots go to test_artifacts/browser/0.33.0-*.png.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT, ROOT / "scripts"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import hosts  # noqa: E402
from api.emulator import EmulatorServer, Settings  # noqa: E402
from api.money.pricing import estimate, unit_price  # noqa: E402
from comfy_host import ComfyHost  # noqa: E402

playwright = pytest.importorskip("playwright.sync_api", reason="run scripts/setup_browser.sh (make test does)")
from browser_support import VIEWPORT, close_dialogs, launch, open_page  # noqa: E402

pytestmark = pytest.mark.skipif(hosts.chosen() != hosts.NEWEST,
                                reason="price badges and core box/colour types need ComfyUI 0.33.0")

ARTIFACTS = ROOT / "test_artifacts" / "browser"
KEY = "sk-page-typed-KEY-4f9e2c7a1b3d"
ROOM = (1000, 800)  # example_workflows/inputs/wan_example_room.png
# A user's own price for one model (WAN_PRICES wins over the table, on the badge as in `info`).
USER_PRICES = {"wan2.6-image": {"amount": 0.25, "currency": "CNY"}}


@dataclass
class Stack:
    emu: EmulatorServer
    runs: ComfyHost      # on the emulator, no key in its environment
    priced: ComfyHost    # no base URL: the price table applies
    browser: object


@pytest.fixture(scope="module")
def stack():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    emu = EmulatorServer(settings=Settings(queue_time=0.2, service_time=0.5, api_keys=[KEY])).start()
    runs = ComfyHost({"DASHSCOPE_HTTP_BASE_URL": emu.base_url}, frontend=True)
    priced = ComfyHost({"WAN_PRICES": json.dumps(USER_PRICES)}, frontend=True)
    try:
        with ThreadPoolExecutor(2) as pool:   # each takes about 15 s to start: side by side
            list(pool.map(lambda host: host.start(), (runs, priced)))
        for picture in (ROOT / "example_workflows" / "inputs").glob("*.png"):
            runs.upload_image(picture)
        with playwright.sync_playwright() as p:
            browser = launch(p)
            context = browser.new_context(viewport=VIEWPORT)
            context.add_init_script("try { localStorage.clear(); sessionStorage.clear(); } catch (e) {}")
            for host in (runs, priced):
                first = open_page(host, context)
                close_dialogs(first)
                first.close()
            yield Stack(emu, runs, priced, context)
            browser.close()
    finally:
        runs.cleanup()
        priced.cleanup()
        emu.stop()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{hosts.NEWEST}-{name}.png"))


def add_nodes(page, nodes: list, links: list = ()) -> None:
    """nodes: [(key, type, x, y, {widget: value})]; links: [(from key, output name or slot, to key, input)]."""
    page.evaluate("""([nodes, links]) => {
        const g = app.graph; g.clear();
        const made = {};
        for (const [key, type, x, y, widgets] of nodes) {
            const n = LiteGraph.createNode(type); n.pos = [x, y]; g.add(n);
            for (const [name, value] of Object.entries(widgets)) {
                const w = n.widgets.find(w => w.name === name); w.value = value; w.callback?.(value);
            }
            for (const w of n.widgets || []) if (w.name === 'control_after_generate') w.value = 'fixed';
            made[key] = n;
        }
        for (const [a, out, b, input] of links) {
            const slot = typeof out === 'number' ? out : made[a].outputs.findIndex(o => o.name === out);
            made[a].connect(slot, made[b], made[b].inputs.findIndex(i => i.name === input));
        }
        app.canvas.ds.scale = 1; app.canvas.ds.offset = [0, 0];
        app.canvas.setDirty(true, true);
    }""", [nodes, list(links)])


def billable(emu, since: int = 0) -> list[dict]:
    return [e for e in emu.backend.log[since:] if e.get("billable")]


def wait_for_requests(emu, since: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while not billable(emu, since):
        assert time.monotonic() < deadline, "the run never reached the emulator"
        time.sleep(0.2)
    return billable(emu, since)


# ---- the price badge ----------------------------------------------------------------------------------------

def badge_text(page, node_type: str, renderer: str) -> str:
    """The price on the node as the page shows it: the canvas badge's text (classic), the node header's
    badge (Nodes 2.0)."""
    if renderer == "classic":
        return page.evaluate(f"""() => {{
            const n = app.graph._nodes.find(n => n.type === '{node_type}');
            return (n.badges || []).map(b => typeof b === 'function' ? b() : b).map(b => b && b.text)
                   .filter(t => t && !t.startsWith('comfyui-wan-image') && !t.startsWith('#')).join(' | ');
        }}""")
    # Nodes 2.0 draws it in the node's header, its first word apart from the rest.
    return page.evaluate(f"""() => {{
        const node = document.querySelector("[data-node-id='{node_id(page, node_type)}']");
        const parts = node ? Array.from(node.querySelectorAll("[data-testid^='credit-badge']")) : [];
        return parts.map(p => p.textContent.trim()).join(' ').trim();
    }}""")


def node_id(page, node_type: str) -> str:
    return str(page.evaluate(f"app.graph._nodes.find(n => n.type === '{node_type}').id"))


def wait_badge(page, node_type: str, renderer: str, want: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    got = ""
    while time.monotonic() < deadline:
        got = badge_text(page, node_type, renderer)
        if got == want:
            return got
        time.sleep(0.2)
    return got


def step_n(page, renderer: str, node_type: str = "WanTextToImage") -> None:
    """Raise the node's `n` by one as a user does: the widget's increment arrow (classic canvas) or its "+"
    button (Nodes 2.0)."""
    if renderer == "nodes2":
        page.locator(f"[data-node-id='{node_id(page, node_type)}'] [aria-label='n'] [data-testid='increment']").click()
        return
    x, y = page.evaluate(f"""() => {{
        const n = app.graph._nodes.find(n => n.type === '{node_type}');
        const w = n.widgets.find(w => w.name === 'n');
        const canvasX = n.pos[0] + n.size[0] - 15 - 8, canvasY = n.pos[1] + w.y + LiteGraph.NODE_WIDGET_HEIGHT / 2;
        const [sx, sy] = app.canvas.ds.convertOffsetToCanvas([canvasX, canvasY]);
        const r = app.canvas.canvas.getBoundingClientRect();
        return [r.left + sx, r.top + sy];
    }}""")
    page.mouse.click(x, y)


def expected(model: str, region: str, count: int, wording: str = "exact") -> str:
    price = estimate(model, "singapore" if region == "default" else region, count)
    if price is None:
        return "price unknown"
    amount = f"{price['total']:.4f}".rstrip("0")
    amount = amount if len(amount.split(".")[1]) >= 2 else f"{price['total']:.2f}"
    return {"exact": f"≈ {amount} {price['currency']}", "at_most": f"up to ≈ {amount} {price['currency']}"}[wording]


@pytest.mark.parametrize("renderer", ["classic", "nodes2"])
def test_the_badge_on_wan_text_to_image_changes_when_n_changes(stack, renderer, monkeypatch):
    monkeypatch.setenv("WAN_PRICES", json.dumps(USER_PRICES))   # as the priced server has it
    page = open_page(stack.priced, stack.browser, renderer=renderer)
    try:
        add_nodes(page, [("t2i", "WanTextToImage", 80, 80, {"n": 1}),
                         ("free", "WanColorPalette", 560, 80, {})])
        one = expected("wan2.7-image-pro", "default", 1)
        assert one == "≈ 0.075 USD"
        assert wait_badge(page, "WanTextToImage", renderer, one) == one
        shot(page, f"{renderer}-badge_n1")
        step_n(page, renderer)
        assert page.evaluate("app.graph._nodes.find(n => n.type === 'WanTextToImage').widgets"
                             ".find(w => w.name === 'n').value") == 2, "the click did not change n"
        two = expected("wan2.7-image-pro", "default", 2)
        assert wait_badge(page, "WanTextToImage", renderer, two) == two == "≈ 0.15 USD"
        shot(page, f"{renderer}-badge_n2")
        # The free node shows none.
        assert badge_text(page, "WanColorPalette", renderer) == ""
    finally:
        page.close()


def set_widgets(page, node_type: str, values: dict) -> None:
    page.evaluate("""([type, values]) => {
        const n = app.graph._nodes.find(n => n.type === type);
        for (const [name, value] of Object.entries(values)) {
            const w = n.widgets.find(w => w.name === name); w.value = value; w.callback?.(value);
        }
        app.canvas.setDirty(true, true);
    }""", [node_type, values])


def test_every_badge_the_page_shows_is_the_estimate_of_a_run(stack, monkeypatch):
    """Every model x region x count on the billing nodes, as the page's own JSONata engine evaluates the
    expression: the same text as the price table (and WAN_PRICES) give for a run."""
    monkeypatch.setenv("WAN_PRICES", json.dumps(USER_PRICES))   # as the priced server has it
    page = open_page(stack.priced, stack.browser, renderer="classic")
    try:
        add_nodes(page, [("t2i", "WanTextToImage", 40, 40, {}), ("seq", "WanSequential", 480, 40, {}),
                         ("inter", "WanInterleave", 920, 40, {}), ("edit", "WanImageEdit", 40, 600, {})])
        checked = 0
        for node_type, models, count, wording in (
                ("WanTextToImage", ["wan2.7-image-pro", "wan2.7-image"], "n", "exact"),
                ("WanSequential", ["wan2.7-image-pro", "wan2.7-image"], "n", "at_most"),
                ("WanInterleave", ["wan2.6-image"], "max_images", "at_most")):
            for model in models:
                for region in ("default", "singapore", "virginia", "beijing"):
                    for k in (1, 3):
                        set_widgets(page, node_type, {"model": model, "region": region, count: k})
                        want = expected(model, region, k, wording)
                        assert wait_badge(page, node_type, "classic", want) == want, (node_type, model, region, k)
                        checked += 1
        assert unit_price("wan2.6-image", "virginia")[2] == "WAN_PRICES"  # those rows checked the user's price
        # A per-picture edit: the price of each picture of the `image` batch.
        set_widgets(page, "WanImageEdit", {"model": "wan2.7-image", "region": "beijing", "n": 2, "per_image": True})
        assert wait_badge(page, "WanImageEdit", "classic", "≈ 0.40 CNY per picture of image") == \
            "≈ 0.40 CNY per picture of image"
        shot(page, "classic-badges_all")
        assert checked == 40
    finally:
        page.close()


# ---- the key typed into the settings ------------------------------------------------------------------------

def files_holding(folder: Path, secret: str) -> list[str]:
    needles = (secret.encode(), secret.encode("utf-16-le"))
    return [str(p) for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
            and any(n in p.read_bytes() for n in needles)]


def test_a_key_typed_into_the_settings_reaches_the_service_and_nowhere_else(stack):
    host = stack.runs
    page = open_page(host, stack.browser, renderer="nodes2")
    try:
        page.evaluate("app.extensionManager.command.execute('Comfy.ShowSettingsDialog')")
        page.get_by_text("Wan (DashScope)", exact=True).first.click()
        row = page.locator(".wan-key-row[data-wan-scope='all']")
        row.locator(".wan-key-status").filter(has_text="not set").wait_for(timeout=15000)
        row.locator(".wan-key-input").fill(KEY)
        shot(page, "settings_key_typed")
        row.locator(".wan-key-save").click()
        row.locator(".wan-key-status").filter(has_text=f"set, ends …{KEY[-4:]}").wait_for(timeout=15000)
        assert row.locator(".wan-key-input").input_value() == ""    # the page keeps no copy
        shot(page, "settings_key_saved")
        page.keyboard.press("Escape")

        add_nodes(page, [("t2i", "WanTextToImage", 80, 80, {"prompt": "a lighthouse", "size": "1K", "n": 1,
                                                             "model": "wan2.7-image",
                                                             "seed": int(time.time()) % 100000}),
                         ("save", "SaveImage", 560, 80, {"filename_prefix": "PageKey"})],
                  [("t2i", 0, "save", "images")])
        before = len(stack.emu.backend.log)
        page.get_by_role("button", name="Run").first.click()
        (create,) = wait_for_requests(stack.emu, before)
        # The emulator accepts no key but KEY: the request carried it in its Authorization header.
        assert create["authorized"] is True
        deadline = time.monotonic() + 60
        while "PageKey" not in requests.get(host.url + "/history", timeout=10).text:
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.3)
        shot(page, "settings_key_run")

        assert files_holding(host.base, KEY) == []
        assert KEY not in host.log()
        assert KEY not in requests.get(host.url + "/history", timeout=10).text
        settings = host.base / "user" / "default" / "comfy.settings.json"
        assert settings.exists() and KEY not in settings.read_text()
        assert KEY not in page.evaluate("JSON.stringify(app.graph.serialize())")
        assert KEY not in requests.get(host.url + "/wan_image/api_keys", timeout=10).text
    finally:
        page.close()


# ---- Create Bounding Boxes -> Wan Box Edit ----------------------------------------------------------------------

def test_a_box_drawn_in_create_bounding_boxes_reaches_the_service(stack):
    # Core's box editor is drawn only in Nodes 2.0 (the classic canvas shows "Bounding Boxes: Node 2.0 only").
    renderer = "nodes2"
    host = stack.runs
    requests.post(host.url + "/wan_image/api_keys", json={"region": "all", "key": KEY}, timeout=10).raise_for_status()
    page = open_page(host, stack.browser, renderer=renderer)
    try:
        add_nodes(page, [("room", "LoadImage", 20, 20, {"image": "wan_example_room.png"}),
                         ("cbb", "CreateBoundingBoxes", 380, 20, {}),
                         ("wan", "WanBBox", 1000, 20, {"prompt": "a lamp in the box", "size": "1K",
                                                       "seed": int(time.time()) % 100000}),
                         ("save", "SaveImage", 1450, 20, {"filename_prefix": "CreateBoxes"})],
                  [("room", 0, "cbb", "background"), ("cbb", "bboxes", "wan", "bboxes"),
                   ("room", 0, "wan", "image"), ("wan", 0, "save", "images")])
        canvas = page.locator("[data-testid='bounding-boxes'] canvas").first
        canvas.wait_for(state="visible", timeout=20000)
        # Create Bounding Boxes sets its canvas from the picture, rounded to 16: 1000x800 -> 1008x800.
        page.wait_for_function("app.graph._nodes.find(n => n.type === 'CreateBoundingBoxes').widgets"
                               ".find(w => w.name === 'width').value === 1008", timeout=20000)
        page.get_by_role("button", name="Grid").first.click()   # no snapping: the box follows the mouse
        time.sleep(0.5)
        x, y, w, h = canvas.evaluate("c => { const r = c.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }")
        want = [200, 150, 520, 480]   # in the picture's pixels
        fx = [c / ROOM[0] for c in want[::2]]
        fy = [c / ROOM[1] for c in want[1::2]]
        page.mouse.move(x + fx[0] * w, y + fy[0] * h)
        page.mouse.down()
        page.mouse.move(x + (fx[0] + fx[1]) / 2 * w, y + (fy[0] + fy[1]) / 2 * h, steps=5)
        page.mouse.move(x + fx[1] * w, y + fy[1] * h, steps=5)
        page.mouse.up()
        time.sleep(0.5)
        state = page.evaluate("app.graph._nodes.find(n => n.type === 'CreateBoundingBoxes').widgets"
                              ".find(w => w.name === 'editor_state').value")
        assert len(state) == 1, state
        shot(page, f"{renderer}-create_boxes_drawn")
        before = len(stack.emu.backend.log)
        page.get_by_role("button", name="Run").first.click()
        (create,) = wait_for_requests(stack.emu, before)
        (boxes,) = create["body"]["parameters"]["bbox_list"]
        (box,) = boxes
        # Exactly the drawn box, moved from the 1008x800 canvas onto the 1000x800 picture...
        b = state[0]
        assert box == [round(b["x"] * 1000 / 1008), b["y"], round((b["x"] + b["width"]) * 1000 / 1008),
                       b["y"] + b["height"]], (box, b)
        # ... which is where the mouse drew it, within what a screen pixel covers.
        tolerance = 1.5 * 1008 / w + 1
        assert all(abs(got - wanted) <= tolerance for got, wanted in zip(box, want)), (box, want)
        deadline = time.monotonic() + 60
        while "CreateBoxes" not in requests.get(host.url + "/history", timeout=10).text:
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.3)
        time.sleep(1)
        shot(page, f"{renderer}-create_boxes_run")
    finally:
        page.close()
