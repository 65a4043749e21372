"""A minimal HTTP/2-over-TLS upstream on 127.0.0.1 (the ``h2`` library, one thread per
connection), so that several requests can share one upstream connection.

Every request is recorded as ``(connection number, path)``; the answer is 200 with a
body naming the path.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, RequestReceived


class H2Upstream:
    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.requests: list[tuple[int, str]] = []
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> H2Upstream:
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
        try:
            with self.ctx.wrap_socket(raw, server_side=True) as conn:
                h2 = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
                h2.initiate_connection()
                conn.sendall(h2.data_to_send())
                while data := conn.recv(65535):
                    for event in h2.receive_data(data):
                        if isinstance(event, RequestReceived):
                            path = dict(event.headers)[":path"]
                            self.requests.append((number, path))
                            body = f"h2 answer for {path}\n".encode()
                            h2.send_headers(
                                event.stream_id,
                                [
                                    (":status", "200"),
                                    ("content-type", "text/plain"),
                                    ("content-length", str(len(body))),
                                ],
                            )
                            h2.send_data(event.stream_id, body, end_stream=True)
                        elif isinstance(event, DataReceived):
                            h2.acknowledge_received_data(
                                event.flow_controlled_length, event.stream_id
                            )
                        elif isinstance(event, ConnectionTerminated):
                            return
                    conn.sendall(h2.data_to_send())
        except (OSError, ssl.SSLError):
            pass  # the proxy went away or refused the certificate
