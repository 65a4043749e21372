"""Bodies as people read them, rendered where the flows are (the proxy side).

``render(message, flow, mode)`` gives a ``BodyView`` for the detail pane in one of
``BODY_MODES``: auto, JSON, HTML/XML, form, image, hex, raw. mitmproxy's contentviews do
the HTML/XML reformatting, multipart forms and, in auto mode, everything waylay does not
handle itself (CSS, JavaScript, GraphQL, protobuf…). Their API changed between mitmproxy
11 (``get_message_content_view``, lines of styled pieces) and 12 (``prettify_message``,
text); ``mitm_view`` hides the difference.

``StreamCounter`` is an addon that counts the bytes of bodies that stream through unkept
(bigger than ``stream_large_bodies``), so the screen shows their size instead of 0 B, and
tells the recorder about each WebSocket message as it passes.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import struct
from typing import Optional
from urllib.parse import parse_qsl

from mitmproxy import contentviews, http, optmanager
from mitmproxy.utils import strutils

from monitor.mitmctx import lent_options
from monitor.record import record_of
from policies.printable import printable, printable_text
from widgets.model import BodyView

log = logging.getLogger("waylay.bodyview")

TEXT_LIMIT = 1024 * 1024
"""Bytes of a body that are reformatted (JSON, HTML/XML, form, auto)."""
HEX_LIMIT = 64 * 1024
"""Bytes of a body shown as hex."""
LINE_LIMIT = 20_000
"""Lines of one rendered body."""


def human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


# -- mitmproxy's contentviews, 11 and 12 ----------------------------------------------


def _declare_protobuf_definitions(options: optmanager.OptManager) -> None:
    """mitmproxy 12's contentviews read ``ctx.options.protobuf_definitions``."""
    options.add_option("protobuf_definitions", Optional[str], None, "")  # noqa: UP045 - mitmproxy's typecheck


def mitm_view(message: http.Message, flow: http.HTTPFlow, name: str) -> tuple[str, str, str]:
    """(text, description, view name) of mitmproxy's contentview ``name`` ("auto",
    "XML/HTML", "Multipart Form"...), whichever mitmproxy is installed."""
    if hasattr(contentviews, "prettify_message"):  # mitmproxy 12
        with lent_options("protobuf_definitions", _declare_protobuf_definitions):
            result = contentviews.prettify_message(message, flow, view_name=name.lower())
        if result.syntax_highlight == "error":
            raise ValueError(result.text.strip().splitlines()[0] if result.text.strip() else name)
        return result.text, result.description or "", result.view_name or name
    description, lines, error = contentviews.get_message_content_view(name, message, flow)
    if error:
        raise ValueError(str(error).strip().splitlines()[0])
    lines = contentviews.safe_to_print(itertools.islice(lines, LINE_LIMIT))
    text = "\n".join("".join(piece for _, piece in line) for line in lines)
    shown = description.split("]")[-1].strip() if description else name
    return text, description or "", shown or name


# -- images -------------------------------------------------------------------------


def image_info(data: bytes) -> tuple[str, tuple[int, int] | None] | None:
    """(media type, (width, height) or None) when ``data`` is an image, else None."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            return "image/png", struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return "image/gif", struct.unpack("<HH", data[6:10])
        if data.startswith(b"\xff\xd8"):
            return "image/jpeg", _jpeg_size(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return "image/webp", _webp_size(data)
        if data.startswith(b"BM") and len(data) >= 26:
            w, h = struct.unpack("<ii", data[18:26])
            return "image/bmp", (w, abs(h))
        if data[:4] == b"\x00\x00\x01\x00" and len(data) >= 8:
            return "image/x-icon", (data[6] or 256, data[7] or 256)
        head = data[:512].lstrip()
        if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:2048]):
            return "image/svg+xml", None
    except struct.error:
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        b = data[21:25]
        w = 1 + (((b[1] & 0x3F) << 8) | b[0])
        h = 1 + (((b[3] & 0xF) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
        return w, h
    return None


# -- the modes ----------------------------------------------------------------------


def hex_dump(data: bytes) -> str:
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        hexed = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {hexed:<47}  {text}")
    return "\n".join(lines)


def _content(message: http.Message) -> tuple[bytes | None, str]:
    """The body with its content-encoding undone (and a note when it cannot be)."""
    if message.raw_content is None:
        return None, ""
    try:
        return message.get_content(strict=True) or b"", ""
    except ValueError:
        return message.raw_content, "cannot undo its content-encoding; shown as sent"


def _charset_text(message: http.Message, data: bytes) -> str:
    try:
        if message.raw_content is not None and len(data) == len(message.get_content() or b""):
            return message.get_text(strict=False) or ""
    except ValueError:
        pass
    return data.decode("utf-8", "replace")


def _media(message: http.Message) -> str:
    ctype = message.headers.get("content-type", "")
    parsed = http.parse_content_type(ctype) if ctype else None
    return f"{parsed[0]}/{parsed[1]}".lower() if parsed else ""


def _is_binary(data: bytes) -> bool:
    return strutils.is_mostly_bin(data[:1024])


def _auto_mode(message: http.Message, data: bytes) -> str:
    media = _media(message)
    if image_info(data) is not None or media.startswith("image/"):
        return "image"
    if media.endswith(("/json", "+json")) or media == "application/x-ndjson":
        return "json"
    if media.endswith(("/html", "/xml", "+xml")):
        return "html"
    if media in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return "form"
    head = data[:64].lstrip()
    if head[:1] in (b"{", b"[") and not media:
        try:
            json.loads(data)
            return "json"
        except ValueError:
            pass
    return "mitmproxy"


def render(message: http.Message | None, flow: http.HTTPFlow, mode: str) -> BodyView | None:
    """``message``'s body in ``mode``; None when there is no message. The text comes from
    the network: its control characters are escaped (newlines and tabs kept)."""
    view = _render_body(message, flow, mode)
    if view is None:
        return None
    return dataclasses.replace(view, text=printable_text(view.text), note=printable(view.note))


def _render_body(message: http.Message | None, flow: http.HTTPFlow, mode: str) -> BodyView | None:
    if message is None:
        return None
    data, note = _content(message)
    if data is None:
        streamed = record_of(flow).streamed.get(
            "request" if message is flow.request else "response"
        )
        size = f"{human(streamed)}" if streamed is not None else "size unknown"
        return BodyView(mode, "streamed", f"streamed through, not kept ({size})", None)
    if not data:
        return BodyView(mode, "empty", "(no body)", None)
    chosen = _auto_mode(message, data) if mode == "auto" else mode
    try:
        view = _render(message, flow, data, chosen, auto=mode == "auto")
    except Exception as e:  # a body that is not what the mode reads: say so, show raw
        text, cut = _raw(message, data)
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        view = BodyView(
            mode, "raw", text, None, f"not {_LABELS.get(chosen, chosen)}: {reason}; shown raw{cut}"
        )
    if note:
        view = BodyView(
            view.mode,
            view.shown_as,
            view.text,
            view.syntax,
            "; ".join(filter(None, [note, view.note])),
        )
    return view


_LABELS = {"json": "JSON", "html": "HTML/XML", "form": "a form", "image": "an image"}


def _raw(message: http.Message, data: bytes) -> tuple[str, str]:
    cut = ""
    if len(data) > TEXT_LIMIT:
        cut = f" (first {human(TEXT_LIMIT)} of {human(len(data))})"
        data = data[:TEXT_LIMIT]
    return strutils.escape_control_characters(_charset_text(message, data)), cut


def _render(
    message: http.Message, flow: http.HTTPFlow, data: bytes, mode: str, *, auto: bool
) -> BodyView:
    asked = "auto" if auto else mode
    size = human(len(data))
    if mode == "raw":
        text, cut = _raw(message, data)
        return BodyView(asked, "raw", text, None, cut.strip(" ()"))
    if mode == "hex":
        head = data[:HEX_LIMIT]
        cut = f"first {human(len(head))} of {size}" if len(head) < len(data) else ""
        return BodyView(asked, "hex", hex_dump(head), None, cut)
    if mode == "image":
        info = image_info(data)
        if info is None:
            raise ValueError("not a known image format (PNG, JPEG, GIF, WebP, BMP, ICO, SVG)")
        media, dims = info
        lines = [f"type        {media}", f"size        {size} ({len(data):,} bytes)"]
        if dims is not None:
            lines.insert(1, f"dimensions  {dims[0]} × {dims[1]} px")
        declared = _media(message)
        if declared and declared != media:
            lines.append(f"declared    {declared}")
        return BodyView(asked, "image", "\n".join(lines), None)
    if len(data) > TEXT_LIMIT:
        raise ValueError(f"{size} is too big to reformat (limit {human(TEXT_LIMIT)})")
    if mode == "json":
        text = _charset_text(message, data)
        try:
            parsed = json.loads(text)
        except ValueError:
            # newline-delimited JSON
            parsed = [json.loads(line) for line in text.splitlines() if line.strip()]
            pretty = "\n".join(json.dumps(item, indent=2, ensure_ascii=False) for item in parsed)
        else:
            pretty = json.dumps(parsed, indent=2, ensure_ascii=False)
        return BodyView(asked, "JSON", pretty, "json")
    if mode == "html":
        if _is_binary(data):
            raise ValueError("binary data")
        text, _, _ = mitm_view(message, flow, "XML/HTML")
        media = _media(message)
        syntax = "xml" if "xml" in media and "html" not in media else "html"
        return BodyView(asked, "HTML/XML", text, syntax)
    if mode == "form":
        media = _media(message)
        if media == "multipart/form-data":
            text, _, _ = mitm_view(message, flow, "Multipart Form")
            return BodyView(asked, "multipart form", text, None)
        if _is_binary(data):
            raise ValueError("binary data")
        pairs = parse_qsl(
            data.decode("utf-8", "replace"), keep_blank_values=True, strict_parsing=True
        )
        width = max((len(k) for k, _ in pairs), default=0)
        text = "\n".join(f"{k.ljust(width)}  {v}" for k, v in pairs)
        return BodyView(asked, "form", text, None)
    # auto, nothing of waylay's own: mitmproxy's choice (CSS, JS, protobuf...), else raw/hex
    if _is_binary(data):
        return _render(message, flow, data, "hex", auto=True)
    text, description, name = mitm_view(message, flow, "auto")
    if name.lower() == "raw":
        text, cut = _raw(message, data)
        return BodyView(asked, "raw", text, None, cut.strip(" ()"))
    shown = _NAMES.get(name.lower(), name)
    return BodyView(asked, shown, text, _SYNTAX.get(shown.lower()), description)


_NAMES = {"viewcss": "CSS", "css": "CSS", "javascript": "JavaScript", "json": "JSON"}
"""mitmproxy 12 names some views differently from 11 (its CSS view is "ViewCSS")."""
_SYNTAX = {
    "css": "css",
    "viewcss": "css",
    "javascript": "javascript",
    "graphql": "graphql",
    "json": "json",
}


# -- the addon ------------------------------------------------------------------------


class StreamCounter:
    """Counts the bytes of streamed bodies (``record_of(flow).streamed``) and passes each
    WebSocket message on to ``touch`` so the screen shows it as it happens."""

    def __init__(self, touch=None) -> None:
        self.touch = touch

    def _count(self, flow: http.HTTPFlow, part: str, message: http.Message) -> None:
        stream = message.stream
        if not stream:
            return
        counts = record_of(flow).streamed
        counts[part] = 0
        inner = stream if callable(stream) else None

        def counting(chunk: bytes):
            counts[part] += len(chunk)
            return inner(chunk) if inner is not None else chunk

        message.stream = counting

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self._count(flow, "request", flow.request)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            self._count(flow, "response", flow.response)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        if self.touch is not None:
            self.touch(flow)
