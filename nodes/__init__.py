"""The ComfyUI nodes of the pack (V3 API). Thin: widgets -> api/ request -> outputs."""

from .recent import WanRecentResults
from .sheet import WanComparisonSheet
from .usage import WanUsage
from .wan_nodes import NODES as WAN_NODES

NODES = [*WAN_NODES, WanRecentResults, WanComparisonSheet, WanUsage]

__all__ = ["NODES"]
