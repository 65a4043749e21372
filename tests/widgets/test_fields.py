"""Fields apply keys in the order they came, even when they arrive together."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from textual import events
from textual.app import App, ComposeResult
from textual.widgets import Input, TextArea

from widgets.fields import Editor, Field

WIDGETS = Path(__file__).resolve().parents[2] / "widgets"


class Fields(App[None]):
    def compose(self) -> ComposeResult:
        yield Field("200", id="status", type="integer")
        yield Editor("body", id="body")


def burst(app: App, *keys: str) -> None:
    """Post keys the way the driver does for bytes read together: no wait between."""
    for key in keys:
        character = key if len(key) == 1 else {"backspace": "\x7f"}.get(key)
        app.post_message(events.Key(key, character))


async def test_backspaces_and_digits_that_arrive_together_apply_in_order():
    app = Fields()
    async with app.run_test() as pilot:
        status = app.query_one("#status", Field)
        assert app.focused is status
        assert status.selection.is_empty  # focus selected nothing
        burst(app, "backspace", "backspace", "backspace", "4", "1", "8")
        await pilot.pause()
        assert status.value == "418"
        burst(app, "left", "left", "backspace", "9")
        await pilot.pause()
        assert status.value == "918"


async def test_an_editor_applies_keys_in_order_too():
    app = Fields()
    async with app.run_test() as pilot:
        body = app.query_one("#body", Editor)
        body.focus()
        await pilot.pause()
        body.move_cursor((0, 4))
        burst(app, "backspace", "backspace", "x", "left", "left", "backspace", "y")
        await pilot.pause()
        assert body.text == "yox"


async def test_a_key_the_field_has_no_binding_for_still_reaches_the_app():
    class WithQuit(Fields):
        BINDINGS = [("f2", "mark", "mark")]
        marked = False

        def action_mark(self) -> None:
            self.marked = True

    app = WithQuit()
    async with app.run_test() as pilot:
        await pilot.press("f2")
        assert app.marked


@pytest.mark.parametrize("path", sorted(WIDGETS.glob("*.py")), ids=lambda p: p.name)
def test_every_editable_field_in_widgets_is_a_field_or_an_editor(path: Path):
    if path.name == "fields.py":
        return
    tree = ast.parse(path.read_text())
    made = [
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in (Input.__name__, TextArea.__name__)
    ]
    assert made == [], f"{path.name} makes a bare {made[0]}: use widgets.fields"
