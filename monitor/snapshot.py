"""Turn live mitmproxy flows into the screen's immutable ``FlowView`` snapshots.

Runs on the proxy loop (the only place a live flow may be read). Bodies are cut to a
preview so a snapshot stays small whatever passes through.
"""

from __future__ import annotations

from mitmproxy import http

from policies import infer_type
from widgets.model import (
    CertificateInfo,
    FlowView,
    PausedEvent,
    TraceEntry,
    WebSocketMessageView,
)

BODY_PREVIEW = 64 * 1024
WS_MESSAGES = 500
"""The newest WebSocket messages a snapshot carries."""
WS_PREVIEW = 256
"""Bytes of each WebSocket message a snapshot carries."""
META = "waylay"


def meta(flow: http.HTTPFlow) -> dict:
    """waylay's per-flow record: decisions, trace, notes, final state."""
    m = flow.metadata.get(META)
    if m is None:
        m = flow.metadata[META] = {"trace": [], "notes": [], "rule_id": None, "state": None}
    return m


def flow_type(flow: http.HTTPFlow) -> str:
    """The webRequest resource type of a flow's request, inferred once and kept."""
    m = meta(flow)
    t = m.get("type")
    if t is None:
        req = flow.request
        t = m["type"] = infer_type(req.method, req.pretty_url, req.headers)
    return t


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


def _redacted(headers, added) -> tuple[tuple[str, str], ...]:
    """Request headers, with the values of those waylay added (credentials) hidden."""
    if not added:
        return tuple(headers)
    from monitor.har import REDACTED

    names = {h.lower() for h in added}
    return tuple((k, REDACTED if k.lower() in names else v) for k, v in headers)


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
        if msg.is_text:
            preview = head.decode("utf-8", "replace")
        else:
            preview = head.hex(" ")
        shown.append(
            WebSocketMessageView(msg.from_client, msg.timestamp, len(content), msg.is_text, preview)
        )
    return tuple(shown), len(ws.messages)


def state_of(flow: http.HTTPFlow, paused: PausedEvent | None) -> str:
    m = flow.metadata.get(META) or {}
    if paused is not None:
        return "paused"
    if m.get("state") in ("cancelled", "redirected", "error"):
        return m["state"]
    if flow.error is not None:
        return "error"
    if m.get("done"):
        return "done"
    return "pending"


def snapshot(
    flow: http.HTTPFlow,
    seq: int,
    paused: PausedEvent | None = None,
) -> FlowView:
    req = flow.request
    resp = flow.response
    m = flow.metadata.get(META) or {}
    state = state_of(flow, paused)
    duration = None
    if resp is not None and resp.timestamp_end:
        duration = resp.timestamp_end - req.timestamp_start
    elif flow.error is not None and flow.error.timestamp:
        duration = flow.error.timestamp - req.timestamp_start
    req_body, req_size = _body(req)
    resp_body, resp_size = _body(resp)
    error = None
    if flow.error is not None and state == "error":
        error = flow.error.msg
    cert = m.get("certificate")
    streamed = m.get("streamed") or {}
    ws_messages, ws_count = _websocket(flow)
    resp_streamed = (
        streamed.get("response") if resp is not None and resp.raw_content is None else None
    )
    return FlowView(
        id=flow.id,
        seq=seq,
        started=req.timestamp_start,
        method=req.method,
        scheme=req.scheme,
        host=req.pretty_host,
        port=req.port,
        path=req.path,
        url=req.pretty_url,
        http_version=req.http_version,
        type=flow_type(flow),
        state=state,  # type: ignore[arg-type]
        status=resp.status_code if resp is not None else None,
        reason=resp.reason if resp is not None else "",
        error=error,
        paused=paused,
        size=(resp_streamed if resp_streamed is not None else resp_size)
        if resp is not None
        else None,
        duration=duration,
        rule_id=m.get("rule_id"),
        trace=tuple(TraceEntry(*t) for t in m.get("trace", ())),
        notes=tuple(m.get("notes", ())),
        request_headers=_redacted(req.headers.items(multi=True), m.get("added_headers")),
        request_body=req_body,
        request_body_size=req_size,
        response_headers=tuple(resp.headers.items(multi=True)) if resp is not None else (),
        response_body=resp_body,
        response_content_type=resp.headers.get("content-type", "") if resp is not None else "",
        timing=_timing(flow),
        certificate=cert if isinstance(cert, CertificateInfo) else None,
        is_websocket=flow.websocket is not None,
        request_body_streamed=streamed.get("request") if req.raw_content is None else None,
        response_body_streamed=resp_streamed,
        websocket_messages=ws_messages,
        websocket_message_count=ws_count,
    )
