"""The rules screen (docs/keys.md): every rule in precedence order, with its hits; enable,
disable, edit, delete, reorder — each change saved at once by the ``RulesFile``.

The screen never writes the file itself: it calls the rules source's edit methods, which
save atomically and refuse (``RulesFileError``) while the file is broken. A refusal is an
error toast, and nothing changes. The app calls ``refresh_rules()`` when the file reloads
(the watcher runs in a thread: use ``call_from_thread``) and whenever hits may have moved.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import ValidationError
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import Checkbox, DataTable, Footer, Input, Label, Select, Static

from policies import ACTIONS_BY_EVENT, Rule, RulesFile, RulesFileError
from policies.describe import action_summary, conditions_summary
from policies.model import problems_from_validation_error
from widgets import keys
from widgets.fields import Field

__all__ = ["ConfirmDelete", "RuleEditor", "RulesScreen", "rule_conditions", "rule_outcome"]

TRANSIENT_MARK = "●"
COLUMNS = (  # the long, variable columns last, so a narrow terminal cuts those first
    ("mark", ""),
    ("id", "id"),
    ("enabled", "on"),
    ("event", "event"),
    ("priority", "prio"),
    ("hits", "hits"),
    ("times", "left"),
    ("action", "action"),
    ("conditions", "conditions"),
)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rule_conditions(rule: Rule) -> str:
    """A rule's conditions on one line: ``*://*.example.com/*  GET  types script``."""
    return conditions_summary(rule, "  ")


def rule_outcome(rule: Rule) -> str:
    """What a rule does: ``rewrite → https://…``, ``respond 404``, ``credentials alice …``."""
    return action_summary(rule)


def _cell_signature(cell: Text) -> tuple[str, str, str | None]:
    # Text.__eq__ ignores the base style, which is what dims a disabled rule
    return cell.plain, str(cell.style), cell.justify


def _display_path(path: Path) -> str:
    home = os.environ.get("HOME")
    text = str(path)
    if home:
        home = home.rstrip("/")
        if text == home or text.startswith(home + "/"):
            return "~" + text[len(home) :]
    return text


def describe_error(exc: BaseException) -> str:
    """A person-readable reason for a refused edit."""
    if isinstance(exc, ValidationError):
        problems = problems_from_validation_error(exc)
        return "\n".join(
            f"{'.'.join(map(str, loc))}: {message}" if loc else message for loc, message in problems
        )
    if isinstance(exc, KeyError):
        return f"rule {exc.args[0]!r} no longer exists (the file changed?)"
    return str(exc)


# --------------------------------------------------------------------------- confirmation


class ConfirmDelete(ModalScreen[bool]):
    """Asks before a rule is deleted: ``y``/``enter`` deletes, ``n``/``escape`` keeps it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "delete", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "keep", id="confirm.no"),
    ]

    DEFAULT_CSS = """
    ConfirmDelete {
        align: center middle;
    }
    ConfirmDelete > Vertical {
        width: auto;
        max-width: 80%;
        height: auto;
        border: thick $error;
        background: $surface;
        padding: 1 2;
    }
    ConfirmDelete #question {
        width: auto;
    }
    ConfirmDelete #keys {
        margin-top: 1;
        color: $text-muted;
        width: auto;
    }
    """

    def __init__(self, rule: Rule) -> None:
        super().__init__()
        self.rule = rule

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                Text.assemble(
                    "Delete rule ",
                    (self.rule.id, "bold"),
                    f" ({self.rule.event}: {rule_outcome(self.rule)})?\n",
                    "It is removed from the rules file at once.",
                ),
                id="question",
            )
            yield Static(Content("y delete · n keep"), id="keys")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


# --------------------------------------------------------------------------- editor


def _split_list(text: str) -> tuple[str, ...] | None:
    items = tuple(part.strip() for part in text.split(",") if part.strip())
    return items or None


class RuleEditor(ModalScreen[bool]):
    """A form for one rule's fields; ``ctrl+s`` (or ``enter`` in a field) saves through
    ``RulesFile.update`` and shows its validation errors inline, ``escape`` leaves."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "save", id="editor.save"),
        Binding("escape", "cancel", "cancel", id="editor.cancel"),
    ]

    DEFAULT_CSS = """
    RuleEditor {
        align: center middle;
    }
    RuleEditor #form {
        width: 90%;
        max-width: 110;
        height: auto;
        max-height: 95%;
        border: thick $primary;
        border-title-style: bold;
        background: $surface;
        padding: 0 1;
    }
    RuleEditor #fields {
        height: auto;
        max-height: 100%;
    }
    RuleEditor .row {
        height: auto;
        margin-top: 1;
    }
    RuleEditor .row Label {
        width: 12;
        text-style: bold;
    }
    RuleEditor .row Input, RuleEditor .row Select {
        width: 1fr;
    }
    RuleEditor .row Input {
        background: $boost;
    }
    RuleEditor .row Checkbox {
        width: auto;
    }
    RuleEditor #fixed {
        color: $text-muted;
        height: auto;
    }
    RuleEditor #error {
        color: $error;
        text-style: bold;
        height: auto;
    }
    """

    def __init__(self, rules_source: RulesFile, rule: Rule) -> None:
        super().__init__()
        self.rules_source = rules_source
        self.rule = rule

    def compose(self) -> ComposeResult:
        rule = self.rule
        actions = ACTIONS_BY_EVENT.get(rule.event, (rule.action,))
        if rule.action not in actions:
            actions = (*actions, rule.action)
        with Vertical(id="form"):
            with VerticalScroll(id="fields"):
                fixed = Text.assemble(("event ", "bold"), rule.event)
                other = [
                    f"{name} {getattr(rule, name)!r}"
                    for name in ("regex", "filter", "realm", "fingerprint", "username", "secret")
                    if getattr(rule, name, None) is not None
                ]
                if other:
                    fixed.append("   " + "   ".join(other))
                yield Static(fixed, id="fixed")
                yield from self._row(
                    "urls", ", ".join(rule.urls), "match patterns, comma separated"
                )
                yield from self._row(
                    "methods", ", ".join(rule.methods or ()), "GET, POST (empty: any)"
                )
                yield from self._row(
                    "types", ", ".join(rule.types or ()), "script, image (empty: any)"
                )
                with Horizontal(classes="row"):
                    yield Label("action")
                    yield Select(
                        [(name, name) for name in actions],
                        value=rule.action,
                        allow_blank=False,
                        id="action",
                        compact=True,
                    )
                yield from self._row("url", rule.url or "", "redirect/rewrite target")
                yield from self._row(
                    "priority", str(rule.priority), "higher decides first", type="integer"
                )
                with Horizontal(classes="row"):
                    yield Label("enabled")
                    yield Checkbox("(space toggles)", rule.enabled, id="enabled", compact=True)
                yield from self._row(
                    "times",
                    "" if rule.times is None else str(rule.times),
                    "applies this many more times (empty: no limit)",
                    type="integer",
                )
                yield from self._row("note", rule.note or "", "")
            yield Static(id="error")
        yield Footer()

    def _row(
        self,
        name: str,
        value: str,
        placeholder: str,
        type: Literal["integer", "number", "text"] = "text",
    ) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label(name)
            yield Field(
                value,
                placeholder=placeholder,
                id=name,
                type=type,
                compact=True,
            )

    def on_mount(self) -> None:
        self.query_one("#form").border_title = Content(f"edit rule {self.rule.id}")
        self.query_one("#error").display = False
        self.query_one("#urls").focus()

    def changes(self) -> dict[str, Any]:
        """The fields that differ from the rule; ValueError for what cannot be parsed."""
        rule = self.rule

        def value(name: str) -> str:
            return self.query_one(f"#{name}", Input).value.strip()

        def number(name: str) -> int | None:
            text = value(name)
            if not text:
                return None
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"{name}: {text!r} is not a whole number") from None

        wanted: dict[str, Any] = {
            "urls": _split_list(value("urls")) or ("<all_urls>",),
            "methods": _split_list(value("methods")),
            "types": _split_list(value("types")),
            "action": self.query_one("#action", Select).value,
            "url": value("url") or None,
            "priority": number("priority"),
            "enabled": self.query_one("#enabled", Checkbox).value,
            "times": number("times"),
            "note": value("note") or None,
        }
        if wanted["priority"] is None:
            wanted["priority"] = 1
        current = {name: getattr(rule, name) for name in wanted}
        current["urls"] = tuple(current["urls"])
        changed: dict[str, Any] = {}
        for name, new in wanted.items():
            old = current[name]
            if name in ("methods", "types") and new is not None and old is not None:
                same = [v.upper() if name == "methods" else v for v in new] == list(old)
            else:
                same = new == old
            if not same:
                changed[name] = list(new) if isinstance(new, tuple) else new
        return changed

    def action_save(self) -> None:
        error = self.query_one("#error", Static)
        try:
            changes = self.changes()
        except ValueError as exc:
            error.update(Text(str(exc)))
            error.display = True
            return
        if not changes:
            self.dismiss(False)
            return
        try:
            self.rules_source.update(self.rule.id, **changes)
        except (RulesFileError, ValueError, KeyError) as exc:
            error.update(Text(describe_error(exc)))
            error.display = True
            return
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Checkbox.Changed)
    def _changed(self) -> None:
        self.query_one("#error").display = False


# --------------------------------------------------------------------------- the screen


class RulesTable(DataTable):
    """The rules, one row each, keyed by rule id; ``enter`` edits the highlighted one."""

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(keys.RULES_TABLE)


class RulesScreen(Screen[None]):
    """The rules in precedence order with their hits; every change is saved at once.
    Its keys are `widgets.keys.RULES_SCREEN`.
    """

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(keys.RULES_SCREEN)

    DEFAULT_CSS = """
    RulesScreen #title {
        height: 1;
        background: $panel;
        color: $text;
        text-style: bold;
        padding: 0 1;
    }
    RulesScreen #file-error {
        color: $error;
        text-style: bold;
        height: auto;
        padding: 0 1;
    }
    RulesScreen #legend {
        height: 1;
        color: $text-muted;
        padding: 0 1;
    }
    RulesScreen #empty {
        color: $text-muted;
        padding: 1 2;
        height: auto;
    }
    RulesScreen RulesTable {
        height: 1fr;
    }
    """

    AUTO_FOCUS = "RulesTable"

    def __init__(self, rules_source: RulesFile) -> None:
        super().__init__()
        self.rules_source = rules_source
        self._rows: dict[str, tuple[Text, ...]] = {}
        self._facts_shown: list[tuple[Rule, int, int | None, bool]] = []
        self._title: str | None = None
        self._error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield Static(id="file-error")
        yield Static(
            Content(
                f"{TRANSIENT_MARK} unsaved rule (s saves it) · precedence: priority, then "
                "file order · K/J move in the file"
            ),
            id="legend",
        )
        table = RulesTable(cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static(
            Content(
                "No rules yet. Remember a decision in a dialog (keys 2-4), or edit the "
                "rules file: every change to it is picked up."
            ),
            id="empty",
        )
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#file-error").display = False
        self.refresh_rules()
        self.set_interval(1.0, self.refresh_rules)  # hits and times move in the proxy thread

    # -- showing ----------------------------------------------------------------------

    @property
    def table(self) -> RulesTable:
        return self.query_one(RulesTable)

    def selected_id(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:
            return None
        return key.value

    def _warning_colour(self) -> str:
        theme = self.app.current_theme
        return (theme.warning if theme is not None else None) or "yellow"

    def _facts(self, rule: Rule) -> tuple[Rule, int, int | None, bool]:
        """What a row shows that can change without the rule object changing."""
        source = self.rules_source
        times_left = getattr(source, "times_left", None)
        left = times_left(rule.id) if callable(times_left) else rule.times
        return rule, source.hits.get(rule.id, 0), left, source.is_transient(rule.id)

    def _row_for(self, facts: tuple[Rule, int, int | None, bool]) -> tuple[Text, ...]:
        rule, hits, left, transient = facts
        dim = "" if rule.enabled else "dim"
        cells = {
            "mark": Text(
                TRANSIENT_MARK if transient else "", style=f"bold {self._warning_colour()}"
            ),
            "id": Text(rule.id, style=f"bold {dim}".strip()),
            "enabled": Text("on" if rule.enabled else "off", style=dim),
            "event": Text(rule.event, style=dim),
            "priority": Text(str(rule.priority), style=dim, justify="right"),
            "hits": Text(str(hits), style=dim, justify="right"),
            "times": Text("—" if left is None else str(left), style=dim, justify="right"),
            "action": Text(_short(rule_outcome(rule), 48), style=dim),
            "conditions": Text(_short(rule_conditions(rule)), style=dim),
        }
        return tuple(cells[key] for key, _ in COLUMNS)

    def refresh_rules(self) -> None:
        """Show the rules source as it is now (after an edit, a reload, new hits).

        Cheap when little changed (it runs every second): unchanged rules are not
        re-rendered, changed cells are updated in place, the cursor stays on its rule.
        """
        source = self.rules_source
        title = f"rules · {_display_path(Path(source.path))} · {source.state}"
        if title != self._title:
            self._title = title
            self.query_one("#title", Static).update(Text(title))
        if source.error != self._error:
            self._error = source.error
            file_error = self.query_one("#file-error", Static)
            if source.error:
                file_error.update(
                    Text(f"{source.error}\nthe last good rules stay active; edits wait for a fix")
                )
            file_error.display = bool(source.error)

        facts = [self._facts(rule) for rule in source.ordered()]
        if len(facts) == len(self._facts_shown) and all(
            new[0] is old[0] and new[1:] == old[1:]
            for new, old in zip(facts, self._facts_shown, strict=True)
        ):
            return
        self._facts_shown = facts
        rows = {fact[0].id: self._row_for(fact) for fact in facts}
        table = self.table
        if list(rows) == list(self._rows):
            for rule_id, cells in rows.items():
                old = self._rows[rule_id]
                for (column, _), new_cell, old_cell in zip(COLUMNS, cells, old, strict=True):
                    if _cell_signature(new_cell) != _cell_signature(old_cell):
                        table.update_cell(rule_id, column, new_cell)
        else:
            selected = self.selected_id()
            row_index = table.cursor_row
            table.clear()
            for rule_id, cells in rows.items():
                table.add_row(*cells, key=rule_id)
            if selected in rows:
                table.move_cursor(row=list(rows).index(selected), animate=False)
            elif rows:
                table.move_cursor(row=min(row_index, len(rows) - 1), animate=False)
        self._rows = rows
        self.query_one("#empty", Static).display = not rows

    # -- changing ---------------------------------------------------------------------

    def _selected_rule(self, *, in_file: bool) -> Rule | None:
        rule_id = self.selected_id()
        if rule_id is None:
            return None
        rule = next((r for r in self.rules_source.ordered() if r.id == rule_id), None)
        if rule is None:
            self.refresh_rules()
            return None
        if in_file and self.rules_source.is_transient(rule_id):
            self.notify(
                f"{rule_id} is not in the rules file yet: s saves it there first",
                severity="warning",
                markup=False,
            )
            return None
        return rule

    def _apply(self, change, *args: Any) -> bool:
        try:
            change(*args)
        except (RulesFileError, ValueError, KeyError) as exc:
            self.notify(describe_error(exc), title="not saved", severity="error", markup=False)
            self.refresh_rules()
            return False
        self.refresh_rules()
        return True

    def action_toggle_rule(self) -> None:
        rule = self._selected_rule(in_file=True)
        if rule is not None:
            self._apply(self.rules_source.set_enabled, rule.id, not rule.enabled)

    def action_delete_rule(self) -> None:
        rule = self._selected_rule(in_file=True)
        if rule is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes and self._apply(self.rules_source.remove, rule.id):
                self.notify(f"deleted rule {rule.id}", markup=False)

        self.app.push_screen(ConfirmDelete(rule), callback=confirmed)

    def action_move_rule(self, delta: int) -> None:
        rule = self._selected_rule(in_file=True)
        if rule is None:
            return
        before = [r.id for r in self.rules_source.ordered()].index(rule.id)
        if self._apply(self.rules_source.move, rule.id, delta):
            after = [r.id for r in self.rules_source.ordered()].index(rule.id)
            if after == before:
                neighbours = self.rules_source.rules
                edge = (delta < 0 and neighbours and neighbours[0].id == rule.id) or (
                    delta > 0 and neighbours and neighbours[-1].id == rule.id
                )
                if not edge:
                    self.notify(
                        f"{rule.id} moved in the file; rules of another priority still "
                        "decide before or after it",
                        markup=False,
                    )

    def action_edit_rule(self) -> None:
        rule = self._selected_rule(in_file=True)
        if rule is None:
            return

        def edited(saved: bool | None) -> None:
            self.refresh_rules()
            if saved:
                self.notify(f"saved rule {rule.id}", markup=False)

        self.app.push_screen(RuleEditor(self.rules_source, rule), callback=edited)

    def action_save_rule(self) -> None:
        rule = self._selected_rule(in_file=False)
        if rule is None:
            return
        if not self.rules_source.is_transient(rule.id):
            self.notify(f"{rule.id} is already saved in the rules file", markup=False)
            return
        if self._apply(self.rules_source.persist_transient, rule.id):
            self.notify(f"saved {rule.id} to {self.rules_source.path}", markup=False)

    def action_back(self) -> None:
        self.dismiss(None)
