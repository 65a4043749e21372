"""Proxy throughput and latency: bare mitmdump vs waylay --headless vs the waylay screen.

All three run in the same session against the same local upstream (nginx if installed,
else a fast asyncio server), alternating round by round so that drift on the machine
hits them alike. Prints requests/s, p50 and p99 latency, and the ratios to mitmdump.
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
def _process(cmd: list[str], *, port: int | None = None, read_port: bool = False, **kw):
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
        yield port
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


def _headless(confdir: Path, rules: Path):
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
    ]
    return _process(cmd, port=port)


def _screen(confdir: Path, rules: Path):
    cmd = [sys.executable, "-m", "tests.bench.screen_runner", str(confdir), str(rules)]
    return _process(cmd, read_port=True, env={**os.environ, "TERM": "xterm-256color"})


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="make bench")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=3000, help="per round and concurrency")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="waylay-bench-"))
    confdir, rules = tmp / "conf", tmp / "rules.toml"
    confdir.mkdir()
    configs = {
        "mitmdump": lambda: _mitmdump(confdir),
        "waylay --headless": lambda: _headless(confdir, rules),
        "waylay screen": lambda: _screen(confdir, rules),
    }
    results: dict[tuple[str, int], dict[str, list[float]]] = {}
    with _upstream() as (up_port, up_name):
        print(
            f"upstream: {up_name} on 127.0.0.1:{up_port}; 1 KB responses; "
            f"{args.rounds} rounds x {args.requests} requests per concurrency, alternating"
        )
        for rnd in range(args.rounds):
            for name, start in configs.items():
                with start() as port:
                    asyncio.run(run_load(port, up_port, 200, 4))  # warm-up
                    for conc in (1, 16):
                        elapsed, lat, errors = asyncio.run(
                            run_load(port, up_port, args.requests, conc)
                        )
                        r = results.setdefault((name, conc), {"rps": [], "lat": [], "err": []})
                        r["rps"].append(len(lat) / elapsed)
                        r["lat"].extend(lat)
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
            print(
                f"{name:<20}{conc:>5}{rps:>10.0f}{_pct(r['lat'], 0.5) * 1e3:>9.2f}"
                f"{_pct(r['lat'], 0.99) * 1e3:>9.2f}{sum(r['err']):>8}{rps / base:>12.2f}"
            )
    shutil.rmtree(tmp, ignore_errors=True)
    return 0
