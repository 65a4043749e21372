"""The event log (`l`): the last lines of what happened in the proxy besides the rows —
proxy errors, rules reloads, decisions made by a timeout, clients that failed the TLS
handshake. The lines come from the proxy side through `Controller.event_log()`."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from widgets import keys
from widgets.format import clock_time
from widgets.model import Controller

LINES = 200

KIND_STYLES = {"error": "bold red", "tls": "bold yellow", "timeout": "yellow", "rules": "cyan"}


def log_text(lines: list[tuple[float, str, str]]) -> Text:
    if not lines:
        return Text("Nothing has happened yet.", style="dim italic")
    text = Text(no_wrap=False)
    for when, kind, message in lines:
        text.append(clock_time(when) + " ", style="dim")
        text.append(f"{kind:<8}", style=KIND_STYLES.get(kind, "bold"))
        text.append(message + "\n")
    return text


class EventLogScreen(ModalScreen[None]):
    """The last `LINES` events, newest at the bottom; refreshed every second."""

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(keys.EVENT_LOG)

    DEFAULT_CSS = """
    EventLogScreen {
        align: center middle;
        & > VerticalScroll {
            width: 96%;
            height: 90%;
            padding: 0 1;
            background: $panel;
            border: round $primary;
            border-title-color: $text-accent;
            border-title-style: bold;
        }
    }
    """

    def __init__(self, controller: Controller) -> None:
        super().__init__()
        self.controller = controller
        self._shown: list[tuple[float, str, str]] | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = f"waylay — event log (the last {LINES} lines)"
            yield Static(id="event-lines")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(1.0, self.reload)

    @property
    def lines(self) -> list[tuple[float, str, str]]:
        return list(self._shown or [])

    def reload(self) -> None:
        lines = list(self.controller.event_log(LINES))
        if lines == self._shown:
            return
        self._shown = lines
        self.query_one("#event-lines", Static).update(log_text(lines))
        self.query_one(VerticalScroll).scroll_end(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
