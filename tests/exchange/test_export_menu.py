"""The export menu under ``App.run_test()`` with a fake controller: keys choose, files
appear in the folder with generated names, the clipboard gets the text, left-out rules
are named, failures keep the menu open."""

from __future__ import annotations

import json
import time
from pathlib import Path

from textual.app import App
from textual.widgets import OptionList

from tests.widgets.screen_fakes import FakeController
from widgets.export_menu import ExportMenu

EPOCH = time.struct_time((2026, 1, 2, 3, 4, 5, 4, 2, 0))
STAMP = "20260102-030405"


class Host(App[None]):
    def __init__(self, menu: ExportMenu) -> None:
        super().__init__()
        self.menu = menu
        self.results: list[str | None] = []

    def on_mount(self) -> None:
        self.push_screen(self.menu, self.results.append)


def notifications(app: App) -> list[str]:
    return [n.message for n in app._notifications]


def make_menu(tmp_path: Path, controller: FakeController, **kwargs) -> ExportMenu:
    kwargs.setdefault("selected_flow_id", "f2")
    kwargs.setdefault("visible_flow_ids", ["f1", "f2"])
    return ExportMenu(controller, directory=tmp_path, clock=lambda: EPOCH, **kwargs)


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def choose(pilot, option_id: str, key: str = "enter") -> None:
    options = pilot.app.screen.query_one(OptionList)
    options.highlighted = options.get_option_index(option_id)
    await pilot.press(key)
    await settle(pilot)


async def test_enter_writes_the_selected_flow_as_curl_to_a_new_file(tmp_path):
    controller = FakeController()
    app = Host(make_menu(tmp_path, controller))
    async with app.run_test() as pilot:
        assert app.screen.query_one(OptionList).has_focus
        await pilot.press("enter")  # the first line: the selected flow as curl
        await settle(pilot)
        written = tmp_path / f"waylay-{STAMP}-curl.sh"
        assert written.read_text() == "curl https://example.com/f2\n"
        assert controller.calls == [("export_curl", "f2")]
        assert app.results == [str(written)]
        assert f"Wrote {written}." in notifications(app)


async def test_all_and_listed_flows_as_har(tmp_path):
    controller = FakeController()
    app = Host(make_menu(tmp_path, controller))
    async with app.run_test() as pilot:
        await pilot.press("down", "enter")  # all flows
        await settle(pilot)
        app.push_screen(make_menu(tmp_path, controller), app.results.append)
        await pilot.pause()
        await choose(pilot, "har-listed")
    everything = tmp_path / f"waylay-{STAMP}.har"
    listed = tmp_path / f"waylay-{STAMP}-listed.har"
    assert controller.calls == [
        ("export_har", str(everything), None),
        ("export_har", str(listed), ["f1", "f2"]),
    ]
    assert len(json.loads(listed.read_text())["log"]["entries"]) == 2
    assert app.results == [str(everything), str(listed)]
    assert f"Wrote {listed} (2 flows)." in notifications(app)


async def test_rules_in_each_format_and_the_left_out_ones_are_named(tmp_path):
    controller = FakeController()
    app = Host(make_menu(tmp_path, controller))
    async with app.run_test() as pilot:
        await choose(pilot, "rules-dnr")
    written = tmp_path / f"waylay-{STAMP}-dnr.json"
    assert written.read_text() == "rules as dnr\n"
    warning = next(n for n in notifications(app) if "not in this format" in n)
    assert "auth-rule: left out: auth events" in warning
    assert "note:" not in warning


async def test_c_copies_to_the_clipboard_instead(tmp_path):
    controller = FakeController()
    app = Host(make_menu(tmp_path, controller))
    async with app.run_test() as pilot:
        await choose(pilot, "rules-mitmproxy", key="c")
        assert app.clipboard == "rules as mitmproxy\n"
        assert app.results == ["clipboard"]
        assert list(tmp_path.iterdir()) == []
        # a HAR only goes to a file
        app.push_screen(make_menu(tmp_path, controller), app.results.append)
        await pilot.pause()
        await choose(pilot, "har-all", key="c")
        assert isinstance(app.screen, ExportMenu)
        assert ("export_har", str(tmp_path / f"waylay-{STAMP}.har"), None) not in controller.calls


async def test_names_never_overwrite_an_existing_file(tmp_path):
    (tmp_path / f"waylay-{STAMP}-rules.toml").write_text("mine")
    app = Host(make_menu(tmp_path, FakeController()))
    async with app.run_test() as pilot:
        await choose(pilot, "rules-toml")
    assert (tmp_path / f"waylay-{STAMP}-rules.toml").read_text() == "mine"
    assert (tmp_path / f"waylay-{STAMP}-2-rules.toml").read_text() == "rules as toml\n"


async def test_without_a_selection_curl_is_disabled_and_escape_closes(tmp_path):
    controller = FakeController()
    app = Host(make_menu(tmp_path, controller, selected_flow_id=None, visible_flow_ids=None))
    async with app.run_test() as pilot:
        options = app.screen.query_one(OptionList)
        assert options.get_option("curl").disabled
        assert options.get_option("har-listed").disabled
        await pilot.press("escape")
        await pilot.pause()
    assert app.results == [None]
    assert controller.calls == []


async def test_a_failure_is_shown_and_the_menu_stays_open(tmp_path):
    app = Host(make_menu(tmp_path, FakeController(), selected_flow_id="gone"))
    async with app.run_test() as pilot:
        await choose(pilot, "curl")
        assert isinstance(app.screen, ExportMenu)
        assert "Export failed: that flow is no longer kept" in notifications(app)
        await choose(pilot, "rules-json")  # another choice still works
        assert app.results == [str(tmp_path / f"waylay-{STAMP}-rules.json")]
