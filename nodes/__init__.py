"""The ComfyUI nodes of the pack (V3 API). Thin: widgets -> api/ request -> outputs."""

from .wan_nodes import NODES

__all__ = ["NODES"]
