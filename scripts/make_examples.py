"""Writes example_workflows/*.json (UI format, as ComfyUI saves them) and their input pictures.

Run after changing a node's inputs: `.venv/bin/python scripts/make_examples.py`. It starts a ComfyUI with
the pack to read the nodes' schemas, so widget values land in the order the UI expects. The demo
(scripts/demo.py) and the end-to-end tests load these same files.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_host import ROOT, ComfyHost, _is_widget  # noqa: E402

OUT = ROOT / "example_workflows"
INPUTS = OUT / "inputs"


def make_inputs() -> None:
    """Small pictures of our own making (no downloads): a car, a graffiti, a room with a table."""
    INPUTS.mkdir(parents=True, exist_ok=True)
    car = Image.new("RGB", (768, 512), (176, 206, 230))
    d = ImageDraw.Draw(car)
    d.rectangle([0, 380, 768, 512], fill=(90, 90, 96))
    d.rounded_rectangle([140, 230, 640, 380], 30, fill=(210, 210, 215))
    d.polygon([(250, 230), (320, 150), (520, 150), (580, 230)], fill=(200, 200, 210))
    d.polygon([(270, 228), (330, 165), (415, 165), (415, 228)], fill=(120, 160, 200))
    d.polygon([(425, 228), (425, 165), (510, 165), (560, 228)], fill=(120, 160, 200))
    for cx in (250, 530):
        d.ellipse([cx - 55, 325, cx + 55, 435], fill=(30, 30, 30))
        d.ellipse([cx - 25, 355, cx + 25, 405], fill=(160, 160, 160))
    car.save(INPUTS / "wan_example_car.png")

    paint = Image.new("RGB", (512, 512), (250, 245, 235))
    d = ImageDraw.Draw(paint)
    for i in range(7):
        angle = i * math.tau / 7
        x, y = 256 + 150 * math.cos(angle), 256 + 150 * math.sin(angle)
        d.ellipse([x - 70, y - 70, x + 70, y + 70], fill=[(230, 60, 80), (250, 170, 40), (60, 170, 90),
                                                          (50, 110, 220), (150, 70, 200), (20, 190, 200),
                                                          (240, 110, 170)][i])
    d.ellipse([186, 186, 326, 326], fill=(30, 30, 40))
    paint.save(INPUTS / "wan_example_graffiti.png")

    room = Image.new("RGB", (1000, 800), (236, 228, 214))
    d = ImageDraw.Draw(room)
    d.rectangle([0, 560, 1000, 800], fill=(150, 110, 80))
    d.rectangle([620, 80, 900, 360], fill=(180, 210, 235), outline=(250, 250, 250), width=12)
    d.rectangle([150, 470, 650, 500], fill=(110, 75, 50))
    d.rectangle([180, 500, 205, 690], fill=(110, 75, 50))
    d.rectangle([595, 500, 620, 690], fill=(110, 75, 50))
    d.polygon([(330, 470), (350, 360), (410, 360), (430, 470)], fill=(70, 120, 160))
    room.save(INPUTS / "wan_example_room.png")

    # The same room after a user painted over the vase in ComfyUI's mask editor: the editor keeps the
    # painted region in the picture's alpha channel (transparent where painted), and Load Image outputs it as
    # MASK = 1 - alpha. A brush-like blob, not a rectangle: WanBBox turns it into its bounding box.
    alpha = Image.new("L", room.size, 255)
    d = ImageDraw.Draw(alpha)
    d.ellipse([318, 340, 442, 478], fill=0)
    d.ellipse([300, 420, 380, 480], fill=0)
    painted = room.copy()
    painted.putalpha(alpha)
    painted.save(INPUTS / "wan_example_room_painted.png")


class Graph:
    def __init__(self, info: dict) -> None:
        self.info = info
        self.nodes: list[dict] = []
        self.links: list[list] = []

    def node(self, type_: str, pos: tuple[int, int], widgets: dict | None = None, title: str | None = None,
             size: tuple[int, int] = (400, 320)) -> int:
        spec = self.info[type_]
        order = spec.get("input_order", {})
        names = list(order.get("required", [])) + list(order.get("optional", []))
        all_inputs = {**spec["input"].get("required", {}), **spec["input"].get("optional", {})}
        widgets = widgets or {}
        values, inputs = [], []
        for name in names:
            kind = all_inputs[name][0]
            opts = all_inputs[name][1] if len(all_inputs[name]) > 1 and isinstance(all_inputs[name][1], dict) else {}
            if _is_widget(all_inputs[name]):
                if name in widgets:
                    value = widgets[name]
                elif "default" in opts:
                    value = opts["default"]
                else:
                    choices = kind if isinstance(kind, list) else opts.get("options") or [None]
                    value = choices[0] if choices else None
                values.append(value)
                if opts.get("image_upload"):
                    values.append("image")  # the UI's upload button stores its own value after the file
                if opts.get("control_after_generate"):
                    values.append("fixed")
                inputs.append({"name": name, "type": "COMBO" if isinstance(kind, list) else kind,
                               "widget": {"name": name}, "link": None})
            else:
                inputs.append({"name": name, "type": kind, "link": None,
                               **({"shape": 7} if name in spec["input"].get("optional", {}) else {})})
        outputs = [{"name": name, "type": kind, "links": [], "slot_index": i}
                   for i, (name, kind) in enumerate(zip(spec.get("output_name", spec["output"]), spec["output"]))]
        node_id = len(self.nodes) + 1
        self.nodes.append({"id": node_id, "type": type_, "pos": list(pos), "size": list(size), "flags": {},
                           "order": node_id - 1, "mode": 0, "inputs": inputs, "outputs": outputs,
                           "properties": {"Node name for S&R": type_}, "widgets_values": values,
                           **({"title": title} if title else {})})
        return node_id

    def link(self, src: int, slot: int, dst: int, input_name: str) -> None:
        link_id = len(self.links) + 1
        source = self.nodes[src - 1]
        target = self.nodes[dst - 1]
        kind = source["outputs"][slot]["type"]
        source["outputs"][slot]["links"].append(link_id)
        for inp in target["inputs"]:
            if inp["name"] == input_name:
                inp["link"] = link_id
                break
        else:
            raise KeyError(f"{target['type']} has no input {input_name}")
        self.links.append([link_id, src, slot, dst, input_name and target["inputs"].index(inp), kind])

    def dump(self, path: Path, title: str) -> None:
        workflow = {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
                    "links": self.links, "groups": [], "config": {},
                    "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}, "wan_example": title}, "version": 0.4}
        path.write_text(json.dumps(workflow, indent=1, ensure_ascii=False) + "\n")


def outputs_of(g: Graph, wan: int, x: int, text: bool) -> None:
    save = g.node("SaveImage", (x, 60), {"filename_prefix": g.nodes[wan - 1]["type"]}, size=(420, 420))
    g.link(wan, 0, save, "images")
    if text:
        show = g.node("PreviewAny", (x, 520), title="text", size=(420, 220))
        g.link(wan, 1, show, "source")
    info = g.node("PreviewAny", (x, 780 if text else 520), title="info", size=(420, 260))
    g.link(wan, 2, info, "source")


def write_locale_en(info: dict) -> None:
    """locales/en/main.json from the nodes' own schemas (names, descriptions, tooltips): one source of truth.
    locales/zh/main.json is written by hand."""
    defs = {}
    for name, spec in sorted(info.items()):
        if spec.get("python_module", "").split(".")[-1] not in ("comfyui-wan-image",) and \
                "comfyui-wan-image" not in spec.get("python_module", ""):
            continue
        inputs = {}
        for group in ("required", "optional"):
            for key, value in spec["input"].get(group, {}).items():
                opts = value[1] if len(value) > 1 and isinstance(value[1], dict) else {}
                entry = {"name": key}
                if opts.get("tooltip"):
                    entry["tooltip"] = opts["tooltip"]
                inputs[key] = entry
        outputs = {str(i): {"name": out, **({"tooltip": tip} if tip else {})}
                   for i, (out, tip) in enumerate(zip(spec["output_name"], spec.get("output_tooltips") or
                                                      [None] * len(spec["output_name"])))}
        defs[name] = {"display_name": spec["display_name"], "description": spec["description"],
                      "inputs": inputs, "outputs": outputs}
    path = ROOT / "locales" / "en" / "main.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"nodeDefs": defs}, indent=1, ensure_ascii=False) + "\n")


def main() -> None:
    make_inputs()
    with ComfyHost() as host:
        info = host.object_info()
    write_locale_en(info)

    g = Graph(info)
    car = g.node("LoadImage", (40, 60), {"image": "wan_example_car.png", "upload": "image"}, size=(320, 360))
    paint = g.node("LoadImage", (40, 460), {"image": "wan_example_graffiti.png", "upload": "image"}, size=(320, 360))
    wan = g.node("WanImageEdit", (420, 60), {"model": "wan2.7-image", "n": 1, "size": "1K", "seed": 42,
                                             "prompt": "Spray the graffiti of image 2 onto the car of image 1."},
                 size=(420, 640))
    g.link(car, 0, wan, "image")
    g.link(paint, 0, wan, "image_2")
    outputs_of(g, wan, 900, text=False)
    g.dump(OUT / "wan_image_edit.json", "Wan Image Edit: fuse two pictures")

    g = Graph(info)
    wan = g.node("WanTextToImage", (40, 60), {"model": "wan2.7-image-pro", "n": 1, "size": "1K", "seed": 7,
                                              "prompt": "A flower shop with delicate windows, a beautiful wooden "
                                                        "door, and flowers on display."}, size=(420, 520))
    outputs_of(g, wan, 520, text=False)
    g.dump(OUT / "wan_text_to_image.json", "Wan Text to Image")

    g = Graph(info)
    wan = g.node("WanSequential", (40, 60), {"model": "wan2.7-image", "n": 4, "size": "1K", "seed": 11,
                                             "prompt": "A cinematic set of four pictures of the same stray ginger "
                                                       "cat: spring under cherry blossoms, summer in the shade of "
                                                       "an old street, autumn on golden leaves, winter in snow."},
                 size=(420, 560))
    outputs_of(g, wan, 520, text=False)
    g.dump(OUT / "wan_sequential.json", "Wan Sequential: four seasons")

    g = Graph(info)
    wan = g.node("WanInterleave", (40, 60), {"model": "wan2.6-image", "max_images": 3, "size": "1024*1024",
                                             "seed": 5, "prompt": "Give me a three-picture tutorial for "
                                                                  "stir-fried pork with chili peppers."},
                 size=(420, 520))
    outputs_of(g, wan, 520, text=True)
    g.dump(OUT / "wan_interleave.json", "Wan Interleave: a tutorial in text and pictures")

    g = Graph(info)
    room = g.node("LoadImage", (40, 60), {"image": "wan_example_room.png", "upload": "image"}, size=(320, 360))
    car = g.node("LoadImage", (40, 460), {"image": "wan_example_car.png", "upload": "image"}, size=(320, 360))
    wan = g.node("WanBBox", (420, 60), {"model": "wan2.7-image", "n": 1, "size": "1K", "seed": 3,
                                        "prompt": "Put the car of image 2 into the box on image 1, as a toy on "
                                                  "the table, lit like the room.",
                                        "boxes": "[[[300, 330, 640, 470]], []]"}, size=(420, 700))
    g.link(room, 0, wan, "image")
    g.link(car, 0, wan, "image_2")
    outputs_of(g, wan, 900, text=False)
    g.dump(OUT / "wan_bbox.json", "Wan Box Edit: put an object in a box")
    chains(info)
    print("wrote", *sorted(p.name for p in OUT.glob("*.json")))


def chains(info: dict) -> None:
    """Wan inside bigger graphs: local work before and after, a mask painted by hand, a prompt experiment."""
    # local -> Wan -> local: core nodes prepare the picture (crop a square, scale it up), Wan edits it, core
    # nodes finish it (blend a quarter of the original back in, sharpen) and save it.
    g = Graph(info)
    car = g.node("LoadImage", (40, 60), {"image": "wan_example_car.png", "upload": "image"}, size=(320, 360))
    crop = g.node("ImageCrop", (400, 60), {"width": 512, "height": 512, "x": 128, "y": 0}, size=(300, 180))
    scale = g.node("ImageScale", (400, 280), {"upscale_method": "nearest-exact", "width": 1024, "height": 1024,
                                              "crop": "disabled"}, size=(300, 180))
    g.link(car, 0, crop, "image")
    g.link(crop, 0, scale, "image")
    wan = g.node("WanImageEdit", (740, 60), {"model": "wan2.7-image", "n": 1, "size": "1K", "seed": 21,
                                             "input_format": "png",
                                             "prompt": "Repaint the car in glossy racing red with two white "
                                                       "stripes; keep the street and the sky."}, size=(420, 640))
    g.link(scale, 0, wan, "image")
    blend = g.node("ImageBlend", (1200, 60), {"blend_factor": 0.25, "blend_mode": "normal"}, size=(300, 160))
    g.link(wan, 0, blend, "image1")
    g.link(scale, 0, blend, "image2")
    sharpen = g.node("ImageSharpen", (1200, 260), {"sharpen_radius": 1, "sigma": 1.0, "alpha": 0.5},
                     size=(300, 160))
    g.link(blend, 0, sharpen, "image")
    save = g.node("SaveImage", (1540, 60), {"filename_prefix": "wan_chain_finished"}, size=(420, 460))
    g.link(sharpen, 0, save, "images")
    info_node = g.node("PreviewAny", (1200, 460), title="info", size=(300, 260))
    g.link(wan, 2, info_node, "source")
    g.dump(OUT / "wan_chain_local_wan_local.json", "Local -> Wan -> local: prepare, edit, finish")

    # mask -> boxes: the region painted in the mask editor (the picture's alpha) becomes WanBBox's box.
    g = Graph(info)
    room = g.node("LoadImage", (40, 60), {"image": "wan_example_room_painted.png", "upload": "image"},
                  size=(360, 400))
    wan = g.node("WanBBox", (440, 60), {"model": "wan2.7-image", "n": 1, "size": "1K", "seed": 8,
                                        "prompt": "Replace what is painted over on the table with a glass vase "
                                                  "of sunflowers, lit like the room."}, size=(420, 700))
    g.link(room, 0, wan, "image")
    g.link(room, 1, wan, "mask")
    outputs_of(g, wan, 920, text=False)
    g.dump(OUT / "wan_chain_mask_to_boxes.json", "Mask -> boxes: paint the region to edit")

    # prompt experiment: three prompts x two models -> one labelled sheet.
    g = Graph(info)
    prompts = g.node("WanPromptList", (40, 60), {"prompts": "A flower shop with delicate windows and a wooden "
                                                            "door, at dawn\nA lighthouse on a cliff in a storm, "
                                                            "oil painting\nA bowl of ramen on a wooden table, "
                                                            "seen from above"}, size=(400, 260))
    models = []
    for i, model in enumerate(["wan2.7-image-pro", "wan2.7-image"]):
        wan = g.node("WanTextToImage", (480, 60 + i * 560), {"model": model, "n": 1, "size": "1K", "seed": 5},
                     size=(420, 520))
        g.link(prompts, 0, wan, "prompt")
        models.append(wan)
    sheet = g.node("WanComparisonSheet", (940, 60), {"cell_size": 384, "title": "Three prompts, two models"},
                   size=(360, 420))
    g.link(prompts, 0, sheet, "prompt")
    for wan, (image, info_name) in zip(models, [("image", "info"), ("image_2", "info_2")]):
        g.link(wan, 0, sheet, image)
        g.link(wan, 2, sheet, info_name)
    save = g.node("SaveImage", (1340, 60), {"filename_prefix": "wan_chain_sheet"}, size=(640, 760))
    g.link(sheet, 0, save, "images")
    g.dump(OUT / "wan_chain_prompt_experiment.json", "Prompt experiment: prompts x models on one sheet")


if __name__ == "__main__":
    main()
