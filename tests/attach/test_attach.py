"""The screen attached to a proxy in another process (issue 11): real proxy processes,
real clients, the real screen under Textual's pilot over the real control socket."""

from __future__ import annotations

import tomllib

import pytest
from rich.console import Console

from monitor.attach import make_attached_app
from monitor.remote import Remote, RemoteController, peek
from tests.helpers import curl, until, wait_for
from widgets.model import Answer, FlowView

pytestmark = pytest.mark.e2e

SIZE = (150, 40)
ASK = '[[rule]]\nid = "ask"\nurls = ["*://127.0.0.1/ask*"]\naction = "ask"\n'


def detail_text(app) -> str:
    console = Console(width=140, record=True, color_system=None)
    console.print(app.query_one("#detail-body").content)
    return console.export_text()


def collect(remote: Remote) -> dict[str, FlowView]:
    """The latest snapshot of every flow a connection has been sent."""
    views: dict[str, FlowView] = {}

    def sink(batch, removed) -> None:
        for view in batch:
            views[view.id] = view
        for flow_id in removed:
            views.pop(flow_id, None)

    remote.set_sink(sink)
    return views


def paths(app) -> list[str]:
    return sorted(view.path for view in app.flows.values())


async def test_attach_detach_and_attach_again_sees_the_same_flows(start_proxy, upstream):
    proxy = start_proxy()
    for path in ("/one", "/two"):
        assert curl(proxy.port, upstream.url(path)).stdout.endswith("200")

    app = make_attached_app(Remote(proxy.path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.flows) == 2, "the two flows the proxy holds")
        first_ids = set(app.flows)
        assert "attached to" in str(app.header.info)
        # live flows arrive too
        assert curl(proxy.port, upstream.url("/three")).stdout.endswith("200")
        await until(pilot, lambda: len(app.flows) == 3, "a live flow")
        three = next(i for i, v in app.flows.items() if v.path == "/three")
        # its row may have come in a batch made while it was on its way: its end follows
        await until(pilot, lambda: app.flows[three].state != "pending", "the live flow's end")
        view = app.flows[three]
        assert view.status == 200 and view.state == "done"
        # details come on demand, from the proxy process
        assert app.table.select_flow(view.id)
        app.show_detail()
        await pilot.pause()
        assert "User-Agent" in detail_text(app) and "curl/" in detail_text(app)
        await pilot.press("escape", "q")
        await until(pilot, lambda: not app.is_running, "q detaches")
    assert app.gone is None
    assert proxy.alive(), "detaching leaves the proxy running"

    assert curl(proxy.port, upstream.url("/four")).stdout.endswith("200")
    again = make_attached_app(Remote(proxy.path))
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(again.flows) == 4, "every flow, old and new")
        assert first_ids <= set(again.flows)
        assert paths(again) == ["/four", "/one", "/three", "/two"]
    assert proxy.stop() == 0


async def test_hold_pause_is_answered_by_a_screen_attached_after_it(start_proxy, upstream, pool):
    proxy = start_proxy("--hold", rules_text=ASK)
    pending = pool.submit(curl, proxy.port, upstream.url("/ask"))
    proxy.wait_err("a flow is waiting for a screen")
    assert peek(proxy.path).paused == 1
    assert not pending.done()

    app = make_attached_app(Remote(proxy.path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.paused_flows, "the paused flow")
        assert app.paused_flows[0].path == "/ask"
        await pilot.press("a")
        await until(pilot, lambda: not app.paused_flows, "the flow continues")
        assert pending.result(10).stdout.endswith("200")
        await until(
            pilot, lambda: next(iter(app.flows.values())).state == "done", "the outcome shown"
        )
    assert proxy.alive()


def test_without_hold_and_without_a_screen_ask_gets_its_headless_outcome_at_once(
    start_proxy, upstream
):
    proxy = start_proxy(rules_text=ASK)
    result = curl(proxy.port, upstream.url("/ask"), timeout=10)
    assert result.stdout.endswith("200")  # --ask-default continue, no waiting
    wait_for(lambda: any("/ask 200" in line for line in proxy.out), what="the headless line")
    assert not any("waiting for a screen" in line for line in proxy.err)


async def test_two_screens_see_every_pause_and_the_first_answer_wins(start_proxy, upstream, pool):
    proxy = start_proxy(rules_text=ASK)
    other = RemoteController(Remote(proxy.path))
    seen = collect(other.remote)
    app = make_attached_app(Remote(proxy.path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.remote.batches, "the first state")
        pending = pool.submit(curl, proxy.port, upstream.url("/ask"))
        await until(pilot, lambda: app.paused_flows, "the pause on the first screen")
        view = app.paused_flows[0]
        wait_for(
            lambda: any(v.paused is not None for v in seen.values()),
            what="the pause on the second screen",
        )
        # both answer at the same moment: exactly one is taken
        first = pool.submit(
            other.answer, view.id, "request", Answer("respond", {"status": 418, "body": "no"})
        )
        second = pool.submit(app.controller.answer, view.id, "request", Answer("continue"))
        results = [first.result(10), second.result(10)]
        assert results.count(None) == 1, results
        refused = next(r for r in results if r is not None)
        assert refused in (
            "another screen answered this flow first",
            "this flow is no longer paused",
        )
        status = pending.result(10).stdout[-3:]
        assert status == ("418" if results[0] is None else "200")
        await until(pilot, lambda: app.flows[view.id].finished, "the outcome on the first screen")
        wait_for(lambda: all(v.finished for v in seen.values()), what="the outcome on the second")
    other.remote.close()


async def paused_dialog(app, pilot, pool, port: int, url: str, path: str):
    from widgets.dialogs import DecisionDialog

    waiting = pool.submit(curl, port, url)
    fid = await until(
        pilot,
        lambda: next((i for i, v in app.flows.items() if v.path == path and v.paused), None),
        f"paused row {path}",
    )
    app.table.select_flow(fid)
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, DecisionDialog), "the dialog")
    return waiting


def saved_rules(path) -> list[dict]:
    return tomllib.loads(path.read_text()).get("rule", [])


async def test_a_decision_remembered_in_an_attached_screen_is_written_by_the_proxy(
    start_proxy, upstream, pool, rules_path
):
    proxy = start_proxy(rules_text=ASK)
    app = make_attached_app(Remote(proxy.path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.remote.batches, "the first state")
        url = upstream.url("/ask-url?q=1")
        waiting = await paused_dialog(app, pilot, pool, proxy.port, url, "/ask-url?q=1")
        await pilot.press("2", "c", "enter")  # this URL, continue, confirm
        assert waiting.result(10).stdout.endswith("200")
        [rule] = [r for r in saved_rules(rules_path) if r["action"] == "continue"]
        assert rule["urls"] == [url]
        # the very next request is decided by the new rule: no pause, no reload delay
        assert curl(proxy.port, url, timeout=5).stdout.endswith("200")
        assert peek(proxy.path).paused == 0
        # the screen's copy of the rules follows
        await until(pilot, lambda: app.remote.rules.get(rule["id"]), "the rule on the screen")


async def test_the_rules_screen_of_an_attached_screen_edits_through_the_proxy(
    start_proxy, upstream, pool, rules_path
):
    from widgets.rules_screen import RulesScreen

    proxy = start_proxy(rules_text=ASK)
    app = make_attached_app(Remote(proxy.path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.remote.rules.ordered(), "the rules")
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, RulesScreen), "the rules screen")
        await pilot.press("space")  # the ask rule off
        await until(
            pilot, lambda: saved_rules(rules_path)[0].get("enabled") is False, "written off"
        )
        assert app.remote.rules.get("ask").enabled is False
        assert curl(proxy.port, upstream.url("/ask-now"), timeout=5).stdout.endswith("200")
        # an edit the proxy refuses comes back as the screen's error, nothing changes
        rules_path.write_text("version = 1\n[[rule]]\nid = broken")
        await until(pilot, lambda: app.remote.rules.error, "the broken file reported")
        await pilot.press("space")
        await until(
            pilot,
            lambda: any("not saved" in str(n.title) for n in app._notifications),
            "the refusal",
        )
        assert rules_path.read_text().endswith("id = broken")


async def test_filters_run_in_the_proxy_process(start_proxy, upstream):
    proxy = start_proxy()
    for path in ("/alpha", "/beta", "/alpha2"):
        assert curl(proxy.port, upstream.url(path)).stdout.endswith("200")
    app = make_attached_app(Remote(proxy.path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(app.flows) == 3, "the flows")
        assert app.set_filter("~u alpha") is None
        await until(pilot, lambda: app.table.row_count == 2, "two rows shown")
        # a live flow is filtered where it is, too
        assert curl(proxy.port, upstream.url("/alpha3")).stdout.endswith("200")
        assert curl(proxy.port, upstream.url("/gamma")).stdout.endswith("200")
        await until(pilot, lambda: len(app.flows) == 5, "the new flows")
        await until(pilot, lambda: app.table.row_count == 3, "the matching one shown")
        assert app.set_filter("~zz") is not None  # bad expression: an error, nothing changes
        assert app.table.row_count == 3


async def test_q_stops_from_an_attached_screen_after_confirming(start_proxy):
    proxy = start_proxy()
    app = make_attached_app(Remote(proxy.path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.remote.batches, "the first state")
        await pilot.press("Q")
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and proxy.alive()
        await pilot.press("Q", "y")
        await until(pilot, lambda: not app.is_running, "the screen closes")
    assert proxy.proc.wait(15) == 0
    assert app.return_code in (0, None) and app.gone is None
    proxy.wait_err("stopped from a screen")


async def test_breakpoints_and_exports_of_an_attached_screen_run_in_the_proxy(
    start_proxy, upstream, pool, tmp_path, monkeypatch
):
    import json

    proxy = start_proxy()
    app = make_attached_app(Remote(proxy.path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.remote.batches, "the first state")
        assert app.controller.set_breakpoint("not a pattern") is not None
        assert app.controller.set_breakpoint("*://127.0.0.1/bp*") is None
        await until(pilot, lambda: app.remote.rules.transient, "the unsaved breakpoint shown")
        waiting = pool.submit(curl, proxy.port, upstream.url("/bp1"))
        await until(pilot, lambda: app.paused_flows, "the breakpoint pauses")
        assert app.controller.toggle_breakpoints() is False  # off: the next one passes
        assert curl(proxy.port, upstream.url("/bp2"), timeout=5).stdout.endswith("200")
        await pilot.press("A")
        assert waiting.result(10).stdout.endswith("200")
        await until(pilot, lambda: len(app.flows) == 2 and not app.paused_flows, "both done")
        # a HAR path is the screen's (relative to its folder), the file the proxy's work
        monkeypatch.chdir(tmp_path)
        assert app.controller.export_har("out.har") == 2
        har = json.loads((tmp_path / "out.har").read_text())
        assert sorted(e["request"]["url"] for e in har["log"]["entries"]) == [
            upstream.url("/bp1"),
            upstream.url("/bp2"),
        ]
        text, warnings = app.controller.export_rules("toml")
        assert warnings == [] and "version = 1" in text
