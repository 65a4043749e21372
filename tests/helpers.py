"""Small helpers for end-to-end tests: wait by condition, run curl, run waylay headless."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

WAYLAY = [sys.executable, "-m", "monitor.cli"]


def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition"):
    """Poll ``cond`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def curl(
    proxy_port: int, url: str, *args: str, cacert: Path | None = None, timeout: float = 15
) -> subprocess.CompletedProcess:
    """Real curl through the proxy; stdout is the body, -w appends the status code."""
    cmd = [
        "curl",
        "-sS",
        "--max-time",
        str(timeout),
        "-x",
        f"http://127.0.0.1:{proxy_port}",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        *args,
        url,
    ]
    if cacert is not None:
        cmd[1:1] = ["--cacert", str(cacert)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 5)


class Headless:
    """``waylay --headless`` as a subprocess; ``lines`` collects its stdout live."""

    def __init__(self, proc: subprocess.Popen, port: int, stderr_head: str) -> None:
        self.proc = proc
        self.port = port
        self.stderr_head = stderr_head
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_lines(self, n: int, timeout: float = 10.0) -> list[str]:
        wait_for(lambda: len(self.lines) >= n, timeout, f"{n} output lines (have {self.lines})")
        return self.lines

    def terminate(self, timeout: float = 15.0) -> int:
        import signal

        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        return rc


def headless_to_file(err_path: Path, *args: str, stdout=subprocess.DEVNULL):
    """Start ``waylay --headless --listen-port 0 ARGS`` with its stderr going to
    ``err_path`` (for the test to read whole later); wait for its listening line:
    (the process, its port). Killed if it does not start."""
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            [*WAYLAY, "--headless", "--listen-port", "0", *args],
            stdout=stdout,
            stderr=err,
            text=True,
        )
    try:
        found = wait_for(
            lambda: re.search(r"listening on http://127.0.0.1:(\d+)", err_path.read_text()),
            timeout=30,
            what="the listening line",
        )
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, int(found.group(1))


@contextmanager
def headless(*args: str, env: dict | None = None, timeout: float = 30.0):
    """Start ``waylay --headless --listen-port 0 ARGS``; wait for its listening line."""
    proc = subprocess.Popen(
        [*WAYLAY, "--headless", "--listen-port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    head = []
    port = None
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        head.append(line)
        m = re.search(r"waylay: listening on http://[^\s]+:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"waylay did not start: {''.join(head)}{err}")
    threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()
    h = Headless(proc, port, "".join(head))
    try:
        yield h
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def until(pilot, condition: Callable[[], object], what: str, timeout: float = 10.0):
    """In a pilot test: let the app run until ``condition`` is truthy; return it."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.02)
    return value


async def focused_input(pilot, selector: str, what: str = "") -> Any:
    """In a pilot test: wait until an Input matching ``selector`` has focus,
    clear it and return it. A widget's ``focus()`` lands through the app's message queue,
    so a key press can return before it did (a loaded CI machine showed it): keys typed
    then reach the widget the user's keys reach, but a value set from the test at once
    would land on whatever had focus before."""
    app = pilot.app

    def focused_match() -> Any:
        focused = app.focused
        return focused if focused is not None and focused in app.screen.query(selector) else None

    field = await until(pilot, focused_match, what or f"focus on {selector}")
    field.value = ""
    return field


def screen_text(app) -> str:
    """What the screen shows, as text (the SVG screenshot with spaces restored)."""
    return app.export_screenshot().replace("&#160;", " ")


def common(settings) -> list[str]:
    """The command-line options that point a waylay process at a test's settings."""
    return [
        "--confdir",
        str(settings.confdir),
        "--rules",
        str(settings.rules),
        "--upstream-ca",
        str(settings.upstream_ca),
    ]


def write_rules(settings, text: str) -> Path:
    """Write a rules file (``version = 1`` and ``text``) where ``settings`` points."""
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text("version = 1\n" + text)
    return settings.rules
