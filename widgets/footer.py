"""The main screen's footer: Textual's `Footer`, without the rebuild on every focus move.

Textual's footer throws its keys away and composes new ones whenever the screen's
bindings change, which they do each time focus moves: opening and closing the detail
pane cost 35-65 ms of that alone (measured in tests/bench/screen_list.py), whatever the
number of flows. `KeyFooter` composes the keys of each set of bindings once and keeps
them: going back to a set seen before hides the keys shown and shows that set's keys
again. The keys, their order, look, hover, tooltips and clicks are Textual's own
(`FooterKey`), so the footer looks and behaves as before.
"""

from __future__ import annotations

from collections import OrderedDict

from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer

KEPT_SETS = 12
"""Sets of keys kept composed; the least recently shown goes beyond that."""


class KeyFooter(Footer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._sets: OrderedDict[tuple, list[Widget]] = OrderedDict()
        self._shown: tuple | None = None

    def _signature(self) -> tuple | None:
        """What `Footer.compose` would show now, or None when it uses binding groups
        (those compose nested widgets: then the footer is rebuilt as Textual does)."""
        app = self.app
        shown = []
        for _node, binding, enabled, tooltip in self.screen.active_bindings.values():
            if not binding.show:
                continue
            if binding.group is not None:
                return None
            shown.append(
                (binding.key, app.get_key_display(binding), binding.description,
                 binding.action, enabled, tooltip)
            )  # fmt: skip
        palette = None
        if self.show_command_palette and app.ENABLE_COMMAND_PALETTE:
            found = self.screen.active_bindings.get(app.COMMAND_PALETTE_BINDING)
            if found is not None:
                _node, binding, enabled, _tooltip = found
                palette = (binding.key, binding.description, enabled, binding.tooltip)
        return (tuple(shown), palette, self.compact)

    def bindings_changed(self, screen: Screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen:
            self.call_after_refresh(self._show_keys)

    def _show_keys(self) -> None:
        if not self.is_attached:
            return
        signature = self._signature()
        if signature is None:  # binding groups: Textual's own way
            self._forget_sets()
            self.call_later(self.recompose)
            return
        if signature == self._shown:
            return
        keys = self._sets.get(signature)
        if keys is None:
            keys = list(Footer.compose(self))
            self._sets[signature] = keys
            self.mount_all(keys)
            while len(self._sets) > KEPT_SETS:
                _, old = self._sets.popitem(last=False)
                for widget in old:
                    widget.remove()
        else:
            self._sets.move_to_end(signature)
        if self._shown is not None and self._shown in self._sets:
            for widget in self._sets[self._shown]:
                widget.display = False
        for widget in keys:
            widget.display = True
        self._shown = signature

    def _forget_sets(self) -> None:
        self._sets.clear()
        self._shown = None

    async def recompose(self) -> None:
        """Textual's rebuild (binding groups): the kept sets go with the old children."""
        self._forget_sets()
        await super().recompose()
