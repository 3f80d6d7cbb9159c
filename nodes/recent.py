"""WanRecentResults: the pictures of a request paid in the last 24 hours, fetched again without paying.

The way back to a paid picture after Cancel (a task that ran on), a download that failed, a restart, or a
seed that moved on after each queue. The list and the fetching are api/recent.py's; this node only shows
the choices and hands the pictures to the graph.
"""

from __future__ import annotations

import json
import time
from typing import Any

from comfy_api.latest import io

from ..api import describe
from ..api.recent import describe_choice, describe_listing, fetch, listing
from . import progress, runner
from .declared import Declared, WanNode
from .send import pictures_of
from .widgets import REGIONS, node_schema, outputs


class WanRecentResults(WanNode):
    declared = Declared(lambda: node_schema(
        "WanRecentResults", "Wan Recent Results",
        "The pictures of a request already paid with this key at this endpoint on this ComfyUI folder in the "
        "last 24 hours, fetched again without paying: after Cancel, a failed download, a restart, or a seed "
        "that moved on. Never sends a billable request: serves the result cache, downloads the recorded "
        "result URLs, or waits for the recorded task. The node's status lists the choices.",
        outputs=outputs(),
        hidden=[io.Hidden.unique_id],
        inputs=[
            io.Int.Input("pick", default=1, min=1, max=10000,
                         tooltip="1 = the most recent paid request, 2 = the one before, ... (last 24 hours). The "
                                 "node's status lists them after a run; so does `python -m api.recent`."),
            io.Combo.Input("region", options=REGIONS, default="default", optional=True,
                           tooltip="Whose requests: the key and endpoint of this region ('default': DASHSCOPE_REGION, "
                                   "else Singapore; DASHSCOPE_HTTP_BASE_URL overrides)."),
        ]))

    @classmethod
    def fingerprint_inputs(cls, **given: Any) -> Any:
        # ComfyUI would otherwise answer a second run from its own cache while the list has moved on.
        return time.time()

    @classmethod
    async def execute(cls, **given: Any) -> io.NodeOutput:
        v = cls.declared.values(given)
        node_id = getattr(cls.hidden, "unique_id", None)

        result, rec, entries = await runner.run_call(
            node_id, "Wan Recent Results", "fetch", v.region or "default",
            lambda client, cancel, on_progress: fetch(client, v.pick, cancel=cancel, on_progress=on_progress))
        info = describe(result)
        info["recent"] = {"pick": v.pick, "answer_id": rec.id, "created": rec.created, "prompt": rec.prompt}
        images = await pictures_of(node_id, result, info)
        where = "from the result cache" if result.from_cache else "fetched again"
        progress.show(node_id, f"{describe_choice(v.pick, rec)}\n→ {len(result.images)} picture(s) {where}: nothing "
                             f"billed\n\nRecent paid requests:\n{describe_listing(entries)}")
        return io.NodeOutput(images, result.text, json.dumps(info, ensure_ascii=False, indent=1))
