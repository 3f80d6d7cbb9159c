"""An offline DashScope for the Wan image models: a real HTTP server on loopback.

Start it with `python -m api.emulator` (from the pack's folder) and point the pack at it:
`DASHSCOPE_HTTP_BASE_URL=http://127.0.0.1:8470/api/v1`. In tests: `EmulatorServer(port=0).start()`.
"""

from .backend import FAULT_KINDS, Backend, Fault, Settings
from .server import EmulatorServer

__all__ = ["Backend", "EmulatorServer", "FAULT_KINDS", "Fault", "Settings"]
