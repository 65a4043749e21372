"""The whole app under Textual's pilot with the real embedded proxy, real clients and
real upstreams: rows, details, the flow-list keys and remembering (issues 2 and 4)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import tomllib

import httpx
import pytest
from rich.console import Console

from monitor.app import make_app
from tests.helpers import curl, focused_input, until

pytestmark = pytest.mark.e2e

SIZE = (150, 40)


def cells(app, flow_id: str) -> dict[str, str]:
    from widgets.flow_table import COLUMNS

    row = app.table.get_row(flow_id)
    return {key: str(value) for (key, _, _), value in zip(COLUMNS, row, strict=True)}


def row_with_path(app, path: str) -> str | None:
    for flow_id, view in app.flows.items():
        if view.path == path:
            return flow_id
    return None


def detail_text(app) -> str:
    console = Console(width=140, record=True, color_system=None)
    console.print(app.query_one("#detail-body").content)
    return console.export_text()


def with_rules(settings, text: str):
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text("version = 1\n" + text)
    return settings


ASK = '[[rule]]\nid = "ask"\nurls = ["*://127.0.0.1/ask*"]\naction = "ask"\n'


def client(port: int, **kw) -> httpx.Client:
    return httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=20, **kw)


async def test_rows_status_and_details_for_http_and_https(
    settings, upstream, tls_upstream, waylay_ca, pool
):
    app, session = make_app(settings)
    _, port = session.start()
    async with app.run_test(size=SIZE) as pilot:

        def traffic():
            with client(port, verify=ssl.create_default_context(cafile=str(waylay_ca))) as c:
                c.post(upstream.url("/echo/json"), json={"hello": "waylay"})
                c.get(tls_upstream.url("/status/404"))
            return curl(port, upstream.url("/curl-path"))

        r = await asyncio.get_running_loop().run_in_executor(pool, traffic)
        assert r.stdout.endswith("\n200")
        await until(
            pilot,
            lambda: len(app.flows) == 3 and all(v.finished for v in app.flows.values()),
            "three finished rows",
        )
        post = row_with_path(app, "/echo/json")
        assert cells(app, post)["method"] == "POST"
        assert cells(app, post)["state"] == "200"
        assert cells(app, row_with_path(app, "/status/404"))["state"] == "404"
        assert app.flows[row_with_path(app, "/status/404")].scheme == "https"
        assert app.table.flow_ids()[2] == row_with_path(app, "/curl-path")
        app.table.select_flow(post)
        await pilot.press("enter")
        await until(pilot, lambda: app.detail.has_class("-open"), "detail pane")
        text = detail_text(app)
        assert "POST" in text and "/echo/json" in text
        assert '"hello"' in text and "waylay" in text  # request body
        assert '"server"' in text  # the echoed JSON response body
        assert "application/json" in text.lower()
    session.stop()


async def test_unreachable_upstream_row_shows_the_error_and_the_proxy_keeps_serving(
    settings, upstream, pool
):
    app, session = make_app(settings)
    _, port = session.start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
        async with app.run_test(size=SIZE) as pilot:

            def traffic():
                with client(port) as c:
                    first = c.get(f"http://127.0.0.1:{dead}/gone").status_code
                    return first, c.get(upstream.url("/alive")).status_code

            codes = await asyncio.get_running_loop().run_in_executor(pool, traffic)
            assert codes == (502, 200)
            gone = await until(pilot, lambda: row_with_path(app, "/gone"), "the failed row")
            await until(pilot, lambda: app.flows[gone].state == "error", "error state")
            assert cells(app, gone)["state"].startswith("error")
            assert "Connect call failed" in cells(app, gone)["state"]
    session.stop()


async def test_a_continues_X_cancels_A_continues_all(settings, upstream, pool):
    app, session = make_app(with_rules(settings, ASK))
    _, port = session.start()
    async with app.run_test(size=SIZE) as pilot:
        with client(port) as c:
            waiting = pool.submit(c.get, upstream.url("/ask-a"))
            fid = await until(pilot, lambda: row_with_path(app, "/ask-a"), "the row")
            await until(pilot, lambda: app.flows[fid].paused, "paused")
            assert cells(app, fid)["state"].startswith("⏸ request")
            assert not waiting.done()  # the client is still waiting
            app.table.select_flow(fid)
            await pilot.press("a")
            assert waiting.result(10).status_code == 200

            waiting = pool.submit(c.get, upstream.url("/ask-x"))
            fid = await until(pilot, lambda: row_with_path(app, "/ask-x"), "the row")
            await until(pilot, lambda: app.flows[fid].paused, "paused")
            app.table.select_flow(fid)
            await pilot.press("X")
            with pytest.raises(httpx.RemoteProtocolError):
                waiting.result(10)
            await until(pilot, lambda: app.flows[fid].state == "cancelled", "cancelled row")

            many = [pool.submit(c.get, upstream.url(f"/ask-many-{i}")) for i in range(8)]
            await until(pilot, lambda: len(app.paused_flows) == 8, "eight paused rows")
            await pilot.press("A")
            assert [f.result(10).status_code for f in many] == [200] * 8
    session.stop()
    assert {r["path"] for r in upstream.requests} == {"/ask-a"} | {
        f"/ask-many-{i}" for i in range(8)
    }


async def paused_dialog(app, pilot, pool, c, url, path):
    waiting = pool.submit(c.get, url)
    fid = await until(pilot, lambda: row_with_path(app, path), f"row {path}")
    await until(pilot, lambda: app.flows[fid].paused, "paused")
    app.table.select_flow(fid)
    await pilot.press("enter")
    from widgets.dialogs import DecisionDialog

    await until(pilot, lambda: isinstance(app.screen, DecisionDialog), "the dialog")
    return waiting


async def test_dialog_keys_continue_cancel_rewrite(settings, upstream, other_upstream, pool):
    app, session = make_app(with_rules(settings, ASK))
    _, port = session.start()
    async with app.run_test(size=SIZE) as pilot:
        with client(port) as c:
            w = await paused_dialog(app, pilot, pool, c, upstream.url("/ask-c"), "/ask-c")
            await pilot.press("c")
            assert w.result(10).status_code == 200

            w = await paused_dialog(app, pilot, pool, c, upstream.url("/ask-x"), "/ask-x")
            await pilot.press("x")
            with pytest.raises(httpx.RemoteProtocolError):
                w.result(10)

            w = await paused_dialog(app, pilot, pool, c, upstream.url("/ask-w"), "/ask-w")
            await pilot.press("w")
            await focused_input(pilot, "#url-input")
            await pilot.press(*other_upstream.url("/echo/rewritten"))
            await pilot.press("enter")
            body = w.result(10).json()
            assert body["server"] == "other" and body["path"] == "/echo/rewritten"
    session.stop()


def saved_rules(path) -> list[dict]:
    return tomllib.loads(path.read_text()).get("rule", [])


async def test_remember_this_url_and_a_pattern(settings, upstream, pool):
    app, session = make_app(with_rules(settings, ASK))
    _, port = session.start()
    async with app.run_test(size=SIZE) as pilot:
        with client(port) as c:
            url = upstream.url("/ask-url?q=1")
            w = await paused_dialog(app, pilot, pool, c, url, "/ask-url?q=1")
            await pilot.press("2", "x", "enter")  # this URL, cancel, confirm
            with pytest.raises(httpx.RemoteProtocolError):
                w.result(10)
            [rule] = [r for r in saved_rules(settings.rules) if r["action"] == "cancel"]
            assert rule["urls"] == [url]
            with pytest.raises(httpx.RemoteProtocolError):
                c.get(url)  # decided by the remembered rule, no pause
            assert not session.pauses.keys()

            w = await paused_dialog(app, pilot, pool, c, upstream.url("/ask-pat/1"), "/ask-pat/1")
            await pilot.press("4")
            await focused_input(pilot, "#pattern")
            await pilot.press(*"*://127.0.0.1/ask-pat/*", "enter")
            await pilot.press("c", "enter")  # continue, confirm
            assert w.result(10).status_code == 200
            [rule] = [r for r in saved_rules(settings.rules) if r["action"] == "continue"]
            assert rule["urls"] == ["*://127.0.0.1/ask-pat/*"]
            assert c.get(upstream.url("/ask-pat/2")).status_code == 200  # no pause
            assert not session.pauses.keys()
    session.stop()


async def test_max_flows_keeps_the_store_and_the_list_bounded(settings, upstream, pool):
    settings.max_flows = 20
    app, session = make_app(settings)
    _, port = session.start()
    async with app.run_test(size=SIZE) as pilot:

        def traffic():
            with client(port) as c:
                return [c.get(upstream.url(f"/n/{i}")).status_code for i in range(60)]

        assert await asyncio.get_running_loop().run_in_executor(pool, traffic) == [200] * 60
        await until(
            pilot,
            lambda: row_with_path(app, "/n/59") and app.flows[row_with_path(app, "/n/59")].finished,
            "the last flow",
        )
        assert len(session.recorder.flows) <= 20
        await until(pilot, lambda: len(app.flows) <= 20, "the list to follow the store")
        assert len(app.table.flow_ids()) == len(app.flows)
        assert row_with_path(app, "/n/0") is None  # the oldest went first
    session.stop()


async def test_z_clears_finished_flows(settings, upstream, pool):
    app, session = make_app(settings)
    _, port = session.start()
    async with app.run_test(size=SIZE) as pilot:

        def traffic():
            with client(port) as c:
                return [c.get(upstream.url(f"/z/{i}")).status_code for i in range(3)]

        await asyncio.get_running_loop().run_in_executor(pool, traffic)
        await until(pilot, lambda: len(app.flows) == 3, "three rows")
        await pilot.press("z")
        await until(pilot, lambda: not app.flows and not session.recorder.flows, "cleared")
    session.stop()


async def test_a_filter_expression_runs_on_the_proxy_side_and_follows_new_flows(
    settings, upstream, pool
):
    app, session = make_app(settings)
    _, port = session.start()
    async with app.run_test(size=SIZE) as pilot:

        def traffic(*calls):
            with client(port) as c:
                return [c.request(method, upstream.url(path)).status_code for method, path in calls]

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(pool, traffic, ("GET", "/f/1"), ("POST", "/f/2"))
        await until(pilot, lambda: len(app.flows) == 2, "two rows")
        await pilot.press("f", *"~m POST & ~c 200", "enter")
        await until(pilot, lambda: app.table.flow_ids() == [row_with_path(app, "/f/2")], "filtered")
        assert session.recorder.flow_filter is not None  # held and evaluated by the proxy side
        await loop.run_in_executor(pool, traffic, ("POST", "/f/3"), ("GET", "/f/4"))
        await until(
            pilot,
            lambda: len(app.flows) == 4 and all(v.finished for v in app.flows.values()),
            "four finished",
        )
        await until(
            pilot,
            lambda: (
                app.table.flow_ids() == [row_with_path(app, "/f/2"), row_with_path(app, "/f/3")]
            ),
            "the new POST listed, the new GET not",
        )
        await pilot.press("f")
        app.screen.query_one("Input").value = ""
        await pilot.press("enter")
        await until(pilot, lambda: len(app.table.flow_ids()) == 4, "every row again")
        assert session.recorder.flow_filter is None
    session.stop()


async def test_http2_and_websocket_flows_show_up(settings, upstream_ca, waylay_ca, pool):
    import ssl
    import subprocess

    from tests.h2server import H2Upstream
    from tests.wsserver import WebSocketEcho, echo_through_proxy

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    upstream_ca.issue_cert("127.0.0.1").configure_cert(ctx)
    ctx.set_alpn_protocols(["h2"])
    app, session = make_app(settings)
    _, port = session.start()
    with H2Upstream(ctx) as h2up, WebSocketEcho() as ws:
        async with app.run_test(size=SIZE) as pilot:

            def traffic():
                r = subprocess.run(
                    [
                        "curl",
                        "-sS",
                        "--http2",
                        "--cacert",
                        str(waylay_ca),
                        "-x",
                        f"http://127.0.0.1:{port}",
                        h2up.url("/over-h2"),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=20,
                )
                return r, echo_through_proxy(port, ws.port, "hi")

            r, reply = await asyncio.get_running_loop().run_in_executor(pool, traffic)
            assert r.returncode == 0, r.stderr
            assert reply == "echo: hi" and ws.messages == ["hi"]
            h2 = await until(pilot, lambda: row_with_path(app, "/over-h2"), "the HTTP/2 row")
            await until(pilot, lambda: app.flows[h2].finished, "HTTP/2 flow done")
            assert app.flows[h2].http_version == "HTTP/2.0"
            assert cells(app, h2)["state"] == "200"
            chat = await until(pilot, lambda: row_with_path(app, "/chat"), "the WebSocket row")
            await until(pilot, lambda: app.flows[chat].is_websocket, "websocket flow")
            assert app.flows[chat].status == 101
            assert app.flows[chat].type == "websocket"
    session.stop()
