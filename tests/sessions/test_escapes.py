"""Text from the network that the session features show (WebSocket messages, rendered
bodies) reaches the screen with its control characters escaped, newlines kept."""

from __future__ import annotations

from mitmproxy import http
from mitmproxy.test import tflow
from mitmproxy.websocket import WebSocketMessage

from monitor.bodyview import render
from monitor.snapshot import snapshot

EVIL = "a\x1b]0;pwned\x07\x1b[2Jb"


def test_websocket_text_is_escaped_and_binary_is_hex():
    flow = tflow.twebsocketflow()
    assert flow.websocket is not None
    flow.websocket.messages = [
        WebSocketMessage(1, True, EVIL.encode()),  # text
        WebSocketMessage(2, False, b"\x1b\x00"),  # binary
    ]
    view = snapshot(flow, 1)
    text, binary = view.websocket_messages
    assert "\x1b" not in text.preview and "\x07" not in text.preview
    assert text.preview == "a\\x1b]0;pwned\\x07\\x1b[2Jb"
    assert binary.preview == "1b 00"


def test_rendered_bodies_are_escaped_with_their_lines_kept():
    flow = tflow.tflow(resp=True)
    flow.response = http.Response.make(
        200, f"line one {EVIL}\n\tline two\r\nthree\rfour".encode(), {"content-type": "text/plain"}
    )
    for mode in ("auto", "raw"):
        body = render(flow.response, flow, mode)
        assert body is not None
        assert "\x1b" not in body.text and "\x07" not in body.text and "\r" not in body.text
        assert "[2Jb" in body.text  # the ESC shown as an escape or a dot, never sent
        assert "\n\tline two\nthree\\x0dfour" in body.text, body.text
