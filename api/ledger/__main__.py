"""python -m api.ledger: the pictures billed today and this month, per model; the ledger as CSV."""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import IO

from ..config import cli_state_dir
from . import FIELDS, LEDGER_FILE, Ledger
from .report import report_text, summary


def export_csv(ledger: Ledger, out: IO[str], since_day: str | None = None) -> int:
    rows = ledger.entries(since_day)
    writer = csv.DictWriter(out, fieldnames=FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(row["time"]))})
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.ledger",
                                     description="Pictures billed today and this month, per model; CSV export.")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="the folder with ledger.sqlite3: ComfyUI/user/wan_image (found when run from the pack "
                             "inside custom_nodes), or WAN_STATE_DIR")
    parser.add_argument("--csv", metavar="FILE", help="write every entry (or those since --since) as CSV; - for stdout")
    parser.add_argument("--since", metavar="YYYY-MM-DD", help="CSV: only entries from this local day on")
    args = parser.parse_args(argv)
    folder = args.state_dir or cli_state_dir()
    if not (folder / LEDGER_FILE).exists():
        # Nothing billed through this folder yet: that is an answer, not an error.
        print(f"No pictures billed yet: there is no ledger in {folder} (another folder: --state-dir).")
        return 0
    ledger = Ledger(folder)
    if args.csv:
        if args.csv == "-":
            count = export_csv(ledger, sys.stdout, args.since)
        else:
            with open(args.csv, "w", newline="", encoding="utf-8") as out:
                count = export_csv(ledger, out, args.since)
            print(f"{count} entries written to {args.csv}", file=sys.stderr)
        return 0
    print(report_text(summary(ledger)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
