"""A WebSocket echo server on 127.0.0.1 (wsproto, one thread per connection), and a
minimal client that talks to it through a forward proxy."""

from __future__ import annotations

import contextlib
import socket
import threading

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Request,
    TextMessage,
)


class WebSocketEcho:
    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.messages: list[str] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> WebSocketEcho:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, Request):
                        conn.sendall(ws.send(AcceptConnection()))
                    elif isinstance(event, TextMessage):
                        self.messages.append(event.data)
                        conn.sendall(ws.send(Message(data=f"echo: {event.data}")))
                    elif isinstance(event, CloseConnection):
                        conn.sendall(ws.send(event.response()))
                        return


def echo_through_proxy(proxy_port: int, ws_port: int, text: str, timeout: float = 10) -> str:
    """Open ws://127.0.0.1:ws_port/chat through the proxy, send ``text``, return the reply."""
    ws = WSConnection(ConnectionType.CLIENT)
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=timeout) as sock:
        sock.sendall(
            ws.send(Request(host=f"127.0.0.1:{ws_port}", target=f"http://127.0.0.1:{ws_port}/chat"))
        )
        reply = None
        sent = closed = False
        while not closed:
            data = sock.recv(65536)
            if not data:
                break
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection) and not sent:
                    sock.sendall(ws.send(Message(data=text)))
                    sent = True
                elif isinstance(event, TextMessage):
                    reply = event.data
                    sock.sendall(ws.send(CloseConnection(code=1000)))
                elif isinstance(event, CloseConnection):
                    closed = True
        if reply is None:
            raise AssertionError("no WebSocket reply")
        return reply
