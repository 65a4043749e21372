"""Issue 13 end-to-end: the app under Textual's pilot with the real embedded proxy, real
clients and real upstreams — the breakpoint queue, auto-advance, auto-open, marks, follow
and sort."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from monitor.app import make_app
from tests.helpers import focused_input, until
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
    app, session = make_app(with_rules(settings, ASK))
    _, port = session.start()
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
    session.stop()


async def test_auto_open_and_marked_flows_continued_at_once(settings, upstream, pool):
    app, session = make_app(with_rules(settings, ASK))
    _, port = session.start()
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
    session.stop()


async def test_follow_sort_and_jumps_on_live_traffic(settings, upstream, pool):
    app, session = make_app(settings)
    _, port = session.start()
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
    session.stop()


async def finished_row(app, pilot, path: str) -> str:
    fid = await until(pilot, lambda: row_with_path(app, path), f"row {path}")
    await until(pilot, lambda: app.flows[fid].finished, f"{path} finished")
    return fid


async def test_d_deletes_one_finished_flow_here_and_in_the_proxy(settings, upstream, pool):
    app, session = make_app(settings)
    _, port = session.start()
    async with app.run_test(size=SIZE) as pilot:

        def traffic():
            with client(port) as c:
                return [c.get(upstream.url(p)).status_code for p in ("/d/1", "/d/2")]

        await asyncio.get_running_loop().run_in_executor(pool, traffic)
        first = await finished_row(app, pilot, "/d/1")
        second = await finished_row(app, pilot, "/d/2")
        app.table.select_flow(first)
        await pilot.press("d")
        await until(pilot, lambda: first not in session.recorder.flows, "gone in the proxy")
        assert app.table.flow_ids() == [second] and first not in app.flows
        assert app.table.selected_id == second
        await pilot.pause(0.2)  # a late batch must not bring it back
        assert first not in app.flows
    session.stop()


async def test_r_replays_through_the_proxy_as_a_new_linked_row(settings, upstream, pool):
    app, session = make_app(settings)
    _, port = session.start()
    async with app.run_test(size=SIZE) as pilot:
        with client(port) as c:
            await asyncio.get_running_loop().run_in_executor(
                pool, lambda: c.post(upstream.url("/echo/r"), content=b"payload")
            )
        original = await finished_row(app, pilot, "/echo/r")
        app.table.select_flow(original)
        await pilot.press("r")
        await until(pilot, lambda: len(upstream.requests) == 2, "the replay upstream")
        replay = await until(
            pilot,
            lambda: next((f for f in app.flows if f != original and app.flows[f].finished), None),
            "the replayed row",
        )
        view = app.flows[replay]
        assert (view.method, view.path, view.status) == ("POST", "/echo/r", 200)
        # notes are details: an attached screen fetches them (full_view)
        assert f"replay of #{app.flows[original].seq}" in app.full_view(view).notes
        assert upstream.requests[1]["body"] == "payload"
    session.stop()


async def test_r_right_after_a_cancel_is_a_new_request_not_a_client_retry(settings, upstream, pool):
    """A cancelled request's identical retry within a few seconds is absorbed into the
    cancel (monitor/retries.py); a person's replay of it is not a retry: it gets its row
    and, the ``times = 1`` cancel spent, reaches upstream."""
    once = '[[rule]]\nid = "once"\nurls = ["*://*/blocked*"]\naction = "cancel"\ntimes = 1\n'
    app, session = make_app(with_rules(settings, once))
    _, port = session.start()
    async with app.run_test(size=SIZE) as pilot:

        def cancelled():
            with client(port) as c, pytest.raises(httpx.HTTPError):
                c.get(upstream.url("/blocked"))

        await asyncio.get_running_loop().run_in_executor(pool, cancelled)
        original = await finished_row(app, pilot, "/blocked")
        assert app.flows[original].state == "cancelled"
        assert upstream.requests == []
        app.table.select_flow(original)
        await pilot.press("r")
        replay = await until(
            pilot,
            lambda: next((f for f in app.flows if f != original and app.flows[f].finished), None),
            "the replayed row",
        )
        assert app.flows[replay].status == 200
        assert [r["path"] for r in upstream.requests] == ["/blocked"]
        assert app.flows[original].retries == 0
    session.stop()


async def test_capital_d_duplicates_into_the_edit_form_and_sends_a_new_flow(
    settings, upstream, pool
):
    from widgets.request_editor import RequestEditor

    app, session = make_app(settings)
    _, port = session.start()
    async with app.run_test(size=SIZE) as pilot:
        with client(port) as c:
            await asyncio.get_running_loop().run_in_executor(
                pool, lambda: c.post(upstream.url("/echo/orig"), content=b"one")
            )
        original = await finished_row(app, pilot, "/echo/orig")
        app.table.select_flow(original)
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, RequestEditor), "the edit form")
        editor = app.screen
        url = editor.query_one("#editor-url")
        assert app.focused is url and url.value == upstream.url("/echo/orig")
        url.value = upstream.url("/echo/edited")
        editor.query_one("#editor-body").text = "two, longer"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, RequestEditor), "sent")
        await finished_row(app, pilot, "/echo/edited")
        assert [r["path"] for r in upstream.requests] == ["/echo/orig", "/echo/edited"]
        assert upstream.requests[1]["body"] == "two, longer"
        assert app.flows[original].path == "/echo/orig"  # the original is untouched
    session.stop()


async def test_e_edits_the_upstream_response(settings, upstream, pool):
    from widgets.dialogs import ResponseDialog

    rule = (
        '[[rule]]\nid = "ask-resp"\nevent = "response"\n'
        'urls = ["*://127.0.0.1/echo/resp*"]\naction = "ask"\n'
    )
    app, session = make_app(with_rules(settings, rule))
    _, port = session.start()
    async with app.run_test(size=SIZE) as pilot:
        with client(port) as c:
            waiting = pool.submit(c.get, upstream.url("/echo/resp"))
            fid = await until(pilot, lambda: row_with_path(app, "/echo/resp"), "the row")
            await until(pilot, lambda: app.flows[fid].paused, "paused at response")
            app.table.select_flow(fid)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, ResponseDialog), "the dialog")
            await pilot.press("e")
            dialog = app.screen
            status = dialog.query_one("#upstream-status")
            assert app.focused is status and status.value == "200"
            headers = dialog.query_one("#upstream-headers").text
            assert "Content-Type: application/json" in headers  # upstream's, prefilled
            body = dialog.query_one("#upstream-body")
            assert '"path": "/echo/resp"' in body.text
            body.text = body.text.replace("/echo/resp", "/edited-by-waylay")
            await pilot.press("ctrl+s")
            response = waiting.result(10)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json()["path"] == "/edited-by-waylay"
    session.stop()


async def test_l_shows_proxy_errors_reloads_timeouts_and_tls_failures(
    settings, upstream, tls_upstream, pool
):
    import socket

    from widgets.event_log import EventLogScreen

    settings.ask_timeout = 1
    app, session = make_app(with_rules(settings, ASK))
    _, port = session.start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
        async with app.run_test(size=SIZE) as pilot:

            def traffic():
                with client(port) as c:
                    c.get(f"http://127.0.0.1:{dead}/gone")  # an upstream error
                    c.get(upstream.url("/ask-timeout"))  # times out after 1 s: continues
                with client(port) as c:  # does not trust waylay's CA
                    try:
                        c.get(tls_upstream.url("/x"))
                    except httpx.ConnectError:
                        pass

            await asyncio.get_running_loop().run_in_executor(pool, traffic)
            settings.rules.write_text("version = 1\n" + ASK + "# touched\n")
            await pilot.press("l")
            assert isinstance(app.screen, EventLogScreen)

            def kinds():
                app.screen.reload()
                return {kind for _, kind, _ in app.screen.lines}

            await until(pilot, lambda: {"error", "timeout", "tls", "rules"} <= kinds(), "events")
            text = "\n".join(f"{kind} {line}" for _, kind, line in app.screen.lines)
            assert f"127.0.0.1:{dead}/gone" in text
            assert "/ask-timeout: request timed out; continue" in text
            assert "failed the TLS handshake" in text
            assert "rules file reloaded" in text
            await pilot.press("l")
            assert not isinstance(app.screen, EventLogScreen)
    session.stop()


async def test_a_client_that_does_not_trust_the_ca_leaves_a_row(
    settings, tls_upstream, waylay_ca, pool
):
    """curl without waylay's CA fails the TLS handshake: no request ever reaches a hook,
    yet the list gets a row (a failed CONNECT to where it wanted to go) whose error says
    why, in the row, the URL line and the detail pane; a client that trusts the CA gets
    its ordinary row."""
    from tests.e2e.test_screen import detail_text
    from tests.helpers import curl, screen_text

    app, session = make_app(settings)
    _, port = session.start()
    target = tls_upstream.url("/secret").split("/secret")[0].removeprefix("https://")
    async with app.run_test(size=SIZE) as pilot:
        loop = asyncio.get_running_loop()
        failed = await loop.run_in_executor(pool, curl, port, tls_upstream.url("/secret"))
        assert failed.returncode == 60, failed.stderr  # curl: peer certificate not trusted
        fid = await until(
            pilot,
            lambda: next((f for f, v in app.flows.items() if v.method == "CONNECT"), None),
            "a row for the failed handshake",
        )
        view = app.flows[fid]
        assert (view.host, view.port, view.url) == ("127.0.0.1", tls_upstream.port, target)
        assert view.state == "error" and view.finished
        assert view.error.startswith("client TLS handshake failed: ")
        assert "does not trust the proxy's certificate" in view.error
        assert "`waylay ca`" in view.error
        assert app.table.flow_ids() == [fid]
        assert app.table.kind_of(fid) == "error"
        text = screen_text(app)
        assert f"CONNECT {target}  error: client TLS handshake failed" in text
        await pilot.press("enter")
        await until(pilot, lambda: "does not trust" in detail_text(app), "the error in full")
        await pilot.press("escape")

        trusted = await loop.run_in_executor(
            pool, lambda: curl(port, tls_upstream.url("/echo"), cacert=waylay_ca)
        )
        assert trusted.returncode == 0, trusted.stderr
        ok = await finished_row(app, pilot, "/echo")
        assert app.flows[ok].status == 200 and app.table.flow_ids() == [fid, ok]
        assert sum(v.method == "CONNECT" for v in app.flows.values()) == 1
    session.stop()


async def test_f_filters_live_flows_with_a_mitmproxy_expression(settings, upstream, pool):
    app, session = make_app(settings)
    _, port = session.start()
    async with app.run_test(size=SIZE) as pilot:

        def traffic():
            with client(port) as c:
                for i in range(6):
                    c.post(upstream.url(f"/p/{i}"), content=b"x") if i % 2 else c.get(
                        upstream.url(f"/g/{i}")
                    )

        await asyncio.get_running_loop().run_in_executor(pool, traffic)
        await until(pilot, lambda: sum(v.finished for v in app.flows.values()) == 6, "six rows")
        await pilot.press("f", *"~m POST", "enter")
        await until(pilot, lambda: not app.filtering, "the filter applied")
        assert sorted(app.flows[f].path for f in app.table.flow_ids()) == ["/p/1", "/p/3", "/p/5"]
        assert "(3 shown)" in app.header.render().plain

        def more():  # flows that arrive under the filter: the proxy side's verdict decides
            with client(port) as c:
                c.post(upstream.url("/p/new"), content=b"x")
                c.get(upstream.url("/g/new"))

        await asyncio.get_running_loop().run_in_executor(pool, more)
        await until(pilot, lambda: sum(v.finished for v in app.flows.values()) == 8, "8 flows")
        await until(pilot, lambda: app.table.row_count == 4, "the new POST shown")
        shown = sorted(app.flows[f].path for f in app.table.flow_ids())
        assert shown == ["/p/1", "/p/3", "/p/5", "/p/new"]
        await pilot.press("f")
        await focused_input(pilot, "#prompt-input")
        await pilot.press("enter")
        await until(pilot, lambda: app.table.row_count == 8, "every row again")
    session.stop()
