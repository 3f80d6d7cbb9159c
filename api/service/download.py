"""Fetching result pictures from the service's result host (OSS), safely.

Result URLs are pre-signed: they need no key, so none is sent (a separate session, no Authorization header,
no redirects followed to other schemes). Only http/https URLs are fetched. The body is streamed with a byte
cap, the picture's size is checked against a pixel cap BEFORE it is decoded (a small PNG can declare a
gigapixel canvas), and the PNG is fully decoded, so a truncated file is caught here, not in the graph.
Downloads are idempotent and retried.
"""

from __future__ import annotations

import io
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import numpy as np
import requests
from PIL import Image

from ..errors import DownloadError, Interrupted
from ..secrets import get_logger
from ..workers import Workers
from .transport import RetryPolicy
from .waiting import pause

log = get_logger("wan.download")

ENV_PATIENCE = "WAN_DOWNLOAD_PATIENCE_S"
# How long a result download is tried again after it first fails. The pictures are paid for and a download
# costs nothing, so an outage of the result host is ridden out rather than reported at once; a longer one
# leaves the paid answer in the journal, to be fetched by the next run or the WanRecentResults node.
DEFAULT_PATIENCE_S = 30.0
MAX_BYTES = 128 * 2**20
# 4K output is 4096^2 = 16.8 MP; leave room for the "slightly different" real sizes, refuse bombs.
MAX_PIXELS = 40_000_000
# Every download of the process shares these threads (made when needed, reused): however many generations
# finish at once, downloads add at most this many threads.
DOWNLOAD_THREADS = 4
_POOL = Workers(DOWNLOAD_THREADS, "wan-dl")


@dataclass
class DownloadedImage:
    url: str
    data: bytes            # the file as the service sent it (PNG)
    pixels: np.ndarray     # HxWx3 uint8
    width: int
    height: int
    format: str


def url_expiry(url: str) -> int | None:
    """The `Expires=` epoch seconds of a pre-signed result URL, if it has one."""
    try:
        values = parse_qs(urlsplit(url).query).get("Expires")
        return int(values[0]) if values else None
    except (ValueError, TypeError):
        return None


def _describe_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"  # never the signature


class Downloader:
    def __init__(self, *, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS,
                 retry: RetryPolicy | None = None, timeout: tuple[float, float] = (10.0, 60.0),
                 patience: float | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        # At least `retry.attempts` tries, and tries until `patience` seconds have passed since the first
        # failure (a caller giving its own retry policy gets exactly that policy unless it names a patience).
        self.retry = retry or RetryPolicy(attempts=4, backoff=0.5, backoff_max=5.0)
        if patience is None:
            patience = 0.0 if retry is not None else _patience_from_env()
        self.patience = patience
        self.timeout = timeout
        # A session of its own: the API session's connections and headers never meet the result host.
        self.session = requests.Session()

    def fetch(self, url: str, cancel: threading.Event | None = None) -> DownloadedImage:
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise DownloadError(f"refused to fetch a result from a {scheme or 'relative'} URL; only http(s)")
        attempt = 0
        first_failure: float | None = None
        while True:
            attempt += 1
            if cancel is not None and cancel.is_set():
                raise Interrupted("stopped by the user while downloading results")
            try:
                data = self._get(url)
                return self._decode(url, data)
            except _Permanent as exc:
                raise DownloadError(str(exc)) from None
            except requests.exceptions.SSLError:
                # Verification is never turned off: a result host whose certificate does not verify is
                # not one of the service's, or something sits in between. Retrying will not change that.
                raise DownloadError(f"the result host's TLS certificate did not verify: {_describe_url(url)}") from None
            except (requests.RequestException, _Transient) as exc:
                now = time.monotonic()
                first_failure = first_failure or now
                if attempt >= self.retry.attempts and now - first_failure >= self.patience:
                    # What the result host said ("HTTP 503"), or the network error's own name.
                    said = str(exc) if isinstance(exc, _Transient) else f"{type(exc).__name__}: {exc}"
                    raise DownloadError(f"could not fetch {_describe_url(url)} after {attempt} tries in "
                                        f"{now - first_failure:.0f} s ({said})") from None
                wait = self.retry.delay(attempt)
                log.info("download of %s failed (%s); retrying in %.1f s", _describe_url(url), exc, wait)
                pause(wait, cancel, "waiting to retry a download")

    def fetch_all(self, urls: list[str], cancel: threading.Event | None = None,
                  on_done: Callable[[int], None] | None = None) -> list[DownloadedImage]:
        """Every URL, in order, up to DOWNLOAD_THREADS at a time (shared by the whole process); `on_done(count)`
        after each."""
        done = 0
        lock = threading.Lock()

        def one(url: str) -> DownloadedImage:
            nonlocal done
            image = self.fetch(url, cancel=cancel)
            with lock:
                done += 1
                if on_done:
                    on_done(done)
            return image

        if len(urls) <= 1:
            return [one(url) for url in urls]
        futures = [_POOL.submit(one, url) for url in urls]
        try:
            return [future.result() for future in futures]
        finally:
            for future in futures:   # one failed: the rest that have not started are not fetched for nothing
                future.cancel()

    def close(self) -> None:
        self.session.close()

    def _get(self, url: str) -> bytes:
        with self.session.get(url, stream=True, timeout=self.timeout, allow_redirects=False,
                              headers={"User-Agent": "comfyui-wan"}) as response:
            status = response.status_code
            if status in (403, 404, 410):
                said = _oss_error(response.text[:2000])
                expires = url_expiry(url)
                expired = (expires is not None and expires < time.time()) or "expired" in said.lower()
                why = "the result URL has expired (result URLs live 24 hours)" if expired else \
                    f"the result host answered HTTP {status}"
                raise _Permanent(f"{why}{f' ({said})' if said else ''}: {_describe_url(url)}")
            if status >= 300:
                raise _Transient(f"HTTP {status}")
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > self.max_bytes:
                raise _Permanent(f"result of {int(length)} bytes is over the cap of {self.max_bytes}")
            buf = bytearray()
            for chunk in response.iter_content(256 * 1024):
                buf += chunk
                if len(buf) > self.max_bytes:
                    raise _Permanent(f"result is over the cap of {self.max_bytes} bytes")
            if length and length.isdigit() and len(buf) != int(length):
                raise _Transient(f"got {len(buf)} of {length} bytes")
            return bytes(buf)

    def decode(self, url: str, data: bytes) -> DownloadedImage:
        """Decode a picture already on disk (the result cache), with the same caps as a download."""
        try:
            return self._decode(url, data)
        except (_Permanent, _Transient) as exc:
            raise DownloadError(str(exc)) from None

    def _decode(self, url: str, data: bytes) -> DownloadedImage:
        try:
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > self.max_pixels:
                    raise _Permanent(f"result declares {width}x{height} pixels, over the cap of "
                                     f"{self.max_pixels}; refused (decompression bomb?)")
                fmt = img.format or "?"
                img.load()  # decodes every row: a truncated or corrupt file fails here
                rgb = img.convert("RGB") if img.mode != "RGB" else img
                pixels = np.asarray(rgb).copy()
        except _Permanent:
            raise
        except Image.DecompressionBombError as exc:
            raise _Permanent(f"result refused as a decompression bomb ({exc})") from None
        except (OSError, SyntaxError, ValueError) as exc:
            # A truncated transfer looks like a corrupt file: fetch it again.
            raise _Transient(f"not a valid picture ({exc})") from None
        return DownloadedImage(url=url, data=data, pixels=pixels, width=width, height=height, format=fmt)


def _patience_from_env() -> float:
    try:
        return max(0.0, float(os.environ.get(ENV_PATIENCE, "") or DEFAULT_PATIENCE_S))
    except ValueError:
        return DEFAULT_PATIENCE_S


def _oss_error(text: str) -> str:
    """'AccessDenied: Request has expired.' from OSS's XML error body, or ''."""
    import re

    code = re.search(r"<Code>([^<]*)</Code>", text)
    message = re.search(r"<Message>([^<]*)</Message>", text)
    return ": ".join(m.group(1) for m in (code, message) if m)


class _Transient(Exception):
    pass


class _Permanent(Exception):
    pass
