"""Memory over a long session: waylay --headless with a small --max-flows under steady
load; prints requests so far and resident memory after each period. Once the store is
full the figure should stay flat. Needs wrk (``python -m tests.bench.soak``)."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from tests.bench.proxy_bench import _headless, _upstream, _wrk


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="soak")
    ap.add_argument("--periods", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--max-flows", type=int, default=2000)
    args = ap.parse_args(argv)
    if not shutil.which("wrk"):
        print("soak: wrk is not installed; skipped")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="waylay-soak-"))
    (tmp / "conf").mkdir()
    total = 0
    with (
        _upstream() as (up_port, _),
        _headless(tmp / "conf", tmp / "rules.toml", extra=["--max-flows", str(args.max_flows)]) as (
            port,
            pid,
        ),
    ):
        print(f"soak: --max-flows {args.max_flows}, {args.periods} x {args.seconds} s of wrk -c16")
        for _ in range(args.periods):
            rps, *_ = _wrk(port, up_port, args.seconds, 16)
            total += int(rps * args.seconds)
            print(f"  {total:>8,} requests  RSS {rss_kb(pid) / 1024:7.1f} MB", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
