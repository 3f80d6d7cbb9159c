"""Result downloads (caps, no key, retries, expiry) and keeping the key out of everything."""

from __future__ import annotations

import logging
import struct
import subprocess
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from api import ApiKey, WanClient, build_request, encode_image, errors, MODELS
from api.config import resolve_api_key, resolve_endpoint
from api.service.download import Downloader
from apitest import ROOT, TEST_KEY, make_client, photo


def _edit():
    spec = MODELS["wan2.7-image"]
    return build_request("wan2.7-image", "x", [encode_image(photo(300, 300), spec.image)], n=2, size="1K")


def test_downloads_carry_no_key(emulator, client):
    client.generate(_edit())
    assert emulator.backend.downloads, "nothing was downloaded"
    assert all(d["authorization"] is None for d in emulator.backend.downloads)


def test_a_failing_download_is_retried(emulator, client):
    emulator.backend.add_fault({"kind": "http", "on": "download", "status": 500, "code": "InternalError"})
    emulator.backend.add_fault({"kind": "reset_after_body", "on": "download"})
    result = client.generate(_edit())
    assert len(result.images) == 2
    assert emulator.backend.stats()["creations"] == 1


def test_an_expired_result_url_says_so(emulator, client):
    result = client.generate(_edit(), download=False)
    emulator.backend.advance(25 * 3600)
    with pytest.raises(errors.DownloadError, match="expired"):
        client.downloader.fetch(result.urls[0])


def test_only_http_urls_are_fetched():
    for url in ("file:///etc/passwd", "ftp://example.com/x.png", "oss://bucket/x.png"):
        with pytest.raises(errors.DownloadError, match="only http"):
            Downloader().fetch(url)


def _png_header_bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares a gigantic canvas."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


class _Static(BaseHTTPRequestHandler):
    payloads: dict[str, bytes] = {}

    def log_message(self, *a):
        pass

    def do_GET(self):
        body = self.payloads[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def static_host():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Static)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Static.payloads
    server.shutdown()
    server.server_close()


def test_pixel_and_byte_caps(static_host):
    base, payloads = static_host
    payloads["/bomb.png"] = _png_header_bomb(60000, 60000)
    with pytest.raises(errors.DownloadError, match="over the cap|bomb"):
        Downloader().fetch(base + "/bomb.png")
    payloads["/big.png"] = b"\0" * 5000
    with pytest.raises(errors.DownloadError, match="cap"):
        Downloader(max_bytes=4000).fetch(base + "/big.png")
    payloads["/broken.png"] = _png_header_bomb(10, 10)[:-20]
    from api.service.transport import RetryPolicy

    with pytest.raises(errors.DownloadError, match="after 2 tries"):
        Downloader(retry=RetryPolicy(attempts=2, backoff=0.01)).fetch(base + "/broken.png")


# ---- configuration and the key ---------------------------------------------------------------------------

def test_key_lookup_order(tmp_path, monkeypatch):
    home = tmp_path / "h"
    (home / ".dashscope").mkdir(parents=True)
    (home / ".dashscope" / "api_key").write_text("sk-fromhomefile00000000001\n")
    keyfile = tmp_path / "key.txt"
    keyfile.write_text("sk-fromkeyfile000000000002")
    env = {"DASHSCOPE_API_KEY": "sk-fromenv0000000000000003", "DASHSCOPE_API_KEY_FILE_PATH": str(keyfile)}
    assert resolve_api_key(env, home).reveal().endswith("0003")
    del env["DASHSCOPE_API_KEY"]
    assert resolve_api_key(env, home).reveal().endswith("0002")
    del env["DASHSCOPE_API_KEY_FILE_PATH"]
    assert resolve_api_key(env, home).reveal().endswith("0001")


def test_a_missing_key_says_where_to_put_it(tmp_path):
    with pytest.raises(errors.MissingApiKeyError) as info:
        resolve_api_key({}, tmp_path)
    text = str(info.value)
    for place in ("DASHSCOPE_API_KEY", "DASHSCOPE_API_KEY_FILE_PATH", "~/.dashscope/api_key", "emulator"):
        assert place in text
    with pytest.raises(errors.MissingApiKeyError, match="cannot be read"):
        resolve_api_key({"DASHSCOPE_API_KEY_FILE_PATH": str(tmp_path / "nope")}, tmp_path)


def test_regions_and_the_base_url_override():
    assert resolve_endpoint("singapore", {}).base_url == "https://dashscope-intl.aliyuncs.com/api/v1"
    assert resolve_endpoint("Virginia", {}).base_url == "https://dashscope-us.aliyuncs.com/api/v1"
    assert resolve_endpoint("cn-beijing", {}).base_url == "https://dashscope.aliyuncs.com/api/v1"
    over = resolve_endpoint("beijing", {"DASHSCOPE_HTTP_BASE_URL": "http://127.0.0.1:8470/api/v1/"})
    assert over.base_url == "http://127.0.0.1:8470/api/v1" and over.overridden
    with pytest.raises(errors.ConfigError, match="unknown region"):
        resolve_endpoint("mars", {})


def test_the_key_never_shows(emulator, caplog):
    secret = "sk-this-is-the-secret-key-1234567890zz"
    key = ApiKey(secret)
    assert secret not in repr(key) and secret not in str(key) and key.masked == "sk-…90zz"
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(key)
    # An error whose text somehow carries the key (a proxy echoing headers) is redacted.
    err = errors.WanAPIError(f"proxy said: Bearer {secret}", code="X")
    assert secret not in str(err) and "sk-…90zz" in str(err)
    # Logs of every module of the pack are redacted too.
    caplog.set_level(logging.INFO)
    logging.getLogger("wan.transport").info("header was %s", secret)
    assert secret not in caplog.text
    # And a whole failing conversation leaks it nowhere.
    client = make_client(emulator, key=secret)
    with pytest.raises(errors.AuthenticationError) as info:
        client.generate(_edit())
    assert secret not in str(info.value) + repr(info.value) + caplog.text + repr(client)


def test_api_imports_neither_torch_nor_comfyui():
    code = ("import sys, api, api.emulator, api.client, api.request.encoding;"
            "bad=[m for m in sys.modules if m.split('.')[0] in ('torch','comfy','comfy_api','folder_paths','nodes')];"
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # And no source file of api/ names them.
    for path in (ROOT / "api").rglob("*.py"):
        text = path.read_text()
        for word in ("import torch", "from torch", "import comfy", "from comfy", "folder_paths"):
            assert word not in text, f"{path.relative_to(ROOT)} mentions {word!r}"


@pytest.fixture
def https_host(tmp_path):
    """An HTTPS server on loopback with a self-signed certificate (made with the openssl command)."""
    import ssl

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    _Static.payloads["/ok.png"] = _png_header_bomb(10, 10)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Static)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_tls_is_always_verified(https_host):
    with pytest.raises(errors.DownloadError, match="certificate did not verify"):
        Downloader().fetch(https_host + "/ok.png")
    from api.config import Endpoint
    from api.service.transport import RetryPolicy

    client = WanClient(TEST_KEY, endpoint=Endpoint(https_host + "/api/v1", None, True),
                       retry=RetryPolicy(attempts=1))
    with pytest.raises(errors.WanConnectionError, match="SSLError"):
        client.get_task("any")


def test_a_worker_thread_that_cannot_start_leaves_the_pool_usable(monkeypatch):
    """A process at its thread limit: the submit fails at once, and the pool neither counts a worker that
    does not exist nor keeps the job (four such failures would otherwise leave every later download waiting
    for threads that never come)."""
    import threading

    from api.workers import Workers

    pool = Workers(2, "test-pool")
    real = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda self: (_ for _ in ()).throw(RuntimeError("no thread")))
    for _ in range(3):
        with pytest.raises(RuntimeError):
            pool.submit(lambda: 1)
    assert pool.threads() == 0 and pool.waiting() == 0
    monkeypatch.setattr(threading.Thread, "start", real)
    assert pool.submit(lambda: 41 + 1).result(timeout=10) == 42
