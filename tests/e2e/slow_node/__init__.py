"""A second custom node pack for the end-to-end tests: one slow LOCAL node, like a sampler.

It works in short slices and, between them, asks ComfyUI whether the user pressed Cancel the way a sampler's
step callback does (comfy.model_management.throw_exception_if_processing_interrupted), which CLEARS
ComfyUI's global interrupt flag before raising. A Wan node running beside it must still notice the Cancel.

It lives in the test tree and is linked into the test server's custom_nodes next to the pack
(ComfyHost(extra_nodes=[...])); it is never shipped.
"""

import logging
import time


class WanTestSlowLocal:
    CATEGORY = "testing"
    FUNCTION = "work"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    # Runs once even when `after` is a list (a WanPromptList's prompts): it only orders the graph.
    INPUT_IS_LIST = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "seconds": ("FLOAT", {"default": 5.0, "min": 0.0, "max": 600.0}),
            "tag": ("STRING", {"default": ""}),   # vary it to defeat ComfyUI's cache
            # One step's length: a sampler step on a CPU, or on a big model, can take seconds.
            "step": ("FLOAT", {"default": 0.05, "min": 0.01, "max": 60.0}),
        }, "optional": {
            # Link anything here to make this node start after that node (ComfyUI starts a Wan node, being
            # async, before a local node that is ready at the same time).
            "after": ("STRING", {"forceInput": True}),
        }}

    def work(self, seconds, tag, step, after=None):
        import comfy.model_management

        seconds, tag, step = seconds[0], tag[0], step[0]

        logging.info("slow local node %s: working for %.1f s", tag, seconds)
        deadline = time.monotonic() + seconds
        steps = 0
        while time.monotonic() < deadline:
            time.sleep(step)   # one "sampling step"
            steps += 1
            comfy.model_management.throw_exception_if_processing_interrupted()
        logging.info("slow local node %s: done after %d steps", tag, steps)
        return (f"{tag}: {steps} steps",)


NODE_CLASS_MAPPINGS = {"WanTestSlowLocal": WanTestSlowLocal}
NODE_DISPLAY_NAME_MAPPINGS = {"WanTestSlowLocal": "Slow local node (test)"}
