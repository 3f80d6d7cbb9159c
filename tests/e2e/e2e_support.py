"""Shared by the end-to-end tests (not in conftest.py: two conftest modules in one session shadow each other)."""

from __future__ import annotations

import io
import json
import uuid

import numpy as np
import requests
from PIL import Image

from comfy_watch import Messages  # noqa: F401 - the websocket listener, shared with the benchmark

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


