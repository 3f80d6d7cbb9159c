"""The route behind the key setting in ComfyUI's settings page (web/wan_settings.js).

    GET    /wan_image/api_keys                       which keys are set: {"set", "ends"} per scope, and what
                                                     would win over the page's key for each region
    POST   /wan_image/api_keys  {"region", "key"}    store a key ("region": "all" or a region name)
    DELETE /wan_image/api_keys?region=beijing        forget one

(ComfyUI also serves every route under /api.) A key goes in and never comes out: no answer, log line or
error holds it, only "set, ends …abcd". The page's own setting store (comfy.settings.json) never sees it.

Only the page of this very server may use the route: a request that the browser marks as coming from
another site (Sec-Fetch-Site), or whose Origin is not this server's Host, is refused with 403, whatever
ComfyUI's own origin middleware does (which checks loopback hosts only, and not at all with
--enable-cors-header). A POST must be JSON, which a page of another origin cannot send without a CORS
preflight this route never answers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ..api import REGIONS, errors, get_logger, resolve_api_key
from ..api.keystore import SCOPES, PageKeys, scope_label
from . import runner

log = get_logger("wan.nodes")
ROUTE = "/wan_image/api_keys"
MAX_BODY = 4096


def cross_origin(headers: Any) -> str | None:
    """Why a request does not come from this server's own page, or None."""
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site.lower() not in ("same-origin", "none"):
        return f"the browser marks it as {site}"
    origin = headers.get("Origin")
    if origin is not None:
        host = (headers.get("Host") or "").strip().lower()
        netloc = urlsplit(origin.strip()).netloc.lower() if origin.strip().lower() != "null" else ""
        if not netloc or netloc != host:
            return "its Origin is not this server"
    return None


def winner(region: str) -> str | None:
    """What would be used for `region` before any key typed into the page (an environment variable, a key
    file), named, never shown; None when the page's key applies."""
    try:
        return resolve_api_key(region=region).source
    except errors.MissingApiKeyError:
        return None
    except errors.ConfigError as exc:  # a key there that cannot be used: say so (the message holds no key)
        return str(exc)


def status() -> dict[str, Any]:
    page = PageKeys(runner.state_dir())
    keys = page.status()
    return {"scopes": [{"scope": scope, "label": scope_label(scope), **keys[scope]} for scope in SCOPES],
            "overridden_by": {region: winner(region) for region in REGIONS}}


def register(routes: Any) -> None:
    from aiohttp import web

    if getattr(routes, "_wan_api_keys", False):  # the pack imported twice must not add the routes twice
        return
    routes._wan_api_keys = True

    def refuse(request: "web.Request") -> "web.Response | None":
        reason = cross_origin(request.headers)
        if reason:
            log.warning("refused a request to %s from another origin (%s)", ROUTE, reason)
            return web.json_response({"error": f"refused: {reason}; use ComfyUI's own page"}, status=403)
        return None

    @routes.get(ROUTE)
    async def get_keys(request: "web.Request") -> "web.Response":
        return refuse(request) or web.json_response(status())

    @routes.post(ROUTE)
    async def set_key(request: "web.Request") -> "web.Response":
        refused = refuse(request)
        if refused:
            return refused
        if request.content_type != "application/json":
            return web.json_response({"error": "send JSON: {\"region\": ..., \"key\": ...}"}, status=415)
        if (request.content_length or 0) > MAX_BODY:
            return web.json_response({"error": "too large"}, status=413)
        try:
            body = await request.json()
            scope, value = body["region"], body["key"]
            if not isinstance(scope, str) or not isinstance(value, str):
                raise TypeError
        except Exception:  # noqa: BLE001 - whatever was sent, the answer must not echo it
            return web.json_response({"error": "send {\"region\": \"all\" or a region, \"key\": \"sk-…\"}"},
                                     status=400)
        if scope not in SCOPES:
            return web.json_response({"error": f"unknown region; use one of {', '.join(SCOPES)}"}, status=400)
        try:
            PageKeys(runner.state_dir()).set(scope, value)
        except errors.InvalidApiKeyError as exc:
            return web.json_response({"error": exc.detail}, status=400)
        log.info("an API key for %s was set in ComfyUI's settings", scope_label(scope))
        return web.json_response(status())

    @routes.delete(ROUTE)
    async def clear_key(request: "web.Request") -> "web.Response":
        refused = refuse(request)
        if refused:
            return refused
        scope = request.query.get("region", "")
        if scope not in SCOPES:
            return web.json_response({"error": f"unknown region; use one of {', '.join(SCOPES)}"}, status=400)
        PageKeys(runner.state_dir()).clear(scope)
        log.info("the API key for %s was removed in ComfyUI's settings", scope_label(scope))
        return web.json_response(status())


def register_with_comfyui() -> None:
    """Add the routes to ComfyUI's server, when there is one (not when the nodes are loaded in-process)."""
    try:
        from server import PromptServer

        routes = PromptServer.instance.routes
    except Exception:  # noqa: BLE001 - no server: nothing to serve
        return
    register(routes)
