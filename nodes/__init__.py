"""The ComfyUI nodes of the pack (V3 API). Thin: widgets -> api/ request -> outputs."""

from .sheet import WanComparisonSheet
from .wan_nodes import NODES as WAN_NODES

NODES = [*WAN_NODES, WanComparisonSheet]

__all__ = ["NODES"]
