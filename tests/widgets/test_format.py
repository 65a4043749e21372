"""Formatting for the flow list and the detail pane: sizes, durations, waits, bodies."""

from __future__ import annotations

import dataclasses

import pytest
from rich.console import Console, Group
from rich.syntax import Syntax
from screen_fakes import NOW, make_view, paused_view, traced

from widgets.detail import flow_renderable
from widgets.flow_table import protocol_label, row_cells, row_kind
from widgets.format import (
    body_renderable,
    clock_time,
    clock_time_ms,
    duration_ms,
    hex_dump,
    host_label,
    human_size,
    is_binary,
    lexer_for,
    paused_label,
)
from widgets.header import short_path


def text_of(renderable, width: int = 100) -> str:
    console = Console(width=width, color_system=None)
    with console.capture() as capture:
        console.print(renderable)
    return capture.get()


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (None, ""),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KB"),
        (1536, "1.5 KB"),
        (20 * 1024, "20 KB"),
        (5 * 1024 * 1024, "5.0 MB"),
        (3 * 1024**4, "3.0 TB"),
    ],
)
def test_human_size(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, ""), (0.0004, "0 ms"), (0.087, "87 ms"), (9.9994, "9999 ms"), (12.34, "12.3 s")],
)
def test_duration_ms(seconds, text):
    assert duration_ms(seconds) == text


def test_clock_time_is_local_time(utc):
    assert clock_time(NOW) == "22:13:20"
    assert clock_time_ms(NOW + 0.0456) == "22:13:20.046"


def test_paused_label_counts_up_and_down():
    view = paused_view(1, "auth", since=NOW - 12)
    assert paused_label(view.paused, NOW) == "⏸ auth 12s, 108s left"
    assert paused_label(view.paused, NOW + 500) == "⏸ auth 512s, 0s left"


def test_host_label_shows_only_unusual_ports():
    assert host_label(make_view(1)) == "api.example.com"
    assert host_label(make_view(1, port=8443)) == "api.example.com:8443"
    assert host_label(make_view(1, scheme="http", port=80)) == "api.example.com"


@pytest.mark.parametrize(
    ("content_type", "lexer"),
    [
        ("application/json; charset=utf-8", "json"),
        ("application/problem+json", "json"),
        ("text/html", "html"),
        ("application/xhtml+xml", "html"),
        ("application/xml", "xml"),
        ("image/svg+xml", "xml"),
        ("application/atom+xml", "xml"),
        ("text/javascript", "javascript"),
        ("application/javascript", "javascript"),
        ("text/css", "css"),
        ("text/plain", None),
        ("", None),
    ],
)
def test_lexer_for(content_type, lexer):
    assert lexer_for(content_type) == lexer


def test_is_binary():
    assert is_binary(b"\x89PNG\r\n", "image/png")
    assert is_binary(b"\x00\x01\x02", "")
    assert is_binary(bytes(range(128, 256)), "")
    assert not is_binary('{"a": "é"}'.encode(), "application/json")
    assert not is_binary("é".encode()[:1], "")  # a character cut off by the preview's end
    assert not is_binary(b"<svg/>", "image/svg+xml")


def test_json_body_is_pretty_and_highlighted():
    rendered = body_renderable(b'{"a":[1,2],"b":"x"}', "application/json")
    assert isinstance(rendered, Syntax)
    assert rendered.lexer.name == "JSON"
    assert '"a": [' in rendered.code and '\n  "b": "x"' in rendered.code


@pytest.mark.parametrize(
    ("content_type", "body", "lexer_name"),
    [
        ("text/html", b"<p>hi</p>", "HTML"),
        ("application/xml", b"<a/>", "XML"),
        ("text/javascript", b"let a = 1;", "JavaScript"),
        ("text/css", b"p { color: red }", "CSS"),
    ],
)
def test_other_bodies_are_highlighted(content_type, body, lexer_name):
    rendered = body_renderable(body, content_type)
    assert isinstance(rendered, Syntax)
    assert rendered.lexer.name == lexer_name


def test_binary_body_shows_size_and_hex():
    body = bytes(range(256)) * 4
    text = text_of(body_renderable(body[:300], "image/png", total_size=len(body)))
    assert "image/png, 1.0 KB (1024 bytes); first 256 bytes:" in text
    assert "00000000  00 01 02 03" in text
    assert "000000f0" in text and "00000100" not in text


def test_hex_dump_lines():
    assert hex_dump(b"AB\x00") == "00000000  41 42 00" + " " * 39 + "  AB."


def test_a_truncated_preview_says_so():
    rendered = body_renderable(b'{"a": 1', "application/json", total_size=10_000)
    assert isinstance(rendered, Group)
    assert "preview of 7 B; the body is 9.8 KB" in text_of(rendered)


def test_empty_bodies():
    assert text_of(body_renderable(b"", "")).strip() == "(no body)"
    assert text_of(body_renderable(b"", "", total_size=5000)).strip() == "(4.9 KB, not kept)"


def test_row_cells_and_kinds(utc):
    view = make_view(3, rule_id="r1", path="/a?b=[1]")
    assert row_cells(view, NOW) == (
        "22:11:43.000",
        "GET",
        "HTTPS",
        "api.example.com",
        "/a?b=[1]",
        "200",
        "xmlhttprequest",
        "2.0 KB",
        "87 ms",
        "r1",
    )
    assert row_kind(view) == ""
    assert row_kind(paused_view(1)) == "paused"
    assert row_kind(make_view(1, state="error", error="x")) == "error"
    assert row_kind(make_view(1, state="cancelled")) == "cancelled"


@pytest.mark.parametrize(
    ("changes", "label"),
    [
        ({"scheme": "http", "port": 80}, "HTTP"),
        ({}, "HTTPS"),
        ({"http_version": "HTTP/2.0"}, "HTTP/2"),
        ({"http_version": "HTTP/3"}, "HTTP/3"),
        ({"is_websocket": True}, "WSS"),
        ({"scheme": "http", "port": 80, "is_websocket": True}, "WS"),
    ],
)
def test_protocol_label(changes, label):
    assert protocol_label(make_view(1, **changes)) == label


def test_short_path(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert short_path(tmp_path / "rules.toml") == "~/rules.toml"
    assert short_path("/etc/rules.toml") == "/etc/rules.toml"
    assert short_path(None) == ""


# ---------------------------------------------------------------- the detail pane


def test_detail_of_a_finished_flow(utc):
    view = traced(
        make_view(
            2,
            method="POST",
            request_headers=(("Content-Type", "application/json"),),
            request_body=b'{"q": 1}',
            request_body_size=8,
            response_body=b'{"id": 1, "ok": true}',
            size=21,
        )
    )
    text = text_of(flow_renderable(view, NOW))
    for part in (
        "POST https://api.example.com/items/2  HTTP/1.1",
        "#2 · started 22:11:42.000 · type xmlhttprequest",
        "decided by no-trackers",
        "Request body · 8 B",
        '"q": 1',
        "HTTP/1.1 200 OK",
        "Content-Type: application/json",
        '"ok": true',
        "connected",
        "+12 ms",
        "total",
        "87 ms",
        "cancelled by rule no-trackers",
    ):
        assert part in text, part
    trace_lines = [line for line in text.splitlines() if "no-trackers" in line and "cancel" in line]
    assert trace_lines and trace_lines[0].lstrip().startswith("★")
    assert any("log-all" in line and "★" not in line for line in text.splitlines())


def test_detail_of_a_paused_certificate_flow():
    view = paused_view(5, "certificate", since=NOW - 30)
    text = text_of(flow_renderable(view, NOW))
    assert "⏸ paused at the certificate event" in text
    assert "waiting 30s; the default outcome in 90s" in text
    assert "no response yet: the flow is paused" in text
    for part in ("self-signed certificate", "CN=api.example.com", "sha256:3f:a1:00", "2033-01-01"):
        assert part in text, part


def test_detail_of_errors_and_pending_flows():
    error = make_view(1, state="error", status=None, error="connection refused", size=None)
    assert "error: connection refused" in text_of(flow_renderable(error, NOW))
    pending = make_view(
        1, state="pending", status=None, size=None, duration=None, timing=(), trace=()
    )
    text = text_of(flow_renderable(pending, NOW))
    assert "waiting for the response…" in text
    assert "no rule matched" in text
    websocket = dataclasses.replace(make_view(1), is_websocket=True)
    assert "WebSocket" in text_of(flow_renderable(websocket, NOW))
