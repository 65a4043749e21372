"""The flow list at scale: 100,000 and 1,000,000 flows in the screen.

``python -m tests.bench.screen_list [COUNT ...]`` (default 100000 1000000) builds COUNT
finished flows, feeds them to the screen (Textual under its pilot, no terminal, a fake
controller: this measures the screen, not the proxy), then times, each as the median of
several presses, the screen's work (CPU time of its thread) from the key to the
repainted screen:

- filter apply (plain text matching 1 in 7 flows) until the list shows the result, and
  clear; the same with a filter expression (``~u page=3``: the fake controller gives
  the proxy side's matches, so this is the screen's share);
- open and close the detail pane;
- PageDown; cursor down / up;

and the screen's memory per flow: resident memory before and after the flows are in
the screen, less the snapshots themselves (which the proxy side builds), and with them.

Key to frame in a real terminal, beside mitmproxy console on the same flows:
tests/bench/screen_tmux.py.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "widgets"))

from screen_fakes import Clock, FakeController, many_views  # noqa: E402

from tests.bench.procstat import rss_of  # noqa: E402
from widgets.app import WaylayApp  # noqa: E402

EXPRESSION = "~u page=3"


async def timed(pilot, *keys: str) -> float:
    """The screen's work from the key to the repainted screen, in ms of CPU time of the
    screen's thread: the pilot's own waiting for idle is not the screen's latency."""
    started = time.thread_time()
    await pilot.press(*keys)
    await pilot.pause()
    return (time.thread_time() - started) * 1000


async def measure(count: int) -> dict[str, float]:
    gc.collect()
    before_views = rss_of()[0]
    views = many_views(count)
    gc.collect()
    with_views = rss_of()[0]
    controller = FakeController()
    controller.filters[EXPRESSION] = {view.id for view in views if view.seq % 7 == 3}
    app = WaylayApp(controller, clock=Clock())
    results: dict[str, float] = {}
    async with app.run_test(size=(160, 50)) as pilot:
        started = time.perf_counter()
        batch = 10_000
        for start in range(0, count, batch):
            app.push_flows(views[start : start + batch])
        while app.table.row_count < count:
            await pilot.pause()
        results["push_s"] = time.perf_counter() - started
        del views
        gc.collect()
        await pilot.pause()
        in_screen = rss_of()[0]
        results["screen_bytes_per_flow"] = (in_screen - with_views) * 1024 * 1024 / count
        results["with_snapshots_bytes_per_flow"] = (in_screen - before_views) * 1024 * 1024 / count

        async def filter_to(text: str) -> float:
            started = time.thread_time()
            assert app.set_filter(text) is None
            while app.filtering:
                await pilot.pause()
            await pilot.pause()
            return (time.thread_time() - started) * 1000

        applies, clears = [], []
        for _ in range(3):
            applies.append(await filter_to("page=3"))
            assert app.table.row_count in (count // 7, count // 7 + 1)
            clears.append(await filter_to(""))
            assert app.table.row_count == count
        results["filter_apply_ms"] = statistics.median(applies)
        results["filter_clear_ms"] = statistics.median(clears)
        applies, clears = [], []
        for _ in range(3):
            applies.append(await filter_to(EXPRESSION))
            assert app.table.row_count in (count // 7, count // 7 + 1)
            clears.append(await filter_to(""))
            assert app.table.row_count == count
        results["expression_apply_ms"] = statistics.median(applies)
        results["expression_clear_ms"] = statistics.median(clears)

        await timed(pilot, "G")
        opens, closes = [], []
        for _ in range(5):
            opens.append(await timed(pilot, "enter"))
            assert app.detail.has_class("-open")
            closes.append(await timed(pilot, "escape"))
        results["detail_open_ms"] = statistics.median(opens)
        results["detail_close_ms"] = statistics.median(closes)

        await timed(pilot, "g")
        pages = [await timed(pilot, "pagedown") for _ in range(10)]
        results["pagedown_ms"] = statistics.median(pages)
        moves = [await timed(pilot, key) for key in ("down", "up") * 10]
        results["cursor_ms"] = statistics.median(moves)
        results["cursor_max_ms"] = max(moves)
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.screen_list",
        description="The flow list at scale under Textual's pilot (no terminal, no proxy): "
        "the screen's CPU from key to repainted screen at each COUNT of flows.",
    )
    parser.add_argument(
        "counts", nargs="*", type=int, default=[100_000, 1_000_000], metavar="COUNT"
    )
    counts = parser.parse_args(argv).counts
    print(f"flow list at scale (Python {sys.version.split()[0]}, medians)")
    for count in counts:
        r = asyncio.run(measure(count))
        print(
            f"{count:>9,} flows: in the list {r['push_s']:.1f} s; "
            f"filter apply {r['filter_apply_ms']:.0f} ms, clear {r['filter_clear_ms']:.0f} ms "
            f"(expression {r['expression_apply_ms']:.0f} ms, {r['expression_clear_ms']:.0f} ms); "
            f"details open {r['detail_open_ms']:.0f} ms, close {r['detail_close_ms']:.0f} ms; "
            f"PageDown {r['pagedown_ms']:.0f} ms; cursor {r['cursor_ms']:.0f} ms "
            f"(max {r['cursor_max_ms']:.0f}); memory per flow: screen "
            f"{r['screen_bytes_per_flow']:.0f} B, with the snapshots "
            f"{r['with_snapshots_bytes_per_flow']:.0f} B",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
