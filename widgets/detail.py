"""The detail pane: everything the screen knows about one flow."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.rule import Rule
from rich.syntax import Syntax
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
from widgets.model import BODY_MODES, BodyView, CertificateInfo, FlowView, PausedEvent

SYNTAX_LIMIT = 256 * 1024
"""Characters of a rendered body that are highlighted; beyond that it is plain text."""
MODE_LABELS = {
    "auto": "auto",
    "json": "JSON",
    "html": "HTML/XML",
    "form": "form",
    "image": "image",
    "hex": "hex",
    "raw": "raw",
}


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


def rendered_body(body: BodyView, *, dark: bool = True) -> RenderableType:
    """A body the proxy side rendered in a view mode."""
    parts: list[RenderableType] = []
    if body.note:
        parts.append(Text(body.note, style="dim italic"))
    if body.syntax and len(body.text) <= SYNTAX_LIMIT:
        parts.append(
            Syntax(
                body.text,
                body.syntax,
                theme="ansi_dark" if dark else "ansi_light",
                word_wrap=True,
                background_color="default",
            )
        )
    else:
        parts.append(Text(body.text, style="dim" if body.shown_as in ("empty", "streamed") else ""))
    return parts[0] if len(parts) == 1 else Group(*parts)


def _body_title(part: str, size: int, body: BodyView | None, streamed: int | None) -> Rule:
    if streamed is not None:
        return _section(f"{part} body · {human_size(streamed)} · streamed through, not kept")
    title = f"{part} body · {human_size(size)}"
    if body is not None and body.shown_as not in ("empty", "streamed"):
        shown = body.shown_as
        title += f" · view {MODE_LABELS.get(body.mode, body.mode)}"
        if body.mode == "auto" or shown.lower() != MODE_LABELS.get(body.mode, "").lower():
            title += f": {shown}"
    return _section(title)


def websocket_renderable(view: FlowView) -> RenderableType:
    """The WebSocket messages: direction, time, size, text or hex."""
    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="dim")
    table.add_column("")
    table.add_column("time", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("message", overflow="fold")
    for msg in view.websocket_messages:
        arrow = "→ sent" if msg.from_client else "← received"
        preview = msg.preview if msg.is_text else f"hex {msg.preview}"
        if msg.size > len(msg.preview.encode()) and msg.is_text:
            preview += " …"
        table.add_row(arrow, clock_time_ms(msg.timestamp), human_size(msg.size), Text(preview))
    if view.websocket_message_count > len(view.websocket_messages):
        return Group(
            Text(
                f"the newest {len(view.websocket_messages)} of "
                f"{view.websocket_message_count} messages",
                style="dim",
            ),
            table,
        )
    return table


def flow_renderable(
    view: FlowView,
    now: float,
    *,
    dark: bool = True,
    bodies: Mapping[str, BodyView | None] | None = None,
) -> RenderableType:
    """The whole detail of one flow: what decided it first, then request, response, timing.

    ``bodies`` ("request", "response") are the bodies rendered in a view mode by the
    proxy side; without them the snapshot's body preview is shown as it is."""
    bodies = bodies or {}
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
    if view.request_body or view.request_body_size or view.request_body_streamed is not None:
        rendered = bodies.get("request")
        size = max(view.request_body_size, len(view.request_body))
        parts.append(_body_title("Request", size, rendered, view.request_body_streamed))
        if view.request_body_streamed is not None:
            pass
        elif rendered is not None:
            parts.append(rendered_body(rendered, dark=dark))
        else:
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
    if view.response_body or view.size or view.response_body_streamed is not None:
        content_type = view.response_content_type or header_value(
            view.response_headers, "content-type"
        )
        rendered = bodies.get("response")
        size = view.size or len(view.response_body)
        parts.append(_body_title("Response", size, rendered, view.response_body_streamed))
        if view.response_body_streamed is not None:
            pass
        elif rendered is not None:
            parts.append(rendered_body(rendered, dark=dark))
        else:
            parts.append(body_renderable(view.response_body, content_type, view.size, dark=dark))

    if view.is_websocket or view.websocket_messages:
        count = view.websocket_message_count
        parts.append(_section(f"WebSocket messages · {count}"))
        if view.websocket_messages:
            parts.append(websocket_renderable(view))
        else:
            parts.append(Text("no messages yet", style="dim"))

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
    `v` cycles the body view mode (BODY_MODES; the proxy side renders the bodies through
    the app's controller); `/` searches the pane, `n` / `N` go to the next / previous
    match. The mode and the search stay as they are when another flow is shown.
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

    MATCH_STYLE = "black on yellow"
    CURRENT_STYLE = "bold black on dark_orange"

    def __init__(
        self,
        *,
        render_body: Callable[[str, str, str], BodyView | None] | None = None,
        name: str | None = None,
        id: str | None = None,
    ) -> None:
        """`render_body` is the controller's (``Controller.render_body``); without it the
        pane shows the snapshot's body preview."""
        super().__init__(name=name, id=id, can_focus=True)
        self.render_body = render_body
        self.flow_id: str | None = None
        """The flow shown, if any."""
        self.mode = "auto"
        """The body view mode (one of BODY_MODES)."""
        self.search_text = ""
        """What `/` searches for, "" for no search."""
        self.matches: list[tuple[int, int, int]] = []
        """(line, start, end) of each match of `search_text` in the pane as shown."""
        self.current = -1
        """The index in `matches` of the current match, -1 for none."""
        self._view: FlowView | None = None
        self._now = 0.0
        self._bodies: tuple[FlowView, str, dict[str, BodyView | None]] | None = None

    def compose(self):
        yield Static(id="detail-body")

    def on_mount(self) -> None:
        self._update_title()

    def show_flow(self, view: FlowView | None, now: float) -> None:
        """Show `view`; keeps the scroll position while it is the same flow."""
        body = self.query_one("#detail-body", Static)
        self._view, self._now = view, now
        if view is None:
            self.flow_id = None
            self.matches, self.current = [], -1
            body.update(Text("no flow selected", style="dim"))
            self._update_title()
            return
        same = view.id == self.flow_id
        if not same:
            self.scroll_home(animate=False)
        self.flow_id = view.id
        self._refresh_body(keep_match=same)

    # ------------------------------------------------------------ rendering

    def _rendered_bodies(self, view: FlowView) -> dict[str, BodyView | None]:
        cached = self._bodies
        if cached is not None and cached[0] is view and cached[1] == self.mode:
            return cached[2]
        render_body = self.render_body
        bodies: dict[str, BodyView | None] = {}
        if render_body is not None:
            for part, has_body in (
                ("request", bool(view.request_body or view.request_body_size)),
                ("response", bool(view.response_body or view.size)),
            ):
                if not has_body:
                    continue
                try:
                    bodies[part] = render_body(view.id, part, self.mode)
                except Exception as exc:  # the snapshot's preview is shown instead
                    bodies[part] = None
                    self.log.warning(f"rendering the {part} body failed: {exc}")
        self._bodies = (view, self.mode, bodies)
        return bodies

    def _renderable(self) -> RenderableType:
        assert self._view is not None
        return flow_renderable(
            self._view,
            self._now,
            dark=self.app.current_theme.dark,
            bodies=self._rendered_bodies(self._view),
        )

    def _refresh_body(self, *, keep_match: bool = True) -> None:
        body = self.query_one("#detail-body", Static)
        if self._view is None:
            return
        renderable = self._renderable()
        if not self.search_text:
            self.matches, self.current = [], -1
            body.update(renderable)
            self._update_title()
            return
        lines = self._lines(renderable)
        needle = self.search_text.lower()
        matches = []
        for number, line in enumerate(lines):
            plain = line.plain.lower()
            start = plain.find(needle)
            while start != -1:
                matches.append((number, start, start + len(needle)))
                start = plain.find(needle, start + max(1, len(needle)))
        previous = self.matches[self.current] if 0 <= self.current < len(self.matches) else None
        self.matches = matches
        if not matches:
            self.current = -1
        elif not keep_match or previous is None or previous not in matches:
            self.current = 0
        else:
            self.current = matches.index(previous)
        body.update(self._highlighted(lines))
        self._update_title()

    def _lines(self, renderable: RenderableType) -> list[Text]:
        """The pane as lines of text at its current width (so matches have a line)."""
        console = self.app.console
        width = self.scrollable_content_region.width or max(20, self.size.width - 2)
        options = console.options.update(width=max(20, width), height=None)
        lines = console.render_lines(renderable, options, pad=False, new_lines=False)
        out = []
        for segments in lines:
            line = Text(no_wrap=True, end="")
            for segment in segments:
                if not segment.control:
                    line.append(segment.text, segment.style)
            out.append(line)
        return out

    def _highlighted(self, lines: list[Text]) -> Text:
        for index, (number, start, end) in enumerate(self.matches):
            style = self.CURRENT_STYLE if index == self.current else self.MATCH_STYLE
            lines[number].stylize(style, start, end)
        text = Text("\n", no_wrap=True, overflow="ignore").join(lines)
        return text

    def _update_title(self) -> None:
        if self.mode == "auto" and not self.search_text:
            self.border_title = None
            return
        title = f"view {MODE_LABELS.get(self.mode, self.mode)} (v)"
        if self.search_text:
            if self.matches:
                title += f" · {self.search_text!r} {self.current + 1}/{len(self.matches)}"
            else:
                title += f" · {self.search_text!r} not found"
        self.border_title = title

    def _scroll_to_current(self) -> None:
        if 0 <= self.current < len(self.matches):
            line = self.matches[self.current][0]
            self.scroll_to(y=max(0, line - 2), animate=False)

    def on_resize(self) -> None:
        if self.search_text and self._view is not None:
            self._refresh_body()

    # ------------------------------------------------------------ keys

    def action_cycle_view(self) -> None:
        """`v`: the next body view mode."""
        self.mode = BODY_MODES[(BODY_MODES.index(self.mode) + 1) % len(BODY_MODES)]
        self._refresh_body()
        self.notify(f"Body view: {MODE_LABELS[self.mode]}", timeout=2)

    def set_mode(self, mode: str) -> None:
        if mode not in BODY_MODES:
            raise ValueError(f"{mode!r} is not one of {', '.join(BODY_MODES)}")
        self.mode = mode
        self._refresh_body()

    def action_search(self) -> None:
        """`/`: search the pane; empty clears the search."""
        from widgets.prompts import InputPrompt

        def done(text: str | None) -> None:
            if text is None:
                return
            self.search(text)
            if self.search_text and not self.matches:
                self.notify(
                    f"{self.search_text!r} is not in this flow.", severity="warning", markup=False
                )

        self.app.push_screen(
            InputPrompt(
                "Search the details",
                value=self.search_text,
                placeholder="text (case-insensitive)",
                help="n / N: next / previous match. Empty clears the search.",
                id="detail-search-prompt",
            ),
            done,
        )

    def search(self, text: str) -> None:
        """Highlight `text` in the pane and go to its first match."""
        self.search_text = text.strip()
        self.current = -1
        self.matches = []
        self._refresh_body(keep_match=False)
        self._scroll_to_current()

    def _step(self, delta: int) -> None:
        if not self.search_text:
            self.action_search()
            return
        if not self.matches:
            self.notify(
                f"{self.search_text!r} is not in this flow.", severity="warning", markup=False
            )
            return
        self.current = (self.current + delta) % len(self.matches)
        body = self.query_one("#detail-body", Static)
        body.update(self._highlighted(self._lines(self._renderable())))
        self._update_title()
        self._scroll_to_current()

    def action_next_match(self) -> None:
        """`n`: the next match."""
        self._step(1)

    def action_previous_match(self) -> None:
        """`N`: the previous match."""
        self._step(-1)
