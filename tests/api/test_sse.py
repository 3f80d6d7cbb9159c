"""The SSE frame parser on the vendor's own frames, and streams that break."""

from __future__ import annotations

import json
import threading
import time

import pytest

from api import build_request, errors
from api.sse import SSEParser
from api.transport import Timeouts
from apitest import make_client

VENDOR_FRAMES = (
    'id:1\nevent:result\n:HTTP_STATUS/200\ndata:{"output":{"choices":[{"finish_reason":"null","message":'
    '{"role":"assistant","content":[{"type":"text","text":"Chili"}]}}],"finished":false},"usage":'
    '{"input_tokens":28,"output_tokens":0,"total_tokens":28,"image_count":0,"size":"0*0"},'
    '"request_id":"5b98e8f3"}\n\n'
    'id:2\nevent:result\n:HTTP_STATUS/200\ndata:{"output":{"choices":[{"finish_reason":"stop","message":'
    '{"role":"assistant","content":[{"type":"image","image":"https://x/y.png?Expires=1"}]}}],"finished":true},'
    '"usage":{"image_count":1,"size":"1280*1280"},"request_id":"5b98e8f3"}\n\n'
)


def test_vendor_frames_parse():
    events = SSEParser().feed(VENDOR_FRAMES.encode())
    assert [(e.id, e.event, e.status) for e in events] == [("1", "result", 200), ("2", "result", 200)]
    assert events[0].json()["output"]["choices"][0]["message"]["content"][0]["text"] == "Chili"
    assert events[1].json()["output"]["finished"] is True


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_frames_split_anywhere_with_any_newline(newline):
    data = VENDOR_FRAMES.replace("\n", newline).encode()
    for cut in range(1, len(data), 7):
        parser = SSEParser()
        events = parser.feed(data[:cut]) + parser.feed(data[cut:]) + parser.finish()
        assert len(events) == 2, (newline, cut)
        assert events[1].json()["usage"]["image_count"] == 1


def test_byte_by_byte_and_multiline_data_and_comments():
    text = ": keep-alive\n\nevent:error\n:HTTP_STATUS/400\ndata:{\"code\":\ndata:\"DataInspectionFailed\"}\n\n"
    parser = SSEParser()
    events = []
    for byte in text.encode():
        events += parser.feed(bytes([byte]))
    assert len(events) == 1  # a lone comment dispatches nothing
    assert events[0].event == "error" and events[0].status == 400
    assert json.loads(events[0].data) == {"code": "DataInspectionFailed"}


def test_an_incomplete_frame_is_not_dispatched():
    parser = SSEParser()
    assert parser.feed(b"id:1\nevent:result\ndata:{\"a\":1}\n") == []


def _interleave(n=4):
    return build_request("wan2.6-image", "a four-step tutorial for tea", [], mode="interleave", max_images=n,
                         size="1024*1024")


def test_text_arrives_live_and_whole(emulator):
    client = make_client(emulator)
    pieces = []
    result = client.generate(_interleave(), transport="stream",
                             on_progress=lambda p: p.kind == "text" and pieces.append(p.text))
    assert len(pieces) > 20, "text should arrive word by word"
    assert "".join(pieces).replace(" ", "") == "".join(
        i["text"] for i in result.content if i["type"] == "text").replace(" ", "")
    expected = emulator.backend.interleave_texts(type("J", (), {"prompt": "a four-step tutorial for tea"}), 4)
    assert [t.strip() for t in result.text.split("\n\n")] == expected


def test_error_frame_mid_stream(emulator):
    client = make_client(emulator)
    emulator.backend.add_fault({"kind": "stream_error", "status": 400, "code": "DataInspectionFailed",
                                "message": "Output data may contain inappropriate content."})
    with pytest.raises(errors.ContentModerationError) as info:
        client.generate(_interleave(), transport="stream")
    assert info.value.status == 400 and info.value.request_id


def test_cut_stream_keeps_what_arrived(emulator):
    client = make_client(emulator)
    emulator.backend.add_fault({"kind": "stream_cut"})
    with pytest.raises(errors.StreamCutError) as info:
        client.generate(_interleave(), transport="stream")
    partial = info.value.partial
    assert info.value.maybe_billed
    assert partial.text and 1 <= len(partial.urls) < 4, (partial.text, partial.urls)
    assert emulator.backend.stats()["creations"] == 1
    assert len([e for e in emulator.backend.log if e["kind"] == "stream"]) == 1, "a cut stream is never resent"


def test_idle_read_timeout(emulator):
    client = make_client(emulator, timeouts=Timeouts(stream_idle=0.5))
    emulator.backend.add_fault({"kind": "stream_stall", "delay": 3.0})
    started = time.monotonic()
    with pytest.raises(errors.StreamCutError, match="idle-read timeout"):
        client.generate(_interleave(), transport="stream")
    assert time.monotonic() - started < 2.5


def test_interrupting_a_stream_returns_at_once(emulator):
    client = make_client(emulator)
    emulator.backend.configure(service_time=20.0)
    cancel = threading.Event()
    threading.Timer(0.6, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(errors.Interrupted):
        client.generate(_interleave(), transport="stream", cancel=cancel)
    assert time.monotonic() - started < 1.6
