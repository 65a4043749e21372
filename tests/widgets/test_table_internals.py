"""The flow list reaches into DataTable's private members through one adapter
(`widgets.table_internals`). When a Textual release renames or drops one of them, these
tests fail naming it, instead of the flow list breaking somewhere obscure."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from widgets.table_internals import REACHED, TableInternals


class Host(App[None]):
    def compose(self) -> ComposeResult:
        yield DataTable()


@pytest.mark.parametrize("name", REACHED["methods (called or overridden)"])
def test_datatable_still_has_the_private_method(name):
    assert hasattr(DataTable, name), f"textual's DataTable no longer has {name}"


async def test_datatable_instances_still_have_the_private_attributes():
    app = Host()
    async with app.run_test():
        table = app.query_one(DataTable)
        table.add_column("a", key="a")
        table.add_row("x", key="r1")
        missing = [n for n in REACHED["instance attributes"] if not hasattr(table, n)]
        assert missing == [], f"textual's DataTable no longer has {missing}"


async def test_the_adapter_reads_and_writes_the_row_index_and_cells():
    app = Host()
    async with app.run_test() as pilot:
        table = app.query_one(DataTable)
        table.add_column("a", key="a")
        table.add_row("x", key="r1")
        table.add_row("y", key="r2")
        table.add_row("z", key="r3")
        internals = TableInternals(table)
        assert [internals.id_at(i) for i in range(3)] == ["r1", "r2", "r3"]
        assert internals.index_of("r2") == 1 and internals.has("r3") and not internals.has("r9")
        assert [str(v) for v in internals.cells("r2").values()] == ["y"]
        # drop r2 the way the flow list does, then the table must agree
        keys = [internals.key_at(i) for i in range(3)]
        internals.reindex(k for k in keys if k is not None and k.value != "r2")
        del table.rows[keys[1]]
        internals.forget({"r2"})
        internals.invalidate_renders()
        internals.require_dimensions()
        internals.clear_caches()
        await pilot.pause()
        assert table.row_count == 2
        assert [internals.id_at(i) for i in range(2)] == ["r1", "r3"]
        assert str(table.get_cell("r3", "a")) == "z"
