"""Attaching a screen to a busy proxy (issue 11).

``python -m tests.bench.attach_bench [--flows 50000] [--seconds 10]``:

1. a ``waylay --headless`` proxy is filled with ``--flows`` flows (wrk), then a screen
   attaches (Textual without a terminal, in this process): the time from connecting to
   the first frame showing a full screen of rows, and to the first frame with every flow
   in the list, three times (detach, attach again; the first attach of the process also
   imports Textual, and the proxy infers each flow's resource type the first time a
   screen is sent it);
2. while wrk drives the proxy at full speed (concurrency 16), key presses in the
   attached screen: cursor up, and enter (the detail pane, fetched from the proxy),
   then escape, ``--pace`` seconds apart (a person's pace: a key does not queue behind
   the work of the one before, e.g. Textual rebuilding the footer when the detail pane
   closes): the time from the key to the screen having handled it, p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.bench.proxy_bench import BIN, _free_port, _upstream, _wrk


def _start_proxy(confdir: Path, rules: Path, flows: int) -> tuple[subprocess.Popen, int, str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(BIN / "waylay"),
            "--headless",
            "--listen-port",
            str(port),
            "--confdir",
            str(confdir),
            "--rules",
            str(rules),
            "--max-flows",
            str(flows),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        m = re.search(r"attach with: waylay attach (\S+)", line)
        if m:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, port, m.group(1)
    raise RuntimeError("the proxy did not start")


async def _first_frame(path: str, flows: int) -> tuple[float, float]:
    """Seconds from connecting to (the first frame showing a full screen of rows, the
    first frame with every flow in the list). A frame is a compositor update the app
    writes out (``App._display``): the rows on screen were drawn into it."""
    from monitor.attach import make_attached_app, tune_screen_gc
    from monitor.remote import Remote

    started = time.perf_counter()
    remote = Remote(path)
    app = make_attached_app(remote)
    tune_screen_gc()  # as run_attached does
    frames: dict[str, float] = {}
    display = app._display

    def timed_display(screen, renderable) -> None:
        display(screen, renderable)
        table = getattr(app, "table", None)
        if table is None or not table.is_mounted:
            return
        now = time.perf_counter() - started
        slots = table.size.height - 2  # the header and the URL line
        if slots > 0 and table.row_count >= min(flows, slots):
            frames.setdefault("screenful", now)
        if len(app.flows) >= flows and table.row_count >= flows:
            frames.setdefault("all", now)

    app._display = timed_display
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            while "all" not in frames:
                await asyncio.sleep(0.005)
            await pilot.press("q")
    finally:
        remote.close()  # as `waylay attach` does: the next attach finds no screen attached
    return frames["screenful"], frames["all"]


async def _keys_under_load(
    path: str, port: int, up_port: int, seconds: float, flows: int, pace: float
):
    from monitor.attach import make_attached_app, tune_screen_gc
    from monitor.remote import Remote

    remote = Remote(path)
    app = make_attached_app(remote)
    tune_screen_gc()
    downs: list[float] = []
    opens: list[float] = []
    load = threading.Thread(target=_wrk, args=(port, up_port, seconds, 16), daemon=True)
    async with app.run_test(size=(160, 50)) as pilot:
        while len(app.flows) < flows:  # every flow the proxy holds is listed
            await asyncio.sleep(0.01)
        await pilot.pause()
        # from the newest row upwards: rows near the end are not evicted meanwhile
        app.table.move_cursor(row=app.table.row_count - 1)
        load.start()
        await asyncio.sleep(1)  # wrk at full speed
        deadline = time.monotonic() + seconds - 2
        while time.monotonic() < deadline:
            if app.table.cursor_row < 5:  # evictions moved it up to the top
                app.table.move_cursor(row=app.table.row_count - 1)
                await pilot.pause()
            before = app.table.selected_id
            t = time.perf_counter()
            key(app, "up")
            while app.table.selected_id == before:
                await asyncio.sleep(0.001)
            downs.append(time.perf_counter() - t)
            await asyncio.sleep(pace)
            t = time.perf_counter()
            key(app, "enter")
            while app.detail.flow_id is None or not app.detail.has_class("-open"):
                await asyncio.sleep(0.001)
            opens.append(time.perf_counter() - t)
            await asyncio.sleep(pace)
            key(app, "escape")
            while app.detail.has_class("-open"):
                await asyncio.sleep(0.001)
            await asyncio.sleep(pace)
        load.join()
        await pilot.press("q")
    remote.close()
    return downs, opens


def key(app, name: str) -> None:
    """A key as the terminal driver delivers it (queued behind whatever the screen has
    to do, batches included); the caller waits for its effect."""
    from textual import events

    event = events.Key(name, None)
    event.set_sender(app)
    app._driver.send_message(event)


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.attach_bench")
    ap.add_argument("--flows", type=int, default=50_000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--attaches", type=int, default=3)
    ap.add_argument(
        "--pace",
        type=float,
        default=0.25,
        help="seconds between key presses (0: each key as soon as the last one was handled)",
    )
    args = ap.parse_args(argv)
    if not shutil.which("wrk"):
        print("attach benchmark: needs wrk")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="waylay-attach-bench-"))
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp / "run"))
    confdir, rules = tmp / "conf", tmp / "rules.toml"
    confdir.mkdir()
    from monitor.remote import peek

    with _upstream() as (up_port, up_name):
        proc, port, path = _start_proxy(confdir, rules, args.flows)
        try:
            filled = time.perf_counter()
            while peek(path).flows < args.flows:
                _wrk(port, up_port, 5, 16)
            print(
                f"upstream: {up_name}; proxy filled with {peek(path).flows:,} flows "
                f"in {time.perf_counter() - filled:.0f} s"
            )
            frames = [asyncio.run(_first_frame(path, args.flows)) for _ in range(args.attaches)]
            for n, what in enumerate(("first full frame", f"all {args.flows:,} flows listed")):
                took = [f[n] for f in frames]
                print(
                    f"attach to {args.flows:,} flows, {what}: "
                    + ", ".join(f"{t * 1e3:.0f} ms" for t in took)
                    + f" (median {statistics.median(took) * 1e3:.0f} ms)"
                )
            downs, opens = asyncio.run(
                _keys_under_load(path, port, up_port, args.seconds, args.flows, args.pace)
            )
            for name, values in (("cursor up", downs), ("open details", opens)):
                print(
                    f"key under wrk -c16 load, {name}: p50 {_pct(values, 0.5) * 1e3:.1f} ms, "
                    f"p99 {_pct(values, 0.99) * 1e3:.1f} ms ({len(values)} presses)"
                )
        finally:
            proc.terminate()
            proc.wait(20)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
