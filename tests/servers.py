"""Real upstream servers on 127.0.0.1 for end-to-end tests: plain HTTP and TLS.

``Upstream`` is a threaded ``http.server`` on a free port. Its routes:

- ``/echo...``  (any method) JSON: method, path, headers, body — what reached upstream
- ``/status/N`` answers status N
- ``/redirect?to=URL&code=302`` a 3xx with Location
- ``/set-cookie`` answers with two Set-Cookie headers
- ``/bytes/N``  N bytes of ``x``
- anything else: 200 with a small text body naming the server

Every request is recorded in ``Upstream.requests`` (method, path, headers, body).
"""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format, *args):  # quiet
        pass

    def _body(self) -> bytes:
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body: bytes, headers: dict | list | None = None) -> None:
        self.send_response(status)
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        names = {k.lower() for k, _ in pairs}
        for k, v in pairs:
            self.send_header(k, v)
        if "content-type" not in names:
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        body = self._body()
        record = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        self.server.upstream.requests.append(record)
        parts = urlsplit(self.path)
        q = parse_qs(parts.query)
        if parts.path.startswith("/echo"):
            payload = json.dumps({**record, "server": self.server.upstream.name}).encode()
            self._send(200, payload, {"Content-Type": "application/json"})
        elif parts.path.startswith("/status/"):
            code = int(parts.path.rsplit("/", 1)[1])
            self._send(code, f"status {code}\n".encode())
        elif parts.path == "/redirect":
            code = int(q.get("code", ["302"])[0])
            self._send(code, b"", {"Location": q.get("to", ["/echo"])[0]})
        elif parts.path == "/set-cookie":
            self._send(200, b"cookies\n", [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2")])
        elif parts.path.startswith("/bytes/"):
            n = int(parts.path.rsplit("/", 1)[1])
            self._send(200, b"x" * n, {"Content-Type": "application/octet-stream"})
        else:
            self._send(200, f"hello from {self.server.upstream.name}\n".encode())

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    upstream: Upstream


class Upstream:
    def __init__(
        self,
        name: str = "upstream",
        ssl_context: ssl.SSLContext | None = None,
        handler: type[BaseHTTPRequestHandler] = _Handler,
    ) -> None:
        self.name = name
        self.requests: list[dict] = []
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.httpd.upstream = self
        self.tls = ssl_context is not None
        if ssl_context is not None:
            self.httpd.socket = ssl_context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base + path

    def __enter__(self) -> Upstream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
