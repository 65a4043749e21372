"""The bounded flow store and the bridge from the proxy to whoever shows flows.

``Recorder`` is the last addon in the chain, so when its ``response``/``error`` hooks
run every decision about the flow has been made. It keeps at most ``max_flows`` flows
(the oldest finished go first), and every ``interval`` seconds turns the flows that
changed into ``FlowView`` snapshots and hands them to ``sink`` in one batch: a burst
of traffic costs the screen one message per batch, not one per flow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from mitmproxy import connection, http, tls
from mitmproxy.flow import Error as flow_error

from monitor.events import tls_failure
from monitor.pauses import Pauses
from monitor.record import record_of
from monitor.snapshot import matches, snapshot
from widgets.model import FlowView

log = logging.getLogger("waylay.recorder")

Sink = Callable[[Sequence[FlowView], Sequence[str]], None]


def tls_failure_flow(data: tls.TlsData) -> http.HTTPFlow:
    """The row of a failed client TLS handshake: a finished CONNECT to the server the
    client wanted (its address, else the SNI on 443), with the failure as its error."""
    client, server = data.context.client, data.context.server
    if server.address is not None:
        host, port = server.address[0], server.address[1]
    else:
        host, port = client.sni or "?", 443
    now = time.time()
    flow = http.HTTPFlow(client, server)
    flow.request = http.Request(
        host,
        port,
        b"CONNECT",
        b"https",
        f"{host}:{port}".encode("utf-8", "replace"),
        b"",
        b"HTTP/1.1",
        (),
        b"",
        None,
        client.timestamp_start or now,
        now,
    )
    flow.error = flow_error(f"client TLS handshake failed: {tls_failure(data)}", now)
    return flow


class Recorder:
    def __init__(
        self,
        *,
        max_flows: int,
        pauses: Pauses,
        sink: Sink | None = None,
        on_finished: Callable[[http.HTTPFlow], None] | None = None,
        interval: float = 0.05,
        max_body_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.max_flows = max_flows
        self.max_body_bytes = max_body_bytes
        self._bodies: OrderedDict[str, int] = OrderedDict()
        self._body_bytes = 0
        self.pauses = pauses
        self.sink = sink
        self.on_finished = on_finished
        self.interval = interval
        self.flows: OrderedDict[str, http.HTTPFlow] = OrderedDict()
        self._seq: dict[str, int] = {}
        self._next_seq = 1
        self._dirty: set[str] = set()
        self._removed: list[str] = []
        self._flusher: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self.flow_filter: tuple[int, Callable[[http.HTTPFlow], bool]] | None = None
        """The screen's flow-list filter (generation, mitmproxy filter), or None."""
        self.row_maker: Callable[..., object] = snapshot
        """What a batch carries per flow: ``row_maker(flow, seq, paused, flow_filter)``, a
        full ``FlowView`` (``snapshot``), or for the control socket a lighter row."""

    # -- mitmproxy hooks ------------------------------------------------------------

    def running(self) -> None:
        if self.sink is not None:
            self._wake = asyncio.Event()
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def done(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
            self._flusher = None
        self.flush()

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        self.track(flow)

    def request(self, flow: http.HTTPFlow) -> None:
        self.touch(flow)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self.touch(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        rec = record_of(flow)
        if not rec.done:
            rec.done = True
            self._finish(flow)
        self.touch(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        rec = record_of(flow)
        if not rec.done:
            rec.done = True
            self._finish(flow)
        self.touch(flow)

    def http_connect_error(self, flow: http.HTTPFlow) -> None:
        """A CONNECT that failed (upstream unreachable, proxy auth...): no request inside
        the tunnel will ever show it, so the CONNECT itself becomes the row."""
        if flow.error is None and flow.response is not None:
            text = flow.response.get_text(strict=False) or flow.response.reason
            flow.error = flow_error(text.split(" If you plan", 1)[0].strip())
        record_of(flow).state = "error"
        self.track(flow)
        self.error(flow)

    def tls_failed_client(self, data: tls.TlsData) -> None:
        """A client failed the TLS handshake (most often: it does not trust waylay's CA).
        No request will ever show it, so the handshake becomes a row of its own: a
        CONNECT to where the client wanted to go, ended with mitmproxy's reason."""
        flow = tls_failure_flow(data)
        record_of(flow).state = "error"
        self.track(flow)
        self.error(flow)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        self.touch(flow)

    def client_disconnected(self, client: connection.Client) -> None:
        self.pauses.client_disconnected(client)

    # -- the store ------------------------------------------------------------------

    def track(self, flow: http.HTTPFlow) -> None:
        """Start keeping a flow (idempotent); evicts the oldest finished flows."""
        if flow.id in self._seq:
            return
        self._seq[flow.id] = self._next_seq
        self._next_seq += 1
        self.flows[flow.id] = flow
        record_of(flow)
        if len(self.flows) > self.max_flows:
            self._evict()
        self.touch(flow)

    def touch(self, flow: http.HTTPFlow | str) -> None:
        if self.sink is None:
            return
        fid = flow if isinstance(flow, str) else flow.id
        if fid in self._seq:
            self._dirty.add(fid)
            if self._wake is not None:
                self._wake.set()

    def drop(self, flow: http.HTTPFlow) -> None:
        """Stop keeping a flow that is part of another (a client's retry of a cancelled
        request, see monitor/retries.py): no row of its own, no headless line."""
        if flow.id in self._seq:
            self._forget(flow.id)
            if self._wake is not None:
                self._wake.set()

    def _finish(self, flow: http.HTTPFlow) -> None:
        if flow.id in self._seq:
            self._keep_bodies_bounded(flow)
        if self.on_finished is not None and record_of(flow).retry_of is None:
            try:
                self.on_finished(flow)
            except Exception:  # a broken printer must not break the proxy
                log.exception("on_finished failed")

    def _evict(self) -> None:
        """Drop the oldest finished flows beyond ``max_flows``. The scan stops as soon as
        enough are found (usually the first one), so a full store costs O(1) per flow."""
        excess = len(self.flows) - self.max_flows
        if excess <= 0:
            return
        victims = []
        for fid, f in self.flows.items():
            if record_of(f).done and self.pauses.info(fid) is None:
                victims.append(fid)
                if len(victims) >= excess:
                    break
        for fid in victims:
            self._forget(fid)

    def _keep_bodies_bounded(self, flow: http.HTTPFlow) -> None:
        """Bodies of finished flows count against ``max_body_bytes``; past it the oldest
        kept bodies are dropped (the flow stays, with a note), so memory is bounded by
        bytes as well as by flows."""
        size = len(flow.request.raw_content or b"")
        if flow.response is not None:
            size += len(flow.response.raw_content or b"")
        if not size:
            return
        self._bodies[flow.id] = size
        self._body_bytes += size
        while self._body_bytes > self.max_body_bytes and self._bodies:
            fid, dropped = next(iter(self._bodies.items()))
            del self._bodies[fid]
            self._body_bytes -= dropped
            old = self.flows.get(fid)
            if old is None:
                continue
            old.request.data.content = None
            if old.response is not None:
                old.response.data.content = None
            record_of(old).note(
                f"bodies dropped to keep memory bounded ({dropped:,} bytes; newer flows keep theirs)"
            )
            self._dirty.add(fid)

    def _forget(self, fid: str) -> None:
        del self.flows[fid]
        self._seq.pop(fid, None)
        self._dirty.discard(fid)
        if self.sink is not None:  # headless has no screen to tell (and never flushes)
            self._removed.append(fid)
        self._body_bytes -= self._bodies.pop(fid, 0)

    def forget(self, fid: str) -> bool:
        """Drop one flow (the screen's `d`); False when it is not kept."""
        if fid not in self.flows:
            return False
        self._forget(fid)
        if self._wake is not None:
            self._wake.set()
        return True

    def seq_of(self, fid: str) -> int | None:
        return self._seq.get(fid)

    def clear_finished(self) -> list[str]:
        gone = [
            fid
            for fid, f in self.flows.items()
            if record_of(f).done and self.pauses.info(fid) is None
        ]
        for fid in gone:
            self._forget(fid)
        if self._wake is not None:
            self._wake.set()
        return gone

    # -- the bridge -----------------------------------------------------------------

    def set_filter(
        self, flow_filter: tuple[int, Callable[[http.HTTPFlow], bool]] | None
    ) -> list[str]:
        """Evaluate the screen's filter here, on the proxy loop, from now on; returns the
        ids of the kept flows that match it now."""
        self.flow_filter = flow_filter
        if flow_filter is None:
            return []
        flt = flow_filter[1]
        return [fid for fid, f in self.flows.items() if matches(flt, f)]

    def row(self, fid: str) -> object | None:
        """``fid`` as ``row_maker`` makes it, or None when the flow is not kept."""
        f = self.flows.get(fid)
        if f is None:
            return None
        return self.row_maker(f, self._seq[fid], self.pauses.info(fid), self.flow_filter)

    def view(self, fid: str) -> FlowView | None:
        f = self.flows.get(fid)
        if f is None:
            return None
        return snapshot(f, self._seq[fid], self.pauses.info(fid), self.flow_filter)

    def flush(self) -> None:
        if self.sink is None or not (self._dirty or self._removed):
            return
        dirty, self._dirty = self._dirty, set()
        removed, self._removed = self._removed, []
        views: list[Any] = []  # FlowView, or what ``row_maker`` makes
        for fid in sorted(dirty, key=self._seq.__getitem__):
            f = self.flows.get(fid)
            if f is not None:
                views.append(
                    self.row_maker(f, self._seq[fid], self.pauses.info(fid), self.flow_filter)
                )
        try:
            self.sink(views, removed)
        except Exception:
            log.exception("sink failed")

    async def _flush_loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            self.flush()
            await asyncio.sleep(self.interval)
