"""The first five minutes: --help lists every command, the settings file and its precedence."""

from __future__ import annotations

import subprocess

import pytest

from monitor.cli import COMMANDS, main
from monitor.user_settings import load_user_settings, save_setting, settings_path
from tests.helpers import WAYLAY


def run(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([*WAYLAY, *args], capture_output=True, text=True, timeout=60, env=env)


def test_help_lists_every_command_one_line_each():
    r = run("--help")
    assert r.returncode == 0
    for name, what in COMMANDS:
        line = next((ln for ln in r.stdout.splitlines() if name in ln), None)
        assert line is not None, f"{name} missing from --help"
        assert what in line
    for word in ("rules check", "rules list", "rules export", "rules import", "waylay ca"):
        assert word in r.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ("rules", "--help"),
        ("rules", "check", "--help"),
        ("rules", "list", "--help"),
        ("rules", "export", "--help"),
        ("rules", "import", "--help"),
        ("ca", "--help"),
    ],
)
def test_every_command_has_its_own_help(argv):
    r = run(*argv)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: waylay")


def write_settings(text: str):
    path = settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def settings_lines(capsys, *argv: str) -> dict[str, str]:
    assert main([*argv, "--print-settings"]) == 0
    out = capsys.readouterr().out
    return {ln.split(" = ", 1)[0]: ln.split(" = ", 1)[1] for ln in out.splitlines() if " = " in ln}


def test_settings_file_sets_defaults_and_the_command_line_wins(capsys, tmp_path, monkeypatch):
    path = write_settings(
        '# mine\ntheme = "dracula"\n[options]\nask_timeout = 300\nmax_flows = 7\n'
        f'rules = "{tmp_path / "from-file.toml"}"\n'
    )
    shown = settings_lines(capsys)
    assert shown["ask_timeout"] == f"300.0  (settings file {path})"
    assert shown["max_flows"] == f"7  (settings file {path})"
    assert shown["listen_port"] == "8080  (default)"
    assert shown["theme"] == "dracula"
    assert shown["rules"] == f"{tmp_path / 'from-file.toml'}  (settings file {path})"

    shown = settings_lines(capsys, "--ask-timeout", "5", "--max-flows=9")
    assert shown["ask_timeout"] == "5.0  (command line)"
    assert shown["max_flows"] == "9  (command line)"

    monkeypatch.setenv("WAYLAY_RULES", str(tmp_path / "from-env.toml"))
    shown = settings_lines(capsys)
    assert shown["rules"] == f"{tmp_path / 'from-env.toml'}  ($WAYLAY_RULES)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[options]\nask_timout = 3\n", "options.ask_timout: unknown setting"),
        ("[options]\nmax_flows = 0\n", "options.max_flows: Input should be greater than"),
        ("[options]\nask_default = 'maybe'\n", "options.ask_default: Input should be"),
        ("theme = [\n", ":2:1: Invalid value (at end of file)"),
        ("theme = 'a'\ntheme = 'b'\n", ":2:"),
        ("keymap = 3\n", "keymap: Input should be a valid dictionary"),
        ("[options]\nask_timeout = -1\n", "options.ask_timeout: "),
        ("[options]\nmax_body_memory = 'lots'\n", "options.max_body_memory: "),
    ],
)
def test_a_bad_settings_file_is_one_clear_error(text, expected):
    path = write_settings(text)
    r = run("--print-settings")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"waylay: {path}:")
    assert expected in lines[0]


def test_saving_a_setting_keeps_the_rest_of_the_file():
    path = write_settings("# my settings\n[options]\nmax_flows = 7  # small box\n")
    save_setting("theme", "nord")
    text = path.read_text()
    assert "# my settings" in text and "# small box" in text
    assert load_user_settings().theme == "nord"
    assert load_user_settings().options.max_flows == 7


def test_saving_never_writes_over_a_broken_file():
    path = write_settings("theme = [\n")
    from monitor.settings import SettingsError

    with pytest.raises(SettingsError):
        save_setting("theme", "nord")
    assert path.read_text() == "theme = [\n"


def test_saving_creates_the_file():
    save_setting("theme", "nord")
    assert load_user_settings().theme == "nord"


# -- the screen takes the theme and keymap, and keeps a theme picked later ----------------


async def test_the_screen_takes_theme_and_keymap_and_keeps_a_new_theme():
    from monitor.user_settings import apply_user_settings
    from tests.widgets.screen_fakes import Clock, FakeController
    from widgets.app import WaylayApp

    path = write_settings('# mine\ntheme = "nord"\nfollow = true\n[keymap]\n"waylay.clear" = "c"\n')
    controller = FakeController()
    app = WaylayApp(controller, clock=Clock())
    async with app.run_test() as pilot:
        apply_user_settings(app)
        await pilot.pause()
        assert app.theme == "nord"
        assert app.table.follow
        await pilot.press("c")  # remapped: clear finished flows
        await pilot.pause()
        assert ("clear_finished",) in controller.calls
        app.theme = "dracula"  # as the palette's "Change theme" does
        await pilot.pause()
        await pilot.pause()
    text = path.read_text()
    assert 'theme = "dracula"' in text and "# mine" in text
    assert load_user_settings().keymap == {"waylay.clear": "c"}


async def test_a_bad_settings_file_is_a_notice_on_the_screen_not_a_crash():
    from monitor.user_settings import apply_user_settings
    from tests.widgets.screen_fakes import Clock, FakeController
    from widgets.app import WaylayApp

    write_settings('theme = "no-such-theme"\n')
    app = WaylayApp(FakeController(), clock=Clock())
    async with app.run_test() as pilot:
        apply_user_settings(app)
        await pilot.pause()
        assert app.theme != "no-such-theme"
        assert any("no-such-theme" in n.message for n in app._notifications)
