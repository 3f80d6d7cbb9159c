"""Proxies from the environment (HTTPS_PROXY / HTTP_PROXY / ALL_PROXY), against the real emulator through
real proxies on loopback (tests/api/proxies.py): a SOCKS5 proxy (requests' `socks` extra, PySocks) and an
HTTP proxy (CONNECT tunnels for https, absolute-form forwarding for http). The never-pay-twice rule holds
through them: a body cut after it was sent is "maybe billed" and never resent; a proxy that refuses before
anything was sent is retried; a pooled connection quiet too long never carries a billable body, per
connection, whatever pool (direct or proxied) it sits in.
"""

from __future__ import annotations

import threading
import time

import pytest
import requests

import api.service.transport
from api import PollSchedule, WanClient, build_request, errors
from api.config import Endpoint
from api.emulator import EmulatorServer, Settings
from apitest import FAST_RETRY, TEST_KEY
from proxies import CERT, http_proxy, serve_tls, socks5_proxy

QUIET = 0.6   # the quiet-connection threshold in these tests (30 s in use); injected, so nothing sleeps 30 s


@pytest.fixture(autouse=True)
def _no_proxy_from_the_machine(monkeypatch):
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(CERT))   # trust the test certificate of the emulator's TLS


class Counted:
    """An emulator whose API listener counts the connections it accepted (plain http, or TLS)."""

    def __init__(self, tls: bool) -> None:
        self.server = EmulatorServer(settings=Settings(queue_time=0.05, service_time=0.2, api_keys=[TEST_KEY]))
        self.base_url = serve_tls(self.server) if tls else self.server.base_url
        self.accepted = 0
        accept = self.server.api.get_request

        def counting():
            got = accept()
            self.accepted += 1
            return got

        self.server.api.get_request = counting
        self.server.start()

    @property
    def backend(self):
        return self.server.backend

    def creations(self) -> int:
        return self.backend.stats()["creations"]


@pytest.fixture
def https_emulator():
    emu = Counted(tls=True)
    yield emu
    emu.server.stop()


@pytest.fixture
def http_emulator():
    emu = Counted(tls=False)
    yield emu
    emu.server.stop()


@pytest.fixture
def socks():
    with socks5_proxy() as proxy:
        yield proxy


@pytest.fixture
def httpproxy():
    with http_proxy() as proxy:
        yield proxy


def client_for(emu: Counted, **kw) -> WanClient:
    return WanClient(TEST_KEY, endpoint=Endpoint(base_url=emu.base_url, region=None, overridden=True),
                     retry=FAST_RETRY, poll=PollSchedule(fast=0.05, fast_until=5, medium=0.1), **kw)


def t2i(seed: int):
    return build_request("wan2.7-image", f"a lighthouse {seed}", [], mode="t2i", n=1, size="1K", seed=seed)


def interleave(seed: int):
    return build_request("wan2.6-image", "a tutorial for tea", [], mode="interleave", max_images=2,
                         size="1024*1024", seed=seed)


def use_proxy(monkeypatch, url: str) -> None:
    # Both: the API (https here) and the result host (plain http) go through it, as on a locked-down network.
    monkeypatch.setenv("HTTPS_PROXY", url)
    monkeypatch.setenv("HTTP_PROXY", url)


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_every_transport_works_through_a_socks5_proxy(https_emulator, socks, monkeypatch, scheme):
    use_proxy(monkeypatch, f"{scheme}://127.0.0.1:{socks.port}")
    with client_for(https_emulator) as client:
        assert len(client.generate(t2i(1), transport="async").images) == 1
        assert len(client.generate(t2i(2), transport="sync").images) == 1
        streamed = client.generate(interleave(3), transport="stream")
        assert streamed.images and streamed.text
    assert https_emulator.creations() == 3
    api_port = f"127.0.0.1:{https_emulator.server.port}"
    results_port = f"127.0.0.1:{https_emulator.server.results.server_address[1]}"
    assert api_port in socks.targets and results_port in socks.targets, socks.targets


def test_https_through_an_http_proxy_tunnels_and_plain_http_is_forwarded(https_emulator, http_emulator,
                                                                         httpproxy, monkeypatch):
    use_proxy(monkeypatch, f"http://127.0.0.1:{httpproxy.port}")
    with client_for(https_emulator) as client:   # https: a CONNECT tunnel through the proxy
        assert len(client.generate(t2i(4), transport="async").images) == 1
        assert client.generate(interleave(5), transport="stream").images
    with client_for(http_emulator) as client:    # http: the proxy forwards each request (kept alive)
        assert len(client.generate(t2i(6), transport="sync").images) == 1
        assert client.generate(interleave(7), transport="stream").images
    assert https_emulator.creations() == 2 and http_emulator.creations() == 2
    assert f"127.0.0.1:{https_emulator.server.port}" in httpproxy.targets
    assert f"127.0.0.1:{http_emulator.server.port}" in httpproxy.targets


def test_without_pysocks_a_socks_proxy_is_refused_before_anything_is_sent(https_emulator, socks, monkeypatch):
    import requests.adapters

    def missing(*args, **kwargs):   # what requests does when PySocks is not installed
        raise requests.exceptions.InvalidSchema("Missing dependencies for SOCKS support.")

    monkeypatch.setattr(requests.adapters, "SOCKSProxyManager", missing)
    use_proxy(monkeypatch, f"socks5://user:secret-password@127.0.0.1:{socks.port}")
    with client_for(https_emulator) as client, pytest.raises(errors.ConfigError) as raised:
        client.generate(t2i(8), transport="sync")
    assert "PySocks" in str(raised.value) and "secret-password" not in str(raised.value)
    assert https_emulator.backend.stats()["requests"] == 0 and socks.connections == 0


# ---- the rule holds through proxies ------------------------------------------------------------------------

ROUTES = ["direct", "http proxy", "socks proxy"]


def route(name: str, monkeypatch, httpproxy, socks):
    """Point the environment at the route; return what counts the new connections to the emulator's API
    (through a proxy: those the proxy opened to it, not those to the result host)."""
    if name == "http proxy":
        use_proxy(monkeypatch, f"http://127.0.0.1:{httpproxy.port}")
        return lambda emu: httpproxy.targets.count(f"127.0.0.1:{emu.server.port}")
    if name == "socks proxy":
        use_proxy(monkeypatch, f"socks5://127.0.0.1:{socks.port}")
        return lambda emu: socks.targets.count(f"127.0.0.1:{emu.server.port}")
    return lambda emu: emu.accepted


@pytest.mark.parametrize("name", ROUTES)
def test_a_cut_after_the_body_is_maybe_billed_and_never_resent(https_emulator, httpproxy, socks, monkeypatch,
                                                               name):
    route(name, monkeypatch, httpproxy, socks)
    https_emulator.backend.add_fault({"kind": "reset_after_body"})
    with client_for(https_emulator) as client, pytest.raises(errors.WanConnectionError) as raised:
        client.generate(t2i(9), transport="sync")
    assert raised.value.maybe_billed, raised.value
    kinds = https_emulator.backend.stats()["requests_by_kind"]
    assert kinds.get("sync") == 1 and https_emulator.creations() == 1, kinds


@pytest.mark.parametrize("name", ["http proxy", "socks proxy"])
def test_a_proxy_that_drops_the_connection_before_the_body_is_retried(https_emulator, httpproxy, socks,
                                                                       monkeypatch, name):
    connections = route(name, monkeypatch, httpproxy, socks)
    (httpproxy if name == "http proxy" else socks).drop_next = 1
    with client_for(https_emulator) as client:
        assert len(client.generate(t2i(10), transport="sync").images) == 1
    assert https_emulator.creations() == 1
    assert connections(https_emulator) >= 2   # the dropped one, then the one that carried the request


@pytest.mark.parametrize("name", ROUTES)
def test_a_connection_quiet_too_long_never_carries_a_billable_body(https_emulator, httpproxy, socks, monkeypatch,
                                                                   name):
    """Two pooled connections go quiet; a task query (not billable) brings one back into use, so the account
    is not quiet; while a slow query holds that one, a billable request is sent: it must not take the
    other, quiet one (lower in the pool), but open a new connection."""
    connections = route(name, monkeypatch, httpproxy, socks)
    client = client_for(https_emulator)
    client.transport.stale_after = QUIET
    try:
        task_id, _ = client.submit(t2i(11))
        client.wait_task(task_id)
        # Two connections at once: two queries, each answered slowly.
        https_emulator.backend.add_fault({"kind": "slow", "on": "query", "delay": 0.4, "times": 2})
        both = [threading.Thread(target=client.get_task, args=(task_id,)) for _ in range(2)]
        [t.start() for t in both]
        [t.join(10) for t in both]
        opened = connections(https_emulator)
        assert opened >= 2
        time.sleep(QUIET + 0.3)                      # both quiet past the threshold
        client.get_task(task_id)                     # a query may ride a quiet connection: no new one
        assert connections(https_emulator) == opened
        https_emulator.backend.add_fault({"kind": "slow", "on": "query", "delay": 1.0, "times": 1})
        slow = threading.Thread(target=client.get_task, args=(task_id,))
        slow.start()                                 # holds the connection the last query used
        time.sleep(0.3)
        assert len(client.generate(t2i(12), transport="sync").images) == 1
        slow.join(10)
        assert connections(https_emulator) == opened + 1, "the billable body rode a connection quiet too long"
    finally:
        client.close()


def test_the_quiet_threshold_is_thirty_seconds_unless_given():
    assert api.service.transport.STALE_AFTER_S == 30.0
    transport = api.service.transport.Transport(Endpoint(base_url="https://x.invalid/api/v1", region=None,
                                                 overridden=True), api_key=api.secrets.ApiKey(TEST_KEY))
    assert transport.stale_after is None   # STALE_AFTER_S is read when a request is sent
    transport.close()


def test_the_proxy_in_the_environment_is_what_requests_would_use(https_emulator, httpproxy, monkeypatch):
    """Guards the test set-up itself: with NO_PROXY naming the host, nothing goes through the proxy."""
    use_proxy(monkeypatch, f"http://127.0.0.1:{httpproxy.port}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with client_for(https_emulator) as client:
        client.generate(t2i(13), transport="sync")
    assert httpproxy.connections == 0 and https_emulator.accepted >= 1
    assert requests.utils.should_bypass_proxies(https_emulator.base_url, no_proxy=None)
