"""The control socket: screens attach to a running proxy process through it.

Runs in the proxy process, on the proxy's event loop (where live flows may be read), and
never imports textual. Per connection:

- the peer's uid is checked (SO_PEERCRED) before anything is said: only the user the
  proxy runs as may attach;
- the proxy sends ``Welcome``, the screen answers ``Hello``; another protocol gets one
  ``Bye`` with a readable reason;
- the screen gets the full state (every row the proxy holds, oldest first: a first
  frame of a screenful, so that it draws at once, then chunks made between flows of
  traffic), then a ``Batch`` every ``batch_interval`` (200 ms) with the rows that
  changed. Each screen has a bounded
  queue: one that falls behind (stuck terminal, slow link) has its queue dropped and
  gets the full state again once it reads, so it never slows the proxy nor grows
  without limit;
- requests (answers, breakpoints, filters, details, exports, rule edits) are served
  here; the proxy process is the one writer of the rules file.

While no screen is attached the flow store makes no snapshots at all (headless speed),
and a pause gets its headless outcome at once unless the proxy runs with ``--hold``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import msgspec
from mitmproxy import flowfilter

from monitor import wire
from monitor.bodyview import render
from monitor.pauses import Ended
from monitor.rows import flow_row
from monitor.sockets import (
    ProxyInfo,
    SocketDirError,
    ensure_private_dir,
    is_alive,
    refusal,
    remove_files,
    runtime_dir,
    socket_path,
    write_discovery,
)

log = logging.getLogger("waylay.control")

QUEUE_FRAMES = 50
"""Batches a screen may have waiting (10 s at 200 ms) before it is re-synchronised."""
QUEUE_BYTES = 16 * 1024 * 1024
FIRST_CHUNK = 200
"""Rows of the first frame of a full state: a screenful, drawn before the rest comes."""
CHUNK_ROWS = 2_000
"""Rows per further frame of a full state. Rows are made while they are sent, a chunk at a
time (about 15 ms of the proxy loop; the first time a flow is shown its resource type is
inferred too), with traffic let through between chunks."""
HELLO_TIMEOUT = 10.0
RULE_EDITS = frozenset({"update", "set_enabled", "remove", "move", "persist_transient"})
AT_ONCE = frozenset({"detail", "render_body", "check_filter"})
"""Requests answered as soon as they are read, the reply written straight away: what the
detail pane waits for while a key is pressed. The proxy loop runs them either way; on a
busy loop a task, a thread and the write loop each cost a turn behind traffic."""


class _Client:
    def __init__(self, writer: asyncio.StreamWriter, number: int) -> None:
        self.writer = writer
        self.number = number
        self.queue: collections.deque[bytes] = collections.deque()
        self.queued_bytes = 0
        self.replies: collections.deque[bytes] = collections.deque()
        self.wake = asyncio.Event()
        self.resync = True
        self.resyncs = 0
        self.filter: tuple[int, Any] | None = None  # (token, compiled mitmproxy filter)

    def data(self, payload: bytes) -> None:
        if self.resync:
            return  # the full state it gets next includes this
        if len(self.queue) >= QUEUE_FRAMES or self.queued_bytes + len(payload) > QUEUE_BYTES:
            self.queue.clear()
            self.queued_bytes = 0
            self.resync = True
            self.resyncs += 1
            log.info("screen %d fell behind: it gets the current state instead", self.number)
        else:
            self.queue.append(payload)
            self.queued_bytes += len(payload)
        self.wake.set()

    def reply(self, payload: bytes) -> None:
        self.replies.append(payload)
        self.wake.set()


class ControlServer:
    """The control socket of one proxy process (a ``Session`` that is running)."""

    def __init__(
        self,
        session: Any,
        *,
        hold: bool = False,
        err: TextIO | None = None,
        on_stop: Callable[[], None] | None = None,
        folder: Path | None = None,
        version: str = "",
    ) -> None:
        self.session = session
        self.recorder = session.recorder
        self.pauses = session.pauses
        self.controller = session.controller
        self.rules = session.rules
        self.hold = hold
        self.err = err if err is not None else sys.stderr
        self.on_stop = on_stop
        self.folder = folder
        self.version = version
        self.uid = os.getuid()
        self.path: Path | None = None
        self.info: ProxyInfo | None = None
        self.started = time.time()
        self.clients: set[_Client] = set()
        self.rows: dict[str, wire.Row] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ready: asyncio.Event | None = None
        self._answered: dict[str, float] = {}
        self._told_waiting = False
        self._numbers = 0
        self._rules_signature: object = None
        self._tasks: set[asyncio.Task] = set()

    # -- lifecycle (main thread) --------------------------------------------------------

    def start(self) -> Path:
        """Bind the socket (after ``session.start()``), serve it on the proxy loop and
        write the discovery file. Raises ``SocketDirError`` with a readable message."""
        folder = ensure_private_dir(self.folder or runtime_dir())
        path = socket_path(folder)
        if path.exists():
            if is_alive(path):
                raise SocketDirError(f"another proxy already listens on {path}")
            remove_files(path)  # a dead proxy's socket that had our pid
        if len(str(path).encode()) > 100:
            raise SocketDirError(
                f"the control socket path {path} is too long for a Unix socket; "
                "set XDG_RUNTIME_DIR to a shorter folder"
            )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.listen(16)
        sock.setblocking(False)
        self.path = path
        self.session.proxy.run_coroutine(self._serve(sock)).result(10)
        settings = self.session.settings
        address = self.controller.address
        port = int(address.rsplit(":", 1)[-1]) if address.startswith("http") else 0
        self.info = ProxyInfo(
            pid=os.getpid(),
            socket=str(path),
            port=port,
            address=address,
            mode=settings.mode,
            rules=str(self.rules.path),
            started=self.started,
            hold=self.hold,
        )
        write_discovery(self.info)
        return path

    def stop(self, reason: str = "the proxy stopped") -> None:
        """Say goodbye to every screen, close the socket, remove the files. Call before
        ``session.stop()`` (this runs on the proxy loop)."""
        if self.path is not None:
            remove_files(self.path)
        proxy = self.session.proxy
        if proxy.loop is not None and proxy.running:
            with contextlib.suppress(Exception):
                proxy.run_coroutine(self._shutdown(reason)).result(5)

    async def _serve(self, sock: socket.socket) -> None:
        self.loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self.recorder.sink = None  # no snapshots while nobody watches
        original = self.pauses.on_change

        def pause_changed(key: str) -> None:
            original(key)
            self._pause_changed(key)

        self.pauses.on_change = pause_changed
        self._set_headless()
        previous_rules_hook = self.session.on_rules_changed

        def rules_changed(rules: Any) -> None:  # the watcher's thread
            if previous_rules_hook is not None:
                previous_rules_hook(rules)
            if self.loop is not None:
                with contextlib.suppress(RuntimeError):
                    self.loop.call_soon_threadsafe(self._broadcast_rules)

        self.session.on_rules_changed = rules_changed
        self._server = await asyncio.start_unix_server(self._handle, sock=sock)
        self._spawn(self._rules_ticker())
        self._spawn(self._flush_loop())

    async def _shutdown(self, reason: str) -> None:
        if self._server is not None:
            self._server.close()
        bye = wire.frame(wire.Bye(reason))
        for c in list(self.clients):
            with contextlib.suppress(Exception):
                c.writer.write(bye)
                await asyncio.wait_for(c.writer.drain(), 1)
            c.writer.close()
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- who is watching ----------------------------------------------------------------

    def _set_headless(self) -> None:
        """Pauses wait only when a screen can answer them (or with --hold)."""
        self.pauses.headless = not (self.clients or self.hold)

    def _pause_changed(self, key: str) -> None:
        if self.clients or not self.hold or self._told_waiting:
            return
        if self.pauses.info(key) is not None:
            self._told_waiting = True
            print(
                f"waylay: a flow is waiting for a screen: waylay attach {self.path} "
                f"(it waits up to {self.pauses.timeout:g} s)",
                file=self.err,
                flush=True,
            )

    def _activate(self) -> None:
        """The first screen: rows of changed flows are made from now on; the row cache
        fills as full states are sent (``_send_full_state``)."""
        assert self._ready is not None
        self.recorder.row_maker = flow_row
        self.recorder.sink = self._on_batch
        self.rows = {}
        self._ready.set()

    def _deactivate(self) -> None:
        assert self._ready is not None
        self.recorder.sink = None
        self.rows = {}
        self._ready.clear()
        if not self.hold:
            # nobody to ask any more: what waits gets its headless outcome now
            self.pauses.end_all(Ended.HEADLESS)

    # -- connections --------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        why = refusal(sock, self.uid)
        if why is not None:
            log.warning("refused a screen: %s", why)
            print(f"waylay: refused a screen: {why}", file=self.err, flush=True)
            await self._bye(writer, why)
            return
        writer.write(wire.frame(self._welcome()))
        try:
            payload = await asyncio.wait_for(_read_frame(reader), HELLO_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, wire.WireError):
            writer.close()
            return
        protocol = wire.peek_protocol(payload)
        if protocol != wire.PROTOCOL:
            await self._bye(
                writer,
                f"this proxy speaks control protocol {wire.PROTOCOL} (waylay {self.version}), "
                f"the screen speaks {protocol}: attach with the same waylay version",
            )
            return
        self._numbers += 1
        client = _Client(writer, self._numbers)
        first = not self.clients
        self.clients.add(client)
        self._told_waiting = False
        self._set_headless()
        writer_task = self._spawn(self._write_loop(client))
        if first:
            self._activate()
        client.reply(wire.frame(self._rules_state()))
        client.wake.set()
        try:
            while True:
                payload = await _read_frame(reader, wire.MAX_CLIENT_FRAME)
                message = wire.decode_to_proxy(payload)
                if isinstance(message, wire.Request):
                    if message.op in AT_ONCE:
                        self._serve_at_once(client, message)
                    else:
                        self._spawn(self._serve_request(client, message))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except wire.WireError as e:
            log.warning("screen %d: %s", client.number, e)
        finally:
            writer_task.cancel()
            self.clients.discard(client)
            writer.close()
            if not self.clients:
                self._deactivate()
            self._set_headless()

    def _welcome(self) -> wire.Welcome:
        return wire.Welcome(
            protocol=wire.PROTOCOL,
            version=self.version,
            pid=os.getpid(),
            address=self.controller.address,
            mode=self.session.settings.mode,
            rules=str(self.rules.path),
            started=self.started,
            hold=self.hold,
            flows=len(self.recorder.flows),
            paused=len(self.pauses),
            ask_timeout=self.pauses.timeout,
            ask_default=self.controller.ask_default,
        )

    async def _bye(self, writer: asyncio.StreamWriter, reason: str) -> None:
        with contextlib.suppress(Exception):
            writer.write(wire.frame(wire.Bye(reason)))
            await asyncio.wait_for(writer.drain(), 2)
        writer.close()

    async def _write_loop(self, c: _Client) -> None:
        assert self._ready is not None
        w = c.writer
        try:
            while True:
                await c.wake.wait()
                c.wake.clear()
                while c.replies or c.resync or c.queue:
                    if c.replies:
                        w.write(c.replies.popleft())
                    elif c.resync:
                        await self._ready.wait()
                        c.resync = False
                        c.queue.clear()
                        c.queued_bytes = 0
                        await self._send_full_state(c)
                    else:
                        payload = c.queue.popleft()
                        c.queued_bytes -= len(payload)
                        w.write(payload)
                    await w.drain()
        except (ConnectionError, asyncio.CancelledError):
            return

    async def _send_full_state(self, c: _Client) -> None:
        """Every row, oldest first, in chunks: the first a screenful, so that the screen
        draws before the rest is made. Batches that come meanwhile wait in the client's
        queue and go out after the last chunk (their rows are as new as the chunks' or
        newer); replies go out between chunks. A client that falls behind meanwhile
        (``resync`` again) gets a new full state instead of the rest of this one."""
        w = c.writer
        ids = list(self.recorder.flows)  # arrival order
        cache = self.rows
        start, size, first = 0, FIRST_CHUNK, True
        while True:
            rows = []
            for fid in ids[start : start + size]:
                row = cache.get(fid)
                if row is None:
                    row = self.recorder.row(fid)
                    if row is None:  # gone meanwhile (its removal is in the queue)
                        continue
                    cache[fid] = row
                rows.append(row)
            start += size
            if c.filter is not None:
                rows = self._judged(rows, *c.filter)
            last = start >= len(ids)
            w.write(wire.frame(wire.Batch(rows, reset=first, more=not last)))
            await w.drain()
            if last or c.resync:
                return
            while c.replies:
                w.write(c.replies.popleft())
            await asyncio.sleep(0)  # traffic goes on while 50,000 rows are made
            size, first = CHUNK_ROWS, False

    # -- batches (proxy loop) -----------------------------------------------------------

    async def _flush_loop(self) -> None:
        """The batch cadence: what changed goes out every ``batch_interval`` (200 ms)."""
        interval = self.session.settings.batch_interval
        while True:
            await asyncio.sleep(interval)
            if self.clients and self.recorder.sink is not None:
                self.recorder.flush()

    def _on_batch(self, rows: list[wire.Row], removed: list[str]) -> None:
        """The recorder's sink (its ``row_maker`` is ``flow_row`` while screens watch)."""
        for r in rows:
            self.rows[r.id] = r
        for fid in removed:
            self.rows.pop(fid, None)
            self._answered.pop(fid, None)
        payload = wire.frame(wire.Batch(rows, list(removed)))
        for c in self.clients:
            if c.filter is not None and not c.resync:
                # a screen with a ~ filter gets the verdicts of its own filter on its rows
                c.data(wire.frame(wire.Batch(self._judged(rows, *c.filter), list(removed))))
            else:
                c.data(payload)

    def _judged(self, rows: list[wire.Row], generation: int, flt: Any) -> list[wire.Row]:
        flows = self.recorder.flows
        return [
            msgspec.structs.replace(r, filter_match=(generation, _matches(flt, flows.get(r.id))))
            for r in rows
        ]

    def _matching(self, flt: Any, ids: list[str]) -> list[str]:
        flows = self.recorder.flows
        return [fid for fid in ids if _matches(flt, flows.get(fid))]

    # -- the rules ----------------------------------------------------------------------

    def _rules_state(self) -> wire.RulesState:
        rules = self.rules
        file_rules = list(rules.rules)
        transient = list(rules.transient)
        everything = file_rules + transient
        return wire.RulesState(
            path=str(rules.path),
            state=rules.state,
            error=rules.error,
            rules=[r.model_dump(exclude_defaults=True) for r in everything],
            transient=[r.id for r in transient],
            order=[r.id for r in rules.ordered()],
            hits=dict(rules.hits),
            times_left={r.id: rules.times_left(r.id) for r in everything if r.times is not None},
        )

    def _broadcast_rules(self) -> None:
        if not self.clients:
            return
        state = self._rules_state()
        self._rules_signature = (
            state.state,
            state.error,
            state.order,
            state.hits,
            state.times_left,
        )
        payload = wire.frame(state)
        for c in self.clients:
            c.reply(payload)

    async def _rules_ticker(self) -> None:
        """Hits and times left move with traffic: screens hear of it once a second."""
        while True:
            await asyncio.sleep(1.0)
            if not self.clients:
                continue
            rules = self.rules
            signature = (
                rules.state,
                rules.error,
                [r.id for r in rules.ordered()],
                dict(rules.hits),
                {r.id: rules.times_left(r.id) for r in rules.ordered() if r.times is not None},
            )
            if signature != self._rules_signature:
                self._broadcast_rules()

    # -- requests -----------------------------------------------------------------------

    async def _serve_request(self, c: _Client, req: wire.Request) -> None:
        try:
            reply = wire.Reply(req.id, value=await self._op(c, req.op, req.args or {}))
        except Exception as e:  # noqa: BLE001 - the screen gets it in one line
            reply = _failed(req, e)
        c.reply(_reply_frame(reply))

    def _serve_at_once(self, c: _Client, req: wire.Request) -> None:
        """An ``AT_ONCE`` request, answered now (on the proxy loop, where flows are read);
        one about a flow not in memory is served as the others are."""
        try:
            reply = wire.Reply(req.id, value=self._op_at_once(req.op, req.args or {}))
        except _Later:
            self._spawn(self._serve_request(c, req))
            return
        except Exception as e:  # noqa: BLE001 - the screen gets it in one line
            reply = _failed(req, e)
        with contextlib.suppress(ConnectionError, RuntimeError):
            c.writer.write(_reply_frame(reply))

    def _op_at_once(self, op: str, a: dict[str, Any]) -> Any:
        if op == "detail":
            view = self.recorder.view(str(a["flow_id"]))
            if view is None:  # perhaps kept only in the session file: read there
                raise _Later
            return {"row": wire.row_of(view), "detail": wire.detail_of(view)}
        if op == "render_body":
            part, mode = str(a["part"]), str(a["mode"])
            if part not in ("request", "response"):
                raise _OpError(f"no such body: {part!r}")
            flow = self.recorder.flows.get(str(a["flow_id"]))
            if flow is None:
                raise _Later
            return render(flow.request if part == "request" else flow.response, flow, mode)
        if op == "check_filter":
            try:
                flowfilter.parse(str(a["expr"]))
            except ValueError as e:
                return f"bad filter expression: {e}"
            return None
        raise _OpError(f"unknown request {op!r}")

    async def _op(self, c: _Client, op: str, a: dict[str, Any]) -> Any:
        ctl = self.controller
        if op in AT_ONCE:
            try:
                return self._op_at_once(op, a)
            except _Later:
                pass
        if op == "detail":
            fid = str(a["flow_id"])
            view = self.recorder.view(fid)
            if view is None:  # a flow kept only in the session file (--session)
                view = await asyncio.to_thread(ctl.stored_flow, fid)
            if view is None:
                raise _OpError("that flow is no longer kept")
            return {"row": wire.row_of(view), "detail": wire.detail_of(view)}
        if op == "render_body":
            part, mode = str(a["part"]), str(a["mode"])
            if part not in ("request", "response"):
                raise _OpError(f"no such body: {part!r}")
            return await asyncio.to_thread(ctl.render_body, str(a["flow_id"]), part, mode)
        if op == "older_progress":
            store = ctl.store
            got = store.older_progress.get(str(a.get("expr") or "").strip()) if store else None
            return list(got) if got is not None else None
        if op == "older_flows":
            store = ctl.store
            if store is None or not store.writing:
                return [0, []]
            total, views = await asyncio.to_thread(
                store.older,
                str(a.get("expr") or ""),
                ctl.older_below(),
                int(a.get("start", 0)),
                min(int(a.get("count", 0)), 5000),
            )
            return [total, [wire.row_of(v) for v in views]]
        if op == "answer":
            fid, event = str(a["flow_id"]), str(a["event"])
            answer = wire.answer_from(a["answer"])
            info = self.pauses.info(fid)
            if info is None or info.event != event:
                return "this flow is no longer paused"
            if self._answered.get(fid) == info.since:
                return "another screen answered this flow first"
            self._answered[fid] = info.since
            error = await asyncio.to_thread(ctl.answer, fid, event, answer)
            if error is not None and self._answered.get(fid) == info.since:
                del self._answered[fid]
            return error
        if op == "preview_rule":
            answer = wire.answer_from(a["answer"])
            return await asyncio.to_thread(
                ctl.preview_rule, str(a["flow_id"]), str(a["event"]), answer
            )
        if op == "set_breakpoint":
            error = await asyncio.to_thread(ctl.set_breakpoint, str(a.get("spec", "")))
            self._broadcast_rules()
            return error
        if op == "toggle_breakpoints":
            on = await asyncio.to_thread(ctl.toggle_breakpoints)
            self._broadcast_rules()
            return on
        if op == "filter":
            expr = a.get("expr")
            if not expr:
                c.filter = None
                return []
            try:
                flt = flowfilter.parse(str(expr))
            except ValueError as e:
                raise _OpError(f"bad filter expression: {e}") from None
            c.filter = (int(a["token"]), flt)
            return self._matching(flt, list(self.recorder.flows))
        if op == "clear_finished":
            self.recorder.clear_finished()
            return None
        if op == "delete_flow":
            return await asyncio.to_thread(ctl.delete_flow, str(a["flow_id"]))
        if op == "replay":
            return await asyncio.to_thread(ctl.replay, str(a["flow_id"]))
        if op == "send_request":
            changes = a.get("changes")
            return await asyncio.to_thread(
                ctl.send_request, str(a["flow_id"]), None if changes is None else dict(changes)
            )
        if op == "event_log":
            return [list(line) for line in ctl.event_log(int(a.get("limit", 200)))]
        if op == "export_curl":
            from monitor.exports import curl_command

            flow = ctl.flow_or_stored(str(a["flow_id"]))
            if flow is None:
                raise _OpError("that flow is no longer kept")
            return curl_command(flow)
        if op in ("export_har", "save_flows"):
            ids = a.get("flow_ids")
            older = a.get("older")
            write = ctl.export_har if op == "export_har" else ctl.save_flows
            try:
                return await asyncio.to_thread(
                    write,
                    str(a["path"]),
                    None if ids is None else [str(i) for i in ids],
                    None if older is None else str(older),
                )
            except OSError as e:  # its message is for people (the path and why)
                raise _OpError(str(e)) from None
        if op == "export_rules":
            text, warnings = await asyncio.to_thread(ctl.export_rules, str(a["fmt"]))
            return [text, list(warnings)]
        if op == "rules":
            method = str(a["method"])
            if method not in RULE_EDITS:
                raise _OpError(f"no such rules edit: {method}")
            args = list(a.get("args") or [])
            kwargs = dict(a.get("kwargs") or {})
            try:
                result = await asyncio.to_thread(getattr(self.rules, method), *args, **kwargs)
            finally:
                self._broadcast_rules()
            return result if isinstance(result, int | type(None)) else None
        if op == "stop":
            print("waylay: stopped from a screen", file=self.err, flush=True)
            if self.on_stop is not None:
                self.on_stop()
            return None
        raise _OpError(f"unknown request {op!r}")


class _OpError(Exception):
    """A request that cannot be served; its message goes back to the screen."""


class _Later(Exception):
    """An ``AT_ONCE`` request that needs the session file (a flow not in memory)."""


def _failed(req: wire.Request, e: Exception) -> wire.Reply:
    if isinstance(e, _OpError):
        return wire.Reply(req.id, error=str(e))
    if isinstance(e, ValueError | KeyError | TypeError):
        return wire.Reply(req.id, error=_first_line(e))
    log.error("request %s failed", req.op, exc_info=e)
    return wire.Reply(req.id, error=f"{type(e).__name__}: {_first_line(e)}")


def _reply_frame(reply: wire.Reply) -> bytes:
    try:
        return wire.frame(reply)
    except (TypeError, ValueError) as e:  # a value msgpack cannot carry
        return wire.frame(wire.Reply(reply.id, error=f"cannot send the reply: {e}"))


def _matches(flt: Any, flow: Any) -> bool:
    if flow is None:
        return False
    try:
        return bool(flt(flow))
    except Exception:  # a filter that cannot read this flow does not match it
        return False


async def _read_frame(reader: asyncio.StreamReader, limit: int = wire.MAX_FRAME) -> bytes:
    header = await reader.readexactly(wire.HEADER_SIZE)
    return await reader.readexactly(wire.frame_length(header, limit))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
