"""API keys typed into ComfyUI's settings page, kept by the pack in its state folder.

Users of the desktop app or the portable build rarely set an environment variable or write a key file, and
the vendor issues one key per region. The page sends a key to the pack's own route (nodes/key_route.py),
which stores it here; nothing ever sends a key back: `status()` says only whether one is set and its last
four characters.

The file (`api_keys.json` in the state folder) is written whole and renamed into place, with owner-only
permissions (0600) from the moment it exists. Each key is stored XORed with a random pad of its own length,
both base64: that is obfuscation, so a careless grep or a pasted file does not show the key, not
encryption (the pad sits beside it). The protection is the file's permission, as for ~/.dashscope/api_key.
"""

from __future__ import annotations

import base64
import json
import os
import secrets as _random
import tempfile
from pathlib import Path

from .config import REGION_LABELS, REGIONS
from .money.locks import process_lock
from .secrets import ApiKey, register_secret

FILE_NAME = "api_keys.json"
ALL_REGIONS = "all"
SCOPES = (ALL_REGIONS, *REGIONS)


def scope_label(scope: str) -> str:
    return "all regions" if scope == ALL_REGIONS else REGION_LABELS[scope]


def source_name(scope: str) -> str:
    """How messages name a key from here."""
    return f"ComfyUI's settings (Wan (DashScope), {scope_label(scope)})"


def _hide(value: str) -> dict[str, str]:
    data = value.encode("ascii")
    pad = _random.token_bytes(len(data))
    return {"pad": base64.b64encode(pad).decode(), "key": base64.b64encode(bytes(a ^ b for a, b in zip(data, pad))).decode()}


def _reveal(entry: dict[str, str]) -> str:
    pad = base64.b64decode(entry["pad"])
    data = base64.b64decode(entry["key"])
    return bytes(a ^ b for a, b in zip(data, pad)).decode("ascii")


class PageKeys:
    """The keys of one state folder, by scope: "all" (all regions) or a region name."""

    def __init__(self, folder: "os.PathLike[str] | str") -> None:
        self.folder = Path(folder)
        self.path = self.folder / FILE_NAME

    # ---- reading ----------------------------------------------------------------------------------------

    def _load(self) -> dict[str, str]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # unreadable or damaged: as if none were set (the page then says "not set")
        keys: dict[str, str] = {}
        for scope, entry in (raw.get("keys") or {}).items():
            if scope not in SCOPES or not isinstance(entry, dict):
                continue
            try:
                value = _reveal(entry)
            except (KeyError, ValueError, TypeError):
                continue
            if value:
                register_secret(value)
                keys[scope] = value
        return keys

    def get(self, scope: str) -> ApiKey | None:
        value = self._load().get(scope)
        return ApiKey(value, source_name(scope)) if value else None

    def status(self) -> dict[str, dict[str, object]]:
        """{scope: {"set": bool, "ends": last four characters or None}}: all the page ever learns back."""
        keys = self._load()
        return {scope: {"set": scope in keys, "ends": keys[scope][-4:] if scope in keys else None}
                for scope in SCOPES}

    # ---- writing ----------------------------------------------------------------------------------------

    def set(self, scope: str, value: str) -> None:
        """Store `value` as the key of `scope`; a value that is not a usable key is refused
        (InvalidApiKeyError, ValueError for an unknown scope) and nothing is written."""
        if scope not in SCOPES:
            raise ValueError(f"unknown region {scope!r}; use one of {', '.join(SCOPES)}")
        key = ApiKey(value, source_name(scope))  # cleans it (BOM, whitespace) and refuses what cannot be sent
        self._update(scope, key.reveal())

    def clear(self, scope: str) -> None:
        if scope not in SCOPES:
            raise ValueError(f"unknown region {scope!r}; use one of {', '.join(SCOPES)}")
        self._update(scope, None)

    def _update(self, scope: str, value: str | None) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        # Two servers on one folder may save at once: read, change and write under one lock.
        with process_lock(self.folder / (FILE_NAME + ".lock")):
            keys = self._load()
            if value is None:
                keys.pop(scope, None)
            else:
                keys[scope] = value
            self._write(keys)

    def _write(self, keys: dict[str, str]) -> None:
        body = json.dumps({"version": 1, "note": "API keys typed into ComfyUI's settings (Wan (DashScope)); "
                                                 "obfuscated, not encrypted: keep this file private",
                           "keys": {scope: _hide(value) for scope, value in sorted(keys.items())}}, indent=1)
        # mkstemp creates the file with mode 0600 on POSIX: the key is never readable by others, not even
        # for the instant before a chmod.
        fd, tmp = tempfile.mkstemp(prefix=".api_keys.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

