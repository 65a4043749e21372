"""HTTP/2-over-TLS test servers on 127.0.0.1 (the ``h2`` library, one thread per
connection): the one skeleton behind every HTTP/2 upstream of the tests.

``H2Server`` accepts, negotiates ``h2`` and hands each complete request (headers, and the
body once the stream ended) to ``answer``; a subclass says what to answer, or nothing (an
upstream that never answers). ``H2Upstream`` answers 200 with a body naming the path and
records ``(connection number, path)``; the browser tests' ``H2Site`` serves pages.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded


class H2Server:
    max_header_list_size = 2**16
    """The largest header list accepted (h2's default); a test may raise it."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        ctx.set_alpn_protocols(["h2"])
        self.ctx = ctx
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def answer(self, h2: H2Connection, stream_id: int, headers: dict, number: int) -> None:
        """Answer the request on ``stream_id`` (``headers`` as str, pseudo-headers
        included) of connection ``number`` (1, 2...), or leave it unanswered."""
        raise NotImplementedError

    @staticmethod
    def reply(
        h2: H2Connection, stream_id: int, body: bytes, content_type: str, *extra: tuple
    ) -> None:
        h2.send_headers(
            stream_id,
            [
                (":status", "200"),
                ("content-type", content_type),
                ("content-length", str(len(body))),
                *extra,
            ],
        )
        h2.send_data(stream_id, body, end_stream=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._sock.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._closed:
            try:
                raw, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(raw, self.connections), daemon=True).start()

    def _serve(self, raw: socket.socket, number: int) -> None:
        heads: dict[int, dict] = {}
        try:
            with self.ctx.wrap_socket(raw, server_side=True) as conn:
                h2 = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
                h2.local_settings.max_header_list_size = self.max_header_list_size
                h2.local_settings.acknowledge()  # else h2 announces (and keeps) the old value
                h2.decoder.max_header_list_size = self.max_header_list_size
                h2.initiate_connection()
                conn.sendall(h2.data_to_send())
                while data := conn.recv(65535):
                    for event in h2.receive_data(data):
                        if isinstance(event, RequestReceived):
                            heads[event.stream_id] = dict(event.headers)
                            if event.stream_ended:
                                self.answer(h2, event.stream_id, heads.pop(event.stream_id), number)
                        elif isinstance(event, DataReceived):
                            h2.acknowledge_received_data(
                                event.flow_controlled_length, event.stream_id
                            )
                        elif isinstance(event, StreamEnded) and event.stream_id in heads:
                            self.answer(h2, event.stream_id, heads.pop(event.stream_id), number)
                        elif isinstance(event, ConnectionTerminated):
                            return
                    conn.sendall(h2.data_to_send())
        except (OSError, ssl.SSLError):
            pass  # the proxy went away or refused the certificate


class H2Upstream(H2Server):
    """Answers 200 with a body naming the path; ``requests`` holds ``(connection number,
    path)`` (several requests can share one upstream connection)."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        super().__init__(ctx)
        self.requests: list[tuple[int, str]] = []

    def answer(self, h2: H2Connection, stream_id: int, headers: dict, number: int) -> None:
        path = headers[":path"]
        self.requests.append((number, path))
        self.reply(h2, stream_id, f"h2 answer for {path}\n".encode(), "text/plain")


class SilentH2Upstream(H2Upstream):
    """Records requests and never answers them: an upstream that hangs after the
    handshake."""

    def answer(self, h2: H2Connection, stream_id: int, headers: dict, number: int) -> None:
        self.requests.append((number, headers[":path"]))
