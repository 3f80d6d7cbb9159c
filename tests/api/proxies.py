"""Real proxies on loopback for the tests: a SOCKS5 proxy and an HTTP proxy (CONNECT tunnels and plain
forwarding of absolute-form requests, keep-alive); and the emulator's API over TLS (so https, and with it a
CONNECT tunnel, can be tested on this machine). Each counts the client connections it accepted, so a test can
see whether a request rode an old connection or opened a new one.

Small on purpose (threads, blocking sockets), and strict where it matters: the HTTP proxy reads each request
and each answer by its framing (Content-Length or chunked), so a kept-alive connection carries several
requests, as through a real proxy.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import struct
import threading
from pathlib import Path

TLS_DIR = Path(__file__).resolve().parent / "data" / "tls"
CERT = TLS_DIR / "cert.pem"   # self-signed for 127.0.0.1 and localhost; the tests trust it (REQUESTS_CA_BUNDLE)
KEY = TLS_DIR / "key.pem"


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until either side closes."""
    def copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    other = threading.Thread(target=copy, args=(b, a), daemon=True)
    other.start()
    copy(a, b)
    other.join(30)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler: type) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.connections = 0
        self.targets: list[str] = []
        self.lock = threading.Lock()
        self.drop_next = 0     # close this many accepted connections at once (a proxy that drops them)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def count(self, target: str) -> bool:
        with self.lock:
            self.connections += 1
            self.targets.append(target)
            if self.drop_next:
                self.drop_next -= 1
                return False
            return True

    def start(self) -> "_Server":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> "_Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class _Socks5Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        client: socket.socket = self.request
        try:
            version, methods = _read_exact(client, 2)
            _read_exact(client, methods)
            if version != 5:
                return
            client.sendall(b"\x05\x00")   # no authentication
            _, command, _, kind = _read_exact(client, 4)
            if kind == 1:
                host = socket.inet_ntoa(_read_exact(client, 4))
            elif kind == 3:
                host = _read_exact(client, _read_exact(client, 1)[0]).decode()
            else:
                host = socket.inet_ntop(socket.AF_INET6, _read_exact(client, 16))
            (port,) = struct.unpack(">H", _read_exact(client, 2))
            if command != 1 or not self.server.count(f"{host}:{port}"):
                client.sendall(b"\x05\x01\x00\x01" + b"\0" * 6)   # general failure
                return
            upstream = socket.create_connection((host, port), timeout=10)
            upstream.settimeout(None)
            client.sendall(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", 0))
            _pipe(client, upstream)
        except (OSError, ConnectionError, ValueError):
            pass


def socks5_proxy() -> _Server:
    return _Server(_Socks5Handler)


class _Reader:
    """Line and length reads over a socket, with a buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError("closed")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def head(self) -> list[bytes]:
        lines = []
        while True:
            line = self.line()
            if line == b"\r\n":
                return lines
            lines.append(line)

    def exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError("closed")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def rest(self):
        if self.buf:
            yield self.buf
            self.buf = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            yield data


def _headers(lines: list[bytes]) -> dict[str, str]:
    out = {}
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        out[name.strip().lower()] = value.strip()
    return out


def _relay_body(reader: _Reader, headers: dict[str, str], dst: socket.socket, *, until_close: bool) -> bool:
    """Forward one message body by its framing; False when it ran to the connection's end."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = reader.line()
            dst.sendall(size_line)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:   # trailers, then the empty line
                    trailer = reader.line()
                    dst.sendall(trailer)
                    if trailer == b"\r\n":
                        return True
            dst.sendall(reader.exact(size + 2))
    if "content-length" in headers:
        dst.sendall(reader.exact(int(headers["content-length"])))
        return True
    if until_close:
        for data in reader.rest():
            dst.sendall(data)
        return False
    return True


class _HttpProxyHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        client: socket.socket = self.request
        reader = _Reader(client)
        upstream: socket.socket | None = None
        upstream_at = None
        counted = False
        try:
            while True:
                try:
                    request_line = reader.line()
                except ConnectionError:
                    return
                method, target, version = request_line.decode("latin-1").split()
                lines = reader.head()
                if method == "CONNECT":
                    if not self.server.count(target):
                        client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                        return
                    host, port = target.rsplit(":", 1)
                    upstream = socket.create_connection((host, int(port)), timeout=10)
                    upstream.settimeout(None)
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    if reader.buf:
                        upstream.sendall(reader.buf)
                        reader.buf = b""
                    _pipe(client, upstream)
                    return
                # Plain forwarding: http://host:port/path -> /path, to host:port, kept alive.
                rest = target.split("://", 1)[1]
                hostport, _, path = rest.partition("/")
                host, _, port = hostport.partition(":")
                if not counted:
                    counted = True
                    if not self.server.count(hostport):
                        return
                if upstream is None or upstream_at != hostport:
                    if upstream is not None:
                        upstream.close()
                    upstream = socket.create_connection((host, int(port or 80)), timeout=60)
                    upstream_at = hostport
                    upstream_reader = _Reader(upstream)
                kept = [line for line in lines if not line.lower().startswith((b"proxy-", b"connection:"))]
                upstream.sendall(f"{method} /{path} {version}\r\n".encode() + b"".join(kept) + b"\r\n")
                _relay_body(reader, _headers(lines), upstream, until_close=False)
                status_line = upstream_reader.line()
                answer = upstream_reader.head()
                client.sendall(status_line + b"".join(answer) + b"\r\n")
                status = int(status_line.split()[1])
                answer_headers = _headers(answer)
                if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                    continue
                if not _relay_body(upstream_reader, answer_headers, client, until_close=True):
                    return
                if answer_headers.get("connection", "").lower() == "close":
                    return
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            if upstream is not None:
                upstream.close()


def http_proxy() -> _Server:
    return _Server(_HttpProxyHandler)


def serve_tls(emulator) -> str:
    """Make a not yet started emulator answer its API over TLS (certificate: CERT); returns its https base
    URL. Its result host stays plain http, as a separate host would be."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(CERT, KEY)
    # The handshake happens on the first read, in the connection's own thread, not in the accept loop.
    emulator.api.socket = context.wrap_socket(emulator.api.socket, server_side=True,
                                              do_handshake_on_connect=False)
    return f"https://127.0.0.1:{emulator.port}/api/v1"
