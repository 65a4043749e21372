"""The breakpoint queue: the paused flows, oldest first, with their countdowns.

Docked above the flow list and shown while anything is paused, so that a pause is never
buried under 100,000 rows. `p` walks it; the app decides what it holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from textual.content import Content
from textual.widget import Widget

from widgets.model import FlowView

MAX_LINES = 4
"""Paused flows listed; the rest are counted on the last line."""


class PausedQueue(Widget):
    """One line per paused flow (at most `MAX_LINES`), oldest first."""

    DEFAULT_CSS = """
    PausedQueue {
        height: auto;
        max-height: 6;
        padding: 0 1;
        background: $warning 15%;
        border-bottom: solid $warning;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        display: none;
        &.-shown {
            display: block;
        }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._views: tuple[FlowView, ...] = ()
        self._now = 0.0
        self._marked: frozenset[str] = frozenset()
        self._selected: str | None = None

    @property
    def flow_ids(self) -> list[str]:
        """The queued flows' ids, oldest first."""
        return [view.id for view in self._views]

    def show(
        self,
        views: Sequence[FlowView],
        now: float,
        *,
        marked: frozenset[str] | set[str] = frozenset(),
        selected: str | None = None,
    ) -> None:
        """Show these paused flows (oldest first); hidden when there are none."""
        views = tuple(views)
        lines = min(len(views), MAX_LINES + 1)
        was = min(len(self._views), MAX_LINES + 1)
        if not views and not self._views:
            return  # hidden and staying so: called on every batch, it must cost nothing
        self._views = views
        self._now = now
        self._marked = frozenset(marked)
        self._selected = selected
        self.set_class(bool(views), "-shown")
        # a layout (the whole screen) only when the queue's height changes
        self.refresh(layout=lines != was)

    def render(self) -> Content:
        lines: list[Content] = []
        views = self._views
        total = len(views)
        for number, view in enumerate(views[:MAX_LINES], start=1):
            paused = view.paused
            if paused is None:
                continue
            waited = max(0, int(self._now - paused.since))
            if math.isfinite(paused.deadline):
                left = max(0, int(round(paused.deadline - self._now)))
                countdown = (f" {left:>3}s left", "bold $text-error" if left <= 10 else "bold")
            else:  # --ask-timeout none
                countdown = (" no time limit", "bold")
            mark = "●" if view.id in self._marked else " "
            pointer = "▶" if view.id == self._selected else " "
            parts: list[str | tuple[str, str]] = [
                (f"{pointer}{mark}", "bold $text-accent"),
                (f"⏸ {number}/{total} ", "bold $text-warning"),
                (f"{paused.event:<11}", "bold"),
                countdown,
                (f" ({waited}s)  ", "$text-muted"),
                f"{view.method} {view.url}",
            ]
            lines.append(Content.assemble(*parts))
        if total > MAX_LINES:
            lines.append(
                Content.assemble(
                    (f"   … and {total - MAX_LINES} more paused", "$text-muted"),
                    ("  (p: next, enter: its dialog)", "$text-muted"),
                )
            )
        return Content("\n").join(lines)
