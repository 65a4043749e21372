"""The rules screen against a real ``policies.RulesFile`` on disk: each key changes the
file at once (read back from disk), refusals are toasts that change nothing."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import Checkbox, Input, Select, Static

from policies import Rule, RulesFile
from widgets.rules_screen import (
    ConfirmDelete,
    RuleEditor,
    RulesScreen,
    RulesTable,
    rule_conditions,
    rule_outcome,
)

RULES = """\
version = 1

# trackers never load
[[rule]]
id = "no-trackers"
urls = ["*://*.tracker.example/*"]
types = ["script", "image"]
methods = ["GET"]
action = "cancel"

[[rule]]
id = "api-to-staging"
regex = '^https://api\\.example\\.com/(.*)$'
action = "rewrite"
url = 'https://staging.example.com/\\1'
priority = 2

[[rule]]
id = "stub-health"
urls = ["https://api.example.com/health"]
action = "respond"
status = 204
enabled = false

[[rule]]
id = "flaky-cdn"
event = "response"
urls = ["*://cdn.example/*"]
status = [500, 502]
action = "cancel"
times = 3
note = "until the CDN is fixed"
"""

PRECEDENCE = ["api-to-staging", "no-trackers", "stub-health", "flaky-cdn"]


def write_rules(path: Path, text: str = RULES) -> RulesFile:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    rules = RulesFile(path)
    assert rules.load(), rules.errors
    return rules


def on_disk(path: Path) -> list[dict]:
    return tomllib.loads(path.read_text()).get("rule", [])


def ids_on_disk(path: Path) -> list[str]:
    return [rule["id"] for rule in on_disk(path)]


def disk_rule(path: Path, rule_id: str) -> dict:
    return next(rule for rule in on_disk(path) if rule["id"] == rule_id)


class RulesHost(App[None]):
    """Opens the rules screen over an empty main screen; records toasts."""

    def __init__(self, rules: RulesFile) -> None:
        super().__init__()
        self.rules = rules
        self.notices: list[tuple[str, str]] = []
        self.rules_closed = False

    def on_mount(self) -> None:
        self.push_screen(RulesScreen(self.rules), callback=self._rules_screen_closed)

    def _rules_screen_closed(self, _result) -> None:
        self.rules_closed = True

    def notify(self, message: str, *, severity="information", **kwargs) -> None:
        self.notices.append((severity, message))
        super().notify(message, severity=severity, **kwargs)


@pytest.fixture
def rules_path(tmp_path) -> Path:
    return tmp_path / "rules.toml"


@pytest.fixture
def rules(rules_path) -> RulesFile:
    return write_rules(rules_path)


def table_ids(app: App) -> list[str]:
    table = app.screen.query_one(RulesTable)
    return [row.key.value for row in table.ordered_rows]


def cell(app: App, rule_id: str, column: str) -> str:
    return str(app.screen.query_one(RulesTable).get_cell(rule_id, column))


async def select(pilot, rule_id: str) -> None:
    table = pilot.app.screen.query_one(RulesTable)
    table.move_cursor(row=table.get_row_index(rule_id))
    await pilot.pause()


# --------------------------------------------------------------------------- showing


def test_conditions_and_outcomes_are_compact() -> None:
    rule = Rule(
        id="x",
        urls=["*://*.tracker.example/*"],
        methods=["GET"],
        types=["script"],
        action="cancel",
    )
    assert rule_conditions(rule) == "*://*.tracker.example/*  GET  types script"
    assert rule_conditions(Rule(id="y", action="continue")) == "any"
    assert rule_outcome(Rule(id="z", action="redirect", url="https://a.example/")) == (
        "redirect → https://a.example/"
    )
    assert rule_outcome(Rule(id="r", action="respond", status=204)) == "respond 204"


async def test_rules_in_precedence_order_with_hits_and_times(rules) -> None:
    rules.hits["no-trackers"] = 7
    rules.set_transient([Rule(id="breakpoint", action="ask", priority=1_000_000)])
    app = RulesHost(rules)
    async with app.run_test(size=(140, 30)):
        assert table_ids(app) == ["breakpoint", *PRECEDENCE]
        assert cell(app, "breakpoint", "mark") == "●"
        assert cell(app, "no-trackers", "mark") == ""
        assert cell(app, "no-trackers", "hits") == "7"
        assert (
            cell(app, "no-trackers", "conditions")
            == "*://*.tracker.example/*  GET  types script,image"
        )
        assert cell(app, "api-to-staging", "action").startswith("rewrite → https://staging")
        assert cell(app, "stub-health", "enabled") == "off"
        assert cell(app, "flaky-cdn", "times") == "3"
        assert cell(app, "flaky-cdn", "conditions") == "*://cdn.example/*  status 500,502"
        assert cell(app, "no-trackers", "times") == "—"


async def test_refresh_rules_follows_the_file_and_hits(rules, rules_path) -> None:
    app = RulesHost(rules)
    async with app.run_test(size=(140, 30)) as pilot:
        screen = app.screen
        await select(pilot, "stub-health")
        rules.hits["stub-health"] = 3
        screen.refresh_rules()
        assert cell(app, "stub-health", "hits") == "3"
        # someone edits the file: a new rule at the top
        rules_path.write_text(
            RULES.replace(
                "version = 1\n", 'version = 1\n\n[[rule]]\nid = "new"\naction = "cancel"\n'
            )
        )
        assert rules.load()
        screen.refresh_rules()
        assert table_ids(app) == [
            "api-to-staging",
            "new",
            "no-trackers",
            "stub-health",
            "flaky-cdn",
        ]
        assert screen.selected_id() == "stub-health"  # the cursor stays on its rule


async def test_broken_file_is_shown_and_edits_are_refused(rules, rules_path) -> None:
    app = RulesHost(rules)
    async with app.run_test(size=(140, 30)) as pilot:
        rules_path.write_text(RULES + "\n[[rule]\nid = broken\n")
        before = rules_path.read_text()
        assert not rules.load()
        app.screen.refresh_rules()
        error = app.screen.query_one("#file-error", Static)
        assert error.display
        assert "rules.toml" in str(error.content)
        await select(pilot, "no-trackers")
        await pilot.press("space")
        assert rules_path.read_text() == before  # never overwritten
        assert app.notices[-1][0] == "error"
        assert "will not write" in app.notices[-1][1]
        assert table_ids(app) == PRECEDENCE  # the last good rules


async def test_empty_file(tmp_path) -> None:
    rules = RulesFile(tmp_path / "none" / "rules.toml")
    rules.load()
    app = RulesHost(rules)
    async with app.run_test() as pilot:
        assert table_ids(app) == []
        assert app.screen.query_one("#empty", Static).display
        await pilot.press("space", "d", "K", "enter", "s")  # nothing to act on
        assert not (tmp_path / "none" / "rules.toml").exists()


# --------------------------------------------------------------------------- changing


async def test_space_toggles_and_saves(rules, rules_path) -> None:
    app = RulesHost(rules)
    async with app.run_test(size=(140, 30)) as pilot:
        await select(pilot, "no-trackers")
        await pilot.press("space")
        assert disk_rule(rules_path, "no-trackers")["enabled"] is False
        assert cell(app, "no-trackers", "enabled") == "off"
        await pilot.press("space")
        assert "enabled" not in disk_rule(rules_path, "no-trackers")  # back to the default
        assert cell(app, "no-trackers", "enabled") == "on"
        assert "# trackers never load" in rules_path.read_text()  # comments kept


async def test_delete_asks_first(rules, rules_path) -> None:
    app = RulesHost(rules)
    async with app.run_test(size=(140, 30)) as pilot:
        await select(pilot, "stub-health")
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmDelete)
        await pilot.press("n")
        assert "stub-health" in ids_on_disk(rules_path)
        assert isinstance(app.screen, RulesScreen)
        await pilot.press("d")
        await pilot.press("y")
        assert isinstance(app.screen, RulesScreen)
        assert ids_on_disk(rules_path) == ["no-trackers", "api-to-staging", "flaky-cdn"]
        assert table_ids(app) == ["api-to-staging", "no-trackers", "flaky-cdn"]
        assert app.screen.selected_id() == "flaky-cdn"


async def test_move_up_and_down_reorders_the_file(rules, rules_path) -> None:
    app = RulesHost(rules)
    async with app.run_test(size=(140, 30)) as pilot:
        await select(pilot, "flaky-cdn")
        await pilot.press("K")
        assert ids_on_disk(rules_path) == [
            "no-trackers",
            "api-to-staging",
            "flaky-cdn",
            "stub-health",
        ]
        assert table_ids(app) == ["api-to-staging", "no-trackers", "flaky-cdn", "stub-health"]
        assert app.screen.selected_id() == "flaky-cdn"
        await pilot.press("K")
        # past a rule of another priority: the file changes, precedence does not
        assert ids_on_disk(rules_path) == [
            "no-trackers",
            "flaky-cdn",
            "api-to-staging",
            "stub-health",
        ]
        assert any("another priority" in message for _, message in app.notices)
        await pilot.press("J", "J")
        assert ids_on_disk(rules_path) == [
            "no-trackers",
            "api-to-staging",
            "stub-health",
            "flaky-cdn",
        ]


async def test_enter_edits_the_rule(rules, rules_path) -> None:
    app = RulesHost(rules)
    async with app.run_test(size=(140, 40)) as pilot:
        await select(pilot, "no-trackers")
        await pilot.press("enter")
        editor = app.screen
        assert isinstance(editor, RuleEditor)
        assert editor.query_one("#urls", Input).value == "*://*.tracker.example/*"
        assert editor.query_one("#methods", Input).value == "GET"
        editor.query_one("#urls", Input).value = "*://*.tracker.example/*, *://ads.example/*"
        editor.query_one("#methods", Input).value = ""
        editor.query_one("#action", Select).value = "redirect"
        editor.query_one("#url", Input).value = "https://blank.example/"
        editor.query_one("#priority", Input).value = "5"
        editor.query_one("#times", Input).value = "2"
        editor.query_one("#note", Input).value = "edited"
        editor.query_one("#enabled", Checkbox).value = False
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, RulesScreen)
        saved = disk_rule(rules_path, "no-trackers")
        assert saved == {
            "id": "no-trackers",
            "urls": ["*://*.tracker.example/*", "*://ads.example/*"],
            "types": ["script", "image"],
            "action": "redirect",
            "url": "https://blank.example/",
            "priority": 5,
            "enabled": False,
            "times": 2,
            "note": "edited",
        }
        assert table_ids(app)[0] == "no-trackers"  # priority 5 decides first now
        assert "# trackers never load" in rules_path.read_text()


async def test_editor_shows_validation_errors_and_changes_nothing(rules, rules_path) -> None:
    app = RulesHost(rules)
    async with app.run_test(size=(140, 40)) as pilot:
        await select(pilot, "no-trackers")
        await pilot.press("enter")
        editor = app.screen
        before = rules_path.read_text()
        editor.query_one("#action", Select).value = "redirect"  # needs a url
        await pilot.press("ctrl+s")
        error = editor.query_one("#error", Static)
        assert error.display and "needs a `url`" in str(error.content)
        editor.query_one("#urls", Input).value = "not a pattern"
        editor.query_one("#url", Input).value = "https://x.example/"
        editor.query_one("#urls", Input).focus()
        await pilot.pause()
        await pilot.press("enter")
        assert "invalid match pattern" in str(editor.query_one("#error", Static).content)
        editor.query_one("#priority", Input).value = "-"
        await pilot.press("ctrl+s")
        assert "priority" in str(editor.query_one("#error", Static).content)
        assert app.screen is editor
        assert rules_path.read_text() == before
        await pilot.press("escape")
        assert isinstance(app.screen, RulesScreen)
        assert rules_path.read_text() == before


async def test_save_a_transient_rule(rules, rules_path) -> None:
    rules.set_transient([Rule(id="breakpoint", action="ask", priority=1_000_000, note="bp")])
    app = RulesHost(rules)
    async with app.run_test(size=(140, 30)) as pilot:
        await select(pilot, "breakpoint")
        await pilot.press("space")  # not in the file yet: says so, changes nothing
        assert "s saves it" in app.notices[-1][1]
        assert "breakpoint" not in ids_on_disk(rules_path)
        await pilot.press("s")
        assert "breakpoint" in ids_on_disk(rules_path)
        assert disk_rule(rules_path, "breakpoint")["action"] == "ask"
        assert cell(app, "breakpoint", "mark") == ""
        await pilot.press("s")
        assert "already saved" in app.notices[-1][1]


async def test_escape_goes_back(rules) -> None:
    app = RulesHost(rules)
    async with app.run_test() as pilot:
        await pilot.press("escape")
        assert app.rules_closed
        assert not isinstance(app.screen, RulesScreen)


# --------------------------------------------------------------------------- snapshot


def test_snapshot_rules_screen(snap_compare, monkeypatch, tmp_path) -> None:
    """The rules screen: the title "rules · ~/.config/waylay/rules.toml · 4 rules", the
    legend, then the columns (mark, id, on, event, prio, hits, left, action, conditions)
    and five rows in precedence order: the unsaved "breakpoint" marked ● with priority
    1000000, api-to-staging (priority 2, rewrite → staging), no-trackers (7 hits, under
    the cursor), stub-health dimmed and "off", flaky-cdn (a response rule, 3 left); the
    footer lists the keys."""
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    rules = write_rules(home / ".config" / "waylay" / "rules.toml")
    rules.hits["no-trackers"] = 7
    rules.set_transient([Rule(id="breakpoint", action="ask", priority=1_000_000)])
    assert os.environ["HOME"] == str(home)

    async def run_before(pilot) -> None:
        await select(pilot, "no-trackers")

    assert snap_compare(RulesHost(rules), terminal_size=(120, 16), run_before=run_before)
