"""Where requests go and with which key (regions, the base-URL override, key discovery), and where the
pack keeps its state on disk.

The key is looked up as the official DashScope SDK does it (DASHSCOPE_API_KEY, then the file named by
DASHSCOPE_API_KEY_FILE_PATH, then ~/.dashscope/api_key), with a per-region variable before those and the keys
typed into ComfyUI's settings after them: `resolve_api_key` has the order. DASHSCOPE_HTTP_BASE_URL replaces the whole base
URL (`.../api/v1`) for proxies and for this pack's emulator; it wins over the region.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError, InvalidApiKeyError, MissingApiKeyError
from .secrets import ApiKey, clean_key

REGIONS: dict[str, str] = {
    "singapore": "https://dashscope-intl.aliyuncs.com/api/v1",
    "virginia": "https://dashscope-us.aliyuncs.com/api/v1",
    "beijing": "https://dashscope.aliyuncs.com/api/v1",
}
REGION_LABELS = {"singapore": "Singapore", "virginia": "Virginia (US)", "beijing": "Beijing (China mainland)"}
# Other names people use for the same regions.
_REGION_ALIASES = {
    "intl": "singapore", "international": "singapore", "ap-southeast-1": "singapore", "sg": "singapore",
    "us": "virginia", "us-east-1": "virginia", "va": "virginia",
    "cn": "beijing", "china": "beijing", "cn-beijing": "beijing", "bj": "beijing",
}
DEFAULT_REGION = "singapore"

ENV_API_KEY = "DASHSCOPE_API_KEY"
ENV_API_KEY_FILE = "DASHSCOPE_API_KEY_FILE_PATH"
ENV_BASE_URL = "DASHSCOPE_HTTP_BASE_URL"
ENV_REGION = "DASHSCOPE_REGION"
DEFAULT_KEY_FILE = Path("~/.dashscope/api_key")
ENV_STATE_DIR = "WAN_STATE_DIR"
DEFAULT_STATE_DIR = Path("~/.cache/comfyui-wan-image")


def state_dir(host_default: Path | None = None) -> Path:
    """THE place the journal, the result cache and the ledger live: WAN_STATE_DIR, else the host's folder
    for it (inside ComfyUI: user/wan_image, passed in by the nodes), else ~/.cache/comfyui-wan-image."""
    env = os.environ.get(ENV_STATE_DIR, "").strip()
    if env:
        return Path(env).expanduser()
    return Path(host_default) if host_default else DEFAULT_STATE_DIR.expanduser()


def cli_state_dir() -> Path:
    """The state folder for a command run from a terminal (`python -m api.ledger`, `python -m api.recent`):
    WAN_STATE_DIR, else ComfyUI's user/wan_image when run from the pack inside ComfyUI/custom_nodes (or
    from a folder two levels below a ComfyUI folder), else the default."""
    if os.environ.get(ENV_STATE_DIR, "").strip():
        return state_dir()
    pack = Path(__file__).absolute().parents[1]
    cwd = Path.cwd()
    for comfy in (pack.parents[1], cwd.parents[1] if len(cwd.parents) > 1 else None):
        if comfy is not None and (comfy / "user" / "wan_image").is_dir():
            return state_dir(comfy / "user" / "wan_image")
    return state_dir()


def normalize_region(name: str | None) -> str:
    """'Singapore', 'intl', 'ap-southeast-1' -> 'singapore'. Empty or 'default' -> the env or Singapore."""
    raw = (name or "").strip().lower()
    if raw in ("", "default", "auto"):
        raw = os.environ.get(ENV_REGION, "").strip().lower() or DEFAULT_REGION
    raw = _REGION_ALIASES.get(raw, raw)
    if raw not in REGIONS:
        raise ConfigError(
            f"unknown region {name!r}; use one of " + ", ".join(REGIONS),
            hint=f"Set {ENV_REGION} or the node's region input",
        )
    return raw


def region_key_variable(region: str) -> str:
    """DASHSCOPE_API_KEY_BEIJING: the environment variable holding one region's key."""
    return f"{ENV_API_KEY}_{region.upper()}"


def _read_key_file(path: Path, named_by: str) -> str:
    """A key file's text: UTF-8 with or without a byte-order mark, or UTF-16 with one (what Notepad's
    "Unicode" saves). Cleaning and checking the key is ApiKey's."""
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidApiKeyError(f"the API key file {path} ({named_by}) is not text in UTF-8 (or UTF-16 with a "
                                 "byte-order mark); save it as plain text with the key on one line") from None


def resolve_api_key(environ: dict[str, str] | None = None, home: Path | None = None, *, region: str | None = None,
                    state_folder: "os.PathLike[str] | str | None" = None) -> ApiKey:
    """The key for a request to `region` (a region name, or None/"default" for DASHSCOPE_REGION, else
    Singapore), first found of:

    1. DASHSCOPE_API_KEY_<REGION> (e.g. DASHSCOPE_API_KEY_BEIJING): that region's key;
    2. DASHSCOPE_API_KEY;
    3. the file named by DASHSCOPE_API_KEY_FILE_PATH (it must exist and hold a key);
    4. ~/.dashscope/api_key;
    5. the key typed into ComfyUI's settings for that region (kept in `state_folder`, api/keystore.py);
    6. the key typed there for all regions.

    With DASHSCOPE_HTTP_BASE_URL set the endpoint is no region, but the key is still looked up for the
    node's region (its widget, "default" as above): a proxy or the emulator is reached with the key of the
    region it stands for. Every key passes through ApiKey, which drops a byte-order mark and surrounding
    whitespace and refuses a key that could not be sent (not ASCII), naming where it came from."""
    env = os.environ if environ is None else environ
    try:
        name = region_for(region, env)
    except ConfigError:
        name = None  # an unknown region fails where the endpoint is resolved, with its own message
    if name:
        variable = region_key_variable(name)
        value = env.get(variable, "")
        if clean_key(value):
            return ApiKey(value, variable)
    value = env.get(ENV_API_KEY, "")
    if clean_key(value):
        return ApiKey(value, ENV_API_KEY)
    key_file = env.get(ENV_API_KEY_FILE, "").strip()
    if key_file:
        path = Path(key_file).expanduser()
        try:
            value = _read_key_file(path, ENV_API_KEY_FILE)
        except OSError as exc:
            raise MissingApiKeyError(
                f"{ENV_API_KEY_FILE} names {path}, which cannot be read ({exc.strerror or exc})"
            ) from None
        if clean_key(value):
            return ApiKey(value, f"the file {path} ({ENV_API_KEY_FILE})")
        raise MissingApiKeyError(f"{ENV_API_KEY_FILE} names {path}, which is empty")
    default = (home / ".dashscope" / "api_key") if home else DEFAULT_KEY_FILE.expanduser()
    try:
        value = _read_key_file(default, "the default key file")
    except OSError:
        value = ""
    if clean_key(value):
        return ApiKey(value, f"the file {default} (the default key file, ~/.dashscope/api_key)")
    if state_folder is not None:
        from .keystore import ALL_REGIONS, PageKeys

        page = PageKeys(state_folder)
        for scope in ([name] if name else []) + [ALL_REGIONS]:
            key = page.get(scope)
            if key is not None:
                return key
    raise MissingApiKeyError("no DashScope API key found" + (f" for {REGION_LABELS[name]}" if name else ""))


def region_for(region: str | None, environ: dict[str, str] | None = None) -> str:
    """normalize_region with DASHSCOPE_REGION read from `environ` (default: the process's)."""
    env = os.environ if environ is None else environ
    raw = (region or "").strip().lower()
    if raw in ("", "default", "auto"):
        raw = env.get(ENV_REGION, "").strip().lower() or DEFAULT_REGION
    return normalize_region(raw)


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: a base URL ending in /api/v1, and how to describe it to a user."""

    base_url: str
    region: str | None      # None when DASHSCOPE_HTTP_BASE_URL overrides the region
    overridden: bool

    @property
    def label(self) -> str:
        if self.overridden or self.region is None:
            return f"{self.base_url} (from {ENV_BASE_URL})"
        return f"{REGION_LABELS[self.region]}, {self.base_url}"

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")


def endpoint_overridden(environ: dict[str, str] | None = None) -> bool:
    """Whether DASHSCOPE_HTTP_BASE_URL names the endpoint (then it, not the region, decides what is offered)."""
    env = os.environ if environ is None else environ
    return bool(env.get(ENV_BASE_URL, "").strip())


def resolve_endpoint(region: str | None = None, environ: dict[str, str] | None = None) -> Endpoint:
    env = os.environ if environ is None else environ
    override = env.get(ENV_BASE_URL, "").strip()
    if override:
        parts = urlsplit(override)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{ENV_BASE_URL} must be an http(s) URL such as "
                              f"https://dashscope-intl.aliyuncs.com/api/v1, not {override!r}")
        return Endpoint(base_url=override.rstrip("/"), region=None, overridden=True)
    name = normalize_region(region)
    return Endpoint(base_url=REGIONS[name], region=name, overridden=False)
