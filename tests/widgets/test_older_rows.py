"""Rows above the list for flows kept elsewhere (a proxy's session file): read by range
as they come into view, never all held, the cursor keeping its flow while they grow."""

from __future__ import annotations

import dataclasses

import pytest
from screen_fakes import NOW, Clock, FakeController, make_view, wait_until

from widgets.app import WaylayApp
from widgets.flow_table import OLDER_BLOCK, OLDER_CACHE

pytestmark = pytest.mark.usefixtures("utc")


def view(n: int, prefix: str = "old"):
    return dataclasses.replace(
        make_view(0),
        id=f"{prefix}{n}",
        seq=n,
        started=NOW + n,
        path=f"/{prefix}/{n}",
        url=f"https://api.example.com/{prefix}/{n}",
    )


class SessionController(FakeController):
    """A fake proxy whose session file holds ``older`` flows beyond those it sends."""

    def __init__(self, older: int) -> None:
        super().__init__()
        self.older = [view(n) for n in range(older)]
        self.asked: list[tuple[str, int, int]] = []
        self.broken = False

    def _matching(self, expr: str):
        return [v for v in self.older if expr in v.path] if expr else self.older

    def older_flows(self, expr: str, start: int, count: int):
        if self.broken and count:
            raise OSError("the file is gone")
        self.asked.append((expr, start, count))
        chosen = self._matching(expr)
        return len(chosen), chosen[start : start + count]

    def older_progress(self, expr: str):
        return None

    def stored_flow(self, flow_id: str):
        found = next((v for v in self.older if v.id == flow_id), None)
        return dataclasses.replace(found, request_body=b"from the file") if found else None


async def test_older_rows_are_read_in_blocks_as_they_come_into_view():
    controller = SessionController(older=10 * OLDER_CACHE)
    app = WaylayApp(controller, clock=Clock())
    async with app.run_test(size=(140, 30)) as pilot:
        app.push_flows([view(n, "new") for n in range(10)])
        table = app.table
        await wait_until(pilot, lambda: table.row_count == 10 * OLDER_CACHE + 10, "all rows")
        assert app.header.flow_count == 10 * OLDER_CACHE + 10
        assert table.older_count == 10 * OLDER_CACHE
        await pilot.press("home")
        assert app.selected_flow.id == "old0"
        rows_read = sum(count for _, _, count in controller.asked)
        assert 0 < rows_read <= 2 * OLDER_BLOCK  # the screen on show, not the file
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.detail.flow_id == "old0", "details")
        assert app.detail._view.request_body == b"from the file"
        await pilot.press("escape")
        # all the way down and back: the rows read are kept only up to OLDER_CACHE
        for _ in range(40):
            await pilot.press("pagedown")
        await pilot.press("end")
        assert app.selected_flow.id == "new9"
        await pilot.press("home")
        assert app.selected_flow.id == "old0"
        assert len(table._older_views) <= OLDER_CACHE


async def test_the_cursor_keeps_its_flow_when_flows_age_into_the_file():
    controller = SessionController(older=100)
    app = WaylayApp(controller, clock=Clock())
    async with app.run_test(size=(140, 30)) as pilot:
        app.push_flows([view(n, "new") for n in range(10)])
        table = app.table
        await wait_until(pilot, lambda: table.row_count == 110, "all rows")
        table.select_flow("new5")
        assert table.cursor_row == 105
        # three flows leave memory for the file
        aged = [dataclasses.replace(view(n, "new"), seq=100 + n) for n in range(3)]
        app.push_flows([], removed=["new0", "new1", "new2"])
        controller.older += aged
        await wait_until(pilot, lambda: table.older_count == 103, "the file grew", 5)
        assert app.selected_flow.id == "new5" and table.cursor_row == 105
        # sorted by a column: only the flows in memory (the file is in arrival order)
        table.sort_by("path")
        assert table.older_count == 0 and table.row_count == 7
        assert app.selected_flow.id == "new5"
        table.sort_by("")
        assert table.older_count == 103 and app.selected_flow.id == "new5"


async def test_a_filter_asks_the_file_and_an_unreadable_file_breaks_nothing():
    controller = SessionController(older=300)
    app = WaylayApp(controller, clock=Clock())
    async with app.run_test(size=(140, 30)) as pilot:
        app.push_flows([view(n, "new") for n in range(5)])
        table = app.table
        await wait_until(pilot, lambda: table.row_count == 305, "all rows")
        assert app.set_filter("old/1") is None  # /old/1, /old/10-19, /old/100-199
        await wait_until(pilot, lambda: table.row_count == 111, "the filter over the file")
        assert ("old/1", 0, 0) in controller.asked
        await pilot.press("home")
        assert app.selected_flow.path == "/old/1"
        assert app.set_filter("") is None
        await wait_until(pilot, lambda: table.row_count == 305, "all again")
        controller.broken = True
        table.set_older(300, table._older_fetch, reset=True)  # its rows must be read again
        await pilot.press("home")
        await pilot.pause()
        assert table.selected_id is None  # nothing to select, and no crash
        assert "cannot be read now" in table.render_line(1).text
        await pilot.press("end")
        assert app.selected_flow.id == "new4"


async def test_a_slow_filter_over_the_file_shows_its_progress_in_the_header():
    import threading

    release = threading.Event()

    class Slow(SessionController):
        def older_flows(self, expr: str, start: int, count: int):
            if expr and count == 0:
                release.wait(10)  # the file is being filtered
            return super().older_flows(expr, start, count)

        def older_progress(self, expr: str):
            return (40, 100) if expr and not release.is_set() else None

    controller = Slow(older=300)
    app = WaylayApp(controller, clock=Clock())
    async with app.run_test(size=(140, 30)) as pilot:
        app.push_flows([view(n, "new") for n in range(5)])
        await wait_until(pilot, lambda: app.table.row_count == 305, "all rows")
        assert app.set_filter("old/2") is None
        await wait_until(
            pilot, lambda: "session file 40%" in app.header.render().plain, "progress shown"
        )
        assert app.filtering
        release.set()
        await wait_until(pilot, lambda: app.table.row_count == 111, "the filter over the file")
        await wait_until(pilot, lambda: not app.filtering, "progress gone")
        assert "session file" not in app.header.render().plain
