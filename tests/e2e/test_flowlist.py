"""Issue 13 end-to-end: the app under Textual's pilot with the real embedded proxy, real
clients and real upstreams — the breakpoint queue, auto-advance, auto-open, marks, follow
and sort."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from monitor.app import make_app
from tests.helpers import until
from widgets.dialogs import DecisionDialog

pytestmark = pytest.mark.e2e

SIZE = (150, 40)
ASK = '[[rule]]\nid = "ask"\nurls = ["*://127.0.0.1/ask*"]\naction = "ask"\n'


def with_rules(settings, text: str):
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text("version = 1\n" + text)
    return settings


def client(port: int, **kw) -> httpx.Client:
    return httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=20, **kw)


def row_with_path(app, path: str) -> str | None:
    for flow_id, view in app.flows.items():
        if view.path == path:
            return flow_id
    return None


def dialog_of(app) -> str | None:
    screen = app.screen
    return screen.flow_id if isinstance(screen, DecisionDialog) else None


async def test_queue_p_enter_and_auto_advance_through_every_pause(settings, upstream, pool):
    app = make_app(with_rules(settings, ASK))
    _, port = app.session.start()
    async with app.run_test(size=SIZE) as pilot:
        with client(port) as c:
            assert c.get(upstream.url("/free")).status_code == 200
            first = pool.submit(c.get, upstream.url("/ask-1"))
            one = await until(pilot, lambda: row_with_path(app, "/ask-1"), "first row")
            await until(pilot, lambda: app.flows[one].paused, "first paused")
            second = pool.submit(c.get, upstream.url("/ask-2"))
            two = await until(pilot, lambda: row_with_path(app, "/ask-2"), "second row")
            await until(pilot, lambda: app.flows[two].paused, "second paused")
            await until(pilot, lambda: app.queue.flow_ids == [one, two], "the queue")
            assert app.queue.display
            assert "/ask-1" in app.queue.render().plain.splitlines()[0]
            app.table.select_flow(row_with_path(app, "/free"))
            await pilot.press("p")
            assert app.table.selected_id == one
            await pilot.press("enter")
            await until(pilot, lambda: dialog_of(app) == one, "the first dialog")
            await pilot.press("c")
            assert first.result(10).status_code == 200
            await until(pilot, lambda: dialog_of(app) == two, "the next dialog by itself")
            await pilot.press("x")
            with pytest.raises(httpx.RemoteProtocolError):
                second.result(10)
            await until(pilot, lambda: not app.queue.display, "an empty queue hides")
            assert dialog_of(app) is None
    app.session.stop()


async def test_auto_open_and_marked_flows_continued_at_once(settings, upstream, pool):
    app = make_app(with_rules(settings, ASK))
    _, port = app.session.start()
    async with app.run_test(size=SIZE) as pilot:
        with client(port) as c:
            await pilot.press("O")
            waiting = pool.submit(c.get, upstream.url("/ask-auto"))
            fid = await until(pilot, lambda: row_with_path(app, "/ask-auto"), "the row")
            await until(pilot, lambda: dialog_of(app) == fid, "a dialog opened by itself")
            await pilot.press("c")
            assert waiting.result(10).status_code == 200
            await pilot.press("O")  # off again
            many = [pool.submit(c.get, upstream.url(f"/ask-m{i}")) for i in range(3)]
            await until(pilot, lambda: len(app.waiting_flows) == 3, "three paused")
            assert dialog_of(app) is None
            ids = [row_with_path(app, f"/ask-m{i}") for i in range(3)]
            for fid in ids[:2]:
                app.table.select_flow(fid)
                await pilot.press("m")
            await pilot.press("a")
            assert [f.result(10).status_code for f in many[:2]] == [200, 200]
            assert not many[2].done()
            app.table.select_flow(ids[2])
            await pilot.press("X")
            with pytest.raises(httpx.RemoteProtocolError):
                many[2].result(10)
    app.session.stop()


async def test_follow_sort_and_jumps_on_live_traffic(settings, upstream, pool):
    app = make_app(settings)
    _, port = app.session.start()
    async with app.run_test(size=SIZE) as pilot:

        def traffic(start: int, end: int):
            with client(port) as c:
                return [c.get(upstream.url(f"/n/{i}")).status_code for i in range(start, end)]

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(pool, traffic, 0, 5)
        await until(pilot, lambda: len(app.flows) == 5, "five rows")
        await pilot.press("F")
        assert app.table.follow
        await loop.run_in_executor(pool, traffic, 5, 60)
        newest = await until(pilot, lambda: row_with_path(app, "/n/59"), "the newest row")
        await until(pilot, lambda: app.table.selected_id == newest, "the cursor following")
        await pilot.press("up")
        assert not app.table.follow
        await pilot.press("g")
        assert app.table.selected_id == row_with_path(app, "/n/0")
        await pilot.press("G")
        assert app.table.selected_id == newest
        app.table.sort_by("path", reverse=True)
        await pilot.pause()
        paths = [app.flows[fid].path for fid in app.table.flow_ids()]
        assert paths == sorted(paths, reverse=True)
        assert "sorted by path" in app.header.render().plain
    app.session.stop()
