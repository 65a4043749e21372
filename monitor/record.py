"""waylay's own record of one flow: what was decided, by whom, and what it did.

Every addon that decides something about a flow writes it here, and everything that shows
or exports a flow (snapshots for the screen, the headless line, HAR) reads it from here.
It lives in ``flow.metadata["waylay"]`` and is reached only through ``record_of(flow)``.
Like the flow itself, it is read and written on the proxy loop only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Literal

from mitmproxy import http

from monitor.challenges import CacheEntry
from policies import Decision, folded_fields, infer_type
from widgets.model import CertificateInfo

KEY = "waylay"
"""The key of the record in ``flow.metadata``."""

REDACTED = "(added by waylay; redacted)"
"""What the screen and HAR show instead of a header value waylay added (credentials)."""

Ending = Literal["cancelled", "redirected", "error"]


@dataclass(slots=True)
class FlowRecord:
    """waylay's state on one flow."""

    trace: list[tuple[str, str, str, bool]] = field(default_factory=list)
    """(event, rule id, action or "matched", decided?) for every rule that matched."""
    notes: list[str] = field(default_factory=list)
    """Lines for people: "credentials supplied for alice (you)", ..."""
    rule_id: str | None = None
    """The rule that decided the flow's last decided event."""
    state: Ending | None = None
    """How waylay ended the flow, when it did (else the flow's own outcome counts)."""
    type: str | None = None
    """The webRequest resource type, inferred once (see ``flow_type``)."""
    done: bool = False
    """The flow store saw it finish (response or error)."""
    local_response: bool = False
    """The response was made by waylay (respond, redirect), not by upstream."""
    added_headers: list[str] = field(default_factory=list)
    """Request headers waylay added (credentials): redacted on screen and in HAR."""
    certificate: CertificateInfo | None = None
    """The upstream certificate that failed verification, as the detail pane shows it."""
    certificate_check: int | None = None
    """The serial of the certificate check already noted on this flow."""
    auth_sent: bool = False
    """The auth addon's late request hook saw the request go upstream."""
    auth_preempted: dict[str, CacheEntry] = field(default_factory=dict)
    """Lower-cased header name -> auth cache entry whose credentials went up front."""
    client_gone: bool = False
    """The client disconnected while the flow was paused: not "cancelled" by anyone."""
    retries: int = 0
    """The client's retries of this cancelled request, cancelled with it (retries.py)."""
    retry_of: str | None = None
    """This flow is a client's retry of that cancelled flow: not a row of its own."""
    streamed: dict[str, int] = field(default_factory=dict)
    """"request"/"response" -> bytes of a body that streamed through unkept (bodyview.py)."""
    store_seq: int | None = None
    """The flow's row in the ``--session`` file, once it went there (not saved)."""

    def to_dict(self) -> dict[str, object]:
        """Plain data for a saved flow (see ``record_to_dict``)."""
        return record_to_dict(self)

    @classmethod
    def from_dict(cls, data: object) -> FlowRecord:
        """The record of a saved flow (see ``record_from_dict``)."""
        return record_from_dict(data)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def decided(self, decision: Decision) -> None:
        """Keep the trace of a decision: every matching rule, and the one that won."""
        winner = decision.rule.id if decision.rule is not None else None
        for rid in decision.matched:
            action = decision.action if rid == winner else "matched"
            self.trace.append((decision.event, rid, action, rid == winner))
        if winner is not None:
            self.rule_id = winner

    def added(self, header: str) -> None:
        """Mark a header waylay added upstream (its value is redacted where shown)."""
        if header not in self.added_headers:
            self.added_headers.append(header)

    def redacted(self, headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        """Request headers with the values of those waylay added hidden."""
        if not self.added_headers:
            return tuple(headers)
        names = {h.lower() for h in self.added_headers}
        return tuple((k, REDACTED if k.lower() in names else v) for k, v in headers)


SAVED = (
    "trace",
    "notes",
    "rule_id",
    "state",
    "type",
    "done",
    "local_response",
    "added_headers",
    "certificate",
    "client_gone",
    "retries",
    "retry_of",
    "streamed",
)
"""The fields a saved flow carries (``--save``, ``w``, ``--session``); the rest is the
auth addon's bookkeeping for a live flow."""

_ENDINGS = ("cancelled", "redirected", "error")
_DEFAULTS = tuple((name, getattr(FlowRecord(), name)) for name in SAVED)
"""A fresh record's saved fields, made once (a record a flow: making one each time was
most of the cost of ``record_to_dict``, which every ``--session`` row calls)."""


def record_to_dict(rec: FlowRecord) -> dict[str, object]:
    """The record as plain data (mitmproxy's flow format and JSON hold it): only fields
    that differ from a fresh record."""
    out: dict[str, object] = {}
    for name, default in _DEFAULTS:
        value = getattr(rec, name)
        if value == default:
            continue
        if name == "trace":
            value = [list(t) for t in value]
        elif name == "certificate":
            value = {
                f.name: list(v) if isinstance(v := getattr(value, f.name), tuple) else v
                for f in fields(CertificateInfo)
            }
        elif isinstance(value, (list, dict)):
            value = value.copy()
        out[name] = value
    return out


def record_from_dict(data: object) -> FlowRecord:
    """A record from ``record_to_dict``'s data, as read back from a file: what is missing,
    unknown or of the wrong type is left at its default (a file is input, not trusted)."""
    rec = FlowRecord()
    if not isinstance(data, dict):
        return rec
    data = {(k.decode() if isinstance(k, bytes) else k): v for k, v in data.items()}

    def text(v: object) -> str | None:
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        return v if isinstance(v, str) else None

    def texts(v: object) -> list[str]:
        return [t for t in map(text, v) if t is not None] if isinstance(v, (list, tuple)) else []

    trace = data.get("trace")
    if isinstance(trace, (list, tuple)):
        for t in trace:
            if isinstance(t, (list, tuple)) and len(t) == 4:
                event, rid, action = (text(x) for x in t[:3])
                if event is not None and rid is not None and action is not None:
                    rec.trace.append((event, rid, action, bool(t[3])))
    rec.notes = texts(data.get("notes"))
    rec.added_headers = texts(data.get("added_headers"))
    rec.rule_id = text(data.get("rule_id"))
    state = text(data.get("state"))
    if state in _ENDINGS:
        rec.state = state  # type: ignore[assignment]
    rec.type = text(data.get("type"))
    rec.retry_of = text(data.get("retry_of"))
    for flag in ("done", "local_response", "client_gone"):
        if isinstance(data.get(flag), bool):
            setattr(rec, flag, data[flag])
    retries = data.get("retries")
    if isinstance(retries, int) and not isinstance(retries, bool) and retries >= 0:
        rec.retries = retries
    streamed = data.get("streamed")
    if isinstance(streamed, dict):
        for part, n in streamed.items():
            part = text(part)
            if part in ("request", "response") and isinstance(n, int) and n >= 0:
                rec.streamed[part] = n
    cert = data.get("certificate")
    if isinstance(cert, dict):
        cert = {(k.decode() if isinstance(k, bytes) else k): v for k, v in cert.items()}
        try:
            rec.certificate = CertificateInfo(
                host=text(cert["host"]) or "",
                port=int(cert["port"]),
                reason=text(cert["reason"]) or "",
                subject=text(cert["subject"]) or "",
                issuer=text(cert["issuer"]) or "",
                sans=tuple(texts(cert.get("sans"))),
                not_before=text(cert["not_before"]) or "",
                not_after=text(cert["not_after"]) or "",
                fingerprint=text(cert["fingerprint"]) or "",
                chain=tuple(texts(cert.get("chain"))),
            )
        except (KeyError, TypeError, ValueError):
            rec.certificate = None
    return rec


def record_of(flow: http.HTTPFlow) -> FlowRecord:
    """The flow's record, created on first use."""
    rec = flow.metadata.get(KEY)
    if rec is None:
        rec = flow.metadata[KEY] = FlowRecord()
    return rec


def flow_type(flow: http.HTTPFlow) -> str:
    """The webRequest resource type of a flow's request, inferred once and kept."""
    rec = record_of(flow)
    if rec.type is None:
        req = flow.request
        rec.type = infer_type(req.method, req.url, _lowered(req.headers))
    return rec.type


def _lowered(headers: http.Headers) -> Mapping[str, str]:
    """The headers as a read-only map of lower-cased names to values, folded as
    ``Headers`` folds them: ``infer_type``'s ten lookups cost a third as much (a screen
    attaching to 50,000 flows infers the type of each one it had not shown yet)."""
    return MappingProxyType(folded_fields(headers.fields))
