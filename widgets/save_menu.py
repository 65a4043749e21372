"""Save flows in mitmproxy's flow format (``w`` in the flow list).

Which flows: all of them, or (while the list is filtered) only the listed ones. Where: a
file name, prefilled with a new ``waylay-YYYYMMDD-HHMMSS.flows`` in the current folder.
``mitmproxy -r FILE`` and ``waylay open FILE`` read it. The work goes through the
controller in a thread worker; this module never imports mitmproxy.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from widgets.fields import Field
from widgets.model import Controller, older_to_write

__all__ = ["SaveFlowsMenu", "new_flow_file"]


def new_flow_file(folder: Path, clock: Any = time.localtime) -> Path:
    """A file name in ``folder`` that does not exist yet."""
    stamp = time.strftime("%Y%m%d-%H%M%S", clock())
    path = folder / f"waylay-{stamp}.flows"
    n = 2
    while path.exists():
        path = folder / f"waylay-{stamp}-{n}.flows"
        n += 1
    return path


def _flows(n: int) -> str:
    return f"{n} flow{'' if n == 1 else 's'}"


class SaveFlowsMenu(ModalScreen[str | None]):
    """Choose all or the listed flows and a file; dismisses with the file written or None.

    | Key | Does |
    | :- | :- |
    | up, down | all or listed flows (while the list is filtered) |
    | enter | save |
    | escape | close |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="waylay.save.close"),
    ]

    DEFAULT_CSS = """
    SaveFlowsMenu {
        align: center middle;
        & > Vertical {
            width: 80;
            max-width: 95%;
            height: auto;
            padding: 1 2;
            background: $panel;
            border: round $primary;
        }
        & .save--title {
            text-style: bold;
            margin-bottom: 1;
        }
        & OptionList {
            height: auto;
            max-height: 4;
            margin-bottom: 1;
        }
        & .save--help {
            color: $text-muted;
            margin-top: 1;
        }
        & #save-status {
            color: $text-warning;
            display: none;
            margin-top: 1;
        }
        & #save-status.-shown {
            display: block;
        }
    }
    """

    def __init__(
        self,
        controller: Controller,
        *,
        total: int,
        listed: list[str] | None = None,
        filter_text: str = "",
        older: tuple[int, int] = (0, 0),
        directory: Path | None = None,
        clock: Any = time.localtime,
        name: str | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id)
        self.controller = controller
        self.total = total
        self.listed = list(listed) if listed is not None and filter_text else None
        """The listed flows' ids while a filter is on, else None (all flows are listed)."""
        self.filter_text = filter_text
        self.older_all, self.older_listed = older
        """Flows kept only in the session file: how many in all, how many listed."""
        self.path = new_flow_file(directory if directory is not None else Path.cwd(), clock)
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Save flows (mitmproxy's flow format)", classes="save--title")
            if self.listed is not None:
                yield OptionList(
                    Option(
                        f"Listed flows ({_flows(len(self.listed) + self.older_listed)}, "
                        f"filter {self.filter_text})",
                        id="listed",
                    ),
                    Option(f"All flows ({_flows(self.total + self.older_all)})", id="all"),
                    id="save-which",
                )
            else:
                yield Static(f"All flows ({_flows(self.total + self.older_all)})", markup=False)
            yield Field(str(self.path), id="save-path")
            yield Static("", id="save-status", markup=False)
            yield Static(
                "enter: save · escape: close · mitmproxy -r FILE and waylay open FILE read it",
                classes="save--help",
                markup=False,
            )

    def on_mount(self) -> None:
        self.query_one("#save-path", Input).focus()

    @property
    def which(self) -> str:
        """ "listed" or "all"."""
        if self.listed is None:
            return "all"
        options = self.query_one("#save-which", OptionList)
        if options.highlighted is None:
            return "listed"
        return options.get_option_at_index(options.highlighted).id or "listed"

    def action_close(self) -> None:
        if not self.busy:
            self.dismiss(None)

    @on(OptionList.OptionSelected, "#save-which")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.query_one("#save-path", Input).focus()

    @on(Input.Submitted, "#save-path")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.busy:
            return
        text = event.value.strip()
        if not text:
            self._show("Enter a file name.")
            return
        path = Path(text).expanduser()
        if path.is_dir():
            self._show(f"{path} is a folder; enter a file name.")
            return
        if not path.parent.is_dir():
            self._show(f"The folder {path.parent} does not exist.")
            return
        self.busy = True
        self._show("Saving…")
        listed = self.which == "listed"
        older = older_to_write(listed, self.filter_text, (self.older_all, self.older_listed))
        self._save(str(path), self.listed if listed else None, older)

    def _show(self, message: str) -> None:
        status = self.query_one("#save-status", Static)
        status.update(message)
        status.set_class(bool(message), "-shown")

    @work(thread=True, exclusive=True, group="save")
    def _save(self, path: str, flow_ids: list[str] | None, older: str | None) -> None:
        try:
            count = self.controller.save_flows(path, flow_ids, older)
        except Exception as exc:  # the controller's message is for people
            message = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            self.app.call_from_thread(self._failed, f"Cannot save to {path}: {message}")
            return
        self.app.call_from_thread(self._finished, path, count)

    def _failed(self, message: str) -> None:
        self.busy = False
        self._show(message)
        self.notify(message, severity="error", markup=False)

    def _finished(self, path: str, count: int) -> None:
        self.busy = False
        self.notify(f"Saved {_flows(count)} to {path}.", markup=False)
        self.dismiss(path)
