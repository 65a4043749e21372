"""The flow list's row of a live flow, for the control socket: what ``snapshot`` makes,
without headers, bodies, timing and trace (those are fetched with ``Detail`` when a
screen shows them). Runs on the proxy loop; about a tenth of the cost of a snapshot,
which is what lets a screen attach to 50,000 flows quickly.
"""

from __future__ import annotations

from mitmproxy import http

from monitor import wire
from monitor.record import flow_type, record_of
from monitor.snapshot import state_of
from policies.printable import printable
from widgets.model import PausedEvent


def _size(resp: http.Response) -> int:
    raw = resp.raw_content
    if raw is None:  # streamed: nothing kept
        return 0
    if "content-encoding" not in resp.headers:
        return len(raw)
    try:
        return len(resp.get_content(strict=False) or b"")
    except ValueError:
        return len(raw)


def flow_row(
    flow: http.HTTPFlow, seq: int, paused: PausedEvent | None = None, flow_filter: object = None
) -> wire.Row:
    """A ``Recorder.row_maker``. ``flow_filter`` is not used: each screen's filter is
    evaluated by the control server, per screen."""
    req = flow.request
    resp = flow.response
    rec = record_of(flow)
    state = state_of(flow, paused)
    duration = None
    if resp is not None and resp.timestamp_end:
        duration = resp.timestamp_end - req.timestamp_start
    elif flow.error is not None and flow.error.timestamp:
        duration = flow.error.timestamp - req.timestamp_start
    return wire.Row(
        flow.id,
        seq,
        req.timestamp_start,
        printable(req.method),
        req.scheme,
        printable(req.host),  # the destination, not the Host header (destination.py)
        req.port,
        printable(req.path),
        printable(req.url),
        req.http_version,
        flow_type(flow),
        state,
        resp.status_code if resp is not None else None,
        printable(resp.reason) if resp is not None else "",
        printable(flow.error.msg) if flow.error is not None and state == "error" else None,
        paused,
        _size(resp) if resp is not None else None,
        duration,
        rec.rule_id,
        rec.certificate,
        flow.websocket is not None,
    )
