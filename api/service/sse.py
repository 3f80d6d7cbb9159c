"""Server-sent events as DashScope writes them.

```
id:1
event:result
:HTTP_STATUS/200
data:{"output": {...}, "usage": {...}, "request_id": "..."}

```
Frames end at a blank line. `:HTTP_STATUS/NNN` is an SSE comment that DashScope uses to carry the status
of the frame (an `event:error` frame says 4xx there while the response itself is 200). There is no
`[DONE]` sentinel: the last frame has `"finished": true`; a stream that ends before it was cut.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator


@dataclass
class SSEEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    status: int | None = None

    def json(self) -> Any:
        return json.loads(self.data) if self.data else None


class SSEParser:
    """Incremental: feed bytes as they arrive, get complete events back. Accepts LF, CRLF and CR."""

    def __init__(self) -> None:
        self._buffer = b""
        self._reset()

    def _reset(self) -> None:
        self._event = "message"
        self._data: list[str] = []
        self._id: str | None = None
        self._status: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buffer += chunk
        events: list[SSEEvent] = []
        while True:
            line, sep, rest = self._split_line(self._buffer)
            if sep is None:
                break
            self._buffer = rest
            event = self._line(line.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def finish(self) -> list[SSEEvent]:
        """End of stream: a trailing lone CR ends its line. A frame without its blank line stays undelivered."""
        if self._buffer.endswith(b"\r"):
            return self.feed(b"\n")
        return []

    @staticmethod
    def _split_line(buf: bytes) -> tuple[bytes, bytes | None, bytes]:
        lf, cr = buf.find(b"\n"), buf.find(b"\r")
        if cr == -1 or (lf != -1 and lf < cr):
            if lf == -1:
                return b"", None, buf
            return buf[:lf], b"\n", buf[lf + 1:]
        if cr + 1 == len(buf):  # a lone \r at the end may be the first half of \r\n: wait for more
            return b"", None, buf
        if buf[cr + 1] == 0x0A:
            return buf[:cr], b"\r\n", buf[cr + 2:]
        return buf[:cr], b"\r", buf[cr + 1:]

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            if not self._data:  # as the SSE spec says: a frame without data dispatches nothing
                self._reset()
                return None
            event = SSEEvent(self._event, "\n".join(self._data), self._id, self._status)
            self._reset()
            return event
        if line.startswith(":"):
            comment = line[1:].strip()
            if comment.upper().startswith("HTTP_STATUS/"):
                try:
                    self._status = int(comment.split("/", 1)[1].strip())
                except ValueError:
                    pass
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            self._id = value
        # "retry" and unknown fields are ignored, as the SSE spec says.
        return None


def events(read: Callable[[int], bytes], size: int = 65536) -> Iterator[SSEEvent]:
    """Every event of a stream as its bytes arrive, `read(n)` giving what has come (b"" at the end)."""
    parser = SSEParser()
    while True:
        chunk = read(size)
        if not chunk:
            yield from parser.finish()
            return
        yield from parser.feed(chunk)
