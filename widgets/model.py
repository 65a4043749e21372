"""What the screen knows about traffic: immutable snapshots, never live proxy objects.

The proxy side (``monitor``) builds these from mitmproxy flows and hands them over in
batches; the widgets only ever read them. Nothing here imports mitmproxy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Headers = tuple[tuple[str, str], ...]

EventName = Literal["request", "response", "redirect", "auth", "certificate", "cookies"]

FlowState = Literal[
    "pending",  # on its way, nothing decided yet
    "paused",  # waiting for a decision (see ``FlowView.paused``)
    "done",  # a response reached the client
    "cancelled",  # aborted on purpose (rule, dialog, timeout with --ask-default cancel)
    "redirected",  # answered with a 307 by a ``redirect`` decision
    "error",  # the connection failed (upstream unreachable, reset, certificate rejected...)
]


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One rule that matched an event of a flow; ``decided`` marks the one that won."""

    event: str
    rule_id: str
    action: str
    decided: bool


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """The upstream certificate of a ``certificate`` event, as shown in its dialog."""

    host: str
    port: int
    reason: str  # "expired", "self-signed", "hostname mismatch", ... as OpenSSL reports it
    subject: str
    issuer: str
    sans: tuple[str, ...]
    not_before: str
    not_after: str
    fingerprint: str  # "sha256:aa:bb:..."
    chain: tuple[str, ...] = ()  # subjects, leaf first


@dataclass(frozen=True, slots=True)
class AuthFacts:
    """What an ``auth`` event asks: who wants credentials, for which protection space."""

    host: str
    port: int
    proxy: bool  # the upstream proxy (407), else the server (401)
    realm: str
    scheme: str  # "Basic" or "Digest"
    attempt: int = 1  # 2 and up: the credentials given before were refused
    max_attempts: int = 3


@dataclass(frozen=True, slots=True)
class PausedEvent:
    """A blocking event waiting for a person. ``details`` are plain strings for display."""

    flow_id: str
    event: EventName
    since: float  # time.time() when it paused
    deadline: float  # time.time() when --ask-timeout gives it the default outcome
    url: str
    method: str = "GET"
    details: tuple[tuple[str, str], ...] = ()  # label/value pairs: realm, scheme, Location...
    certificate: CertificateInfo | None = None
    auth: AuthFacts | None = None  # set for ``auth`` events
    asked_by: str | None = None  # the id of the rule that said "ask", None for defaults


BODY_MODES = ("auto", "json", "html", "form", "image", "hex", "raw")
"""The detail pane's body view modes, in the order `v` cycles them."""


@dataclass(frozen=True, slots=True)
class BodyView:
    """A body rendered by the proxy side for the detail pane (``Controller.render_body``)."""

    mode: str  # the mode asked for (one of BODY_MODES)
    shown_as: str  # what it is shown as: "JSON", "HTML/XML", "image", "hex", "raw", "CSS"…
    text: str
    syntax: str | None = None  # a Pygments lexer name for highlighting, or None
    note: str = ""  # "not JSON: …; shown raw", "first 64.0 KiB of 3.0 MiB"…


@dataclass(frozen=True, slots=True)
class WebSocketMessageView:
    """One WebSocket message: who sent it, when, how big, and its start as text or hex."""

    from_client: bool
    timestamp: float
    size: int
    is_text: bool
    preview: str


@dataclass(frozen=True, slots=True)
class FlowView:
    """An immutable snapshot of one flow for the flow list and the detail pane."""

    id: str
    seq: int  # arrival order, 1-based
    started: float  # time.time() of the request's first byte
    method: str
    scheme: str
    host: str
    port: int
    path: str  # path and query
    url: str
    http_version: str = "HTTP/1.1"
    type: str = "other"  # webRequest resource type
    state: FlowState = "pending"
    status: int | None = None
    reason: str = ""
    error: str | None = None
    paused: PausedEvent | None = None
    size: int | None = None  # response body bytes
    duration: float | None = None  # seconds, request start to response end
    rule_id: str | None = None  # the rule that decided the flow's last decided event
    trace: tuple[TraceEntry, ...] = ()
    notes: tuple[str, ...] = ()  # human lines: "credentials supplied for alice", ...
    request_headers: Headers = ()
    request_body: bytes = b""  # capped preview
    request_body_size: int = 0
    response_headers: Headers = ()
    response_body: bytes = b""  # capped preview
    response_content_type: str = ""
    timing: tuple[tuple[str, float], ...] = ()  # label, seconds since start
    certificate: CertificateInfo | None = None
    is_websocket: bool = False
    request_body_streamed: int | None = None  # bytes that streamed through unkept, if any
    response_body_streamed: int | None = None
    websocket_messages: tuple[WebSocketMessageView, ...] = ()  # the newest, at most 500
    websocket_message_count: int = 0
    filter_match: tuple[int, bool] | None = None
    """(filter generation, matches?) under the flow-list filter the proxy side held when
    it made this snapshot (see ``FilterMatch``); None without such a filter."""
    retries: int = 0  # the client's retries of this cancelled request, cancelled with it

    @property
    def finished(self) -> bool:
        return self.state in ("done", "cancelled", "redirected", "error")

    @property
    def state_label(self) -> str:
        """What the flow list shows in the state column."""
        if self.paused is not None:
            return f"⏸ {self.paused.event}"
        if self.state == "error":
            return f"error: {self.error}" if self.error else "error"
        if self.state == "cancelled" and self.retries:
            return f"cancelled, {self.retries} {'retry' if self.retries == 1 else 'retries'}"
        if self.state in ("cancelled", "redirected"):
            return self.state
        if self.status is not None:
            return str(self.status)
        return "…"


@dataclass(frozen=True, slots=True)
class FilterMatch:
    """A flow-list filter expression, evaluated by the proxy side (it needs live flows):
    the flows that matched when it was set, and its generation. Later snapshots carry
    their own verdict under that generation in ``FlowView.filter_match``."""

    generation: int
    matching: frozenset[str]

    def __call__(self, view: FlowView) -> bool:
        verdict = view.filter_match
        if verdict is not None and verdict[0] == self.generation:
            return verdict[1]
        return view.id in self.matching


RememberScope = Literal["once", "url", "host", "pattern"]


@dataclass(frozen=True, slots=True)
class Answer:
    """A person's decision on a paused event, sent from the screen to the proxy.

    ``action`` is one of the event's actions (docs/rules.md). ``params`` hold its parameters:
    ``url`` (redirect/rewrite), ``status``/``headers``/``body`` (respond; ``headers`` a
    list of (name, value) pairs, the content type among them),
    ``username``/``password`` (credentials), ``method``/``url``/``headers``/``body``
    (edit, action "continue" with changes). ``remember`` is the scope of the rule to save;
    ``pattern`` is the match pattern for scope "pattern".
    """

    action: str
    params: dict = field(default_factory=dict)
    remember: RememberScope = "once"
    pattern: str | None = None

    def __repr__(self) -> str:  # never show a password
        shown = {k: ("***" if k == "password" else v) for k, v in self.params.items()}
        return f"Answer({self.action!r}, {shown!r}, remember={self.remember!r})"


def older_to_write(listed: bool, filter_text: str, older: tuple[int, int]) -> str | None:
    """The ``older`` of ``Controller.export_har``/``save_flows`` for a menu's choice: the
    listed flows (``listed``) or all; ``older`` counts the session file's flows kept only
    there, (all, listed). None when there are none to add."""
    if listed:
        return filter_text if older[1] else None
    return "" if older[0] else None


class Controller(Protocol):
    """What the screen may ask of the proxy side: the only way it talks to the proxy.

    Every method is safe to call from the UI thread; the implementation hops to the
    proxy's loop itself, where live flows are read. Arguments and results are plain data
    (strings, ``Answer``, ``FilterMatch``), so the protocol can cross a process boundary.
    """

    @property
    def address(self) -> str: ...  # "http://127.0.0.1:8080"

    @property
    def mode(self) -> str: ...

    @property
    def ask_default(self) -> str:
        """--ask-default: what a pause gets at its deadline, "continue" or "cancel"."""

    def answer(self, flow_id: str, event: str, answer: Answer) -> str | None:
        """Decide a paused event. Returns an error message (and changes nothing) when the
        answer is invalid, e.g. a redirect URL that is not a URL."""

    def preview_rule(self, flow_id: str, event: str, answer: Answer) -> str | None:
        """The TOML text of the rule ``answer`` would remember, or None for "once"."""

    def set_breakpoint(self, spec: str) -> str | None:
        """Set (or with "" clear) the request breakpoint; returns an error message."""

    def toggle_breakpoints(self) -> bool:
        """Turn breakpoints on/off; returns the new state."""

    def check_filter(self, expr: str) -> str | None:
        """Why ``expr`` is not a filter expression, or None. Changes nothing."""

    def apply_filter(self, expr: str) -> tuple[FilterMatch | None, str | None]:
        """Filter the flow list by ``expr`` (evaluated on the proxy side): (the match,
        None), or (None, error) changing nothing. "" ends the filter: (None, None)."""

    def clear_finished(self) -> None: ...

    def export_curl(self, flow_id: str) -> str:
        """The selected flow as a curl command (raises ValueError if it cannot be)."""

    def export_har(
        self, path: str, flow_ids: list[str] | None = None, older: str | None = None
    ) -> int:
        """Write all (or the given) flows as HAR 1.2 to ``path``; returns the entry count.
        ``older``: also, first, the flows kept only in the session file (``OlderFlows``)
        that match this filter as typed ("" for all); None for none of them."""

    def save_flows(
        self, path: str, flow_ids: list[str] | None = None, older: str | None = None
    ) -> int:
        """Write all (or the given) flows to ``path`` in mitmproxy's flow format; returns
        how many. ``older`` as in ``export_har``. Raises OSError with a message for people
        when it cannot write."""

    def render_body(self, flow_id: str, part: str, mode: str) -> BodyView | None:
        """The ``part`` ("request" or "response") body of a flow in ``mode`` (BODY_MODES),
        rendered where the flows are; None when the flow or that message is gone."""

    def delete_flow(self, flow_id: str) -> str | None:
        """Drop one finished flow from the store; returns an error message."""

    def replay(self, flow_id: str) -> str | None:
        """Send the flow's request again through the proxy (rules apply) as a new flow."""

    def send_request(self, flow_id: str, changes: dict | None) -> str | None:
        """A copy of the flow with ``changes`` (method, url, headers, body) sent through
        the proxy as a new flow; returns an error message (and sends nothing) if bad."""

    def event_log(self, limit: int = 200) -> list[tuple[float, str, str]]:
        """The last ``limit`` proxy events, oldest first: (time.time(), kind, text) with
        kind "error", "rules", "timeout" or "tls"."""

    def export_rules(self, fmt: str) -> tuple[str, list[str]]:
        """The rules as ``fmt`` (toml, json, dnr, mitmproxy): the text and the warnings
        naming rules that were left out."""


@runtime_checkable
class OlderFlows(Protocol):
    """What a controller offers besides ``Controller`` when flows are kept on disk (a
    proxy with a ``--session`` file): the screen checks for it, and shows those flows
    above the ones it holds, reading only the rows in view."""

    def older_flows(self, expr: str, start: int, count: int) -> tuple[int, list[FlowView]]:
        """Flows of the session file older than every flow held in memory that match
        ``expr`` (the list's filter as typed: a filter expression or plain text; "" for
        all), oldest first: how many, and the list rows of those at
        ``[start, start + count)``, read from the file where the flows are."""

    def older_progress(self, expr: str) -> tuple[int, int] | None:
        """While ``older_flows`` runs ``expr`` over the file: (done, all), else None."""

    def stored_flow(self, flow_id: str) -> FlowView | None:
        """The full snapshot (headers, bodies, trace) of a flow read back from the
        session file, or None."""
