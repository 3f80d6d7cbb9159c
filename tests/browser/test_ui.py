"""ComfyUI's own frontend in headless Chromium, driven by Playwright, as a user drives it: node search, the
template browser, a run showing its output, drawing boxes (on a Load Image picture, on the third picture of
a batch plus a later input, on a picture made by another Wan node), the help page and the Chinese names.

Every test runs on two frontends (1.32.9, which ComfyUI 0.3.75 pins, and the newest the registry serves that
runs on it: browser_support.FRONTENDS) and in both node renderers (the classic canvas and "Nodes 2.0"). One
ComfyUI and one browser per frontend (module-scoped), one tab per renderer, emptied between tests (a page
load costs 6-9 s here: a tab per test made page loads most of this suite's time); a test that fails closes
its tab, so the next one starts on a fresh page. Screenshots of every step go to
test_artifacts/browser/<frontend>-<renderer>-<step>.png."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
for p in (ROOT, ROOT / "scripts"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from api.emulator import EmulatorServer, Settings  # noqa: E402
from api.request.pictures import number_pictures  # noqa: E402
from comfy_host import ComfyHost  # noqa: E402

playwright = pytest.importorskip("playwright.sync_api", reason="run scripts/setup_browser.sh (make test does)")
from browser_support import (  # noqa: E402
    FRONTENDS, RENDERERS, VIEWPORT, close_dialogs, empty_tab, frontend_root, launch, nudge_window, open_page,
    open_template, run_and_wait_for_output, search_nodes, wait_until_idle,
)

ARTIFACTS = ROOT / "test_artifacts" / "browser"
KEY = "sk-browser-fake-key-00k1"
ROOM, CAR = (1000, 800), (768, 512)  # example_workflows/inputs/wan_example_room.png, wan_example_car.png


@dataclass
class Stack:
    emu: EmulatorServer
    host: ComfyHost
    browser: object
    frontend: str
    tabs: dict = field(default_factory=dict)   # renderer -> its open tab


@pytest.fixture(scope="module", params=FRONTENDS)
def stack(request):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    emu = EmulatorServer(settings=Settings(queue_time=0.2, service_time=0.5, api_keys=[KEY])).start()
    host = ComfyHost({"DASHSCOPE_HTTP_BASE_URL": emu.base_url, "DASHSCOPE_API_KEY": KEY}, frontend=True,
                     front_end_root=frontend_root(request.param)).start()
    try:
        for picture in (ROOT / "example_workflows" / "inputs").glob("*.png"):
            host.upload_image(picture)
        with playwright.sync_playwright() as p:
            browser = launch(p)
            # One context: its pages share the HTTP cache (the frontend's scripts load once) and local storage.
            context = browser.new_context(viewport=VIEWPORT)
            # ... but each page starts as a fresh tab would: no workflow restored from the previous test's.
            context.add_init_script("try { localStorage.clear(); sessionStorage.clear(); } catch (e) {}")
            # The first visit opens the template browser by itself (and marks the tutorial done): get it
            # over with, so the tests' pages open on the graph.
            first = open_page(host, context)
            close_dialogs(first)
            first.close()   # (a template browser that opens late must not land in a test's tab)
            yield Stack(emu, host, context, request.param)
            browser.close()
    finally:
        host.cleanup()
        emu.stop()


@pytest.fixture(params=RENDERERS)
def ui(stack, request):
    """The renderer's tab, on an empty graph; `ui.shot(name)` saves a screenshot."""
    wait_until_idle(stack.host)
    page = stack.tabs.get(request.param)
    if page is not None and not page.is_closed():
        try:
            empty_tab(page)
        except Exception:  # noqa: BLE001 - a tab that cannot be emptied is replaced, never handed on
            page.close()
    if page is None or page.is_closed():
        page = stack.tabs[request.param] = open_page(stack.host, stack.browser, renderer=request.param)
    page.renderer = request.param
    page.shot = lambda name: page.screenshot(path=str(ARTIFACTS / f"{stack.frontend}-{request.param}-{name}.png"))
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:   # whatever it left open must not decide the next test
        page.close()


def billable(emu, since: int = 0) -> list[dict]:
    return [e for e in emu.backend.log[since:] if e.get("billable")]


def wait_for_requests(emu, since: int, count: int = 1, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(billable(emu, since)) < count:
        assert time.monotonic() < deadline, "the run never reached the emulator"
        time.sleep(0.2)
    return billable(emu, since)


def history_ids(host) -> set[str]:
    return set(requests.get(host.url + "/history", timeout=10).json())


def wait_for_saved(host, prefix: str, known: set[str], timeout: float = 60) -> None:
    """Until a prompt not in `known` has saved a picture named prefix* (see /history)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = requests.get(host.url + "/history", timeout=10).json()
        for entry in (history[k] for k in history if k not in known):
            for output in entry.get("outputs", {}).values():
                if any(i.get("filename", "").startswith(prefix) for i in output.get("images", [])):
                    return
        time.sleep(0.3)
    raise AssertionError(f"no picture {prefix}* was saved")


def build_graph(page, nodes: list, links: list) -> None:
    """nodes: [(key, type, {widget: value})]; links: [(from key, output slot, to key, input name)]."""
    page.evaluate("""([nodes, links]) => {
        const g = app.graph; g.clear();
        const made = {};
        nodes.forEach(([key, type, widgets], i) => {
            const n = LiteGraph.createNode(type);
            n.pos = [60 + 380 * (i % 3), 60 + 420 * Math.floor(i / 3)];
            g.add(n);
            for (const [name, value] of Object.entries(widgets)) {
                const w = n.widgets.find(w => w.name === name); w.value = value; w.callback?.(value);
            }
            // Seeds stay as set (a new node would randomise them after each run and so run again).
            for (const w of n.widgets || []) if (w.name === 'control_after_generate') w.value = 'fixed';
            made[key] = n;
        });
        for (const [a, slot, b, input] of links) {
            made[a].connect(slot, made[b], made[b].inputs.findIndex(i => i.name === input));
        }
        app.canvas.setDirty(true, true);
    }""", [nodes, links])


def show_editor(page, selector: str = ".wan-bbox-canvas") -> tuple[float, float, float, float]:
    """Make the Wan Box Edit node large and scroll the canvas so its editor is on screen; its rectangle."""
    page.evaluate("""() => {
        const node = app.graph._nodes.find(n => n.type === 'WanBBox');
        node.setSize([900, Math.max(node.size[1], 1250)]);
        app.canvas.ds.scale = 1;
        app.canvas.setDirty(true, true);
    }""")
    for _ in range(3):  # the Vue renderer lays out a frame later: move, measure again
        time.sleep(0.4)
        page.evaluate(f"""() => {{
            const r = document.querySelector('{selector}').getBoundingClientRect();
            const ds = app.canvas.ds;
            ds.offset[0] -= (r.x - 360) / ds.scale; ds.offset[1] -= (r.y - 280) / ds.scale;
            app.canvas.setDirty(true, true);
        }}""")
    time.sleep(0.4)
    return rect_of(page, selector)


def rect_of(page, selector: str = ".wan-bbox-canvas") -> tuple[float, float, float, float]:
    """Where an element is on screen now (measure just before drawing: the editor's text above the picture
    changes with the picture shown)."""
    return tuple(page.evaluate(f"(() => {{ const r = document.querySelector('{selector}').getBoundingClientRect();"
                               " return [r.x, r.y, r.width, r.height]; })()"))


def drag_box(page, rect, picture_size, box) -> float:
    """Drag out `box` (picture pixels) with the mouse on the editor canvas at `rect`; returns the tolerance a
    screen pixel allows, in picture pixels."""
    x, y, w, h = rect
    pw, ph = picture_size
    scale = min(w / pw, h / ph)
    assert scale > 0.2, f"the editor is too small on screen to draw on ({w}x{h})"
    ox, oy = (w - pw * scale) / 2, (h - ph * scale) / 2

    def screen(px, py):
        return x + ox + px * scale, y + oy + py * scale

    page.mouse.move(*screen(box[0], box[1]))
    page.mouse.down()
    page.mouse.move(*screen((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), steps=5)
    page.mouse.move(*screen(box[2], box[3]), steps=5)
    page.mouse.up()
    return 1.5 / scale + 1


def near(got, want, tolerance) -> bool:
    return len(got) == 4 and all(abs(a - b) <= tolerance for a, b in zip(got, want))


def boxes_widget(page) -> str:
    return page.evaluate("app.graph._nodes.find(n => n.type === 'WanBBox').widgets.find(w => w.name === 'boxes').value")


def fresh_seed(page, node_type: str) -> None:
    page.evaluate(f"""() => {{ for (const n of app.graph._nodes.filter(n => n.type === '{node_type}'))
                                  n.widgets.find(w => w.name === 'seed').value = Math.floor(Math.random() * 1e9); }}""")


def run(page) -> None:
    page.get_by_role("button", name="Run").first.click()


# ---- the tests ------------------------------------------------------------------------------------------------

def test_the_nodes_appear_in_the_node_search(stack, ui):
    search_nodes(ui, "Wan Box Edit")
    ui.shot("node_search")
    assert ui.get_by_text("Wan Box Edit").first.is_visible()


def test_an_example_loads_from_the_template_browser_and_its_run_shows_the_output(stack, ui):
    # A new user sees the template browser; the pack's examples are listed under its name.
    open_template(ui, "wan_text_to_image")
    ui.wait_for_function("app.graph._nodes.some(n => n.type === 'WanTextToImage')", timeout=30000)
    ui.shot("template_loaded")
    before = len(stack.emu.backend.log)
    fresh_seed(ui, "WanTextToImage")
    run_and_wait_for_output(ui, "WanTextToImage_")
    ui.shot("template_run_output")
    assert billable(stack.emu, before), "the run never reached the emulator"


def test_a_box_drawn_with_the_mouse_reaches_the_service(stack, ui):
    open_template(ui, "wan_bbox")
    ui.wait_for_function("app.graph._nodes.some(n => n.type === 'WanBBox')", timeout=30000)
    ui.evaluate("""() => { const node = app.graph._nodes.find(n => n.type === 'WanBBox');
                           node.widgets.find(w => w.name === 'boxes').value = '';
                           node.__wanBoxEditor.refresh(); }""")
    fresh_seed(ui, "WanBBox")
    show_editor(ui)
    ui.wait_for_function("document.querySelector('.wan-bbox-status').textContent.includes('1000x800')", timeout=20000)
    tolerance = drag_box(ui, rect_of(ui), ROOM, [100, 150, 400, 500])
    ui.shot("box_drawn")
    assert boxes_widget(ui).startswith("[[[")
    before, known = len(stack.emu.backend.log), history_ids(stack.host)
    run(ui)
    sent = wait_for_requests(stack.emu, before)[0]["body"]["parameters"]["bbox_list"]
    assert len(sent) == 2 and sent[1] == [], sent
    (box,) = sent[0]
    assert near(box, [100, 150, 400, 500], tolerance), box
    wait_for_saved(stack.host, "WanBBox_", known)
    # The whole graph, the output too (the enlarged Wan node back to its width, so it does not cover it).
    ui.evaluate("""() => { const n = app.graph._nodes.find(n => n.type === 'WanBBox'); n.setSize([440, n.size[1]]);
                           app.extensionManager.command.execute('Comfy.Canvas.FitView'); }""")
    time.sleep(1.5)  # the page shows the saved picture a moment later
    ui.shot("box_run_output")


def test_boxes_drawn_on_the_third_picture_of_a_batch_and_a_gap_reach_it(stack, ui):
    """A batch of 2 in `image` (made by a core node, so only a preview shows it) and `image_3` (image_2
    empty): the editor numbers them 1, 2, 3 as the service does, and a box drawn on the third picture is
    the third entry of bbox_list. The preview pass sends nothing to the service."""
    build_graph(ui, [("room", "LoadImage", {"image": "wan_example_room.png"}),
                     ("batch", "RepeatImageBatch", {"amount": 2}),
                     ("car", "LoadImage", {"image": "wan_example_car.png"}),
                     ("wan", "WanBBox", {"prompt": "a red car", "size": "1K"}),
                     ("save", "SaveImage", {"filename_prefix": "WanBBoxBatch"})],
                [("room", 0, "batch", "image"), ("batch", 0, "wan", "image"), ("car", 0, "wan", "image_3"),
                 ("wan", 0, "save", "images")])
    fresh_seed(ui, "WanBBox")
    show_editor(ui)
    source = ui.locator(".wan-bbox-source").first
    assert "Preview inputs" in source.inner_text()  # the node says why it shows no picture yet
    ui.shot("batch_before_preview")
    before = len(stack.emu.backend.log)
    ui.locator(".wan-bbox-preview").first.click()
    ui.wait_for_function("document.querySelectorAll('.wan-bbox-tab').length === 3", timeout=60000)
    tabs = ui.locator(".wan-bbox-tab").all_inner_texts()
    expected = number_pictures([("image", 2), ("image_2", None), ("image_3", 1)])
    assert tabs == [f"{p['picture']}: {p['label']}" for p in expected]
    ui.locator(".wan-bbox-tab").nth(2).click()
    ui.wait_for_function("document.querySelector('.wan-bbox-status').textContent.includes('picture 3: 768x512')",
                         timeout=20000)
    assert "from Load Image" in source.inner_text()
    tolerance = drag_box(ui, rect_of(ui), CAR, [200, 120, 560, 400])
    ui.locator(".wan-bbox-tab").nth(0).click()
    ui.wait_for_function("document.querySelector('.wan-bbox-status').textContent.includes('picture 1: 1000x800')",
                         timeout=20000)
    assert "previewed (nothing sent)" in source.inner_text()
    ui.shot("batch_previewed")
    assert billable(stack.emu, before) == [], "the preview pass reached the service"
    assert json.loads(boxes_widget(ui))[:2] == [[], []]
    run(ui)
    request = wait_for_requests(stack.emu, before)[0]["body"]
    sent = request["parameters"]["bbox_list"]
    assert sent[:2] == [[], []] and len(sent) == 3, sent
    (box,) = sent[2]
    assert near(box, [200, 120, 560, 400], tolerance), box


def test_a_box_drawn_on_a_picture_made_by_another_wan_node_reaches_the_service(stack, ui):
    """The picture comes from Wan Image Edit: no preview (that node is billed), so the first run sends no box
    and the node then shows the picture it sent. A box drawn on it, in the large editor (the dialog), is in
    the second request."""
    build_graph(ui, [("room", "LoadImage", {"image": "wan_example_room.png"}),
                     ("edit", "WanImageEdit", {"prompt": "make it night", "size": "1K"}),
                     ("wan", "WanBBox", {"prompt": "a lamp in the box", "size": "1K"}),
                     ("save", "SaveImage", {"filename_prefix": "WanBBoxChained"})],
                [("room", 0, "edit", "image"), ("edit", 0, "wan", "image"), ("wan", 0, "save", "images")])
    fresh_seed(ui, "WanImageEdit")
    fresh_seed(ui, "WanBBox")
    show_editor(ui)
    source = ui.locator(".wan-bbox-source").first
    assert "billed Wan node" in source.inner_text()
    before = len(stack.emu.backend.log)
    ui.locator(".wan-bbox-preview").first.click()  # refuses to run the billed node
    ui.wait_for_function("document.querySelector('.wan-bbox-source').textContent.includes('not previewed')",
                         timeout=20000)
    assert billable(stack.emu, before) == []
    run(ui)
    first = wait_for_requests(stack.emu, before, 2)
    assert [e["body"]["model"] for e in first] == ["wan2.7-image", "wan2.7-image"]
    ui.wait_for_function("document.querySelectorAll('.wan-bbox-tab').length === 1 && "
                         "document.querySelector('.wan-bbox-source').textContent.includes('as sent by the last run')",
                         timeout=60000)
    ui.shot("chained_after_run")
    ui.locator(".wan-bbox-enlarge").first.click()
    dialog = ".wan-bbox-dialog .wan-bbox-canvas"
    ui.wait_for_function("document.querySelector('.wan-bbox-dialog .wan-bbox-status')?.textContent.includes('px')",
                         timeout=20000)
    size = ui.evaluate("(() => { const p = app.graph._nodes.find(n => n.type === 'WanBBox').__wanDialogEditor"
                       ".picture(); return [p.width, p.height]; })()")
    rect = rect_of(ui, dialog)
    want = [round(size[0] * 0.2), round(size[1] * 0.3), round(size[0] * 0.6), round(size[1] * 0.7)]
    tolerance = drag_box(ui, rect, size, want)
    ui.shot("chained_dialog_box")
    ui.locator(".wan-bbox-dialog-close").click()
    assert json.loads(boxes_widget(ui)) == [[want]] or near(json.loads(boxes_widget(ui))[0][0], want, tolerance)
    fresh_seed(ui, "WanBBox")  # the Wan Image Edit upstream is unchanged: ComfyUI reuses its result
    second = len(stack.emu.backend.log)
    run(ui)
    (request,) = wait_for_requests(stack.emu, second)  # only Wan Box Edit ran again
    (box,) = request["body"]["parameters"]["bbox_list"][0]
    assert near(box, want, tolerance), box


def test_the_picture_numbering_in_the_page_is_the_python_rule(stack, ui):
    """The module the editor imports, as the page serves it, numbers like api/request/pictures.py."""
    cases = [[["image", 2], ["image_2", None], ["image_3", 1]], [["image", None], ["image_2", 3]], [["image", 1]]]
    got = ui.evaluate("""async (cases) => {
        const { numberPictures } = await import('/extensions/comfyui-wan-image/wan_pictures.js');
        return cases.map(numberPictures); }""", cases)
    assert got == [number_pictures([tuple(pair) for pair in case]) for case in cases]


def open_help(page, node_type: str) -> None:
    """Select the node on the canvas and press the selection toolbox's info button, as a user does.
    Frontend 1.48.7 sometimes draws the toolbox with its "more options" button alone after a selection;
    selecting the node again (as a user would, seeing no info button) draws the whole toolbox."""
    info = page.locator('[data-testid="info-button"]').first
    for _ in range(5):
        page.evaluate(f"""() => {{ const n = app.graph._nodes.find(n => n.type === '{node_type}');
            const ds = app.canvas.ds; ds.scale = 0.6; ds.offset = [-n.pos[0] + 500, -n.pos[1] + 300];
            app.canvas.deselectAll?.(); app.canvas.selectNode(n); app.canvas.setDirty(true, true); }}""")
        nudge_window(page)
        try:
            info.wait_for(state="visible", timeout=3000)
            break
        except playwright.Error:
            page.evaluate("app.canvas.deselectAll?.(); app.canvas.setDirty(true, true)")
            time.sleep(0.5)
    info.click()


def test_the_help_page_opens_from_the_node(stack, ui):
    build_graph(ui, [("wan", "WanBBox", {})], [])
    open_help(ui, "WanBBox")
    # Lines of web/docs/WanBBox/en.md (not the node's one-line description).
    for line in ("Or from masks", "Preview inputs"):
        ui.get_by_text(line).first.wait_for(state="visible", timeout=15000)
    ui.shot("help_page")


def test_the_zh_locale_shows_the_chinese_names_and_help(stack, ui):
    page = open_page(stack.host, stack.browser, locale="zh", renderer=ui.renderer)
    try:
        search_nodes(page, "万相")
        page.screenshot(path=str(ARTIFACTS / f"{stack.frontend}-{ui.renderer}-zh_node_search.png"))
        for name in ("万相 框选编辑", "万相 图像编辑", "万相 颜色主题"):
            assert page.get_by_text(name).first.is_visible(), name
        page.evaluate("app.extensionManager.command.execute('Workspace.ToggleSidebarTab.node-library')")  # closed
        build_graph(page, [("wan", "WanBBox", {})], [])
        # The node itself carries the Chinese name (drawn on the canvas, or a DOM title in Nodes 2.0).
        assert page.evaluate("app.graph._nodes[0].title") == "万相 框选编辑"
        if ui.renderer == "nodes2":
            page.get_by_text("万相 框选编辑").first.wait_for(state="visible", timeout=10000)
        # The box editor speaks Chinese too.
        assert page.locator(".wan-bbox-preview").first.inner_text() == "预览输入"
        open_help(page, "WanBBox")
        page.get_by_text("或用遮罩").first.wait_for(state="visible", timeout=15000)
        page.screenshot(path=str(ARTIFACTS / f"{stack.frontend}-{ui.renderer}-zh_help.png"))
    finally:
        page.close()
