"""ComfyUI entry point of the Wan image pack (ComfyUI's V3 node API).

ComfyUI loads this file by path and calls `comfy_entrypoint()`. No NODE_CLASS_MAPPINGS here on purpose:
a module that defines it has its comfy_entrypoint ignored.
"""

from comfy_api.latest import ComfyExtension, io

from .api.secrets import get_logger
from .nodes import NODES
from .nodes.key_route import register_with_comfyui

WEB_DIRECTORY = "./web"

get_logger("wan")
# The key setting of ComfyUI's settings page talks to this route (web/wan_settings.js).
register_with_comfyui()


class WanImageExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> WanImageExtension:
    return WanImageExtension()
