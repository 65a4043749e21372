"""Turn live mitmproxy flows into the screen's immutable ``FlowView`` snapshots.

Runs on the proxy loop (the only place a live flow may be read). Bodies are cut to a
preview so a snapshot stays small whatever passes through.
"""

from __future__ import annotations

from collections.abc import Callable

from mitmproxy import flowfilter, http

from monitor.destination import host_mismatch
from monitor.record import flow_type, record_of
from policies.printable import printable
from widgets.model import FlowState, FlowView, PausedEvent, TraceEntry, WebSocketMessageView

BODY_PREVIEW = 64 * 1024
WS_MESSAGES = 500
"""The newest WebSocket messages a snapshot carries."""
WS_PREVIEW = 256
"""Bytes of each WebSocket message a snapshot carries."""


def _body(message: http.Message | None) -> tuple[bytes, int]:
    if message is None:
        return b"", 0
    raw = message.raw_content
    if raw is None:  # streamed: nothing kept
        return b"", 0
    try:
        content = message.get_content(strict=False) or b""
    except ValueError:
        content = raw
    return content[:BODY_PREVIEW], len(content)


def _printable_pairs(pairs) -> tuple[tuple[str, str], ...]:
    return tuple((printable(k), printable(v)) for k, v in pairs)


def _timing(flow: http.HTTPFlow) -> tuple[tuple[str, float], ...]:
    start = flow.request.timestamp_start
    points = [
        ("request complete", flow.request.timestamp_end),
        ("server connected", flow.server_conn.timestamp_tcp_setup if flow.server_conn else None),
        ("TLS established", flow.server_conn.timestamp_tls_setup if flow.server_conn else None),
    ]
    if flow.response is not None:
        points += [
            ("response headers", flow.response.timestamp_start),
            ("response complete", flow.response.timestamp_end),
        ]
    return tuple((label, ts - start) for label, ts in points if ts and ts >= start)


def _websocket(flow: http.HTTPFlow) -> tuple[tuple[WebSocketMessageView, ...], int]:
    ws = flow.websocket
    if ws is None:
        return (), 0
    shown = []
    for msg in ws.messages[-WS_MESSAGES:]:
        content = msg.content
        head = content[:WS_PREVIEW]
        if msg.is_text:  # from the network: escaped before it reaches the terminal
            preview = printable(head.decode("utf-8", "replace"))
        else:
            preview = head.hex(" ")
        shown.append(
            WebSocketMessageView(msg.from_client, msg.timestamp, len(content), msg.is_text, preview)
        )
    return tuple(shown), len(ws.messages)


def state_of(flow: http.HTTPFlow, paused: PausedEvent | None) -> FlowState:
    rec = record_of(flow)
    if paused is not None:
        return "paused"
    if rec.state is not None:
        return rec.state
    if flow.error is not None:
        return "error"
    if rec.done:
        return "done"
    return "pending"


def snapshot(
    flow: http.HTTPFlow,
    seq: int,
    paused: PausedEvent | None = None,
    flow_filter: tuple[int, Callable[[http.HTTPFlow], bool]] | None = None,
) -> FlowView:
    req = flow.request
    resp = flow.response
    rec = record_of(flow)
    state = state_of(flow, paused)
    duration = None
    if resp is not None and resp.timestamp_end:
        duration = resp.timestamp_end - req.timestamp_start
    elif flow.error is not None and flow.error.timestamp:
        duration = flow.error.timestamp - req.timestamp_start
    req_body, req_size = _body(req)
    resp_body, resp_size = _body(resp)
    error = None
    if rec.client_gone:
        error = "client gone"
    elif flow.error is not None and state == "error":
        error = printable(flow.error.msg)
    notes = tuple(printable(n) for n in rec.notes)
    if mismatch := host_mismatch(flow):
        notes = (printable(mismatch), *notes)
    streamed = rec.streamed
    ws_messages, ws_count = _websocket(flow)
    resp_streamed = (
        streamed.get("response") if resp is not None and resp.raw_content is None else None
    )
    return FlowView(
        id=flow.id,
        seq=seq,
        started=req.timestamp_start,
        method=printable(req.method),
        scheme=req.scheme,
        host=printable(req.host),
        port=req.port,
        path=printable(req.path),
        url=printable(req.url),
        http_version=req.http_version,
        type=flow_type(flow),
        state=state,
        status=resp.status_code if resp is not None else None,
        reason=printable(resp.reason) if resp is not None else "",
        error=error,
        paused=paused,
        size=(resp_streamed if resp_streamed is not None else resp_size)
        if resp is not None
        else None,
        duration=duration,
        rule_id=rec.rule_id,
        trace=tuple(TraceEntry(*t) for t in rec.trace),
        notes=notes,
        request_headers=_printable_pairs(rec.redacted(req.headers.items(multi=True))),
        request_body=req_body,
        request_body_size=req_size,
        response_headers=(
            _printable_pairs(resp.headers.items(multi=True)) if resp is not None else ()
        ),
        response_body=resp_body,
        response_content_type=(
            printable(resp.headers.get("content-type", "")) if resp is not None else ""
        ),
        timing=_timing(flow),
        certificate=rec.certificate,
        is_websocket=flow.websocket is not None,
        request_body_streamed=streamed.get("request") if req.raw_content is None else None,
        response_body_streamed=resp_streamed,
        websocket_messages=ws_messages,
        websocket_message_count=ws_count,
        filter_match=None
        if flow_filter is None
        else (flow_filter[0], matches(flow_filter[1], flow)),
        retries=rec.retries,
    )


def filter_error(expr: str) -> str | None:
    """Why a mitmproxy filter expression does not parse, or None."""
    try:
        flowfilter.parse(expr)
    except ValueError as e:
        return f"bad filter expression: {e}"
    return None


def matches(flt: Callable[[http.HTTPFlow], bool], flow: http.HTTPFlow) -> bool:
    """A mitmproxy filter expression's verdict on a flow; a filter that fails is False."""
    try:
        return bool(flt(flow))
    except Exception:  # noqa: BLE001 - a filter must never break a snapshot
        return False
