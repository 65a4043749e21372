"""Formatting shared by the flow list, the detail pane and the dialogs.

Pure functions of their arguments: no widgets, no clock. Times of day come from the
flow's own timestamps, so the same flow always reads the same, whatever the app's clock.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text

from widgets.model import FlowView, Headers, PausedEvent

BODY_SYNTAX_LIMIT = 256 * 1024
"""Bodies larger than this are shown as plain text: highlighting them costs too much."""

HEX_PREVIEW_BYTES = 256


def clock_time(timestamp: float) -> str:
    """`HH:MM:SS` of a `time.time()` value, in local time."""
    return time.strftime("%H:%M:%S", time.localtime(timestamp))


def clock_time_ms(timestamp: float) -> str:
    """`HH:MM:SS.mmm` of a `time.time()` value, in local time."""
    millis = int(round((timestamp % 1) * 1000)) % 1000
    return f"{clock_time(timestamp)}.{millis:03d}"


def human_size(size: int | None) -> str:
    """A byte count for people: `512 B`, `1.2 KB`, `34 MB` (binary multiples)."""
    if size is None:
        return ""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1024
        if value < 1024 or unit == "TB":
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")


def duration_ms(seconds: float | None) -> str:
    """A duration in milliseconds (`87 ms`), or seconds once that gets long (`12.4 s`)."""
    if seconds is None:
        return ""
    millis = seconds * 1000
    if millis < 10_000:
        return f"{millis:.0f} ms"
    return f"{seconds:.1f} s"


def paused_label(paused: PausedEvent, now: float) -> str:
    """`⏸ request 12s, 108s left`: what a paused row shows; waited and time left."""
    waited = max(0, int(now - paused.since))
    if not math.isfinite(paused.deadline):  # --ask-timeout none
        return f"⏸ {paused.event} {waited}s, no time limit"
    left = max(0, int(round(paused.deadline - now)))
    return f"⏸ {paused.event} {waited}s, {left}s left"


def state_label(view: FlowView, now: float) -> str:
    """The state column: `FlowView.state_label`, with the wait for paused flows."""
    if view.paused is not None:
        return paused_label(view.paused, now)
    return view.state_label


def host_label(view: FlowView) -> str:
    """The host, with the port when it is not the scheme's default."""
    default = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(view.scheme)
    if view.port and view.port != default:
        return f"{view.host}:{view.port}"
    return view.host


def header_value(headers: Headers, name: str) -> str:
    """The first value of header `name` (case-insensitive), or ""."""
    lowered = name.lower()
    for key, value in headers:
        if key.lower() == lowered:
            return value
    return ""


def _media_type(content_type: str) -> tuple[str, str]:
    """(`type/subtype` lower-cased, charset or "") of a Content-Type value."""
    parts = [part.strip() for part in content_type.split(";")]
    media = parts[0].lower() if parts else ""
    charset = ""
    for part in parts[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"')
    return media, charset


def lexer_for(content_type: str) -> str | None:
    """The Pygments lexer for a Content-Type, for the kinds worth highlighting."""
    media, _ = _media_type(content_type)
    if not media:
        return None
    subtype = media.partition("/")[2]
    if media.endswith("json") or subtype.endswith("+json") or media == "application/x-ndjson":
        return "json"
    if media in ("text/html", "application/xhtml+xml"):
        return "html"
    if media.endswith("/xml") or subtype.endswith("+xml"):
        return "xml"
    if "javascript" in media or media == "text/ecmascript":
        return "javascript"
    if media == "text/css":
        return "css"
    return None


_BINARY_PREFIXES = ("image/", "audio/", "video/", "font/")
_BINARY_TYPES = {
    "application/octet-stream",
    "application/pdf",
    "application/zip",
    "application/gzip",
    "application/wasm",
    "application/x-protobuf",
    "application/protobuf",
    "application/grpc",
}


def is_binary(body: bytes, content_type: str = "") -> bool:
    """Whether a body is better shown as bytes than as text."""
    media, _ = _media_type(content_type)
    if media == "image/svg+xml":
        return False
    if media.startswith(_BINARY_PREFIXES) or media in _BINARY_TYPES:
        return True
    sample = body[:1024]
    if b"\x00" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut off by the sample's end is still text.
        return exc.start < len(sample) - 3
    return False


def decode_body(body: bytes, content_type: str = "") -> str:
    """Body bytes as text, using the declared charset when there is a usable one."""
    _, charset = _media_type(content_type)
    for encoding in (charset, "utf-8"):
        if not encoding:
            continue
        try:
            return body.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            continue
    return body.decode("utf-8", errors="replace")


def hex_dump(data: bytes, limit: int = HEX_PREVIEW_BYTES) -> str:
    """Classic 16-bytes-a-line hex dump with the printable ASCII on the right."""
    lines = []
    for offset in range(0, min(len(data), limit), 16):
        chunk = data[offset : offset + 16]
        hex_part = " ".join(f"{byte:02x}" for byte in chunk)
        text_part = "".join(chr(byte) if 32 <= byte < 127 else "." for byte in chunk)
        lines.append(f"{offset:08x}  {hex_part:<47}  {text_part}")
    return "\n".join(lines)


def body_renderable(
    body: bytes,
    content_type: str = "",
    total_size: int | None = None,
    *,
    dark: bool = True,
) -> RenderableType:
    """A body for the detail pane: highlighted text, or size and hex preview for bytes.

    `body` may be a capped preview of a larger body of `total_size` bytes.
    """
    size = len(body) if total_size is None else max(total_size, len(body))
    truncated = size > len(body)
    if not body:
        return Text("(no body)" if size == 0 else f"({human_size(size)}, not kept)", style="dim")
    if is_binary(body, content_type):
        shown = min(len(body), HEX_PREVIEW_BYTES)
        media = _media_type(content_type)[0] or "binary"
        note = Text(
            f"{media}, {human_size(size)} ({size} bytes); first {shown} bytes:\n", style="dim"
        )
        return Text.assemble(note, hex_dump(body, HEX_PREVIEW_BYTES))
    text = decode_body(body, content_type)
    lexer = lexer_for(content_type)
    if lexer == "json" and not truncated and len(body) <= BODY_SYNTAX_LIMIT:
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    parts: list[RenderableType] = []
    if lexer and len(text) <= BODY_SYNTAX_LIMIT:
        body_view: RenderableType = Syntax(
            text,
            lexer,
            theme="ansi_dark" if dark else "ansi_light",
            word_wrap=True,
            background_color="default",
        )
    else:
        body_view = Text(text)
    parts.append(body_view)
    if truncated:
        parts.append(
            Text(
                f"… preview of {human_size(len(body))}; the body is {human_size(size)}", style="dim"
            )
        )
    return parts[0] if len(parts) == 1 else Group(*parts)


def headers_text(headers: Iterable[tuple[str, str]], *, name_style: str = "bold") -> Text:
    """`Name: value` lines, names emphasised."""
    text = Text()
    for index, (name, value) in enumerate(headers):
        if index:
            text.append("\n")
        text.append(name, style=name_style)
        text.append(f": {value}")
    return text
