"""Key to frame in a real terminal: the waylay screen and mitmproxy console, COUNT flows.

``python -m tests.bench.screen_tmux [COUNT ...]`` (default 100000) starts the waylay
screen (a fake controller, COUNT finished flows) in a detached tmux session of 160x50,
then for each key sends it with ``tmux send-keys`` and polls ``tmux capture-pane`` until
the frame shows its effect: the time from the key to the frame a person would see,
including tmux's own round trip (~2-5 ms). Then the same for ``mitmproxy -r FILE``
(mitmproxy console, from this venv) on a flow file of the same COUNT flows, written with
``mitmproxy.io.FlowWriter``: the same URLs, statuses and keys. ``--no-mitmproxy`` skips it.

Keys: cursor down, PageDown, End, Home; open the details (enter) and close them (q in
both tools); a filter (``f``, ``page=3``, the
time taken from the enter that applies it, matching 1 flow in 7) and its clear. What shows
that a key took effect: in waylay the selected flow's URL line, the details' "Rule
trace:" line and the header's "(N shown)"; in mitmproxy console its status bar's
``[index/total]``, "Flow Details" and ``[f:page=3]``.

(Escape, waylay's other close key, is held by the terminal layer until no more bytes
follow: Textual's ``ESCDELAY``, 100 ms by default, read in 100 ms steps.)
The tmux server is a private one (``-L``), so its ``escape-time 0`` touches nobody else.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

SESSION_SIZE = ("160", "50")
FILTER = "page=3"
LOAD_TIMEOUT = float(os.environ.get("WAYLAY_BENCH_LOAD_TIMEOUT", "1800"))
"""Seconds mitmproxy console may take to load the flow file (it reads ~200 flows/s)."""
ROOT = Path(__file__).resolve().parents[2]


def run_screen(count: int) -> None:
    """Inside tmux: the app with `count` flows."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "widgets"))
    from screen_fakes import Clock, FakeController, many_views

    from widgets.app import WaylayApp

    views = many_views(count)
    app = WaylayApp(FakeController(), clock=Clock())

    def feed() -> None:
        for start in range(0, count, 10_000):
            app.push_flows(views[start : start + 10_000])

    app.call_later(feed)
    app.run()


def write_flow_file(count: int, path: Path) -> None:
    """`count` finished flows as the waylay screen gets them (tests/bench/screen_list.py:
    same URLs, statuses, start times), in mitmproxy's flow format."""
    from mitmproxy import io
    from mitmproxy.test import tflow

    template = tflow.tflow(resp=True)
    with path.open("wb") as out:
        writer = io.FlowWriter(out)
        for n in range(1, count + 1):
            flow = template.copy()
            flow.request.scheme = "https"
            flow.request.host = "api.example.com"
            flow.request.port = 443
            flow.request.path = f"/items/{n}?page={n % 7}"
            flow.request.timestamp_start = 1_700_000_000 + n / 1000
            assert flow.response is not None
            flow.response.status_code = 200 + (n % 4) * 100
            writer.add(flow)


class Terminal:
    """One program in its own tmux server, 160x50."""

    def __init__(self, command: str, env: dict[str, str]) -> None:
        self.server = f"waylay-bench-{uuid.uuid4().hex[:8]}"
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "bench", "-x", SESSION_SIZE[0],
                  "-y", SESSION_SIZE[1], command, env=env)  # fmt: skip
        self.tmux("set", "-s", "escape-time", "0")

    def tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        return subprocess.run(
            ["tmux", "-L", self.server, *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            env=env,
            cwd=ROOT,
        ).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "bench")

    def send(self, *keys: str, literal: bool = False) -> None:
        self.tmux("send-keys", "-t", "bench", *(["-l"] if literal else []), *keys)

    def wait(self, shown: Callable[[str], bool], what: str, timeout: float = 30.0) -> float:
        started = time.perf_counter()
        while not shown(self.screen()):
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"{what} never showed:\n{self.screen()}")
            time.sleep(0.001)
        return (time.perf_counter() - started) * 1000

    def key(self, key: str, shown: Callable[[str], bool], what: str) -> float:
        started = time.perf_counter()
        self.send(key)
        self.wait(shown, what)
        return (time.perf_counter() - started) * 1000

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True)


def waylay_row(screen: str) -> int | None:
    """The selected flow's number, from the URL line (the last one naming a flow)."""
    found = re.findall(r"GET https://api\.example\.com/items/(\d+)\?", screen)
    return int(found[-1]) if found else None


def mitmproxy_row(screen: str) -> tuple[int, int] | None:
    """mitmproxy console's status bar: (index of the focused flow, flows listed)."""
    found = re.search(r"\[(\d+)/(\d+)\]", screen)
    return (int(found[1]), int(found[2])) if found else None


def measure_keys(term: Terminal, count: int, row: Callable[[str], int | None], tool: dict) -> dict:
    """Both tools: `row(screen)` is the focused flow's position (1 is the first)."""
    results: dict[str, float] = {}
    term.send("Home")
    term.wait(lambda s: row(s) == 1, "the first row")
    moves = []
    for expected in range(2, 12):
        moves.append(term.key("Down", lambda s, e=expected: row(s) == e, f"row {expected}"))
    results["cursor_ms"] = statistics.median(moves)
    pages = []
    for _ in range(5):
        before = row(term.screen())
        pages.append(term.key("PageDown", lambda s, b=before: row(s) not in (b, None), "a page"))
    results["pagedown_ms"] = statistics.median(pages)
    ends, homes = [], []
    for _ in range(5):
        ends.append(term.key("End", lambda s: row(s) == count, "the last row"))
        homes.append(term.key("Home", lambda s: row(s) == 1, "the first row"))
    results["end_ms"] = statistics.median(ends)
    results["home_ms"] = statistics.median(homes)
    opens, closes = [], []
    for _ in range(5):
        opens.append(term.key("Enter", tool["details"], "the details"))
        closes.append(term.key(tool["close"], lambda s: not tool["details"](s), "the list"))
    results["open_ms"] = statistics.median(opens)
    results["close_ms"] = statistics.median(closes)
    applies, clears = [], []
    for _ in range(3):
        term.send("f")
        term.wait(tool["prompt"], "the filter prompt")
        term.send(FILTER, literal=True)
        applies.append(term.key("Enter", tool["filtered"], "the filtered list"))
        term.send("f")
        term.wait(tool["prompt"], "the filter prompt")
        for key in tool["erase"]:
            term.send(key)
        clears.append(term.key("Enter", lambda s: not tool["filtered"](s), "every flow"))
    results["filter_apply_ms"] = statistics.median(applies)
    results["filter_clear_ms"] = statistics.median(clears)
    return results


def measure_waylay(count: int) -> dict[str, float]:
    env = {**os.environ, "TERM": "xterm-256color", "TZ": "UTC"}
    term = Terminal(f"{sys.executable} -m tests.bench.screen_tmux --screen {count}", env)
    try:
        term.wait(lambda s: waylay_row(s) is not None, "the first flow", timeout=120)
        deadline = time.time() + 300
        while True:  # all flows in: End shows the last one
            term.send("End")
            time.sleep(0.2)
            if waylay_row(term.screen()) == count:
                break
            if time.time() > deadline:
                raise TimeoutError("the flows never all arrived")
        shown = count // 7, count // 7 + 1
        tool = {
            "details": lambda s: "Rule trace:" in s,
            "close": "q",
            "prompt": lambda s: "Filter the flow list" in s,
            "erase": ["C-u"],
            "filtered": lambda s: any(f"({n} shown)" in s for n in shown),
        }
        return measure_keys(term, count, waylay_row, tool)
    finally:
        term.close()


def measure_mitmproxy(count: int, folder: Path) -> dict[str, float]:
    flows = folder / f"{count}.flows"
    started = time.perf_counter()
    write_flow_file(count, flows)
    written = time.perf_counter() - started
    home = folder / "home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "TERM": "xterm-256color", "TZ": "UTC", "HOME": str(home)}
    mitmproxy = Path(sys.executable).with_name("mitmproxy")
    term = Terminal(f"{mitmproxy} --listen-port 0 -r {flows}", env)
    try:
        started = time.perf_counter()
        term.wait(lambda s: (mitmproxy_row(s) or (0, 0))[1] == count, "every flow", LOAD_TIMEOUT)
        loaded = time.perf_counter() - started

        def row(screen: str) -> int | None:
            found = mitmproxy_row(screen)
            return found[0] if found else None

        tool = {
            "details": lambda s: "Flow Details" in s,
            "close": "q",
            "prompt": lambda s: "set view_filter" in s,
            "erase": ["BSpace"] * len(FILTER),  # the cursor is inside the quotes
            "filtered": lambda s: f"[f:{FILTER}]" in s,
        }
        results = measure_keys(term, count, row, tool)
        results["load_s"] = loaded
        results["write_s"] = written
        return results
    finally:
        term.close()


COLUMNS = (
    ("cursor_ms", "cursor"),
    ("pagedown_ms", "PageDown"),
    ("end_ms", "End"),
    ("home_ms", "Home"),
    ("open_ms", "details open"),
    ("close_ms", "details close"),
    ("filter_apply_ms", "filter apply"),
    ("filter_clear_ms", "filter clear"),
)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--screen"]:
        run_screen(int(argv[1]))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.screen_tmux",
        description="Key to frame in a real terminal (tmux): waylay's flow list, and "
        "mitmproxy console's on the same flows, at each COUNT of flows.",
    )
    parser.add_argument("counts", nargs="*", type=int, default=[100_000], metavar="COUNT")
    parser.add_argument("--no-waylay", action="store_true", help="leave waylay out")
    parser.add_argument("--no-mitmproxy", action="store_true", help="leave mitmproxy out")
    args = parser.parse_args(argv)
    if shutil.which("tmux") is None:
        print("(tmux not installed: no key-to-frame figures)")
        return 0
    tools = [t for t in ("waylay", "mitmproxy") if not getattr(args, f"no_{t}")]
    counts = args.counts
    print("key to frame in tmux, median ms (load average "
          f"{os.getloadavg()[0]:.1f} at the start)")  # fmt: skip
    print(f"{'flows':>9} {'tool':<18}" + "".join(f"{label:>14}" for _, label in COLUMNS))
    for count in counts:
        if "waylay" in tools:
            r = measure_waylay(count)
            print(f"{count:>9,} {'waylay':<18}" + "".join(f"{r[k]:>14.0f}" for k, _ in COLUMNS))
            sys.stdout.flush()
        if "mitmproxy" in tools:
            with tempfile.TemporaryDirectory(prefix="waylay-bench-") as folder:
                try:
                    r = measure_mitmproxy(count, Path(folder))
                except TimeoutError as e:
                    print(f"{count:>9,} mitmproxy console: {str(e).splitlines()[0]}")
                    continue
            print(
                f"{count:>9,} {'mitmproxy console':<18}"
                + "".join(f"{r[k]:>14.0f}" for k, _ in COLUMNS)
            )
            print(
                f"          (mitmproxy console loaded the {count:,} flows in {r['load_s']:.0f} s)"
            )
        print(f"          (load average {os.getloadavg()[0]:.1f} at the end)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
