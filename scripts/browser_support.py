"""Driving ComfyUI's real page with Playwright and Debian's Chromium: shared by tests/browser and
scripts/screenshots.py."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hosts  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# What a closed network needs: no background fetches, no sandbox (root), no GPU.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
# The template browser: the dialog around its filter bar (1.48.7, 1.58.1), or its content (1.32.9).
TEMPLATES = '[role="dialog"]:has([data-testid="template-filter-bar"]), [data-testid="template-workflows-content"]'
PACK = "comfyui-wan-image"   # the pack's folder name: the template browser lists its examples under it

# The frontends the browser tests cover: the one the host ComfyUI pins (1.48.7 on 0.33.0, 1.32.9 on 0.3.75:
# scripts/hosts.py; in the host's Python), and the newest the registry serves (scripts/frontend_probe.py;
# docs/development.md "Browser tests"), installed by scripts/setup_browser.sh into a folder of its own,
# never over the pinned one.
PINNED_FRONTEND = hosts.pinned_frontend()
NEWEST_FRONTEND = "1.58.1"
FRONTENDS = (PINNED_FRONTEND, NEWEST_FRONTEND)
# The two node renderers: the classic canvas (litegraph) and "Nodes 2.0" (Vue components).
RENDERERS = ("classic", "nodes2")


def frontend_root(version: str, venv=None):
    """None for the pinned frontend (ComfyUI finds it itself), else the static folder of the other one."""
    from pathlib import Path

    if version == PINNED_FRONTEND:
        return None
    folder = Path(venv or Path(__file__).resolve().parents[1] / ".venv") / "frontends" / version
    root = static_root(folder)
    if not (root / "index.html").exists():
        raise RuntimeError(f"frontend {version} is not installed at {folder}: run scripts/setup_browser.sh")
    return root


VIEWPORT = {"width": 1600, "height": 1000}


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)


def open_page(host, browser, locale: str | None = None, renderer: str = "classic"):
    """A fresh tab on ComfyUI's page, with the node renderer ("classic" or "nodes2") and the language set as
    the settings dialog sets them: in the server's user settings, which the page reads when it loads (set
    before loading, so the page loads once)."""
    import requests

    for setting, value in (("Comfy.VueNodes.Enabled", renderer == "nodes2"), ("Comfy.Locale", locale or "en")):
        requests.post(f"{host.url}/settings/{setting}", json=value, timeout=10).raise_for_status()
    # A browser gets a context of its own per page; a context (one per test module) shares its HTTP cache, so
    # the frontend's scripts load once.
    page = (browser.new_page(viewport=VIEWPORT) if hasattr(browser, "new_context") else browser.new_page())
    page.goto(host.url)
    page.wait_for_function("window.app && window.app.graph && window.app.extensionManager", timeout=90000)
    nudge_window(page)
    got = page.evaluate("[app.extensionManager.setting.get('Comfy.VueNodes.Enabled'), "
                        "app.extensionManager.setting.get('Comfy.Locale')]")
    assert got == [renderer == "nodes2", locale or "en"], got
    return page


def nudge_window(page) -> None:
    """A browser window is resized at least once as it opens and as it is used; a headless page never is,
    and frontend 1.48.7 lays out its selection toolbox (the node's info button among it) only on a resize."""
    size = page.viewport_size
    if size:
        for width in (size["width"] + 1, size["width"]):
            page.set_viewport_size({"width": width, "height": size["height"]})
            page.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


def wait_until_idle(host, timeout: float = 120) -> None:
    """Until ComfyUI has nothing queued or running: a test may end with its run still going, whose events
    would land on the next test's nodes (their ids start at 1 again) and whose work would hold up its Run.
    A queue that never empties is interrupted and cleared, and reported."""
    import requests

    deadline = time.monotonic() + timeout
    while True:
        queue = requests.get(f"{host.url}/queue", timeout=10).json()
        if not queue.get("queue_running") and not queue.get("queue_pending"):
            break
        if time.monotonic() > deadline:
            requests.post(f"{host.url}/interrupt", timeout=10)
            requests.post(f"{host.url}/queue", json={"clear": True}, timeout=10)
            raise AssertionError(f"ComfyUI's queue never emptied (interrupted and cleared now): {queue}")
        time.sleep(0.2)
    time.sleep(0.3)   # the last run's events, sent as its prompt ended, reach the page


def empty_tab(page) -> None:
    """A tab as a test left it, made ready for the next (after wait_until_idle): in front, dialogs and menus
    closed, the side bar closed, nothing selected, no outputs of earlier runs, an empty graph at scale 1."""
    page.bring_to_front()
    for _ in range(2):
        page.keyboard.press("Escape")
    page.evaluate("""() => {
        const sidebar = app.extensionManager.sidebarTab;
        if (sidebar?.activeSidebarTabId) sidebar.toggleSidebarTab(sidebar.activeSidebarTabId);
        app.canvas.deselectAll?.();
        app.clean?.();
        app.graph.clear();
        app.canvas.ds.scale = 1; app.canvas.ds.offset = [0, 0];
        app.canvas.setDirty(true, true);
    }""")
    nudge_window(page)


def close_dialogs(page) -> None:
    """A first visit opens the template browser by itself, a moment after the page loads."""
    from playwright.sync_api import Error

    templates = page.locator(TEMPLATES).first
    try:
        templates.wait_for(state="visible", timeout=5000)
    except Error:
        return
    for _ in range(3):
        # Escape closes it on every frontend tested; older ones also have a close button (the dialog's last
        # button; it has no label to find it by).
        page.keyboard.press("Escape")
        time.sleep(0.3)
        if not templates.is_visible():
            return
        button = page.locator(".p-dialog button, [role=dialog] button").last
        if button.is_visible():
            button.click()
            time.sleep(0.3)
        if not templates.is_visible():
            return


def open_template(page, name: str) -> None:
    """Templates (left bar) -> the pack's examples -> one, loaded into the graph."""
    templates = page.locator(TEMPLATES).first
    if not templates.is_visible():
        page.get_by_text("Templates", exact=True).first.click()
    templates.wait_for(state="visible", timeout=15000)
    # Where ComfyUI's own templates are installed (0.33.0), the browser opens on them and lists each pack's
    # examples under the pack's name (EXTENSIONS); 0.3.75 without them shows the pack's examples at once.
    # Either shows once the dialog has drawn its lists.
    deadline = time.monotonic() + 30
    chose_pack = False
    while True:
        item = templates.get_by_text(name, exact=True)
        if item.count() and item.first.is_visible():
            item.first.click()
            return
        pack = templates.get_by_text(PACK, exact=True)
        if not chose_pack and pack.count() and pack.first.is_visible():
            pack.first.click()
            chose_pack = True
        if time.monotonic() > deadline:
            raise AssertionError(f"the template browser never listed {name}")
        time.sleep(0.2)


def search_nodes(page, text: str) -> None:
    """The node library's search, as a user looks for a node: the library opens as its "n" key opens it
    (the same command; a key press needs the canvas focused, and a click to focus it may land on a node)."""
    # Placeholders by frontend: "Search Nodes" / "搜索节点" (1.32.9), "Search..." / "搜索..." (1.48.7),
    # "Search Nodes..." / "搜索 节点..." (1.58.1).
    box = page.locator("input[placeholder*='Search Nodes'], input[placeholder*='搜索节点'], "
                       "input[placeholder*='搜索 节点'], input[placeholder='Search...'], "
                       "input[placeholder='搜索...']").first
    if not box.is_visible():
        page.evaluate("app.extensionManager.command.execute('Workspace.ToggleSidebarTab.node-library')")
    box.wait_for(state="visible", timeout=10000)
    box.click()
    box.fill(text)
    time.sleep(1.0)


def fresh_seed(page, node_type: str) -> None:
    """ComfyUI answers an identical prompt from its cache: change the seed so the graph really runs."""
    page.evaluate(f"""() => {{ const n = app.graph._nodes.find(n => n.type === '{node_type}');
                               n.widgets.find(w => w.name === 'seed').value = Date.now() % 100000; }}""")


def run_and_wait_for_output(page, prefix: str, timeout_ms: int = 60000) -> None:
    """Run from the page's Run button, then wait until the output picture is shown: as an <img> (Nodes 2.0,
    the queue panel) or drawn on the canvas by its Save Image node (the classic renderer's node.imgs)."""
    shown = f"""() => [...Array.from(document.querySelectorAll('img')),
                       ...app.graph._nodes.flatMap(n => n.imgs || [])]
        .filter(i => i.src.includes('{prefix}') && i.complete && i.naturalWidth > 0).map(i => i.src)"""
    before = page.evaluate(shown)   # an earlier run's picture (a history panel) is not this run's output
    page.get_by_role("button", name="Run").first.click()
    page.wait_for_function(f"before => ({shown})().some(src => !before.includes(src))", arg=before,
                           timeout=timeout_ms)


def static_root(package_target) -> "Path":
    """The folder ComfyUI's --front-end-root wants, inside a `pip install --target` of the frontend."""
    from pathlib import Path

    return Path(package_target) / "comfyui_frontend_package" / "static"
