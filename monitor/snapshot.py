"""Turn live mitmproxy flows into the screen's immutable ``FlowView`` snapshots.

Runs on the proxy loop (the only place a live flow may be read). Bodies are cut to a
preview so a snapshot stays small whatever passes through.
"""

from __future__ import annotations

from mitmproxy import http

from monitor.destination import host_mismatch
from policies import infer_type
from policies.printable import printable
from widgets.model import CertificateInfo, FlowView, PausedEvent, TraceEntry

BODY_PREVIEW = 64 * 1024
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
        t = m["type"] = infer_type(req.method, req.url, req.headers)
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
    if m.get("client_gone"):
        error = "client gone"
    elif flow.error is not None and state == "error":
        error = printable(flow.error.msg)
    notes = tuple(printable(n) for n in m.get("notes", ()))
    if mismatch := host_mismatch(flow):
        notes = (printable(mismatch), *notes)
    cert = m.get("certificate")
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
        state=state,  # type: ignore[arg-type]
        status=resp.status_code if resp is not None else None,
        reason=printable(resp.reason) if resp is not None else "",
        error=error,
        paused=paused,
        size=resp_size if resp is not None else None,
        duration=duration,
        rule_id=m.get("rule_id"),
        trace=tuple(TraceEntry(*t) for t in m.get("trace", ())),
        notes=notes,
        request_headers=_printable_pairs(
            _redacted(req.headers.items(multi=True), m.get("added_headers"))
        ),
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
        certificate=cert if isinstance(cert, CertificateInfo) else None,
        is_websocket=flow.websocket is not None,
    )
