"""What a ``times`` countdown costs the proxy: req/s of counted requests and the stall
other clients see, with a 1-rule and a 10,000-rule file.

    python -m tests.bench.times_bench [--seconds 8] [--sizes 1,10000]

``waylay --headless`` runs with a rules file whose one matching rule answers
``/counted`` itself (``respond``) and counts down from a large ``times``; the other rules
are the mixed rules of ``bench_rules`` (none matches 127.0.0.1). One client sends
counted requests back to back (keep-alive); a second, "bystander" client asks the
upstream for ``/other`` (no rule) every 20 ms and records its latency: its worst case is
the stall a countdown write causes everybody else. The same file without ``times`` is the
baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.bench_rules import mixed_rules, toml_text
from tests.bench.proxy_bench import _headless, _upstream


async def _get(reader, writer, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


def _request(upstream_port: int, path: str) -> bytes:
    host = f"127.0.0.1:{upstream_port}"
    return f"GET http://{host}{path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


async def _run(proxy_port: int, upstream_port: int, seconds: float):
    counted = _request(upstream_port, "/counted")
    other = _request(upstream_port, "/other")
    stop = time.perf_counter() + seconds
    latencies: list[float] = []
    bystander: list[float] = []

    async def counter() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
        try:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                status = await _get(reader, writer, counted)
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    raise RuntimeError(f"counted request answered {status}")
        finally:
            writer.close()

    async def watcher() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
        try:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                await _get(reader, writer, other)
                bystander.append(time.perf_counter() - t0)
                await asyncio.sleep(0.02)
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(counter(), watcher())
    return len(latencies) / (time.perf_counter() - t0), latencies, bystander


def _rules(size: int, times: int | None) -> str:
    rule = {"id": "counted", "urls": ["*://127.0.0.1/counted*"], "action": "respond"}
    rule.update(status=200, body="counted")
    if times is not None:
        rule["times"] = times
    return toml_text([rule, *mixed_rules(size - 1)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.times_bench")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--sizes", default="1,10000")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="waylay-times-bench-"))
    confdir = tmp / "conf"
    confdir.mkdir()
    print(
        f"{'rules':>6} {'times':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'other p50':>10} {'other max':>10}"
    )
    with _upstream() as (up_port, _name):
        for size in sizes:
            for times in (None, 10_000_000):
                rules = tmp / f"rules-{size}-{times}.toml"
                rules.write_text(_rules(size, times))
                with _headless(confdir, rules) as port:
                    asyncio.run(_run(port, up_port, 1.0))  # warm-up
                    rps, lat, other = asyncio.run(_run(port, up_port, args.seconds))
                lat.sort()
                print(
                    f"{size:>6} {'yes' if times else 'no':>6} {rps:>8.0f} "
                    f"{statistics.median(lat) * 1e3:>8.2f} "
                    f"{lat[int(len(lat) * 0.99)] * 1e3:>8.2f} {lat[-1] * 1e3:>8.1f} "
                    f"{statistics.median(other) * 1e3:>10.2f} {max(other) * 1e3:>10.1f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
