"""Each node's execute with real tensors, against the emulator, inside a loaded ComfyUI."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
import sys
import threading
import time

import numpy as np
import pytest
import requests
import torch
from PIL import Image

from conftest import api, tensors, wan


def run(coro):
    return asyncio.run(coro)


def img(h, w, seed=0, channels=3):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((1, h, w, channels), generator=g)


def outputs(result):
    images, text, info = result.args
    return images, text, json.loads(info)


def created(emulator):
    return [e for e in emulator.backend.log if e.get("billable")]


def most_at_once(emulator):
    """The most generations the service ran at the same time, from the emulator's own task times (not the
    wall clock of this busy machine): 1 when the requests went one after another."""
    events = []
    for task in list(emulator.backend.tasks.values()):
        events += [(task.created, 1), (task.created + task.queue_time + task.service_time, -1)]
    peak = level = 0
    for _, step in sorted(events):
        level += step
        peak = max(peak, level)
    return peak


def decoded(entry):
    return [np.asarray(Image.open(io.BytesIO(i.data)).convert("RGB")) for i in entry["images"]]


def test_edit_sends_inputs_in_order_and_returns_what_was_served(emulator):
    a, b = img(300, 420, 1), img(520, 260, 2)
    result = run(wan.WanImageEdit.execute(model="wan2.7-image", prompt="fuse", n=2, size="1K", seed=4,
                                          input_format="png", image=a, image_2=b))
    images, text, info = outputs(result)
    entry = created(emulator)[0]
    sent = decoded(entry)
    for tensor, got in zip((a, b), sent):
        expect = np.floor(tensor[0].numpy() * 255 + 0.5).astype(np.uint8)
        assert np.array_equal(got, expect)
    assert images.shape[0] == 2 and images.dtype == torch.float32
    for i, url in enumerate(r["url"] for r in info["results"]):
        served = np.array(api.service.download.Downloader().fetch(url).pixels)   # (read-only as served)
        assert torch.equal(images[i], torch.from_numpy(served).float() / 255)
    assert info["images_billed"] == 2 and info["task_id"] and info["request_id"]
    assert [x["input"] for x in info["inputs"]] == ["image", "image_2"]
    assert text == ""


def test_batches_expand_in_order_and_alpha_and_grey_are_handled(emulator):
    batch = torch.cat([torch.full((1, 256, 256, 4), 0.2), torch.full((1, 256, 256, 4), 0.6)])
    batch[..., 3] = 1.0
    grey = torch.full((1, 256, 256, 1), 0.8)
    run(wan.WanImageEdit.execute(model="wan2.6-image", prompt="x", n=1, size="1K", seed=1, input_format="png",
                                 image=batch, image_2=grey))
    sent = decoded(created(emulator)[0])
    assert [int(s.mean()) for s in sent] == [51, 153, 204]
    assert all(s.shape == (256, 256, 3) for s in sent)


def test_text_to_image_sequential_and_interleave(emulator):
    images, _, info = outputs(run(wan.WanTextToImage.execute(model="wan2.7-image-pro", prompt="a fox", n=3,
                                                             size="1K", seed=2, thinking_mode=False)))
    assert images.shape == (3, 1024, 1024, 3)
    assert created(emulator)[-1]["body"]["parameters"]["thinking_mode"] is False
    images, _, info = outputs(run(wan.WanSequential.execute(model="wan2.7-image", prompt="12 months", n=12,
                                                            size="1K", seed=3)))
    assert images.shape[0] == 12 and info["images_billed"] == 12
    images, text, info = outputs(run(wan.WanInterleave.execute(model="wan2.6-image", prompt="tea in 4 steps",
                                                               max_images=4, size="1024*1024", seed=5,
                                                               image=img(300, 300))))
    assert images.shape[0] == 4 and text.count("Step ") == 4
    assert created(emulator)[-1]["kind"] == "stream"


def test_a_cut_stream_gives_the_pictures_that_arrived_and_says_so(emulator):
    """The emulator cuts the stream half way: the node returns exactly the pictures whose frames had arrived
    (they are paid for), as its IMAGE, and its info says the answer is incomplete."""
    emulator.backend.add_fault({"kind": "stream_cut", "model": "wan2.6-image"})
    images, text, info = outputs(run(wan.WanInterleave.execute(model="wan2.6-image", prompt="tea in 4 steps, cut",
                                                               max_images=4, size="1024*1024", seed=6)))
    entry = next(e for e in emulator.backend.log if e["kind"] == "stream")
    made = sorted((r for r in emulator.backend.results.values() if r.request_id == entry["request_id"]),
                  key=lambda r: r.index)
    announced = [r.token for r in made[:entry["images_announced"]]]
    assert 1 <= len(announced) < 4, f"the cut should come after some of the 4 pictures: {announced}"
    assert [r["url"].split("/results/")[1].split(".png")[0] for r in info["results"]] == announced
    assert images.shape[0] == len(announced), f"{images.shape[0]} pictures for {len(announced)} that arrived"
    for i, r in enumerate(info["results"]):
        served = np.asarray(Image.open(io.BytesIO(requests.get(r["url"], timeout=10).content)).convert("RGB"))
        got = np.floor(images[i].numpy() * 255 + 0.5).astype(np.uint8)
        assert np.array_equal(got, served), f"picture {i} is not the one the service made"
    assert "the stream broke" in info["incomplete"] or "ended before" in info["incomplete"], info
    assert f"{len(announced)} image(s)" in info["incomplete"], info["incomplete"]
    assert info["images_billed"] == len(announced)


def test_refused_inputs_name_the_node_input(emulator):
    with pytest.raises(api.WanInputError) as info:
        run(wan.WanImageEdit.execute(model="wan2.5-i2i-preview", prompt="x", n=1, seed=0,
                                     image=img(300, 300), image_2=img(300, 300), image_3=img(300, 300),
                                     image_4=img(300, 300)))
    assert "at most 3" in str(info.value)
    # (wan2.5's 1:4-4:1 is the reference's alone and left to the service; wan2.7's 1:8-8:1 is its page's.)
    with pytest.raises(api.WanInputError) as info:
        run(wan.WanImageEdit.execute(model="wan2.7-image", prompt="x", n=1, seed=0,
                                     image=img(300, 300), image_2=img(100, 1000)))
    assert info.value.param == "image_2" and "1:8 to 8:1" in str(info.value)
    with pytest.raises(api.WanInputError, match="negative"):
        run(wan.WanImageEdit.execute(model="wan2.7-image", prompt="x", n=1, seed=0, image=img(300, 300),
                                     negative_prompt="blurry"))
    with pytest.raises(api.WanInputError, match="NaN"):
        run(wan.WanImageEdit.execute(model="wan2.7-image", prompt="x", n=1, seed=0,
                                     image=torch.full((1, 300, 300, 3), float("nan"))))
    with pytest.raises(api.WanInputError, match="empty batch"):
        run(wan.WanImageEdit.execute(model="wan2.7-image", prompt="x", n=1, seed=0,
                                     image=torch.zeros((0, 300, 300, 3))))
    assert emulator.backend.log == []


def test_boxes_from_masks_scale_and_pair_with_their_pictures(emulator):
    mask = torch.zeros((1, 200, 300))
    mask[0, 10:50, 20:80] = 1
    mask[0, 100:180, 150:290] = 1
    mask[0, 0, 299] = 1  # a speck of one pixel is ignored
    run(wan.WanBBox.execute(model="wan2.7-image", prompt="x", n=1, size="1K", seed=0,
                            image=img(400, 600), mask=mask, image_2=img(300, 300),
                            boxes="[[], [[0, 0, 100, 100]]]"))
    params = created(emulator)[0]["body"]["parameters"]
    # The mask is half the picture's size: its boxes are scaled by 2 onto the picture.
    assert params["bbox_list"] == [[[300, 200, 580, 360], [40, 20, 160, 100]], [[0, 0, 100, 100]]]
    three = torch.zeros((1, 300, 300))
    three[0, 0:10, 0:10] = three[0, 50:60, 50:60] = three[0, 100:110, 100:110] = 1
    with pytest.raises(api.WanInputError, match="3 separate regions"):
        run(wan.WanBBox.execute(model="wan2.7-image", prompt="x", n=1, seed=0, image=img(300, 300), mask=three))


def test_boxes_follow_the_picture_numbering_with_a_batch_and_a_gap(emulator):
    """A batch of 2 in image plus image_3 (image_2 empty) is three pictures; the third list of boxes lands on
    image_3, and the node hands back the pictures it sent, numbered the same way, for the box editor."""
    batch = torch.cat([img(300, 400, 1), img(300, 400, 2)])
    mask3 = torch.zeros((1, 120, 120))  # half the size of image_3: its box doubles
    mask3[0, 10:30, 15:45] = 1
    result = run(wan.WanBBox.execute(model="wan2.7-image", prompt="x", n=1, size="1K", seed=3,
                                     image=batch, image_3=img(240, 240, 3), mask_3=mask3,
                                     boxes="[[], [[10, 10, 50, 50]], [[100, 100, 150, 190]]]"))
    params = created(emulator)[0]["body"]["parameters"]
    assert params["bbox_list"] == [[], [[10, 10, 50, 50]], [[30, 20, 90, 60], [100, 100, 150, 190]]]
    sent = result.ui["wan_sent"]
    assert [(p["picture"], p["label"], p["width"], p["height"]) for p in sent] == [
        (1, "image[0]", 400, 300), (2, "image[1]", 400, 300), (3, "image_3", 240, 240)]
    import folder_paths

    third = Image.open(Path(folder_paths.get_temp_directory()) / sent[2]["subfolder"] / sent[2]["filename"])
    expected = (img(240, 240, 3)[0].numpy() * 255 + 0.5).astype(np.uint8)
    assert np.abs(np.asarray(third.convert("RGB")).astype(int) - expected).max() <= 1
    # One list too many for the three pictures (what the editor did when it numbered by input slot).
    with pytest.raises(api.WanInputError, match="4 lists of boxes for 3 pictures"):
        run(wan.WanBBox.execute(model="wan2.7-image", prompt="x", n=1, seed=3, image=batch, image_3=img(240, 240),
                                boxes="[[], [], [], [[0, 0, 10, 10]]]"))


def test_mask_regions_are_eight_connected():
    m = np.zeros((10, 10))
    m[1, 1] = m[2, 2] = m[3, 3] = 1      # a diagonal line is one region
    m[6:9, 6:9] = 1
    m[7, 7] = 0                          # a ring is one region
    assert tensors.mask_regions(m, min_fraction=0) == [[6, 6, 9, 9], [1, 1, 4, 4]]
    assert tensors.mask_regions(np.zeros((5, 5))) == []


def test_pictures_of_different_sizes_never_crash():
    a = np.zeros((100, 200, 3), np.uint8)
    b = np.full((50, 50, 3), 255, np.uint8)
    batch, sizes = tensors.to_image_tensor([a, b])
    assert batch.shape == (2, 100, 200, 3) and sizes == [(200, 100), (50, 50)]
    assert float(batch[1].min()) > 0.99
    with pytest.raises(ValueError, match="no picture"):   # an empty result is never dressed up as a picture
        tensors.to_image_tensor([])


def test_pictures_become_exactly_x_over_255_and_a_stray_channel_count_is_refused():
    every_value = np.arange(256 * 3, dtype=np.uint8).reshape(16, 16, 3)
    batch, _ = tensors.to_image_tensor([every_value, every_value[::-1].copy()])
    assert batch.dtype == torch.float32
    expected = torch.from_numpy(np.stack([every_value, every_value[::-1]])).to(torch.float32).div_(255.0)
    assert torch.equal(batch, expected)
    with pytest.raises(ValueError, match="uint8"):
        tensors.to_image_tensor([every_value, every_value[..., :1].copy()])


def test_interrupt_cancels_a_pending_task_and_stops_waiting(emulator):
    import comfy.model_management as mm

    emulator.backend.configure(queue_time=30.0)

    done = threading.Event()

    def press_cancel_once_the_task_is_queried():   # not a timer: on a loaded machine it can fire before sending
        while not done.is_set() and not any(e["kind"] == "query" for e in emulator.backend.log):
            time.sleep(0.01)
        if not done.is_set():   # never into a later test
            mm.interrupt_current_processing(True)
    threading.Thread(target=press_cancel_once_the_task_is_queried, daemon=True).start()
    try:
        with pytest.raises(mm.InterruptProcessingException):
            run(wan.WanTextToImage.execute(model="wan2.7-image", prompt="x", n=1, size="1K", seed=0))
    finally:
        done.set()
    # Canceled while PENDING (a wait that went on would have seen it through its 30 s queue), and never
    # asked about again.
    assert emulator.backend.stats()["tasks"] == {"CANCELED": 1}
    log = emulator.backend.log
    cancel_at = next(e["seq"] for e in log if e["kind"] == "cancel")
    assert [e["kind"] for e in log if e["seq"] > cancel_at] == [], "the task was still polled after its cancel"


class WorkThreads:
    """Which threads did a node's heavy work: encoding its inputs, every HTTP request (serialising the body,
    sending it, waiting for the answer, the task queries) and making the output tensors. The real functions
    run; each call notes its thread."""

    def __init__(self, monkeypatch) -> None:
        self.seen: dict[str, list[int]] = {"encode": [], "http": [], "outputs": []}
        send = sys.modules[wan.__name__.rpartition(".")[0] + ".send"]   # the nodes' shared execute path
        self._wrap(monkeypatch, send, "encode_images", "encode")
        self._wrap(monkeypatch, send, "to_image_tensor", "outputs")
        self._wrap(monkeypatch, requests.Session, "send", "http")

    def _wrap(self, monkeypatch, owner, name: str, kind: str) -> None:
        real = getattr(owner, name)

        def noted(*args, **kwargs):
            self.seen[kind].append(threading.get_ident())
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, noted)

    def on_thread(self, ident: int) -> dict[str, int]:
        return {kind: idents.count(ident) for kind, idents in self.seen.items()}


def _run_on_a_loop(coros_factory):
    """Run the coroutines together on one event loop; returns their results and the loop's thread."""
    async def scenario():
        return threading.get_ident(), await asyncio.gather(*coros_factory())

    return run(scenario())


def test_nodes_wait_off_the_event_loop(emulator, monkeypatch):
    """Waiting for a generation (the request, the task queries) on the event loop would freeze ComfyUI's
    page, every sibling node's progress and its Cancel until the task ended."""
    emulator.backend.configure(queue_time=0.2, service_time=1.5)
    threads = WorkThreads(monkeypatch)
    loop_thread, _ = _run_on_a_loop(lambda: [
        wan.WanTextToImage.execute(model="wan2.7-image", prompt=f"p{i}", n=1, size="1K", seed=i) for i in range(4)])
    assert len(threads.seen["http"]) >= 8 and len(threads.seen["outputs"]) == 4, threads.seen
    assert threads.on_thread(loop_thread) == {"encode": 0, "http": 0, "outputs": 0}, "work done on the event loop"
    assert most_at_once(emulator) == 4, "the four nodes did not run at the same time"


@pytest.fixture
def emulator_process(monkeypatch, tmp_path):
    """The emulator in a process of its own: its server threads stay out of the threads this test watches."""
    import re
    import subprocess
    import sys

    from conftest import KEY, ROOT

    monkeypatch.setenv("WAN_STATE_DIR", str(tmp_path / "state"))
    proc = subprocess.Popen([sys.executable, "-m", "api.emulator", "--port", "0", "--queue-time", "0.1",
                             "--service-time", "0.2", "--api-key", KEY], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    base = re.search(r"DASHSCOPE_HTTP_BASE_URL=(\S+)", proc.stdout.readline()).group(1)
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", base)
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    yield base
    proc.terminate()
    proc.wait(10)


def test_nodes_encode_and_send_big_inputs_off_the_event_loop(emulator_process, monkeypatch):
    """Encoding 2048-px pictures (and serialising and fingerprinting the request) takes a good part of a second
    each: done on the event loop, it would freeze every sibling node's progress and its Cancel for seconds.
    (How long the loop stalls, work that holds the GIL included, is the benchmark's event-loop row.)"""
    big = [torch.rand((1, 2048, 2048, 3), generator=torch.Generator().manual_seed(i)) for i in range(3)]
    threads = WorkThreads(monkeypatch)
    loop_thread, outs = _run_on_a_loop(lambda: [
        wan.WanImageEdit.execute(model="wan2.7-image", prompt=f"p{i}", n=1, size="1K", seed=i, input_format="png",
                                 image=big[0], image_2=big[1], image_3=big[2]) for i in range(4)])
    on_loop = threads.on_thread(loop_thread)
    assert len(threads.seen["encode"]) == 4 and len(threads.seen["http"]) >= 4, threads.seen
    assert on_loop["encode"] == 0, "inputs were encoded on the event loop"
    assert on_loop["http"] == 0, "a request was serialised and sent on the event loop"
    state = requests.get(emulator_process.replace("/api/v1", "") + "/__emulator__/state", timeout=10).json()
    assert state["creations"] == 4 and all(out.args[0].shape[0] == 1 for out in outs)


def test_per_image_sends_one_request_per_picture_concurrently_and_keeps_their_order(emulator):
    emulator.backend.configure(queue_time=0.1, service_time=1.0)
    batch = torch.rand((4, 256, 320, 3))
    images, text, info = outputs(run(wan.WanImageEdit.execute(model="wan2.7-image", prompt="snow", n=1, size="1K",
                                                               seed=3, per_image=True, input_format="png",
                                                               image=batch, image_2=img(256, 256))))
    created_ = created(emulator)
    assert len(created_) == 4 and images.shape[0] == 4
    assert all(len(e["images"]) == 2 for e in created_), "image_2 goes with every picture"
    # ONE info object; its requests, and the output pictures, in the order of the batch.
    assert isinstance(info, dict) and info["per_image"] is True and len(info["requests"]) == 4
    assert info["images_billed_this_run"] == 4
    by_task = {e["task_id"]: e for e in created_}
    for i, request in enumerate(info["requests"]):
        sent = decoded(by_task[request["task_id"]])[0]
        expect = np.floor(batch[i].numpy() * 255 + 0.5).astype(np.uint8)
        assert np.array_equal(sent, expect), f"request {i} did not carry picture {i} of the batch"
        served = np.asarray(Image.open(io.BytesIO(requests.get(request["results"][0]["url"], timeout=10).content))
                            .convert("RGB"))
        got = np.floor(images[i].numpy() * 255 + 0.5).astype(np.uint8)
        assert np.array_equal(got, served), f"output picture {i} is not the result of request {i}"
    assert most_at_once(emulator) == 4, "the 4 requests did not run at the same time"


def test_prompt_list_splits_lines():
    out = wan.WanPromptList.execute(prompts="a red fox\n\n a blue fox \n")
    assert out.args[0] == ["a red fox", "a blue fox"]
    with pytest.raises(api.WanInputError):
        wan.WanPromptList.execute(prompts="  \n ")


def test_a_cancelled_node_coroutine_leaves_no_worker_polling(emulator):
    """ComfyUI may cancel a node's coroutine: its worker must stop (and cancel a task still queued), not poll
    for 30 minutes holding a generation slot."""
    emulator.backend.configure(queue_time=30.0)

    async def scenario():
        task = asyncio.create_task(wan.WanTextToImage.execute(model="wan2.7-image", prompt="x", n=1, size="1K",
                                                              seed=0))
        await asyncio.sleep(0.6)
        workers = [t for t in threading.enumerate() if t.name.startswith("wan-generation")]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return workers

    workers = run(scenario())
    assert workers and all(t.daemon for t in workers), "a worker must not hold ComfyUI's exit"
    deadline = time.monotonic() + 3
    while emulator.backend.stats()["tasks"] != {"CANCELED": 1} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert emulator.backend.stats()["tasks"] == {"CANCELED": 1}
    # The worker thread is kept for the next run (threads are reused), but its work has ended.
    pool = wan.runner.generation_workers(api.resolve_endpoint(None).base_url, api.resolve_api_key().fingerprint)
    deadline = time.monotonic() + 3
    while pool.busy() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.busy() == 0, "the worker went on polling"
    client = wan.runner.client_for("default")
    slots = client.resumable.slots
    taken = [slots.acquire(blocking=False) for _ in range(4)]
    for ok in taken:
        if ok:
            slots.release()
    assert all(taken), "the cancelled run still holds a generation slot"


def test_clients_are_reused_per_endpoint_and_account(emulator, monkeypatch):
    first = wan.runner.client_for("default")
    assert wan.runner.client_for("default") is first, "a new client (and HTTP session) per run"
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-nodelevel-other-key2")
    other = wan.runner.client_for("default")
    assert other is not first and other.account != first.account


def test_box_edit_offers_only_models_that_take_boxes():
    schema = wan.WanBBox.define_schema()
    model = next(i for i in schema.inputs if i.id == "model")
    assert model.options == [m for m in api.MODELS if "bbox_list" in api.MODELS[m].modes["edit"].params]
    assert "wan2.6-image" not in model.options and "wan2.5-i2i-preview" not in model.options
