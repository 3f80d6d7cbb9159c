"""The ledger read back for a person: today's and this month's pictures and estimated cost per model, as the
table that `python -m api.ledger` prints and the WanUsage node shows, and the month as a chart (the node's
picture). Loaded only by those two: the chart needs Pillow, which a run that only reserves and settles does
not.
"""

from __future__ import annotations

from typing import Any

from ..errors import WanInputError
from . import ENV_DAILY_BUDGET, ENV_DAILY_LIMIT, UNSURE, Ledger, daily_budget, daily_limit, local_day


def summary(ledger: Ledger, now: float | None = None) -> dict[str, Any]:
    """Today's and this month's pictures and estimated cost, per model (all accounts of this folder)."""
    ledger.sweep()
    day = local_day(now)
    month = day[:7]
    rows = ledger.entries(since_day=month + "-01")
    models: dict[str, dict[str, Any]] = {}
    per_day: dict[str, dict[str, int]] = {}
    accounts: dict[str, int] = {}
    for e in rows:
        m = models.setdefault(e["model"], {"model": e["model"], "today": 0, "today_unsure": 0, "month": 0,
                                           "month_unsure": 0, "today_cost": {}, "month_cost": {}})
        unsure = e["status"] == UNSURE
        for period in (("today",) if e["day"] == day else ()) + ("month",):
            m[period] += e["pictures"]
            if unsure:
                m[period + "_unsure"] += e["pictures"]
            if e["cost"] is not None:
                costs = m[period + "_cost"]
                costs[e["currency"]] = round(costs.get(e["currency"], 0.0) + e["cost"], 6)
        per_day.setdefault(e["day"], {}).setdefault(e["model"], 0)
        per_day[e["day"]][e["model"]] += e["pictures"]
        if e["day"] == day:
            accounts[e["account"]] = accounts.get(e["account"], 0) + e["pictures"]
    return {"day": day, "month": month, "models": sorted(models.values(), key=lambda m: m["model"]),
            "per_day": per_day, "accounts_today": accounts, "in_flight": ledger.in_flight(),
            "limit": _safe(daily_limit), "budget": _safe(daily_budget), "ledger": str(ledger.path)}


def _safe(read: Any) -> Any:
    try:
        return read()
    except WanInputError as exc:
        return str(exc)


def _cost_text(costs: dict[str, float]) -> str:
    return ", ".join(f"{amount:.2f} {currency}" for currency, amount in sorted(costs.items())) or "-"


def report_text(summary: dict[str, Any]) -> str:
    """The printout `python -m api.ledger` and the WanUsage node show."""
    lines = [f"Wan pictures billed, today ({summary['day']}) and this month ({summary['month']}), local time",
             f"ledger: {summary['ledger']}", ""]
    header = f"{'model':<22}{'today':>7}{'est. cost today':>20}{'this month':>12}{'est. cost this month':>24}"
    lines += [header, "-" * len(header)]
    total_today = total_month = unsure_today = unsure_month = 0
    for m in summary["models"]:
        lines.append(f"{m['model']:<22}{m['today']:>7}{_cost_text(m['today_cost']):>20}{m['month']:>12}"
                     f"{_cost_text(m['month_cost']):>24}")
        total_today += m["today"]
        total_month += m["month"]
        unsure_today += m["today_unsure"]
        unsure_month += m["month_unsure"]
    if not summary["models"]:
        lines.append("(nothing billed this month)")
    lines.append("-" * len(header))
    lines.append(f"{'all models':<22}{total_today:>7}{'':>20}{total_month:>12}")
    if unsure_today or unsure_month:
        lines.append(f"of which unsure: {unsure_today} today, {unsure_month} this month (requests cut or "
                     "interrupted after sending, counted at the most they could bill)")
    lines.append("")
    limit, budget = summary["limit"], summary["budget"]
    lines.append(f"daily limit ({ENV_DAILY_LIMIT}): " + ("none" if limit is None else f"{limit} pictures per account"))
    if budget is not None:
        lines.append(f"daily budget ({ENV_DAILY_BUDGET}): {budget}")
    for account, count in sorted(summary["accounts_today"].items()):
        used = f"{count}" + (f" of {limit}" if isinstance(limit, int) else "")
        lines.append(f"account {account}: {used} today")
    if summary["in_flight"]:
        lines.append(f"in flight now: {summary['in_flight']} picture(s)")
    lines.append("Estimates use the price table or WAN_PRICES; the bill is the truth.")
    return "\n".join(lines)


def chart(summary: dict[str, Any], width: int = 640, height: int = 260) -> Any:
    """This month's pictures per day, a bar per day stacked by model: an HxWx3 uint8 array (Pillow)."""
    import calendar

    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    palette = [(66, 133, 244), (234, 67, 53), (251, 188, 5), (52, 168, 83), (171, 71, 188), (0, 172, 193)]
    year, month = int(summary["month"][:4]), int(summary["month"][5:7])
    days = calendar.monthrange(year, month)[1]
    models = [m["model"] for m in summary["models"]]
    colour = {name: palette[i % len(palette)] for i, name in enumerate(models)}
    img = Image.new("RGB", (width, height), (250, 250, 250))
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    left, right, top, bottom = 36, width - 10, 28, height - 24
    totals = [sum(summary["per_day"].get(f"{summary['month']}-{d:02d}", {}).values()) for d in range(1, days + 1)]
    peak = max([1, *totals])
    draw.text((left, 6), f"pictures billed per day, {summary['month']} (peak {peak})", fill=(30, 30, 30), font=font)
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=(120, 120, 120))
    step = (right - left) / days
    today = int(summary["day"][8:10]) if summary["day"][:7] == summary["month"] else None
    for d in range(1, days + 1):
        x0 = left + (d - 1) * step + 1
        x1 = left + d * step - 1
        y = bottom
        for name, count in sorted(summary["per_day"].get(f"{summary['month']}-{d:02d}", {}).items()):
            h = (bottom - top) * count / peak
            draw.rectangle([x0, y - h, x1, y], fill=colour.get(name, (120, 120, 120)))
            y -= h
        if d == 1 or d % 5 == 0 or d == today:
            draw.text((x0, bottom + 4), str(d), fill=(0, 0, 0) if d == today else (90, 90, 90), font=font)
    # Legend: one line of coloured names at the top right.
    x = width - 10
    for name in reversed(models):
        w = int(draw.textlength(name, font=font)) + 16
        x -= w
        draw.rectangle([x, 8, x + 8, 16], fill=colour[name])
        draw.text((x + 11, 6), name, fill=(30, 30, 30), font=font)
    return np.array(img, dtype=np.uint8)
