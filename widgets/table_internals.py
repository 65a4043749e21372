"""The one place the flow list reaches into ``DataTable``'s private members.

``FlowTable`` keeps 100,000 rows responsive by skipping work ``DataTable`` does for the
general case (see ``widgets.flow_table``), which means reading and writing its private
row index and cell store and overriding some private methods. Textual is pinned
``>=8,<9``; ``REACHED`` names every private member the flow list relies on, and
``tests/widgets/test_table_internals.py`` fails naming the one a Textual release removed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from textual._two_way_dict import TwoWayDict  # isort: skip  # DataTable's own row index
from textual.widgets._data_table import RowRenderables  # isort: skip

__all__ = ["REACHED", "RowRenderables", "TableInternals"]

REACHED: dict[str, tuple[str, ...]] = {
    "instance attributes": (
        "_row_locations",
        "_data",
        "_new_rows",
        "_updated_cells",
        "_update_count",
        "_require_update_dimensions",
    ),
    "methods (called or overridden)": (
        "_highlight_cursor",
        "_clear_caches",
        "_compute_row_renderables",
        "_get_row_region",
        "_get_cell_region",
        "_get_fixed_offset",
        "_update_dimensions",
        "_y_offsets",
        "_total_row_height",
    ),
}


class TableInternals:
    """Typed access to one table's private row index (``_row_locations``: row key <->
    index) and cell store (``_data``: row key -> column key -> cell)."""

    def __init__(self, table: DataTable[Any]) -> None:
        self._table = table

    def key_at(self, index: int) -> RowKey | None:
        return self._table._row_locations.get_key(index)

    def id_at(self, index: int) -> str | None:
        key = self._table._row_locations.get_key(index)
        return None if key is None else key.value

    def index_of(self, row_id: str) -> int | None:
        return self._table._row_locations.get(RowKey(row_id))

    def has(self, row_id: str) -> bool:
        return RowKey(row_id) in self._table._row_locations

    def cells(self, row_id: str | RowKey) -> dict[ColumnKey, Any]:
        key = row_id if isinstance(row_id, RowKey) else RowKey(row_id)
        return self._table._data[key]

    def add(self, key: RowKey, index: int, cells: dict[ColumnKey, Any]) -> None:
        """Index a new row at ``index`` with its cells (the caller adds the ``Row``)."""
        self._table._row_locations[key] = index
        self._table._data[key] = cells

    def reindex(self, keys: Iterable[RowKey]) -> None:
        """The rows are now ``keys``, top to bottom."""
        self._table._row_locations = TwoWayDict({key: i for i, key in enumerate(keys)})

    def forget(self, row_ids: set[str]) -> None:
        """Drop these rows' cells and their pending measure and update work."""
        table = self._table
        for row_id in row_ids:
            del table._data[RowKey(row_id)]
        table._new_rows = {key for key in table._new_rows if key.value not in row_ids}
        table._updated_cells = {
            cell for cell in table._updated_cells if cell.row_key.value not in row_ids
        }

    def invalidate_renders(self) -> None:
        """Every render cache is keyed on one update count: bump it."""
        self._table._update_count += 1

    def require_dimensions(self) -> None:
        self._table._require_update_dimensions = True

    def highlight_cursor(self) -> None:
        self._table._highlight_cursor()

    def clear_caches(self) -> None:
        self._table._clear_caches()
