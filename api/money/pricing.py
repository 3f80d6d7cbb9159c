"""Cost estimates: pictures billed x a unit price, where a price is known. The bill is the truth.

DashScope bills per successfully generated picture, whatever its size. Unit prices differ by region and
change; the table below holds only what we could find, marked with where it came from. Users put their
own (or a newer) price in WAN_PRICES, e.g. `{"wan2.7-image": {"amount": 0.03, "currency": "USD"}}`,
which wins for every region.

The same prices go onto the nodes, before anything is queued, as a price badge (`price_badge_expr`): a
JSONata expression that ComfyUI's page evaluates over the node's widgets. It is generated from
`unit_price` for every choice of the node's `region` widget, so the badge and `info` cannot disagree.
"""

from __future__ import annotations

import json
import os
from typing import Any

ENV_PRICES = "WAN_PRICES"
UNVERIFIED = "public price listing, 2026; unverified"

# (model, region) -> (amount per picture, currency, source)
PRICE_TABLE: dict[tuple[str, str], tuple[float, str, str]] = {
    ("wan2.7-image-pro", "beijing"): (0.50, "CNY", UNVERIFIED),
    ("wan2.7-image", "beijing"): (0.20, "CNY", UNVERIFIED),
    ("wan2.7-image-pro", "singapore"): (0.075, "USD", UNVERIFIED),
    ("wan2.7-image", "singapore"): (0.030, "USD", UNVERIFIED),
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


# ---- the price badge ----------------------------------------------------------------------------------------

UNKNOWN = "price unknown"
# How the badge words a price: every picture asked for is billed (n), at most that many (a set, interleaved
# output: the model decides how many), or per picture of the `image` batch (a per-picture edit).
EXACT, AT_MOST, PER_INPUT_PICTURE = "exact", "at_most", "per_input_picture"


def badge_prices(models: list[str], region_choices: list[str], environ: dict[str, str] | None = None
                 ) -> dict[str, dict[str, list[Any]]]:
    """{model: {region widget value: [unit price, currency]}} for every price known, exactly as a run would
    estimate it: "default" is resolved now (DASHSCOPE_REGION, else Singapore), and with
    DASHSCOPE_HTTP_BASE_URL set the endpoint is not a region, so only WAN_PRICES applies (as in `info`)."""
    from ..config import endpoint_overridden, region_for
    from ..errors import ConfigError

    overridden = endpoint_overridden(environ)
    table: dict[str, dict[str, list[Any]]] = {}
    for model in models:
        for choice in region_choices:
            try:
                region = None if overridden else region_for(choice, environ)
            except ConfigError:  # a DASHSCOPE_REGION that names no region: the run will say so
                continue
            price = unit_price(model, region)
            if price is not None:
                table.setdefault(model, {})[choice] = [price[0], price[1]]
    return table


def price_badge_expr(models: list[str], region_choices: list[str], count_widget: str, wording: str = EXACT,
                     environ: dict[str, str] | None = None) -> str:
    """The JSONata expression of a node's price badge. ComfyUI's page evaluates it with
    `widgets.<name>` = each widget's value (combo values lower-cased, numbers as numbers) and shows the
    `text` of the `{"type": "text"}` object it returns. `count_widget` is the widget that says how many
    pictures a run may bill (`n`, `max_images`); with PER_INPUT_PICTURE, `widgets.per_image` switches to a
    price per picture of the `image` batch."""
    prices = json.dumps(badge_prices(models, region_choices, environ), sort_keys=True)
    total = f'$formatNumber($round($u[0] * widgets.{count_widget}, 4), "0.00##") & " " & $u[1]'
    text = {EXACT: f'"≈ " & {total}', AT_MOST: f'"up to ≈ " & {total}'}.get(wording)
    if wording == PER_INPUT_PICTURE:
        text = (f'widgets.per_image = true ? "≈ " & {total} & " per picture of image" : "≈ " & {total}')
    if text is None:
        raise ValueError(f"unknown badge wording {wording!r}")
    return ("(\n"
            f"  $p := {prices};\n"
            '  $m := $type(widgets.model) = "string" ? $lookup($p, widgets.model);\n'
            '  $u := $exists($m) and $type(widgets.region) = "string" ? $lookup($m, widgets.region);\n'
            f'  $exists($u) and $type(widgets.{count_widget}) = "number" ? {{"type": "text", "text": {text}}}\n'
            f'    : {{"type": "text", "text": "{UNKNOWN}"}}\n'
            ")")
