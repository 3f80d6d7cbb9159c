"""Recent paid requests, to get their pictures again without paying: the WanRecentResults node and

    python -m api.recent [--state-dir DIR] [--region REGION]

list the requests paid (or maybe paid) with the current key at the current endpoint on this state folder in
the last 24 hours, newest first, from the journal (journal.py). Fetching one never sends a billable request:
it serves the result cache, downloads the recorded URLs, or polls the recorded task. This is the way back to
a picture after Cancel, a download that failed, a restart, or a seed that moved on (control after
generate): all of them leave the paid answer in the journal.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .errors import WanInputError
from .money.journal import CREATED, FETCHED, PAID, Answer
from .result import Emitter, OnProgress, WanResult


def listing(client: Any) -> list[Answer]:
    """The client's account's recent paid requests on its store, newest first (1 = the most recent)."""
    if client.store is None:
        return []
    return client.store.journal.recent(client.account)


def _state(rec: Answer) -> str:
    if rec.state == CREATED:
        return "task not ended yet (fetched when it ends)"
    if rec.state == PAID:
        return "paid, not fetched yet"
    if rec.state == FETCHED:
        return "fetched"
    return rec.state


def _pictures(rec: Answer) -> str:
    if rec.billing is None or (rec.billing.unsure and not rec.billing.pictures):
        return f"up to {rec.max_pictures} picture(s)"
    return f"{rec.billing.pictures} picture(s)"


def describe_choice(pick: int, rec: Answer) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(rec.created))
    prompt = rec.prompt.replace("\n", " ")
    prompt = prompt if len(prompt) <= 40 else prompt[:39] + "…"
    line = f"{pick}. {when}  {rec.model} ({rec.mode})  \"{prompt}\"  {_pictures(rec)}, {_state(rec)}"
    if rec.incomplete:
        line += " (cut short)"
    return line


def describe_listing(entries: list[Answer], limit: int = 20) -> str:
    if not entries:
        return "No request was paid with this key at this endpoint in the last 24 hours."
    lines = [describe_choice(i, rec) for i, rec in enumerate(entries[:limit], 1)]
    if len(entries) > limit:
        lines.append(f"… and {len(entries) - limit} older")
    return "\n".join(lines)


def fetch(client: Any, pick: int, *, cancel: threading.Event | None = None,
          on_progress: OnProgress | None = None) -> tuple[WanResult, Answer, list[Answer]]:
    """The pictures of choice `pick` (1 = the most recent). Sends nothing billable."""
    entries = listing(client)
    if pick < 1 or pick > len(entries):
        have = f"only {len(entries)}" if entries else "none"
        raise WanInputError("pick", f"is {pick}, but there are {have} in the last 24 hours for this key at "
                                    f"{client.endpoint.label}:\n{describe_listing(entries)}")
    rec = entries[pick - 1]
    started = time.monotonic()
    result = client.resumable.deliver(rec, Emitter(on_progress, started), cancel)
    result.elapsed = time.monotonic() - started
    if not result.from_cache:
        result.paid_before = True   # billed when it was made, not by this fetch
    return result, rec, entries


def main(argv: list[str] | None = None) -> int:
    from .client import WanClient
    from .config import cli_state_dir
    from .money.store import Store

    parser = argparse.ArgumentParser(prog="python -m api.recent",
                                     description="Requests paid with this key in the last 24 hours (what the "
                                                 "Wan Recent Results node offers).")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="the folder with journal.sqlite3: ComfyUI/user/wan_image (found when run from the pack "
                             "inside custom_nodes), or WAN_STATE_DIR")
    parser.add_argument("--region", default=None, help="the region whose key and endpoint to list (default: "
                                                       "DASHSCOPE_REGION, else Singapore)")
    args = parser.parse_args(argv)
    folder = args.state_dir or cli_state_dir()
    if not (folder / "journal.sqlite3").exists():
        print(f"Nothing paid yet: there is no journal in {folder} (another folder: --state-dir).")
        return 0
    with WanClient(region=args.region, store=Store(folder)) as client:
        print(f"Paid in the last 24 hours with key {client.transport.api_key.masked} at {client.endpoint.label}")
        print(f"journal: {client.store.journal.path}\n")
        print(describe_listing(listing(client), limit=100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
