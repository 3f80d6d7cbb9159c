"""ComfyUI tensors <-> the pictures `api/` works with.

IMAGE is [B, H, W, C] float 0-1; MASK is [B, H, W] (or [H, W]) float 0-1. Each IMAGE input may carry a
batch; batches expand in order (image's batch, then image_2's, ...), and inputs may differ in size, which a
single ComfyUI batch cannot.

Returned pictures of different sizes cannot share one IMAGE batch. They are rare (one request returns one
size), and a graph should not crash over them: every picture is resized (Lanczos) to the size of the first
one, and the info output lists each picture's original size; the originals stay at their result URLs.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from ..api import number_pictures


def image_batches(named: Sequence[tuple[str, Any]]) -> list[tuple[str, np.ndarray]]:
    """[(input name, IMAGE or None)] -> [(label, HxWxC float32)], numbered by api.request.pictures.number_pictures
    (the rule the box editor shares): batches expanded in order, unconnected inputs skipped."""
    arrays: dict[str, np.ndarray] = {}
    counts: list[tuple[str, int | None]] = []
    for name, tensor in named:
        if tensor is None:
            counts.append((name, None))
            continue
        arr = tensor.detach().cpu().float().numpy() if isinstance(tensor, torch.Tensor) else np.asarray(tensor)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4:
            from ..api import WanInputError

            raise WanInputError(name, f"has shape {tuple(arr.shape)}; an IMAGE is [batch, height, width, channels]")
        arrays[name] = arr
        counts.append((name, arr.shape[0]))
    return [(p["label"], arrays[p["input"]][p["index"]]) for p in number_pictures(counts)]


def mask_batch(tensor: Any) -> np.ndarray | None:
    if tensor is None:
        return None
    arr = tensor.detach().cpu().float().numpy() if isinstance(tensor, torch.Tensor) else np.asarray(tensor, np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    return arr


# What `images` holds when an interleaved answer is text alone (the one answer without a picture that is a
# result; any other raises). Not a batch of 0: most nodes downstream (Save Image, scaling, VAE Encode) fail on
# one. One black 64x64 RGB picture (RGB: many nodes refuse an alpha channel; 64: a multiple of 8 for latents);
# `info` says `"images": 0, "empty_picture_marker": true`.
EMPTY_PICTURE_MARKER_SIDE = 64


def empty_picture_marker() -> torch.Tensor:
    return torch.zeros((1, EMPTY_PICTURE_MARKER_SIDE, EMPTY_PICTURE_MARKER_SIDE, 3), dtype=torch.float32)


def to_image_tensor(pictures: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """HxWx3 uint8 pictures (at least one) -> one IMAGE batch, and the original (width, height) of each."""
    if not pictures:
        raise ValueError("no picture to make an IMAGE of")
    sizes = [(p.shape[1], p.shape[0]) for p in pictures]
    target = sizes[0]
    frames = [pic if size == target else np.asarray(Image.fromarray(pic).resize(target, Image.Resampling.LANCZOS))
              for pic, size in zip(pictures, sizes)]
    # Straight into one float32 array, bit-identical to x / 255: measured here, 2-4 ms for a 1024^2 picture
    # against 7-14 ms through torch, mostly page faults on fresh memory (numpy asks Linux for huge pages).
    batch = np.empty((len(frames),) + frames[0].shape, np.float32)
    for out, frame in zip(batch, frames):
        if frame.dtype != np.uint8 or frame.shape != out.shape:   # np.divide would broadcast a 1-channel frame
            raise ValueError(f"a picture of {frame.shape} {frame.dtype} among {out.shape} uint8 ones")
        np.divide(frame, np.float32(255.0), out=out)
    return torch.from_numpy(batch), sizes


# ---- masks -> boxes ---------------------------------------------------------------------------------------

def mask_regions(mask: np.ndarray, threshold: float = 0.5, min_fraction: float = 1e-4) -> list[list[int]]:
    """Bounding boxes [x1, y1, x2, y2] (x2/y2 exclusive, in mask pixels) of the mask's separate regions,
    largest first. Regions smaller than `min_fraction` of the picture are specks and are ignored.

    Connected components (8-connected) over row runs, with union-find: cheap for the masks segmentation
    models produce (few regions, long runs), and numpy-only.
    """
    binary = np.asarray(mask) > threshold
    if not binary.any():
        return []
    height, width = binary.shape
    parent: list[int] = []

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    runs: list[tuple[int, int, int, int]] = []  # (row, start, end_exclusive, label)
    prev: list[tuple[int, int, int]] = []        # runs of the previous row: (start, end, label)
    padded = np.zeros(width + 2, dtype=np.int8)
    for y in range(height):
        row = binary[y]
        if not row.any():
            prev = []
            continue
        padded[1:-1] = row
        edges = np.flatnonzero(np.diff(padded))
        starts, ends = edges[0::2], edges[1::2]
        current = []
        j = 0
        for s, e in zip(starts.tolist(), ends.tolist()):
            label = -1
            # 8-connectivity: a run touches a previous run that overlaps [s-1, e] (e exclusive -> e+1).
            while j < len(prev) and prev[j][1] < s:
                j += 1
            k = j
            while k < len(prev) and prev[k][0] <= e:
                other = find(prev[k][2])
                if label == -1:
                    label = other
                elif other != label:
                    parent[other] = label
                k += 1
            if label == -1:
                label = len(parent)
                parent.append(label)
            current.append((s, e, label))
            runs.append((y, s, e, label))
        prev = current
    boxes: dict[int, list[int]] = {}
    for y, s, e, label in runs:
        root = find(label)
        box = boxes.get(root)
        if box is None:
            boxes[root] = [s, y, e, y + 1, e - s]
        else:
            box[0] = min(box[0], s)
            box[1] = min(box[1], y)
            box[2] = max(box[2], e)
            box[3] = max(box[3], y + 1)
            box[4] += e - s
    min_area = min_fraction * height * width
    regions = sorted((b for b in boxes.values() if b[4] >= min_area), key=lambda b: -b[4])
    return [b[:4] for b in regions]
