"""The screen's end of the control socket: a ``Controller`` for a proxy in another process.

Imports neither mitmproxy nor textual. ``Remote`` holds the connection: a reader thread
turns batches into ``FlowView`` snapshots for the screen and hands replies to whoever
waits for them. ``RemoteController`` implements ``widgets.model.Controller`` with
requests (every method is called on the UI thread and waits for its reply);
``RemoteRules`` stands in for the ``RulesFile`` the rules screen edits: every edit is
made by the proxy process, the one writer of the rules file.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from monitor import VERSION, wire
from policies import Rule, RulesFileError
from widgets.model import Answer, BodyView, FilterMatch, FlowView

REQUEST_TIMEOUT = 30.0
STREAM_WAIT = 0.2
"""How long the reader waits for the screen to take a chunk of a full state."""

Sink = Callable[[Sequence[FlowView], Sequence[str]], None]


class AttachError(Exception):
    """Cannot attach, or the proxy went away; the message is one line for people."""


class RemoteError(Exception):
    """The proxy refused a request; the message is its reason."""


def _connect(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except FileNotFoundError:
        sock.close()
        raise AttachError(f"no proxy at {path}") from None
    except ConnectionRefusedError:
        sock.close()
        raise AttachError(f"no proxy listens on {path} any more (it stopped)") from None
    except PermissionError:
        sock.close()
        raise AttachError(f"permission denied on {path}: it is another user's proxy") from None
    except OSError as e:
        sock.close()
        raise AttachError(f"cannot connect to {path}: {e.strerror or e}") from None
    return sock


def peek(path: str | Path, timeout: float = 3.0) -> wire.Welcome:
    """The proxy's ``Welcome`` (its counts included) without attaching: no ``Hello``, so
    the proxy does not count this as a screen."""
    sock = _connect(str(path), timeout)
    try:
        header = sock.recv(wire.HEADER_SIZE, socket.MSG_WAITALL)
        if len(header) < wire.HEADER_SIZE:
            raise AttachError(f"{path}: the proxy closed the connection")
        length = wire.frame_length(header)
        message = wire.decode_to_screen(sock.recv(length, socket.MSG_WAITALL))
    except (OSError, wire.WireError) as e:
        raise AttachError(f"{path}: no answer from a proxy ({e})") from None
    finally:
        sock.close()
    if isinstance(message, wire.Bye):
        raise AttachError(message.reason)
    if not isinstance(message, wire.Welcome):
        raise AttachError(f"{path}: not a waylay proxy")
    return message


class Remote:
    """One connection to a proxy's control socket."""

    def __init__(self, path: str | Path, *, timeout: float = 10.0) -> None:
        self.path = str(path)
        self._sock = _connect(self.path, timeout)
        self._send_lock = threading.Lock()
        try:
            message = self._handshake()
        except (OSError, wire.WireError) as e:
            self._sock.close()
            raise AttachError(f"{self.path}: no answer from a proxy ({e})") from None
        self.welcome: wire.Welcome = message
        self._sock.settimeout(None)
        self._ids = itertools.count(1)
        self._pending: dict[int, list[Any]] = {}
        self._lock = threading.Lock()
        self._sink: Sink | None = None
        self._buffer: list[tuple[list[FlowView], list[str]]] = []
        self._notify: Callable[[], None] | None = None
        self._waiting: dict[str, FlowView] = {}
        self._waiting_removed: list[str] = []
        self._notified = False
        self._taken = threading.Event()
        self.known: set[str] = set()
        self._reset_before: set[str] | None = None
        self._reset_ids: set[str] = set()
        self.closed: str | None = None
        """Why the connection ended (None while it is open)."""
        self.said_bye = False
        self.on_closed: Callable[[str], None] | None = None
        self.on_rules: Callable[[], None] | None = None
        self.rules = RemoteRules(self)
        self.batches = 0
        self._reader = threading.Thread(target=self._read_loop, name="waylay-remote", daemon=True)
        self._reader.start()

    # -- the connection -----------------------------------------------------------------

    def _read_exact(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self._sock.recv(min(n, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def _read_frame(self) -> bytes:
        header = self._read_exact(wire.HEADER_SIZE)
        return self._read_exact(wire.frame_length(header))

    def _handshake(self) -> wire.Welcome:
        try:
            payload = self._read_frame()
        except EOFError:
            raise AttachError(f"{self.path}: the proxy closed the connection") from None
        except TimeoutError:
            raise AttachError(f"{self.path}: the proxy did not say hello") from None
        try:
            message = wire.decode_to_screen(payload)
        except wire.WireError:
            message = None
        if isinstance(message, wire.Bye):
            raise AttachError(message.reason)
        if not isinstance(message, wire.Welcome) or message.protocol != wire.PROTOCOL:
            theirs = wire.peek_protocol(payload)
            raise AttachError(
                f"the proxy at {self.path} speaks control protocol {theirs}, this waylay "
                f"speaks {wire.PROTOCOL}: attach with the same waylay version as the proxy"
            )
        self._send(wire.Hello(protocol=wire.PROTOCOL, version=VERSION))
        return message

    def _send(self, message: msgspec.Struct) -> None:
        data = wire.frame(message)
        with self._send_lock:
            self._sock.sendall(data)

    def close(self) -> None:
        if self.closed is None:
            self.closed = "detached"
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()

    def _read_loop(self) -> None:
        reason = "the connection closed"
        try:
            while True:
                message = wire.decode_to_screen(self._read_frame())
                self._dispatch(message)
        except (EOFError, ConnectionError):
            pass
        except OSError as e:
            reason = f"the connection failed: {e.strerror or e}"
        except wire.WireError as e:
            reason = str(e)
        if self.closed is None:
            self.closed = reason
        with self._lock:
            pending, self._pending = self._pending, {}
        for slot in pending.values():
            slot[2] = f"the proxy is gone ({self.closed})"
            slot[0].set()
        if self.on_closed is not None:
            self.on_closed(self.closed)

    def _dispatch(self, message: Any) -> None:
        if isinstance(message, wire.Reply):
            with self._lock:
                slot = self._pending.pop(message.id, None)
            if slot is not None:
                slot[1], slot[2] = message.value, message.error
                slot[0].set()
        elif isinstance(message, wire.ViewBatch):
            self._batch(message)
        elif isinstance(message, wire.RulesState):
            self.rules._update(message)
            if self.on_rules is not None:
                self.on_rules()
        elif isinstance(message, wire.Bye):
            self.said_bye = True
            self.closed = message.reason

    def _batch(self, batch: wire.ViewBatch) -> None:
        views = batch.rows
        ids = [v.id for v in views]
        removed = list(batch.removed)
        if batch.reset:
            self._reset_before = set(self.known)
            self._reset_ids = set()
        if self._reset_before is not None:
            self._reset_ids.update(ids)
            if not batch.more:
                removed.extend(self._reset_before - self._reset_ids)
                self._reset_before = None
        self.known.update(ids)
        self.known.difference_update(removed)
        self.batches += 1
        with self._lock:
            if self._notify is not None:
                self._wait(views, removed)
                if self._notified:
                    notify = None
                else:
                    self._notified = True
                    self._taken.clear()
                    notify = self._notify
                waits = True
            else:
                waits = False
        if waits:
            if notify is not None:
                notify()
            if batch.more and not self._pending:
                # A full state comes in chunks: the screen takes one before the next is
                # decoded, so that it draws the first screenful at once instead of
                # sharing the interpreter with the decoding of 50,000 rows.
                self._taken.wait(STREAM_WAIT)
            return
        with self._lock:
            if self._sink is None:
                self._buffer.append((views, removed))
                return
            sink = self._sink
        sink(views, removed)

    def _wait(self, views: list[FlowView], removed: list[str]) -> None:
        for view in views:
            self._waiting[view.id] = view  # a flow keeps its place, with its latest view
        for fid in removed:
            self._waiting.pop(fid, None)
            self._waiting_removed.append(fid)

    def set_notify(self, notify: Callable[[], None]) -> None:
        """Coalesce batches: ``notify()`` (from the reader thread) says that ``take()``
        has something; until it is taken, further batches merge into it. A screen that
        falls behind then applies one merged batch instead of a queue of them."""
        with self._lock:
            buffered, self._buffer = self._buffer, []
            for views, removed in buffered:
                self._wait(views, removed)
            self._notify = notify
            self._notified = bool(self._waiting or self._waiting_removed)
        if self._notified:
            notify()

    def take(self) -> tuple[list[FlowView], list[str]]:
        """Everything that changed since the last ``take()`` (see ``set_notify``)."""
        with self._lock:
            views, removed = list(self._waiting.values()), self._waiting_removed
            self._waiting, self._waiting_removed = {}, []
            self._notified = False
        self._taken.set()
        return views, removed

    def set_sink(self, sink: Sink) -> None:
        """Where batches go from now on; those that came before are handed over first."""
        with self._lock:
            buffered, self._buffer = self._buffer, []
            self._sink = sink
        for views, removed in buffered:
            sink(views, removed)

    def request(self, op: str, timeout: float = REQUEST_TIMEOUT, **args: Any) -> Any:
        """Ask the proxy; returns its value or raises ``RemoteError`` (refused) or
        ``AttachError`` (the proxy is gone or does not answer)."""
        if self.closed is not None:
            raise AttachError(f"the proxy is gone ({self.closed})")
        rid = next(self._ids)
        slot: list[Any] = [threading.Event(), None, None]
        with self._lock:
            self._pending[rid] = slot
        self._taken.set()  # a reader waiting for the screen to take a chunk reads on
        try:
            self._send(wire.Request(rid, op, args))
        except OSError as e:
            with self._lock:
                self._pending.pop(rid, None)
            raise AttachError(f"the proxy is gone ({e.strerror or e})") from None
        if not slot[0].wait(timeout):
            with self._lock:
                self._pending.pop(rid, None)
            raise AttachError(f"the proxy did not answer within {timeout:g} s")
        if slot[2] is not None:
            if self.closed is not None and slot[2].startswith("the proxy is gone"):
                raise AttachError(slot[2])
            raise RemoteError(slot[2])
        return slot[1]


class RemoteController:
    """``widgets.model.Controller`` over the control socket."""

    def __init__(self, remote: Remote | None) -> None:
        self._remote = remote
        self._tokens = itertools.count(1)

    @property
    def remote(self) -> Remote:
        if self._remote is None:
            raise AttachError("not attached to a proxy yet")
        return self._remote

    @property
    def address(self) -> str:
        return self._remote.welcome.address if self._remote is not None else "not attached"

    @property
    def mode(self) -> str:
        return self._remote.welcome.mode if self._remote is not None else ""

    @property
    def ask_default(self) -> str:
        return self._remote.welcome.ask_default if self._remote is not None else "continue"

    def _ask(self, op: str, **args: Any) -> Any:
        try:
            return self.remote.request(op, **args)
        except (RemoteError, AttachError) as e:
            return str(e)

    def answer(self, flow_id: str, event: str, answer: Answer) -> str | None:
        return self._ask("answer", flow_id=flow_id, event=event, answer=wire.answer_args(answer))

    def preview_rule(self, flow_id: str, event: str, answer: Answer) -> str | None:
        return self._ask(
            "preview_rule", flow_id=flow_id, event=event, answer=wire.answer_args(answer)
        )

    def set_breakpoint(self, spec: str) -> str | None:
        return self._ask("set_breakpoint", spec=spec)

    def toggle_breakpoints(self) -> bool:
        try:
            return bool(self.remote.request("toggle_breakpoints"))
        except (RemoteError, AttachError):  # the proxy is gone: the screen closes anyway
            return False

    def check_filter(self, expr: str) -> str | None:
        return self._ask("check_filter", expr=expr)

    def apply_filter(self, expr: str) -> tuple[FilterMatch | None, str | None]:
        """Evaluated by the proxy process: now on every flow it holds, then on every row
        it sends this screen (``FlowView.filter_match``)."""
        expr = expr.strip()
        generation = next(self._tokens)
        try:
            matched = self.remote.request("filter", expr=expr, token=generation)
        except (RemoteError, AttachError) as e:
            return None, str(e)
        if not expr:
            return None, None
        return FilterMatch(generation, frozenset(matched or ())), None

    def clear_finished(self) -> None:
        try:
            self.remote.request("clear_finished")
        except (RemoteError, AttachError):
            pass

    def delete_flow(self, flow_id: str) -> str | None:
        return self._ask("delete_flow", flow_id=flow_id)

    def replay(self, flow_id: str) -> str | None:
        return self._ask("replay", flow_id=flow_id)

    def send_request(self, flow_id: str, changes: dict | None) -> str | None:
        return self._ask("send_request", flow_id=flow_id, changes=changes)

    def event_log(self, limit: int = 200) -> list[tuple[float, str, str]]:
        try:
            lines = self.remote.request("event_log", limit=limit)
        except (RemoteError, AttachError) as e:
            return [(time.time(), "error", f"the event log is out of reach: {e}")]
        return [(float(when), str(kind), str(text)) for when, kind, text in lines]

    def export_curl(self, flow_id: str) -> str:
        try:
            return self.remote.request("export_curl", flow_id=flow_id)
        except (RemoteError, AttachError) as e:
            raise ValueError(str(e)) from None

    def _write_file(self, op: str, path: str, flow_ids: list[str] | None, older: str | None) -> int:
        """Written by the proxy process (where the flows are), to ``path`` as this screen
        names it (made absolute here: the proxy may run in another folder)."""
        try:
            return int(
                self.remote.request(
                    op, timeout=300, path=os.path.abspath(path), flow_ids=flow_ids, older=older
                )
            )
        except (RemoteError, AttachError) as e:
            raise OSError(str(e)) from None

    def export_har(
        self, path: str, flow_ids: list[str] | None = None, older: str | None = None
    ) -> int:
        return self._write_file("export_har", path, flow_ids, older)

    def save_flows(
        self, path: str, flow_ids: list[str] | None = None, older: str | None = None
    ) -> int:
        return self._write_file("save_flows", path, flow_ids, older)

    def render_body(self, flow_id: str, part: str, mode: str) -> BodyView | None:
        try:
            got = self.remote.request("render_body", flow_id=flow_id, part=part, mode=mode)
        except (RemoteError, AttachError):
            return None
        return wire.body_view_of(got)

    def export_rules(self, fmt: str) -> tuple[str, list[str]]:
        try:
            text, warnings = self.remote.request("export_rules", fmt=fmt)
        except (RemoteError, AttachError) as e:
            raise ValueError(str(e)) from None
        return text, list(warnings)

    # -- beyond the Controller protocol --------------------------------------------------

    def detail(self, flow_id: str) -> FlowView | None:
        """The full snapshot of a flow (headers, bodies, trace), fetched now."""
        try:
            got = self.remote.request("detail", flow_id=flow_id)
        except (RemoteError, AttachError):
            return None
        view = msgspec.convert(got["row"], FlowView)
        detail = msgspec.convert(got["detail"], wire.Detail)
        return wire.with_detail(view, detail)

    def older_flows(self, expr: str, start: int, count: int) -> tuple[int, list[FlowView]]:
        """Flows of the proxy's session file older than those it holds (the proxy reads
        them from the file by range): how many match ``expr``, and the rows asked for."""
        try:
            total, rows = self.remote.request("older_flows", expr=expr, start=start, count=count)
        except (RemoteError, AttachError):
            return 0, []
        return int(total), [msgspec.convert(row, FlowView) for row in rows]

    def older_progress(self, expr: str) -> tuple[int, int] | None:
        try:
            got = self.remote.request("older_progress", timeout=5, expr=expr)
        except (RemoteError, AttachError):
            return None
        return (int(got[0]), int(got[1])) if got else None

    def stored_flow(self, flow_id: str) -> FlowView | None:
        return self.detail(flow_id)

    def stop_proxy(self) -> None:
        self.remote.request("stop")


class RemoteRules:
    """The proxy's rules as the screen sees them; edits are made by the proxy."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote
        self.path = Path(remote.welcome.rules)
        self.state = ""
        self.error: str | None = None
        self.hits: dict[str, int] = {}
        self._times_left: dict[str, int | None] = {}
        self._by_id: dict[str, Rule] = {}
        self._dumps: dict[str, dict] = {}
        self._order: list[str] = []
        self._transient: set[str] = set()
        self._file_order: list[str] = []

    def _update(self, s: wire.RulesState) -> None:
        by_id: dict[str, Rule] = {}
        dumps: dict[str, dict] = {}
        for raw in s.rules:
            rid = str(raw.get("id"))
            old = self._by_id.get(rid)
            if old is not None and self._dumps.get(rid) == raw:
                by_id[rid] = old
            else:
                # validated by the proxy already; constructing skips the validators (a
                # ``filter`` rule's would import mitmproxy into the screen)
                fields = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
                by_id[rid] = Rule.model_construct(None, **fields)
            dumps[rid] = raw
        self._by_id, self._dumps = by_id, dumps
        self._transient = set(s.transient)
        self._file_order = [r["id"] for r in s.rules if r.get("id") not in self._transient]
        self._order = [i for i in s.order if i in by_id]
        self.path = Path(s.path)
        self.state = s.state
        self.error = s.error
        self.hits = dict(s.hits)
        self._times_left = dict(s.times_left)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(self._by_id[i] for i in self._file_order if i in self._by_id)

    @property
    def transient(self) -> tuple[Rule, ...]:
        return tuple(r for i, r in self._by_id.items() if i in self._transient)

    def ordered(self) -> list[Rule]:
        return [self._by_id[i] for i in self._order]

    def get(self, rule_id: str) -> Rule | None:
        return self._by_id.get(rule_id)

    def is_transient(self, rule_id: str) -> bool:
        return rule_id in self._transient

    def times_left(self, rule_id: str) -> int | None:
        rule = self._by_id.get(rule_id)
        if rule is None or rule.times is None:
            return None
        return self._times_left.get(rule_id, rule.times)

    def _edit(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.remote.request("rules", method=method, args=list(args), kwargs=kwargs)
        except (RemoteError, AttachError) as e:
            raise RulesFileError(str(e)) from None

    def update(self, rule_id: str, **fields: Any) -> Rule | None:
        self._edit("update", rule_id, **fields)
        return self.get(rule_id)

    def set_enabled(self, rule_id: str, enabled: bool) -> Rule | None:
        self._edit("set_enabled", rule_id, enabled)
        return self.get(rule_id)

    def remove(self, rule_id: str) -> None:
        self._edit("remove", rule_id)

    def move(self, rule_id: str, delta: int) -> int:
        return int(self._edit("move", rule_id, delta) or 0)

    def persist_transient(self, rule_id: str, position: int | None = None) -> Rule | None:
        self._edit("persist_transient", rule_id, position)
        return self.get(rule_id)
