"""Key to frame in a real terminal: the screen with COUNT flows in tmux.

``python -m tests.bench.screen_tmux [COUNT ...]`` (default 100000) starts the screen (a
fake controller, COUNT finished flows) in a detached tmux session of 160x50, then for
each key sends it with ``tmux send-keys`` and polls ``tmux capture-pane`` until the
list's last line (the selected flow's full URL) shows the expected flow: the time from
the key to the frame a person would see, including tmux's own round trip (~2-5 ms).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

SESSION_SIZE = ("160", "50")


def run_screen(count: int) -> None:
    """Inside tmux: the app with `count` flows."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "widgets"))
    from screen_fakes import Clock, FakeController

    from tests.bench.screen_list import build
    from widgets.app import WaylayApp

    views = build(count)
    app = WaylayApp(FakeController(), clock=Clock())

    def feed() -> None:
        for start in range(0, count, 10_000):
            app.push_flows(views[start : start + 10_000])

    app.call_later(feed)
    app.run()


def tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", *args], capture_output=True, text=True, check=True, timeout=10
    ).stdout


def url_line(session: str) -> str:
    lines = [line for line in tmux("capture-pane", "-p", "-t", session).splitlines() if line]
    for line in reversed(lines):
        if "https://api.example.com/items/" in line:
            return line
    return ""


def wait_for(session: str, text: str, timeout: float = 30.0) -> float:
    started = time.perf_counter()
    while text not in url_line(session):
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{text!r} never showed: {url_line(session)!r}")
        time.sleep(0.001)
    return (time.perf_counter() - started) * 1000


def key_to_frame(session: str, key: str, expected: str) -> float:
    started = time.perf_counter()
    tmux("send-keys", "-t", session, key)
    wait_for(session, expected)
    return (time.perf_counter() - started) * 1000


def measure(count: int) -> dict[str, float]:
    session = f"waylay-bench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "TERM": "xterm-256color", "TZ": "UTC"}
    command = f"{sys.executable} -m tests.bench.screen_tmux --screen {count}"
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            SESSION_SIZE[0],
            "-y",
            SESSION_SIZE[1],
            command,
        ],
        check=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        wait_for(session, "/items/1?", timeout=120)
        # all flows in: End shows the last one
        deadline = time.time() + 300
        while True:
            tmux("send-keys", "-t", session, "End")
            time.sleep(0.2)
            if f"/items/{count}?" in url_line(session):
                break
            if time.time() > deadline:
                raise TimeoutError("the flows never all arrived")
        tmux("send-keys", "-t", session, "Home")
        wait_for(session, "/items/1?")
        results: dict[str, float] = {}
        moves = []
        row = 1
        for _ in range(10):
            row += 1
            moves.append(key_to_frame(session, "Down", f"/items/{row}?"))
        results["cursor_ms"] = statistics.median(moves)
        pages = []
        for _ in range(5):
            before = row
            started = time.perf_counter()
            tmux("send-keys", "-t", session, "PageDown")
            while f"/items/{before}?" in url_line(session):
                time.sleep(0.001)
            pages.append((time.perf_counter() - started) * 1000)
            line = url_line(session)
            row = int(line.split("/items/")[1].split("?")[0])
        results["pagedown_ms"] = statistics.median(pages)
        ends, homes = [], []
        for _ in range(5):
            ends.append(key_to_frame(session, "End", f"/items/{count}?"))
            homes.append(key_to_frame(session, "Home", "/items/1?"))
        results["end_ms"] = statistics.median(ends)
        results["home_ms"] = statistics.median(homes)
        return results
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--screen"]:
        run_screen(int(argv[1]))
        return 0
    if shutil.which("tmux") is None:
        print("(tmux not installed: no key-to-frame figures)")
        return 0
    counts = [int(arg) for arg in argv] or [100_000]
    print("flow list, key to frame in tmux (median ms)")
    for count in counts:
        r = measure(count)
        print(
            f"{count:>9,} flows: cursor {r['cursor_ms']:.0f} ms, PageDown "
            f"{r['pagedown_ms']:.0f} ms, End {r['end_ms']:.0f} ms, Home {r['home_ms']:.0f} ms",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
