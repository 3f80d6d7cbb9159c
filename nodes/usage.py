"""Money under control, in the graph: the WanUsage node (what was billed) and the whole-fan-out check of the
daily limit. The ledger itself, the limit and the report are in api/ledger/."""

from __future__ import annotations

import time
from typing import Any

from comfy_api.latest import io, ui

from . import runner
from ..api import ENV_DAILY_BUDGET, ENV_DAILY_LIMIT, WanRequest, open_ledger
from .declared import Declared, WanNode
from .widgets import node_schema


def check_fan_out(region: str, reqs: list[WanRequest]) -> None:
    """Refuse a node's several requests together, before any is sent, when all of them would pass the daily
    limit. Requests answered from the result cache, or fetching a task created earlier, cost nothing and
    are not counted, nor are repeats of an identical request. (Each request still reserves its own pictures
    when it is sent.)"""
    if len(reqs) < 2:
        return
    client = runner.client_for(region or "default")
    if client.store is None:
        return
    pictures = 0
    unique = {req.fingerprint(): req for req in reqs}   # identical frames share one request (api/money/resumable.py)
    for fingerprint, req in unique.items():
        if client.cached(req) is not None:
            continue
        if client.store.journal.find(client.account, fingerprint) is not None:
            continue
        pictures += req.max_billable_images
    open_ledger(client.store.folder).check(client.transport.api_key.fingerprint, reqs[0].model, pictures,
                                           region=client.endpoint.region)


class WanUsage(WanNode):
    """Today's and this month's billed pictures and estimated cost per model, from the ledger."""

    declared = Declared(lambda: node_schema(
        "WanUsage", "Wan Usage (Pictures Billed)",
        "What the Wan nodes have spent: today's and this month's billed pictures and estimated cost per model, from "
        "the ledger every ComfyUI on this folder writes (user/wan_image). "
        f"Shows the daily limit ({ENV_DAILY_LIMIT}, {ENV_DAILY_BUDGET}) too. Sends nothing, costs nothing; runs again "
        "on every queue.",
        inputs=[],
        outputs=[
            io.String.Output("text", display_name="text",
                             tooltip="The usage table: per model, pictures and estimated cost today and this month, "
                                     "the daily limit and today's count per account."),
            io.Image.Output("chart", display_name="chart",
                            tooltip="This month's billed pictures per day, stacked by model."),
        ],
        hidden=[io.Hidden.unique_id],
        is_output_node=True,
    ))

    @classmethod
    def fingerprint_inputs(cls, **kwargs: Any) -> Any:
        return time.time()  # the ledger changes between runs: never answer from ComfyUI's cache

    @classmethod
    def execute(cls) -> io.NodeOutput:
        import torch

        from ..api import report_text, usage_chart, usage_summary  # the report: only when this node runs

        summary = usage_summary(open_ledger(runner.shared_store().folder))
        text = report_text(summary)
        picture = torch.from_numpy(usage_chart(summary)).float().div(255).unsqueeze(0)
        runner.show(getattr(cls.hidden, "unique_id", None), text)
        return io.NodeOutput(text, picture, ui={"text": [text], **ui.PreviewImage(picture, cls=cls).as_dict()})
