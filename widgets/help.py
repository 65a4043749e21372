"""The help screen: every key, from the tables in ``widgets.keys``."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from widgets import keys


def keys_table() -> Table:
    """The keys, grouped by where they work."""
    table = Table(box=None, padding=(0, 2), show_edge=False, show_header=False)
    table.add_column("key", style="bold", no_wrap=True, justify="right")
    table.add_column("does")
    for n, (place, section) in enumerate(keys.HELP_SECTIONS):
        if n:
            table.add_row("", "")
        table.add_row(Text(place, style="bold underline", justify="left"), "")
        for key in section:
            table.add_row(key.key_text, key.words)
    return table


class HelpScreen(ModalScreen[None]):
    """Every key of the screen. `escape`, `q` or `?` closes it."""

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(keys.HELP)

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        & > VerticalScroll {
            width: 90%;
            max-width: 110;
            height: auto;
            max-height: 90%;
            padding: 1 2;
            background: $panel;
            border: round $primary;
            border-title-color: $text-accent;
            border-title-style: bold;
        }
        & .help--note {
            color: $text-muted;
            margin-top: 1;
        }
    }
    """

    def __init__(self, *, ask_timeout: float | None = None) -> None:
        super().__init__()
        self.ask_timeout = ask_timeout

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "waylay — keys"
            yield Static(keys_table(), id="help-keys")
            note = "A paused flow waits for you"
            if self.ask_timeout:
                note += f" at most {self.ask_timeout:g} s"
            elif self.ask_timeout is None:
                note += " with no time limit (--ask-timeout none)"
            note += (
                "; then requests, responses and redirects get --ask-default, "
                "auth is cancelled and a bad certificate is rejected. "
                "escape, q or ? closes this help."
            )
            yield Static(Text(note), classes="help--note")

    def action_close(self) -> None:
        self.dismiss(None)
