"""The shared execute path of the Wan nodes: pictures encoded, the request built, sent through the runner, and
the answer turned into the nodes' outputs (`images`, `text`, `info`) and their status line.

An answer with no picture is an error (naming the model and the request, saying what was billed), except
interleaved output that came back as text alone: then `images` is the empty-picture marker (nodes/tensors.py)
and `info` says so.
"""

from __future__ import annotations

import json
from typing import Any

from comfy_api.latest import io

from . import progress, runner
from ..api import (
    Params, WanInputError, WanRequest, build_request, describe, encode_images, get_model, no_picture_error,
    node_palette, text_only,
)
from .tensors import empty_picture_marker, image_batches, to_image_tensor


def encode_inputs(model: str, named: list[tuple[str, Any]], input_format: str) -> tuple[list, list[str]]:
    spec = get_model(model)  # an unknown model fails here, clearly
    pictures = image_batches(named)
    limit = spec.max_input_images
    if len(pictures) > limit:
        raise WanInputError("image", f"{len(pictures)} pictures in all (batches count one per picture); "
                                     f"{model} takes at most {limit}")
    encoded = encode_images(pictures, spec.image, input_format or "auto")
    return encoded, [label for label, _ in pictures]


def prepare(model: str, prompt: str, named: list[tuple[str, Any]], input_format: str, mode: str,
            params: Params) -> tuple[WanRequest, list, list[str]]:
    """Encode the pictures and build the request: slow for big pictures, so nodes run it in a worker thread."""
    inputs, labels = encode_inputs(model, named, input_format)
    return build(model, prompt, inputs, labels, mode, params), inputs, labels


def build(model: str, prompt: str, images: list, labels: list[str], mode: str, params: Params) -> WanRequest:
    try:
        return build_request(model, prompt, images, mode=mode, params=params)
    except WanInputError as exc:
        # api/ numbers pictures as the service sees them ("image 3"); name the node input they came from.
        if exc.param.startswith("image ") and exc.param[6:].isdigit():
            index = int(exc.param[6:]) - 1
            if 0 <= index < len(labels):
                raise WanInputError(labels[index], exc.limit) from None
        raise


async def send(node_cls: Any, req: WanRequest, *, region: str, transport: str,
               inputs: list, labels: list[str], extra_info: dict[str, Any] | None = None) -> io.NodeOutput:
    node_id = getattr(node_cls.hidden, "unique_id", None)
    # A stream cut after some pictures comes back as a result with `incomplete` set: they are paid for.
    result = await runner.run(node_id, req, region=region or "default", transport=transport or "auto")
    info = describe(result)
    info["inputs"] = [{"input": label, "sent_width": img.width, "sent_height": img.height,
                       "source_size": list(img.source_size or ()), "bytes": img.nbytes,
                       "format": img.value[5:img.value.find(";")] if img.value.startswith("data:") else "url"}
                      for label, img in zip(labels, inputs)]
    if extra_info:
        info.update(extra_info)
    images = await pictures_of(node_id, result, info)
    progress.show(node_id, summary_line(req.model, result, info, result.incomplete))
    return io.NodeOutput(images, result.text, json.dumps(info, ensure_ascii=False, indent=1))


async def pictures_of(node_id: str | None, result: Any, info: dict[str, Any]) -> Any:
    """The answer's pictures as one IMAGE batch (`info` gains their count, and their sizes if they differ); the
    empty-picture marker for interleaved text alone; otherwise, with no picture, the node says so and this
    raises."""
    info["images"] = len(result.images)
    if not result.images:
        if not text_only(result):
            progress.show(node_id, summary_line(result.model, result, info, result.incomplete))
            raise no_picture_error(result, info)
        info["empty_picture_marker"] = True
        return empty_picture_marker()
    images, sizes = await runner.in_thread(to_image_tensor, [img.pixels for img in result.images])
    if len(set(sizes)) > 1:
        info["resized_to_first"] = {"size": list(sizes[0]), "original_sizes": [list(s) for s in sizes]}
    return images


def summary_line(model: str, result: Any, info: dict[str, Any], note: str) -> str:
    """The node's last status line: what came back and what it cost."""
    count = len(result.images)
    pictures = f"{count} picture(s)" if count else "no picture, text only" if text_only(result) else "no picture"
    if result.from_cache:
        line = f"{model}: {pictures} from the result cache: nothing sent, nothing billed"
    else:
        line = f"{model}: {pictures}, {info.get('images_billed_this_run')} billed"
        cost = info.get("cost_estimate")
        if cost:
            line += f" (≈ {cost['total']:g} {cost['currency']})"
    line += f", {result.elapsed:.1f} s"
    return line + (f"\n⚠ {note}" if note else "")


def merge_outputs(outs: list[io.NodeOutput]) -> io.NodeOutput:
    """Several requests' outputs as one: pictures in order (resized to the first's size if they differ),
    texts joined, and ONE info object whose `requests` holds each request's info, in order."""
    import torch

    batches = [out.args[0] for out in outs]
    target = batches[0].shape[1:3]
    fitted = [b if b.shape[1:3] == target else
              torch.nn.functional.interpolate(b.movedim(-1, 1), size=tuple(target), mode="bicubic",
                                              align_corners=False).movedim(1, -1).clamp(0, 1) for b in batches]
    texts = "\n\n".join(out.args[1] for out in outs if out.args[1])
    infos = [json.loads(out.args[2]) for out in outs]
    info = {
        "per_image": True,
        "model": infos[0].get("model"),
        "images": sum(i.get("images") or 0 for i in infos),
        "images_billed": sum(i.get("images_billed") or 0 for i in infos),
        "images_billed_this_run": sum(i.get("images_billed_this_run") or 0 for i in infos),
        "cached": all(i.get("cached") for i in infos),
        "requests": infos,
    }
    return io.NodeOutput(torch.cat(fitted), texts, json.dumps(info, ensure_ascii=False, indent=1))


def palette_value(text: str | None, colors: Any = None, shares: str | None = None) -> Any:
    """The palette to send: the `color_palette` string, or the core `colors` with `color_shares`."""
    return node_palette((text or "").strip() or None, colors, shares)

