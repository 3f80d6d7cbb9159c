"""What a round trip brings back (`WanResult`) and what the client reports while it runs (`Progress`).

Plain data: how a result is shown to a user (cost, expiry times, the `info` JSON) is `present.py`'s job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .secrets import get_logger
from .service.download import DownloadedImage

log = get_logger("wan.client")


@dataclass
class WanResult:
    model: str
    mode: str
    transport: str
    images: list[DownloadedImage]
    # Everything the service returned, in order: {"type": "text", "text": ...} / {"type": "image", "url": ...}
    content: list[dict[str, Any]]
    request_id: str | None = None
    task_id: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)   # wan2.5 partial failures
    actual_prompts: list[str] = field(default_factory=list)         # wan2.5 prompt rewriting
    endpoint: str = ""
    region: str | None = None     # None when DASHSCOPE_HTTP_BASE_URL overrides the region
    elapsed: float = 0.0
    timings: dict[str, Any] = field(default_factory=dict)
    from_cache: bool = False
    # Paid by an earlier run (its record in the journal): fetched now, billed then.
    paid_before: bool = False
    # Set when the answer stopped early (a stream cut or an error frame after some pictures, a run
    # interrupted mid-stream): what arrived is paid for and kept; this says what happened.
    incomplete: str = ""
    # What it cost (api.money.billing.Billing), set by the answer that said what was made.
    billing: Any = None
    # The journal's id of this paid answer (api/money/journal.py), once it is written down.
    answer_id: str | None = None

    @property
    def text(self) -> str:
        """The generated text (interleave), or the rewritten prompt(s) where the service rewrote it."""
        texts = [item["text"] for item in self.content if item.get("type") == "text"]
        if texts:
            return "".join(texts) if self.mode != "interleave" else "\n\n".join(t.strip() for t in texts)
        return "\n".join(self.actual_prompts)

    @property
    def urls(self) -> list[str]:
        return [item["url"] for item in self.content if item.get("type") == "image"]

    @property
    def images_billed(self) -> int:
        """What the service says it billed (usage.image_count), else the pictures that came back."""
        return int(self.usage.get("image_count", len(self.urls)) or 0)


@dataclass
class Progress:
    """What the client is doing, for a status line and a progress bar."""

    kind: str                 # sending | waiting | submitted | status | text | image | downloading | retry | done
    elapsed: float
    task_id: str | None = None
    status: str | None = None
    text: str = ""            # the new text (kind == "text")
    images_done: int = 0
    images_total: int = 0
    message: str = ""


OnProgress = Callable[[Progress], None]


class Emitter:
    """Turns `emit("status", ...)` into Progress callbacks, with the elapsed time since `started`."""

    def __init__(self, callback: OnProgress | None, started: float | None = None) -> None:
        self.callback = callback
        self.started = time.monotonic() if started is None else started

    def __call__(self, kind: str, **fields: Any) -> None:
        if self.callback is not None:
            try:
                self.callback(Progress(kind=kind, elapsed=time.monotonic() - self.started, **fields))
            except Exception:  # a broken progress display must not break a paid generation
                log.exception("progress callback failed")

    def retry(self, attempt: int, wait: float, why: str) -> None:
        self("retry", message=f"{why}; retry {attempt} in {wait:.1f} s")
