"""Where the key comes from (per-region variables, the environment, key files, the settings page's store),
and what a key may look like: a byte-order mark and surrounding whitespace are dropped, a key that is not
ASCII is refused before anything is sent, naming its source and never showing the key."""

from __future__ import annotations

import json
import os
import stat

import pytest

from api import ApiKey, WanClient, errors
from api.config import resolve_api_key
from api.keystore import FILE_NAME, PageKeys
from apitest import TEST_KEY, photo

KEYS = {name: f"sk-{name}-{i:04d}-key-material-xyz{i}" for i, name in
        enumerate(["beijing_env", "env", "file", "home", "page_beijing", "page_all"])}


@pytest.fixture
def places(tmp_path):
    """Every source holding a different key; each test removes them one by one."""
    home = tmp_path / "home"
    (home / ".dashscope").mkdir(parents=True)
    (home / ".dashscope" / "api_key").write_text(KEYS["home"] + "\n")
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEYS["file"])
    state = tmp_path / "state"
    page = PageKeys(state)
    page.set("beijing", KEYS["page_beijing"])
    page.set("all", KEYS["page_all"])
    env = {"DASHSCOPE_API_KEY_BEIJING": KEYS["beijing_env"], "DASHSCOPE_API_KEY": KEYS["env"],
           "DASHSCOPE_API_KEY_FILE_PATH": str(key_file)}
    return env, home, state, key_file


def test_the_order_of_the_sources(places):
    env, home, state, _ = places

    def key(region="beijing"):
        found = resolve_api_key(env, home, region=region, state_folder=state)
        return next(name for name, value in KEYS.items() if value == found.reveal()), found.source

    assert key() == ("beijing_env", "DASHSCOPE_API_KEY_BEIJING")
    assert key("singapore")[0] == "env"                    # another region's variable does not apply
    del env["DASHSCOPE_API_KEY_BEIJING"]
    assert key() == ("env", "DASHSCOPE_API_KEY")
    del env["DASHSCOPE_API_KEY"]
    assert key()[0] == "file" and "DASHSCOPE_API_KEY_FILE_PATH" in key()[1]
    del env["DASHSCOPE_API_KEY_FILE_PATH"]
    assert key()[0] == "home" and "api_key" in key()[1]
    (home / ".dashscope" / "api_key").unlink()
    assert key()[0] == "page_beijing" and "Beijing" in key()[1]
    assert key("singapore")[0] == "page_all"               # no Singapore key on the page: the all-regions one
    PageKeys(state).clear("beijing")
    assert key()[0] == "page_all" and "all regions" in key()[1]
    PageKeys(state).clear("all")
    with pytest.raises(errors.MissingApiKeyError, match="settings"):
        resolve_api_key(env, home, region="beijing", state_folder=state)


def test_default_means_dashscope_region_else_singapore_also_with_a_base_url(places):
    env, home, state, _ = places
    env = {"DASHSCOPE_API_KEY_SINGAPORE": "sk-singapore-key-000000001", "DASHSCOPE_API_KEY_BEIJING": KEYS["beijing_env"]}
    assert resolve_api_key(env, home, region="default").reveal() == "sk-singapore-key-000000001"
    assert resolve_api_key({**env, "DASHSCOPE_REGION": "cn-beijing"}, home).reveal() == KEYS["beijing_env"]
    # The emulator or a proxy: still the key of the node's region.
    over = {**env, "DASHSCOPE_HTTP_BASE_URL": "http://127.0.0.1:9/api/v1"}
    assert resolve_api_key(over, home, region="beijing").reveal() == KEYS["beijing_env"]


@pytest.mark.parametrize("raw", [
    b"\xef\xbb\xbf" + TEST_KEY.encode() + b"\r\n",          # Notepad's UTF-8 with a byte-order mark
    b"  " + TEST_KEY.encode() + b" \n\n",
    TEST_KEY.encode("utf-16"),                               # Notepad's "Unicode" (UTF-16 with a mark)
])
def test_a_key_file_loses_its_mark_and_whitespace(tmp_path, raw):
    path = tmp_path / "key.txt"
    path.write_bytes(raw)
    assert resolve_api_key({"DASHSCOPE_API_KEY_FILE_PATH": str(path)}, tmp_path).reveal() == TEST_KEY
    home = tmp_path / "h"
    (home / ".dashscope").mkdir(parents=True)
    (home / ".dashscope" / "api_key").write_bytes(raw)
    assert resolve_api_key({}, home).reveal() == TEST_KEY


def test_the_environment_and_the_page_lose_a_mark_and_whitespace_too(tmp_path):
    assert resolve_api_key({"DASHSCOPE_API_KEY": "\ufeff" + TEST_KEY + " "}, tmp_path).reveal() == TEST_KEY
    PageKeys(tmp_path / "s").set("all", "\ufeff " + TEST_KEY + "\n")
    assert resolve_api_key({}, tmp_path, state_folder=tmp_path / "s").reveal() == TEST_KEY


@pytest.mark.parametrize("bad, shows", [
    ("sk-abc\u00a0def-123456789", "U+00A0 NO-BREAK SPACE"),
    ("sk-abc\u201cdef-123456789", "U+201C LEFT DOUBLE QUOTATION MARK"),
    ("sk-abc\u200bdef-123456789", "U+200B ZERO WIDTH SPACE"),
    ("sk-ключ-1234567890", "U+043A"),
])
def test_a_key_that_is_not_ascii_is_refused_naming_its_source(tmp_path, bad, shows):
    path = tmp_path / "key.txt"
    path.write_text(bad, encoding="utf-8")
    cases = [({"DASHSCOPE_API_KEY": bad}, "DASHSCOPE_API_KEY"),
             ({"DASHSCOPE_API_KEY_VIRGINIA": bad}, "DASHSCOPE_API_KEY_VIRGINIA"),
             ({"DASHSCOPE_API_KEY_FILE_PATH": str(path)}, str(path))]
    for env, source in cases:
        with pytest.raises(errors.InvalidApiKeyError) as info:
            resolve_api_key(env, tmp_path, region="virginia")
        message = str(info.value)
        assert source in message and "not ASCII" in message and shows in message, message
        assert "Nothing was sent and nothing was billed" in message
        assert bad not in message and bad.split("\u00a0")[0][3:] not in message.replace("sk-…", "")


def test_a_space_inside_or_an_empty_key_is_refused(tmp_path):
    with pytest.raises(errors.InvalidApiKeyError, match="a space inside"):
        resolve_api_key({"DASHSCOPE_API_KEY": "sk-one two-1234567890"}, tmp_path)
    with pytest.raises(errors.MissingApiKeyError):  # a variable holding only a mark is as good as unset
        resolve_api_key({"DASHSCOPE_API_KEY": "\ufeff "}, tmp_path)
    with pytest.raises(errors.InvalidApiKeyError, match="is empty"):
        ApiKey(" \ufeff\n", "a test")
    (tmp_path / "k").write_bytes(b"sk-\xe9\xe9\xe9")  # neither UTF-8 nor UTF-16 with a mark
    with pytest.raises(errors.InvalidApiKeyError, match="not text in UTF-8"):
        resolve_api_key({"DASHSCOPE_API_KEY_FILE_PATH": str(tmp_path / "k")}, tmp_path)


def test_a_client_with_a_key_that_is_not_ascii_sends_nothing_and_counts_nothing(emulator, tmp_path):
    from api import Store, build_request, encode_image, MODELS
    from api.config import Endpoint
    from api.ledger import open_ledger
    from api.ledger.report import summary as ledger_summary

    store = Store(tmp_path / "state")
    endpoint = Endpoint(base_url=emulator.base_url, region=None, overridden=True)
    with pytest.raises(errors.InvalidApiKeyError, match="not ASCII"):
        WanClient("sk-test\u2019fake-key-0000abcd", endpoint=endpoint, store=store)
    PageKeys(store.folder).set("all", TEST_KEY)  # the page's key is fine...
    os.environ["DASHSCOPE_API_KEY"] = "sk-test\u2019fake-key-0000abcd"  # ...but the environment wins, and is bad
    try:
        with pytest.raises(errors.InvalidApiKeyError, match="DASHSCOPE_API_KEY"):
            WanClient(endpoint=endpoint, store=store)
    finally:
        del os.environ["DASHSCOPE_API_KEY"]
    assert emulator.backend.log == []
    summary = ledger_summary(open_ledger(store.folder))
    assert summary["models"] == [] and summary["in_flight"] == 0, summary
    # The page's key is used once the environment no longer holds one.
    spec = MODELS["wan2.7-image"]
    req = build_request("wan2.7-image", "x", [encode_image(photo(300, 300), spec.image)], n=1, size="1K")
    with WanClient(endpoint=endpoint, store=store) as client:
        assert len(client.generate(req).images) == 1


# ---- the settings page's store --------------------------------------------------------------------------------

def test_the_page_store_is_owner_only_and_holds_no_literal_key(tmp_path):
    page = PageKeys(tmp_path)
    page.set("singapore", TEST_KEY)
    path = tmp_path / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert TEST_KEY not in text and TEST_KEY[-8:] not in text
    assert json.loads(text)["keys"].keys() == {"singapore"}
    assert page.status()["singapore"] == {"set": True, "ends": TEST_KEY[-4:]}
    assert page.status()["all"] == {"set": False, "ends": None}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    # Two saves of the same key write different bytes (a new pad each time), both read back.
    first = path.read_bytes()
    page.set("singapore", TEST_KEY)
    assert path.read_bytes() != first and page.get("singapore").reveal() == TEST_KEY


def test_the_page_store_refuses_what_could_not_be_sent_and_keeps_the_old_key(tmp_path):
    page = PageKeys(tmp_path)
    page.set("all", TEST_KEY)
    with pytest.raises(errors.InvalidApiKeyError, match="U\\+00A0"):
        page.set("all", "sk-new\u00a0key-123456789")
    with pytest.raises(ValueError, match="unknown region"):
        page.set("mars", TEST_KEY)
    assert page.get("all").reveal() == TEST_KEY
    page.clear("all")
    assert page.get("all") is None and page.status()["all"]["set"] is False


def test_a_damaged_store_reads_as_no_keys(tmp_path):
    (tmp_path / FILE_NAME).write_text("{not json")
    assert PageKeys(tmp_path).get("all") is None
    PageKeys(tmp_path).set("all", TEST_KEY)  # and saving replaces it
    assert PageKeys(tmp_path).get("all").reveal() == TEST_KEY
