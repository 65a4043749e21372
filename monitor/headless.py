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
from monitor.destination import destination_url, host_mismatch
from monitor.options_check import secrets_file_warnings
from monitor.proxy import ProxyStartError
from monitor.record import record_of
from monitor.session import Session
from monitor.settings import Settings
from monitor.sockets import SocketDirError
from policies.printable import printable


def outcome(flow: http.HTTPFlow) -> str:
    """What the client got. A flow with an error failed, even when response headers had
    arrived (upstream reset mid-body, a bad chunk, headers then silence): the client
    got a 502 or a cut-off body, never that status."""
    rec = record_of(flow)
    if rec.client_gone:
        return "client gone"
    if rec.state == "cancelled":
        return "cancelled"
    if flow.error is not None:
        return f"error: {flow.error.msg}"
    if flow.response is not None:
        return str(flow.response.status_code)
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
    line = f"{stamp} {flow.request.method} {destination_url(flow)} {outcome(flow)}"
    if rule:
        line += f" rule={rule}"
    if note := host_mismatch(flow):
        line += f" ({note})"
    # Everything in the line but the stamp came from the network: no control characters
    # reach the terminal of whoever reads the log.
    return printable(line)


class _RulesReporter:
    """Says on stderr when a runtime edit breaks the rules file, when it loads again, and
    when countdowns cannot (or can again) be saved. Runs in the watcher and writer
    threads."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.error: str | None = None
        self.notice: str | None = None
        self._lock = threading.Lock()

    def __call__(self, rules) -> None:
        with self._lock:
            error, notice = rules.error, rules.notice
            lines = []
            if error != self.error:
                if error is not None:
                    lines.append(f"waylay: rules file: {error} (keeping the last good rules)")
                else:
                    lines.append(f"waylay: rules file loads again: {rules.state}")
            if notice != self.notice:
                if notice is not None:
                    lines.append(f"waylay: rules file: {notice}")
                else:
                    lines.append("waylay: rules file: countdowns saved again")
            self.error, self.notice = error, notice
            if lines:
                self.err.write("".join(line + "\n" for line in lines))
                self.err.flush()


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

    reporter = _RulesReporter(err)
    session = Session(
        settings,
        on_finished=None if ready_fd is not None else on_finished,
        on_rules_changed=reporter,
    )
    if session.rules.error:
        print(f"waylay: rules file: {printable(session.rules.error)}", file=err)
        print("waylay: continuing with no rules until the file is fixed", file=err)
        reporter.error = session.rules.error  # said: the watcher need not say it again
    for warning in secrets_file_warnings(settings.rules):
        print(f"waylay: warning: {printable(warning)}", file=err)
    try:
        host, port = session.start()
    except ProxyStartError as e:
        print(f"waylay: {printable(e)}", file=err)
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
