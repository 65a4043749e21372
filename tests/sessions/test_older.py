"""``--session`` with a small ``--max-flows``: the screen reaches every flow of the
session, the ones no longer in memory read back from the file (rows by range, details
by id), in one process and attached through the control socket."""

from __future__ import annotations

import contextlib
import json

import httpx
import pytest

from monitor import app as app_module
from tests.attach.conftest import screens_through_the_socket
from tests.helpers import until

pytestmark = pytest.mark.e2e

SIZE = (150, 40)
SENT = 200
KEPT = 50


@contextlib.contextmanager
def in_process(monkeypatch, module):
    yield


@contextlib.asynccontextmanager
async def screen_on_a_session(settings, tmp_path, monkeypatch, through):
    """The screen (in process, or attached through the control socket) on a proxy that
    keeps a session file and KEPT flows in memory: (app, pilot, proxy port)."""
    settings.session = tmp_path / "s.waylay-session"
    settings.max_flows = KEPT
    wrap = screens_through_the_socket if through == "socket" else in_process
    with wrap(monkeypatch, app_module):
        app, session = app_module.make_app(settings)
        _, port = session.start()
        try:
            async with app.run_test(size=SIZE) as pilot:
                yield app, pilot, port
        finally:
            session.stop()


@pytest.mark.parametrize("through", ["in-process", "socket"])
async def test_the_screen_reaches_the_oldest_flow_of_a_session_beyond_max_flows(
    settings, upstream, tmp_path, monkeypatch, through
):
    screen = screen_on_a_session(settings, tmp_path, monkeypatch, through)
    async with screen as (app, pilot, port):
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=20) as c:
            for i in range(SENT):
                r = c.post(upstream.url(f"/echo/n{i}"), content=f"body-{i}".encode())
                assert r.status_code == 200
        table = app.table
        # memory holds the newest KEPT; the file the rest, shown above them
        await until(pilot, lambda: len(app.flows) == KEPT, "memory bounded")
        await until(pilot, lambda: table.row_count == SENT, "every flow of the session listed")
        await pilot.pause(0.3)
        assert table.older_count == SENT - KEPT
        assert app.header.flow_count == SENT
        assert len(app.flows) == KEPT  # the older rows are not held by the screen
        await pilot.press("home")
        await until(pilot, lambda: table.cursor_row == 0, "the top")
        oldest = app.selected_flow
        assert oldest is not None and oldest.path == "/echo/n0"
        assert oldest.id not in app.flows
        await pilot.press("enter")
        detail = app.detail
        await until(pilot, lambda: detail.has_class("-open"), "details open")
        await until(pilot, lambda: detail.flow_id == oldest.id, "details of the oldest")
        shown = detail._view
        assert shown is not None and shown.request_body == b"body-0"
        echoed = json.loads(shown.response_body)
        assert echoed["path"] == "/echo/n0" and echoed["body"] == "body-0"
        # it can be exported and sent again (read back from the file)
        assert "/echo/n0" in app.controller.export_curl(oldest.id)
        assert app.controller.replay(oldest.id) is None
        await until(
            pilot,
            lambda: any(v.path == "/echo/n0" for v in app.flows.values()),
            "the replay of the oldest, a new flow",
        )
        # the next older rows come by range, as the cursor moves down
        await pilot.press("escape")
        for _ in range(3):
            await pilot.press("down")
        assert app.selected_flow.path == "/echo/n3"
        await pilot.press("pagedown")
        row = table.cursor_row
        assert app.selected_flow.path == f"/echo/n{row}"
        # a filter covers the older flows too (SQL on the session file)
        assert app.set_filter("~u /echo/n1[0-9]$") is None
        await until(pilot, lambda: table.row_count == 10, "the filter over the file")
        await pilot.press("home")
        assert app.selected_flow.path == "/echo/n10"
        assert app.set_filter("n19") is None
        # plain text: /echo/n19, /echo/n190..n199
        await until(pilot, lambda: table.row_count == 11, "plain text over the file")
        assert app.set_filter("") is None
        await until(pilot, lambda: table.row_count == SENT + 1, "all again")


@pytest.fixture
def session_of_120(tmp_path, monkeypatch):
    """A session file of 120 flows (/item/0 … /item/119, each body "request N") of which
    ``waylay open`` holds the newest 30 in memory."""
    from mitmproxy.test import tflow

    from monitor import open as open_module
    from monitor.store import SessionStore

    path = tmp_path / "big.waylay-session"
    store = SessionStore(path)
    store.open()
    for i in range(120):
        flow = tflow.tflow(resp=True)
        flow.request.path = f"/item/{i}"
        flow.request.content = f"request {i}".encode()
        store.add(flow)
    store.close()
    monkeypatch.setattr(open_module, "SESSION_LIMIT", 30)
    return path


async def test_waylay_open_of_a_session_file_reaches_flows_beyond_what_it_holds(session_of_120):
    from monitor import open as open_module

    path = session_of_120
    app = open_module.make_open_app(path)
    async with app.run_test(size=SIZE) as pilot:
        table = app.table
        await until(pilot, lambda: len(app.flows) == 30, "the newest in memory")
        await until(pilot, lambda: table.row_count == 120, "every flow listed")
        assert table.older_count == 90
        await pilot.press("home")
        assert app.selected_flow.path == "/item/0" and app.selected_flow.id not in app.flows
        await pilot.press("enter")
        await until(pilot, lambda: app.detail.flow_id == app.selected_flow.id, "details")
        assert app.detail._view.request_body == b"request 0"
        assert app.set_filter("~u /item/1[0-9]$") is None
        await until(pilot, lambda: table.row_count == 10, "the filter over the file")
        await pilot.press("home")
        assert app.selected_flow.path == "/item/10"


@pytest.mark.parametrize("through", ["in-process", "socket"])
async def test_w_and_the_har_export_take_the_flows_kept_only_in_the_session_file(
    settings, upstream, tmp_path, monkeypatch, through
):
    from mitmproxy.io import FlowReader
    from textual.widgets import OptionList, Static

    monkeypatch.chdir(tmp_path)
    screen = screen_on_a_session(settings, tmp_path, monkeypatch, through)
    async with screen as (app, pilot, port):
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=20) as c:
            for i in range(SENT):
                r = c.get(upstream.url(f"/echo/n{i}"))
                assert r.status_code == 200
        table = app.table
        await until(pilot, lambda: len(app.flows) == KEPT, "memory bounded")
        await until(pilot, lambda: table.row_count == SENT, "every flow listed")

        async def save(name: str, listed: bool) -> list[str]:
            await pilot.press("w")
            await until(pilot, lambda: app.screen.id == "save-flows", "the save menu")
            if listed:
                options = app.screen.query_one("#save-which", OptionList)
                assert "Listed flows (111 flows" in str(options.get_option("listed").prompt)
                assert f"All flows ({SENT} flows)" in str(options.get_option("all").prompt)
            else:
                shown = [str(w.render()) for w in app.screen.query(Static)]
                assert f"All flows ({SENT} flows)" in shown
            app.screen.query_one("#save-path").value = str(tmp_path / name)
            await pilot.press("enter")
            await until(pilot, lambda: app.screen.id != "save-flows", "saved")
            with open(tmp_path / name, "rb") as fo:
                return [f.request.path for f in FlowReader(fo).stream()]

        # all: the 150 of the file above the list, then the 50 in memory
        assert await save("all.flows", listed=False) == [f"/echo/n{i}" for i in range(SENT)]
        # filtered: n1, n10-n19, n100-n199 (of which 100-149 only in the file)
        assert app.set_filter("n1") is None
        await until(pilot, lambda: table.row_count == 111, "the filter over the file")
        expected = [f"/echo/n{i}" for i in range(SENT) if str(i).startswith("1")]
        assert await save("listed.flows", listed=True) == expected

        # the HAR export: the listed flows, then all of them
        await pilot.press("E")
        await until(pilot, lambda: app.screen.id != "_default", "the export menu")
        menu = app.screen
        options = menu.query_one(OptionList)
        assert "(111 flows)" in str(options.get_option("har-listed").prompt)
        assert "150 older" in str(options.get_option("har-all").prompt)
        options.highlighted = options.get_option_index("har-listed")
        await pilot.press("enter")
        await until(pilot, lambda: list(tmp_path.glob("*-listed.har")), "a HAR file")
        (listed_har,) = tmp_path.glob("*-listed.har")
        entries = json.loads(listed_har.read_text())["log"]["entries"]
        assert [e["request"]["url"].split("/echo/")[1] for e in entries] == [
            p.split("/echo/")[1] for p in expected
        ]


async def test_waylay_open_of_a_session_file_saves_and_exports_its_older_flows(
    session_of_120, tmp_path, monkeypatch
):
    from mitmproxy.io import FlowReader

    from monitor import open as open_module

    path = session_of_120
    monkeypatch.chdir(tmp_path)
    app = open_module.make_open_app(path)
    async with app.run_test(size=SIZE) as pilot:
        table = app.table
        await until(pilot, lambda: table.row_count == 120, "every flow listed")
        assert app.set_filter("~u /item/1[0-9]$") is None
        await until(pilot, lambda: table.row_count == 10, "the filter over the file")
        await pilot.press("w")
        await until(pilot, lambda: app.screen.id == "save-flows", "the save menu")
        app.screen.query_one("#save-path").value = str(tmp_path / "teens.flows")
        await pilot.press("enter")
        await until(pilot, lambda: app.screen.id != "save-flows", "saved")
        with open(tmp_path / "teens.flows", "rb") as fo:
            paths = [f.request.path for f in FlowReader(fo).stream()]
        assert paths == [f"/item/{i}" for i in range(10, 20)]
        # all of them as HAR: the 90 of the file, then the 30 in memory
        count = app.controller.export_har(str(tmp_path / "all.har"), None, "")
        entries = json.loads((tmp_path / "all.har").read_text())["log"]["entries"]
        assert count == len(entries) == 120
        assert [e["request"]["url"].rsplit("/", 1)[1] for e in entries] == [
            str(i) for i in range(120)
        ]
