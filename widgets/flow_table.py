"""The live flow list: one row per flow, keyed by flow id, updated in batches.

`FlowTable` is a `DataTable` whose rows are all one line high and whose columns have
fixed widths (host and path share what is left of the width). That lets it skip the work
`DataTable` does for the general case and that grows with the number of rows — measuring
every cell of every new row, rebuilding per-line offsets after every cell update, and
re-indexing the whole table once per removed row — so that 100,000 flows stay responsive.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from sys import intern
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import BindingType
from textual.coordinate import Coordinate
from textual.geometry import Region, Size, Spacing
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, Row, RowKey

from widgets import keys
from widgets.format import (
    clock_time,
    duration_ms,
    host_label,
    human_size,
    paused_label,
    state_label,
)
from widgets.model import FlowView, PausedEvent
from widgets.table_internals import RowRenderables, TableInternals

COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    ("time", "time", 8),
    ("method", "method", 7),
    ("host", "host", None),
    ("path", "path", None),
    ("state", "state", 26),
    ("type", "type", 9),
    ("size", "size", 8),
    ("duration", "duration", 8),
    ("rule", "rule", 12),
)
"""(key, label, width); `None` shares the width left over (see `_fit_flexible_columns`)."""

RIGHT_ALIGNED = frozenset({"size", "duration"})
MIN_FLEX_WIDTH = 10
MAX_HOST_WIDTH = 32
WANTED_FLEX_WIDTH = 40
"""Host and path together get at least this much before other columns shrink..."""
SHRINKABLE: tuple[tuple[str, int], ...] = (("state", 16), ("rule", 8), ("type", 6))
"""...in this order, down to these widths."""


def row_cells(view: FlowView, now: float) -> tuple[str, ...]:
    """The cells of a flow's row, in `COLUMNS` order; `now` counts paused flows' waits.

    The formatted cells repeat a lot (same second, same size, same status), so they are
    interned: 100,000 rows then hold a few thousand distinct strings, not 400,000.
    """
    return (
        intern(clock_time(view.started)),
        view.method,
        host_label(view),
        view.path,
        intern(state_label(view, now)),
        view.type,
        intern(human_size(view.size)),
        intern(duration_ms(view.duration)),
        view.rule_id or "",
    )


def row_kind(view: FlowView) -> str:
    """How a row stands out: "paused", "error", "cancelled", or "" for not at all."""
    if view.paused is not None:
        return "paused"
    if view.state == "error":
        return "error"
    if view.state == "cancelled":
        return "cancelled"
    return ""


class _OneLineRows(Sequence[tuple[RowKey, int]]):
    """`DataTable._y_offsets` for a table whose rows are all one line: no list to build."""

    def __init__(self, table: FlowTable) -> None:
        self._table = table

    def __len__(self) -> int:
        return self._table.row_count

    def __getitem__(self, y):
        if not isinstance(y, int) or not 0 <= y < self._table.row_count:
            raise IndexError(y)
        return self._table.internals.key_at(y), 0

    def clear(self) -> None:
        """`DataTable.clear()` clears the offsets it cached; there is nothing to clear."""


class FlowTable(DataTable[str]):
    """The flow list. Feed it `FlowView`s with `apply()`; rows are keyed by flow id.

    Its keys are `widgets.keys.FLOW_LIST`; their actions live on the app (the `app.`
    namespace), which owns the controller.
    """

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(keys.FLOW_LIST)

    COMPONENT_CLASSES: ClassVar[set[str]] = DataTable.COMPONENT_CLASSES | {
        "flow-table--paused",
        "flow-table--error",
        "flow-table--cancelled",
    }
    """
    | Class | Description |
    | :- | :- |
    | `flow-table--paused` | Rows of flows waiting for a decision. |
    | `flow-table--error` | Rows of flows that failed. |
    | `flow-table--cancelled` | Rows of flows that were cancelled. |
    """

    DEFAULT_CSS = """
    FlowTable {
        height: 1fr;
        max-height: 100%;
        scrollbar-gutter: stable;
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

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(cursor_type="row", name=name, id=id, classes=classes)
        self.internals = TableInternals(self)
        """DataTable's private row index and cell store, behind one adapter."""
        self._clock = clock
        self._kinds: dict[str, str] = {}
        """Row key -> row kind, for the rows that stand out."""
        self._paused: dict[str, PausedEvent] = {}
        """The paused rows, whose state cell counts seconds."""
        self._rows_version = 0
        """Changes whenever rows are removed, cleared or re-ordered (not when appended)."""
        self._ordered_rows_cache: tuple[tuple[int, int], list[Row]] | None = None
        self._kind_styles: dict[str, Style] = {}
        self._flex_widths: dict[str, int] | None = None
        self._offscreen_changed = False
        """Rows out of view changed without invalidating the render caches (see
        `_rows_changed`); the caches go when the view moves."""

    # ----------------------------------------------------------------- public API

    @property
    def selected_id(self) -> str | None:
        """The id of the flow under the cursor, if any."""
        if not self.row_count:
            return None
        return self.internals.id_at(self.cursor_row)

    def has_flow(self, flow_id: str) -> bool:
        return self.internals.has(flow_id)

    def flow_ids(self) -> list[str]:
        """The ids of the rows, top to bottom."""
        id_at = self.internals.id_at
        return [flow_id for index in range(self.row_count) if (flow_id := id_at(index))]

    def select_flow(self, flow_id: str) -> bool:
        """Move the cursor to a flow's row; False when it is not shown."""
        index = self.internals.index_of(flow_id)
        if index is None:
            return False
        self.move_cursor(row=index)
        return True

    def apply(
        self,
        views: Iterable[FlowView],
        removed: Iterable[str] = (),
        *,
        visible: Callable[[FlowView], bool] | None = None,
    ) -> None:
        """Apply one batch: append new flows, update changed cells, drop removed rows.

        `visible` filters the list: a flow that stops matching loses its row, one that
        starts matching gets a row at the end. Nothing is re-sorted.
        """
        self._ensure_columns()
        now = self._clock()
        removed_ids = set(removed)
        gone = [flow_id for flow_id in removed_ids if self.internals.has(flow_id)]
        changed: list[FlowView] = []
        added: list[FlowView] = []
        for view in views:
            if view.id in removed_ids:
                continue
            shown = self.internals.has(view.id)
            if visible is not None and not visible(view):
                if shown:
                    gone.append(view.id)
            elif shown:
                changed.append(view)
            else:
                added.append(view)
        if gone:
            self.remove_flows(gone)
        for view in changed:
            self._update_row(view, now)
        if added:
            self._append_rows(added, now)

    def replace(self, views: Iterable[FlowView]) -> None:
        """Show exactly `views`, in that order (a new filter); the cursor keeps its flow."""
        self._ensure_columns()
        selected = self.selected_id
        self.clear()
        self._append_rows(list(views), self._clock())
        if selected is not None and self.select_flow(selected):
            return
        if self.row_count:
            self.move_cursor(row=0)

    def remove_flows(self, flow_ids: Iterable[str]) -> None:
        """Drop the rows of these flows in one pass; the cursor stays on its flow."""
        internals = self.internals
        doomed = {flow_id for flow_id in flow_ids if internals.has(flow_id)}
        if not doomed:
            return
        cursor_row = self.cursor_row
        selected = self.selected_id
        order = [internals.key_at(index) for index in range(self.row_count)]
        removed_above = sum(1 for key in order[:cursor_row] if key and key.value in doomed)
        internals.reindex(key for key in order if key is not None and key.value not in doomed)
        for flow_id in doomed:
            del self.rows[RowKey(flow_id)]
            self._kinds.pop(flow_id, None)
            self._paused.pop(flow_id, None)
        internals.forget(doomed)
        self._structure_changed()
        if selected is not None and selected not in doomed:
            new_row = internals.index_of(selected) or 0
        else:
            new_row = cursor_row - removed_above
        new_row = max(0, min(new_row, self.row_count - 1))
        if new_row != cursor_row:
            self.cursor_coordinate = Coordinate(new_row, 0)
        elif self.row_count and self.selected_id != selected:
            key = internals.key_at(new_row)
            if key is not None:
                self.post_message(DataTable.RowHighlighted(self, new_row, key))
        self.refresh(layout=True)

    def refresh_paused(self) -> None:
        """Recount the seconds in the state cells of paused rows (called about 1/s)."""
        if not self._paused:
            return
        now = self._clock()
        state = ColumnKey("state")
        for flow_id, paused in self._paused.items():
            view_state = paused_label(paused, now)
            if self.internals.cells(flow_id)[state] != view_state:
                self.update_cell(flow_id, state, view_state)

    # ----------------------------------------------------------------- rows

    def _ensure_columns(self) -> None:
        if self.columns:
            return
        for key, label, width in COLUMNS:
            header = Text(label, justify="right" if key in RIGHT_ALIGNED else "left")
            self.add_column(header, width=width or MIN_FLEX_WIDTH, key=key)
        self._fit_flexible_columns()

    def _append_rows(self, views: Sequence[FlowView], now: float) -> None:
        """What `add_row` does, once per batch instead of once per row.

        `add_row` re-validates the cursor (a reactive) and lists the columns twice for
        every row; at thousands of rows per batch that is most of the cost.
        """
        column_keys = [column.key for column in self.ordered_columns]
        internals = self.internals
        rows = self.rows
        kinds = self._kinds
        paused = self._paused
        was_empty = self.row_count == 0
        index = first_index = self.row_count
        last_index = index - 1
        for view in views:
            key = RowKey(view.id)
            if internals.has(view.id):
                self._update_row(view, now)
                continue
            internals.add(key, index, dict(zip(column_keys, row_cells(view, now), strict=True)))
            index += 1
            last_index = index - 1
            rows[key] = Row(key, 1)
            kind = row_kind(view)
            if kind:
                kinds[view.id] = kind
                if view.paused is not None:
                    paused[view.id] = view.paused
        self._rows_changed(first_index, last_index)
        internals.require_dimensions()
        self.cursor_coordinate = self.cursor_coordinate
        if was_empty and self.row_count and self.show_cursor and self.cursor_type != "none":
            internals.highlight_cursor()
        self.check_idle()
        self.refresh()

    def _rows_changed(self, first: int, last: int) -> None:
        """Rows ``first..last`` changed. DataTable keys every render cache on one update
        count, so bumping it re-renders every visible row; under a stream of new flows
        that is most of the screen's work. Bump it only when a changed row is on screen
        (or may be: the margins are generous); otherwise remember to bump it when the
        view moves (`watch_scroll_y`, resize)."""
        if last < first:
            return
        top = int(self.scroll_y)
        bottom = top + self.size.height + 2
        if last >= top - 2 and first <= bottom:
            self.internals.invalidate_renders()
        else:
            self._offscreen_changed = True

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        if self._offscreen_changed:
            self._offscreen_changed = False
            self.internals.invalidate_renders()
        super().watch_scroll_y(old_value, new_value)

    def _update_row(self, view: FlowView, now: float) -> None:
        flow_id = view.id
        old = self.internals.cells(flow_id)
        changed = False
        for (key, _, _), value in zip(COLUMNS, row_cells(view, now), strict=True):
            column = ColumnKey(key)
            if old[column] != value:
                old[column] = value
                changed = True
        kind = row_kind(view)
        if kind != self._kinds.get(flow_id, ""):
            if kind:
                self._kinds[flow_id] = kind
            else:
                self._kinds.pop(flow_id, None)
            changed = True
        if changed:
            index = self.internals.index_of(flow_id)
            if index is not None:
                self._rows_changed(index, index)
            self.refresh()
        if view.paused is not None:
            self._paused[flow_id] = view.paused
        else:
            self._paused.pop(flow_id, None)

    def clear(self, columns: bool = False):
        self._kinds.clear()
        self._paused.clear()
        self._rows_version += 1
        result = super().clear(columns)
        if columns:
            self._flex_widths = None
        return result

    def sort(self, *columns, key=None, reverse: bool = False):
        self._rows_version += 1
        return super().sort(*columns, key=key, reverse=reverse)

    def remove_row(self, row_key: RowKey | str) -> None:
        flow_id = row_key.value if isinstance(row_key, RowKey) else row_key
        if flow_id is not None:
            self.remove_flows([flow_id])

    def _structure_changed(self) -> None:
        self._rows_version += 1
        self.internals.invalidate_renders()
        self.internals.require_dimensions()
        self.check_idle()

    # ----------------------------------------------------------------- rendering

    def _row_style(self, flow_id: str) -> Style:
        kind = self._kinds.get(flow_id)
        if not kind:
            return Style.null()
        style = self._kind_styles.get(kind)
        if style is None:
            style = self.get_component_rich_style(f"flow-table--{kind}", partial=True)
            self._kind_styles[kind] = style
        return style

    def notify_style_update(self) -> None:
        self._kind_styles.clear()
        super().notify_style_update()

    def _compute_row_renderables(self, row_index: int) -> RowRenderables:
        """Cells are plain strings (never markup: paths hold brackets) styled by row kind."""
        if row_index == -1:
            return super()._compute_row_renderables(row_index)
        row_key = self.internals.key_at(row_index)
        if row_key is None or row_key.value is None:
            return RowRenderables(None, [])
        data = self.internals.cells(row_key)
        style = self._row_style(row_key.value)
        cells: list = [
            Text(
                data.get(column.key) or "",
                style=style,
                no_wrap=True,
                overflow="ellipsis",
                end="",
                justify="right" if column.key.value in RIGHT_ALIGNED else "left",
            )
            for column in self.ordered_columns
        ]
        return RowRenderables(None, cells)

    # ----------------------------------------------------------------- geometry
    # Every row is one line high, so a row's y is its index: O(1) instead of O(rows).

    @property
    def _y_offsets(self) -> _OneLineRows:  # type: ignore[override]
        return _OneLineRows(self)

    @property
    def _total_row_height(self) -> int:
        return self.row_count

    @property
    def ordered_rows(self) -> list[Row]:
        cache_key = (self.row_count, self._rows_version)
        cached = self._ordered_rows_cache
        if cached is None or cached[0] != cache_key:
            key_at = self.internals.key_at
            rows = self.rows
            cached = (cache_key, [rows[key_at(index)] for index in range(self.row_count)])  # type: ignore[index]
            self._ordered_rows_cache = cached
        return cached[1]

    def _header_offset(self) -> int:
        return self.header_height if self.show_header else 0

    def _columns_width(self) -> int:
        return sum(column.get_render_width(self) for column in self.columns.values())

    def _get_row_region(self, row_index: int) -> Region:
        if not self.is_valid_row_index(row_index):
            return Region(0, 0, 0, 0)
        y = row_index + self._header_offset()
        return Region(0, y, max(self.size.width, self._columns_width()), 1)

    def _get_cell_region(self, coordinate: Coordinate) -> Region:
        if not self.is_valid_coordinate(coordinate):
            return Region(0, 0, 0, 0)
        row_index, column_index = coordinate
        columns = self.ordered_columns
        x = sum(column.get_render_width(self) for column in columns[:column_index])
        width = columns[column_index].get_render_width(self)
        return Region(x, row_index + self._header_offset(), width, 1)

    def _get_fixed_offset(self) -> Spacing:
        top = self._header_offset() + min(self.fixed_rows, self.row_count)
        left = sum(
            column.get_render_width(self) for column in self.ordered_columns[: self.fixed_columns]
        )
        return Spacing(top, 0, 0, left)

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        """Columns have fixed widths and rows one line: nothing to measure per row."""
        self.virtual_size = Size(self._columns_width(), self.row_count + self._header_offset())

    # ----------------------------------------------------------------- width

    def on_resize(self) -> None:
        self._offscreen_changed = False
        self.internals.invalidate_renders()
        self._fit_flexible_columns()

    def _fit_flexible_columns(self) -> None:
        """Share the width: host two fifths (at most 32) and path the rest of what the
        other columns leave; on a narrow screen state, rule and type give up some first."""
        if not self.columns:
            return
        widths = {key: width for key, _, width in COLUMNS if width is not None}
        padding = 2 * self.cell_padding * len(COLUMNS)
        room = self.scrollable_content_region.width - padding - sum(widths.values())
        deficit = WANTED_FLEX_WIDTH - room
        for key, narrowest in SHRINKABLE:
            if deficit <= 0:
                break
            give = min(deficit, widths[key] - narrowest)
            widths[key] -= give
            room += give
            deficit -= give
        room = max(room, 2 * MIN_FLEX_WIDTH)
        widths["host"] = max(MIN_FLEX_WIDTH, min(room * 2 // 5, MAX_HOST_WIDTH))
        widths["path"] = max(MIN_FLEX_WIDTH, room - widths["host"])
        if self._flex_widths == widths:
            return
        self._flex_widths = widths
        for key, width in widths.items():
            self.columns[ColumnKey(key)].width = width
        self.internals.clear_caches()
        self.internals.invalidate_renders()
        self.internals.require_dimensions()
        self.check_idle()
        self.refresh()
