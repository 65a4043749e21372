"""CPU per proxied request of the screen process and of its proxy process.

``python -m tests.bench.screen_cpu [--seconds 10] [--runs 3]``: as ``waylay`` runs them
(the proxy in a child process, the screen in this one, Textual without a terminal, every
flow shown), wrk -c16 through the proxy; then ``waylay --headless`` alone under the same
load. CPU time (this process's, and the proxy's from ``/proc``) divided by the requests
wrk made: unlike requests per second, it hardly depends on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.bench.procstat import cpu_of
from tests.bench.proxy_bench import _headless, _upstream, _wrk


def _screen_run(tmp: Path, up_port: int, seconds: float) -> tuple[float, float]:
    from monitor.attach import ProxyChild, make_attached_app, tune_screen_gc
    from monitor.remote import Remote

    child = ProxyChild(["--listen-port", "0", "--confdir", str(tmp), "--rules", str(tmp / "r")])
    remote = Remote(child.path)
    port = int(remote.welcome.address.rsplit(":", 1)[1])
    app = make_attached_app(remote, own_proxy=True)
    tune_screen_gc()  # as run_attached does
    got: dict[str, float] = {}

    def load() -> None:
        time.sleep(2)  # the screen is up
        _wrk(port, up_port, 1, 4)
        screen, proxy = time.process_time(), cpu_of(child.proc.pid)
        rps = _wrk(port, up_port, seconds, 16)[0]
        got["screen"] = (time.process_time() - screen) / (rps * seconds)
        got["proxy"] = (cpu_of(child.proc.pid) - proxy) / (rps * seconds)
        app.call_from_thread(app.exit)

    threading.Thread(target=load, daemon=True).start()
    try:
        app.run(headless=True, size=(160, 50))
    finally:
        remote.close()
        child.proc.terminate()
        child.proc.wait(10)
    return got["screen"], got["proxy"]


def _headless_run(tmp: Path, up_port: int, seconds: float) -> float:
    with _headless(tmp, tmp / "r", []) as (port, pid):
        _wrk(port, up_port, 1, 4)
        before = cpu_of(pid)
        rps = _wrk(port, up_port, seconds, 16)[0]
        return (cpu_of(pid) - before) / (rps * seconds)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.screen_cpu")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    if not shutil.which("wrk"):
        print("screen CPU benchmark: needs wrk")
        return 0
    screen: list[float] = []
    proxy: list[float] = []
    headless: list[float] = []
    with _upstream() as (up_port, _):
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="waylay-cpu-") as tmp:
                s, p = _screen_run(Path(tmp), up_port, args.seconds)
                screen.append(s)
                proxy.append(p)
            with tempfile.TemporaryDirectory(prefix="waylay-cpu-") as tmp:
                headless.append(_headless_run(Path(tmp), up_port, args.seconds))
    for name, values in (
        ("screen process", screen),
        ("proxy process, screen attached", proxy),
        ("proxy process, headless", headless),
    ):
        print(
            f"{name}: {statistics.median(values) * 1e3:.3f} ms of CPU per request "
            f"({', '.join(f'{v * 1e3:.3f}' for v in values)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
