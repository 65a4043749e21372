"""The control socket's wire: typed messages, MessagePack, length-prefixed frames.

Both sides import this module: the proxy process (``monitor.control``) and the screen
(``monitor.remote``). It imports neither mitmproxy nor textual; the screen's snapshot
types (``widgets.model``) stay plain dataclasses and are converted here.

A frame is a 4-byte big-endian length and one MessagePack-encoded message. Messages are
msgspec structs tagged by their class name, so a decoder rejects anything it does not
know with a clear error instead of guessing.

Batches carry the *rows* of the flow list (``Row``): no headers, no bodies. The detail
pane and the dialogs fetch a flow's ``Detail`` when they need it.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import msgspec

from widgets.model import Answer, CertificateInfo, FlowView, PausedEvent, TraceEntry

PROTOCOL = 1
"""Bumped whenever a message changes shape; both sides refuse another protocol."""

MAX_FRAME = 256 * 1024 * 1024
"""The largest frame either side accepts (a full state of 50,000 rows is ~10 MB)."""

MAX_CLIENT_FRAME = 16 * 1024 * 1024
"""The largest frame the proxy accepts from a screen (answers and rule edits)."""

_HEADER = struct.Struct(">I")


class WireError(Exception):
    """A frame or message that cannot be read; the connection is closed."""


# -- the handshake ------------------------------------------------------------------------


class Welcome(msgspec.Struct, tag=True):
    """The proxy's first message on a new connection."""

    protocol: int
    version: str  # waylay's version, for messages
    pid: int
    address: str  # "http://127.0.0.1:8080"
    mode: str
    rules: str  # the rules file's path
    started: float
    hold: bool
    flows: int = 0
    paused: int = 0
    ask_timeout: float | None = 120.0  # None: no time limit
    ask_default: str = "continue"  # what a pause gets at its deadline: continue or cancel


class Hello(msgspec.Struct, tag=True):
    """The screen's first message: its protocol (the proxy refuses another)."""

    protocol: int
    version: str


class Bye(msgspec.Struct, tag=True):
    """The proxy closes the connection (protocol mismatch, shutting down)."""

    reason: str


# -- the flow list ------------------------------------------------------------------------


class Row(msgspec.Struct, omit_defaults=True):
    """One flow as the flow list shows it: a ``FlowView`` without headers and bodies.

    Same field names and defaults as ``FlowView`` (a test checks it), so that the screen
    decodes a batch straight into ``FlowView`` snapshots (``ViewBatch``), in C, without
    a conversion per row; fields at their default are not sent."""

    id: str
    seq: int
    started: float
    method: str
    scheme: str
    host: str
    port: int
    path: str
    url: str
    http_version: str = "HTTP/1.1"
    type: str = "other"
    state: str = "pending"
    status: int | None = None
    reason: str = ""
    error: str | None = None
    paused: PausedEvent | None = None
    size: int | None = None
    duration: float | None = None
    rule_id: str | None = None
    certificate: CertificateInfo | None = None
    is_websocket: bool = False
    filter_match: tuple[int, bool] | None = None
    """This screen's filter's verdict (generation, matches?), for a screen with one."""


class Batch(msgspec.Struct, tag=True):
    """New or changed rows and ids of flows that are gone.

    ``reset`` starts a full state: the screen drops every flow it holds first (after a
    new attach, or when it fell behind and its queue was dropped). ``more`` says that
    further chunks of the same full state follow."""

    rows: list[Row]
    removed: list[str] = []
    reset: bool = False
    more: bool = False


class ViewBatch(msgspec.Struct, tag="Batch"):
    """A ``Batch`` as the screen decodes it: the rows become ``FlowView`` snapshots."""

    rows: list[FlowView]
    removed: list[str] = []
    reset: bool = False
    more: bool = False


class Detail(msgspec.Struct, tag=True):
    """What the detail pane and the dialogs show beyond the row."""

    id: str
    trace: list[TraceEntry]
    notes: list[str]
    request_headers: list[tuple[str, str]]
    request_body: bytes
    request_body_size: int
    response_headers: list[tuple[str, str]]
    response_body: bytes
    response_content_type: str
    timing: list[tuple[str, float]]


class RulesState(msgspec.Struct, tag=True):
    """The rules as the proxy holds them; sent on attach and whenever they change."""

    path: str
    state: str
    error: str | None
    rules: list[dict[str, Any]]  # model_dump of each rule in file order, then transient
    transient: list[str]
    order: list[str]  # ids in precedence order
    hits: dict[str, int]
    times_left: dict[str, int | None]


# -- requests and replies -----------------------------------------------------------------


class Request(msgspec.Struct, tag=True):
    """A screen asks the proxy something; the proxy answers with a ``Reply`` of the same id."""

    id: int
    op: str
    args: dict[str, Any] = {}


class Reply(msgspec.Struct, tag=True):
    id: int
    value: Any = None
    error: str | None = None


ToScreen = Welcome | Bye | ViewBatch | Detail | RulesState | Reply
ToProxy = Hello | Request

_encoder = msgspec.msgpack.Encoder()
_to_screen = msgspec.msgpack.Decoder(ToScreen)
_to_proxy = msgspec.msgpack.Decoder(ToProxy)


def frame(message: msgspec.Struct) -> bytes:
    payload = _encoder.encode(message)
    return _HEADER.pack(len(payload)) + payload


def frame_length(header: bytes, limit: int = MAX_FRAME) -> int:
    (length,) = _HEADER.unpack(header)
    if length > limit:
        raise WireError(f"a frame of {length:,} bytes is over the limit of {limit:,}")
    return length


HEADER_SIZE = _HEADER.size


def decode_to_screen(payload: bytes) -> ToScreen:
    try:
        return _to_screen.decode(payload)
    except msgspec.DecodeError as e:
        raise WireError(f"unreadable message from the proxy: {e}") from None


def decode_to_proxy(payload: bytes) -> ToProxy:
    try:
        return _to_proxy.decode(payload)
    except msgspec.DecodeError as e:
        raise WireError(f"unreadable message from a screen: {e}") from None


def peek_protocol(payload: bytes) -> int | None:
    """The ``protocol`` of a Welcome or Hello of any protocol version (a mismatch must
    be reported, not fail to decode)."""
    try:
        raw = msgspec.msgpack.decode(payload)
    except msgspec.DecodeError:
        return None
    if isinstance(raw, dict) and isinstance(raw.get("protocol"), int):
        return raw["protocol"]
    return None


# -- conversions --------------------------------------------------------------------------


def row_of(view: FlowView) -> Row:
    return Row(
        view.id,
        view.seq,
        view.started,
        view.method,
        view.scheme,
        view.host,
        view.port,
        view.path,
        view.url,
        view.http_version,
        view.type,
        view.state,
        view.status,
        view.reason,
        view.error,
        view.paused,
        view.size,
        view.duration,
        view.rule_id,
        view.certificate,
        view.is_websocket,
    )


def with_detail(view: FlowView, detail: Detail) -> FlowView:
    """A row's snapshot with what the detail pane needs filled in."""
    return dataclasses.replace(
        view,
        trace=tuple(detail.trace),
        notes=tuple(detail.notes),
        request_headers=tuple((k, v) for k, v in detail.request_headers),
        request_body=detail.request_body,
        request_body_size=detail.request_body_size,
        response_headers=tuple((k, v) for k, v in detail.response_headers),
        response_body=detail.response_body,
        response_content_type=detail.response_content_type,
        timing=tuple((label, t) for label, t in detail.timing),
    )


def view_of(row: Row) -> FlowView:
    """The snapshot a row stands for (what the screen's decoder makes of it)."""
    return msgspec.convert(msgspec.to_builtins(row), FlowView)


def detail_of(view: FlowView) -> Detail:
    return Detail(
        id=view.id,
        trace=list(view.trace),
        notes=list(view.notes),
        request_headers=list(view.request_headers),
        request_body=view.request_body,
        request_body_size=view.request_body_size,
        response_headers=list(view.response_headers),
        response_body=view.response_body,
        response_content_type=view.response_content_type,
        timing=list(view.timing),
    )


def answer_args(answer: Answer) -> dict[str, Any]:
    return {
        "action": answer.action,
        "params": dict(answer.params),
        "remember": answer.remember,
        "pattern": answer.pattern,
    }


def answer_from(args: dict[str, Any]) -> Answer:
    params = args.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError("answer params must be a map")
    return Answer(
        action=str(args.get("action") or ""),
        params=params,
        remember=args.get("remember") or "once",
        pattern=args.get("pattern"),
    )
