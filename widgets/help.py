"""The help screen: every key, as in SPEC §6."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, str, str], ...] = (
    ("flow list", "enter", "the dialog of a paused flow, else its details"),
    ("flow list", "a", "continue the selected paused flow"),
    ("flow list", "A", "continue all paused flows"),
    ("flow list", "X", "cancel the selected paused flow (reject a certificate)"),
    ("flow list", "i", "set a breakpoint: match pattern or filter expression; empty clears"),
    ("flow list", "I", "breakpoints on/off"),
    ("flow list", "f", "filter the list: mitmproxy filter expression, or plain text"),
    ("flow list", "R", "the rules screen"),
    ("flow list", "E", "export: the flow as curl, all flows as HAR, the rules"),
    ("flow list", "z", "clear finished flows"),
    ("flow list", "w", "save all or the listed flows (mitmproxy's flow format)"),
    ("flow list", "q", "quit (asks first while flows are paused)"),
    ("details", "escape", "back to the flow list"),
    ("details", "v", "body view: auto, JSON, HTML/XML, form, image, hex, raw"),
    ("details", "/", "search the details; n / N: next / previous match"),
    ("anywhere", "?", "this help"),
    ("anywhere", "ctrl+p", "command palette"),
    ("request dialog", "c / x", "continue / cancel"),
    ("request dialog", "r / w", "redirect / rewrite to a URL"),
    ("request dialog", "m / e", "respond / edit the request"),
    ("auth dialog", "enter / x", "send the username and password / cancel"),
    ("certificate dialog", "y / n", "allow / reject"),
    ("dialogs", "1 2 3 4", "remember: once, this URL, this host, a pattern"),
    ("dialogs", "escape", "close; the flow stays paused"),
    ("rules screen", "space", "rule on/off"),
    ("rules screen", "d", "delete"),
    ("rules screen", "K / J", "move up / down"),
    ("rules screen", "enter", "edit"),
    ("rules screen", "s", "save an unsaved rule (a breakpoint) to the file"),
    ("rules screen", "escape", "back; every change is already saved"),
)
"""(where, key, what it does) for every key of the screen (SPEC §6)."""


def keys_table() -> Table:
    """The keys, grouped by where they work."""
    table = Table(box=None, padding=(0, 2), show_edge=False, show_header=False)
    table.add_column("key", style="bold", no_wrap=True, justify="right")
    table.add_column("does")
    where = None
    for place, key, does in KEYS:
        if place != where:
            if where is not None:
                table.add_row("", "")
            table.add_row(Text(place, style="bold underline", justify="left"), "")
            where = place
        table.add_row(key, does)
    return table


class HelpScreen(ModalScreen[None]):
    """Every key of the screen. `escape`, `q` or `?` closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close", id="waylay.help.close"),
    ]

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
            note += (
                "; then requests, responses and redirects get --ask-default, "
                "auth is cancelled and a bad certificate is rejected. "
                "escape, q or ? closes this help."
            )
            yield Static(Text(note), classes="help--note")

    def action_close(self) -> None:
        self.dismiss(None)
