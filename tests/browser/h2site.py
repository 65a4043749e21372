"""The test site's cancel page over HTTP/2 with TLS (the ``h2`` library, one thread per
connection), so that Chromium talks HTTP/2 through waylay: waylay offers the client the
protocol the upstream chose. Requests are recorded like ``Site``'s (method, path, query)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from urllib.parse import urlsplit

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded

from tests.browser.site import BODIES


class H2Site:
    def __init__(self, ctx: ssl.SSLContext) -> None:
        ctx.set_alpn_protocols(["h2"])
        self.ctx = ctx
        self.requests: list[dict] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.origin = f"https://localhost:{self.port}"
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def paths(self) -> set[str]:
        return {r["path"] for r in self.requests}

    def __enter__(self) -> H2Site:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._closed:
            try:
                raw, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        heads: dict[int, dict] = {}
        try:
            with self.ctx.wrap_socket(raw, server_side=True) as conn:
                h2 = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
                h2.initiate_connection()
                conn.sendall(h2.data_to_send())
                while data := conn.recv(65535):
                    for event in h2.receive_data(data):
                        if isinstance(event, RequestReceived):
                            heads[event.stream_id] = dict(event.headers)
                            if event.stream_ended:
                                self._answer(h2, event.stream_id, heads.pop(event.stream_id))
                        elif isinstance(event, DataReceived):
                            h2.acknowledge_received_data(
                                event.flow_controlled_length, event.stream_id
                            )
                        elif isinstance(event, StreamEnded) and event.stream_id in heads:
                            self._answer(h2, event.stream_id, heads.pop(event.stream_id))
                        elif isinstance(event, ConnectionTerminated):
                            return
                    conn.sendall(h2.data_to_send())
        except (OSError, ssl.SSLError):
            pass

    def _answer(self, h2: H2Connection, stream_id: int, headers: dict) -> None:
        parts = urlsplit(headers[":path"])
        self.requests.append(
            {"method": headers[":method"], "path": parts.path, "query": parts.query}
        )
        ctype, body = BODIES.get(parts.path, ("text/plain", b"ok"))
        h2.send_headers(
            stream_id,
            [
                (":status", "200"),
                ("content-type", ctype),
                ("content-length", str(len(body))),
                ("cache-control", "no-store"),
            ],
        )
        h2.send_data(stream_id, body, end_stream=True)
