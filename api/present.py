"""How a result is shown to a user: the `info` JSON a node outputs (ids, what was billed, a cost estimate
where a price is known, when each result URL expires)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from .errors import NoPictureError
from .money.pricing import estimate
from .result import WanResult
from .service.download import url_expiry


def expiry(url: str) -> str | None:
    """When a pre-signed result URL stops working, as ISO 8601 UTC; None if it does not say."""
    expires = url_expiry(url)
    return datetime.fromtimestamp(expires, timezone.utc).isoformat() if expires else None


def describe(result: WanResult) -> dict[str, Any]:
    images = result.images + [None] * len(result.urls)
    # A cached answer, or one paid by an earlier run and fetched now, was billed once, before.
    billed_now = 0 if (result.from_cache or result.paid_before) else result.images_billed
    info: dict[str, Any] = {
        "model": result.model,
        "mode": result.mode,
        "transport": result.transport,
        "request_id": result.request_id,
        "task_id": result.task_id,
        "usage": result.usage,
        "images_billed": result.images_billed,
        "images_billed_this_run": billed_now,
        "cached": result.from_cache,
        "billed": result.billing.verdict if result.billing is not None else ("yes" if result.images_billed else "no"),
        "results": [{"url": url, "expires_at": expiry(url), "width": img.width if img else None,
                     "height": img.height if img else None} for url, img in zip(result.urls, images)],
        "failures": result.failures,
        "cost_estimate": estimate(result.model, result.region, billed_now),
        "endpoint": result.endpoint,
        "elapsed_s": round(result.elapsed, 3),
    }
    if result.incomplete:
        info["incomplete"] = result.incomplete
    return info


def text_only(result: WanResult) -> bool:
    """An answer with no picture that is still a result: interleaved output whose text came back (max_images is
    a ceiling; the model decides how many pictures, and may write text alone)."""
    return not result.images and result.mode == "interleave" and bool(result.text.strip())


def no_picture_error(result: WanResult, info: dict[str, Any]) -> NoPictureError:
    """What to raise for an answer with no picture that is not `text_only`: the model, the request id, and what
    was billed (the service bills the pictures it makes: none, unless it says otherwise)."""
    billed = info.get("images_billed_this_run") or 0
    if info.get("billed") == "maybe":
        cost = "it may have been billed (the bill will tell)"
    elif billed:
        cost = f"the service reports {billed} picture(s) billed"
    else:
        cost = "nothing was billed"
    why = f" ({result.incomplete})" if result.incomplete else ""
    return NoPictureError(f"{result.model} returned no picture{why}; {cost}", request_id=result.request_id,
                          task_id=result.task_id)
