"""A small keep-alive HTTP/1.1 load client that talks to a forward proxy.

Each of ``concurrency`` workers holds one connection and sends absolute-form GETs
back to back; latency is measured per request.
"""

from __future__ import annotations

import asyncio
import time


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def _worker(proxy_port: int, target: str, host: str, count: int, lat: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
    request = f"GET {target} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n".encode()
    errors = 0
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            writer.write(request)
            status = await _read_response(reader)
            lat.append(time.perf_counter() - t0)
            if status != 200:
                errors += 1
    finally:
        writer.close()
    return errors


async def run_load(proxy_port: int, upstream_port: int, total: int, concurrency: int):
    """Returns (elapsed seconds, latencies, errors)."""
    host = f"127.0.0.1:{upstream_port}"
    target = f"http://{host}/"
    lat: list[float] = []
    per = total // concurrency
    t0 = time.perf_counter()
    errs = await asyncio.gather(
        *(_worker(proxy_port, target, host, per, lat) for _ in range(concurrency))
    )
    return time.perf_counter() - t0, lat, sum(errs)
