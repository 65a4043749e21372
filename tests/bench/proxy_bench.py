"""Proxy throughput and latency: bare mitmdump vs waylay --headless vs the waylay screen.

All three run in the same session against the same local upstream (nginx if installed,
else a fast asyncio server), alternating round by round so that drift on the machine
hits them alike. Prints requests/s, p50 and p99 latency, and the ratios to mitmdump.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from tests.bench.load import run_load

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


@contextmanager
def _process(
    cmd: list[str],
    *,
    port: int | None = None,
    read_port: bool = False,
    with_pid: bool = False,
    **kw,
):
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE if read_port else subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        **kw,
    )
    try:
        if read_port:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{cmd[0]} did not report its port")
            port = int(line)
        _wait_port(port, proc)
        yield (port, proc.pid) if with_pid else port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def _nginx():
    tmp = Path(tempfile.mkdtemp(prefix="waylay-nginx-"))
    port = _free_port()
    (tmp / "www").mkdir()
    (tmp / "www" / "index.html").write_bytes(b"x" * 1024)
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
worker_processes 1; daemon off; pid {tmp}/nginx.pid; error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_requests 1000000;
  client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};
  uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
  server {{ listen 127.0.0.1:{port}; root {tmp}/www; }} }}
""")
    with _process([shutil.which("nginx"), "-c", str(conf), "-p", str(tmp)], port=port) as p:
        yield p, "nginx"


@contextmanager
def _upstream():
    if shutil.which("nginx"):
        with _nginx() as u:
            yield u
            return
    with _process([sys.executable, "-m", "tests.bench.upstream"], read_port=True) as p:
        yield p, "asyncio server"


def _mitmdump(confdir: Path):
    port = _free_port()
    cmd = [
        str(BIN / "mitmdump"),
        "-q",
        "--listen-host",
        "127.0.0.1",
        "-p",
        str(port),
        "--set",
        f"confdir={confdir}",
    ]
    return _process(cmd, port=port)


def _headless(confdir: Path, rules: Path, extra: list[str] | None = None):
    port = _free_port()
    cmd = [
        str(BIN / "waylay"),
        "--headless",
        "--listen-port",
        str(port),
        "--confdir",
        str(confdir),
        "--rules",
        str(rules),
        *(extra or []),
    ]
    return _process(cmd, port=port, with_pid=extra is not None)


def _screen(confdir: Path, rules: Path):
    cmd = [sys.executable, "-m", "tests.bench.screen_runner", str(confdir), str(rules)]
    return _process(cmd, read_port=True, env={**os.environ, "TERM": "xterm-256color"})


def _wrk(proxy_port: int, upstream_port: int, seconds: float, concurrency: int):
    """wrk through the proxy (absolute-form request line); (req/s, p50 s, p99 s, errors)."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        f'wrk.path = "http://127.0.0.1:{upstream_port}/"\n'
        f'wrk.headers["Host"] = "127.0.0.1:{upstream_port}"\n'
    )
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "1",
            "-c",
            str(concurrency),
            "-d",
            f"{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{proxy_port}/",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    script.unlink()

    def ms(text: str) -> float:
        for unit, mult in (("us", 1e-6), ("ms", 1e-3), ("s", 1.0)):
            if text.endswith(unit):
                return float(text[: -len(unit)]) * mult
        return float(text)

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(m.group(1)) if m else 0) + (sum(map(int, e.groups())) if e else 0)
    return rps, p50, p99, errors


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="make bench")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--requests", type=int, default=3000, help="per round and concurrency (Python load client)"
    )
    ap.add_argument("--seconds", type=float, default=5, help="per round and concurrency (wrk)")
    ap.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument("--skip-screen", action="store_true", help="only mitmdump and headless")
    args = ap.parse_args(argv)
    use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
    tmp = Path(tempfile.mkdtemp(prefix="waylay-bench-"))
    confdir, rules = tmp / "conf", tmp / "rules.toml"
    confdir.mkdir()
    configs = {
        "mitmdump": lambda: _mitmdump(confdir),
        "waylay --headless": lambda: _headless(confdir, rules),
        "waylay screen": lambda: _screen(confdir, rules),
    }
    if args.skip_screen:
        del configs["waylay screen"]
    results: dict[tuple[str, int], dict[str, list[float]]] = {}
    with _upstream() as (up_port, up_name):
        per = (
            f"{args.seconds:g} s of wrk" if use_wrk else f"{args.requests} requests (Python client)"
        )
        print(
            f"upstream: {up_name} on 127.0.0.1:{up_port}; 1 KB responses; "
            f"{args.rounds} rounds x {per} per concurrency, configs alternating"
        )
        for rnd in range(args.rounds):
            for name, start in configs.items():
                with start() as port:
                    asyncio.run(run_load(port, up_port, 200, 4))  # warm-up
                    for conc in (1, 16):
                        r = results.setdefault(
                            (name, conc), {"rps": [], "p50": [], "p99": [], "err": []}
                        )
                        if use_wrk:
                            rps, p50, p99, errors = _wrk(port, up_port, args.seconds, conc)
                        else:
                            elapsed, lat, errors = asyncio.run(
                                run_load(port, up_port, args.requests, conc)
                            )
                            rps, p50, p99 = len(lat) / elapsed, _pct(lat, 0.5), _pct(lat, 0.99)
                        r["rps"].append(rps)
                        r["p50"].append(p50)
                        r["p99"].append(p99)
                        r["err"].append(errors)
                print(f"  round {rnd + 1}: {name} done", flush=True)
    print()
    print(
        f"{'config':<20}{'conc':>5}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'× mitmdump':>12}"
    )
    for conc in (1, 16):
        base = statistics.median(results[("mitmdump", conc)]["rps"])
        for name in configs:
            r = results[(name, conc)]
            rps = statistics.median(r["rps"])
            p50 = statistics.median(r["p50"]) * 1e3
            p99 = statistics.median(r["p99"]) * 1e3
            print(
                f"{name:<20}{conc:>5}{rps:>10.0f}{p50:>9.2f}{p99:>9.2f}"
                f"{sum(r['err']):>8}{rps / base:>12.2f}"
            )
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
