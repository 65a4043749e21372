"""100,000 flows: pushed in 20 batches they all get rows within a few seconds, and the
list still moves, updates and drops rows in one pass (responsive at 100,000)."""

from __future__ import annotations

import dataclasses
import time

import pytest
from screen_fakes import NOW, Clock, FakeController, make_view, paused_view, wait_until

from widgets.app import WaylayApp

pytestmark = pytest.mark.usefixtures("utc")

FLOWS = 100_000
BATCHES = 20


def many_views(count: int) -> list:
    template = make_view(0)
    return [
        dataclasses.replace(
            template,
            id=f"f{n}",
            seq=n,
            started=NOW + n / 1000,
            path=f"/items/{n}?page={n % 7}",
            url=f"https://api.example.com/items/{n}?page={n % 7}",
            status=200 + (n % 4) * 100,
        )
        for n in range(1, count + 1)
    ]


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
        assert app.table.get_row("f1")[4] == "503"
        assert app.table.get_row(f"f{FLOWS}")[4].startswith("⏸ request")
        assert app.header.paused_count == 1
        assert elapsed < 60
        assert batch < 5
