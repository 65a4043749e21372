"""Duplicate and edit (`D`): a copy of a flow's request in a form; sending makes a new
flow through the proxy (rules apply), the original stays as it was."""

from __future__ import annotations

import re
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, Static, TextArea

from widgets import keys
from widgets.dialogs import check_http_url, parse_header_lines
from widgets.fields import Editor, Field
from widgets.model import Controller, FlowView


def editable_body(view: FlowView) -> str | None:
    """The request body as text when all of it is here and it is text."""
    if view.request_body_size > len(view.request_body) or b"\x00" in view.request_body:
        return None
    try:
        return view.request_body.decode("utf-8")
    except UnicodeDecodeError:
        return None


class RequestEditor(ModalScreen[str | None]):
    """The request of `view`, editable; `ctrl+s` (or enter in a line field) sends it as a
    new flow. The result is the id of the flow it was copied from, or None."""

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(keys.REQUEST_EDITOR)

    DEFAULT_CSS = """
    RequestEditor {
        align: center middle;
        & > #frame {
            width: 96%;
            max-width: 140;
            height: auto;
            max-height: 94%;
            border: thick $primary;
            border-title-style: bold;
            background: $surface;
            padding: 0 1;
        }
        & Label {
            margin-top: 1;
            text-style: bold;
        }
        & Horizontal {
            height: auto;
        }
        & .field {
            height: auto;
            width: 1fr;
        }
        & .field.-narrow {
            width: 16;
        }
        & Input {
            background: $boost;
            margin-right: 1;
        }
        & TextArea {
            height: auto;
            min-height: 3;
            max-height: 10;
        }
        & #editor-error {
            color: $error;
            text-style: bold;
            height: auto;
        }
    }
    """

    def __init__(self, view: FlowView, controller: Controller) -> None:
        super().__init__()
        self.view = view
        self.controller = controller
        self.body = editable_body(view)

    def compose(self) -> ComposeResult:
        view = self.view
        with Vertical(id="frame"):
            with Horizontal():
                with Vertical(classes="field -narrow"):
                    yield Label("method")
                    yield Field(view.method, id="editor-method", compact=True)
                with Vertical(classes="field"):
                    yield Label("URL")
                    yield Field(view.url, id="editor-url", compact=True)
            yield Label("headers (one 'Name: value' per line)")
            yield Editor(
                "\n".join(f"{name}: {value}" for name, value in view.request_headers),
                id="editor-headers",
            )
            if self.body is None:
                yield Label("body (not text or not all kept: sent unchanged)")
            else:
                yield Label("body")
            yield Editor(
                self.body or "", id="editor-body", soft_wrap=True, read_only=self.body is None
            )
            yield Static(
                Content("ctrl+s sends a new flow through the proxy · escape closes"),
                id="editor-hint",
            )
            yield Static(id="editor-error")
        yield Footer()

    def on_mount(self) -> None:
        frame = self.query_one("#frame")
        frame.border_title = Content(f"duplicate #{self.view.seq} and edit")
        self.query_one("#editor-error").display = False
        self.query_one("#editor-url").focus()

    def changes(self) -> dict:
        """The form as `Controller.send_request` changes; ValueError says what is wrong."""
        method = self.query_one("#editor-method", Input).value.strip().upper()
        if not re.fullmatch(r"[A-Z]+", method):
            raise ValueError(f"not an HTTP method: {method!r}")
        url = self.query_one("#editor-url", Input).value.strip()
        if error := check_http_url(url):
            raise ValueError(error)
        headers = parse_header_lines(self.query_one("#editor-headers", TextArea).text)
        changes: dict = {"method": method, "url": url, "headers": headers}
        if self.body is not None:
            body = self.query_one("#editor-body", TextArea).text
            length = str(len(body.encode("utf-8")))
            changes["headers"] = [
                (name, length if name.lower() == "content-length" else value)
                for name, value in headers
            ]
            changes["body"] = body
        return changes

    def show_error(self, message: str) -> None:
        error = self.query_one("#editor-error", Static)
        error.update(Content(message))
        error.display = True

    def action_send(self) -> None:
        try:
            changes = self.changes()
        except ValueError as exc:
            self.show_error(str(exc))
            return
        error = self.controller.send_request(self.view.id, changes)
        if error:
            self.show_error(error)
            return
        self.dismiss(self.view.id)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_send()

    def action_close(self) -> None:
        self.dismiss(None)
