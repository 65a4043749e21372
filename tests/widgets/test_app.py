"""The main screen under `run_test()` with a fake controller: batches become rows, keys
become controller calls with the right Answer, prompts validate, and quitting asks while
flows are paused."""

from __future__ import annotations

import threading

import pytest
from rich.console import Console
from screen_fakes import (
    NOW,
    Clock,
    FakeController,
    RulesSource,
    make_view,
    paused_view,
    traced,
    wait_until,
)
from textual.widgets import Input

from policies import RulesFile
from widgets.app import FlowsUpdated, WaylayApp
from widgets.dialogs import DecisionDialog
from widgets.export_menu import ExportMenu
from widgets.flow_table import COLUMN_KEYS, COLUMNS, FlowTable
from widgets.help import HelpScreen
from widgets.model import Answer
from widgets.prompts import ConfirmPrompt, InputPrompt
from widgets.rules_screen import RulesScreen

pytestmark = pytest.mark.usefixtures("utc")

SIZE = (140, 36)


def make_app(controller: FakeController, clock: Clock | None = None, **kwargs) -> WaylayApp:
    return WaylayApp(controller, clock=clock or Clock(), **kwargs)


async def push(app: WaylayApp, pilot, views, removed=()) -> None:
    app.push_flows(views, removed)
    await pilot.pause()


def row(app: WaylayApp, flow_id: str) -> list[str]:
    return app.table.get_row(flow_id)


def column(name: str) -> int:
    return [key for key, _, _ in COLUMNS].index(name)


def notifications(app: WaylayApp) -> list[str]:
    return [notification.message for notification in app._notifications]


# ---------------------------------------------------------------- batches and rows


async def test_rows_appear_for_a_pushed_batch(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1), make_view(2, method="POST", path="/a?x[0]=1")])
        assert app.table.row_count == 2
        assert app.table.flow_ids() == ["f1", "f2"]
        assert row(app, "f1") == [
            "22:11:41.000",
            "GET",
            "HTTPS",
            "api.example.com",
            "/items/1",
            "200",
            "xmlhttprequest",
            "2.0 KB",
            "87 ms",
            "",
        ]
        assert row(app, "f2")[column("path")] == "/a?x[0]=1"  # brackets are not markup
        assert set(app.flows) == {"f1", "f2"}
        assert app.header.flow_count == 2


def rendered(table: FlowTable, flow_id: str) -> str:
    """The text of a flow's line as the list draws it now ("" when off screen)."""
    y = table.index_of(flow_id) + 1 - int(table.scroll_y)
    if not 1 <= y <= table.scrollable_content_region.height - 2:
        return ""
    return table.render_line(y).text


async def test_an_update_repaints_only_the_changed_row(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        pending = make_view(2, state="pending", status=None, size=None, duration=None)
        await push(app, pilot, [make_view(1), pending])
        assert row(app, "f2")[column("state")] == "…"
        first_before = rendered(app.table, "f1")
        await push(app, pilot, [make_view(2, status=404, reason="Not Found", rule_id="r1")])
        assert rendered(app.table, "f1") == first_before
        line = rendered(app.table, "f2")
        assert "404" in line and "r1" in line and "2.0 KB" in line
        assert row(app, "f2")[column("state")] == "404"
        assert row(app, "f2")[column("rule")] == "r1"
        assert app.table.flow_ids() == ["f1", "f2"]


async def test_an_offscreen_update_shows_once_scrolled_into_view(controller):
    """Rendered lines are cached by snapshot: scrolling back must not show a stale row."""
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        views = [
            make_view(n, state="pending", status=None, size=None, duration=None)
            for n in range(1, 201)
        ]
        await push(app, pilot, views)
        table = app.table
        table.scroll_to(y=150, animate=False)
        await pilot.pause()
        assert "…" in rendered(table, "f160")  # rendered (and cached) while pending
        assert "404" not in rendered(table, "f160")
        table.scroll_to(y=0, animate=False)
        await pilot.pause()
        await push(app, pilot, [make_view(160, status=404, reason="Not Found")])
        table.scroll_to(y=150, animate=False)
        await pilot.pause()
        assert "404" in rendered(table, "f160")


async def test_removed_flows_lose_their_rows(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(n) for n in range(1, 6)])
        await push(app, pilot, [make_view(6)], removed=["f2", "f4", "unknown"])
        assert app.table.flow_ids() == ["f1", "f3", "f5", "f6"]
        assert "f2" not in app.flows
        assert app.header.flow_count == 4


async def test_a_flow_updated_and_removed_in_one_batch_is_gone(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1), make_view(2)])
        await push(app, pilot, [make_view(2, status=500)], removed=["f2"])
        assert app.table.flow_ids() == ["f1"]
        assert "f2" not in app.flows


async def test_the_cursor_stays_on_its_flow_when_rows_above_go(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(n) for n in range(1, 11)])
        app.table.select_flow("f7")
        await pilot.pause()
        await push(app, pilot, [], removed=["f1", "f2", "f3"])
        assert app.table.selected_id == "f7"
        # the selected flow itself goes: the cursor takes the next one
        await push(app, pilot, [], removed=["f7"])
        assert app.table.selected_id == "f8"


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        ((140, 36), COLUMN_KEYS),
        ((100, 30), ("time", "method", "host", "path", "state", "size", "duration")),
        ((80, 24), ("time", "method", "host", "path", "state")),
        ((60, 20), ("method", "host", "path", "state")),
    ],
)
async def test_columns_degrade_with_the_width(controller, size, shown):
    """Narrower screens drop columns (never method, host, path or state); host and path
    share what is left; the header keeps the paused count at every width."""
    app = make_app(controller)
    async with app.run_test(size=size) as pilot:
        await push(app, pilot, [make_view(1, port=8443), paused_view(2)])
        widths = app.table.column_widths()
        assert tuple(widths) == shown
        assert widths["host"] >= 10 and widths["path"] >= 10
        line = rendered(app.table, "f1")
        host = "api.example.com:8443" if size[0] >= 80 else "api.example.co…"
        assert f" {host} " in line
        assert "/items/1" in line and "200" in line
        header = app.header.render().plain.splitlines()[0]
        assert "⏸ 1 paused" in header[: size[0] - 2]


async def test_push_flows_from_another_thread(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        feeder = threading.Thread(
            target=lambda: [app.push_flows([make_view(n)]) for n in range(1, 51)]
        )
        feeder.start()
        feeder.join()
        await wait_until(pilot, lambda: app.table.row_count == 50, "50 rows")
        assert app.table.flow_ids() == [f"f{n}" for n in range(1, 51)]


async def test_push_flows_posts_one_message_per_batch(controller):
    seen: list[FlowsUpdated] = []

    class Recording(WaylayApp):
        def on_flows_updated(self, message: FlowsUpdated) -> None:
            seen.append(message)  # WaylayApp's own handler runs after this one

    app = Recording(controller, clock=Clock())
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1), make_view(2)], removed=["x"])
        assert len(seen) == 1
        assert [view.id for view in seen[0].views] == ["f1", "f2"]
        assert seen[0].removed == ("x",)
        assert app.table.flow_ids() == ["f1", "f2"]


async def test_paused_row_shows_the_event_the_wait_and_the_time_left(controller, clock):
    app = make_app(controller, clock)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1), paused_view(2, "request", since=NOW - 5)])
        assert row(app, "f2")[column("state")] == "⏸ request 5s, 115s left"
        assert app.header.paused_count == 1
        assert app.table.kind_of("f2") == "paused"
        clock.now += 10
        app.table.refresh_paused()
        assert row(app, "f2")[column("state")] == "⏸ request 15s, 105s left"
        # once decided, the row is an ordinary row again
        await push(app, pilot, [make_view(2)])
        assert row(app, "f2")[column("state")] == "200"
        assert app.table.kind_of("f2") == ""
        assert app.header.paused_count == 0


async def test_error_and_cancelled_rows_stand_out(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(
            app,
            pilot,
            [
                make_view(1, state="error", status=None, error="connection refused"),
                make_view(2, state="cancelled", status=None),
                make_view(3),
            ],
        )
        assert row(app, "f1")[column("state")] == "error: connection refused"
        assert [app.table.kind_of(f"f{n}") for n in (1, 2, 3)] == ["error", "cancelled", ""]
        assert app.table._style("error").color is not None
        assert app.table._style("cancelled").color is not None


# ---------------------------------------------------------------- deciding


async def test_a_continues_the_selected_paused_flow(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1), paused_view(2)])
        app.table.select_flow("f2")
        await pilot.press("a")
        assert controller.answers == [("f2", "request", Answer("continue"))]


@pytest.mark.parametrize(
    ("event", "action"),
    [("request", "continue"), ("response", "continue"), ("redirect", "follow")],
)
async def test_a_answers_the_event_s_continue_action(controller, event, action):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [paused_view(1, event)])
        await pilot.press("a")
        assert controller.answers == [("f1", event, Answer(action))]


@pytest.mark.parametrize("event", ["certificate", "auth"])
async def test_a_never_allows_a_certificate_or_answers_auth(controller, event):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [paused_view(1, event)])
        await pilot.press("a")
        assert controller.answers == []
        assert isinstance(app.screen, DecisionDialog)  # the dialog asks instead
        assert app.screen.flow_id == "f1"


async def test_a_on_a_flow_that_is_not_paused_sends_nothing(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1)])
        await pilot.press("a", "X")
        assert controller.answers == []
        assert "The selected flow is not paused." in notifications(app)


async def test_capital_a_continues_every_paused_request_response_and_redirect(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(
            app,
            pilot,
            [
                paused_view(1, "request"),
                make_view(2),
                paused_view(3, "certificate"),
                paused_view(4, "redirect"),
                paused_view(5, "auth"),
                paused_view(6, "response"),
            ],
        )
        await pilot.press("A")
        assert controller.answers == [
            ("f1", "request", Answer("continue")),
            ("f4", "redirect", Answer("follow")),
            ("f6", "response", Answer("continue")),
        ]
        assert any("2 (auth, certificate) need a decision" in n for n in notifications(app))


@pytest.mark.parametrize(
    ("event", "action"),
    [("request", "cancel"), ("auth", "cancel"), ("redirect", "cancel"), ("certificate", "reject")],
)
async def test_capital_x_cancels_the_selected_paused_flow(controller, event, action):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [paused_view(1, event)])
        await pilot.press("X")
        assert controller.answers == [("f1", event, Answer(action))]


async def test_an_answer_the_controller_refuses_is_a_toast(controller):
    controller.answer_error = "flow f1 is no longer paused"
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [paused_view(1)])
        await pilot.press("a")
        assert any("no longer paused" in n for n in notifications(app))
        assert [n.severity for n in app._notifications] == ["error"]


async def test_enter_on_a_paused_flow_opens_its_dialog(controller, clock):
    app = make_app(controller, clock)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [paused_view(1)])
        await pilot.press("enter")
        dialog = app.screen
        assert isinstance(dialog, DecisionDialog)
        assert (dialog.flow_id, dialog.controller, dialog.clock) == ("f1", controller, clock)
        # the pause ends elsewhere (timeout, client gone): the dialog closes with a notice
        await push(app, pilot, [make_view(1, state="cancelled", status=None)])
        await wait_until(pilot, lambda: app.screen is not dialog, "dialog closed")
        assert any("flow ended" in n for n in notifications(app))


async def test_a_removed_flow_closes_its_dialog(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [paused_view(1), make_view(2)])
        await pilot.press("enter")
        dialog = app.screen
        assert isinstance(dialog, DecisionDialog)
        await push(app, pilot, [make_view(2, status=500)])
        assert app.screen is dialog  # another flow's news leaves it alone
        await push(app, pilot, [], removed=["f1"])
        await wait_until(pilot, lambda: app.screen is not dialog, "dialog closed")
        assert "That flow is gone." in notifications(app)


@pytest.mark.parametrize(
    ("first", "key", "again"),
    [
        ("request", ("c",), "response"),
        ("auth", ("shift+tab", "x"), "auth"),  # the auth dialog opens in the username
        ("redirect", ("c",), "response"),
    ],
)
async def test_a_flow_that_pauses_again_after_its_dialog_answered_gets_it_again(
    controller, first, key, again
):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [paused_view(1, first, since=NOW - 5)])
        await pilot.press("enter")
        assert isinstance(app.screen, DecisionDialog)
        await pilot.press(*key)
        await wait_until(pilot, lambda: not isinstance(app.screen, DecisionDialog), "answered")
        assert len(controller.answers) == 1
        await push(app, pilot, [paused_view(1, again, since=NOW - 1)])
        await wait_until(pilot, lambda: isinstance(app.screen, DecisionDialog), "reopened")
        assert app.screen.event == again


async def test_a_dialog_closed_without_an_answer_does_not_come_back(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [paused_view(1, "request", since=NOW - 5)])
        await pilot.press("enter")
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is app.default_screen, "closed")
        await push(app, pilot, [paused_view(1, "response", since=NOW - 1)])
        assert app.screen is app.default_screen


async def test_an_event_without_a_dialog_is_a_toast(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [paused_view(1, "cookies")])
        await pilot.press("enter")
        assert notifications(app) == ["no dialog for the 'cookies' event"]
        assert app.screen is app.default_screen


# ---------------------------------------------------------------- details


async def test_the_footer_shows_each_places_keys_without_rebuilding_them(controller):
    """Opening and closing the details swaps the footer's keys; the second time round the
    same key widgets come back (nothing is composed again), and a click still works."""
    from textual.widgets._footer import FooterKey

    from widgets.footer import KeyFooter

    def shown(app) -> list[str]:
        footer = app.query_one(KeyFooter)
        return [k.description for k in footer.query(FooterKey) if k.display]

    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1), make_view(2)])
        await pilot.pause()
        on_list = shown(app)
        assert "Filter" in on_list and "View mode" not in on_list
        await pilot.press("enter")
        await pilot.pause()
        on_details = shown(app)
        assert "View mode" in on_details and "Back" in on_details and "Filter" not in on_details
        footer = app.query_one(KeyFooter)
        widgets = set(footer.query(FooterKey))
        for _ in range(2):
            await pilot.press("escape")
            await pilot.pause()
            assert shown(app) == on_list
            await pilot.press("enter")
            await pilot.pause()
            assert shown(app) == on_details
        assert set(footer.query(FooterKey)) == widgets
        back = next(k for k in footer.query(FooterKey) if k.display and k.description == "Back")
        await pilot.click(back)
        await pilot.pause()
        assert not app.detail.has_class("-open") and shown(app) == on_list


async def test_enter_on_a_finished_flow_opens_its_details_and_escape_closes(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1), traced(make_view(2))])
        app.table.select_flow("f2")
        await pilot.press("enter")
        detail = app.detail
        assert detail.has_class("-open")
        assert detail.flow_id == "f2"
        assert app.focused is detail
        text = detail_text(app)
        assert "GET https://api.example.com/items/2" in text
        assert "Accept: application/json" in text
        assert "★" in text and "no-trackers" in text
        assert '"ok": true' in text
        await pilot.press("escape")
        assert not detail.has_class("-open")
        assert app.focused is app.table


async def test_clicking_the_highlighted_row_opens_it(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1), make_view(2)])
        await pilot.click(FlowTable, offset=(20, 2))  # header line, then f1, then f2
        assert app.table.selected_id == "f2"
        assert not app.detail.has_class("-open")
        await pilot.click(FlowTable, offset=(20, 2))
        assert app.detail.has_class("-open")
        assert app.detail.flow_id == "f2"


async def test_the_details_follow_the_cursor_and_new_snapshots(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1), make_view(2)])
        await pilot.press("enter")
        assert app.detail.flow_id == "f1"
        app.table.focus()
        await pilot.press("down")
        await wait_until(pilot, lambda: app.detail.flow_id == "f2", "details of f2")
        await push(app, pilot, [make_view(2, status=503, reason="Service Unavailable")])
        assert "503 Service Unavailable" in detail_text(app)


def render_text(renderable, width: int = 120) -> str:
    console = Console(width=width, color_system=None)
    with console.capture() as capture:
        console.print(renderable)
    return capture.get()


def detail_text(app: WaylayApp) -> str:
    return render_text(app.query_one("#detail-body").content)


# ---------------------------------------------------------------- breakpoints and filter


async def test_i_sets_a_breakpoint_and_a_bad_one_keeps_the_prompt_open(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("i")
        prompt = app.screen
        assert isinstance(prompt, InputPrompt)
        await pilot.press(*"bad[", "enter")
        assert app.screen is prompt
        assert "not a match pattern" in prompt.error
        prompt.query_one(Input).value = "*://api.example.com/*"
        await pilot.press("enter")
        assert not isinstance(app.screen, InputPrompt)
        assert controller.calls == [
            ("set_breakpoint", "bad["),
            ("set_breakpoint", "*://api.example.com/*"),
        ]
        assert app.header.breakpoint == "*://api.example.com/*"
        assert "breakpoint *://api.example.com/* (on)" in app.header.render().plain
        # empty clears it
        await pilot.press("i")
        app.screen.query_one(Input).value = ""
        await pilot.press("enter")
        assert controller.calls[-1] == ("set_breakpoint", "")
        assert app.header.breakpoint == ""


async def test_escape_leaves_the_breakpoint_alone(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("i", "x", "escape")
        assert controller.calls == []
        assert not isinstance(app.screen, InputPrompt)


async def test_a_new_breakpoint_is_on(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("I")
        assert not app.header.breakpoints_on
        await pilot.press("i", *"*://x.example/*", "enter")
        assert app.header.breakpoints_on  # as the controller does: setting one turns them on


async def test_capital_i_toggles_breakpoints(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        assert app.header.breakpoints_on
        await pilot.press("I")
        assert controller.calls == [("toggle_breakpoints",)]
        assert not app.header.breakpoints_on
        assert "(off)" in app.header.render().plain
        await pilot.press("I")
        assert app.header.breakpoints_on


async def test_f_with_plain_text_filters_locally(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(
            app,
            pilot,
            [
                make_view(1, host="api.example.com"),
                make_view(2, host="cdn.other.net"),
                make_view(3, method="POST", host="cdn.other.net"),
                make_view(4, host="cdn.other.net", status=404),
            ],
        )
        await pilot.press("f", *"API", "enter")
        assert app.table.flow_ids() == ["f1"]
        assert app.header.filter_text == "API"
        assert app.header.shown_count == 1
        assert not any(call[0].endswith("_filter") for call in controller.calls)
        # new flows go through the filter too
        await push(app, pilot, [make_view(5, host="api.example.com"), make_view(6, host="x.io")])
        assert app.table.flow_ids() == ["f1", "f5"]
        for text, expected in (("post", ["f3"]), ("404", ["f4"])):
            await pilot.press("f")
            app.screen.query_one(Input).value = text
            await pilot.press("enter")
            assert app.table.flow_ids() == expected, text
        # empty shows everything again
        await pilot.press("f")
        app.screen.query_one(Input).value = ""
        await pilot.press("enter")
        assert app.table.flow_ids() == [f"f{n}" for n in range(1, 7)]
        assert app.header.shown_count is None


def _text_reference(views, text: str) -> list[str]:
    """The plain-text filter's meaning, written out: URL, method or state label."""
    needle = text.lower()
    return [
        v.id
        for v in views
        if needle in v.url.lower() or needle in v.method.lower() or needle in v.state_label.lower()
    ]


@pytest.mark.parametrize("sliced", [False, True], ids=["at-once", "sliced"])
async def test_plain_text_filter_over_kept_search_texts(controller, monkeypatch, sliced):
    """The kept per-flow search texts give what matching each snapshot gives, also when
    the scan runs in slices while batches update, add and remove flows and a flow is
    deleted, and with marked-only on."""
    import widgets.app as app_module

    if sliced:
        monkeypatch.setattr(app_module, "TEXT_AT_ONCE", 0)
        monkeypatch.setattr(app_module, "TEXT_CHUNK", 7)
        monkeypatch.setattr(app_module, "FILTER_SLICE", 0)
    methods = ("GET", "POST", "PUT")
    views = [
        make_view(
            n,
            method=methods[n % 3],
            host=("API.example.com", "cdn.other.net")[n % 2],
            status=(200, 404, 503)[n % 3] if n % 5 else None,
            state="done" if n % 5 else "error",
            error=None if n % 5 else f"upstream Put-{n} reset",
        )
        for n in range(1, 121)
    ]
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, views)
        for text in ("api", "PUT", "404", "ERROR: upstream", "put", "other.net/items/1"):
            assert app.set_filter(text) is None
            await wait_until(pilot, lambda: not app.filtering, f"filter {text!r}")
            assert app.table.flow_ids() == _text_reference(views, text), text
        # while a filter runs: updates that start and stop matching, new and removed
        # flows, a delete; the result is what the filter says about the flows as they end
        assert app.set_filter("post") is None
        if sliced:
            assert app.filtering
        current = {v.id: v for v in views}
        changed = [make_view(1, method="POST"), make_view(2, method="GET"), make_view(200)]
        changed.append(make_view(201, method="POST"))
        app.push_flows(changed, ["f5", "f8"])
        for view in changed:
            current[view.id] = view
        del current["f5"], current["f8"]
        await pilot.pause()
        doomed = next(f for f in app.table.flow_ids() if f not in ("f1", "f2"))
        assert app.table.select_flow(doomed) and app.flows[doomed].finished
        await pilot.press("d")
        assert ("delete_flow", doomed) in controller.calls
        del current[doomed]
        await wait_until(pilot, lambda: not app.filtering, "filter with changes")
        expected = _text_reference(sorted(current.values(), key=lambda v: v.seq), "post")
        assert app.table.flow_ids() == expected
        assert "f1" in expected and "f201" in expected and "f2" not in expected
        # marked only, with the text filter
        assert app.set_filter("") is None
        await wait_until(pilot, lambda: not app.filtering, "cleared")
        for flow_id in ("f4", "f11", "f14"):  # POST, PUT, PUT
            app.table.set_mark(flow_id, True)
        await pilot.press("M")
        assert app.set_filter("put") is None
        await wait_until(pilot, lambda: not app.filtering, "marked and put")
        assert app.table.flow_ids() == ["f11", "f14"]
        await pilot.press("M")
        await wait_until(pilot, lambda: not app.filtering, "put only")
        ordered = sorted(current.values(), key=lambda v: v.seq)
        assert app.table.flow_ids() == _text_reference(ordered, "put")


async def test_f_with_an_expression_is_evaluated_by_the_proxy_side(controller):
    controller.filters["~m POST"] = {"f2"}
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1), make_view(2, method="POST")])
        await pilot.press("f")
        prompt = app.screen
        await pilot.press(*"~m POS")
        assert "invalid filter expression" in prompt.error  # checked as you type
        await pilot.press("T")
        assert prompt.error == ""
        await pilot.press("enter")
        assert app.screen is not prompt
        assert app.table.flow_ids() == ["f2"]
        assert app.header.filter_text == "~m POST"
        # later snapshots carry the proxy's verdict under this filter's generation: a flow
        # that starts matching gets a row, one that stops loses it
        await push(
            app,
            pilot,
            [make_view(1, filter_match=(1, True)), make_view(2, filter_match=(1, False))],
        )
        assert app.table.flow_ids() == ["f1"]
        # a verdict under an older filter does not count: the match taken when it was set does
        await push(app, pilot, [make_view(3, filter_match=(0, True))])
        assert app.table.flow_ids() == ["f1"]
        # plain text ends the proxy's filter
        await pilot.press("f")
        app.screen.query_one(Input).value = "items"
        await pilot.press("enter")
        assert controller.calls[-1] == ("apply_filter", "")
        assert app.table.flow_ids() == ["f1", "f2", "f3"]


async def test_a_bad_expression_keeps_the_prompt_and_the_old_filter(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1), make_view(2)])
        await pilot.press("f", *"~q nonsense", "enter")
        prompt = app.screen
        assert isinstance(prompt, InputPrompt)
        assert prompt.error == "invalid filter expression: ~q nonsense"
        await pilot.press("escape")
        assert app.table.flow_ids() == ["f1", "f2"]
        assert app.header.filter_text == ""


# ---------------------------------------------------------------- clear, quit, help


async def test_z_clears_finished_flows_here_and_in_the_proxy(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(
            app,
            pilot,
            [
                make_view(1),
                paused_view(2),
                make_view(3, state="pending", status=None),
                make_view(4, state="error", status=None, error="reset"),
                make_view(5, state="cancelled", status=None),
            ],
        )
        await pilot.press("z")
        assert controller.calls == [("clear_finished",)]
        assert app.table.flow_ids() == ["f2", "f3"]
        assert set(app.flows) == {"f2", "f3"}


async def test_q_without_paused_flows_quits(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1)])
        await pilot.press("q")
        await wait_until(pilot, lambda: app._exit, "exit")


async def test_q_with_paused_flows_asks_first(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [paused_view(1), paused_view(2, "auth"), make_view(3)])
        await pilot.press("q")
        confirm = app.screen
        assert isinstance(confirm, ConfirmPrompt)
        assert confirm.message == "2 flows are paused; they get their timeout outcome. Quit?"
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmPrompt)
        assert not app._exit
        await pilot.press("q", "y")
        await wait_until(pilot, lambda: app._exit, "exit")
        assert controller.answers == []  # the proxy side applies the timeout outcome


async def test_ctrl_q_on_the_quit_question_quits(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [paused_view(1)])
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmPrompt)
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: app._exit, "exit")


async def test_question_mark_opens_help_anywhere(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1)])
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = render_text(app.screen.query_one("#help-keys").content)
        for key, does in (
            ("enter", "the dialog of a paused flow"),
            ("a", "continue the selected paused flow"),
            ("A", "continue all paused flows"),
            ("X", "cancel the selected paused flow"),
            ("i", "set a breakpoint"),
            ("I", "breakpoints on/off"),
            ("f", "filter the list"),
            ("R", "the rules screen"),
            ("E", "export"),
            ("z", "clear finished flows"),
            ("q", "quit"),
            ("?", "this help"),
        ):
            assert f" {key} " in text and does in text, key
        await pilot.press("question_mark")
        assert not isinstance(app.screen, HelpScreen)
        # from the detail pane too
        await pilot.press("enter", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_question_mark_in_a_prompt_is_just_text(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f", "question_mark")
        assert isinstance(app.screen, InputPrompt)
        assert app.screen.query_one(Input).value == "?"


# ---------------------------------------------------------------- rules, export, palette


async def test_capital_r_opens_the_rules_screen_on_the_rules_file(controller, tmp_path):
    rules = RulesFile(tmp_path / "rules.toml")
    rules.load()
    app = make_app(controller, rules_source=rules)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("R")
        assert isinstance(app.screen, RulesScreen)
        assert app.screen.rules_source is rules


async def test_capital_e_opens_the_export_menu(controller):
    source = RulesSource()
    app = make_app(controller, rules_source=source)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1), make_view(2)])
        app.table.select_flow("f2")
        await pilot.press("E")
        menu = app.screen
        assert isinstance(menu, ExportMenu)
        assert menu.controller is controller
        assert menu.selected_flow_id == "f2"
        assert menu.visible_flow_ids == ["f1", "f2"]
        assert menu.rules_source is source


async def test_the_command_palette_has_waylay_s_commands(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE):
        titles = {command.title for command in app.get_system_commands(app.screen)}
        assert {
            "Clear finished flows",
            "Toggle breakpoints",
            "Rules",
            "Export",
            "Filter flows",
            "Keys",
        } <= titles
        command = next(
            c for c in app.get_system_commands(app.screen) if c.title == "Toggle breakpoints"
        )
        command.callback()
        assert controller.calls == [("toggle_breakpoints",)]


# ---------------------------------------------------------------- header, toasts


async def test_the_header_shows_proxy_counts_rules_and_state(controller, clock):
    source = RulesSource(state="3 rules")
    app = make_app(controller, clock, rules_source=source, title_info={"max flows": 50000})
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1), paused_view(2)])
        text = app.header.render().plain
        for part in (
            "http://127.0.0.1:8080",
            "regular",
            "2 flows",
            "⏸ 1 paused",
            "/etc/waylay/rules.toml",
            "3 rules",
            "max flows 50000",
            "breakpoint none (on)",
        ):
            assert part in text, part
        source.state = "error: rules.toml:4:1: expected '='"
        app.rules_changed()
        assert "error: rules.toml:4:1" in app.header.render().plain
        source.state = "4 rules"
        app._tick()  # polled once a second as well
        assert "4 rules" in app.header.render().plain


async def test_notify_error_from_another_thread_is_a_toast(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        worker = threading.Thread(target=app.notify_error, args=("upstream [x] unreachable",))
        worker.start()
        worker.join()
        await wait_until(pilot, lambda: app._notifications, "a toast")
        (toast,) = app._notifications
        assert toast.message == "upstream [x] unreachable"
        assert toast.severity == "error"


async def test_every_flow_list_key_is_in_the_help():
    from rich.console import Console

    from widgets import keys
    from widgets.help import keys_table

    console = Console(width=200, record=True)
    console.print(keys_table())
    shown = console.export_text()
    lines = [" ".join(line.split()) for line in shown.splitlines()]
    for binding in FlowTable.BINDINGS:
        key = next(k for k in keys.FLOW_LIST if k.id == binding.id)
        if binding.id == "waylay.close_detail":  # the detail pane's escape says it
            key = keys.DETAIL[0]
        assert f"{key.key_text} {key.words}" in lines, binding.key


async def test_bindings_have_ids_for_keymaps():
    ids = {binding.id for binding in FlowTable.BINDINGS}
    assert {
        "waylay.open",
        "waylay.continue",
        "waylay.continue_all",
        "waylay.cancel",
        "waylay.breakpoint",
        "waylay.toggle_breakpoints",
        "waylay.filter",
        "waylay.rules",
        "waylay.export",
        "waylay.clear",
        "waylay.quit",
        "waylay.next_paused",
        "waylay.auto_open",
        "waylay.mark",
        "waylay.marked_only",
        "waylay.follow",
        "waylay.first",
        "waylay.last",
        "waylay.sort",
        "waylay.delete",
        "waylay.replay",
        "waylay.duplicate",
        "waylay.event_log",
    } <= ids
    assert all(binding.id for binding in FlowTable.BINDINGS)


async def test_a_keymap_remaps_a_key(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        app.set_keymap({"waylay.clear": "c"})
        await push(app, pilot, [make_view(1)])
        await pilot.press("c")
        assert controller.calls == [("clear_finished",)]


# ---------------------------------------------------------------- moving, following, sorting


async def test_home_end_g_and_capital_g_jump_to_the_first_and_last_rows(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(n) for n in range(1, 101)])
        for key, expected in (("end", "f100"), ("home", "f1"), ("G", "f100"), ("g", "f1")):
            await pilot.press(key)
            assert app.table.selected_id == expected, key
        await pilot.press("G")
        assert app.table.scroll_y == app.table.max_scroll_y  # the last row is on screen
        assert "/items/100" in rendered(app.table, "f100")
        await pilot.press("pageup")
        page = app.table.scrollable_content_region.height - 3
        assert app.table.selected_id == f"f{100 - page}"


async def test_f_follows_new_flows_and_moving_up_stops_it(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(n) for n in range(1, 4)])
        assert app.table.selected_id == "f1"
        await pilot.press("F")
        assert app.table.follow and "follow" in app.header.render().plain
        assert app.table.selected_id == "f3"
        await push(app, pilot, [make_view(n) for n in range(4, 80)])
        assert app.table.selected_id == "f79"
        assert "/items/79" in rendered(app.table, "f79")  # scrolled along
        await pilot.press("up")
        assert not app.table.follow and "follow" not in app.header.render().plain
        assert app.table.selected_id == "f78"
        await push(app, pilot, [make_view(80)])
        assert app.table.selected_id == "f78"


async def test_o_and_a_header_click_sort_and_the_cursor_keeps_its_flow(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        sizes = {1: 300, 2: 100, 3: 200}
        await push(app, pilot, [make_view(n, size=size) for n, size in sizes.items()])
        app.table.select_flow("f3")
        widths = app.table.column_widths()
        x = 1
        for key, width in widths.items():
            if key == "size":
                break
            x += width + 1
        await pilot.click(FlowTable, offset=(x + 2, 0))
        assert app.table.sort_key == "size" and not app.table.sort_reverse
        assert app.table.flow_ids() == ["f2", "f3", "f1"]
        assert app.table.selected_id == "f3"
        assert "size ▲" in app.table.render_line(0).text
        await pilot.click(FlowTable, offset=(x + 2, 0))
        assert app.table.flow_ids() == ["f1", "f3", "f2"]
        assert "size ▼" in app.table.render_line(0).text
        # a new flow goes in its place
        await push(app, pilot, [make_view(4, size=250)])
        assert app.table.flow_ids() == ["f1", "f4", "f3", "f2"]
        assert app.table.selected_id == "f3"
        # a row whose sort value changes moves to its place; the cursor keeps its flow
        await push(app, pilot, [make_view(2, size=275)])
        assert app.table.flow_ids() == ["f1", "f2", "f4", "f3"]
        assert app.table.selected_id == "f3"
        await push(app, pilot, [make_view(1, size=10), make_view(4, size=400)])
        assert app.table.flow_ids() == ["f4", "f2", "f3", "f1"]
        assert app.table.selected_id == "f3"
        # o cycles from arrival order through the columns
        app.table.sort_by("")
        assert app.table.flow_ids() == ["f1", "f2", "f3", "f4"]
        await pilot.press("o")
        assert app.table.sort_key == "time"
        await pilot.press("o", "o")
        assert app.table.sort_key == "proto"
        assert "sorted by proto" in app.header.render().plain


async def test_the_last_line_shows_the_selected_flow_s_full_url(controller):
    app = make_app(controller)
    async with app.run_test(size=(80, 24)) as pilot:
        long_path = "/a/long/path/that/does/not/fit?q=" + "x" * 10
        await push(app, pilot, [make_view(1), make_view(2, path=long_path)])
        app.table.select_flow("f2")
        await pilot.pause()
        last = app.table.scrollable_content_region.height - 1
        assert app.table.render_line(last).text.strip() == (
            f"GET https://api.example.com{long_path}"
        )
        assert long_path not in rendered(app.table, "f2")
