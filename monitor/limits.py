"""Limits mitmproxy leaves open, closed for waylay's users.

mitmproxy (11.0 and 12.x) itself has no header size limit (``_http1.py`` says
``FIXME: protect against header size DoS``; HTTP/2 keeps h2's 64 KiB default whatever
one wants), closes idle connections only after 10 minutes, has no upstream connect or
read timeout, and an interim ``1xx`` response from upstream ends the exchange for HTTP/1
(the client gets the ``100`` and never the final response). The layer classes are
patched here, once per process, in the smallest way that works on both versions: each
patch wraps mitmproxy's own method and only acts on the case it is about. These are
mitmproxy's bugs; upstream:

- header size: the FIXME above, in ``Http1Server``/``Http1Client.read_headers``; for
  HTTP/2 no mitmproxy issue: it keeps h2's ``SETTINGS_MAX_HEADER_LIST_SIZE`` default
  (python-hyper/h2#273, python-hyper/hpack#55);
- 1xx taken as the final response: mitmproxy/mitmproxy#2229 (closed, but 11.0.2 and
  12.3.1 still do it: ``expected_http_body_size`` says 0 and the exchange ends);
- timeouts: mitmproxy/mitmproxy#1095 (connect timeout, open); #7921 (an upstream proxy
  that never answers the CONNECT holds the client); #6763 (the server connection is
  opened before any request, so a server that does not answer holds the client's
  handshake, with no hook to give up in); the idle timeout became the ``tcp_timeout``
  option in 12 (mitmproxy/mitmproxy#7909), a module constant in 11;
- HTTP/2 rapid reset (CVE-2023-44487): no limit on client stream resets in either.

- Headers: ``--max-header-size`` (default 64 KiB) for request and response heads. An
  HTTP/1 client over it gets ``431`` and the connection is closed; an upstream over it
  is a 502 ("response headers too large"). The buffer is dropped at once, so memory
  returns. HTTP/2: see ``_patch_http2``.
- Idle connections: mitmproxy's inactivity watchdog (``TCP_TIMEOUT``, 600 s) set to
  ``--idle-timeout`` (default 300 s). Paused flows are not idle: mitmproxy disarms the
  watchdog while a hook runs.
- Upstream: ``--connect-timeout`` (default 10 s: TCP, then TLS or an upstream proxy's
  CONNECT; kept per upstream connection, see ``_patch_timeouts``) and
  ``--read-timeout`` (from the moment the upstream connection is ready to the response
  headers, default 60 s); the client gets ``504`` naming which, over HTTP/1 or HTTP/2.
  A read timeout ends only its own request: an HTTP/2 stream to the upstream is reset
  (others on the connection go on), an HTTP/1 upstream connection is closed.
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
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT


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
        help="give up on an upstream connection (TCP, TLS, an upstream proxy's CONNECT) "
        f"not ready after this long: 504, (0, {MAX_TIMEOUT}] "
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

_READ_TIMED_OUT: dict[str, str] = {}
"""flow id → why its request was given up for want of response headers."""
_GAVE_UP: dict[str, str] = {}
"""server connection id → why it was cut before it was established (--connect-timeout).
Kept after the connection's task ends (bounded, oldest dropped): a layer paused on a hook
(waylay's upstream-proxy probe) reads the close only once the hook returns."""
_CONNECT_TIMEOUTS: dict[str, object] = {}
"""The messages of recent connect timeouts (insertion-ordered, bounded): an HTTP stream
whose connection failed with one of these answers 504, not mitmproxy's 502."""

_INTERIM = re.compile(rb"HTTP/1\.[01] (1\d\d)[ \r]")
_installed = False


def install(settings) -> None:
    """Apply ``settings``' limits to mitmproxy's layers (patched once per process)."""
    CONFIG.max_header_size = settings.max_header_size
    CONFIG.idle_timeout = settings.idle_timeout
    CONFIG.connect_timeout = settings.connect_timeout
    from mitmproxy.proxy import server

    server.TCP_TIMEOUT = settings.idle_timeout
    global _installed
    if _installed:
        return
    _installed = True
    _patch_http1()
    _patch_http2()
    _patch_timeouts()


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

    # The wrappers below are plain functions handing back mitmproxy's own generator when
    # they have nothing to add (nearly always): a generator of ours around it would be
    # one more frame for every event and every command of every request.

    def guarded_server_read_headers(self, event):
        # The read is already in the buffer: a head over the limit is refused before it
        # is parsed, whether it has ended in this read or not (before, one that ended in
        # the read that crossed the limit passed: up to a read, 64 KiB, more).
        size = _oversized_head(self.buf) if isinstance(event, events.DataReceived) else None
        if size is None:
            return server_read_headers(self, event)
        return refuse_request_head(self, *size)

    def refuse_request_head(self, ended: bool, size: int):
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
                f"(got {size:,}{'' if ended else ' without an end'})",
            ),
        )
        yield commands.CloseConnection(self.conn)
        self.state = self.done

    def guarded_client_read_headers(self, event):
        if isinstance(event, events.DataReceived):
            if self.request is not None:
                _drop_interim(self)
                if not self.buf:
                    return iter(())
            if self.stream_id is not None and _oversized_head(self.buf) is not None:
                return refuse_response_head(self)
        return client_read_headers(self, event)

    def refuse_response_head(self):
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
        status = getattr(event, "waylay_status", None)
        if isinstance(event, ResponseProtocolError) and status is not None:
            return answer_with_status(self, event, status)
        return server_send(self, event)

    def answer_with_status(self, event, status: int):
        # As mitmproxy answers a protocol error, with our status: neither version has
        # a code for 504 (11 takes an int, 12 an ErrorCode without a 504).
        if not (self.conn.state & ConnectionState.CAN_WRITE):
            return
        if not self.response:
            yield commands.SendData(self.conn, make_error_response(status, event.message))
        yield commands.CloseConnection(self.conn)

    Http1Server.read_headers = guarded_server_read_headers  # type: ignore[method-assign]
    Http1Client.read_headers = guarded_client_read_headers  # type: ignore[method-assign]
    Http1Server.send = send_with_timeout_status  # type: ignore[method-assign]


_HEAD_END = re.compile(rb"\n\r?\n")
"""Where an HTTP/1 head ends, as mitmproxy's buffer (h11's) finds it."""


def _oversized_head(buf) -> tuple[bool, int] | None:
    """(ended, size) of the HTTP/1 head at the start of ``buf`` when it is over
    ``--max-header-size`` (size so far when it has not ended); None when it fits. Looks
    only when more than the limit is buffered: a usual read costs one ``len``."""
    limit = CONFIG.max_header_size
    if len(buf) <= limit:
        return None
    end = _HEAD_END.search(bytes(buf))
    if end is None:
        return False, len(buf)
    return None if end.end() <= limit else (True, end.end())


MAX_RESETS = 200
"""Client stream resets allowed per HTTP/2 connection within ``RESET_WINDOW`` seconds."""
RESET_WINDOW = 10.0


def _patch_http2() -> None:
    """HTTP/2: rapid reset, header block size, and a 504 on the stream.

    Rapid reset (CVE-2023-44487): a client opening and at once resetting streams makes
    mitmproxy start (and tear down) a flow for each, and stalled every other client for
    seconds (15 s on mitmproxy 11, about 1 s on 12). Past ``MAX_RESETS`` resets in
    ``RESET_WINDOW`` seconds the connection is closed with GOAWAY ENHANCE_YOUR_CALM, as h2
    servers (nginx, h2o) do.

    Header blocks: mitmproxy leaves h2's defaults, so a header block is bounded only by
    hpack's 64 KiB (``DEFAULT_MAX_HEADER_LIST_SIZE``), whatever ``--max-header-size``
    says. Both sides now advertise ``SETTINGS_MAX_HEADER_LIST_SIZE`` = the option. A
    client's request whose decoded header list (RFC 9113 counts name + value + 32 per
    field) is over it gets ``431`` on its stream, as RFC 9113 section 10.5.1 suggests;
    the block has to be decoded for that (to keep the HPACK state of the connection), so
    decoding stops at twice the option: past that hpack gives up mid-block, the state is
    lost, and h2 closes the connection (GOAWAY ENHANCE_YOUR_CALM). An upstream's
    response over the option does the same to the upstream connection (a 502 for the
    client, as for HTTP/1)."""
    import collections

    import h2.errors
    import h2.events
    from mitmproxy import version
    from mitmproxy.proxy import commands
    from mitmproxy.proxy.layers.http._base import format_error
    from mitmproxy.proxy.layers.http._events import ResponseProtocolError
    from mitmproxy.proxy.layers.http._http2 import Http2Client, Http2Connection, Http2Server

    connection_init = Http2Connection.__init__
    handle_h2_event = Http2Server.handle_h2_event
    server_handle_event = Http2Server._handle_event

    def init_with_header_limit(self, context, conn):
        connection_init(self, context, conn)
        h2_conn = self.h2_conn
        h2_conn.local_settings.max_header_list_size = CONFIG.max_header_size
        # mitmproxy's pitfall too: acknowledge, else h2 sends the old value.
        h2_conn.local_settings.acknowledge()
        if isinstance(self, Http2Client):
            h2_conn.decoder.max_header_list_size = CONFIG.max_header_size
        else:
            h2_conn.decoder.max_header_list_size = 2 * CONFIG.max_header_size

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
        if isinstance(event, h2.events.RequestReceived):
            size = sum(len(name) + len(value) + 32 for name, value in event.headers)
            if size > CONFIG.max_header_size:
                message = (
                    f"Request headers larger than {CONFIG.max_header_size:,} bytes "
                    f"(got {size:,}; --max-header-size)"
                )
                yield commands.Log(f"HTTP/2 stream {event.stream_id}: {message}: 431", logging.INFO)
                h2_conn = self.h2_conn
                h2_conn.send_headers(
                    event.stream_id,
                    [
                        (b":status", b"431"),
                        (b"server", version.MITMPROXY.encode()),
                        (b"content-type", b"text/html"),
                    ],
                )
                h2_conn.send_data(event.stream_id, format_error(431, message), end_stream=True)
                if not event.stream_ended:  # a body may follow: we do not want it
                    h2_conn.reset_stream(event.stream_id, h2.errors.ErrorCodes.NO_ERROR)
                return False  # no flow: the stream is not tracked, what follows is dropped
        return (yield from handle_h2_event(self, event))

    def handle_event_with_status(self, event):
        status = getattr(event, "waylay_status", None)
        if isinstance(event, ResponseProtocolError) and status is not None:
            stream_id = event.stream_id
            if (
                not self.is_closed(stream_id)
                and self.is_open_for_us(stream_id)
                and not self.h2_conn.streams[stream_id].state_machine.headers_sent
            ):
                # As mitmproxy answers a protocol error on a stream, with our status.
                self.h2_conn.send_headers(
                    stream_id,
                    [
                        (b":status", b"%d" % status),
                        (b"server", version.MITMPROXY.encode()),
                        (b"content-type", b"text/html"),
                    ],
                )
                self.h2_conn.send_data(
                    stream_id, format_error(status, event.message), end_stream=True
                )
                if data := self.h2_conn.data_to_send():
                    yield commands.SendData(self.conn, data)
                return
        yield from server_handle_event(self, event)

    Http2Connection.__init__ = init_with_header_limit  # type: ignore[method-assign]
    Http2Server.handle_h2_event = bounded_handle_h2_event  # type: ignore[method-assign]
    Http2Server._handle_event = handle_event_with_status  # type: ignore[method-assign]


def _response_error(stream_id: int, message: str):
    """A 502 protocol error from upstream, on mitmproxy 11 (int codes) and 12 (ErrorCode)."""
    from mitmproxy.proxy.layers.http import _events

    error_code = getattr(_events, "ErrorCode", None)
    if error_code is not None:
        return _events.ResponseProtocolError(
            stream_id, message, error_code.RESPONSE_VALIDATION_FAILED
        )
    return _events.ResponseProtocolError(stream_id, message)


def _request_cancelled(stream_id: int, message: str):
    """The request given up on, for the upstream side: an HTTP/2 stream reset (CANCEL),
    or the HTTP/1 connection closed; on mitmproxy 11 (int codes) and 12 (ErrorCode)."""
    from mitmproxy.net.http import status_codes
    from mitmproxy.proxy.layers.http import _events

    error_code = getattr(_events, "ErrorCode", None)
    if error_code is not None:
        return _events.RequestProtocolError(stream_id, message, error_code.CANCEL)
    return _events.RequestProtocolError(stream_id, message, status_codes.CLIENT_CLOSED_REQUEST)


def _server_error(stream_id: int, message: str):
    """A generic protocol error from upstream, on mitmproxy 11 and 12."""
    from mitmproxy.proxy.layers.http import _events

    error_code = getattr(_events, "ErrorCode", None)
    if error_code is not None:
        return _events.ResponseProtocolError(stream_id, message, error_code.GENERIC_SERVER_ERROR)
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

_TIMEOUT_STATUS = 504
_MAX_REMEMBERED = 256


def _remember(table: dict, key, value) -> None:
    table.pop(key, None)
    table[key] = value
    while len(table) > _MAX_REMEMBERED:
        del table[next(iter(table))]


def _patch_timeouts() -> None:
    """Connect timeout, per upstream connection, and 504 for the streams a timeout ends.

    ``--connect-timeout`` covers all that comes before a connection can carry a request:
    the TCP connect, then the handshakes layered on it (TLS with the server, an upstream
    proxy's CONNECT, TLS with an upstream proxy). It is kept on the connection, not on a
    flow, so it also holds where no request exists yet (mitmproxy connects to the server
    while the client's TLS handshake waits, to learn its certificate and protocol) and in
    upstream mode (where the socket goes to the upstream proxy, not the request's host).

    A stream ended by a timeout, on HTTP/1 or HTTP/2, is answered 504 with the reason."""
    from mitmproxy import connection as mconnection
    from mitmproxy import http
    from mitmproxy.proxy import events, tunnel
    from mitmproxy.proxy.layers.http import HttpStream, SendHttp
    from mitmproxy.proxy.layers.http._events import ResponseProtocolError
    from mitmproxy.proxy.server import ConnectionHandler

    open_connection = ConnectionHandler.open_connection
    tunnel_handle_event = tunnel.TunnelLayer._handle_event
    handle_protocol_error = HttpStream.handle_protocol_error
    handle_connect_finish = HttpStream.handle_connect_finish
    stream_handle_event = HttpStream._handle_event

    async def open_connection_with_timeout(self, command) -> None:
        conn = command.connection
        task = asyncio.current_task()
        timer = None
        if isinstance(conn, mconnection.Server) and conn.transport_protocol == "tcp" and task:
            timer = asyncio.get_running_loop().call_later(
                CONFIG.connect_timeout, _connect_deadline, self, conn, task
            )
        try:
            await open_connection(self, command)
        finally:
            if timer is not None:
                timer.cancel()

    def handshake_cut_with_reason(self, event):
        """mitmproxy says "connection closed" for a handshake cut short; we cut it, and
        say why, so that whoever waits for the connection (and the flow) learns it."""
        if (
            isinstance(event, events.ConnectionClosed)
            and event.connection == self.tunnel_connection
            and self.tunnel_state is tunnel.TunnelState.ESTABLISHING
            and (why := _GAVE_UP.get(self.tunnel_connection.id)) is not None
        ):
            return handshake_cut(self, why)
        return tunnel_handle_event(self, event)  # every other event: mitmproxy's generator

    def handshake_cut(self, why: str):
        if self.conn != self.tunnel_connection:
            self.conn.state &= ~mconnection.ConnectionState.CAN_READ
            self.conn.timestamp_end = time.time()
        yield from self.on_handshake_error(why)
        yield from self._handshake_finished(why)
        self.tunnel_state = tunnel.TunnelState.CLOSED

    def handle_protocol_error_with_status(self, event):
        if isinstance(event, ResponseProtocolError):
            flow = getattr(self, "flow", None)
            why = _READ_TIMED_OUT.pop(flow.id, None) if flow is not None else None
            if why is None and event.message in _CONNECT_TIMEOUTS:
                why = event.message
            if why is not None:
                event = _server_error(event.stream_id, why)
                event.waylay_status = _TIMEOUT_STATUS
        return (yield from handle_protocol_error(self, event))

    def stream_read_timeout(self, event):
        """The read timeout, delivered to this stream alone (``_deliver_read_timeout``):
        the request is cancelled upstream (an HTTP/2 stream reset, or the HTTP/1
        connection closed) and the client gets 504; other streams sharing an HTTP/2
        upstream connection go on. Every other event gets mitmproxy's own generator (no
        generator of ours around it: this runs for every event of every request)."""
        if not isinstance(event, events.Wakeup):
            return stream_handle_event(self, event)
        why = getattr(event.command, "waylay_read_timeout", None)
        if why is None:
            return stream_handle_event(self, event)
        return read_timed_out(self, why)

    def read_timed_out(self, why: str):
        flow = getattr(self, "flow", None)
        if (
            flow is None
            or flow.response is not None
            or flow.error is not None
            or not flow.live
            or self.server_state != self.state_wait_for_response_headers
        ):
            return  # answered (or ended) meanwhile
        yield SendHttp(_request_cancelled(self.stream_id, why), self.context.server)
        _READ_TIMED_OUT[flow.id] = why
        yield from self.handle_protocol_error(_server_error(self.stream_id, why))

    def connect_finish_with_status(self):
        """A CONNECT whose (eager) server connection timed out: 504 with the reason,
        not mitmproxy's 502 "Cannot connect to ... consider `connection_strategy`"."""
        response = self.flow.response
        if response is not None and response.status_code == 502:
            text = response.get_text(strict=False) or ""
            why = next((w for w in reversed(_CONNECT_TIMEOUTS) if w in text), None)
            if why is not None:
                self.flow.response = http.Response.make(_TIMEOUT_STATUS, why)
        yield from handle_connect_finish(self)

    ConnectionHandler.open_connection = open_connection_with_timeout  # type: ignore[method-assign]
    tunnel.TunnelLayer._handle_event = handshake_cut_with_reason  # type: ignore[method-assign]
    HttpStream.handle_protocol_error = handle_protocol_error_with_status  # type: ignore[method-assign]
    HttpStream.handle_connect_finish = connect_finish_with_status  # type: ignore[method-assign]
    HttpStream._handle_event = stream_read_timeout  # type: ignore[method-assign]


def _connect_deadline(handler, conn, task: asyncio.Task) -> None:
    """``--connect-timeout`` after a server connection was asked for: if it is not ready
    to carry requests yet, cut it and say what it was waiting for."""
    if task.done() or conn.error:
        return
    from mitmproxy.proxy.layers.http._upstream_proxy import HttpUpstreamProxy
    from mitmproxy.utils import human

    tunnels = _tunnels_over(handler, conn)
    role = "upstream proxy " if any(isinstance(t, HttpUpstreamProxy) for t in tunnels) else ""
    where = f"{role}{human.format_address(conn.address)}"
    limit = f"within {CONFIG.connect_timeout:g} s (--connect-timeout)"
    if not conn.timestamp_tcp_setup:
        why = f"504: could not connect to {where} {limit}"
    else:
        from mitmproxy.proxy import tunnel

        pending = [t for t in tunnels if t.tunnel_state is tunnel.TunnelState.ESTABLISHING]
        if not pending:
            return
        # The lowest handshake is the one stuck: TLS with a proxy before its CONNECT,
        # the CONNECT before TLS with the server through it.
        pending.sort(
            key=lambda t: (t.tunnel_connection.id != conn.id, isinstance(t, HttpUpstreamProxy))
        )
        first = pending[0]
        if isinstance(first, HttpUpstreamProxy):
            why = f"504: {where} accepted the connection but did not answer the CONNECT request"
        elif first.tunnel_connection.id == conn.id:
            why = f"504: {where} accepted the connection but did not finish the TLS handshake"
        else:
            server = human.format_address(first.conn.address)
            why = f"504: {server} did not finish the TLS handshake (through {where})"
        why = f"{why} {limit}"
    log.info("%s", why)
    # The handshakes over it (upstream mode: TLS with the server, over the CONNECT tunnel)
    # see the close on their own connection objects.
    for conn_id in dict.fromkeys([conn.id, *(t.conn.id for t in tunnels)]):
        _remember(_GAVE_UP, conn_id, why)
    _remember(_CONNECT_TIMEOUTS, why, None)
    task.cancel(why)


def _layers(handler):
    """Every layer of a client connection's handler: the stack, each HTTP stream's own
    stack (after CONNECT) and each upstream connection's stack."""
    from mitmproxy.proxy.layer import Layer

    seen = set()
    todo = [handler.layer]
    while todo:
        layer = todo.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        yield layer
        for value in vars(layer).values():
            value = getattr(value, "__self__", value)  # mode layers keep a bound method
            if isinstance(value, Layer):
                todo.append(value)
            elif isinstance(value, dict):
                todo.extend(v for v in value.values() if isinstance(v, Layer))


def _tunnels_over(handler, conn) -> list:
    """The tunnel layers (TLS, upstream proxy) that run over ``conn``, directly or over
    another of them, lowest first."""
    from mitmproxy.proxy import tunnel

    tunnels = [x for x in _layers(handler) if isinstance(x, tunnel.TunnelLayer)]
    ids = [conn.id]
    found: list = []
    grew = True
    while grew:
        grew = False
        for t in tunnels:
            if t not in found and t.tunnel_connection.id in ids:
                found.append(t)
                if t.conn.id not in ids:
                    ids.append(t.conn.id)
                grew = True
    return found


def _stream_path(handler, flow) -> list | None:
    """The layers an event passes from the handler's root to the HTTP stream of ``flow``
    (through CONNECT tunnels, TLS and the HTTP layers), or None."""
    from mitmproxy.proxy.layer import Layer
    from mitmproxy.proxy.layers.http import HttpLayer, HttpStream

    def children(layer) -> list:
        if isinstance(layer, HttpLayer):
            return list(layer.streams.values())
        found = []
        for value in (
            layer.__dict__.get("child_layer"),
            layer.__dict__.get("layer"),  # NextLayer
            getattr(layer.__dict__.get("_handle_event"), "__self__", None),  # mode layers
        ):
            if isinstance(value, Layer) and value is not layer:
                found.append(value)
        return found

    todo = [[handler.layer]]
    seen: set = set()
    while todo:
        path = todo.pop()
        layer = path[-1]
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, HttpStream) and getattr(layer, "flow", None) is flow:
            return path
        todo.extend([*path, child] for child in children(layer))
    return None


_DELIVERIES: set = set()


def _deliver_read_timeout(handler, flow, why: str) -> bool:
    """Send the read timeout to the flow's own HTTP stream, as the Wakeup of a timer it
    never asked for: each HTTP layer on the way learns where to route it, as it would
    for a timer the stream had asked for itself."""
    from mitmproxy.proxy import commands, events
    from mitmproxy.proxy.layers.http import HttpLayer

    path = _stream_path(handler, flow)
    if path is None:
        return False
    wakeup = commands.RequestWakeup(0.0)
    wakeup.waylay_read_timeout = why  # type: ignore[attr-defined]
    for parent, child in zip(path, path[1:], strict=False):
        if isinstance(parent, HttpLayer):
            parent.command_sources[wakeup] = child
    task = asyncio.ensure_future(handler.server_event(events.Wakeup(wakeup)))
    _DELIVERIES.add(task)
    task.add_done_callback(_DELIVERIES.discard)
    return True


class UpstreamTimeouts:
    """Addon: a request that has no response headers ``read_timeout`` seconds after its
    upstream connection was ready is given up: its stream is told (``_deliver_read_timeout``),
    cancels the request upstream and answers the client 504 naming the cause. (Connecting
    is ``--connect-timeout``'s, above.)"""

    POLL = 0.5
    """While the upstream connection is not ready: how often to look again."""

    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def request(self, flow) -> None:
        if flow.response is not None or flow.error is not None or not flow.live:
            return
        self._cancel(flow)
        self._check(flow, None)

    def responseheaders(self, flow) -> None:
        self._cancel(flow)

    def error(self, flow) -> None:
        self._cancel(flow)
        _READ_TIMED_OUT.pop(flow.id, None)

    def response(self, flow) -> None:
        self._cancel(flow)

    def _cancel(self, flow) -> None:
        timer = self._timers.pop(flow.id, None)
        if timer is not None:
            timer.cancel()

    def _schedule(self, flow, start: float | None, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._timers[flow.id] = loop.call_later(max(0.0, delay), self._check, flow, start)

    def _check(self, flow, start: float | None) -> None:
        """Still no response headers: is the connection ready, and for how long?"""
        self._timers.pop(flow.id, None)
        if flow.response is not None or flow.error is not None or not flow.live:
            return
        server = flow.server_conn
        ready = server.connected and (not server.tls or server.tls_established)
        if start is None:
            if ready:
                self._schedule(flow, time.monotonic(), self.read_timeout)
            else:  # connecting: the connect timeout is watching that
                self._schedule(flow, None, min(self.POLL, self.read_timeout))
            return
        waited = time.monotonic() - start
        if waited < self.read_timeout:
            self._schedule(flow, start, self.read_timeout - waited)
            return
        where = f"{flow.request.host}:{flow.request.port}"
        self._give_up(
            flow, f"504: no response from {where} within {self.read_timeout:g} s (--read-timeout)"
        )

    def _give_up(self, flow, why: str) -> None:
        from mitmproxy import ctx

        proxyserver = ctx.master.addons.get("proxyserver")
        handler = proxyserver.connections.get(flow.client_conn.id) if proxyserver else None
        if handler is None:
            return
        log.info("%s %s: %s", flow.request.method, flow.request.url, why)
        if not _deliver_read_timeout(handler, flow, why):
            log.info("%s %s: its stream is gone", flow.request.method, flow.request.url)


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
