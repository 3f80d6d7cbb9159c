"""A bench-only ComfyUI node (linked into the bench's ComfyUI, never shipped as a node of the pack): it hands on
a 1024x1024 IMAGE it made at start-up, at once. A graph with it in place of a Wan node times what ComfyUI itself
spends on one more V3 async node whose IMAGE output goes on to the next node; benchmarks/run.py subtracts that,
measured in the same run, from a Wan node's time, so that the waiting rows time the pack and not ComfyUI."""

import torch
from comfy_api.latest import ComfyExtension, io

PICTURE = torch.rand(1, 1024, 1024, 3)


class WanBenchStandIn(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(node_id="WanBenchStandIn", display_name="Wan bench stand-in", category="bench",
                         inputs=[io.Int.Input("seed", default=0, min=0, max=2**31 - 1)],
                         outputs=[io.Image.Output()])

    @classmethod
    async def execute(cls, seed: int) -> io.NodeOutput:   # async, as the Wan nodes are
        return io.NodeOutput(PICTURE)


class StandInExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [WanBenchStandIn]


async def comfy_entrypoint() -> StandInExtension:
    return StandInExtension()
