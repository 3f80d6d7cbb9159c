"""What a running ComfyUI server does, watched from outside: its threads and open files (from Linux's
/proc), and every message it sends to a client's websocket. For the big fan-out's test and benchmark."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import threading
import time


class Sampler:
    """Peaks of the server's threads and open files, read from /proc every few milliseconds."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.threads = self.files = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _count(self, what: str) -> int:
        try:
            return len(os.listdir(f"/proc/{self.pid}/{what}"))
        except OSError:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.threads = max(self.threads, self._count("task"))
            self.files = max(self.files, self._count("fd"))
            time.sleep(0.005)

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class Messages:
    """Every message ComfyUI sends to this client's websocket: (arrival time, kind, node, text), the text for a
    node's status line (its progress text)."""

    def __init__(self, host) -> None:
        self.url = host.url.replace("http://", "ws://") + f"/ws?clientId={host.client_id}"
        self.seen: list[tuple[float, str, str | None, str | None]] = []
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)

    async def _listen(self) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(self.url) as ws:
                self._ready.set()
                while not self._stop.is_set():
                    try:
                        msg = await ws.receive(timeout=0.2)
                    except asyncio.TimeoutError:
                        continue
                    now = time.monotonic()
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        data = json.loads(msg.data)
                        body = data.get("data") or {}
                        node = body.get("node") if data["type"] != "progress_state" else ",".join(
                            sorted(n for n, s in (body.get("nodes") or {}).items() if s.get("state") == "running"))
                        self.seen.append((now, data["type"], node, None))
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        (kind,) = struct.unpack(">I", msg.data[:4])
                        if kind == 3:   # progress text: node id length, node id, text
                            (length,) = struct.unpack(">I", msg.data[4:8])
                            self.seen.append((now, "progress_text", msg.data[8:8 + length].decode(),
                                              msg.data[8 + length:].decode()))
                    elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        return

    def status_lines(self, node: str) -> list[str]:
        """What the node showed as its status, in order."""
        return [text for _, kind, n, text in self.seen if kind == "progress_text" and n == node]

    def shows(self, node: str, words: str, timeout: float = 10.0) -> bool:
        """Whether the node's status said `words`, waiting for a line still on its way."""
        deadline = time.monotonic() + timeout
        while not any(words in line for line in self.status_lines(node)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def __enter__(self) -> "Messages":
        self._thread.start()
        assert self._ready.wait(10), "could not open ComfyUI's websocket"
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def most_in_one_second(self, kind: str, node: str) -> int:
        """The most messages of `kind` for `node` within any one second."""
        times = [t for t, k, n, _ in self.seen if k == kind and n == node]
        most = 0
        start = 0
        for end, t in enumerate(times):
            while t - times[start] >= 1.0:
                start += 1
            most = max(most, end - start + 1)
        return most
