"""Talking to DashScope: HTTP with its retry rules and the never-send-twice rule (transport.py), the service's
calls (calls.py: sync, stream, task create / query / cancel), reading its answers (answers.py, sse.py),
waiting for a task (waiting.py), fetching result pictures (download.py), and the shared rate limits and
generation slots (ratelimit.py). Nothing here decides money; it reports what it knows to money/billing.py."""
