"""WanClient: the facade. Send a built `WanRequest` by sync, streaming or async task; get pictures and text.

The work is done by small pieces, grouped by layer:
  request/   what is sent: the model table, building and checking a request, encoding its pictures
  service/   HTTP, retries and the rule that a billable request is never sent twice by accident
             (transport.py); the service's calls and answers; downloads; rate limits
  money/     the billed decision, the journal and result cache around the calls (never pay twice, never drop
             a paid picture), prices
  present.py the `info` a user sees

Blocking by design; ComfyUI nodes run it in a worker thread and pass a `threading.Event` as `cancel`.
Close a client (or use it in a `with` block) to close its HTTP connections.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .config import Endpoint, resolve_api_key, resolve_endpoint
from .money.resumable import Resumable
from .money.store import Store
from .request import models
from .request.build import WanRequest
from .result import Emitter, OnProgress, WanResult
from .secrets import ApiKey
from .service.calls import PollSchedule, ServiceCalls
from .service.download import Downloader
from .service.ratelimit import TokenBucket, generation_slots, task_query_limiter
from .service.transport import RetryPolicy, Timeouts, Transport

TRANSPORTS = models.TRANSPORT_CHOICES


class WanClient:
    def __init__(self, api_key: ApiKey | str | None = None, region: str | None = None, *,
                 endpoint: Endpoint | None = None, retry: RetryPolicy | None = None,
                 timeouts: Timeouts | None = None, poll: PollSchedule | None = None,
                 downloader: Downloader | None = None, task_limiter: TokenBucket | None = None,
                 max_wait: float = 30 * 60.0, query_failure_budget: float = 120.0,
                 store: Store | None = None) -> None:
        key = (api_key if isinstance(api_key, ApiKey) else ApiKey(api_key) if api_key else
               resolve_api_key(region=region or (endpoint.region if endpoint else None),
                               state_folder=store.folder if store is not None else None))
        self.endpoint = endpoint or resolve_endpoint(region)
        self.transport = Transport(self.endpoint, key, retry or RetryPolicy(), timeouts or Timeouts())
        self.downloader = downloader or Downloader()
        self.store = store
        # Tasks, cached results and limits belong to an account at one endpoint: keyed by this (never the key).
        self.account = f"{key.fingerprint}@{self.endpoint.base_url}"
        # Slots, query bucket and daily limit are shared through the store's folder by every process on it.
        shared = store.folder if store is not None else None
        self.calls = ServiceCalls(
            self.transport, poll=poll or PollSchedule(), max_wait=max_wait,
            task_limiter=task_limiter or task_query_limiter(self.endpoint.base_url, key.fingerprint, shared),
            query_failure_budget=query_failure_budget)
        self.resumable = Resumable(self.calls, self.downloader, store, self.account,
                                   generation_slots(self.endpoint.base_url, key.fingerprint, shared))
        if shared is not None:
            from .ledger import Meter, open_ledger  # here: only a client with a state folder keeps a ledger

            self.resumable.meter = Meter(open_ledger(shared), key.fingerprint, self.endpoint.label,
                                         self.endpoint.region)

    def __repr__(self) -> str:
        return f"WanClient({self.endpoint.label}, key={self.transport.api_key.masked})"

    def __enter__(self) -> "WanClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP sessions (the API's and the result host's)."""
        self.transport.close()
        self.downloader.close()

    # ---- the whole round trip ----------------------------------------------------------------------

    def generate(self, req: WanRequest, *, transport: str = "auto", cancel: threading.Event | None = None,
                 on_progress: OnProgress | None = None, download: bool = True, use_cache: bool = True) -> WanResult:
        """Send `req` and bring back its pictures and text. With a `store`: an identical request already
        fetched (same account and endpoint) is answered from the result cache with no request at all, and
        an identical async task created earlier and not yet fetched is resumed instead of created again."""
        chosen = self.choose_transport(req, transport)
        # A region whose endpoints the model's page does not list is refused before anything is sent.
        models.check_region(req.model, self.endpoint.region, self.endpoint.overridden)
        started = time.monotonic()
        emit = Emitter(on_progress, started)
        result = self.resumable.generate(req, chosen, cancel, emit, download=download, use_cache=use_cache)
        if not result.from_cache:
            result.transport = result.transport or chosen
            result.endpoint = self.endpoint.label
            result.region = self.endpoint.region
        result.elapsed = time.monotonic() - started
        emit("done", images_done=len(result.images), images_total=len(result.urls),
             message="cached" if result.from_cache else "")
        return result

    def cached(self, req: WanRequest) -> WanResult | None:
        """The stored answer to `req` for this account and endpoint, or None. Sends nothing."""
        return self.resumable.cached(req)

    @staticmethod
    def choose_transport(req: WanRequest, transport: str) -> str:
        # The rule lives in api/request/models.py (one copy, read by the nodes' validation too).
        return models.choose_transport(req.model, req.mode, transport)

    # ---- single calls, for scripts and tests -------------------------------------------------------

    def submit(self, req: WanRequest, *, cancel: threading.Event | None = None,
               on_progress: OnProgress | None = None) -> tuple[str, str | None]:
        """Create an async task (billable; not journaled). Returns (task_id, request_id)."""
        return self.calls.create_task(req, cancel, Emitter(on_progress))

    def get_task(self, task_id: str, *, cancel: threading.Event | None = None) -> dict[str, Any]:
        return self.calls.get_task(task_id, cancel)

    def wait_task(self, task_id: str, *, cancel: threading.Event | None = None,
                  on_progress: OnProgress | None = None, cancel_pending_on_interrupt: bool = True) -> dict[str, Any]:
        return self.calls.wait_task(task_id, cancel, Emitter(on_progress), cancel_pending_on_interrupt)

    def cancel_task(self, task_id: str) -> bool:
        return self.calls.cancel_task(task_id)
