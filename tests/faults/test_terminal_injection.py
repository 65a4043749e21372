"""15.4: nothing a client sends reaches a terminal as control characters or as markup:
headless lines, `rules list`, error messages and the screen show them escaped/literal."""

from __future__ import annotations

import asyncio
import socket

import pytest
from rich.console import Console

from monitor.app import make_app
from tests.faults.common import run_cli
from tests.helpers import common, headless, until

pytestmark = pytest.mark.e2e

EVIL_PATH = "/x\x1b]0;pwned\x07\x1b[2J[bold]big[/bold]"
EVIL_HEADER = "[link=https://evil.example]click[/link]\x1b[31m"


def raw_request(port: int, target: str, headers: str = "") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {target.split('/')[2]}\r\n{headers}"
            "Connection: close\r\n\r\n".encode("latin-1")
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_headless_lines_escape_control_characters(settings, upstream):
    with headless(*common(settings)) as w:
        raw_request(w.port, upstream.url(EVIL_PATH))
        [line] = w.wait_lines(1)
    assert not any(ord(c) < 32 or ord(c) == 127 for c in line), repr(line)
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in line


def test_rules_list_and_check_escape_control_characters(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text(
        'version = 1\n[[rule]]\nid = "evil"\nurls = ["*://example.com/\\u001b[2J*"]\n'
        'action = "redirect"\nurl = "http://127.0.0.1/\\u001b]0;title\\u0007"\n'
    )
    r = run_cli("rules", "list", str(rules), env={"COLUMNS": "250"})
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "\\x1b[2J" in r.stdout
    broken = tmp_path / "broken.toml"
    broken.write_text(
        'version = 1\n[[rule]]\nid = "bad"\nurls = ["\\u001b[2Jnot a pattern"]\naction = "cancel"\n'
    )
    r = run_cli("rules", "check", str(broken))
    assert r.returncode == 1
    assert "\x1b" not in r.stderr, repr(r.stderr)


def test_option_errors_escape_control_characters(settings):
    r = run_cli("--headless", "--ask-timeout", "\x1b[2J", *common(settings))
    assert r.returncode == 2
    assert "\x1b" not in r.stderr and "\\x1b[2J" in r.stderr


def detail_text(app) -> str:
    console = Console(width=160, record=True, color_system=None)
    console.print(app.query_one("#detail-body").content)
    return console.export_text()


async def test_the_screen_shows_markup_literally_and_no_control_characters(
    settings, upstream, pool
):
    app, session = make_app(settings)
    _, port = session.start()
    async with app.run_test(size=(160, 40)) as pilot:
        await asyncio.get_running_loop().run_in_executor(
            pool, lambda: raw_request(port, upstream.url(EVIL_PATH), f"X-Evil: {EVIL_HEADER}\r\n")
        )
        fid = await until(
            pilot, lambda: next((k for k, v in app.flows.items() if v.finished), None), "a row"
        )
        view = app.flows[fid]
        for text in (view.url, view.path, *(v for _, v in view.request_headers)):
            assert not any(ord(c) < 32 for c in text), repr(text)
        app.table.select_flow(fid)
        await pilot.press("enter")
        await until(pilot, lambda: app.detail.has_class("-open"), "detail pane")
        text = detail_text(app)
        assert "[bold]big[/bold]" in text
        assert "[link=https://evil.example]click[/link]" in text
        assert "\x1b" not in text and "\\x1b" in text
        screen = app.export_screenshot()
        assert "[bold]big[/bold]" in screen.replace("&#160;", " ")
    session.stop()
