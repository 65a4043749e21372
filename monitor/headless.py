"""``waylay --headless``: the rules run, nobody is asked, one line per finished flow."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from typing import TextIO

from mitmproxy import http

from monitor import VERSION
from monitor.control import ControlServer
from monitor.proxy import ProxyStartError
from monitor.record import record_of
from monitor.session import Session
from monitor.settings import Settings
from monitor.sockets import SocketDirError


def outcome(flow: http.HTTPFlow) -> str:
    state = record_of(flow).state
    if state == "cancelled":
        return "cancelled"
    if state == "error" and flow.error is not None:
        return f"error: {flow.error.msg}"
    if flow.response is not None:
        return str(flow.response.status_code)
    if flow.error is not None:
        return f"error: {flow.error.msg}"
    return "unfinished"


_stamp_cache: dict[int, str] = {}


def _stamp(ts: float) -> str:
    second = int(ts)
    hms = _stamp_cache.get(second)
    if hms is None:
        if len(_stamp_cache) > 4:
            _stamp_cache.clear()
        hms = _stamp_cache[second] = time.strftime("%H:%M:%S", time.localtime(second))
    return f"{hms}.{int((ts - second) * 1000):03d}"


def flow_line(flow: http.HTTPFlow) -> str:
    """time, method, URL, outcome, and the deciding rule (README "Command line")."""
    stamp = _stamp(flow.request.timestamp_start)
    rule = record_of(flow).rule_id
    line = f"{stamp} {flow.request.method} {flow.request.pretty_url} {outcome(flow)}"
    return f"{line} rule={rule}" if rule else line


def run_headless(
    settings: Settings,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    *,
    ready_fd: int | None = None,
) -> int:
    """Run until SIGINT/SIGTERM (or a screen's "stop"). ``ready_fd`` (the proxy of a
    screen, ``waylay`` without --headless): no flow lines; the control socket's path is
    written there once it accepts, and without one the proxy does not run."""
    pending: list[str] = []

    def write_out() -> None:
        if pending:
            out.write("".join(pending))
            pending.clear()
            out.flush()

    def on_finished(flow: http.HTTPFlow) -> None:
        """Runs on the proxy loop; lines written at the end of the loop's current pass, so a
        burst costs one write, not one per flow."""
        if not pending:
            asyncio.get_running_loop().call_soon(write_out)
        pending.append(flow_line(flow) + "\n")

    session = Session(settings, on_finished=None if ready_fd is not None else on_finished)
    if session.rules.error:
        print(f"waylay: rules file: {session.rules.error}", file=err)
        print("waylay: continuing with no rules until the file is fixed", file=err)
    try:
        host, port = session.start()
    except ProxyStartError as e:
        print(f"waylay: {e}", file=err)
        return 2
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    print(f"waylay: listening on http://{host}:{port}", file=err, flush=True)
    control: ControlServer | None = ControlServer(
        session, hold=settings.hold, err=err, on_stop=stop.set, version=VERSION
    )
    try:
        assert control is not None
        path = control.start()
    except (SocketDirError, OSError) as e:
        print(f"waylay: no control socket, screens cannot attach: {e}", file=err, flush=True)
        control = None
        if ready_fd is not None:
            session.stop()
            return 2
    else:
        print(f"waylay: attach with: waylay attach {path}", file=err, flush=True)
        if ready_fd is not None:
            with os.fdopen(ready_fd, "w") as ready:
                ready.write(f"{path}\n")
    try:
        while not stop.is_set() and session.proxy.running:
            stop.wait(0.5)
    finally:
        if control is not None:
            control.stop()
        session.stop()
        write_out()  # lines of flows that ended during shutdown
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0
