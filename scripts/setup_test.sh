#!/usr/bin/env bash
# Everything `make test` needs, set up once: the project's venv (with the browser's and the floor's
# packages), both ComfyUI hosts, Debian's Chromium. The 0.33.0 host is built beside the venv, at the same
# time (each is mostly pip unpacking wheels; two cores do two). Idempotent (see scripts/setup_cache.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_host.sh 0.33.0 &
newest=$!
status=0
{ bash scripts/setup_venv.sh && bash scripts/setup_host.sh 0.3.75 && bash scripts/setup_browser.sh &&
  bash scripts/setup_floor.sh; } || status=$?
wait "$newest" || status=$?
exit "$status"
