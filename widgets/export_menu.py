"""The export menu (``E`` in the flow list, docs/keys.md).

What can be exported: the selected flow as a curl command, all flows or the listed
(filtered) ones as HAR 1.2, and the rules as TOML, JSON, Chrome declarativeNetRequest or
mitmproxy options. ``enter`` writes the choice to a new file in the current folder (its
name, ``waylay-YYYYMMDD-HHMMSS…``, is shown when done); ``c`` copies it to the clipboard
instead (curl and rules; a HAR goes to a file). Rules that a format cannot express are
named in a warning.

All the work goes through the controller (the proxy side); this module never imports
mitmproxy. Exports run in a thread worker so a large HAR does not freeze the screen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from widgets.model import Controller, older_to_write

__all__ = ["ExportChoice", "ExportMenu", "CHOICES"]


@dataclass(frozen=True)
class ExportChoice:
    """One line of the menu."""

    id: str
    label: str
    suffix: str
    """The end of the generated file name."""
    clipboard: bool = True


CHOICES: tuple[ExportChoice, ...] = (
    ExportChoice("curl", "Selected flow as a curl command", "-curl.sh"),
    ExportChoice("har-all", "All flows as HAR 1.2", ".har", clipboard=False),
    ExportChoice("har-listed", "Listed flows as HAR 1.2", "-listed.har", clipboard=False),
    ExportChoice("rules-toml", "Rules as TOML (the rules file's format)", "-rules.toml"),
    ExportChoice("rules-json", "Rules as JSON (same schema)", "-rules.json"),
    ExportChoice("rules-dnr", "Rules as Chrome declarativeNetRequest JSON", "-dnr.json"),
    ExportChoice("rules-mitmproxy", "Rules as mitmproxy options (config.yaml)", "-mitmproxy.yaml"),
)
_BY_ID = {choice.id: choice for choice in CHOICES}


class ExportMenu(ModalScreen[str | None]):
    """Choose what to export; dismisses with the file written, "clipboard", or None.

    | Key | Does |
    | :- | :- |
    | up, down | choose |
    | enter | write it to a new file in the current folder |
    | c | copy it to the clipboard instead |
    | escape | close |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="waylay.export.close"),
        Binding("c", "copy", "Copy", id="waylay.export.copy"),
    ]

    DEFAULT_CSS = """
    ExportMenu {
        align: center middle;
        & > Vertical {
            width: 70;
            max-width: 90%;
            height: auto;
            padding: 1 2;
            background: $panel;
            border: round $primary;
        }
        & .export--title {
            text-style: bold;
            margin-bottom: 1;
        }
        & OptionList {
            height: auto;
            max-height: 12;
        }
        & .export--help {
            color: $text-muted;
            margin-top: 1;
        }
        & #export-status {
            color: $text-warning;
            display: none;
            margin-top: 1;
        }
        & #export-status.-shown {
            display: block;
        }
    }
    """

    def __init__(
        self,
        controller: Controller,
        selected_flow_id: str | None = None,
        visible_flow_ids: list[str] | None = None,
        *,
        rules_source: Any = None,
        older: tuple[int, int] = (0, 0),
        filter_text: str = "",
        directory: Path | None = None,
        clock: Any = time.localtime,
        name: str | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id)
        self.controller = controller
        self.selected_flow_id = selected_flow_id
        self.visible_flow_ids = list(visible_flow_ids) if visible_flow_ids is not None else None
        """The flows the list shows (its filter applied), or None when not known."""
        self.rules_source = rules_source
        self.older_all, self.older_listed = older
        """Flows kept only in the session file: how many in all, how many listed."""
        self.filter_text = filter_text
        self.directory = directory
        """Where files go; None: the current folder at the time of the export."""
        self.clock = clock
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Export", classes="export--title")
            yield OptionList(*self._options(), id="export-options")
            yield Static("", id="export-status", markup=False)
            yield Static(
                "enter: save to a file in the current folder · c: copy to the clipboard · "
                "escape: close",
                classes="export--help",
                markup=False,
            )

    def _options(self) -> list[Option]:
        options = []
        for choice in CHOICES:
            label = choice.label
            disabled = False
            if choice.id == "curl" and self.selected_flow_id is None:
                label += " (no flow selected)"
                disabled = True
            if choice.id == "har-all" and self.older_all:
                label += f" (with the session file's {self.older_all:,} older ones)"
            if choice.id == "har-listed":
                if self.visible_flow_ids is None:
                    disabled = True
                else:
                    count = len(self.visible_flow_ids) + self.older_listed
                    label += f" ({count:,} flow{'s' if count != 1 else ''})"
                    disabled = count == 0
            options.append(Option(label, id=choice.id, disabled=disabled))
        return options

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    # -- actions ------------------------------------------------------------------------

    def action_close(self) -> None:
        if not self.busy:
            self.dismiss(None)

    def action_copy(self) -> None:
        choice = self._highlighted()
        if choice is None or self.busy:
            return
        if not choice.clipboard:
            self._show("A HAR goes to a file (press enter); it is too big for the clipboard.")
            return
        self._start(choice, to_clipboard=True)

    @on(OptionList.OptionSelected, "#export-options")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        choice = _BY_ID.get(event.option.id or "")
        if choice is not None and not self.busy:
            self._start(choice, to_clipboard=False)

    def _highlighted(self) -> ExportChoice | None:
        options = self.query_one(OptionList)
        if options.highlighted is None:
            return None
        option = options.get_option_at_index(options.highlighted)
        if option.disabled:
            return None
        return _BY_ID.get(option.id or "")

    def _show(self, message: str) -> None:
        status = self.query_one("#export-status", Static)
        status.update(message)
        status.set_class(bool(message), "-shown")

    def _start(self, choice: ExportChoice, *, to_clipboard: bool) -> None:
        self.busy = True
        self._show("Exporting…")
        target = None if to_clipboard else self._new_path(choice)
        self._export(choice, target)

    def _new_path(self, choice: ExportChoice) -> Path:
        folder = self.directory if self.directory is not None else Path.cwd()
        stamp = time.strftime("%Y%m%d-%H%M%S", self.clock())
        path = folder / f"waylay-{stamp}{choice.suffix}"
        n = 2
        while path.exists():
            path = folder / f"waylay-{stamp}-{n}{choice.suffix}"
            n += 1
        return path

    # -- the work (a thread: the controller may wait for the proxy) ------------------------

    @work(thread=True, exclusive=True, group="export")
    def _export(self, choice: ExportChoice, target: Path | None) -> None:
        try:
            text, warnings, count = self._produce(choice, target)
        except Exception as exc:  # the controller's message is for people
            self.app.call_from_thread(self._failed, f"Export failed: {exc}")
            return
        if target is not None and text is not None:
            try:
                with open(target, "x", encoding="utf-8") as handle:
                    handle.write(text)
            except OSError as exc:
                self.app.call_from_thread(
                    self._failed, f"Cannot write {target}: {exc.strerror or exc}"
                )
                return
        self.app.call_from_thread(self._finished, choice, target, text, warnings, count)

    def _produce(
        self, choice: ExportChoice, target: Path | None
    ) -> tuple[str | None, list[str], int | None]:
        if choice.id == "curl":
            assert self.selected_flow_id is not None
            return self.controller.export_curl(self.selected_flow_id) + "\n", [], None
        if choice.id.startswith("har"):
            assert target is not None
            listed = choice.id == "har-listed"
            older = older_to_write(listed, self.filter_text, (self.older_all, self.older_listed))
            ids = self.visible_flow_ids if listed else None
            return None, [], self.controller.export_har(str(target), ids, older)
        fmt = choice.id.removeprefix("rules-")
        text, warnings = self.controller.export_rules(fmt)
        return text, list(warnings), None

    def _failed(self, message: str) -> None:
        self.busy = False
        self._show(message)
        self.notify(message, severity="error", markup=False)

    def _finished(
        self,
        choice: ExportChoice,
        target: Path | None,
        text: str | None,
        warnings: list[str],
        count: int | None,
    ) -> None:
        self.busy = False
        if target is None:
            assert text is not None
            self.app.copy_to_clipboard(text)
            done = f"{choice.label} copied to the clipboard."
        else:
            what = f" ({count} flow{'s' if count != 1 else ''})" if count is not None else ""
            done = f"Wrote {target}{what}."
        self.notify(done, markup=False)
        left_out = [w for w in warnings if not w.startswith("note:")]
        if left_out:
            shown = "\n".join(left_out[:5])
            more = f"\n… and {len(left_out) - 5} more" if len(left_out) > 5 else ""
            count_text = f"{len(left_out)} rule{'s' if len(left_out) != 1 else ''}"
            self.notify(
                f"{count_text} not in this format:\n{shown}{more}",
                severity="warning",
                timeout=15,
                markup=False,
            )
        self.dismiss("clipboard" if target is None else str(target))
