"""The box editor (web/wan_pictures.js) and the nodes (api/request/pictures.py) number pictures by the same rule:
both versions run on the same cases, with batches and unconnected inputs, and must agree entry for entry.
(tests/browser runs the JavaScript once more inside ComfyUI's page, as the editor loads it.)"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from api.errors import WanInputError
from api.request.pictures import number_pictures

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["image"] + [f"image_{i}" for i in range(2, 10)]

# (counts per input in order; None = nothing connected)
CASES = [
    [1],
    [2, None, 1],                       # a batch of 2 in image, image_2 empty, image_3: picture 3 is image_3
    [None, 1],                          # only image_2: it is picture 1
    [1, None, None, 3],                 # image, then image_4's batch of 3
    [None, None, None],                 # nothing connected: no pictures
    [3, 2, None, None, None, None, None, None, 4],
    [1] * 9,
]
EXPECTED_FIRST_CASES = {
    1: [("image[0]", 1), ("image[1]", 2), ("image_3", 3)],
    2: [("image_2", 1)],
    3: [("image", 1), ("image_4[0]", 2), ("image_4[1]", 3), ("image_4[2]", 4)],
}


def named(case):
    return [(NAMES[i], c) for i, c in enumerate(case)]


def run_js(cases) -> list:
    node = shutil.which("node")
    if node is None:
        pytest.skip("no node on this machine (tests/browser compares the two in the browser)")
    script = (f"import {{ numberPictures }} from {json.dumps((ROOT / 'web' / 'wan_pictures.js').as_uri())};\n"
              f"const cases = {json.dumps(cases)};\n"
              "console.log(JSON.stringify(cases.map(c => { try { return numberPictures(c); } "
              "catch (e) { return {error: String(e.message)}; } })));")
    done = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_rule_numbers_batches_and_skips_unconnected_inputs():
    for index, expected in EXPECTED_FIRST_CASES.items():
        got = number_pictures(named(CASES[index]))
        assert [(p["label"], p["picture"]) for p in got] == expected
    assert number_pictures(named([2]))[1] == {"picture": 2, "input": "image", "index": 1, "label": "image[1]"}
    with pytest.raises(WanInputError, match="image_2"):
        number_pictures(named([1, 0]))


def test_javascript_and_python_number_pictures_alike():
    cases = [named(c) for c in CASES]
    js = run_js([[list(pair) for pair in case] for case in cases])
    assert js == [number_pictures(case) for case in cases]
    # The same refusal of an empty batch.
    (error,) = run_js([[["image", 1], ["image_2", 0]]])
    assert "image_2" in error["error"] and "empty batch" in error["error"]
