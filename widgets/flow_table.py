"""The live flow list, on Textual's Line API.

`FlowTable` is a `ScrollView` that draws each visible line on demand (`render_line`)
from a store of `FlowView` snapshots: an id -> snapshot dict of every flow it was given,
and a list of the ids shown, in display order (a filter changes only that list:
`filter_to`). Nothing per row lives in widgets; the rendered lines are kept in a bounded LRU
cache keyed by the snapshot they were drawn from, so a stream of new flows costs a list
append and the repaint of the few lines on screen, whatever the number of rows.

Line 0 is the column header (click a label to sort by it), the last line shows the full
URL of the selected flow, the lines in between are rows.
"""

from __future__ import annotations

import time
from bisect import insort
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from sys import intern
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import BindingType
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from widgets import keys
from widgets.format import (
    clock_time,
    clock_time_ms,
    duration_ms,
    host_label,
    human_size,
    state_label,
)
from widgets.model import FlowView

COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("time", "time", 12),
    ("method", "method", 7),
    ("proto", "proto", 6),
    ("host", "host", None),
    ("path", "path", None),
    ("state", "state", 26),
    ("type", "type", 9),
    ("size", "size", 8),
    ("duration", "duration", 8),
    ("rule", "rule", 12),
)
"""(key, label, width); `None` shares the width left over (see `layout_columns`)."""

COLUMN_KEYS = tuple(key for key, _, _ in COLUMNS)
RIGHT_ALIGNED = frozenset({"size", "duration"})
MIN_FLEX_WIDTH = 10
MAX_HOST_WIDTH = 28
WANTED_FLEX_WIDTH = 40
"""Host and path together get at least this much before other columns give way..."""
DEGRADE: tuple[tuple[str, int], ...] = (
    ("state", 16),
    ("rule", 0),
    ("type", 0),
    ("proto", 0),
    ("size", 0),
    ("duration", 0),
    ("time", 8),
    ("time", 0),
)
"""...in this order: shrink a column to a width, or drop it (0). Method, host, path and
state always stay; at 80 columns time, method, host with port, path and state remain."""

SORTABLE: tuple[str, ...] = ("", *COLUMN_KEYS)
"""What `o` cycles through; "" is arrival order."""

CACHE_SIZE = 2048
"""Rendered rows kept: several screens' worth, a few hundred KB."""

OLDER_BLOCK = 200
"""Rows of older flows (kept elsewhere: the session file) read at a time."""
OLDER_CACHE = 2000
"""Snapshots of older flows kept here at most: the rest stay where they are kept."""


def protocol_label(view: FlowView) -> str:
    """HTTP, HTTPS, HTTP/2, HTTP/3, WS or WSS."""
    secure = view.scheme in ("https", "wss")
    if view.is_websocket:
        return "WSS" if secure else "WS"
    version = view.http_version.upper()
    if version.startswith("HTTP/2"):
        return "HTTP/2"
    if version.startswith("HTTP/3"):
        return "HTTP/3"
    return "HTTPS" if secure else "HTTP"


def row_cells(view: FlowView, now: float) -> tuple[str, ...]:
    """The cells of a flow's row, in `COLUMNS` order; `now` counts paused flows' waits."""
    return (
        intern(clock_time_ms(view.started)),
        view.method,
        protocol_label(view),
        host_label(view),
        view.path,
        intern(state_label(view, now)),
        view.type,
        intern(human_size(view.size)),
        intern(duration_ms(view.duration)),
        view.rule_id or "",
    )


def cell(view: FlowView, key: str, now: float) -> str:
    """One cell of a flow's row (what `row_cells` gives for `key`)."""
    if key == "time":
        return clock_time_ms(view.started)
    if key == "method":
        return view.method
    if key == "proto":
        return protocol_label(view)
    if key == "host":
        return host_label(view)
    if key == "path":
        return view.path
    if key == "state":
        return state_label(view, now)
    if key == "type":
        return view.type
    if key == "size":
        return human_size(view.size)
    if key == "duration":
        return duration_ms(view.duration)
    if key == "rule":
        return view.rule_id or ""
    raise KeyError(key)


def row_kind(view: FlowView) -> str:
    """How a row stands out: "paused", "error", "cancelled", or "" for not at all."""
    if view.paused is not None:
        return "paused"
    if view.state == "error":
        return "error"
    if view.state == "cancelled":
        return "cancelled"
    return ""


def sort_value(view: FlowView, key: str) -> tuple:
    """What sorting by column `key` compares; ties keep arrival order."""
    if key in ("", "time"):
        return (view.started, view.seq)
    if key == "size":
        return (view.size if view.size is not None else -1, view.seq)
    if key == "duration":
        return (view.duration if view.duration is not None else -1.0, view.seq)
    if key == "state":
        return (0 if view.paused is not None else 1, view.state_label, view.seq)
    if key == "host":
        return (view.host, view.port, view.seq)
    return (cell(view, key, 0.0).lower(), view.seq)


def layout_columns(width: int) -> tuple[tuple[str, int], ...]:
    """The columns shown at `width` cells and their widths.

    Every column is preceded by one cell (the mark gutter for the first, a space for the
    others). Host gets half of what is left (at most 28) and path the rest; when
    that is under `WANTED_FLEX_WIDTH`, the `DEGRADE` steps apply in order.
    """
    widths = {key: w for key, _, w in COLUMNS if w is not None}

    def room() -> int:
        shown = [key for key in COLUMN_KEYS if key in ("host", "path") or widths.get(key)]
        return width - len(shown) - sum(widths.values())

    for key, narrower in DEGRADE:
        if room() >= WANTED_FLEX_WIDTH:
            break
        widths[key] = narrower
    left = max(room(), 2 * MIN_FLEX_WIDTH)
    host = max(MIN_FLEX_WIDTH, min(left // 2, MAX_HOST_WIDTH))
    widths["host"] = host
    widths["path"] = max(MIN_FLEX_WIDTH, left - host)
    return tuple((key, widths[key]) for key in COLUMN_KEYS if widths[key])


def fit(text: str, width: int, right: bool = False) -> str:
    """`text` in exactly `width` cells: cut with an ellipsis, padded left or right."""
    if cell_len(text) > width:
        return set_cell_size(text, max(0, width - 1)) + "…" if width else ""
    if right:
        return " " * (width - cell_len(text)) + text
    return set_cell_size(text, width)


class FlowTable(ScrollView, can_focus=True):
    """The flow list. Feed it `FlowView`s with `apply()`; rows are keyed by flow id.

    Its keys are `widgets.keys.FLOW_LIST`. Most actions live on the app (the `app.`
    namespace), which owns the controller; moving, sorting and following are the list's
    own.
    """

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(keys.FLOW_LIST)

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "flow-table--header",
        "flow-table--cursor",
        "flow-table--url",
        "flow-table--mark",
        "flow-table--paused",
        "flow-table--error",
        "flow-table--cancelled",
    }
    """
    | Class | Description |
    | :- | :- |
    | `flow-table--header` | The column labels. |
    | `flow-table--cursor` | The selected row. |
    | `flow-table--url` | The full-URL line of the selected flow. |
    | `flow-table--mark` | The mark of a marked row. |
    | `flow-table--paused` | Rows of flows waiting for a decision. |
    | `flow-table--error` | Rows of flows that failed. |
    | `flow-table--cancelled` | Rows of flows that were cancelled. |
    """

    DEFAULT_CSS = """
    FlowTable {
        height: 1fr;
        max-height: 100%;
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-gutter: stable;
        &:focus {
            background-tint: $foreground 5%;
            & > .flow-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
        & > .flow-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        & > .flow-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        & > .flow-table--url {
            background: $panel;
            color: $text-muted;
        }
        & > .flow-table--mark {
            color: $text-accent;
            text-style: bold;
        }
        & > .flow-table--paused {
            color: $text-warning;
            text-style: bold;
        }
        & > .flow-table--error {
            color: $text-error;
        }
        & > .flow-table--cancelled {
            color: $text-muted;
        }
    }
    """

    @dataclass
    class Highlighted(Message):
        """The cursor moved to another flow (or to none)."""

        table: FlowTable
        flow_id: str | None

        @property
        def control(self) -> FlowTable:
            return self.table

    @dataclass
    class Selected(Message):
        """The selected row was clicked again: open it, as `enter` does."""

        table: FlowTable
        flow_id: str

        @property
        def control(self) -> FlowTable:
            return self.table

    @dataclass
    class FollowChanged(Message):
        """Follow mode went on or off (`F`, or a move up turned it off)."""

        table: FlowTable
        follow: bool

        @property
        def control(self) -> FlowTable:
            return self.table

    @dataclass
    class SortChanged(Message):
        """The rows are sorted by another column ("" for arrival order)."""

        table: FlowTable
        key: str
        reverse: bool

        @property
        def control(self) -> FlowTable:
            return self.table

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._clock = clock
        self._views: dict[str, FlowView] = {}
        """The snapshots of every flow the list holds, shown or filtered out, by id."""
        self._order: list[str] = []
        """The shown flows' ids, top to bottom."""
        self._all_shown = True
        """`_order` holds every flow of `_views` (no filter hides any)."""
        self._every: list[str] | None = None
        """While a filter is on: the ids of every flow held, in arrival order (the list
        shown before it, kept for when it is cleared); None when not kept."""
        self._spare: list[str] = []
        """An empty list, long-lived, for the next filter's rows (see `filter_to`)."""
        self._positions: dict[str, int] | None = {}
        self._scans = 0
        """id -> index in `_order` plus `_base`; None when it must be rebuilt (after a
        removal from the middle, or a sort)."""
        self._base = 0
        """Rows dropped from the top since `_positions` was built (a full store evicts the
        oldest flows: their removal shifts every index, and only this changes)."""
        self._paused: set[str] = set()
        """Ids of paused flows, shown or not."""
        self.cursor_row = 0
        self._highlighted: str | None = None
        """The flow last announced with `Highlighted`."""
        self.follow = False
        self.sort_key = ""
        """The column the rows are sorted by, "" for arrival order."""
        self.sort_reverse = False
        self.marked: set[str] = set()
        """Ids of marked flows (kept while they are filtered out)."""
        self._cache: LRUCache[tuple, tuple[FlowView, Strip]] = LRUCache(CACHE_SIZE)
        self._styles: dict[str, Style] = {}
        self._look: tuple[Style, ...] | None = None
        """The styles rows are drawn with now (see `_row_look`): part of a cached row's key."""
        self._layout: tuple[int, tuple[tuple[str, int], ...]] | None = None
        self._older = 0
        """Rows above the list for older flows kept elsewhere (see `set_older`)."""
        self._older_fetch: Callable[[int, int], Sequence[FlowView]] | None = None
        self._older_views: LRUCache[int, FlowView] = LRUCache(OLDER_CACHE)
        self._older_index: dict[str, int] = {}
        """Older flow id -> its row, for those read so far (bounded with the cache)."""

    # ----------------------------------------------------------------- older flows

    @property
    def older_count(self) -> int:
        """Rows of older flows shown above the list (none while sorted by a column)."""
        return 0 if self.sort_key or self.sort_reverse else self._older

    def set_older(
        self,
        count: int,
        fetch: Callable[[int, int], Sequence[FlowView]] | None,
        *,
        reset: bool = False,
    ) -> None:
        """Show `count` rows above the list for flows kept elsewhere (the proxy's session
        file), oldest first; `fetch(start, count)` reads the snapshots of some of them
        when they come into view, and at most `OLDER_CACHE` are kept here. `reset` when
        they are other flows than before (a new filter). The cursor keeps its flow."""
        old_above = self.older_count
        if reset or fetch is not self._older_fetch:
            self._older_views.clear()
            self._older_index.clear()
            self._cache.clear()
        self._older = max(0, count)
        self._older_fetch = fetch
        delta = self.older_count - old_above
        if not delta and not reset:
            return
        if self._order and self.cursor_row >= old_above:
            self.cursor_row += delta  # on a row of the list: stay on it
            if delta and self.scroll_y:
                self._update_virtual_size()
                self.scroll_to(y=self.scroll_y + delta, animate=False, force=True, immediate=True)
        self.cursor_row = max(0, min(self.cursor_row, self._total() - 1))
        self._structure_changed()
        if self.follow and self._order:
            self.move_cursor(self._newest_index())
        else:
            self._scroll_to_cursor()
        self._announce()

    def older_view(self, flow_id: str) -> FlowView | None:
        """The snapshot of an older flow shown above the list, if it was read."""
        index = self._older_index.get(flow_id)
        if index is None:
            return None
        view = self._older_views.get(index)
        return view if view is not None and view.id == flow_id else None

    def view_of(self, flow_id: str) -> FlowView | None:
        """The snapshot of a flow shown in the list or above it."""
        if self._is_shown(flow_id):
            return self._views[flow_id]
        return self.older_view(flow_id)

    def _older_at(self, index: int) -> FlowView | None:
        view = self._older_views.get(index)
        if view is not None or self._older_fetch is None:
            return view
        start = index - index % OLDER_BLOCK
        try:
            views = self._older_fetch(start, OLDER_BLOCK)
        except Exception:  # the proxy is out of reach: the row says so, nothing breaks
            return None
        if len(self._older_index) > 4 * OLDER_CACHE:
            self._older_index = {
                fid: i for fid, i in self._older_index.items() if i in self._older_views
            }
        for offset, older in enumerate(views):
            self._older_views[start + offset] = older
            self._older_index[older.id] = start + offset
        return self._older_views.get(index)

    def _total(self) -> int:
        return self.older_count + len(self._order)

    def _view_at(self, index: int) -> FlowView | None:
        above = self.older_count
        if index < above:
            return self._older_at(index)
        return self._views[self._order[index - above]]

    # ----------------------------------------------------------------- public API

    @property
    def row_count(self) -> int:
        """Rows, older flows above the list included."""
        return self._total()

    @property
    def selected_id(self) -> str | None:
        """The id of the flow under the cursor, if any."""
        total = self._total()
        if not total:
            return None
        view = self._view_at(min(self.cursor_row, total - 1))
        return view.id if view is not None else None

    def has_flow(self, flow_id: str) -> bool:
        """The flow has a row in the list (held and not filtered out)."""
        return self._is_shown(flow_id)

    def _is_shown(self, flow_id: str) -> bool:
        if flow_id not in self._views:
            return False
        return self._all_shown or self._live_index(flow_id) is not None

    def flow_ids(self) -> list[str]:
        """The ids of the rows, top to bottom."""
        return list(self._order)

    def get_row(self, flow_id: str) -> list[str]:
        """The cells of a flow's row, in `COLUMNS` order (all columns, shown or not)."""
        view = self.view_of(flow_id)
        if view is None:
            raise KeyError(flow_id)
        return list(row_cells(view, self._clock()))

    def index_of(self, flow_id: str) -> int | None:
        """The row of a flow, or None. After the rows changed, the first lookups scan the
        list (fast, in C); the id -> row index is built only once lookups keep coming."""
        above = self.older_count
        if flow_id not in self._views:
            index = self._older_index.get(flow_id)
            return index if index is not None and index < above else None
        index = self._live_index(flow_id)
        return None if index is None else index + above

    def _live_index(self, flow_id: str) -> int | None:
        positions = self._positions
        if positions is None:
            if flow_id not in self._views:
                return None
            self._scans += 1
            if self._scans <= 2:
                try:
                    return self._order.index(flow_id)
                except ValueError:  # held, but filtered out
                    return None
            positions = self._index_rows()
        index = positions.get(flow_id)
        return None if index is None else index - self._base

    def _index_rows(self) -> dict[str, int]:
        """The id -> row index, built now if it is not there."""
        positions = self._positions
        if positions is None:
            positions = {flow_id: index for index, flow_id in enumerate(self._order)}
            self._positions = positions
            self._base = 0
        return positions

    def select_flow(self, flow_id: str) -> bool:
        """Move the cursor to a flow's row; False when it is not shown."""
        index = self.index_of(flow_id)
        if index is None:
            return False
        self.move_cursor(index)
        return True

    def move_cursor(self, row: int, *, scroll: bool = True) -> None:
        """Put the cursor on row `row` (clamped), scroll it into view, announce it."""
        old = self.cursor_row
        total = self._total()
        row = max(0, min(row, total - 1)) if total else 0
        self.cursor_row = row
        if scroll:
            self._scroll_to_cursor()
        if old != row:
            self._refresh_row(old)
            self._refresh_row(row)
        self._refresh_url_line()
        self._announce()

    def apply(
        self,
        views: Iterable[FlowView],
        removed: Iterable[str] = (),
        *,
        visible: Callable[[FlowView], bool] | None = None,
    ) -> None:
        """Apply one batch: add new flows, update changed rows, drop removed flows.

        `visible` filters the list: a flow that stops matching loses its row, one that
        starts matching gets one (at the end, or in its place when sorted). The list
        keeps the snapshots of the flows filtered out, for `filter_to`.
        """
        removed_ids = set(removed)
        store = self._views
        hidden: list[str] = []
        added: dict[str, FlowView] = {}
        moved: list[str] = []
        repaint = False
        top, bottom = self._visible_range()
        for view in views:
            flow_id = view.id
            if flow_id in removed_ids:
                continue
            old = store.get(flow_id)
            store[flow_id] = view  # every snapshot is kept, shown or not, in arrival order
            self._track_paused(view)
            if old is None and self._every is not None:
                self._every.append(flow_id)
            if flow_id in added:  # twice in one batch: the last one counts
                if visible is None or visible(view):
                    added[flow_id] = view
                else:
                    del added[flow_id]
                    self._all_shown = False
                continue
            shown = old is not None and (self._all_shown or self._live_index(flow_id) is not None)
            if visible is not None and not visible(view):
                self._all_shown = False
                if shown:
                    hidden.append(flow_id)
                continue
            if not shown:  # new, or filtered out until now: a row at the end or in its place
                added[flow_id] = view
                continue
            assert old is not None  # shown
            if self.sort_key and sort_value(old, self.sort_key) != sort_value(view, self.sort_key):
                moved.append(flow_id)
            elif not repaint:
                index = self.index_of(flow_id)
                repaint = index is not None and top <= index < bottom
        if removed_ids:
            self.remove_flows(removed_ids)
        if hidden:
            self._drop_rows(hidden, forget=False)
        if moved:
            self._reposition(moved)
        if added:
            self._add(list(added.values()))
        elif repaint or moved:
            self.refresh()
            self._refresh_url_line()

    def replace(self, views: Iterable[FlowView] | dict[str, FlowView]) -> None:
        """Hold and show exactly `views` (in this order); the cursor keeps its flow if shown."""
        listed: Iterable[FlowView] = views.values() if isinstance(views, dict) else views
        by_id = {view.id: view for view in listed}
        selected = self.selected_id
        store = self._views
        store.clear()
        store.update(by_id)
        self._paused = {flow_id for flow_id, view in by_id.items() if view.paused is not None}
        self._set_order(list(by_id), True, selected)

    def filter_to(self, ids: Iterable[str] | None) -> None:
        """Show only these flows, of those the list holds (ids in arrival order, each held:
        the app's own index of its flows gives them), or every flow it holds (None). The
        cursor keeps its flow if shown.

        Only the list of shown ids changes: the snapshots stay where they are, and the
        list of every id is kept aside while a filter is on (and kept up to date), so
        neither applying nor clearing a filter over a million flows walks a million
        entries here. The lists are refilled in place, never made anew: a new list of
        100,000 ids or more would be walked by Python's cyclic GC at its next two
        collections (~7 ms each per 100,000 ids, on the way to the screen)."""
        selected = self.selected_id
        order = self._order
        if ids is None:
            every = self._every
            self._every = None
            if every is not None and len(every) == len(self._views):
                self._order = every
                order.clear()  # the filtered rows: the next filter's list
                self._spare = order
            else:
                order.clear()
                order.extend(self._views)
            self._all_shown = True
        else:
            if self._every is None and self._all_shown and not self._sorted():
                self._every = order  # every id, in arrival order
                order = self._order = self._spare
                self._spare = []
            else:
                order.clear()
            order.extend(ids)
            self._all_shown = len(order) == len(self._views)
        self._rows_changed(selected)

    def _set_order(self, ids: Iterable[str], every: bool, selected: str | None) -> None:
        order = self._order
        order.clear()
        order.extend(ids)
        self._every = None
        self._all_shown = every or len(order) == len(self._views)
        self._rows_changed(selected)

    def _rows_changed(self, selected: str | None) -> None:
        """Other rows are shown: sort them, then put the cursor back on `selected`."""
        if self._sorted():
            self._resort(keep_cursor=False)
        self._positions = None
        self._scans = 0
        self._base = 0
        self._structure_changed()
        index = self.index_of(selected) if selected is not None else None
        self.cursor_row = index if index is not None else 0
        self._scroll_to_cursor()
        self._announce()

    def _sorted(self) -> bool:
        return bool(self.sort_key or self.sort_reverse)

    def remove_flows(self, flow_ids: Iterable[str]) -> None:
        """Forget these flows: their rows go in one pass; the cursor stays on its flow."""
        self._drop_rows(flow_ids, forget=True)

    def _drop_rows(self, flow_ids: Iterable[str], *, forget: bool) -> None:
        """Drop the rows of these flows; `forget` drops their snapshots too (a removal),
        else the list keeps them (filtered out)."""
        store = self._views
        held = {flow_id for flow_id in flow_ids if flow_id in store}
        if not held:
            return
        every = self._every
        if forget and every is not None:
            if all(flow_id in held for flow_id in islice(every, len(held))):
                del every[: len(held)]  # the oldest (a full store evicting): cheap
            else:
                self._every = None  # rebuilt when the filter is cleared
        if self._all_shown:
            doomed = held
        else:
            positions = self._index_rows()
            doomed = {flow_id for flow_id in held if flow_id in positions}
        selected = self.selected_id if doomed else None  # before the snapshots go
        if forget:
            for flow_id in held:
                del store[flow_id]
                self._paused.discard(flow_id)
        if not doomed:  # only flows that were filtered out: no row changes
            return
        self._all_shown = self._all_shown and forget
        cursor = self.cursor_row
        count = len(doomed)
        if all(flow_id in doomed for flow_id in islice(self._order, count)):
            # the top live rows (a full store evicting its oldest flows, once a batch): the
            # work is the removed rows', not the whole list's, and the index stays
            del self._order[:count]
            built = self._positions
            if built is not None:
                for flow_id in doomed:
                    built.pop(flow_id, None)
            self._base += count
            live_cursor = cursor - self.older_count
            if live_cursor > 0:  # the selected row moved up, or was removed
                cursor -= min(count, live_cursor)
        else:
            live_cursor = max(0, cursor - self.older_count)
            removed_above = sum(1 for flow_id in self._order[:live_cursor] if flow_id in doomed)
            self._order[:] = [flow_id for flow_id in self._order if flow_id not in doomed]
            self._positions = None
            self._scans = 0
            index = self.index_of(selected) if selected is not None else None
            if index is not None and selected not in doomed:
                cursor = index
            else:
                cursor -= removed_above
        self.cursor_row = max(0, min(cursor, self._total() - 1))
        self._structure_changed()
        self._announce()

    def refresh_paused(self) -> None:
        """Recount the seconds of paused rows on screen (called about 1/s)."""
        if not self._paused:
            return
        top, bottom = self._visible_range()
        for flow_id in self._paused:
            index = self.index_of(flow_id)
            if index is not None and top <= index < bottom:
                self._refresh_row(index)

    def set_follow(self, follow: bool) -> None:
        """Follow mode: the cursor sticks to the newest row."""
        if follow == self.follow:
            return
        self.follow = follow
        if follow and self._total():
            self.move_cursor(self._newest_index())
        self.post_message(self.FollowChanged(self, follow))

    def sort_by(self, key: str, reverse: bool = False) -> None:
        """Sort the rows by column `key` ("" for arrival order); the cursor keeps its flow."""
        if key not in SORTABLE:
            raise ValueError(f"not a column: {key!r}")
        selected = self.selected_id  # before: older rows show only in arrival order
        self.sort_key = key
        self.sort_reverse = reverse
        self._resort(keep_cursor=False)
        index = self.index_of(selected) if selected is not None else None
        if index is not None:
            self.cursor_row = index
        self.cursor_row = max(0, min(self.cursor_row, self._total() - 1))
        self._structure_changed()
        self._scroll_to_cursor()
        self.post_message(self.SortChanged(self, key, reverse))

    def set_mark(self, flow_id: str, marked: bool) -> None:
        if marked:
            self.marked.add(flow_id)
        else:
            self.marked.discard(flow_id)
        index = self.index_of(flow_id)
        if index is not None:
            self._refresh_row(index)

    def kind_of(self, flow_id: str) -> str:
        """How a flow's row stands out (see `row_kind`)."""
        view = self.view_of(flow_id)
        if view is None:
            raise KeyError(flow_id)
        return row_kind(view)

    def column_widths(self) -> dict[str, int]:
        """The columns shown now and their widths."""
        return dict(self._columns())

    # ----------------------------------------------------------------- actions

    def action_cursor_up(self) -> None:
        self.set_follow(False)
        self.move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self.set_follow(False)
        self.move_cursor(self.cursor_row - self._page())

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor_row + self._page())

    def action_first(self) -> None:
        self.set_follow(False)
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(self._total() - 1)

    def action_toggle_follow(self) -> None:
        self.set_follow(not self.follow)

    def action_cycle_sort(self) -> None:
        """`o`: sort by the next shown column, then back to arrival order."""
        shown = [""] + [key for key, _ in self._columns()]
        current = shown.index(self.sort_key) if self.sort_key in shown else 0
        self.sort_by(shown[(current + 1) % len(shown)])

    # ----------------------------------------------------------------- mouse

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        x, y = offset
        if y == 0:
            key = self._column_at(x)
            if key is not None:
                reverse = self.sort_key == key and not self.sort_reverse
                self.sort_by(key, reverse)
            return
        index = int(self.scroll_y) + y - 1
        if y > self._row_slots() or not 0 <= index < self._total():
            return
        if index == self.cursor_row:
            view = self._view_at(index)
            if view is not None:
                self.post_message(self.Selected(self, view.id))
        else:
            if index < self.cursor_row:
                self.set_follow(False)
            self.move_cursor(index)

    def _column_at(self, x: int) -> str | None:
        start = 0
        for key, width in self._columns():
            if start <= x < start + width + 1:
                return key
            start += width + 1
        return None

    # ----------------------------------------------------------------- store

    def _track_paused(self, view: FlowView) -> None:
        if view.paused is not None:
            self._paused.add(view.id)
        else:
            self._paused.discard(view.id)

    def _add(self, views: Sequence[FlowView]) -> None:
        store = self._views
        order = self._order
        sort_key = self.sort_key
        positions = self._positions
        first_new = self.older_count + len(order)  # the row the first new one gets
        for view in views:
            store[view.id] = view
            self._track_paused(view)
            if sort_key or self.sort_reverse:
                insort(
                    order,
                    view.id,
                    key=lambda flow_id: self._sort_key_of(store[flow_id]),
                )
                positions = None
            else:
                if positions is not None:
                    positions[view.id] = len(order) + self._base
                order.append(view.id)
        self._positions = positions
        if positions is None:
            self._scans = 0
        was_empty = len(order) == len(views) and not self.older_count
        if positions is None:
            # rows went in above the cursor: the cursor keeps its flow
            selected = self._highlighted
            index = self.index_of(selected) if selected is not None else None
            if index is not None:
                self.cursor_row = index
        self._update_virtual_size()
        if self.follow:
            newest = max(views, key=lambda view: view.seq)
            index = self.index_of(newest.id)
            self.move_cursor(index if index is not None else len(order) - 1)
        else:
            if positions is None or first_new < self._visible_range()[1]:
                self.refresh()  # rows went in where they show (rows below it: the scrollbar)
            if was_empty:
                self.move_cursor(0)
        self._refresh_url_line()

    def _sort_key_of(self, view: FlowView):
        value = sort_value(view, self.sort_key)
        if self.sort_reverse:
            return _Reversed(value)
        return value

    def _reposition(self, flow_ids: list[str]) -> None:
        """Rows whose sort value changed go to their new place: out, then back in with
        a binary search (a full sort of a million rows per batch would be too slow)."""
        if len(flow_ids) > 1000:
            self._resort()
            return
        selected = self.selected_id
        order = self._order
        if len(flow_ids) <= 20:
            for flow_id in flow_ids:
                order.remove(flow_id)
        else:
            doomed = set(flow_ids)
            order[:] = [flow_id for flow_id in order if flow_id not in doomed]
        store = self._views
        for flow_id in flow_ids:
            insort(order, flow_id, key=lambda fid: self._sort_key_of(store[fid]))
        self._positions = None
        self._scans = 0
        if selected is not None:
            self.cursor_row = self.index_of(selected) or 0

    def _resort(self, *, keep_cursor: bool = True) -> None:
        selected = self.selected_id if keep_cursor else None
        store = self._views
        self._order.sort(
            key=lambda flow_id: sort_value(store[flow_id], self.sort_key),
            reverse=self.sort_reverse,
        )
        self._positions = None
        self._scans = 0
        if selected is not None:
            self.cursor_row = self.index_of(selected) or 0

    def _newest_index(self) -> int:
        if not self.sort_key and not self.sort_reverse:
            return self._total() - 1
        store = self._views
        newest = max(self._order, key=lambda flow_id: store[flow_id].seq)
        return self.index_of(newest) or 0

    def _structure_changed(self) -> None:
        self._update_virtual_size()
        self.refresh()
        self._refresh_url_line()

    def _announce(self) -> None:
        selected = self.selected_id
        if selected != self._highlighted:
            self._highlighted = selected
            self.post_message(self.Highlighted(self, selected))

    # ----------------------------------------------------------------- geometry

    def _row_slots(self) -> int:
        """Lines for rows: the height less the header and the URL line."""
        return max(1, self.scrollable_content_region.height - 2)

    def _page(self) -> int:
        return max(1, self._row_slots() - 1)

    def _visible_range(self) -> tuple[int, int]:
        top = int(self.scroll_y)
        return top, top + self._row_slots()

    def _update_virtual_size(self) -> None:
        size = Size(self.scrollable_content_region.width, self._total() + 2)
        if size == self.virtual_size:
            return
        if (
            size.width == self.virtual_size.width
            and self.show_vertical_scrollbar
            and size.height > self.scrollable_content_region.height
        ):
            # More rows in a list that scrolls already: only the scrollbar changes. Setting
            # `virtual_size` would lay out and repaint the whole screen (~20 ms) per batch.
            self.set_reactive(FlowTable.virtual_size, size)
            self._scroll_update(size)
            return
        self.virtual_size = size

    def _scroll_to_cursor(self) -> None:
        self._update_virtual_size()
        top, bottom = self._visible_range()
        row = self.cursor_row
        if row < top:
            self.scroll_to(y=row, animate=False, force=True, immediate=True)
        elif row >= bottom:
            self.scroll_to(y=row - self._row_slots() + 1, animate=False, force=True, immediate=True)

    def _refresh_row(self, index: int) -> None:
        top, bottom = self._visible_range()
        if top <= index < bottom:
            self.refresh_line(index + 1)

    def _refresh_url_line(self) -> None:
        height = self.scrollable_content_region.height
        if height:
            self.refresh_line(int(self.scroll_y) + height - 1)

    def on_resize(self) -> None:
        self._layout = None
        self._update_virtual_size()
        self._scroll_to_cursor()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def notify_style_update(self) -> None:
        # Focus moving in or out restyles the list (its :focus tint): the rows drawn under
        # the other look stay cached, keyed by their styles, for when focus comes back
        # (closing the details would otherwise redraw every row on screen).
        self._styles.clear()
        self._look = None
        super().notify_style_update()

    def _row_look(self) -> tuple[Style, ...]:
        look = self._look
        if look is None:
            style = self._style
            look = self._look = (
                style("base"),
                style("cursor"),
                style("mark"),
                style("paused"),
                style("error"),
                style("cancelled"),
            )
        return look

    # ----------------------------------------------------------------- rendering

    def _columns(self) -> tuple[tuple[str, int], ...]:
        width = self.scrollable_content_region.width
        if self._layout is None or self._layout[0] != width:
            self._layout = (width, layout_columns(width))
        return self._layout[1]

    def _style(self, name: str) -> Style:
        style = self._styles.get(name)
        if style is None:
            if name == "base":
                style = self.rich_style
            else:
                style = self.get_component_rich_style(f"flow-table--{name}", partial=True)
            self._styles[name] = style
        return style

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        height = self.scrollable_content_region.height
        if y == 0:
            return self._header_strip(width)
        if y == height - 1 and height >= 3:
            return self._url_strip(width)
        index = int(self.scroll_y) + y - 1
        if not 0 <= index < self._total():
            return Strip.blank(width, self._style("base"))
        return self._row_strip(index, width)

    def _row_strip(self, index: int, width: int) -> Strip:
        view = self._view_at(index)
        if view is None:  # an older flow that could not be read
            style = self._style("base") + self._style("cancelled")
            text = fit("  (an older flow: cannot be read now)", width)
            return Strip([Segment(text, style)]).adjust_cell_length(width, style)
        flow_id = view.id
        selected = index == self.cursor_row
        paused = view.paused is not None
        second = int(self._clock()) if paused else 0
        key = (
            flow_id,
            width,
            selected,
            selected and self.has_focus,
            flow_id in self.marked,
            second,
            self._row_look(),
        )
        cached = self._cache.get(key)
        if cached is not None and cached[0] is view:
            return cached[1]
        now = self._clock()
        style = self._style("base")
        kind = row_kind(view)
        if kind:
            style += self._style(kind)
        if selected:
            style += self._style("cursor")
        marked = flow_id in self.marked
        segments = [
            Segment("●" if marked else " ", style + self._style("mark") if marked else style)
        ]
        first = True
        for column, column_width in self._columns():
            if not first:
                segments.append(Segment(" ", style))
            first = False
            text = fit(cell(view, column, now), column_width, column in RIGHT_ALIGNED)
            segments.append(Segment(text, style))
        strip = Strip(segments).adjust_cell_length(width, style)
        self._cache[key] = (view, strip)
        return strip

    def _header_strip(self, width: int) -> Strip:
        style = self._style("base") + self._style("header")
        labels = dict((key, label) for key, label, _ in COLUMNS)
        parts = [" "]
        for column, column_width in self._columns():
            label = labels[column]
            if column == self.sort_key:
                label += " ▼" if self.sort_reverse else " ▲"
            parts.append(fit(label, column_width, column in RIGHT_ALIGNED))
        text = parts[0] + " ".join(parts[1:])
        return Strip([Segment(text, style)]).adjust_cell_length(width, style)

    def _url_strip(self, width: int) -> Strip:
        style = self._style("base") + self._style("url")
        text = ""
        view = self._view_at(self.cursor_row) if self._total() else None
        if view is not None:
            if self.cursor_row < self.older_count:
                text = " (from the session file)"
            text = f" {view.method} {view.url}{text}"
            if view.paused is None and view.state == "error" and view.error:
                text += f"  error: {view.error}"
        return Strip([Segment(fit(text, width), style)]).adjust_cell_length(width, style)


class _Reversed:
    """Orders like the wrapped value, backwards (for `insort` into a reversed sort)."""

    __slots__ = ("value",)

    def __init__(self, value) -> None:
        self.value = value

    def __lt__(self, other: _Reversed) -> bool:
        return other.value < self.value


__all__ = ["COLUMNS", "FlowTable", "clock_time", "layout_columns", "row_cells", "row_kind"]
