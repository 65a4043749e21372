"""The breakpoint queue with a fake controller: the docked strip, `p`, auto-advance after
a decision, `O` (never over a form), and marks with `a`/`X`/`M`."""

from __future__ import annotations

import dataclasses
import math

import pytest
from screen_fakes import NOW, Clock, FakeController, make_view, paused_view, wait_until
from textual.widgets import Input

from widgets.app import WaylayApp
from widgets.dialogs import DecisionDialog
from widgets.model import Answer
from widgets.prompts import InputPrompt

pytestmark = pytest.mark.usefixtures("utc")

SIZE = (140, 36)


def make_app(controller: FakeController, **kwargs) -> WaylayApp:
    return WaylayApp(controller, clock=Clock(), **kwargs)


async def push(app: WaylayApp, pilot, views, removed=()) -> None:
    app.push_flows(views, removed)
    await pilot.pause()


def queue_text(app: WaylayApp) -> str:
    return app.queue.render().plain


async def test_the_queue_lists_paused_flows_oldest_first_with_countdowns(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1)])
        assert not app.queue.display  # nothing paused: no strip
        await push(
            app,
            pilot,
            [
                paused_view(3, "response", since=NOW - 2),
                paused_view(2, "request", since=NOW - 30, method="POST", path="/orders"),
            ],
        )
        assert app.queue.display
        assert app.queue.flow_ids == ["f2", "f3"]
        lines = queue_text(app).splitlines()
        assert "1/2" in lines[0] and "request" in lines[0] and "90s left" in lines[0]
        assert "POST https://api.example.com/orders" in lines[0]
        assert "2/2" in lines[1] and "response" in lines[1] and "118s left" in lines[1]
        app.clock.now += 10
        app._tick()
        assert "80s left" in queue_text(app).splitlines()[0]
        await push(app, pilot, [make_view(2), make_view(3)])
        assert not app.queue.display


async def test_the_queue_of_a_pause_without_a_time_limit_says_so(controller):
    """--ask-timeout none: the deadline is infinite; the strip says so, no countdown."""
    app = make_app(controller, ask_timeout=None)
    async with app.run_test(size=SIZE) as pilot:
        view = paused_view(1, "request", since=NOW - 7)
        assert view.paused is not None
        paused = dataclasses.replace(view.paused, deadline=math.inf)
        await push(app, pilot, [dataclasses.replace(view, paused=paused)])
        (line,) = queue_text(app).splitlines()
        assert "no time limit" in line and "(7s)" in line
        assert "left" not in line
        app.clock.now += 60
        app._tick()
        assert "(67s)" in queue_text(app)


async def test_the_queue_counts_what_does_not_fit(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [paused_view(n) for n in range(1, 8)])
        assert "… and 3 more paused" in queue_text(app)


async def test_p_walks_the_paused_flows_oldest_first(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        views = [make_view(n) for n in range(1, 200)]
        views[149] = paused_view(150)
        views[9] = paused_view(10)
        await push(app, pilot, views)
        await pilot.press("end")
        await pilot.press("p")
        assert app.table.selected_id == "f10"
        await pilot.press("p")
        assert app.table.selected_id == "f150"
        assert (
            "/items/150"
            in app.table.render_line(app.table.index_of("f150") + 1 - int(app.table.scroll_y)).text
        )
        await pilot.press("p")
        assert app.table.selected_id == "f10"  # round again


async def test_p_with_nothing_paused_says_so(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1)])
        await pilot.press("p")
        assert "No flow is paused." in [n.message for n in app._notifications]


async def test_after_a_decision_the_next_paused_flow_s_dialog_opens(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [paused_view(1), make_view(2), paused_view(3, "response")])
        app.table.select_flow("f2")
        await pilot.press("p", "enter")
        assert isinstance(app.screen, DecisionDialog) and app.screen.flow_id == "f1"
        await pilot.press("c")  # continue, remember once
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, DecisionDialog) and app.screen.flow_id == "f3",
            "the next dialog",
        )
        assert controller.answers == [("f1", "request", Answer("continue"))]
        assert app.queue.flow_ids == ["f3"]  # f1 answered, its batch not yet here
        await pilot.press("c")
        await pilot.pause()
        assert not isinstance(app.screen, DecisionDialog)  # nothing left


async def test_auto_advance_off_stays_on_the_list(controller):
    app = make_app(controller, auto_advance=False)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [paused_view(1), paused_view(2)])
        await pilot.press("enter", "c")
        await pilot.pause()
        assert not isinstance(app.screen, DecisionDialog)
        app.action_toggle_auto_advance()
        assert app.auto_advance


async def test_capital_o_opens_dialogs_by_themselves_but_never_over_a_form(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(1)])
        await pilot.press("O")
        assert app.auto_open and "auto-open" in app.header.render().plain
        await push(app, pilot, [paused_view(2)])
        assert isinstance(app.screen, DecisionDialog) and app.screen.flow_id == "f2"
        await pilot.press("escape")
        # typing a filter: a new pause does not open over it
        await pilot.press("f", "a", "b")
        assert isinstance(app.screen, InputPrompt)
        await push(app, pilot, [paused_view(3)])
        assert isinstance(app.screen, InputPrompt)
        assert app.screen.query_one(Input).value == "ab"
        assert app.focused is app.screen.query_one(Input)
        await pilot.press("O")  # a key typed into the form stays in the form
        assert app.screen.query_one(Input).value == "abO"
        await pilot.press("escape")
        await pilot.press("O")
        assert not app.auto_open
        await push(app, pilot, [paused_view(4)])
        assert not isinstance(app.screen, DecisionDialog)


async def test_marked_paused_flows_are_continued_or_cancelled_together(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [paused_view(n) for n in range(1, 5)] + [make_view(5)])
        for flow_id in ("f1", "f3", "f5"):
            app.table.select_flow(flow_id)
            await pilot.press("m")
        assert app.table.marked == {"f1", "f3", "f5"}
        assert "●" in app.table.render_line(1).text
        await pilot.press("a")
        assert controller.answers == [
            ("f1", "request", Answer("continue")),
            ("f3", "request", Answer("continue")),
        ]
        assert app.table.marked == {"f5"}  # decided flows lose their mark
        assert app.queue.flow_ids == ["f2", "f4"]
        app.table.select_flow("f2")
        await pilot.press("m")
        app.table.select_flow("f4")
        await pilot.press("m")
        await pilot.press("X")
        assert controller.answers[2:] == [
            ("f2", "request", Answer("cancel")),
            ("f4", "request", Answer("cancel")),
        ]


async def test_capital_m_shows_marked_flows_only(controller):
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        await push(app, pilot, [make_view(n) for n in range(1, 6)])
        app.table.select_flow("f2")
        await pilot.press("m")
        app.table.select_flow("f4")
        await pilot.press("m", "M")
        assert app.table.flow_ids() == ["f2", "f4"]
        assert "marked only" in app.header.render().plain
        await pilot.press("m")  # unmarking hides it
        assert app.table.flow_ids() == ["f2"]
        await pilot.press("M")
        assert app.table.flow_ids() == [f"f{n}" for n in range(1, 6)]
