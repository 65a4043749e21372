"""The screen attached to a proxy in another process (issue 11): real proxy processes,
real clients, the real screen under Textual's pilot over the real control socket."""

from __future__ import annotations

import pytest
from rich.console import Console

from monitor.attach import make_attached_app
from monitor.remote import Remote
from tests.helpers import curl, until

pytestmark = pytest.mark.e2e

SIZE = (150, 40)
ASK = '[[rule]]\nid = "ask"\nurls = ["*://127.0.0.1/ask*"]\naction = "ask"\n'


def detail_text(app) -> str:
    console = Console(width=140, record=True, color_system=None)
    console.print(app.query_one("#detail-body").content)
    return console.export_text()


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
        view = app.flows[next(i for i, v in app.flows.items() if v.path == "/three")]
        assert view.status == 200 and view.state == "done"
        # details come on demand, from the proxy process
        app.table.move_cursor(row=app.table.get_row_index(view.id))
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
