"""The detail pane: everything the screen knows about one flow."""

from __future__ import annotations

import math
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.rule import Rule
from rich.table import Table
from rich.text import Text
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.widgets import Static

from widgets import keys
from widgets.format import (
    body_renderable,
    clock_time_ms,
    duration_ms,
    header_value,
    headers_text,
    host_label,
    human_size,
)
from widgets.model import CertificateInfo, FlowView, PausedEvent


def _section(title: str) -> Rule:
    return Rule(Text(title, style="bold"), align="left", style="dim")


def _pairs(rows: list[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(label, value)
    return table


def _paused_lines(paused: PausedEvent, now: float) -> RenderableType:
    waited = max(0, int(now - paused.since))
    if math.isfinite(paused.deadline):
        left = max(0, int(round(paused.deadline - now)))
        outcome = f"the default outcome in {left}s"
    else:  # --ask-timeout none
        outcome = "no time limit"
    headline = Text.assemble(
        (f"⏸ paused at the {paused.event} event", "bold reverse"),
        f"  waiting {waited}s; {outcome}",
    )
    if not paused.details:
        return headline
    return Group(headline, _pairs(list(paused.details)))


def certificate_renderable(cert: CertificateInfo) -> RenderableType:
    """The certificate facts a person needs to judge it."""
    rows = [
        ("problem", cert.reason),
        ("host", f"{cert.host}:{cert.port}"),
        ("subject", cert.subject),
        ("issuer", cert.issuer),
        ("names", ", ".join(cert.sans) or "(none)"),
        ("valid", f"{cert.not_before} → {cert.not_after}"),
        ("fingerprint", cert.fingerprint),
    ]
    if cert.chain:
        rows.append(("chain", "\n".join(cert.chain)))
    return _pairs(rows)


def _trace_renderable(view: FlowView) -> RenderableType:
    table = Table(box=None, padding=(0, 2), show_edge=False, header_style="dim")
    table.add_column("")
    table.add_column("event")
    table.add_column("rule")
    table.add_column("action")
    for entry in view.trace:
        table.add_row(
            "★" if entry.decided else "",
            entry.event,
            Text(entry.rule_id, style="bold" if entry.decided else ""),
            entry.action,
        )
    return table


def _response_line(view: FlowView) -> Text:
    if view.status is not None:
        line = Text.assemble(
            (view.http_version + " ", "dim"), (f"{view.status} {view.reason}".rstrip(), "bold")
        )
        if view.state in ("cancelled", "redirected", "error"):
            line.append(f"  ({view.state_label})", style="bold")
        return line
    if view.state == "pending":
        return Text("waiting for the response…", style="dim")
    if view.paused is not None:
        return Text("no response yet: the flow is paused", style="dim")
    return Text(view.state_label, style="bold")


def flow_renderable(view: FlowView, now: float, *, dark: bool = True) -> RenderableType:
    """The whole detail of one flow: what decided it first, then request, response, timing."""
    parts: list[RenderableType] = []
    parts.append(
        Text.assemble((view.method, "bold"), " ", view.url, (f"  {view.http_version}", "dim"))
    )
    facts = [
        f"#{view.seq}",
        f"started {clock_time_ms(view.started)}",
        f"type {view.type}",
        host_label(view),
    ]
    if view.is_websocket:
        facts.append("WebSocket")
    if view.rule_id:
        facts.append(f"decided by {view.rule_id}")
    parts.append(Text(" · ".join(facts), style="dim"))
    if view.paused is not None:
        parts.append(_paused_lines(view.paused, now))

    if view.trace:
        parts.append(_section("Rule trace"))
        parts.append(_trace_renderable(view))
    else:
        parts.append(Text("Rule trace: no rule matched", style="dim"))
    if view.notes:
        parts.append(Text("\n".join(view.notes), style="italic"))
    certificate = view.certificate or (view.paused.certificate if view.paused else None)
    if certificate is not None:
        parts.append(_section("Certificate"))
        parts.append(certificate_renderable(certificate))

    parts.append(_section("Request"))
    parts.append(
        headers_text(view.request_headers)
        if view.request_headers
        else Text("(no headers)", style="dim")
    )
    if view.request_body or view.request_body_size:
        parts.append(
            _section(
                f"Request body · {human_size(max(view.request_body_size, len(view.request_body)))}"
            )
        )
        parts.append(
            body_renderable(
                view.request_body,
                header_value(view.request_headers, "content-type"),
                view.request_body_size,
                dark=dark,
            )
        )

    parts.append(_section("Response"))
    parts.append(_response_line(view))
    if view.error and view.status is not None:
        parts.append(Text(f"error: {view.error}", style="bold"))
    if view.response_headers:
        parts.append(headers_text(view.response_headers))
    if view.response_body or view.size:
        content_type = view.response_content_type or header_value(
            view.response_headers, "content-type"
        )
        parts.append(
            _section(f"Response body · {human_size(view.size or len(view.response_body))}")
        )
        parts.append(body_renderable(view.response_body, content_type, view.size, dark=dark))

    if view.timing or view.duration is not None:
        parts.append(_section("Timing"))
        rows = [(label, f"+{duration_ms(seconds)}") for label, seconds in view.timing]
        if view.duration is not None:
            rows.append(("total", duration_ms(view.duration)))
        parts.append(_pairs(rows))

    return Group(*parts)


class FlowDetail(VerticalScroll):
    """The selected flow's request, response, timing and rule trace; scrolls.

    Hidden until opened (class `-open`); `escape` closes it and returns to the list.
    """

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(keys.DETAIL)

    DEFAULT_CSS = """
    FlowDetail {
        display: none;
        height: 1fr;
        border-top: solid $primary;
        padding: 0 1;
        background: $surface;
        &:focus-within {
            border-top: solid $accent;
        }
        &.-open {
            display: block;
        }
        & > #detail-body {
            width: 100%;
        }
    }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id, can_focus=True)
        self.flow_id: str | None = None
        """The flow shown, if any."""

    def compose(self):
        yield Static(id="detail-body")

    def show_flow(self, view: FlowView | None, now: float) -> None:
        """Show `view`; keeps the scroll position while it is the same flow."""
        body = self.query_one("#detail-body", Static)
        if view is None:
            self.flow_id = None
            body.update(Text("no flow selected", style="dim"))
            return
        if view.id != self.flow_id:
            self.scroll_home(animate=False)
        self.flow_id = view.id
        body.update(flow_renderable(view, now, dark=self.app.current_theme.dark))
