"""Body view modes rendered on the proxy side with mitmproxy's contentviews (11 and 12),
search in the detail pane, bodies that streamed through, WebSocket messages."""

from __future__ import annotations

import asyncio
import struct
import zlib

import pytest
from mitmproxy import http
from mitmproxy.test import tflow
from rich.console import Console

from monitor.app import make_app
from monitor.bodyview import image_info, render
from monitor.record import record_of
from tests.helpers import curl, until
from widgets.detail import FlowDetail
from widgets.model import BODY_MODES

MATCH, CURRENT = FlowDetail.MATCH_STYLE, FlowDetail.CURRENT_STYLE


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


GIF = b"GIF89a" + struct.pack("<HH", 7, 5) + b"\x00\x00\x00" + b";"


def response(body: bytes, content_type: str, **headers: str) -> http.HTTPFlow:
    flow = tflow.tflow(resp=True)
    flow.response = http.Response.make(200, body, {"content-type": content_type, **headers})
    return flow


def test_json_is_reformatted():
    flow = response(b'{"b": [1, 2], "a": "\xc3\xa9"}', "application/json")
    for mode in ("auto", "json"):
        body = render(flow.response, flow, mode)
        assert body.shown_as == "JSON" and body.syntax == "json"
        assert body.text == '{\n  "b": [\n    1,\n    2\n  ],\n  "a": "é"\n}'


def test_not_json_says_so_and_shows_raw():
    flow = response(b"<p>hello</p>", "text/html")
    body = render(flow.response, flow, "json")
    assert body.shown_as == "raw" and body.text == "<p>hello</p>"
    assert body.note.startswith("not JSON: ")


def test_html_is_reformatted_by_mitmproxys_view():
    flow = response(b"<html><body><div><p>hello</p></div></body></html>", "text/html")
    for mode in ("auto", "html"):
        body = render(flow.response, flow, mode)
        assert body.shown_as == "HTML/XML" and body.syntax == "html"
        lines = body.text.splitlines()
        assert len(lines) >= 5, body.text
        assert "  <div>" in lines and "    <p>hello</p>" in lines, body.text


def test_xml_is_reformatted():
    flow = response(b'<?xml version="1.0"?><a><b x="1">t</b></a>', "application/xml")
    body = render(flow.response, flow, "auto")
    assert body.shown_as == "HTML/XML" and body.syntax == "xml"
    assert '  <b x="1">' in body.text


def test_urlencoded_form_is_a_table():
    flow = tflow.tflow()
    flow.request = http.Request.make(
        "POST", "http://example.com/f", b"name=wa+ylay&lang=%C3%A9&empty=",
        {"content-type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    for mode in ("auto", "form"):
        body = render(flow.request, flow, mode)
        assert body.shown_as == "form"
        assert body.text.splitlines() == ["name   wa ylay", "lang   é", "empty  "]


def test_multipart_form_through_mitmproxy():
    boundary = "XyZ"
    data = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="field"\r\n\r\nvalue one\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    flow = tflow.tflow()
    flow.request = http.Request.make(
        "POST",
        "http://example.com/f",
        data,
        {"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    body = render(flow.request, flow, "form")
    assert body.shown_as == "multipart form"
    assert "field" in body.text and "value one" in body.text


def test_image_shows_type_dimensions_and_size_not_hex():
    image = png(3, 2)
    flow = response(image, "image/png")
    for mode in ("auto", "image"):
        body = render(flow.response, flow, mode)
        assert body.shown_as == "image"
        assert body.text.splitlines() == [
            "type        image/png",
            "dimensions  3 × 2 px",
            f"size        {len(image)} B ({len(image)} bytes)",
        ]
    assert image_info(GIF) == ("image/gif", (7, 5))
    gif = response(GIF, "application/octet-stream")
    body = render(gif.response, gif, "auto")
    assert (
        "dimensions  7 × 5 px" in body.text and "declared    application/octet-stream" in body.text
    )


def test_not_an_image():
    flow = response(b"plain words", "text/plain")
    body = render(flow.response, flow, "image")
    assert body.shown_as == "raw" and body.note.startswith("not an image: not a known image format")


def test_hex_and_raw():
    data = bytes(range(40))
    flow = response(data, "application/octet-stream")
    hexed = render(flow.response, flow, "hex")
    assert hexed.text.splitlines()[0] == (
        "00000000  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f  ................"
    )
    assert len(hexed.text.splitlines()) == 3
    assert render(flow.response, flow, "auto").shown_as == "hex"  # binary: hex in auto
    text = response(b"line one\nline two", "text/plain")
    assert render(text.response, text, "raw").text == "line one\nline two"


def test_gzip_is_undone_before_viewing():
    flow = response(b"", "application/json")
    flow.response.headers["content-encoding"] = "gzip"
    flow.response.content = b'{"zipped": true}'
    assert flow.response.raw_content != b'{"zipped": true}'
    assert render(flow.response, flow, "json").text == '{\n  "zipped": true\n}'


def test_css_in_auto_goes_to_mitmproxy():
    flow = response(b"a{color:red}b{margin:0}", "text/css")
    body = render(flow.response, flow, "auto")
    assert body.shown_as.lower() == "css"
    assert "color: red" in body.text


def test_a_streamed_body_says_so_with_its_size():
    flow = response(b"", "application/octet-stream")
    flow.response.data.content = None
    record_of(flow).streamed["response"] = 3_000_000
    body = render(flow.response, flow, "auto")
    assert body.shown_as == "streamed" and body.text == "streamed through, not kept (2.9 MiB)"


def test_every_mode_renders_every_body_without_failing():
    bodies = [png(1, 1), b'{"a":1}', b"<a/>", b"x=1", b"\x00\xff" * 10, b"text", "é".encode()]
    for data in bodies:
        flow = response(data, "application/octet-stream")
        for mode in BODY_MODES:
            assert render(flow.response, flow, mode).text


def detail_text(app) -> str:
    console = Console(width=140, record=True, color_system=None)
    console.print(app.detail.query_one("#detail-body").content)
    return console.export_text()


@pytest.mark.e2e
async def test_view_modes_search_streamed_and_websocket_in_the_screen(settings, upstream, pool):
    from tests.wsserver import WebSocketEcho, echo_through_proxy

    app, session = make_app(settings)
    _, port = session.start()
    with WebSocketEcho() as ws:
        async with app.run_test(size=(150, 50)) as pilot:

            def traffic():
                curl(port, upstream.url("/echo/json"), "-H", "content-type: application/json",
                     "-d", '{"needle": "first", "other": "needle again"}')  # fmt: skip
                curl(port, upstream.url("/bytes/3000000"))
                return echo_through_proxy(port, ws.port, "hello socket")

            reply = await asyncio.get_running_loop().run_in_executor(pool, traffic)
            assert reply == "echo: hello socket"
            await until(
                pilot,
                lambda: len(app.flows) == 3 and all(v.finished for v in app.flows.values()),
                "three finished flows",
            )
            ids = app.table.flow_ids()
            echo, big, chat = (app.flows[i] for i in ids)

            # the streamed body: its size, in the list and the pane
            assert big.response_body_streamed == 3_000_000 and big.size == 3_000_000
            app.table.move_cursor(row=1)
            await pilot.press("enter")
            await until(pilot, lambda: app.detail.flow_id == big.id, "the big flow's details")
            text = detail_text(app)
            assert "Response body · 2.9 MB · streamed through, not kept" in text, text

            # view modes on the JSON flow: auto is JSON, v cycles, hex shows bytes
            app.table.move_cursor(row=0)
            await until(pilot, lambda: app.detail.flow_id == echo.id, "the echo flow")
            app.detail.focus()
            text = detail_text(app)
            assert "view auto: JSON" in text
            assert '  "needle": "first",' in text  # the request body, reformatted
            await pilot.press("v")
            assert app.detail.mode == "json"
            for _ in range(BODY_MODES.index("hex") - BODY_MODES.index("json")):
                await pilot.press("v")
            assert app.detail.mode == "hex"
            text = detail_text(app)
            assert "view hex" in text and "00000000  7b 22 6e 65 65 64 6c 65" in text
            while app.detail.mode != "auto":
                await pilot.press("v")

            # search: / opens a prompt, matches are highlighted, n / N move
            await pilot.press("slash")
            await until(pilot, lambda: app.screen.id == "detail-search-prompt", "the prompt")
            await pilot.press(*"NEEDLE", "enter")
            await until(pilot, lambda: app.detail.search_text == "NEEDLE", "the search")
            matches = app.detail.matches
            assert len(matches) >= 4  # twice in the request body, twice in the echo
            assert app.detail.current == 0
            assert "1/" in app.detail.border_title
            content = app.detail.query_one("#detail-body").content
            marks = [s.style for s in content.spans if s.style in (MATCH, CURRENT)]
            assert marks.count(CURRENT) == 1 and marks.count(MATCH) == len(matches) - 1
            await pilot.press("n")
            assert app.detail.current == 1
            await pilot.press("N", "N")
            assert app.detail.current == len(matches) - 1
            app.detail.search("")
            assert app.detail.matches == []

            # WebSocket messages: direction, size, text
            app.table.move_cursor(row=2)
            await until(pilot, lambda: app.detail.flow_id == chat.id, "the WebSocket flow")
            text = detail_text(app)
            assert "WebSocket messages · 2" in text
            assert "→ sent" in text and "hello socket" in text
            assert "← received" in text and "echo: hello socket" in text
    session.stop()
