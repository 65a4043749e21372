"""Limits mitmproxy leaves open, closed for waylay's users.

mitmproxy (11.0 and 12.x) itself has no header size limit (``_http1.py`` says
``FIXME: protect against header size DoS``), closes idle connections only after 10
minutes, has no upstream connect or read timeout, and an interim ``1xx`` response from
upstream ends the exchange for HTTP/1 (the client gets the ``100`` and never the final
response). The layer classes are patched here, once per process, in the smallest way
that works on both versions: each patch wraps mitmproxy's own method and only acts on
the case it is about. These are mitmproxy's bugs; upstream:

- header size: the FIXME above, in ``Http1Server``/``Http1Client.read_headers``;
- 1xx taken as the final response: mitmproxy/mitmproxy#2229 (closed, but 11.0.2 and
  12.3.1 still do it: ``expected_http_body_size`` says 0 and the exchange ends);
- timeouts: mitmproxy/mitmproxy#1095 (connect timeout, open), #7921 (an upstream that
  never answers holds the client); the idle timeout became the ``tcp_timeout`` option in
  12 (mitmproxy/mitmproxy#7909), a module constant in 11;
- HTTP/2 rapid reset (CVE-2023-44487): no limit on client stream resets in either.

- Headers: ``--max-header-size`` (default 64 KiB) for request and response heads. A
  client over it gets ``431`` and the connection is closed; an upstream over it is a
  502 ("response headers too large"). The buffer is dropped at once, so memory returns.
- Idle connections: mitmproxy's inactivity watchdog (``TCP_TIMEOUT``, 600 s) set to
  ``--idle-timeout`` (default 300 s). Paused flows are not idle: mitmproxy disarms the
  watchdog while a hook runs.
- Upstream: ``--connect-timeout`` (default 10 s) and ``--read-timeout`` (time from the
  request to the response headers, default 60 s); the client gets ``504`` naming which.
- 1xx: interim responses other than 101 are dropped on the way; the final one follows.
- HTTP/2 rapid reset: more than 200 client stream resets in 10 s close the connection.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import re
import resource
import sys
import time
from dataclasses import dataclass

log = logging.getLogger("waylay.limits")

DEFAULT_MAX_HEADER_SIZE = 64 * 1024
DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
MAX_TIMEOUT = 24 * 3600


@dataclass
class _Config:
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT


CONFIG = _Config()
"""The process-wide values the patched layer classes read (the last proxy started)."""


# -- options ---------------------------------------------------------------------------


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds in (0, {MAX_TIMEOUT}]")
    return value


def _header_size(text: str) -> int:
    from monitor.options_check import parse_size

    size = parse_size(text)
    if size is None or not 1024 <= size <= 64 * 1024 * 1024:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a size from 1k to 64m")
    return size


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-header-size",
        type=_header_size,
        default=DEFAULT_MAX_HEADER_SIZE,
        metavar="SIZE",
        help="largest request or response head, 1k-64m (default 64k); "
        "a client over it gets 431 and is disconnected",
    )
    p.add_argument(
        "--idle-timeout",
        type=_timeout,
        default=DEFAULT_IDLE_TIMEOUT,
        metavar="SEC",
        help=f"close connections with no traffic for this long, (0, {MAX_TIMEOUT}] "
        f"(default {DEFAULT_IDLE_TIMEOUT:g}; paused flows do not count as idle)",
    )
    p.add_argument(
        "--connect-timeout",
        type=_timeout,
        default=DEFAULT_CONNECT_TIMEOUT,
        metavar="SEC",
        help=f"give up connecting to an upstream after this long: 504, (0, {MAX_TIMEOUT}] "
        f"(default {DEFAULT_CONNECT_TIMEOUT:g})",
    )
    p.add_argument(
        "--read-timeout",
        type=_timeout,
        default=DEFAULT_READ_TIMEOUT,
        metavar="SEC",
        help="give up waiting for an upstream's response headers after this long: 504, "
        f"(0, {MAX_TIMEOUT}] (default {DEFAULT_READ_TIMEOUT:g})",
    )


def settings_kwargs(args: argparse.Namespace) -> dict:
    return {
        "max_header_size": args.max_header_size,
        "idle_timeout": args.idle_timeout,
        "connect_timeout": args.connect_timeout,
        "read_timeout": args.read_timeout,
    }


# -- the patches -------------------------------------------------------------------------

_TIMED_OUT: dict[str, str] = {}
"""client connection id → why its pending request was given up (504 instead of 502)."""

_INTERIM = re.compile(rb"HTTP/1\.[01] (1\d\d)[ \r]")
_installed = False


def install(settings) -> None:
    """Apply ``settings``' limits to mitmproxy's layers (patched once per process)."""
    CONFIG.max_header_size = settings.max_header_size
    CONFIG.idle_timeout = settings.idle_timeout
    from mitmproxy.proxy import server

    server.TCP_TIMEOUT = settings.idle_timeout
    global _installed
    if _installed:
        return
    _installed = True
    _patch_http1()
    _patch_http2()


def _patch_http1() -> None:
    from mitmproxy.connection import ConnectionState
    from mitmproxy.proxy import commands, events
    from mitmproxy.proxy.layers.http import _http1
    from mitmproxy.proxy.layers.http._events import ResponseProtocolError
    from mitmproxy.proxy.layers.http._http1 import (
        Http1Client,
        Http1Server,
        ReceiveBuffer,
        make_error_response,
    )

    server_read_headers = Http1Server.read_headers
    client_read_headers = Http1Client.read_headers
    server_send = Http1Server.send

    def guarded_server_read_headers(self, event):
        yield from server_read_headers(self, event)
        if (
            isinstance(event, events.DataReceived)
            and getattr(self.state, "__func__", None) is guarded_server_read_headers
            and len(self.buf) > CONFIG.max_header_size
        ):
            size = len(self.buf)
            self.buf = ReceiveBuffer()  # the flood's bytes go now
            yield commands.Log(
                f"request headers over {CONFIG.max_header_size:,} bytes (--max-header-size): "
                f"431, connection closed",
                logging.INFO,
            )
            yield commands.SendData(
                self.conn,
                make_error_response(
                    431,
                    f"Request headers larger than {CONFIG.max_header_size:,} bytes "
                    f"(got {size:,} without an end)",
                ),
            )
            yield commands.CloseConnection(self.conn)
            self.state = self.done

    def guarded_client_read_headers(self, event):
        if isinstance(event, events.DataReceived) and self.request is not None:
            _drop_interim(self)
            if not self.buf:
                return
        yield from client_read_headers(self, event)
        if (
            isinstance(event, events.DataReceived)
            and getattr(self.state, "__func__", None) is guarded_client_read_headers
            and len(self.buf) > CONFIG.max_header_size
            and self.stream_id is not None
        ):
            self.buf = ReceiveBuffer()
            self.state = self.done  # what still arrives is dropped, not buffered
            yield commands.CloseConnection(self.conn)
            yield _http1.ReceiveHttp(
                _response_error(
                    self.stream_id,
                    f"upstream response headers larger than {CONFIG.max_header_size:,} bytes "
                    "(--max-header-size)",
                )
            )

    def send_with_timeout_status(self, event):
        if isinstance(event, ResponseProtocolError):
            why = _TIMED_OUT.pop(self.conn.id, None)
            if why is not None:
                # As mitmproxy answers a protocol error, with 504: neither version has a
                # code for it (11 takes an int, 12 an ErrorCode without a 504).
                if not (self.conn.state & ConnectionState.CAN_WRITE):
                    return
                if not self.response:
                    yield commands.SendData(self.conn, make_error_response(504, why))
                yield commands.CloseConnection(self.conn)
                return
        yield from server_send(self, event)

    Http1Server.read_headers = guarded_server_read_headers  # type: ignore[method-assign]
    Http1Client.read_headers = guarded_client_read_headers  # type: ignore[method-assign]
    Http1Server.send = send_with_timeout_status  # type: ignore[method-assign]


MAX_RESETS = 200
"""Client stream resets allowed per HTTP/2 connection within ``RESET_WINDOW`` seconds."""
RESET_WINDOW = 10.0


def _patch_http2() -> None:
    """HTTP/2 rapid reset (CVE-2023-44487): a client opening and at once resetting
    streams makes mitmproxy start (and tear down) a flow for each, and stalled every other
    client for seconds (15 s on mitmproxy 11, about 1 s on 12). Past ``MAX_RESETS``
    resets in ``RESET_WINDOW`` seconds the connection is closed with GOAWAY
    ENHANCE_YOUR_CALM, as h2 servers (nginx, h2o) do."""
    import collections

    import h2.errors
    import h2.events
    from mitmproxy.proxy.layers.http._http2 import Http2Server

    handle_h2_event = Http2Server.handle_h2_event

    def bounded_handle_h2_event(self, event):
        if isinstance(event, h2.events.StreamReset) and getattr(event, "remote_reset", True):
            resets = self.__dict__.setdefault("_waylay_resets", collections.deque())
            now = time.monotonic()
            resets.append(now)
            while resets and resets[0] < now - RESET_WINDOW:
                resets.popleft()
            if len(resets) > MAX_RESETS:
                yield from self.protocol_error(
                    f"more than {MAX_RESETS} stream resets in {RESET_WINDOW:g} s "
                    "(HTTP/2 rapid reset): connection closed",
                    error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
                )
                return True
        return (yield from handle_h2_event(self, event))

    Http2Server.handle_h2_event = bounded_handle_h2_event  # type: ignore[method-assign]


def _response_error(stream_id: int, message: str):
    """A 502 protocol error from upstream, on mitmproxy 11 (int codes) and 12 (ErrorCode)."""
    from mitmproxy.proxy.layers.http import _events

    error_code = getattr(_events, "ErrorCode", None)
    if error_code is not None:
        return _events.ResponseProtocolError(
            stream_id, message, error_code.RESPONSE_VALIDATION_FAILED
        )
    return _events.ResponseProtocolError(stream_id, message)


def _drop_interim(conn) -> None:
    """Remove complete interim (1xx except 101) response heads from the front of an
    upstream connection's buffer: the client waits for the final response, which
    mitmproxy would otherwise never read (it takes the 1xx as the response)."""
    while True:
        data = getattr(conn.buf, "_data", None)  # h11's bytearray; avoid copying it all
        head = bytes(data[:64]) if isinstance(data, bytearray) else bytes(conn.buf)[:64]
        m = _INTERIM.match(head)
        if m is None or m.group(1) == b"101":
            return
        lines = conn.buf.maybe_extract_lines()
        if lines is None:  # incomplete: wait for more
            return
        log.debug("dropped an interim %s response from upstream", m.group(1).decode())


# -- the upstream timeouts ----------------------------------------------------------------


class UpstreamTimeouts:
    """Addon: a request that has no response headers ``connect_timeout`` seconds after it
    was sent for lack of a connection, or ``read_timeout`` seconds after, is given up:
    the upstream connection is closed and the client gets 504 naming the cause."""

    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._why: dict[str, str] = {}

    def request(self, flow) -> None:
        if flow.response is not None or flow.error is not None or not flow.live:
            return
        self._cancel(flow)
        self._schedule(flow, time.monotonic(), min(self.connect_timeout, self.read_timeout))

    def responseheaders(self, flow) -> None:
        self._cancel(flow)

    def error(self, flow) -> None:
        self._cancel(flow)
        why = self._why.pop(flow.id, None)
        if why is not None and flow.error is not None:
            flow.error.msg = why  # not mitmproxy's "server closed connection"

    def response(self, flow) -> None:
        self._cancel(flow)

    def _cancel(self, flow) -> None:
        timer = self._timers.pop(flow.id, None)
        if timer is not None:
            timer.cancel()

    def _schedule(self, flow, start: float, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._timers[flow.id] = loop.call_later(max(0.0, delay), self._check, flow, start)

    def _check(self, flow, start: float) -> None:
        """Still no response headers: too long connecting, or too long waiting?"""
        self._timers.pop(flow.id, None)
        if flow.response is not None or flow.error is not None or not flow.live:
            return
        waited = time.monotonic() - start
        where = f"{flow.request.host}:{flow.request.port}"
        if not flow.server_conn.timestamp_tcp_setup:
            if waited >= self.connect_timeout:
                self._give_up(
                    flow,
                    f"504: could not connect to {where} within {self.connect_timeout:g} s "
                    "(--connect-timeout)",
                )
            else:
                self._schedule(flow, start, self.connect_timeout - waited)
            return
        if waited >= self.read_timeout:
            self._give_up(
                flow,
                f"504: no response from {where} within {self.read_timeout:g} s (--read-timeout)",
            )
        else:
            self._schedule(flow, start, self.read_timeout - waited)

    def _give_up(self, flow, why: str) -> None:
        from mitmproxy import ctx

        proxyserver = ctx.master.addons.get("proxyserver")
        handler = proxyserver.connections.get(flow.client_conn.id) if proxyserver else None
        if handler is None:
            return
        io = handler.transports.get(flow.server_conn)
        if io is None:
            # Still connecting: the flow gets its server connection only once connected,
            # so look for the client's connection being opened to the same address.
            address = (flow.request.host, flow.request.port)
            for conn, candidate in list(handler.transports.items()):
                if conn is not handler.client and getattr(conn, "address", None) == address:
                    if not conn.timestamp_tcp_setup:
                        io = candidate
                        break
        if io is None or io.handler is None:
            return
        log.info("%s %s: %s", flow.request.method, flow.request.url, why)
        _TIMED_OUT[flow.client_conn.id] = why
        self._why[flow.id] = why
        io.handler.cancel(why)


# -- the connection limit ------------------------------------------------------------------


class ConnectionWatch:
    """Addon: warns once when open client connections come near the process's file
    descriptor limit (each proxied connection needs two descriptors)."""

    def __init__(self, share: float = 0.8, *, to_stderr: bool = False) -> None:
        """``to_stderr``: headless, where nothing shows mitmproxy's log (on the screen,
        stderr is where Textual draws, so the warning only goes to the log)."""
        self.to_stderr = to_stderr
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.limit = soft if soft > 0 else 0
        self.share = share
        self.open = 0
        self._warned = False

    def client_connected(self, client) -> None:
        self.open += 1
        if self.limit and not self._warned and self.open * 2 >= self.limit * self.share:
            self._warned = True
            message = (
                f"{self.open} client connections open, near the limit of {self.limit} file "
                "descriptors (ulimit -n); idle ones are closed after --idle-timeout"
            )
            log.warning(message)
            if self.to_stderr:
                print(f"waylay: warning: {message}", file=sys.stderr, flush=True)

    def client_disconnected(self, client) -> None:
        self.open = max(0, self.open - 1)
        if self.open * 2 < self.limit * self.share / 2:
            self._warned = False
