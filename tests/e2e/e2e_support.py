"""Shared by the end-to-end tests (not in conftest.py: two conftest modules in one session shadow each other)."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import threading
import time
import uuid

import numpy as np
import requests
from PIL import Image

# Recognisable, so a leak anywhere is found by a plain search.
E2E_KEY = "sk-e2e-SECRET-doNotLeak-7f3a9c1b2d4e"


def upload_array(comfy, arr: np.ndarray, mode: str = "RGB") -> str:
    name = f"e2e_{uuid.uuid4().hex[:8]}.png"
    path = comfy.base / name
    Image.fromarray(arr, mode).save(path)
    return comfy.upload_image(path, name)


def saved_pixels(comfy, entry, node_id: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(comfy.output_file(img)).convert("RGB"))
            for img in entry["outputs"][node_id]["images"]]


def served_pixels(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(requests.get(url, timeout=10).content)).convert("RGB"))


def info_of(entry, node_id: str) -> dict:
    return json.loads(entry["outputs"][node_id]["text"][0])


def graph(node_type: str, inputs: dict, *, loads: dict | None = None, text: bool = True) -> dict:
    g: dict = {}
    for name, (load_id, filename) in (loads or {}).items():
        g[load_id] = {"class_type": "LoadImage", "inputs": {"image": filename}}
        inputs[name] = [load_id, 0]
    g["10"] = {"class_type": node_type, "inputs": inputs}
    g["20"] = {"class_type": "SaveImage", "inputs": {"images": ["10", 0], "filename_prefix": f"e2e_{uuid.uuid4().hex[:6]}"}}
    g["30"] = {"class_type": "PreviewAny", "inputs": {"source": ["10", 2]}}
    if text:
        g["31"] = {"class_type": "PreviewAny", "inputs": {"source": ["10", 1]}}
    return g


class Messages:
    """Every message ComfyUI sends to this client's websocket: (arrival time, kind, node, text), the text for a
    node's status line (its progress text)."""

    def __init__(self, host) -> None:
        self.url = host.url.replace("http://", "ws://") + f"/ws?clientId={host.client_id}"
        self.seen: list[tuple[float, str, str | None, str | None]] = []
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)

    async def _listen(self) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(self.url) as ws:
                self._ready.set()
                while not self._stop.is_set():
                    try:
                        msg = await ws.receive(timeout=0.2)
                    except asyncio.TimeoutError:
                        continue
                    now = time.monotonic()
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        data = json.loads(msg.data)
                        body = data.get("data") or {}
                        node = body.get("node") if data["type"] != "progress_state" else ",".join(
                            sorted(n for n, s in (body.get("nodes") or {}).items() if s.get("state") == "running"))
                        self.seen.append((now, data["type"], node, None))
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        (kind,) = struct.unpack(">I", msg.data[:4])
                        if kind == 3:   # progress text: node id length, node id, text
                            (length,) = struct.unpack(">I", msg.data[4:8])
                            self.seen.append((now, "progress_text", msg.data[8:8 + length].decode(),
                                              msg.data[8 + length:].decode()))
                    elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        return

    def status_lines(self, node: str) -> list[str]:
        """What the node showed as its status, in order."""
        return [text for _, kind, n, text in self.seen if kind == "progress_text" and n == node]

    def shows(self, node: str, words: str, timeout: float = 10.0) -> bool:
        """Whether the node's status said `words`, waiting for a line still on its way."""
        deadline = time.monotonic() + timeout
        while not any(words in line for line in self.status_lines(node)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def __enter__(self) -> "Messages":
        self._thread.start()
        assert self._ready.wait(10), "could not open ComfyUI's websocket"
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
