"""Small modal questions: one line of text, or yes/no."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from widgets.fields import Field

Check = Callable[[str], str | None]
"""Takes the text, returns an error message or None when it is fine."""


class InputPrompt(ModalScreen[str | None]):
    """Ask for one line of text; dismisses with the text, or None when cancelled.

    `live_check` runs as you type and only shows its error; `submit_check` runs on
    `enter` and may act (set a breakpoint, say): its error keeps the prompt open.

    | Key | Does |
    | :- | :- |
    | enter | submit |
    | escape | cancel |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="waylay.prompt.cancel"),
    ]

    DEFAULT_CSS = """
    InputPrompt {
        align: center middle;
        & > Vertical {
            width: 80%;
            max-width: 100;
            height: auto;
            padding: 1 2;
            background: $panel;
            border: round $primary;
        }
        & .prompt--title {
            text-style: bold;
            margin-bottom: 1;
        }
        & .prompt--help {
            color: $text-muted;
            margin-top: 1;
        }
        & #prompt-error {
            color: $text-error;
            text-style: bold;
            display: none;
            margin-top: 1;
        }
        & #prompt-error.-shown {
            display: block;
        }
    }
    """

    def __init__(
        self,
        title: str,
        *,
        value: str = "",
        placeholder: str = "",
        help: str = "",
        submit_check: Check | None = None,
        live_check: Check | None = None,
        name: str | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id)
        self.title_text = title
        self.initial_value = value
        self.placeholder = placeholder
        self.help_text = help
        self.submit_check = submit_check
        self.live_check = live_check
        self.error = ""
        """The error shown under the input, "" when none."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="prompt--title", markup=False)
            yield Field(
                value=self.initial_value,
                placeholder=self.placeholder,
                id="prompt-input",
            )
            yield Static("", id="prompt-error", markup=False)
            if self.help_text:
                yield Static(self.help_text, classes="prompt--help", markup=False)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def show_error(self, message: str | None) -> None:
        """Show an error under the input ("" or None hides it)."""
        self.error = message or ""
        widget = self.query_one("#prompt-error", Static)
        widget.update(self.error)
        widget.set_class(bool(self.error), "-shown")

    @on(Input.Changed, "#prompt-input")
    def _check_as_typed(self, event: Input.Changed) -> None:
        event.stop()
        if self.live_check is not None:
            self.show_error(self.live_check(event.value))

    @on(Input.Submitted, "#prompt-input")
    def _submit(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value
        error = self.submit_check(value) if self.submit_check is not None else None
        if error:
            self.show_error(error)
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmPrompt(ModalScreen[bool]):
    """Ask yes or no; dismisses with True for yes.

    | Key | Does |
    | :- | :- |
    | y | yes |
    | n, escape | no |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="waylay.confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="waylay.confirm.no"),
    ]

    DEFAULT_CSS = """
    ConfirmPrompt {
        align: center middle;
        & > Vertical {
            width: auto;
            min-width: 40;
            max-width: 90%;
            height: auto;
            padding: 1 2;
            background: $panel;
            border: round $warning;
        }
        & .confirm--message {
            margin-bottom: 1;
        }
        & Horizontal {
            height: auto;
            width: auto;
            align-horizontal: right;
        }
        & Button {
            margin-left: 2;
        }
    }
    """

    def __init__(
        self,
        message: str,
        *,
        yes: str = "Yes",
        no: str = "No",
        name: str | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id)
        self.message = message
        self.yes_label = yes
        self.no_label = no

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.message, classes="confirm--message", markup=False)
            with Horizontal():
                yield Button(f"{self.yes_label} (y)", id="confirm-yes", variant="warning")
                yield Button(f"{self.no_label} (n)", id="confirm-no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm-yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
