"""The key, through a real ComfyUI server: a key file saved with a byte-order mark works and the ledger
counts only what was billed; a key that is not ASCII is refused with a message naming its source, nothing
sent and nothing counted; the key typed into the settings page goes to the pack's route (which refuses
other origins and never answers with the key), is used for runs, and is found nowhere else."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from comfy_host import ComfyHost, execution_error
from e2e_support import E2E_KEY

ROUTE = "/wan_image/api_keys"



def t2i(seed: int, n: int = 1) -> dict:
    return {"1": {"class_type": "WanTextToImage", "inputs": {"model": "wan2.7-image", "prompt": "a lighthouse",
                                                             "n": n, "size": "1K", "seed": seed}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": f"keys{seed}"}}}


def ledger_today(base: Path) -> dict:
    from api.ledger import open_ledger
    from api.ledger.report import summary as ledger_summary

    summary = ledger_summary(open_ledger(base / "user" / "wan_image"))
    return {"models": {m["model"]: (m["today"], m["today_unsure"]) for m in summary["models"]},
            "in_flight": summary["in_flight"]}


def files_holding(folder: Path, secret: str) -> list[str]:
    """Every file under `folder` whose bytes hold the secret (as UTF-8 or UTF-16)."""
    found = []
    needles = (secret.encode(), secret.encode("utf-16-le"))
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(n in data for n in needles):
                found.append(str(path))
    return found


def test_a_key_file_with_a_mark_runs_a_key_that_is_not_ascii_sends_nothing_a_region_variable_wins(emulator,
                                                                                                 base_dir):
    key_file = base_dir / "dashscope_key.txt"
    key_file.write_bytes(b"\xef\xbb\xbf" + E2E_KEY.encode() + b"\r\n")   # as Notepad saves UTF-8
    # One server for both: Singapore (the default region) finds the key file; Beijing has a variable of its own.
    host = ComfyHost({"DASHSCOPE_HTTP_BASE_URL": emulator.base_url, "DASHSCOPE_API_KEY_FILE_PATH": str(key_file),
                      "DASHSCOPE_API_KEY_BEIJING": E2E_KEY}, base_dir=base_dir).start()
    try:
        seed = int(time.time()) % 100000
        entry = host.run(t2i(seed, n=2))
        assert execution_error(entry) is None, execution_error(entry)
        assert emulator.backend.stats()["creations"] == 1
        assert ledger_today(base_dir) == {"models": {"wan2.7-image": (2, 0)}, "in_flight": 0}

        # The same file, re-saved with a no-break space pasted into the key: read again on the next run.
        bad = E2E_KEY[:10] + "\u00a0" + E2E_KEY[10:]
        key_file.write_text(bad, encoding="utf-8")
        sent = len(emulator.backend.log)
        entry = host.run(t2i(seed + 1, n=2))
        error = execution_error(entry)
        assert error is not None, "a key that is not ASCII must stop the run"
        message = error["exception_message"]
        for words in (str(key_file), "DASHSCOPE_API_KEY_FILE_PATH", "not ASCII", "U+00A0 NO-BREAK SPACE",
                      "Nothing was sent and nothing was billed"):
            assert words in message, (words, message)
        assert E2E_KEY[3:10] not in message and E2E_KEY[10:] not in message, message
        assert emulator.backend.log[sent:] == [], "a request reached the service"
        assert emulator.backend.stats()["creations"] == 1
        assert ledger_today(base_dir) == {"models": {"wan2.7-image": (2, 0)}, "in_flight": 0}, \
            "the refused run was counted"
        assert E2E_KEY not in host.log() and E2E_KEY[10:] not in host.log()

        # DASHSCOPE_API_KEY_BEIJING wins over the key file and over a Beijing key typed into the page, and the
        # page is told so.
        r = requests.post(host.url + ROUTE, json={"region": "beijing", "key": "sk-a-key-the-emulator-refuses-1"},
                          headers={"Origin": host.url}, timeout=10)
        assert r.status_code == 200
        overridden = r.json()["overridden_by"]
        assert overridden["beijing"] == "DASHSCOPE_API_KEY_BEIJING"
        assert str(key_file) in overridden["singapore"], overridden   # (a file that cannot be used: said so)
        graph = t2i(seed + 2)
        graph["1"]["inputs"]["region"] = "beijing"
        entry = host.run(graph)
        assert execution_error(entry) is None, execution_error(entry)["exception_message"]
        assert emulator.backend.stats()["creations"] == 2
    finally:
        host.stop()


@pytest.mark.smoke
def test_the_key_from_the_settings_page_is_used_and_found_nowhere_else(emulator, base_dir):
    host = ComfyHost({"DASHSCOPE_HTTP_BASE_URL": emulator.base_url}, base_dir=base_dir).start()
    url = host.url + ROUTE
    page = {"Origin": host.url, "Sec-Fetch-Site": "same-origin"}   # what the page's own fetch sends
    try:
        seed = int(time.time()) % 100000
        error = execution_error(host.run(t2i(seed)))
        assert error is not None and "no DashScope API key found" in error["exception_message"]
        assert "ComfyUI's settings" in error["exception_message"]

        # Another site's page (or another port's) may neither set nor read it.
        for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                        {"Origin": "http://127.0.0.1:1"}, {"Origin": "null"}):
            r = requests.post(url, json={"region": "all", "key": E2E_KEY}, headers=headers, timeout=10)
            assert r.status_code == 403, (headers, r.status_code)
            assert requests.get(url, headers=headers, timeout=10).status_code == 403, headers
        r = requests.post(url, data=json.dumps({"region": "all", "key": E2E_KEY}), timeout=10,
                          headers={**page, "Content-Type": "text/plain"})   # a form's "simple" request
        assert r.status_code == 415
        assert requests.get(url, headers=page, timeout=10).json()["scopes"][0] == \
            {"scope": "all", "label": "all regions", "set": False, "ends": None}

        # Refused before storing: a key with a curly quote pasted in.
        r = requests.post(url, json={"region": "all", "key": E2E_KEY[:8] + "\u201d" + E2E_KEY[8:]}, headers=page,
                          timeout=10)
        assert r.status_code == 400 and "not ASCII" in r.json()["error"] and "U+201D" in r.json()["error"]
        assert E2E_KEY[8:] not in r.text

        r = requests.post(url, json={"region": "all", "key": " " + E2E_KEY + "\n"}, headers=page, timeout=10)
        assert r.status_code == 200, r.text
        assert E2E_KEY not in r.text and E2E_KEY[:-4] not in r.text
        status = requests.get(host.url + "/api" + ROUTE, headers=page, timeout=10)
        assert status.json()["scopes"][0] == {"scope": "all", "label": "all regions", "set": True,
                                              "ends": E2E_KEY[-4:]}
        assert E2E_KEY not in status.text

        # A run uses it: the emulator accepts only E2E_KEY in the Authorization header.
        entry = host.run(t2i(seed + 1))
        assert execution_error(entry) is None, execution_error(entry)
        (create,) = [e for e in emulator.backend.log if e.get("billable")]
        assert create["authorized"] is True

        # Nowhere else: the base directory's files (the state folder's store is obfuscated), the server's
        # log, /history, ComfyUI's settings file.
        assert files_holding(base_dir, E2E_KEY) == []
        assert E2E_KEY not in host.log()
        assert E2E_KEY not in requests.get(host.url + "/history", timeout=10).text
        settings = base_dir / "user" / "default" / "comfy.settings.json"
        assert not settings.exists() or E2E_KEY not in settings.read_text()
        store = base_dir / "user" / "wan_image" / "api_keys.json"
        assert oct(store.stat().st_mode & 0o777) == "0o600"

        r = requests.delete(url, params={"region": "all"}, headers=page, timeout=10)
        assert r.status_code == 200 and r.json()["scopes"][0]["set"] is False
        error = execution_error(host.run(t2i(seed + 2)))
        assert error is not None and "no DashScope API key found" in error["exception_message"]
    finally:
        host.stop()

