"""waylay's own record of one flow: what was decided, by whom, and what it did.

Every addon that decides something about a flow writes it here, and everything that shows
or exports a flow (snapshots for the screen, the headless line, HAR) reads it from here.
It lives in ``flow.metadata["waylay"]`` and is reached only through ``record_of(flow)``.
Like the flow itself, it is read and written on the proxy loop only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from mitmproxy import http

from monitor.challenges import CacheEntry
from policies import Decision, infer_type
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
        rec.type = infer_type(req.method, req.url, req.headers)
    return rec.type
