"""Cancels that hold: a client's retry of a request waylay just cancelled is the same decision.

waylay cancels by closing the client's connection (HTTP/1) or resetting the stream
(HTTP/2). On a reused keep-alive connection a client cannot tell that from a stale
socket, so browsers and curl send the request again at once, on a fresh connection (and,
for HTTPS, through a fresh CONNECT tunnel). Without this module the retry would be a new
request: a new hit, a new ``times`` countdown, a new pause, and with a ``times = 1`` rule
it would reach upstream.

``Retries`` remembers each cancelled request by (client address, method, URL, body) for
``window`` seconds. An identical request from the same client address inside that window
is cancelled again at once, as part of the original decision: it is not shown as a row
of its own, not printed by ``--headless``, and does not reach the rules. The original
flow counts it (``record_of(flow).retries``). Each absorbed retry renews the window, so a
client that keeps retrying keeps being refused. Everything here runs on the proxy loop.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

from mitmproxy import http

from monitor.record import record_of

WINDOW = 5.0  # seconds: browsers and curl retry within milliseconds; a person takes longer
MAX_REMEMBERED = 10_000  # bounded memory whatever the traffic

Key = tuple[str, str, str, bytes]


def retry_key(flow: http.HTTPFlow) -> Key:
    """Who asked for what: the client's address (not its port: a retry comes on a new
    connection), the method, the full URL, and a digest of the body."""
    peer = flow.client_conn.peername
    client = str(peer[0]) if peer else ""
    body = flow.request.raw_content or b""
    return (client, flow.request.method, flow.request.url, hashlib.sha1(body).digest())


class Retries:
    def __init__(self, window: float = WINDOW, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        # key -> (the cancelled flow that decided, until when a retry is absorbed)
        self._recent: OrderedDict[Key, tuple[http.HTTPFlow, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._recent)

    def cancelled(self, flow: http.HTTPFlow) -> None:
        """``flow`` was just cancelled: its retries within the window are part of it."""
        key = retry_key(flow)
        self._recent[key] = (flow, self.clock() + self.window)
        self._recent.move_to_end(key)
        while len(self._recent) > MAX_REMEMBERED:
            self._recent.popitem(last=False)

    def absorb(self, flow: http.HTTPFlow) -> http.HTTPFlow | None:
        """If ``flow`` retries a request cancelled within the window, return the original
        flow (and count the retry on it); else None. The caller cancels ``flow``."""
        if not self._recent:
            return None
        now = self.clock()
        self._expire(now)
        key = retry_key(flow)
        hit = self._recent.get(key)
        if hit is None:
            return None
        original, _until = hit
        self._recent[key] = (original, now + self.window)
        self._recent.move_to_end(key)
        record_of(original).retries += 1
        record_of(flow).retry_of = original.id
        return original

    def _expire(self, now: float) -> None:
        # Deadlines grow with insertion order (a renewed key moves to the end).
        while self._recent:
            key, (_flow, until) = next(iter(self._recent.items()))
            if until > now:
                break
            del self._recent[key]
