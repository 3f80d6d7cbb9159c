"""Cost estimates: pictures billed x a unit price, where a price is known. The bill is the truth.

DashScope bills per successfully generated picture, whatever its size. Unit prices differ by region and
change; the table below holds only what we could find, marked with where it came from. Users put their
own (or a newer) price in WAN_PRICES, e.g. `{"wan2.7-image": {"amount": 0.03, "currency": "USD"}}`,
which wins for every region.
"""

from __future__ import annotations

import json
import os
from typing import Any

ENV_PRICES = "WAN_PRICES"

# (model, region) -> (amount per picture, currency, source)
PRICE_TABLE: dict[tuple[str, str], tuple[float, str, str]] = {
    ("wan2.7-image-pro", "beijing"): (0.50, "CNY", "public price listing, 2026; unverified"),
    ("wan2.7-image", "beijing"): (0.20, "CNY", "public price listing, 2026; unverified"),
}


def unit_price(model: str, region: str | None) -> tuple[float, str, str] | None:
    raw = os.environ.get(ENV_PRICES, "").strip()
    if raw:
        try:
            entry = json.loads(raw).get(model)
            if entry:
                return float(entry["amount"]), str(entry.get("currency", "USD")), ENV_PRICES
        except (ValueError, TypeError, KeyError, AttributeError):
            pass  # a malformed override must not break a paid run; the table still applies
    if region is None:
        return None
    return PRICE_TABLE.get((model, region))


def estimate(model: str, region: str | None, images: int) -> dict[str, Any] | None:
    price = unit_price(model, region)
    if price is None:
        return None
    amount, currency, source = price
    return {"images": images, "unit_price": amount, "currency": currency, "total": round(amount * images, 4),
            "source": source}
