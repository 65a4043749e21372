"""100,000 flows: pushed in 20 batches they all get rows within a few seconds, and the
list still moves, updates and drops rows in one pass (responsive at 100,000)."""

from __future__ import annotations

import dataclasses
import time

import pytest
from screen_fakes import Clock, FakeController, many_views, paused_view, wait_until

from widgets.app import WaylayApp
from widgets.flow_table import COLUMN_KEYS

STATE = COLUMN_KEYS.index("state")

pytestmark = pytest.mark.usefixtures("utc")

FLOWS = 100_000
BATCHES = 20


async def test_100k_flows_in_20_batches(record_property):
    views = many_views(FLOWS)
    per_batch = FLOWS // BATCHES
    app = WaylayApp(FakeController(), clock=Clock())
    async with app.run_test(size=(140, 36)) as pilot:
        started = time.perf_counter()
        for start in range(0, FLOWS, per_batch):
            app.push_flows(views[start : start + per_batch])
        await wait_until(pilot, lambda: app.table.row_count == FLOWS, "100,000 rows", 100)
        await pilot.pause()
        elapsed = time.perf_counter() - started
        record_property("push_100k_seconds", round(elapsed, 3))
        print(f"\n100,000 flows in {BATCHES} batches: {elapsed:.2f} s")
        assert app.header.flow_count == FLOWS
        assert app.table.flow_ids()[:2] == ["f1", "f2"]

        # still responsive: jump to the end, page up, a batch that updates, pauses, removes
        step = time.perf_counter()
        await pilot.press("ctrl+end")
        await wait_until(pilot, lambda: app.table.selected_id == f"f{FLOWS}", "cursor at end")
        await pilot.press("pageup", "up")
        await pilot.pause()
        moved = time.perf_counter() - step
        selected = app.table.selected_id

        step = time.perf_counter()
        updates = [dataclasses.replace(view, status=503) for view in views[:1000]]
        updates.append(paused_view(FLOWS, "request"))
        removed = [f"f{n}" for n in range(2001, 3001)]
        app.push_flows(updates, removed)
        await wait_until(pilot, lambda: app.table.row_count == FLOWS - 1000, "rows removed")
        await pilot.pause()
        batch = time.perf_counter() - step
        print(
            f"cursor to the end and back: {moved:.3f} s; 1,001 updates + 1,000 removals: {batch:.3f} s"
        )
        record_property("move_seconds", round(moved, 3))
        record_property("update_remove_seconds", round(batch, 3))

        assert app.table.selected_id == selected  # the cursor kept its flow
        assert app.table.get_row("f1")[STATE] == "503"
        assert app.table.get_row(f"f{FLOWS}")[STATE].startswith("⏸ request")
        assert app.header.paused_count == 1


async def test_a_filter_over_100k_flows_never_blocks_and_the_next_one_replaces_it():
    views = many_views(FLOWS)
    app = WaylayApp(FakeController(), clock=Clock())
    async with app.run_test(size=(140, 36)) as pilot:
        app.push_flows(views)
        await wait_until(pilot, lambda: app.table.row_count == FLOWS, "100,000 rows", 100)
        # a predicate slow enough that filtering everything takes seconds
        slow_calls = []

        def slow(view):
            slow_calls.append(1)
            time.sleep(0.00005)
            return view.status == 503

        app._text_visible = slow
        app._apply_visibility()
        assert len(slow_calls) < FLOWS // 10  # returned long before the end: it runs in slices
        assert app.filtering and "filtering…" in app.header.render().plain
        await pilot.press("end")  # keys still work meanwhile
        assert app.table.selected_id == f"f{FLOWS}"
        assert app.filtering
        # the next filter replaces it before it is done
        assert app.set_filter("items/7") is None
        await wait_until(pilot, lambda: not app.filtering, "the filter done", 60)
        done = len(slow_calls)
        await pilot.pause(0.1)
        assert len(slow_calls) == done < FLOWS  # the first one stopped
        expected = [v.id for v in views if "items/7" in v.url]
        assert app.table.flow_ids() == expected
        assert "filtering" not in app.header.render().plain


async def test_a_full_store_evicting_its_oldest_keeps_the_cursor_and_every_row_index():
    """Each batch of a full store adds new flows and drops as many of the oldest: the
    top rows go without a pass over the list, and every lookup still finds its row."""
    views = many_views(3_000)
    app = WaylayApp(FakeController(), clock=Clock())
    async with app.run_test(size=(140, 36)) as pilot:
        app.push_flows(views[:1_000])
        await wait_until(pilot, lambda: app.table.row_count == 1_000, "1,000 rows")
        table = app.table
        table.select_flow("f500")
        for n in range(5):
            for flow_id in table.flow_ids()[:3]:  # lookups build the id -> row index
                table.index_of(flow_id)
            start = 1_000 + n * 300
            app.push_flows(
                views[start : start + 300], [f"f{i}" for i in range(n * 300 + 1, n * 300 + 301)]
            )
            top = f"f{n * 300 + 301}"
            await wait_until(pilot, lambda top=top: table.flow_ids()[0] == top, "evicted")
            ids = table.flow_ids()
            assert len(ids) == 1_000
            assert [table.index_of(ids[i]) for i in (0, 1, 500, 999)] == [0, 1, 500, 999]
            assert table.index_of(f"f{n * 300 + 300}") is None  # evicted
            if n == 0:
                assert table.selected_id == "f500"  # the cursor kept its flow
        # the selected flow was evicted itself: the cursor goes to the top row
        assert table.cursor_row == 0
        assert table.selected_id == ids[0]
        # a removal from the middle still works after evictions
        app.push_flows([], [ids[10], ids[20]])
        await wait_until(pilot, lambda: table.row_count == 998, "two rows removed")
        assert table.index_of(ids[21]) == 19
        assert table.index_of(ids[999]) == 997
        await pilot.pause()
