"""A real ComfyUI server with this pack in its custom_nodes, for the demo and the end-to-end tests.

Which ComfyUI (0.33.0 or 0.3.75) and the Python it runs with come from scripts/hosts.py (`WAN_COMFY_HOST`);
scripts/setup_host.sh installs them. This module starts it in a throwaway base directory, talks to it over
HTTP, and converts the UI-format workflows of example_workflows/ into the API format that POST /prompt takes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hosts  # noqa: E402

ROOT = hosts.ROOT
PACK_DIR_NAME = "comfyui-wan-image"


def comfy_dir(version: str | None = None) -> Path:
    return hosts.comfy_dir(hosts.require(version))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyHost:
    def __init__(self, env: dict[str, str] | None = None, *, port: int | None = None,
                 extra_args: list[str] | None = None, base_dir: Path | None = None, frontend: bool = False,
                 front_end_root: Path | str | None = None, version: str | None = None,
                 extra_nodes: list[Path | str] | None = None, open_files: int | None = None) -> None:
        # frontend: serve ComfyUI's real web page (comfyui-frontend-package, see scripts/setup_browser.sh)
        # instead of an empty stand-in page. front_end_root: another frontend's static folder (the newest one
        # tested, see browser_support.FRONTENDS); None is the version the host pins.
        # version: which ComfyUI (scripts/hosts.py); None is the one WAN_COMFY_HOST picks.
        # extra_nodes: more custom node folders (e.g. a test's own local nodes), linked into custom_nodes
        # beside the pack. open_files: the server's limit on open files (`ulimit -n`; macOS's default is 256).
        self.version = hosts.require(version)
        self.frontend = frontend or front_end_root is not None
        self.front_end_root = str(front_end_root) if front_end_root else None
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env or {}
        self.extra_args = extra_args or []
        self._own_base = base_dir is None
        self.base = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="wan-comfy-"))
        self.proc: subprocess.Popen | None = None
        # Several servers may share one base directory (one ComfyUI folder, one server per GPU): one log each.
        self.log_path = self.base / ("server.log" if self._own_base else f"server-{self.port}.log")
        self.client_id = uuid.uuid4().hex
        self.extra_nodes = [Path(p).resolve() for p in (extra_nodes or [])]
        self.open_files = open_files

    # ---- lifecycle ---------------------------------------------------------------------------------------

    def prepare(self) -> None:
        (self.base / "custom_nodes").mkdir(parents=True, exist_ok=True)
        (self.base / "web").mkdir(exist_ok=True)
        (self.base / "input").mkdir(exist_ok=True)
        index = self.base / "web" / "index.html"
        if not index.exists():
            index.write_text("<!doctype html><title>ComfyUI (no frontend)</title>")
        link = self.base / "custom_nodes" / PACK_DIR_NAME
        if not link.exists():
            link.symlink_to(ROOT, target_is_directory=True)
        for folder in self.extra_nodes:
            extra = self.base / "custom_nodes" / folder.name
            if not extra.exists():
                extra.symlink_to(folder, target_is_directory=True)

    def start(self, timeout: float = 300.0) -> "ComfyHost":
        return self.launch().wait_ready(timeout)

    def launch(self) -> "ComfyHost":
        """Starts the server process without waiting for it (see start_together)."""
        self.prepare()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "WAN_"))}
        env.update(self.env)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        # ComfyUI must never see our repo root on its path: its nodes.py and our nodes/ would clash.
        env.pop("PYTHONPATH", None)
        args = [str(hosts.python(self.version)), str(hosts.comfy_dir(self.version) / "main.py"), "--cpu",
                "--listen", "127.0.0.1", "--port", str(self.port), "--base-directory", str(self.base),
                *(["--front-end-root", self.front_end_root] if self.front_end_root else
                  [] if self.frontend else ["--front-end-root", str(self.base / "web")]),
                "--database-url", "sqlite:///:memory:", "--disable-auto-launch", *self.extra_args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, cwd=str(self.base), env=env, stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=self._limits if self.open_files else None)
        return self

    def wait_ready(self, timeout: float = 300.0) -> "ComfyHost":
        """Until the pack's nodes are served. The timeout is generous: 0.33.0 takes about 15 s on two idle
        cores, several times that on a loaded machine."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                if requests.get(self.url + "/object_info/WanImageEdit", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"ComfyUI did not come up in {timeout:.0f} s:\n{self.log()[-4000:]}")

    def _limits(self) -> None:   # in the child, before ComfyUI starts
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, hard))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self, env: dict[str, str] | None = None) -> "ComfyHost":
        """Stopped (SIGTERM, as a user's Ctrl+C) and started again on the same base directory, with `env`
        instead of its environment if given."""
        self.stop()
        if env is not None:
            self.env = env
        return self.start()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self) -> None:
        """Stopped, and its own base directory removed unless WAN_KEEP_TEST_DIRS is set (to read a failed
        test's journal, ledger and server log afterwards)."""
        self.stop()
        if self._own_base and not os.environ.get("WAN_KEEP_TEST_DIRS"):
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "ComfyHost":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def plain_log(self) -> str:
        """The log as 0.3.75 writes it: newer ComfyUI (0.33.0) starts each line with a coloured level,
        `\\x1b[32m[INFO]\\x1b[0m `, also in a file."""
        return plain_log(self.log())

    def import_seconds(self) -> float | None:
        """The pack's line in ComfyUI's "Import times for custom nodes" (None: not there)."""
        match = re.search(rf"^\s*([\d.]+) seconds.*{PACK_DIR_NAME}\s*$", self.plain_log(), re.M)
        return float(match.group(1)) if match else None

    # ---- HTTP API ----------------------------------------------------------------------------------------

    def object_info(self) -> dict[str, Any]:
        return requests.get(self.url + "/object_info", timeout=30).json()

    def upload_image(self, path: Path, name: str | None = None) -> str:
        with open(path, "rb") as f:
            r = requests.post(self.url + "/upload/image", files={"image": (name or path.name, f, "image/png")},
                              data={"overwrite": "true"}, timeout=30)
        r.raise_for_status()
        return r.json()["name"]

    def queue(self, graph: dict[str, Any], extra_data: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"prompt": graph, "client_id": self.client_id}
        if extra_data:
            body["extra_data"] = extra_data
        r = requests.post(self.url + "/prompt", json=body, timeout=30)
        if r.status_code != 200:
            raise PromptRejected(r.status_code, r.json() if r.headers.get("content-type", "").startswith(
                "application/json") else r.text)
        return r.json()["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = requests.get(f"{self.url}/history/{prompt_id}", timeout=10)
            entry = r.json().get(prompt_id)
            if entry and entry.get("status", {}).get("status_str") in ("success", "error"):
                return entry
            time.sleep(0.1)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout:.0f} s")

    def run(self, graph: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        return self.wait(self.queue(graph), timeout)

    def interrupt(self) -> None:
        requests.post(self.url + "/interrupt", timeout=10)

    def output_file(self, image: dict[str, Any]) -> Path:
        folder = {"output": "output", "temp": "temp", "input": "input"}[image.get("type", "output")]
        return self.base / folder / image.get("subfolder", "") / image["filename"]


def plain_log(text: str) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return re.sub(r"^\[(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\] ?", "", text, flags=re.M)


def start_together(*servers: ComfyHost) -> tuple[ComfyHost, ...]:
    """Starts several servers at once (most of a start is importing; two cores do two at a time)."""
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


class PromptRejected(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"POST /prompt answered {status}: {json.dumps(body)[:2000]}")
        self.status = status
        self.body = body


def execution_error(entry: dict[str, Any]) -> dict[str, Any] | None:
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return data
    return None


# ---- UI workflow -> API prompt ------------------------------------------------------------------------------

_WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def _is_widget(spec: list[Any]) -> bool:
    kind = spec[0]
    if isinstance(kind, list):
        return True
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return kind in _WIDGET_TYPES and not options.get("forceInput")


def ui_to_api(workflow: dict[str, Any], object_info: dict[str, Any]) -> dict[str, Any]:
    """Convert a workflow as the UI saves it (nodes, links, widgets_values) to POST /prompt's format.

    Widget values are matched to inputs in the order of the node's schema (input_order), skipping the
    extra "control after generate" value the UI stores after a seed.
    """
    links = {link[0]: link for link in workflow.get("links", [])}
    prompt: dict[str, Any] = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) in (2, 4):  # muted or bypassed
            continue
        class_type = node["type"]
        info = object_info.get(class_type)
        if info is None:
            raise KeyError(f"node type {class_type} is not installed in this ComfyUI")
        required = info["input"].get("required", {})
        optional = info["input"].get("optional", {})
        order = info.get("input_order", {})
        names = list(order.get("required", required)) + list(order.get("optional", optional))
        specs = {**required, **optional}
        linked = {i["name"]: i.get("link") for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        inputs: dict[str, Any] = {}
        v = 0
        for name in names:
            spec = specs[name]
            if _is_widget(spec):
                if v < len(values):
                    if name not in linked:
                        inputs[name] = values[v]
                    v += 1
                    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                    if options.get("image_upload") and v < len(values) and values[v] == "image":
                        v += 1  # the upload button's value
                    if options.get("control_after_generate") or (name in ("seed", "noise_seed") and
                                                                 v < len(values) and values[v] in
                                                                 ("fixed", "increment", "decrement", "randomize")):
                        v += 1
            if name in linked:
                link = links[linked[name]]
                inputs[name] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": class_type, "inputs": inputs,
                                   "_meta": {"title": node.get("title") or class_type}}
    return prompt
