"""Pictures of the main screen. Deterministic: the clock is fixed at NOW, local time is
UTC, the proxy address and port are fixed, and the flows are built, not captured."""

from __future__ import annotations

import pytest
from screen_fakes import NOW, Clock, FakeController, RulesSource, make_view, paused_view, traced
from textual.widgets import Input

from widgets.app import WaylayApp

pytestmark = pytest.mark.usefixtures("utc")

SIZE = (140, 36)


def a_few_flows() -> list:
    return [
        traced(make_view(1, state="cancelled", status=None, size=None, path="/track.js")),
        make_view(2, path="/items?page=[1]", rule_id="api-cache"),
        paused_view(3, "request", since=NOW - 5, method="POST", path="/orders"),
        make_view(
            4,
            host="unreachable.example",
            state="error",
            status=None,
            size=None,
            error="connection refused",
        ),
        make_view(5, status=404, reason="Not Found", size=120, duration=0.012),
        make_view(6, state="redirected", status=307, size=0, rule_id="to-staging"),
        paused_view(7, "certificate", since=NOW - 42, host="self-signed.example", port=8443),
        make_view(8, state="pending", status=None, size=None, duration=None, type="image"),
    ]


def make_app() -> WaylayApp:
    app = WaylayApp(
        FakeController(),
        rules_source=RulesSource("/etc/waylay/rules.toml", "5 rules"),
        title_info={"version": "0.1.0"},
        clock=Clock(),
    )
    return app


def test_snapshot_main_screen(snap_compare):
    """The main screen with eight flows. Header: "waylay  http://127.0.0.1:8080  regular",
    "8 flows", "⏸ 2 paused" in the warning colour, "version 0.1.0"; second line: the rules
    file /etc/waylay/rules.toml with "5 rules", "breakpoint none (on)". The list has the
    columns time, method, proto, host, path, state, type, size, duration, rule; times
    22:11:41.000 to 22:11:48.000, proto HTTPS; the two paused rows (POST /orders "⏸ request 5s, 115s left" and
    self-signed.example:8443 "⏸ certificate 42s, 78s le…") bold in the warning colour; the
    error row ("error: connection refused") in the error colour; the cancelled row muted;
    `/items?page=[1]` shown literally. Above the list, the breakpoint queue (a strip in
    the warning colour), the longest waiting first: "⏸ 1/2 certificate 78s left (42s) GET
    https://self-signed.example:8443/items/7", then "▶ ⏸ 2/2 request 115s left (5s) POST
    https://api.example.com/orders" (▶: the selected flow). The cursor is on the paused POST; the list's last
    line reads "POST https://api.example.com/orders". The footer lists the flow list's
    keys."""

    async def run_before(pilot):
        pilot.app.push_flows(a_few_flows())
        await pilot.pause()
        pilot.app.table.select_flow("f3")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_snapshot_detail_pane(snap_compare):
    """The detail pane open under the list (a rule across the width) for flow #2,
    GET /items?page=[1]: the request line, "#2 · started 22:11:42.000 · type
    xmlhttprequest · api.example.com · decided by no-trackers", the rule trace with
    "★ request no-trackers cancel" over "request log-all continue", the note "cancelled
    by rule no-trackers", the request headers, "HTTP/1.1 200 OK" with the response
    headers, and the start of the JSON body pretty-printed and highlighted. The footer
    shows "esc Back"."""

    async def run_before(pilot):
        flow = traced(make_view(2, path="/items?page=[1]", size=21))
        pilot.app.push_flows([make_view(1), flow, make_view(3)])
        await pilot.pause()
        pilot.app.table.select_flow("f2")
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_snapshot_filter_prompt_with_an_error(snap_compare):
    """The filter prompt over the list: "Filter the flow list", the input holding
    "~q nonsense", under it in the error colour "invalid filter expression: ~q
    nonsense", and the help text about filter expressions and plain text."""

    async def run_before(pilot):
        pilot.app.push_flows(a_few_flows())
        await pilot.pause()
        await pilot.press("f", *"~q nonsense")
        pilot.app.screen.query_one(Input).cursor_blink = False
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)
