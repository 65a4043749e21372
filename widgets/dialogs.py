"""The decision dialogs: one modal screen per paused event (docs/rules.md, docs/keys.md).

``dialog_for(view, controller)`` picks the dialog for ``view.paused.event``. Every dialog
shows what is paused, a countdown to the ``--ask-timeout`` outcome, the remember scope
and, when something is to be remembered, the rule that would be saved — before it is
saved. Single-key actions send at once when nothing is remembered; with a scope other
than "once" the first key shows the rule and ``enter`` (or the same key again) confirms.

``escape`` steps back: out of a form, out of a pending confirmation, then closes the
dialog. Closing never decides anything: the flow stays paused.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable, Iterable
from typing import ClassVar
from urllib.parse import urljoin, urlsplit

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import ContentSwitcher, Footer, Input, Label, Static, TextArea

from policies import MatchPatternError, compile_pattern
from policies.urls import url_error
from widgets import keys
from widgets.fields import Editor, Field
from widgets.format import header_value
from widgets.model import Answer, AuthFacts, Controller, FlowView, Headers, RememberScope

Clock = Callable[[], float]

__all__ = [
    "AuthDialog",
    "CertificateDialog",
    "DecisionDialog",
    "RedirectDialog",
    "RememberBar",
    "RequestDialog",
    "ResponseDialog",
    "check_http_url",
    "check_match_pattern",
    "dialog_for",
    "parse_header_lines",
]


# --------------------------------------------------------------------------- helpers


def check_http_url(text: str) -> str | None:
    """Why ``text`` is not an absolute http(s) URL with a host, or None when it is."""
    return url_error(text)


def check_match_pattern(text: str) -> str | None:
    """Why ``text`` is not a WebExtension match pattern (docs/rules.md), or None when it is one."""
    text = text.strip()
    if not text:
        return "type a match pattern, e.g. *://*.example.com/*"
    try:
        compile_pattern(text)
    except MatchPatternError as exc:
        return str(exc)
    return None


_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_COMMON_HEADERS = (
    "accept|age|allow|authorization|connection|cookie|date|etag|expect|expires|from|host|"
    "link|location|origin|pragma|range|referer|server|te|trailer|upgrade|vary|via|warning"
)
_SECOND_HEADER = re.compile(
    rf"(?:^|\s)((?:[A-Za-z0-9]+-)+[A-Za-z0-9]+|(?i:{_COMMON_HEADERS})):\s",
)
"""A header name followed by ": " inside a value: two headers pasted on one line.
Only names that look like headers (with a hyphen, or a common one-word name), so that a
value such as "note: see below" stays a value."""


def parse_header_lines(text: str) -> list[tuple[str, str]]:
    """Parse ``Name: value`` lines (blank lines skipped); ValueError names the bad line."""
    headers: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not _TOKEN.match(name):
            raise ValueError(f"header line {number}: expected 'Name: value', got {line!r}")
        second = _SECOND_HEADER.search(value)
        if second:
            raise ValueError(
                f"header line {number} holds two headers ({name} and {second.group(1)}): "
                "put each on its own line"
            )
        headers.append((name, value.strip()))
    return headers


def _status(text: str) -> int:
    """A response status typed in a form; ValueError says what is wrong with it."""
    raw = text.strip()
    try:
        status = int(raw)
    except ValueError:
        raise ValueError(f"status must be a number, got {raw!r}") from None
    if not 100 <= status <= 599:
        raise ValueError(f"status must be between 100 and 599, got {status}")
    return status


def _decode_body(body: bytes) -> str | None:
    """The body as text, or None when it is not text (binary or not UTF-8)."""
    if b"\x00" in body:
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _body_caption(shown: int, size: int) -> str:
    if size > shown:
        return f"first {shown} of {size} bytes"
    return f"{size} bytes"


def _body_renderable(body: bytes, size: int) -> Text:
    size = max(size, len(body))
    if size == 0:
        return Text("(no body)", style="dim")
    text = _decode_body(body)
    if text is None:
        return Text(f"({_body_caption(len(body), size)} of binary data)", style="dim")
    out = Text(text)
    if size > len(body):
        out.append(f"\n… ({_body_caption(len(body), size)})", style="dim")
    return out


def _headers_renderable(headers: Headers) -> RenderableType:
    if not headers:
        return Text("(none)", style="dim")
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in headers:
        table.add_row(Text(f"{name}:"), Text(value))
    return table


def _section(title: str) -> Text:
    return Text(f"\n{title}", style="bold underline")


def _format_left(seconds: float) -> str:
    seconds = max(0, math.ceil(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _detail(view: FlowView, label: str, default: str = "") -> str:
    """A ``paused.details`` value by label (case-insensitive)."""
    if view.paused is None:
        return default
    for name, value in view.paused.details:
        if name.lower() == label.lower():
            return value
    return default


# --------------------------------------------------------------------------- widgets


class RememberBar(Static):
    """Which rule a decision would leave behind: ``1`` once, ``2`` URL, ``3`` host, ``4`` pattern.

    Shows every scope the dialog offers with its key, the current one highlighted.
    """

    DEFAULT_CSS = """
    RememberBar {
        height: 1;
        width: 1fr;
        margin-top: 1;
    }
    """

    scope: reactive[RememberScope] = reactive("once")
    """The selected scope."""

    def __init__(self, choices: Iterable[tuple[str, RememberScope, str]], **kwargs) -> None:
        super().__init__(**kwargs)
        self.choices = tuple(choices)

    def render(self) -> Content:
        parts: list[Content | str] = [Content.styled("remember: ", "bold")]
        for key, scope, label in self.choices:
            if scope == self.scope:
                parts.append(Content.styled(f" {key} {label} ", "reverse bold"))
            else:
                parts.append(Content.styled(f" {key} ", "bold"))
                parts.append(Content(f"{label} "))
            parts.append(" ")
        return Content.assemble(*parts)


# --------------------------------------------------------------------------- base dialog


class DecisionDialog(ModalScreen[Answer | None]):
    """What every dialog shares: remember scope, rule preview, countdown, closing.

    The result (for ``push_screen`` callbacks) is the Answer that was accepted by the
    controller, or None when the dialog was closed or the flow ended elsewhere.
    """

    EVENT: ClassVar[str] = ""
    TITLE_TEXT: ClassVar[str] = ""
    TIMEOUT_OUTCOME: ClassVar[str] = ""
    """What happens at the deadline, when it does not depend on --ask-default."""
    DEFAULT_OUTCOMES: ClassVar[dict[str, str]] = {
        "continue": "then it continues",
        "cancel": "then it is cancelled",
    }
    """What --ask-default does at the deadline (`Controller.ask_default`), in words."""
    SCOPES: ClassVar[tuple[tuple[str, RememberScope, str], ...]] = (
        ("1", "once", "once"),
        ("2", "url", "this URL"),
        ("3", "host", "this host"),
        ("4", "pattern", "pattern"),
    )
    AUTO_FOCUS = "#summary"

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(keys.DIALOG)

    DEFAULT_CSS = """
    DecisionDialog {
        align: center middle;
    }
    DecisionDialog #frame {
        width: 96%;
        max-width: 140;
        height: 94%;
        overflow-y: auto;
        border: thick $primary;
        border-title-style: bold;
        background: $surface;
        padding: 0 1;
    }
    DecisionDialog #summary {
        height: 1fr;
        min-height: 3;
    }
    DecisionDialog #pattern {
        margin-top: 1;
    }
    DecisionDialog #preview {
        border: round $secondary;
        border-title-color: $secondary;
        max-height: 12;
        height: auto;
        padding: 0 1;
    }
    DecisionDialog #confirm {
        color: $warning;
        text-style: bold;
        height: auto;
    }
    DecisionDialog #error {
        color: $error;
        text-style: bold;
        height: auto;
    }
    DecisionDialog #summary {
        min-height: 4;
    }
    DecisionDialog > ToastRack {
        /* Over a dialog, only the newest toast shows, squeezed into the lines above the
           summary's end: it never covers a field someone is typing in. */
        dock: top;
        align: right top;
        margin: 0;
        max-height: 4;
        overflow: hidden hidden;
        & ToastHolder {
            display: none;
        }
        & ToastHolder:last-of-type {
            display: block;
        }
        & Toast {
            margin-top: 0;
            padding: 0 1;
            max-height: 4;
        }
    }
    """

    def __init__(self, view: FlowView, controller: Controller, *, clock: Clock = time.time):
        if view.paused is None:
            raise ValueError(f"flow {view.id} is not paused")
        super().__init__()
        self.view = view
        self.controller = controller
        self.clock = clock
        self._pending: Answer | None = None
        self._ended = False
        self._ended_note = ""
        self._shown = False
        self._dismiss_on_resume = False

    # -- identity ---------------------------------------------------------------------

    @property
    def flow_id(self) -> str:
        return self.view.id

    @property
    def event(self) -> str:
        return self.EVENT

    @property
    def scope(self) -> RememberScope:
        return self.query_one(RememberBar).scope

    @property
    def pattern(self) -> str:
        return self.query_one("#pattern", Input).value.strip()

    # -- layout -----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="frame"):
            with VerticalScroll(id="summary"):
                yield from self.compose_summary()
            yield from self.compose_forms()
            yield RememberBar(self.SCOPES, id="remember")
            if any(scope == "pattern" for _, scope, _ in self.SCOPES):
                yield Field(
                    placeholder="match pattern, e.g. *://*.example.com/*",
                    id="pattern",
                )
            yield Static(id="preview")
            yield Static(id="confirm")
            yield Static(id="error")
        yield Footer()

    def compose_summary(self) -> ComposeResult:
        """What is paused; lives in a scrollable pane."""
        yield from ()

    def compose_forms(self) -> ComposeResult:
        """Inputs between the summary and the remember bar."""
        yield from ()

    def on_mount(self) -> None:
        frame = self.query_one("#frame")
        frame.border_title = Content(self.TITLE_TEXT or f"⏸ {self.event}")
        for widget_id in ("#pattern", "#preview", "#confirm", "#error"):
            for widget in self.query(widget_id):
                widget.display = False
        self.query_one("#preview").border_title = "rule to be saved"
        self._shown = True
        self._tick()
        self.set_interval(1.0, self._tick)

    # -- countdown and the flow going away ------------------------------------------------

    def _tick(self) -> None:
        paused = self.view.paused
        if paused is None or not self._shown:
            return
        left = paused.deadline - self.clock()
        frame = self.query_one("#frame")
        if not math.isfinite(left):  # --ask-timeout none
            frame.border_subtitle = Content("⏱ no time limit")
        elif left <= 0:
            frame.border_subtitle = Content("⏱ timing out…")
        else:
            frame.border_subtitle = Content(
                f"⏱ {_format_left(left)} left, {self.timeout_outcome()}"
            )

    def timeout_outcome(self) -> str:
        """ "then it continues": what the deadline does, named."""
        if self.TIMEOUT_OUTCOME:
            return self.TIMEOUT_OUTCOME
        default = self.controller.ask_default
        return self.DEFAULT_OUTCOMES.get(str(default), "then it gets the timeout outcome")

    def flow_updated(self, view: FlowView) -> None:
        """A new snapshot of this dialog's flow: close when it is no longer paused here."""
        if view.id != self.flow_id or self._ended:
            return
        if view.paused is not None and view.paused.event == self.event:
            self.view = view
            self._tick()
            return
        self._ended = True
        self._ended_note = self._ended_message(view)
        if self._shown and self.is_active:
            self._close_ended()
        else:  # not shown yet, or under another screen: close when it comes back on top
            self._dismiss_on_resume = True

    def _close_ended(self) -> None:
        self.app.notify(self._ended_note, severity="warning", markup=False)
        self.dismiss(None)

    def _ended_message(self, view: FlowView) -> str:
        what = f"{self.view.method} {self.view.url}"
        if view.paused is not None:
            return f"{what}: flow moved on, now paused at {view.paused.event}"
        if view.state == "error" and view.error == "client gone":  # the proxy's client_gone
            return (
                f"{what}: the client stopped waiting (it disconnected or timed out); "
                "the flow was dropped"
            )
        if view.state == "error":
            return f"{what}: flow ended: {view.error or 'client disconnected'}"
        deadline = self.view.paused.deadline if self.view.paused else math.inf
        if self.clock() >= deadline - 1:
            return f"{what}: flow ended: timed out ({view.state_label})"
        return f"{what}: flow ended: decided elsewhere ({view.state_label})"

    def on_screen_resume(self) -> None:
        if self._dismiss_on_resume:
            self._dismiss_on_resume = False
            self._close_ended()

    # -- remember scope and preview ---------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "remember":
            return any(scope == parameters[0] for _, scope, _ in self.SCOPES)
        if action == "back":
            return self.can_step_back()
        return True

    def can_step_back(self) -> bool:
        """Whether escape has something to undo before it closes the dialog."""
        return self._pending is not None

    def action_remember(self, scope: RememberScope) -> None:
        bar = self.query_one(RememberBar)
        bar.scope = scope
        self.query_one("#error").display = False
        if self.query("#pattern"):
            pattern_input = self.query_one("#pattern", Input)
            pattern_input.display = scope == "pattern"
            pattern_input.border_title = "match pattern (enter keeps it)"
            if scope == "pattern":
                if not pattern_input.value:
                    pattern_input.value = self.suggested_pattern()
                pattern_input.focus()
            elif self.focused is pattern_input:
                self.focus_home()
        self.update_preview()

    def suggested_pattern(self) -> str:
        parts = urlsplit(self.view.url)
        return f"{parts.scheme}://{parts.hostname or self.view.host}/*"

    def focus_home(self) -> None:
        """Where focus goes back to after the pattern input."""
        self.query_one("#summary").focus()

    @on(Input.Changed, "#pattern")
    def _pattern_changed(self) -> None:
        self.update_preview()

    @on(Input.Submitted, "#pattern")
    def _pattern_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        error = check_match_pattern(event.value)
        if error:
            self.show_error(error)
            return
        self.query_one("#error").display = False
        self.focus_home()

    def with_scope(self, answer: Answer) -> Answer:
        scope = self.scope
        return dataclasses.replace(
            answer, remember=scope, pattern=self.pattern if scope == "pattern" else None
        )

    def candidate(self) -> Answer | None:
        """The answer the rule preview is about: a pending one, else what a form holds."""
        return self._pending

    def preview_hint(self) -> str:
        return "press an action key to see the rule that would be saved"

    def update_preview(self) -> None:
        preview = self.query_one("#preview", Static)
        confirm = self.query_one("#confirm", Static)
        scope = self.scope
        answer = self.candidate()
        if self._pending is not None:
            confirm.update(Content(self.confirm_text(self._pending)))
        confirm.display = self._pending is not None
        if scope == "once":
            preview.display = False
            return
        preview.display = True
        if answer is None:
            preview.update(Text(self.preview_hint(), style="dim italic"))
            return
        if scope == "pattern":
            error = check_match_pattern(self.pattern)
            if error:
                preview.update(Text(error, style="dim italic"))
                return
        try:
            text = self.controller.preview_rule(self.flow_id, self.event, self.with_scope(answer))
        except Exception as exc:  # the preview must never take the dialog down
            preview.update(Text(f"no preview: {exc}", style="italic"))
            return
        if not text:
            preview.update(Text("(no rule would be saved)", style="dim italic"))
            return
        preview.update(Text(text))

    def scrub(self, text: str) -> str:
        """Remove anything secret from a message about to be shown."""
        return text

    def confirm_text(self, answer: Answer) -> str:
        return f"enter (or the same key again): {answer.action} and save this rule · escape: back"

    # -- deciding ---------------------------------------------------------------------

    def choose(self, answer: Answer) -> None:
        """Send at once when nothing is remembered, else show the rule and wait for enter."""
        self.query_one("#error").display = False
        if self.scope == "once":
            self.send(answer)
            return
        if self._pending is not None and self._pending == answer:
            self.send(answer)
            return
        self._pending = answer
        self.update_preview()
        self.refresh_bindings()

    def action_decide(self, action: str) -> None:
        self.choose(Answer(action))

    def action_confirm(self) -> None:
        if self._pending is not None:
            self.send(self._pending)

    def send(self, answer: Answer) -> bool:
        """Hand the decision to the proxy; on success close, on error say why and stay."""
        if self._ended:
            return False
        answer = self.with_scope(answer)
        if answer.remember == "pattern":
            error = check_match_pattern(answer.pattern or "")
            if error:
                self.show_error(error)
                self.query_one("#pattern").focus()
                return False
        try:
            error = self.controller.answer(self.flow_id, self.event, answer)
        except Exception as exc:  # a failing bridge must not cost the user the dialog
            error = f"could not send the decision: {exc}"
        if error:
            self.show_error(error)
            return False
        self._ended = True
        self.dismiss(answer)
        return True

    def show_error(self, message: str) -> None:
        error = self.query_one("#error", Static)
        error.update(Text(self.scrub(message)))
        error.display = True

    def action_back(self) -> None:
        self._pending = None
        self.update_preview()
        self.refresh_bindings()

    def action_close(self) -> None:
        self._ended = True
        self.dismiss(None)


# --------------------------------------------------------------------------- request, response, redirect


class HttpDialog(DecisionDialog):
    """The request, response and redirect dialogs: the flow, its headers and body, forms."""

    FORMS: ClassVar[tuple[str, ...]] = ()
    """Which forms this event offers: redirect, rewrite, respond, edit."""

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(keys.FORMS)

    DEFAULT_CSS = """
    HttpDialog #forms {
        height: auto;
    }
    HttpDialog #decide {
        height: auto;
        color: $text-muted;
        margin-top: 1;
    }
    HttpDialog .form {
        height: auto;
        margin-top: 1;
    }
    HttpDialog .form Horizontal {
        height: auto;
    }
    HttpDialog .form Horizontal Input {
        width: 1fr;
    }
    HttpDialog .form Label {
        margin-top: 1;
        text-style: bold;
    }
    HttpDialog .form .field {
        height: auto;
        width: 1fr;
    }
    HttpDialog .form .field.-narrow {
        width: 16;
    }
    HttpDialog .form Input {
        background: $boost;
    }
    HttpDialog .form Horizontal Input {
        margin-right: 1;
    }
    HttpDialog .form TextArea {
        height: auto;
        min-height: 3;
        max-height: 10;
    }
    HttpDialog #respond-body, HttpDialog #edit-body {
        min-height: 5;
    }
    """

    mode: reactive[str] = reactive("decide", init=False)
    """"decide", or the name of the open form."""

    def compose_summary(self) -> ComposeResult:
        view = self.view
        line = Text.assemble((view.method, "bold"), " ", view.url)
        yield Static(line, id="request-line")
        facts = Text.assemble(
            ("type ", "dim"),
            view.type,
            ("   ", ""),
            view.http_version,
        )
        if view.paused and view.paused.details:
            for name, value in view.paused.details:
                facts.append(f"   {name} ", style="dim")
                facts.append(value)
        yield Static(facts, id="facts")
        yield Static(self._exchange(), id="exchange")

    def _exchange(self) -> RenderableType:
        view = self.view
        parts: list[RenderableType] = [
            _section("request headers"),
            _headers_renderable(view.request_headers),
            _section("request body"),
            _body_renderable(view.request_body, view.request_body_size),
        ]
        if self.EVENT in ("response", "redirect") and (view.status is not None):
            parts += [
                _section(f"response {view.status} {view.reason}".rstrip()),
                _headers_renderable(view.response_headers),
                _section("response body"),
                _body_renderable(view.response_body, view.size or 0),
            ]
        return Group(*parts)

    def compose_forms(self) -> ComposeResult:
        view = self.view
        with ContentSwitcher(initial="decide", id="forms"):
            yield Static(Content(self.decide_hint()), id="decide")
            with Vertical(id="url-form", classes="form"):
                yield Label("", id="url-label")
                yield Field(placeholder="https://…", id="url-input", compact=True)
            with Vertical(id="respond-form", classes="form"):
                yield Label("respond to the client with  (ctrl+s sends)", id="respond-title")
                with Horizontal():
                    with Vertical(classes="field -narrow"):
                        yield Label("status")
                        yield Field(
                            "200",
                            placeholder="status",
                            type="integer",
                            id="respond-status",
                            compact=True,
                        )
                    with Vertical(classes="field"):
                        yield Label("content type")
                        yield Field(
                            "text/plain; charset=utf-8",
                            placeholder="content type",
                            id="respond-type",
                            compact=True,
                        )
                yield from self.compose_respond_headers()
                yield Label("body")
                yield Editor("", id="respond-body", soft_wrap=True)
            if "upstream" in self.FORMS:
                yield from self.compose_upstream_form()
            if "edit" in self.FORMS:
                body = self._editable_body()
                with Vertical(id="edit-form", classes="form"):
                    yield Label("edit the request, then continue  (ctrl+s sends)")
                    with Horizontal():
                        with Vertical(classes="field -narrow"):
                            yield Label("method")
                            yield Field(
                                view.method, placeholder="method", id="edit-method", compact=True
                            )
                        with Vertical(classes="field"):
                            yield Label("URL")
                            yield Field(view.url, placeholder="URL", id="edit-url", compact=True)
                    yield Label("headers (one 'Name: value' per line)")
                    yield Editor(
                        "\n".join(f"{name}: {value}" for name, value in view.request_headers),
                        id="edit-headers",
                    )
                    if body is None:
                        yield Label(
                            f"body ({_body_caption(len(view.request_body), view.request_body_size)}"
                            ", not editable here: sent unchanged)"
                        )
                    else:
                        yield Label("body")
                    yield Editor(
                        body if body is not None else "",
                        id="edit-body",
                        soft_wrap=True,
                        read_only=body is None,
                    )

    def compose_upstream_form(self) -> ComposeResult:
        """`e` in the response dialog: upstream's response, editable."""
        view = self.view
        body = self._upstream_body()
        headers = [
            (name, value)
            for name, value in view.response_headers
            if name.lower() not in ("content-encoding", "transfer-encoding")
        ]
        with Vertical(id="upstream-form", classes="form"):
            yield Label("edit upstream's response, then pass it on  (ctrl+s sends)")
            with Horizontal():
                with Vertical(classes="field -narrow"):
                    yield Label("status")
                    yield Field(
                        str(view.status or 200),
                        placeholder="status",
                        type="integer",
                        id="upstream-status",
                        compact=True,
                    )
            yield Label("headers (one 'Name: value' per line)")
            yield Editor("\n".join(f"{n}: {v}" for n, v in headers), id="upstream-headers")
            if body is None:
                yield Label("body (not text, or not all of it is here: cannot be edited)")
            else:
                yield Label("body")
            yield Editor(body or "", id="upstream-body", soft_wrap=True, read_only=body is None)

    def _upstream_body(self) -> str | None:
        """Upstream's response body as text when all of it is here and it is text."""
        view = self.view
        if view.size is not None and view.size > len(view.response_body):
            return None
        return _decode_body(view.response_body)

    def compose_respond_headers(self) -> ComposeResult:
        """More response headers for the respond form (the response dialog's `e`)."""
        yield from ()

    def decide_hint(self) -> str:
        return keys.STAYS_PAUSED

    def _editable_body(self) -> str | None:
        """The request body as text when all of it is here and it is text."""
        view = self.view
        if view.request_body_size > len(view.request_body):
            return None
        return _decode_body(view.request_body)

    # -- modes ------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("decide", "open_form"):
            if action == "open_form" and parameters[0] not in self.FORMS:
                return False
            return self.mode == "decide"
        if action == "submit_form":
            return self.mode != "decide"
        return super().check_action(action, parameters)

    def action_open_form(self, form: str) -> None:
        self._pending = None
        self.mode = form

    def watch_mode(self, mode: str) -> None:
        switcher = self.query_one("#forms", ContentSwitcher)
        self.query_one("#error").display = False
        if mode in ("redirect", "rewrite"):
            switcher.current = "url-form"
            label = self.query_one("#url-label", Label)
            url_input = self.query_one("#url-input", Input)
            if mode == "redirect":
                label.update("redirect the client (307) to  (enter sends, escape goes back)")
            elif self.EVENT == "redirect":
                label.update("send the client to this Location instead  (enter sends)")
            else:
                label.update("send the request upstream to  (enter sends, escape goes back)")
            if not url_input.value:
                url_input.value = self.default_url(mode)
            url_input.focus()
        elif mode == "respond":
            switcher.current = "respond-form"
            self.query_one("#respond-status").focus()
        elif mode == "edit":
            switcher.current = "edit-form"
            self.query_one("#edit-url").focus()
        elif mode == "upstream":
            switcher.current = "upstream-form"
            self.query_one("#upstream-status").focus()
        else:
            switcher.current = "decide"
            self.focus_home()
        self.refresh_bindings()
        self.update_preview()

    def default_url(self, mode: str) -> str:
        return self.view.url

    def focus_home(self) -> None:
        targets = {
            "redirect": "#url-input",
            "rewrite": "#url-input",
            "respond": "#respond-status",
            "edit": "#edit-url",
            "upstream": "#upstream-status",
        }
        self.query_one(targets.get(self.mode, "#summary")).focus()

    def can_step_back(self) -> bool:
        return self.mode != "decide" or super().can_step_back()

    def action_back(self) -> None:
        if self.mode != "decide":
            self.mode = "decide"
            return
        super().action_back()

    # -- forms ------------------------------------------------------------------------

    def form_answer(self) -> Answer:
        """The open form as an Answer; ValueError says what is wrong with it."""
        mode = self.mode
        if mode in ("redirect", "rewrite"):
            url = self.query_one("#url-input", Input).value.strip()
            error = check_http_url(url)
            if error:
                raise ValueError(error)
            return Answer(mode, {"url": url})
        if mode == "respond":
            status = _status(self.query_one("#respond-status", Input).value)
            content_type = self.query_one("#respond-type", Input).value.strip()
            headers = [("Content-Type", content_type)] if content_type else []
            body = self.query_one("#respond-body", TextArea).text
            return Answer("respond", {"status": status, "headers": headers, "body": body})
        if mode == "edit":
            method = self.query_one("#edit-method", Input).value.strip().upper()
            if not re.fullmatch(r"[A-Z]+", method):
                raise ValueError(f"not an HTTP method: {method!r}")
            url = self.query_one("#edit-url", Input).value.strip()
            error = check_http_url(url)
            if error:
                raise ValueError(error)
            headers = parse_header_lines(self.query_one("#edit-headers", TextArea).text)
            params: dict = {"method": method, "url": url, "headers": headers}
            if self._editable_body() is not None:
                body = self.query_one("#edit-body", TextArea).text
                encoded = body.encode("utf-8")
                params["headers"] = [
                    (name, str(len(encoded)) if name.lower() == "content-length" else value)
                    for name, value in headers
                ]
                params["body"] = body
            return Answer("continue", params)
        if mode == "upstream":
            status = _status(self.query_one("#upstream-status", Input).value)
            headers = parse_header_lines(self.query_one("#upstream-headers", TextArea).text)
            if self._upstream_body() is None:
                raise ValueError("this body cannot be edited here: c passes it on unchanged")
            body = self.query_one("#upstream-body", TextArea).text
            length = str(len(body.encode("utf-8")))
            headers = [
                (name, length if name.lower() == "content-length" else value)
                for name, value in headers
            ]
            return Answer("respond", {"status": status, "headers": headers, "body": body})
        raise ValueError("no form is open")

    def candidate(self) -> Answer | None:
        if self.mode == "decide":
            return self._pending
        try:
            return self.form_answer()
        except ValueError:
            return None

    def preview_hint(self) -> str:
        if self.mode != "decide":
            try:
                self.form_answer()
            except ValueError as exc:
                return str(exc)
        return super().preview_hint()

    def action_submit_form(self) -> None:
        try:
            answer = self.form_answer()
        except ValueError as exc:
            self.show_error(str(exc))
            return
        self.send(answer)

    @on(
        Input.Submitted,
        "#url-input, #respond-status, #respond-type, #edit-method, #edit-url, #upstream-status",
    )
    def _form_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit_form()

    @on(
        Input.Changed,
        "#url-input, #respond-status, #respond-type, #edit-method, #edit-url, #upstream-status",
    )
    @on(TextArea.Changed)
    def _form_changed(self) -> None:
        if self.mode != "decide":
            self.query_one("#error").display = False
            self.update_preview()


class RequestDialog(HttpDialog):
    """A paused request (event ``request``): continue, cancel, redirect, rewrite, respond, edit."""

    EVENT = "request"
    FORMS = ("redirect", "rewrite", "respond", "edit")
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(keys.REQUEST_DIALOG)

    def decide_hint(self) -> str:
        return keys.hint(keys.REQUEST_DIALOG, keys.STAYS_PAUSED)


class ResponseDialog(HttpDialog):
    """A paused response (event ``response``): continue, cancel, respond."""

    EVENT = "response"
    FORMS = ("respond", "upstream")
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(keys.RESPONSE_DIALOG)

    def decide_hint(self) -> str:
        return keys.hint(keys.RESPONSE_DIALOG, keys.STAYS_PAUSED)


class RedirectDialog(HttpDialog):
    """A paused 3xx (event ``redirect``): follow, rewrite the Location, cancel."""

    EVENT = "redirect"
    FORMS = ("rewrite",)
    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(keys.REDIRECT_DIALOG)

    def decide_hint(self) -> str:
        location = _detail(self.view, "location") or "(no Location)"
        return f"Location: {location}\n" + keys.hint(keys.REDIRECT_DIALOG, keys.STAYS_PAUSED)

    def default_url(self, mode: str) -> str:
        """The Location (made absolute against the request URL), else the request URL."""
        view = self.view
        location = _detail(view, "location") or header_value(view.response_headers, "location")
        if location:
            location = urljoin(view.url, location.strip())
        return location if check_http_url(location) is None else view.url


# --------------------------------------------------------------------------- auth


class AuthDialog(DecisionDialog):
    """A 401/407 challenge (event ``auth``): credentials or cancel.

    ``enter`` with both fields filled sends the credentials; with one empty it moves to
    it. The password is never shown: not in the field, the preview, or any message.
    """

    EVENT = "auth"
    TIMEOUT_OUTCOME = "then the challenge passes to the client"
    AUTO_FOCUS = "#username"
    """Typing starts in the username: before, keys were lost until enter moved focus."""
    SCOPES = (("1", "once", "once"), ("3", "host", "this host + realm"))

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(keys.AUTH_DIALOG)

    DEFAULT_CSS = """
    AuthDialog #frame {
        height: auto;
        max-height: 94%;
    }
    AuthDialog #summary {
        height: auto;
        max-height: 12;
    }
    AuthDialog .field {
        height: auto;
    }
    AuthDialog .field Label {
        width: 12;
        padding-top: 1;
    }
    AuthDialog .field Input {
        width: 1fr;
    }
    AuthDialog #auth-hint {
        color: $text-muted;
        height: auto;
        margin-top: 1;
    }
    """

    def compose_summary(self) -> ComposeResult:
        view = self.view
        facts = view.paused.auth if view.paused is not None else None
        if facts is None:  # an auth pause always carries its facts; show what there is
            facts = AuthFacts(host=view.host, port=view.port, proxy=False, realm="", scheme="?")
        who = "the upstream proxy (407)" if facts.proxy else "the server (401)"
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        table.add_row("asked by", Text(who))
        table.add_row("host", Text(f"{facts.host}:{facts.port}"))
        table.add_row("realm", Text(facts.realm or "(none)"))
        table.add_row("scheme", Text(facts.scheme or "?"))
        table.add_row("URL", Text(f"{view.method} {view.url}"))
        if facts.attempt > 1:
            attempt = f"{facts.attempt} of {facts.max_attempts}"
            table.add_row("attempt", Text(f"{attempt} (the last credentials were refused)"))
        yield Static(table, id="challenge")

    def compose_forms(self) -> ComposeResult:
        with Horizontal(classes="field"):
            yield Label("username")
            yield Field(id="username")
        with Horizontal(classes="field"):
            yield Label("password")
            yield Field(id="password", password=True)
        yield Static(
            Content(
                "enter sends · shift+tab leaves the fields, then x passes the challenge to "
                "the client and 1 / 3 choose what to remember · escape closes"
            ),
            id="auth-hint",
        )

    def focus_home(self) -> None:
        username = self.query_one("#username", Input)
        password = self.query_one("#password", Input)
        (password if username.value and not password.value else username).focus()

    def _credentials(self) -> Answer:
        return Answer(
            "credentials",
            {
                "username": self.query_one("#username", Input).value,
                "password": self.query_one("#password", Input).value,
            },
        )

    def candidate(self) -> Answer | None:
        if self._pending is not None:
            return self._pending
        username = self.query_one("#username", Input).value
        if not username:
            return None
        # The rule holds the username and a secret's name, never the password: the
        # preview does not need it, so it never leaves the field for one.
        return Answer("credentials", {"username": username})

    def preview_hint(self) -> str:
        return "type a username to see the rule that would be saved"

    def confirm_text(self, answer: Answer) -> str:
        return "enter: cancel and save this rule · escape: back"

    def scrub(self, text: str) -> str:
        password = self.query_one("#password", Input).value
        return text.replace(password, "***") if password else text

    def action_confirm(self) -> None:
        if self._pending is not None:
            self.send(self._pending)
            return
        for field in self.query_one("#username", Input), self.query_one("#password", Input):
            if not field.value:
                field.focus()
                return
        self.send(self._credentials())

    @on(Input.Submitted, "#username, #password")
    def _field_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        username = self.query_one("#username", Input)
        password = self.query_one("#password", Input)
        if event.input is username and not password.value:
            password.focus()
            return
        if not username.value or not password.value:
            self.show_error("type both a username and a password")
            (username if not username.value else password).focus()
            return
        self.send(self._credentials())

    @on(Input.Changed, "#username, #password")
    def _fields_changed(self) -> None:
        self.query_one("#error").display = False
        self.update_preview()


# --------------------------------------------------------------------------- certificate


class CertificateDialog(DecisionDialog):
    """An upstream certificate that failed verification (event ``certificate``).

    A security decision, and marked as one. ``y`` allows, ``n`` rejects; ``2`` remembers
    the decision for exactly this certificate (a rule pinned to host and fingerprint).
    """

    EVENT = "certificate"
    TITLE_TEXT = "⚠ security decision: untrusted certificate"
    TIMEOUT_OUTCOME = "then rejected"
    SCOPES = (("1", "once", "once (this connection)"), ("2", "url", "always for this certificate"))

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(keys.CERTIFICATE_DIALOG)

    DEFAULT_CSS = """
    CertificateDialog #frame {
        height: auto;
        max-height: 94%;
        border: thick $error;
        border-title-color: $error;
        border-subtitle-color: $error;
    }
    CertificateDialog #summary {
        height: auto;
        max-height: 70vh;
    }
    CertificateDialog #warning {
        color: $error;
        text-style: bold;
        margin-bottom: 1;
    }
    """

    def compose_summary(self) -> ComposeResult:
        view = self.view
        cert = (view.paused.certificate if view.paused else None) or view.certificate
        if cert is None:
            yield Static(
                Text("The proxy sent no certificate details for this event.", style="bold"),
                id="warning",
            )
            return
        yield Static(
            Text(
                f"The certificate of {cert.host}:{cert.port} failed verification: {cert.reason}.\n"
                "Allowing it lets this connection through to a server whose identity could "
                "not be verified.",
            ),
            id="warning",
        )
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        table.add_row("problem", Text(cert.reason, style="bold"))
        table.add_row("server", Text(f"{cert.host}:{cert.port}"))
        table.add_row("subject", Text(cert.subject))
        table.add_row("issuer", Text(cert.issuer))
        table.add_row("names (SAN)", Text(", ".join(cert.sans) or "(none)"))
        table.add_row("valid from", Text(cert.not_before))
        table.add_row("valid until", Text(cert.not_after))
        table.add_row("SHA-256", Text(cert.fingerprint))
        chain = Text()
        for depth, subject in enumerate(cert.chain):
            if depth:
                chain.append("\n")
            chain.append(f"{'  ' * depth}{'└ ' if depth else ''}{subject}")
        table.add_row("chain", chain if cert.chain else Text("(leaf only)", style="dim"))
        table.add_row("request", Text(f"{view.method} {view.url}"))
        yield Static(table, id="certificate")

    def preview_hint(self) -> str:
        return "press y (allow) or n (reject) to see the rule that would be saved"

    def confirm_text(self, answer: Answer) -> str:
        key = "y" if answer.action == "allow" else "n"
        return (
            f"enter or {key}: {answer.action} and always do so for this certificate · escape: back"
        )


# --------------------------------------------------------------------------- entry point

_DIALOGS: dict[str, type[DecisionDialog]] = {
    "request": RequestDialog,
    "response": ResponseDialog,
    "redirect": RedirectDialog,
    "auth": AuthDialog,
    "certificate": CertificateDialog,
}


def dialog_for(
    view: FlowView, controller: Controller, *, clock: Clock = time.time
) -> DecisionDialog:
    """The dialog for the paused event of ``view``; ValueError when there is none."""
    if view.paused is None:
        raise ValueError(f"flow {view.id} is not paused")
    try:
        dialog = _DIALOGS[view.paused.event]
    except KeyError:
        raise ValueError(f"no dialog for the {view.paused.event!r} event") from None
    return dialog(view, controller, clock=clock)
