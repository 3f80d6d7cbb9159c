"""The SSE frame parser on the vendor's own frames, and streams that break."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import requests
from PIL import Image

from api import build_request, errors
from api.money.billing import made
from api.service.sse import SSEParser
from api.service.transport import Timeouts
from apitest import cancel_once_seen, make_client

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


def _served(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(requests.get(url, timeout=10).content)).convert("RGB"))


def _assert_pictures_are_the_served_ones(result) -> None:
    assert len(result.images) == len(result.urls)
    for image, url in zip(result.images, result.urls):
        assert np.array_equal(image.pixels, _served(url)), f"{url}: not the picture the service made"


def _announced(emulator) -> list[str]:
    """The pictures (their result names) whose frames the emulator sent before the stream stopped, in order:
    from the emulator's own record, not from what the client made of it."""
    entry = next(e for e in emulator.backend.log if e["kind"] == "stream")
    made_ = sorted((r for r in emulator.backend.results.values() if r.request_id == entry["request_id"]),
                   key=lambda r: r.index)
    return [r.token for r in made_[:entry["images_announced"]]]


def _names(result) -> list[str]:
    return [url.split("/results/")[1].split(".png")[0] for url in result.urls]


def _assert_exactly_the_announced_pictures(emulator, result) -> list[str]:
    announced = _announced(emulator)
    assert 1 <= len(announced) < 4, f"the fault should stop the stream after some of its 4 pictures: {announced}"
    assert _names(result) == announced, "not the pictures whose frames arrived before the stream stopped"
    _assert_pictures_are_the_served_ones(result)
    return announced


def test_error_frame_mid_stream_returns_the_pictures_made_before_it(emulator):
    client = make_client(emulator)
    emulator.backend.add_fault({"kind": "stream_error", "status": 400, "code": "DataInspectionFailed",
                                "message": "Output data may contain inappropriate content."})
    result = client.generate(_interleave(), transport="stream")
    assert "DataInspectionFailed" in result.incomplete and result.request_id
    _assert_exactly_the_announced_pictures(emulator, result)
    # What arrived was made and is billed; the rest was not made (ASSUMPTIONS["stream_error_rest"]).
    assert result.billing == made(len(result.images), result.billing.why) and not result.billing.unsure
    assert emulator.backend.stats()["images_billed"] == len(result.images)


def test_cut_stream_keeps_what_arrived(emulator):
    client = make_client(emulator)
    emulator.backend.add_fault({"kind": "stream_cut"})
    result = client.generate(_interleave(), transport="stream")
    announced = _assert_exactly_the_announced_pictures(emulator, result)
    assert "the stream broke" in result.incomplete or "ended before" in result.incomplete, result.incomplete
    assert f"{len(announced)} image(s)" in result.incomplete, result.incomplete
    assert result.text, "the text that arrived is kept too"
    # Those were made; the service may have gone on making (and billing) the rest.
    assert result.billing.pictures == len(result.images) and result.billing.unsure
    assert emulator.backend.stats()["creations"] == 1
    assert len([e for e in emulator.backend.log if e["kind"] == "stream"]) == 1, "a cut stream is never resent"


def test_idle_read_timeout_ends_the_read_and_keeps_what_arrived(emulator):
    client = make_client(emulator, timeouts=Timeouts(stream_idle=0.5))
    emulator.backend.add_fault({"kind": "stream_stall", "delay": 30.0})
    result = client.generate(_interleave(), transport="stream")
    assert "idle-read timeout" in result.incomplete, result.incomplete
    # Waiting the 30 s stall out would have brought all 4: the read ended at the idle timeout instead, with
    # the pictures sent before the silence.
    announced = _announced(emulator)
    assert 1 <= len(announced) < 4 and _names(result) == announced, (announced, _names(result))
    _assert_pictures_are_the_served_ones(result)


def test_interrupting_a_stream_returns_at_once(emulator):
    client = make_client(emulator)
    emulator.backend.configure(service_time=20.0)
    cancel = cancel_once_seen(emulator, "stream", then=0.6)
    with pytest.raises(errors.Interrupted) as stopped:
        client.generate(_interleave(), transport="stream", cancel=cancel)
    # It returned while the stream was still going: a client that read on to the end (20 s) would have seen
    # all four pictures announced first. What had arrived comes with the interrupt.
    announced = _announced(emulator)
    assert len(announced) < 4, "the client read the stream to its end before stopping"
    assert _names(stopped.value.partial) == announced[:len(stopped.value.partial.urls)]
