"""The Wan nodes that generate: each declares its inputs once (nodes/declared.py), checks what its widgets alone
decide when the graph is queued, and runs widgets -> one request (or one per picture) -> outputs.

Box editing (WanBBox) is in nodes/boxes.py, the free local nodes in palette.py and sheet.py; the shared
widgets in widgets.py, the shared execute path in send.py. Outputs are always: IMAGE (every returned picture),
STRING `text`, STRING `info` (JSON).
"""

from __future__ import annotations

import asyncio
from typing import Any

from comfy_api.latest import io

from . import runner, usage
from ..api import AT_MOST, EDIT, INTERLEAVE, PER_INPUT_PICTURE, SEQUENTIAL, TEXT_TO_IMAGE, Params, get_model
from ..api.errors import NoPictureError
from .boxes import WanBBox
from .declared import Declared, Values, WanNode, queue_check_reads
from .palette import WanColorPalette
from .send import build, merge_outputs, palette_value, prepare, send
from .sheet import WanPromptList
from .validation import queue_check
from .widgets import (
    MAX_IMAGE_INPUTS, PALETTE_TOOLTIP, billing_schema, common_tail, core_palette_inputs, image_input_names,
    image_inputs, model_input, n_input, price_badge, prompt_input, seed_input, size_input,
)


class WanImageEdit(WanNode):
    declared = Declared(lambda: billing_schema(
        "WanImageEdit", "Wan Image Edit",
        "Edit one picture or fuse several (up to 9 on wan2.7, 4 on wan2.6, 3 on wan2.5) with a prompt. The output "
        "keeps the aspect ratio of the last input picture.",
        price_badge(EDIT, wording=PER_INPUT_PICTURE),
        is_api_node=False,  # see web/wan_price_badge.js: the badge is shown without it
        inputs=[
            model_input(EDIT, "wan2.7-image"),
            prompt_input(EDIT),
            *image_inputs(MAX_IMAGE_INPUTS, required=1),
            n_input(1, 4),
            size_input("auto", "auto (the model's default: 2K on wan2.7, 1K on wan2.6, 1280*1280 pixels on "
                               "wan2.5), 1K, 2K, or W*H such as 1280*720 (wan2.7/2.6: 768*768 to 2048*2048 "
                               "pixels; wan2.5: 768*768 to 1280*1280)."),
            seed_input(),
            io.String.Input("negative_prompt", multiline=True, default="", optional=True,
                            tooltip="What to avoid (wan2.6 and wan2.5 only, at most 500 characters)."),
            io.Boolean.Input("prompt_extend", default=True, optional=True,
                             tooltip="Let the service rewrite the prompt (wan2.6 and wan2.5 only; sent only "
                                     "to them). The rewritten prompt comes out as `text`."),
            io.String.Input("color_palette", multiline=False, default="", optional=True, tooltip=PALETTE_TOOLTIP),
            io.Boolean.Input("per_image", default=False, optional=True,
                             tooltip="Edit each picture of the `image` batch in a request of its own (the "
                                     "pictures of image_2... go with every one), all at once: e.g. the "
                                     "same edit on every frame. Results come back in order."),
            *common_tail(mode=EDIT),
            *core_palette_inputs(),
        ]))

    @classmethod
    @queue_check_reads("model", "prompt", "n", "size", "negative_prompt", "color_palette", "region", "transport",
                       "colors", "color_shares")
    def validate_inputs(cls, v: Values) -> bool | str:
        return queue_check(v.model, EDIT, v.prompt, n=v.n, size=v.size, negative_prompt=v.negative_prompt or None,
                           color_palette=(v.color_palette or "").strip() or None, region=v.region,
                           transport=v.transport, colors=v.colors, color_shares=v.color_shares)

    @classmethod
    async def execute(cls, **given: Any) -> io.NodeOutput:
        v = cls.declared.values(given)
        mode_params = get_model(v.model).modes[EDIT].params
        params = Params(size=v.size, n=v.n, seed=v.seed, watermark=v.watermark,
                        negative_prompt=v.negative_prompt or None,
                        prompt_extend=v.prompt_extend if "prompt_extend" in mode_params else None,
                        color_palette=palette_value(v.color_palette, v.get("colors"), v.get("color_shares")))
        names = image_input_names(MAX_IMAGE_INPUTS)
        first = v.image
        if v.per_image and first is not None and first.ndim == 4 and first.shape[0] > 1:
            runs = [[("image", first[i:i + 1])] + [(name, v[name]) for name in names[1:]]
                    for i in range(first.shape[0])]
        else:
            runs = [[(name, v[name]) for name in names]]
        # Validate and encode every request before any is sent: one bad picture must not leave the others
        # half-paid. A per-image batch's requests are encoded side by side (the shared worker threads).
        jobs = await asyncio.gather(*[runner.in_thread(prepare, v.model, v.prompt, named, v.input_format, EDIT, params)
                                      for named in runs])
        # The daily limit over the whole fan-out, before any request is sent (api/ledger.py).
        await runner.in_thread(usage.check_fan_out, v.region, [req for req, _, _ in jobs])
        outs = await asyncio.gather(*[send(cls, req, region=v.region, transport=v.transport, inputs=inputs,
                                           labels=labels) for req, inputs, labels in jobs], return_exceptions=True)
        failed = [(i, out) for i, out in enumerate(outs) if isinstance(out, BaseException)]
        if failed:
            i, exc = failed[0]
            if len(outs) > 1 and isinstance(exc, NoPictureError):
                # Say that the error is this frame's only: the other frames' pictures came back, were paid
                # for and are in the result cache, so queuing again serves them without paying again.
                kept = len(outs) - len(failed)
                raise NoPictureError(f"picture {i + 1} of {len(outs)} of `image` (per_image): {exc.detail}. The "
                                     f"other {kept} request(s) brought their pictures, which are kept in the result "
                                     "cache: queued again they are served without paying again",
                                     request_id=exc.request_id, task_id=exc.task_id) from None
            raise exc
        return outs[0] if len(outs) == 1 else await runner.in_thread(merge_outputs, outs)


class WanTextToImage(WanNode):
    declared = Declared(lambda: billing_schema(
        "WanTextToImage", "Wan Text to Image",
        "wan2.7 text-to-image: 1K, 2K, or 4K on wan2.7-image-pro; thinking mode; colour palette.",
        price_badge(TEXT_TO_IMAGE),
        inputs=[
            model_input(TEXT_TO_IMAGE, "wan2.7-image-pro"),
            prompt_input(TEXT_TO_IMAGE),
            n_input(1, 4),
            size_input("2K", "1K (1024*1024), 2K (2048*2048), 4K (4096*4096, wan2.7-image-pro only), or W*H "
                             "with 768*768 to 2048*2048 pixels (4096*4096 on pro), aspect 1:8 to 8:1."),
            seed_input(),
            io.Boolean.Input("thinking_mode", default=True, optional=True,
                             tooltip="Reason about the prompt before drawing: better pictures, slower."),
            io.String.Input("color_palette", multiline=False, default="", optional=True, tooltip=PALETTE_TOOLTIP),
            *common_tail(with_format=False, mode=TEXT_TO_IMAGE),
            *core_palette_inputs(),
        ]))

    @classmethod
    @queue_check_reads("model", "prompt", "n", "size", "color_palette", "region", "transport", "colors",
                       "color_shares")
    def validate_inputs(cls, v: Values) -> bool | str:
        return queue_check(v.model, TEXT_TO_IMAGE, v.prompt, n=v.n, size=v.size,
                           color_palette=(v.color_palette or "").strip() or None, region=v.region,
                           transport=v.transport, colors=v.colors, color_shares=v.color_shares)

    @classmethod
    async def execute(cls, **given: Any) -> io.NodeOutput:
        v = cls.declared.values(given)
        params = Params(size=v.size, n=v.n, seed=v.seed, watermark=v.watermark, thinking_mode=v.thinking_mode,
                        color_palette=palette_value(v.color_palette, v.get("colors"), v.get("color_shares")))
        req = build(v.model, v.prompt, [], [], TEXT_TO_IMAGE, params)
        return await send(cls, req, region=v.region, transport=v.transport, inputs=[], labels=[])


class WanSequential(WanNode):
    declared = Declared(lambda: billing_schema(
        "WanSequential", "Wan Sequential (Group)",
        "wan2.7 sequential output: a consistent set of up to 12 pictures (a story, the seasons, a product "
        "series) from a prompt and 0-9 reference pictures. Returns all of them.",
        price_badge(SEQUENTIAL, wording=AT_MOST),
        inputs=[
            model_input(SEQUENTIAL, "wan2.7-image"),
            prompt_input(SEQUENTIAL),
            *image_inputs(MAX_IMAGE_INPUTS, required=0),
            n_input(1, 12, default=4, what="The most pictures in the set; the model decides how many"),
            size_input("2K", "1K or 2K (4K is not offered for sets), or W*H with 768*768 to 2048*2048 "
                             "pixels, aspect 1:8 to 8:1."),
            seed_input(),
            *common_tail(mode=SEQUENTIAL),
        ]))

    @classmethod
    @queue_check_reads("model", "prompt", "n", "size", "region", "transport")
    def validate_inputs(cls, v: Values) -> bool | str:
        return queue_check(v.model, SEQUENTIAL, v.prompt, n=v.n, size=v.size, region=v.region, transport=v.transport)

    @classmethod
    async def execute(cls, **given: Any) -> io.NodeOutput:
        v = cls.declared.values(given)
        named = [(name, v[name]) for name in image_input_names(MAX_IMAGE_INPUTS)]
        params = Params(size=v.size, n=v.n, seed=v.seed, watermark=v.watermark)
        req, inputs, labels = await runner.in_thread(prepare, v.model, v.prompt, named, v.input_format, SEQUENTIAL,
                                                     params)
        return await send(cls, req, region=v.region, transport=v.transport, inputs=inputs, labels=labels)


class WanInterleave(WanNode):
    declared = Declared(lambda: billing_schema(
        "WanInterleave", "Wan Interleave (Text + Images)",
        "wan2.6-image interleaved output: text and up to 5 pictures (a tutorial, a story) from a prompt and an "
        "optional picture. The text streams onto the node as it is written.",
        price_badge(INTERLEAVE, "max_images", AT_MOST),
        inputs=[
            model_input(INTERLEAVE, "wan2.6-image"),
            prompt_input(INTERLEAVE),
            *image_inputs(1, required=0),
            io.Int.Input("max_images", default=3, min=1, max=5,
                         tooltip="The most pictures (1-5); the model decides how many. Each is billed."),
            size_input("1280*1280", "W*H with 768*768 to 1280*1280 pixels, aspect 1:4 to 4:1."),
            seed_input(),
            io.String.Input("negative_prompt", multiline=True, default="", optional=True,
                            tooltip="What to avoid (at most 500 characters)."),
            *common_tail(mode=INTERLEAVE),
        ]))

    @classmethod
    @queue_check_reads("model", "prompt", "max_images", "size", "negative_prompt", "region", "transport")
    def validate_inputs(cls, v: Values) -> bool | str:
        return queue_check(v.model, INTERLEAVE, v.prompt, n=1, max_images=v.max_images, size=v.size,
                           negative_prompt=v.negative_prompt or None, region=v.region, transport=v.transport)

    @classmethod
    async def execute(cls, **given: Any) -> io.NodeOutput:
        v = cls.declared.values(given)
        params = Params(size=v.size, n=1, seed=v.seed, watermark=v.watermark, max_images=v.max_images,
                        negative_prompt=v.negative_prompt or None)
        req, inputs, labels = await runner.in_thread(prepare, v.model, v.prompt, [("image", v.image)],
                                                     v.input_format, INTERLEAVE, params)
        return await send(cls, req, region=v.region, transport=v.transport, inputs=inputs, labels=labels)


NODES = [WanImageEdit, WanTextToImage, WanSequential, WanInterleave, WanBBox, WanPromptList, WanColorPalette]
