"""Where requests go and with which key (regions, the base-URL override, key discovery), and where the
pack keeps its state on disk.

The key is looked up as the official DashScope SDK does it: DASHSCOPE_API_KEY, then the file named by
DASHSCOPE_API_KEY_FILE_PATH, then ~/.dashscope/api_key. DASHSCOPE_HTTP_BASE_URL replaces the whole base
URL (`.../api/v1`) for proxies and for this pack's emulator; it wins over the region.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError, MissingApiKeyError
from .secrets import ApiKey

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


def resolve_api_key(environ: dict[str, str] | None = None, home: Path | None = None) -> ApiKey:
    env = os.environ if environ is None else environ
    value = env.get(ENV_API_KEY, "").strip()
    if value:
        return ApiKey(value)
    key_file = env.get(ENV_API_KEY_FILE, "").strip()
    if key_file:
        path = Path(key_file).expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise MissingApiKeyError(
                f"{ENV_API_KEY_FILE} names {path}, which cannot be read ({exc.strerror or exc})"
            ) from None
        if value:
            return ApiKey(value)
        raise MissingApiKeyError(f"{ENV_API_KEY_FILE} names {path}, which is empty")
    default = (home / ".dashscope" / "api_key") if home else DEFAULT_KEY_FILE.expanduser()
    try:
        value = default.read_text(encoding="utf-8").strip()
    except OSError:
        value = ""
    if value:
        return ApiKey(value)
    raise MissingApiKeyError("no DashScope API key found")


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
