"""Text fields that keep every key in the order it was typed, and their text on focus.

Textual's `Input` and `TextArea` insert a printable key in their own key handler, but an
editing key that is a binding (backspace, delete, the arrows, home, end, ctrl+…) runs
only once the key has bubbled up to the app. Keys that arrive together — typed fast,
sent in one packet over ssh, or by a tool — are then applied out of order: backspace,
backspace, "5" on "200" gave "20", not "25", and a status typed over a default was lost
(Textualize/textual#6605; a fix is proposed upstream in #6631). These fields run their
own bindings where the key arrives, so the keys apply in the order they came.

Every editable field in `widgets/` is one of these.
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input, TextArea


class _KeysInOrder:
    """Runs the widget's own (non-priority) binding for a key where the key arrives.

    Priority bindings never get here (the app runs them before it forwards a key), and
    a key the widget has no binding for goes on as before.
    """

    async def _on_key(self, event: events.Key) -> None:
        if event.is_printable:
            return
        widget = self
        assert isinstance(widget, (Input, TextArea))
        for binding in widget._bindings.key_to_bindings.get(event.key, ()):
            if not binding.priority and await widget.app.run_action(binding.action, widget):
                event.stop()
                event.prevent_default()
                return


class Field(_KeysInOrder, Input):
    """A one-line field. Focus never selects its text: with select-all on focus, one key
    wiped a whole URL (and an `Input` has no undo)."""

    def __init__(self, value: str | None = None, **kwargs) -> None:
        kwargs.setdefault("select_on_focus", False)
        super().__init__(value, **kwargs)


class Editor(_KeysInOrder, TextArea):
    """A multi-line field."""
