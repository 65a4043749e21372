"""The session store's targets (issue 14), ``python -m tests.bench.store_bench``:

- ``million``: 1,000,000 finished flows (real mitmproxy flow objects, 1 KB bodies)
  through the recorder (``--max-flows`` 10,000, as with ``--session``) and into the store;
  resident memory of the process at the end (target < 400 MB), then filters over the
  whole session (target < 2 s each, SQL path) and the scan fallback's rate.
- ``throughput``: waylay --headless with and without ``--session``, alternating rounds
  of wrk (concurrency 1 and 16); target: with the store ≥ 0.9× without. The proxy
  process's CPU per request (from /proc), and the store's writer process's per flow.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mitmproxy import connection, http

from monitor.pauses import Pauses
from monitor.record import record_of
from monitor.recorder import Recorder
from monitor.store import SELECT, SessionStore, StoreAddon
from tests.bench.procstat import children_of, cpu_of, cpu_with_children, rss_of, thread_cpu

HOSTS = [f"api{n}.example.com" for n in range(50)]
METHODS = ["GET"] * 8 + ["POST", "PUT"]
STATUSES = [200] * 15 + [201, 204, 301, 304, 404, 500]
BODY = b'{"items": [' + b", ".join(b'{"id": %d}' % i for i in range(80)) + b"]}"


def make_flow(n: int, now: float) -> http.HTTPFlow:
    host = HOSTS[n % len(HOSTS)]
    client = connection.Client(
        peername=("127.0.0.1", 50000), sockname=("127.0.0.1", 8080), timestamp_start=now
    )
    server = connection.Server(address=(host, 443))
    flow = http.HTTPFlow(client, server)
    method = METHODS[n % len(METHODS)]
    flow.request = http.Request.make(
        method,
        f"https://{host}/api/item/{n}?page={n % 7}",
        b'{"q": %d}' % n if method != "GET" else b"",
        {"user-agent": "bench/1.0", "accept": "application/json", "x-request": str(n)},
    )
    flow.request.timestamp_start = now
    flow.request.timestamp_end = now + 0.001
    status = STATUSES[n % len(STATUSES)]
    flow.response = http.Response.make(
        status, BODY, {"content-type": "application/json", "server": "bench", "x-n": str(n)}
    )
    flow.response.timestamp_start = now + 0.002
    flow.response.timestamp_end = now + 0.003
    return flow


def million(args) -> None:
    folder = Path(tempfile.mkdtemp(prefix="waylay-store-bench-"))
    path = folder / "million.waylay-session"
    store = SessionStore(path)
    store.open()
    addon = StoreAddon(store)
    recorder = Recorder(max_flows=args.max_flows, pauses=Pauses(timeout=60, headless=True))
    gc.collect()
    base_rss, _ = rss_of()
    started = time.monotonic()
    now = time.time()
    for n in range(args.flows):
        flow = make_flow(n, now + n * 0.001)
        recorder.track(flow)
        record_of(flow).type = "xmlhttprequest"
        recorder.response(flow)
        addon.response(flow)
        if n and n % 100_000 == 0:
            rss, _ = rss_of()
            print(
                f"  {n:>9,} flows  {time.monotonic() - started:6.1f} s  RSS {rss:6.1f} MB",
                flush=True,
            )
    writer = store._process.pid if store._process is not None else None
    w_rss = rss_of(writer) if writer else (0.0, 0.0)
    store.close()
    ingest = time.monotonic() - started
    gc.collect()
    rss, hwm = rss_of()
    size = path.stat().st_size / 1024 / 1024
    print(
        f"million: {args.flows:,} flows in {ingest:.0f} s ({args.flows / ingest:,.0f}/s); "
        f"{len(recorder.flows):,} in memory; RSS {rss:.0f} MB (peak {hwm:.0f} MB, "
        f"{base_rss:.0f} MB before); file {size:,.0f} MB; the writer process: RSS "
        f"{w_rss[0]:.0f} MB (peak {w_rss[1]:.0f} MB)"
    )
    filters(path, args.flows)
    if args.keep:
        path.replace(args.keep)
        print(f"  kept as {args.keep}")
    shutil.rmtree(folder, ignore_errors=True)


FILTERS = (
    "~c 404",
    "~d api8.example.com & ~m POST",
    "~u /api/item/4242\\b",
    "!~c 200 & ~t json",
    "item/99999",
    "~c 500 | ~c 301",
    "~a",
    "~src 10.0.0.1 | ~dst api7.example.com:443",  # (SQL since round 7)
    # headers and bodies (SQL since round 3): a plain literal answered by SQLite alone
    "~hq 'x-request: 424242'",
    "~h 'x-n: 77777\\r'",
    "~hs 'server: bench' & ~c 404",
    "~bq '\"q\": 4248}'",
    "~b no-such-text",
    "~bs '\"id\": 79'",
    "~c 404 & ~bs '\"id\": 79'",
    # a literal run, then mitmproxy's regex on the candidates
    "~hq x-request:.4242\\b",  # (unquoted: a quoted string loses its backslashes)
    # the worst cases: Python's regex on every row (no literal run; or one all hold)
    "~hq \\d{7}",
    "~bs id.:.79\\b",
)


def filters(
    path: Path, flows: int | None = None, rounds: int = 3, only: list[str] | None = None
) -> None:
    """Each filter ``rounds`` times, with progress reported as the screen gets it:
    median wall and CPU seconds (of this process and its filter workers together)."""
    from mitmproxy import flowfilter

    from monitor.store import flow_from_row

    reader = SessionStore(path)
    reader.open_read_only()
    total = reader.count()
    assert flows is None or total == flows
    print(f"  {total:,} flows; load average {Path('/proc/loadavg').read_text().split()[0]}")
    for expr in only or FILTERS:
        walls, cpus, steps = [], [], []
        for _ in range(rounds):
            seen: list[tuple[int, int]] = []
            t, c = time.monotonic(), cpu_with_children()
            found, as_sql = reader.query(expr, progress=lambda d, n, seen=seen: seen.append((d, n)))
            cpus.append(cpu_with_children() - c)
            walls.append(time.monotonic() - t)
            steps.append(len(seen))
        how = "SQL" if as_sql else "scan"
        print(
            f"  filter {expr!r:40} {len(found):>9,} flows  wall {statistics.median(walls):5.2f} s"
            f"  cpu {statistics.median(cpus):5.2f} s  ({min(walls):.2f}-{max(walls):.2f})"
            f"  {how}, {steps[0]} progress reports"
        )
    print(f"  load average {Path('/proc/loadavg').read_text().split()[0]}")
    if only:
        reader.close()
        return
    # the live screen's older rows: a block of 200 read by position (the list scrolled
    # there), and the first count of a filter (then kept, and extended as flows age)
    below = total + 1
    for position in (0, total // 2, total - 200):
        times = []
        for _ in range(rounds):
            t = time.monotonic()
            _, views = reader.older("", below, position, 200)
            times.append(time.monotonic() - t)
        assert len(views) == 200
        print(f"  older rows at {position:>9,}: 200 in {statistics.median(times) * 1000:5.1f} ms")
    t = time.monotonic()
    count, _ = reader.older("~bq '\"q\": 4242}'", below, 0, 0)
    first = time.monotonic() - t
    t = time.monotonic()
    reader.older("~bq '\"q\": 4242}'", below, 0, 200)
    again = time.monotonic() - t
    print(f"  older, filtered: {count:,} in {first:.2f} s, then rows in {again * 1000:.1f} ms")
    # the scan fallback (what no SQL covers: ~meta): its rate on the first rows
    flt = flowfilter.parse("~meta no-such-text")
    t = time.monotonic()
    for row in reader._read_db().execute(f"{SELECT} ORDER BY seq LIMIT 20000"):
        flt(flow_from_row(row))
    rate = 20000 / (time.monotonic() - t)
    print(
        f"  scan fallback (~meta): {rate:,.0f} flows/s, {total / rate:.0f} s for the whole session"
    )
    reader.close()


def throughput(args) -> None:
    """req/s and the proxy process's CPU per request (steadier than req/s on a shared
    machine), with and without --session, alternating."""
    from tests.bench.proxy_bench import _headless, _upstream, _wrk

    folder = Path(tempfile.mkdtemp(prefix="waylay-store-bench-"))
    (folder / "conf").mkdir()
    rules = folder / "rules.toml"
    configs = {
        "without --session": ["--max-flows", "10000"],
        "with --session": ["--max-flows", "10000", "--session", str(folder / "t.waylay-session")],
    }
    results: dict[tuple[str, int], list[float]] = {}
    cpus: dict[tuple[str, int], list[float]] = {}
    w_cpus: dict[int, list[float]] = {}
    s_cpus: dict[int, list[float]] = {}
    loads = []
    with _upstream() as (up_port, up_name):
        print(
            f"throughput: upstream {up_name}; {args.rounds} rounds x {args.seconds} s of wrk, "
            "alternating",
            flush=True,
        )
        for rnd in range(args.rounds):
            for name, extra in configs.items():
                with _headless(folder / "conf", rules, extra=extra) as (port, pid):
                    _wrk(port, up_port, 1, 4)  # warm-up
                    writers = children_of(pid)  # the store's writer process
                    for conc in (1, 16):
                        before = cpu_of(pid)
                        w_before = sum(cpu_of(w) for w in writers)
                        s_before = thread_cpu(pid, "waylay-store")
                        rps, *_ = _wrk(port, up_port, args.seconds, conc)
                        # the writer's last commit and index step are in it too
                        time.sleep(0.6)
                        used = cpu_of(pid) - before
                        w_used = sum(cpu_of(w) for w in writers) - w_before
                        s_used = thread_cpu(pid, "waylay-store") - s_before
                        requests = rps * max(1, round(args.seconds))
                        results.setdefault((name, conc), []).append(rps)
                        cpus.setdefault((name, conc), []).append(used / requests)
                        if writers:
                            w_cpus.setdefault(conc, []).append(w_used / requests)
                            s_cpus.setdefault(conc, []).append(s_used / requests)
            loads.append(float(Path("/proc/loadavg").read_text().split()[0]))
            print(f"  round {rnd + 1} done, load average {loads[-1]:.1f}", flush=True)
    for conc in (1, 16):
        off = statistics.median(results[("without --session", conc)])
        on = statistics.median(results[("with --session", conc)])
        c_off = statistics.median(cpus[("without --session", conc)]) * 1e3
        c_on = statistics.median(cpus[("with --session", conc)]) * 1e3
        print(
            f"  concurrency {conc:>2}: without {off:7.0f} req/s, with {on:7.0f} req/s: "
            f"{on / off:.2f}x; proxy CPU per request {c_off:.3f} ms without, {c_on:.3f} ms "
            f"with: {c_on / c_off:.2f}x (throughput at equal CPU {c_off / c_on:.2f}x)"
        )
        ratios = [
            a / b
            for a, b in zip(
                results[("with --session", conc)], results[("without --session", conc)], strict=True
            )
        ]
        print(f"    req/s ratio per round: {', '.join(f'{r:.2f}' for r in ratios)}")
        if conc in w_cpus:
            print(
                f"    the writer process: {statistics.median(w_cpus[conc]) * 1e6:.0f} µs CPU "
                "a flow (on the other core); the proxy's thread handing rows over: "
                f"{statistics.median(s_cpus[conc]) * 1e6:.1f} µs a flow"
            )
    print(f"  load average {min(loads):.1f}-{max(loads):.1f}")
    stored = SessionStore(folder / "t.waylay-session")
    stored.open_read_only()
    print(f"  the session file holds {stored.count():,} flows")
    stored.close()
    shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="store_bench")
    ap.add_argument("what", nargs="*", default=["million", "throughput"])
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--max-flows", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--keep", type=Path, default=None, help="million: keep the session file here")
    ap.add_argument("--file", type=Path, default=None, help="filters: the session file")
    ap.add_argument(
        "--filter", action="append", default=None, help="filters: only this one (repeatable)"
    )
    args = ap.parse_args(argv)
    if "million" in args.what:
        million(args)
    if "filters" in args.what:
        filters(args.file, only=args.filter)
    if "throughput" in args.what:
        throughput(args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
