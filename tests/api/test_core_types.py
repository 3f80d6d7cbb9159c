"""ComfyUI's core box and colour values as the service's bbox_list and color_palette, and the price badge's
prices, which come from the one price table."""

from __future__ import annotations

import json

import pytest

from api import WanInputError, boxes_from_bounding_boxes, node_palette, palette_from_colors
from api.money.pricing import PRICE_TABLE, badge_prices, estimate, price_badge_expr

REGIONS = ["default", "singapore", "virginia", "beijing"]


# ---- COLORS -> color_palette ------------------------------------------------------------------------------------

def ratios(palette):
    return [p["ratio"] for p in palette]


def test_equal_shares_sum_to_exactly_100():
    palette = palette_from_colors(["#c2d1e6", "0a0b0c", "#FFFFFF"])
    assert [p["hex"] for p in palette] == ["#C2D1E6", "#0A0B0C", "#FFFFFF"]
    assert ratios(palette) == ["33.34%", "33.33%", "33.33%"]
    for count in range(3, 11):
        palette = palette_from_colors([f"#{i:06X}" for i in range(count)])
        assert sum(round(float(r[:-1]) * 100) for r in ratios(palette)) == 10000, ratios(palette)


def test_given_shares_are_scaled_to_exactly_100():
    assert ratios(palette_from_colors(["#111111", "#222222", "#333333"], "40, 35, 25")) == ["40.00%", "35.00%", "25.00%"]
    assert ratios(palette_from_colors(["#111111", "#222222", "#333333"], "2 1 1")) == ["50.00%", "25.00%", "25.00%"]
    assert ratios(palette_from_colors(["#111111", "#222222", "#333333"], "1;1;1%")) == ["33.34%", "33.33%", "33.33%"]


@pytest.mark.parametrize("colors, shares, param, words", [
    (["#111111", "#222222"], None, "colors", "3 to 10"),
    ([f"#{i:06X}" for i in range(11)], None, "colors", "3 to 10"),
    (["#111111", "#222222", "red"], None, "colors", "colour 3"),
    (["#111111", "#222222", "#333333"], "50 50", "color_shares", "2 shares for 3 colours"),
    (["#111111", "#222222", "#333333"], "50 50 0", "color_shares", "more than 0"),
    (["#111111", "#222222", "#333333"], "a b c", "color_shares", "numbers"),
])
def test_a_colour_list_the_service_would_refuse_is_refused_naming_the_input(colors, shares, param, words):
    with pytest.raises(WanInputError) as info:
        palette_from_colors(colors, shares)
    assert info.value.param == param and words in info.value.limit, info.value


def test_a_node_takes_one_palette():
    typed = '[{"hex": "#111111", "ratio": "100.00%"}]'
    assert node_palette(typed) == typed
    assert node_palette(None, []) is None                     # the COLORS widget left empty
    assert node_palette(None, {"__value__": ["#111111", "#222222", "#333333"]})[0]["ratio"] == "33.34%"
    with pytest.raises(WanInputError, match="both give a palette"):
        node_palette(typed, ["#111111", "#222222", "#333333"])


# ---- BOUNDING_BOX -> bbox_list ----------------------------------------------------------------------------------

def box(x, y, w, h, **meta):
    return {"x": x, "y": y, "width": w, "height": h, **meta}


def test_the_forms_core_nodes_pass():
    sizes = [(1000, 800), (768, 512)]
    # Create Bounding Boxes: a list holding one picture's boxes.
    assert boxes_from_bounding_boxes([[box(100, 150, 300, 350, metadata={"type": "obj"})]], sizes) == \
        [[[100, 150, 400, 500]], []]
    # One dict, or a flat list of dicts: the first picture's boxes.
    assert boxes_from_bounding_boxes(box(1, 2, 3, 4), sizes) == [[[1, 2, 4, 6]], []]
    assert boxes_from_bounding_boxes([box(1, 2, 3, 4), box(5, 6, 7, 8)], sizes) == [[[1, 2, 4, 6], [5, 6, 12, 14]], []]
    # A detector over a batch: one list per picture, in order; floats are rounded.
    assert boxes_from_bounding_boxes([[], [box(10.4, 20.6, 100.2, 50.5, label="car", score=0.9)]], sizes) == \
        [[], [[10, 21, 111, 71]]]
    assert boxes_from_bounding_boxes([], sizes) == [[], []]
    assert boxes_from_bounding_boxes([[box(1, 1, 5, 5)], [], []], sizes) == [[[1, 1, 6, 6]], []]  # empty extras


def test_boxes_drawn_on_another_canvas_are_scaled_onto_the_picture():
    # Create Bounding Boxes rounds its canvas to 16: a 1000x800 picture is drawn on as 1008x800.
    got = boxes_from_bounding_boxes([[box(100, 150, 300, 350)]], [(1000, 800)], grid=(1008, 800))
    assert got == [[[round(100 * 1000 / 1008), 150, round(400 * 1000 / 1008), 500]]]
    # A blank 1024x1024 canvas over a 2048x1024 picture: proportional.
    assert boxes_from_bounding_boxes([[box(512, 512, 256, 256)]], [(2048, 1024)], grid=(1024, 1024)) == \
        [[[1024, 512, 1536, 768]]]


def test_a_box_past_the_edge_is_cut_and_one_outside_is_refused():
    assert boxes_from_bounding_boxes([[box(900, 700, 200, 200)]], [(1000, 800)]) == [[[900, 700, 1000, 800]]]
    assert boxes_from_bounding_boxes([[box(300, 300, -100, -50)]], [(1000, 800)]) == [[[200, 250, 300, 300]]]
    with pytest.raises(WanInputError, match="no area inside the picture, which is 1000x800"):
        boxes_from_bounding_boxes([[box(1200, 10, 50, 50)]], [(1000, 800)])
    with pytest.raises(WanInputError, match="has boxes for 2 pictures, but 1"):
        boxes_from_bounding_boxes([[box(1, 1, 5, 5)], [box(1, 1, 5, 5)]], [(1000, 800)])
    with pytest.raises(WanInputError, match="numbers x, y, width, height") as info:
        boxes_from_bounding_boxes([[{"x": 1, "y": 2}]], [(1000, 800)])
    assert info.value.param == "bboxes"


# ---- the price badge's prices -----------------------------------------------------------------------------------

def test_singapore_prices_are_in_the_table_marked_unverified():
    assert PRICE_TABLE[("wan2.7-image", "singapore")][:2] == (0.030, "USD")
    assert PRICE_TABLE[("wan2.7-image-pro", "singapore")][:2] == (0.075, "USD")
    assert all("unverified" in source for _, _, source in PRICE_TABLE.values())


def test_the_badge_has_the_prices_a_run_estimates(monkeypatch):
    models = ["wan2.7-image-pro", "wan2.7-image", "wan2.6-image"]
    table = badge_prices(models, REGIONS, {})
    for model in models:
        for choice in REGIONS:
            region = "singapore" if choice == "default" else choice
            want = estimate(model, region, 1)
            got = table.get(model, {}).get(choice)
            assert got == (None if want is None else [want["unit_price"], want["currency"]]), (model, choice)
    assert table["wan2.7-image"]["default"] == [0.03, "USD"]
    assert badge_prices(models, REGIONS, {"DASHSCOPE_REGION": "beijing"})["wan2.7-image"]["default"] == [0.2, "CNY"]
    # A region variable naming no region: no price for "default" rather than a guess.
    assert "default" not in badge_prices(models, REGIONS, {"DASHSCOPE_REGION": "mars"})["wan2.7-image"]


def test_with_a_base_url_only_user_prices_apply_as_in_info(monkeypatch):
    over = {"DASHSCOPE_HTTP_BASE_URL": "http://127.0.0.1:9/api/v1"}
    assert badge_prices(["wan2.7-image"], REGIONS, over) == {}
    monkeypatch.setenv("WAN_PRICES", json.dumps({"wan2.6-image": {"amount": 0.25, "currency": "CNY"}}))
    assert badge_prices(["wan2.7-image", "wan2.6-image"], REGIONS, over) == \
        {"wan2.6-image": {choice: [0.25, "CNY"] for choice in REGIONS}}
    # WAN_PRICES wins over the table everywhere, as in `info`.
    monkeypatch.setenv("WAN_PRICES", json.dumps({"wan2.7-image": {"amount": 0.5, "currency": "EUR"}}))
    assert badge_prices(["wan2.7-image"], REGIONS, {})["wan2.7-image"]["beijing"] == [0.5, "EUR"]


def test_the_expression_embeds_exactly_those_prices():
    expr = price_badge_expr(["wan2.7-image", "wan2.6-image"], REGIONS, "max_images", "at_most", {})
    table = json.loads(expr.split("$p := ", 1)[1].split(";\n", 1)[0])
    assert table == badge_prices(["wan2.7-image", "wan2.6-image"], REGIONS, {})
    assert "widgets.max_images" in expr and "up to ≈" in expr and "price unknown" in expr
    with pytest.raises(ValueError):
        price_badge_expr(["wan2.7-image"], REGIONS, "n", "roughly", {})
