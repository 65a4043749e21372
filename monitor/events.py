"""The event log: what happened in the proxy that is not a flow's row.

Proxy errors, rules reloads (and their errors), decisions made by a timeout, and clients
that failed the TLS handshake (usually because they do not trust waylay's CA: without
this such a client leaves no trace at all). A bounded ring: the last ``limit`` lines.
``EventLog`` is also a mitmproxy addon for the hooks that feed it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from mitmproxy import http, tls

from policies.printable import printable

EVENT_LINES = 1000


def tls_failure(data: tls.TlsData) -> str:
    """Why a client's TLS handshake failed (mitmproxy's words), with how to fix it when
    the client does not trust waylay's CA. The event log line and the flow list's row of
    the failed handshake (``Recorder.tls_failed_client``) both say it."""
    why = data.context.client.error or "handshake failed"
    lowered = why.lower()
    if "unknown ca" in lowered or "certificate" in lowered or "trust" in lowered:
        why += "; `waylay ca` tells how to make a client trust waylay's CA"
    return why


class EventLog:
    def __init__(self, limit: int = EVENT_LINES, clock: Callable[[], float] = time.time) -> None:
        self._lines: deque[tuple[float, str, str]] = deque(maxlen=limit)
        self._lock = threading.Lock()
        self._clock = clock

    def add(self, kind: str, text: str) -> None:
        """One line: ``kind`` is "error", "rules", "timeout", "tls" or "proxy". Control
        characters (from a URL, a host, an error) are shown as escapes."""
        line = (self._clock(), kind, printable(text))
        with self._lock:
            self._lines.append(line)

    def tail(self, limit: int = 200) -> list[tuple[float, str, str]]:
        """The last ``limit`` lines, oldest first: (time.time(), kind, text)."""
        with self._lock:
            lines = list(self._lines)
        return lines[-limit:] if limit else lines

    # -- mitmproxy hooks ------------------------------------------------------------

    def tls_failed_client(self, data: tls.TlsData) -> None:
        client = data.context.client
        peer = client.peername
        who = f"{peer[0]}:{peer[1]}" if peer else "a client"
        host = client.sni or (data.context.server.address or ("?",))[0]
        self.add("tls", f"client {who} failed the TLS handshake for {host}: {tls_failure(data)}")

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.error is None:
            return
        message = flow.error.msg
        if message == "Connection killed.":  # a cancel, not an error
            return
        self.add("error", f"{flow.request.method} {flow.request.url}: {message}")
