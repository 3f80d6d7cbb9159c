"""python -m api.probe: does the emulator still answer like the real DashScope? Ask both the same things.

For users and maintainers with a key. It runs the cheapest real calls per model and transport the user's
region offers (one picture at the smallest size; a task query; a cancel of a task still queued; an unknown
task id; a wrong key and no key; a stream where the vendor documents none), sends each same request to this
pack's emulator started in-process on loopback, and compares the SHAPES of the two answers (HTTP status,
content type, JSON keys and types, task statuses and error codes, SSE frames), never their values (ids,
URLs, texts). It prints one table, agree / differ, with both shapes for every difference, and what it cost.

Money: it prints the plan and its price first (api/money/pricing.py, WAN_PRICES) and spends nothing without
`--yes`. Without a key it explains itself and exits 0. It reads the key and the endpoint as the client does:
DASHSCOPE_API_KEY (or its file), DASHSCOPE_HTTP_BASE_URL, DASHSCOPE_REGION or --region. The key goes in the
Authorization header to the endpoint and nowhere else; no output or recording holds it.

Its calls are the client's own (api/service/calls.py: the same paths, headers and bodies, through the client's
transport), its stream reading the client's SSE reader (api/service/sse.py); each call is sent once, without retries,
and its answer kept as it came. What the probe adds is the comparison. `plan.py`: which calls, and how a side
is asked; `compare.py`: answers, their shapes and differences, the table; this module: the command.

`--record FILE` keeps the real answers (result URLs cut at the '?') to attach to a report; `--replay FILE`
compares recorded answers with the emulator offline, spending nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from ..config import REGION_LABELS, Endpoint, resolve_api_key, resolve_endpoint, state_dir
from ..errors import ConfigError, MissingApiKeyError, WanError
from ..money.pricing import ENV_PRICES, unit_price
from ..request.models import MODELS
from ..secrets import ApiKey
from ..service.transport import NO_RETRY, Transport
from .compare import Answer, Row, answer_shape, compare, differences, print_table, shape  # noqa: F401 (the API)
from .plan import Answers, Probe, Side, billed, plan

Results = dict[str, tuple[Answers, Answers]]   # probe name -> (the real answers, the emulator's)


def print_plan(probes: list[Probe], endpoint: Endpoint, out) -> None:
    region = endpoint.region
    print(f"Endpoint: {endpoint.label}", file=out)
    print("The probe would make these calls at that endpoint, and the same at this pack's emulator (loopback, "
          "free):", file=out)
    known: dict[str, float] = {}
    unknown = 0
    for probe in probes:
        price = unit_price(probe.model, region) if probe.model and probe.max_pictures else None
        if probe.max_pictures == 0:
            cost = "free"
        elif price:
            cost = f"at most {probe.max_pictures} picture = {price[0] * probe.max_pictures:g} {price[1]} ({price[2]})"
            known[price[1]] = known.get(price[1], 0.0) + price[0] * probe.max_pictures
        else:
            cost = f"at most {probe.max_pictures} picture, price unknown to this pack"
            unknown += probe.max_pictures
        print(f"  - {probe.name}: {cost}", file=out)
    pictures = sum(p.max_pictures for p in probes)
    parts = [f"{v:g} {c} at known prices" for c, v in known.items()]
    if unknown:
        parts.append(f"{unknown} picture(s) at prices this pack does not know (put yours in {ENV_PRICES}, or see "
                     "the price list of your region)")
    print(f"Price: at most {pictures} picture(s) billed, one per generation: {'; '.join(parts) or 'nothing'}. "
          "The cancel (if in time) and the free calls bill nothing.", file=out)


def _models_for(endpoint: Endpoint) -> list[str]:
    if endpoint.overridden:
        return list(MODELS)  # the user's endpoint decides
    return [m for m, spec in MODELS.items() if endpoint.region in spec.regions]


def _emulator_root(base_url: str) -> str:
    return base_url[: -len("/api/v1")] if base_url.endswith("/api/v1") else base_url


def _endpoint_emulator_settings(endpoint: Endpoint) -> dict[str, Any] | None:
    """If DASHSCOPE_HTTP_BASE_URL is this pack's emulator, its settings (asked without the key)."""
    if not endpoint.overridden:
        return None
    try:
        r = requests.get(_emulator_root(endpoint.base_url) + "/__emulator__/state", timeout=5)
        settings = r.json().get("settings") if r.status_code == 200 else None
    except (requests.RequestException, ValueError, AttributeError):
        return None
    return settings if isinstance(settings, dict) else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m api.probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--yes", action="store_true", help="make the real calls (billed; the plan says how much)")
    parser.add_argument("--region", default=None, help="singapore, virginia or beijing (default: DASHSCOPE_REGION, "
                                                      "else singapore); DASHSCOPE_HTTP_BASE_URL wins")
    parser.add_argument("--models", default="", help="comma-separated models to probe (default: all the region offers)")
    parser.add_argument("--record", default="", help="write the real answers (no key, URLs cut) to this JSON file")
    parser.add_argument("--replay", default="", help="compare answers recorded with --record against the emulator "
                                                     "(offline, free)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any answer differs")
    return parser


def ask_both(probes: list[Probe], endpoint: Endpoint, key: ApiKey, recorded: dict[str, Any] | None,
             mirrored: dict[str, Any] | None, out) -> Results:
    """Every probe at the endpoint (or from the recording) and, at the same time, at a reference emulator
    started here."""
    from ..emulator import EmulatorServer, Settings

    settings = Settings(api_keys=[key.reveal()])
    if mirrored:
        # The endpoint is this pack's emulator: the reference one gets its settings (its key rule, its timing),
        # so that a comparison of the emulator with itself compares like with like.
        settings = Settings(**{k: v for k, v in mirrored.items() if hasattr(settings, k)})
        print("The endpoint is this pack's emulator: nothing real is billed; its settings are mirrored.", file=out)
    reference = EmulatorServer(settings=settings).start()
    try:
        real_side = Side(Transport(endpoint, key, NO_RETRY), poll=2.0 if not mirrored else 0.1)
        emu_side = Side(Transport(Endpoint(reference.base_url, None, True), key, NO_RETRY), poll=0.1)

        def one(probe: Probe) -> tuple[Answers, Answers]:
            if recorded is not None:
                return {k: Answer.from_json(v) for k, v in recorded[probe.name].items()}, probe.run(emu_side)
            with ThreadPoolExecutor(max_workers=1) as beside:
                real = beside.submit(probe.run, real_side)
                emulated = probe.run(emu_side)
                return real.result(), emulated

        print(f"\nRunning {len(probes)} probe(s)...", file=out, flush=True)
        with ThreadPoolExecutor(max_workers=4) as pool:
            return dict(zip([p.name for p in probes], pool.map(one, probes)))
    finally:
        reference.stop()


def cost_line(probes: list[Probe], results: Results, region: str | None, mirrored: bool) -> str:
    """What the endpoint says it billed, priced where the price is known."""
    costs: dict[str, float] = {}
    pictures = unpriced = 0
    for probe in probes:
        n = billed(results[probe.name][0])
        pictures += n
        price = unit_price(probe.model, region) if probe.model else None
        if n and price:
            costs[price[1]] = costs.get(price[1], 0.0) + n * price[0]
        elif n:
            unpriced += n
    cost = ", ".join(f"≈ {v:g} {c}" for c, v in costs.items())
    return (f"Cost: {pictures} picture(s) billed by the endpoint" + (f" ({cost})" if cost else "")
            + (f"; {unpriced} at prices this pack does not know" if unpriced else "")
            + (" (an emulator: nothing real)" if mirrored else "") + ".")


def run(argv: list[str] | None = None, out=None) -> int:
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        endpoint = resolve_endpoint(args.region)
    except ConfigError as exc:
        print(f"probe: {exc}", file=out)
        return 2
    models = _models_for(endpoint)
    if args.models:
        wanted = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = [m for m in wanted if m not in MODELS]
        if unknown:
            print(f"probe: unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}", file=out)
            return 2
        models = [m for m in wanted if m in models] or []
    if not models:
        print(f"probe: no model is offered in {REGION_LABELS.get(endpoint.region or '', endpoint.label)}", file=out)
        return 0
    probes = plan(models, endpoint.region)

    recorded: dict[str, dict[str, Any]] | None = None
    if args.replay:
        with open(args.replay, encoding="utf-8") as fh:
            recorded = json.load(fh)
        probes = [p for p in probes if p.name in recorded]
        print(f"Replaying {len(probes)} recorded probe(s) from {args.replay} against the emulator (nothing is "
              "sent to any real service).", file=out)
        key = ApiKey("sk-probe-replay-0000")
    else:
        print_plan(probes, endpoint, out)
        try:
            # The settings page's keys live in the pack's state folder (WAN_STATE_DIR names ComfyUI's).
            key = resolve_api_key(region=args.region, state_folder=state_dir())
        except MissingApiKeyError:
            print("\nNo DashScope API key found, so nothing was sent. The probe compares the real service with "
                  "this pack's emulator and needs a key of the region above: set DASHSCOPE_API_KEY (or "
                  "DASHSCOPE_API_KEY_FILE_PATH, or ~/.dashscope/api_key), then run `python -m api.probe --yes` "
                  "(or `make probe ARGS=--yes`).", file=out)
            return 0
        if not args.yes:
            print("\nNothing was sent. To make these calls (and pay for them), run it again with --yes "
                  "(`python -m api.probe --yes`, or `make probe ARGS=--yes`).", file=out)
            return 0

    mirrored = None if recorded is not None else _endpoint_emulator_settings(endpoint)
    results = ask_both(probes, endpoint, key, recorded, mirrored, out)
    rows: list[Row] = [row for p in probes for row in compare(p, *results[p.name])]
    print("", file=out)
    print_table(rows, out)
    differ = sum(r.verdict == "differ" for r in rows)
    print(f"\n{len(rows)} answers compared: {len(rows) - differ} agree, {differ} differ.", file=out)
    if recorded is None:
        print(cost_line(probes, results, endpoint.region, bool(mirrored)), file=out)
    if args.record and recorded is None:
        with open(args.record, "w", encoding="utf-8") as fh:
            json.dump({p.name: {k: a.to_json() for k, a in results[p.name][0].items()} for p in probes}, fh,
                      ensure_ascii=False, indent=1)
        print(f"Real answers written to {args.record} (no key; result URLs cut at the '?').", file=out)
    if differ:
        print("A difference means the emulator (or the pack) assumes something the service does not do: please "
              "report it with this table (see docs/emulator.md, 'Checking the emulator against the real service').",
              file=out)
    return 1 if (differ and args.strict) else 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except WanError as exc:
        print(f"probe: {exc}", file=sys.stderr)
        return 2
