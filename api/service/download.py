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
    pixels: np.ndarray     # HxWx3 uint8, read-only (Pillow's own copy of the decoded rows, not copied again)
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

    def fetch(self, url: str, cancel: threading.Event | None = None,
              on_bytes: Callable[[bytes], None] | None = None) -> DownloadedImage:
        """One picture, downloaded and decoded. `on_bytes(data)` is called with each complete body before it is
        decoded (a body that then fails to decode is fetched again, and handed on again)."""
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
                if on_bytes is not None:
                    on_bytes(data)
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
        """Every URL, in order (see `start`)."""
        return self.start(urls, cancel, on_done).images()

    def start(self, urls: list[str], cancel: threading.Event | None = None,
              on_done: Callable[[int], None] | None = None) -> "Fetching":
        """Start fetching every URL on the process's download threads; `on_done(count)` after each."""
        return Fetching(self, urls, cancel, on_done)

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
                pixels = np.asarray(rgb)   # a read-only view of Pillow's bytes: one copy of 3 MB a 1024^2 fewer
        except _Permanent:
            raise
        except Image.DecompressionBombError as exc:
            raise _Permanent(f"result refused as a decompression bomb ({exc})") from None
        except (OSError, SyntaxError, ValueError) as exc:
            # A truncated transfer looks like a corrupt file: fetch it again.
            raise _Transient(f"not a valid picture ({exc})") from None
        return DownloadedImage(url=url, data=data, pixels=pixels, width=width, height=height, format=fmt)


class Fetching:
    """The pictures of one answer on their way: one download thread each, from the threads the whole process
    shares (at most DOWNLOAD_THREADS at once, whatever else is downloading). A file's bytes are handed out the
    moment its body has arrived (`files`), before its decoding ends: the caller stores them (fsyncs) while
    they decode, instead of after. `images` waits for the decoded pictures."""

    def __init__(self, downloader: Downloader, urls: list[str], cancel: threading.Event | None,
                 on_done: Callable[[int], None] | None) -> None:
        self.urls = list(urls)
        self.started = time.monotonic()
        self._files: list[bytes | None] = [None] * len(self.urls)
        self._failed = False
        self._done = 0
        self._changed = threading.Condition()
        self._on_done = on_done
        self._futures = [_POOL.submit(self._one, downloader, i, url, cancel) for i, url in enumerate(self.urls)]

    def _one(self, downloader: Downloader, index: int, url: str, cancel: threading.Event | None) -> DownloadedImage:
        try:
            image = downloader.fetch(url, cancel=cancel, on_bytes=lambda data: self._arrived(index, data))
        except BaseException:
            with self._changed:
                self._failed = True
                self._changed.notify_all()
            raise
        with self._changed:   # (held while telling: counts reach on_done in order)
            self._done += 1
            if self._on_done:
                self._on_done(self._done)
        return image

    def _arrived(self, index: int, data: bytes) -> None:
        with self._changed:
            if self._files[index] is None:
                self._files[index] = data
                self._changed.notify_all()

    def arrived(self, timeout: float | None = None) -> bool:
        """True once every body has arrived or a download has failed for good (`files` will not wait)."""
        with self._changed:
            return self._changed.wait_for(self._over, timeout)

    def _over(self) -> bool:
        return self._failed or all(f is not None for f in self._files)

    def files(self) -> list[bytes] | None:
        """Every picture's body as it first arrived (its decoding may still fail, and a retry bring other
        bytes: compare with `images()[i].data`), or None once a download has failed for good."""
        with self._changed:
            self._changed.wait_for(self._over)
            return None if self._failed else list(self._files)  # type: ignore[arg-type]

    def images(self) -> list[DownloadedImage]:
        """The decoded pictures, in the URLs' order; the first failure is raised (and the downloads not yet
        begun are dropped: nothing is fetched for nothing)."""
        try:
            return [future.result() for future in self._futures]
        finally:
            for future in self._futures:
                future.cancel()


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
