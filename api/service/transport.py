"""HTTP to DashScope: one session, explicit timeouts, a retry policy, and the never-pay-twice rule.

THE RULE. A request that creates a billable generation or task (sync generation, a stream, an async task
creation, wan2.5 image-synthesis) is retried only when the service cannot have accepted it:
  * no connection was made (DNS failure, refused, connect timeout), or
  * the body was not completely written to the socket (the connection broke while sending), or
  * the service answered with a status that means "not taken" (429, 500, 503).
Once the whole body has been written, a broken connection or a read timeout is ambiguous: the service
may be generating, and will bill, the images. Such a failure is reported (WanConnectionError with
maybe_billed=True) and never sent again. Task queries, cancels and downloads are idempotent and are
retried on any connection fault and on 429/500/502/503/504.

To know whether the body was completely written, the connections used here record it (see
`_TrackedHTTPConnection`); requests itself cannot tell a reset before the body from one after it.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .. import __version__
from ..config import Endpoint
from ..errors import ConfigError, Interrupted, WanAPIError, WanConnectionError, WanTimeoutError, api_error
from ..money.billing import NOT_BILLED, Billing, Sent, maybe, tag
from ..request.build import json_bytes
from ..secrets import ApiKey, get_logger, redact
from .waiting import pause

log = get_logger("wan.transport")

# ---- knowing whether the body went out -----------------------------------------------------------------

_wire = threading.local()


class _SendTracking:
    def request(self, *args: Any, **kwargs: Any) -> Any:
        if getattr(self, "sock", None) is not None:  # a pooled connection, already open
            _wire.connected = True
        result = super().request(*args, **kwargs)  # type: ignore[misc]
        # Only reached when http.client wrote the request line, headers and the whole body.
        _wire.body_sent = True
        return result

    def connect(self) -> Any:
        result = super().connect()  # type: ignore[misc]
        _wire.connected = True
        return result


class _TrackedHTTPConnection(_SendTracking, HTTPConnection):
    pass


class _TrackedHTTPSConnection(_SendTracking, HTTPSConnection):
    pass


class _QuietTracking:
    """Pools that know how long each of their connections has been quiet (since its last answer was read and
    it came back to the pool), and never hand one quiet longer than `_wire.fresh_after` seconds to a billable
    request: it is closed, and the request connects anew. Per connection, whatever the other connections of
    the session did meanwhile, and for every pool: direct, through an HTTP proxy (a CONNECT tunnel for
    https), through a SOCKS proxy."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        fresh_after = getattr(_wire, "fresh_after", None)
        quiet_since = getattr(conn, "_wan_quiet_since", None)
        if (fresh_after is not None and quiet_since is not None and getattr(conn, "sock", None) is not None
                and _quiet_for(quiet_since) > fresh_after):
            log.debug("a pooled connection quiet for %.0f s is not trusted with a billable body; connecting anew",
                      _quiet_for(quiet_since))
            conn.close()
        return conn

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            conn._wan_quiet_since = (time.monotonic(), time.time())
        super()._put_conn(conn)  # type: ignore[misc]


def _quiet_for(since: tuple[float, float]) -> float:
    """Seconds since `since` (monotonic, wall clock), by whichever clock says longer: the monotonic clock does
    not advance while a laptop sleeps (Linux, macOS), which is the very case the rule is for; the wall clock
    does, but may be stepped."""
    return max(time.monotonic() - since[0], time.time() - since[1])


class _TrackedHTTPPool(_QuietTracking, HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSPool(_QuietTracking, HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


_TRACKED_POOLS = {"http": _TrackedHTTPPool, "https": _TrackedHTTPSPool}
_socks_pools: dict[str, type] | None = None


def _tracked_socks_pools() -> dict[str, type]:
    """The SOCKS pools, tracked the same way (built on first use: they need PySocks, an optional extra)."""
    global _socks_pools
    if _socks_pools is None:
        from urllib3.contrib.socks import (
            SOCKSConnection, SOCKSHTTPConnectionPool, SOCKSHTTPSConnection, SOCKSHTTPSConnectionPool,
        )

        connection = type("_TrackedSOCKSConnection", (_SendTracking, SOCKSConnection), {})
        tls_connection = type("_TrackedSOCKSHTTPSConnection", (_SendTracking, SOCKSHTTPSConnection), {})
        _socks_pools = {
            "http": type("_TrackedSOCKSHTTPPool", (_QuietTracking, SOCKSHTTPConnectionPool),
                         {"ConnectionCls": connection}),
            "https": type("_TrackedSOCKSHTTPSPool", (_QuietTracking, SOCKSHTTPSConnectionPool),
                          {"ConnectionCls": tls_connection}),
        }
    return _socks_pools


class _TrackingAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_TRACKED_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        socks = proxy.lower().startswith("socks")
        try:
            manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        except requests.exceptions.InvalidSchema:
            if not socks:
                raise
            # requests says only "Missing dependencies for SOCKS support"; say which, and that nothing left.
            # (Never the proxy's URL: it may carry a password.)
            raise ConfigError(f"the proxy in HTTPS_PROXY / HTTP_PROXY / ALL_PROXY is a SOCKS proxy "
                              f"({proxy.split(':', 1)[0]}://…), which needs PySocks: pip install PySocks (the "
                              "pack's optional `socks` extra). Nothing was sent.") from None
        if getattr(manager, "_wan_tracked", False):
            return manager
        # SOCKS pools keep their own connection classes (which carry the SOCKS options), tracked the same way.
        manager.pool_classes_by_scheme = dict(_tracked_socks_pools() if socks else _TRACKED_POOLS)
        manager._wan_tracked = True
        return manager


def new_session() -> requests.Session:
    session = requests.Session()
    adapter = _TrackingAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # TLS verification is requests' default and is never turned off here.
    return session


# ---- policy ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0
    # A sync generation holds the connection for the whole generation (the SDK allows 300 s).
    sync_read: float = 300.0
    # For a stream this is the idle-read timeout: the longest silence between two frames.
    stream_idle: float = 180.0
    create_read: float = 60.0
    query_read: float = 30.0


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4                     # tries in all, the first included
    backoff: float = 0.5                  # the first wait; doubled each time, with full jitter
    backoff_max: float = 15.0
    retry_after_max: float = 60.0         # a Retry-After longer than this is reported, not waited for
    billable_statuses: frozenset[int] = frozenset({429, 500, 503})
    idempotent_statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try number `attempt + 1` (attempt counts from 1)."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_max) + random.uniform(0, 0.25)
        cap = min(self.backoff_max, self.backoff * (2 ** (attempt - 1)))
        return random.uniform(cap / 2, cap)


NO_RETRY = RetryPolicy(attempts=1)


class Failure:
    """What went wrong with one try, in the terms the retry rule needs."""

    def __init__(self, *, status: int | None = None, error: Exception | None = None,
                 connected: bool = False, body_sent: bool = False, retry_after: float | None = None) -> None:
        self.status = status
        self.error = error
        self.connected = connected
        self.body_sent = body_sent
        self.retry_after = retry_after


def may_retry(policy: RetryPolicy, failure: Failure, *, billable: bool) -> bool:
    """THE RULE (see the module docstring)."""
    if failure.status is not None:
        statuses = policy.billable_statuses if billable else policy.idempotent_statuses
        return failure.status in statuses
    if not billable:
        return True
    return not failure.body_sent


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


# ---- the transport ----------------------------------------------------------------------------------------

# A pooled connection quiet this long is not trusted with a billable body: after a laptop's sleep, or a NAT or
# VPN that forgot it, it may be dead without knowing it, and a body written into it would count as sent
# ("maybe billed", never resent). A fresh connection costs a handshake; a lost picture costs money.
STALE_AFTER_S = 30.0

OnRetry = Callable[[int, float, str], None]


@dataclass
class Transport:
    endpoint: Endpoint
    api_key: ApiKey
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    session: requests.Session = field(default_factory=new_session)
    # How long a pooled connection may have been quiet and still carry a billable body (None: STALE_AFTER_S).
    stale_after: float | None = None

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        # Built per request, never stored on the session: a session's default headers would follow a
        # redirect or a result download to another host.
        h = {
            "Authorization": f"Bearer {self.api_key.reveal()}",
            "Content-Type": "application/json",
            "User-Agent": f"comfyui-wan/{__version__}",
        }
        if extra:
            h.update(extra)
        return h

    def close(self) -> None:
        self.session.close()

    def request(self, method: str, path: str, *, json_body: Any = None, headers: dict[str, str] | None = None,
                billable: bool, read_timeout: float, stream: bool = False,
                cancel: threading.Event | None = None, on_retry: OnRetry | None = None,
                sent: Sent | None = None) -> requests.Response:
        """One logical request with retries. Returns a 2xx response; raises a WanError otherwise.

        For a billable request, whatever is raised carries its `billing` (api/money/billing.py): not billed when
        the body cannot have reached the service, maybe when it may have; `sent` is marked once it may."""
        url = self.endpoint.url(path)
        payload = None if json_body is None else json_bytes(json_body)
        try:
            return self._request(method, path, url, payload, headers, billable, read_timeout, stream, cancel,
                                 on_retry, sent)
        except BaseException as exc:
            if billable:
                # Not billed when the body never went out, whatever the error's type (a proxy library's
                # TypeError, a header that will not encode); an error raised after it went out may be.
                body_sent = bool(getattr(_wire, "body_sent", False))
                if body_sent and sent is not None:
                    sent.reached = True
                tag(exc, maybe(f"{type(exc).__name__} after the request was sent") if body_sent else
                    Billing(why=f"{type(exc).__name__} before the request was sent"))
            raise

    def _request(self, method: str, path: str, url: str, payload: bytes | None, headers: dict[str, str] | None,
                 billable: bool, read_timeout: float, stream: bool, cancel: threading.Event | None,
                 on_retry: OnRetry | None, sent: Sent | None) -> requests.Response:
        attempt = 0
        while True:
            attempt += 1
            _wire.connected = False
            _wire.body_sent = False
            # Read by the pools when they pick a connection for this request (see _QuietTracking).
            _wire.fresh_after = (STALE_AFTER_S if self.stale_after is None else self.stale_after) if billable else None
            if cancel is not None and cancel.is_set():
                raise Interrupted("stopped by the user before the request was sent")
            try:
                response = self.session.request(
                    method, url, data=payload, headers=self.headers(headers), stream=stream,
                    timeout=(self.timeouts.connect, read_timeout), allow_redirects=False,
                )
            except requests.RequestException as exc:
                failure = Failure(error=exc, connected=bool(getattr(_wire, "connected", False)),
                                  body_sent=bool(getattr(_wire, "body_sent", False)))
                if attempt < self.retry.attempts and may_retry(self.retry, failure, billable=billable):
                    wait = self.retry.delay(attempt)
                    log.info("%s %s: %s; retrying in %.1f s", method, path, _describe(exc), wait)
                    if on_retry:
                        on_retry(attempt, wait, _describe(exc))
                    pause(wait, cancel, "waiting to retry")
                    continue
                raise self._connection_error(exc, failure, billable, attempt) from None
            # An answer settles this attempt: what the status says, not "the body went out", decides it.
            _wire.body_sent = False
            if sent is not None:
                sent.reached = True
            if response.status_code < 300:
                return response
            error = self._api_error(response)
            if billable:
                # The service's own "no" is not billed; a gateway's 502/504 may hide a service that took it
                # (which is also why such a request is not resent).
                error.billing = maybe(f"HTTP {response.status_code} from a gateway; it may have run") \
                    if response.status_code in (502, 504) else NOT_BILLED
            failure = Failure(status=response.status_code, retry_after=_retry_after(response))
            response.close()
            if attempt < self.retry.attempts and may_retry(self.retry, failure, billable=billable):
                if failure.retry_after is not None and failure.retry_after > self.retry.retry_after_max:
                    raise error
                wait = self.retry.delay(attempt, failure.retry_after)
                log.info("%s %s: HTTP %s %s; retrying in %.1f s", method, path, response.status_code,
                         error.code, wait)
                if on_retry:
                    on_retry(attempt, wait, f"HTTP {response.status_code} {error.code or ''}".strip())
                pause(wait, cancel, "waiting to retry")
                continue
            raise error

    def _api_error(self, response: requests.Response) -> WanAPIError:
        code = message = request_id = None
        try:
            data = response.json()
            if isinstance(data, dict):
                code, message, request_id = data.get("code"), data.get("message"), data.get("request_id")
        except ValueError:
            message = redact(response.text[:300]) or response.reason
        return api_error(code, message, status=response.status_code, request_id=request_id,
                         endpoint=self.endpoint.label)

    def _connection_error(self, exc: Exception, failure: Failure, billable: bool, attempts: int) -> WanConnectionError:
        maybe_billed = billable and failure.body_sent
        cls = WanTimeoutError if isinstance(exc, requests.Timeout) else WanConnectionError
        if not failure.connected:
            what = (f"could not connect to {self.endpoint.label}; check the network, a proxy, or the "
                    f"region ({_describe(exc)})")
        elif maybe_billed:
            what = f"the connection failed after the request was sent ({_describe(exc)})"
        else:
            what = f"the connection failed ({_describe(exc)})"
        if attempts > 1:
            what += f"; tried {attempts} times"
        return cls(what, maybe_billed=maybe_billed, endpoint=self.endpoint.label)


def _describe(exc: Exception) -> str:
    if isinstance(exc, requests.ConnectTimeout):
        return "connect timed out"
    if isinstance(exc, requests.ReadTimeout):
        return "no answer within the read timeout"
    text = str(exc)
    for marker in ("Connection refused", "Connection reset", "RemoteDisconnected", "Connection aborted",
                   "Name or service not known", "IncompleteRead", "Connection broken"):
        if marker in text:
            return marker.lower() if marker[0].isupper() and " " in marker else marker
    return redact(type(exc).__name__)
