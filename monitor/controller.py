"""The screen's handle on the proxy (implements ``widgets.model.Controller``).

Called on the UI thread. Validation and remembering happen here, so an invalid answer
returns its error to the dialog and the flow stays paused; delivering the answer hops
to the proxy loop.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Iterator

from mitmproxy import flowfilter, http

from monitor.bodyview import render
from monitor.decider import edit
from monitor.events import EventLog
from monitor.exports import curl_command
from monitor.har import make_har, write_har
from monitor.pauses import Pauses
from monitor.proxy import EmbeddedProxy
from monitor.record import KEY, record_of
from monitor.recorder import Recorder
from monitor.remember import RememberError, new_rule_id, rule_fields, rule_toml
from monitor.save import flow_state, write_states
from monitor.snapshot import filter_error, snapshot
from monitor.store import SessionStore
from policies import MatchPatternError, Rule, RulesFile, compile_pattern
from policies.exchange import export_text
from policies.urls import url_error
from widgets.model import Answer, BodyView, FilterMatch, FlowView

log = logging.getLogger("waylay.controller")

BREAKPOINT_ID = "breakpoint"
BREAKPOINT_PRIORITY = 1_000_000


def validate_answer(event: str, answer: Answer) -> str | None:
    p = answer.params
    if answer.action in ("redirect", "rewrite"):
        return url_error(p.get("url"))
    if answer.action == "respond":
        try:
            status = int(p.get("status") or 200)
        except (TypeError, ValueError):
            return f"status {p.get('status')!r} is not a number"
        if not 100 <= status <= 599:
            return f"status {status} is not an HTTP status (100-599)"
    if answer.action == "continue" and p.get("url"):
        return url_error(p.get("url"))
    if answer.action == "credentials" and not p.get("username"):
        return "enter a username"
    return None


class ProxyController:
    def __init__(
        self,
        proxy: EmbeddedProxy,
        pauses: Pauses,
        recorder: Recorder,
        rules: RulesFile,
        *,
        extra_rule_fields=None,
        ask_default: str = "continue",
        events: EventLog | None = None,
        store: SessionStore | None = None,
    ) -> None:
        self.store = store
        """The ``--session`` file, where flows no longer in memory are found, or None."""
        self.ask_default = ask_default
        """What an unanswered pause gets at --ask-timeout (the dialogs name it)."""
        self.events = events
        """The session's event log (or None): what `l` shows on the screen."""
        self.proxy = proxy
        self.pauses = pauses
        self.recorder = recorder
        self.rules = rules
        self._breakpoint: Rule | None = None
        self._breakpoints_on = True
        self._filter_generation = 0
        # event -> callable(flow_id, answer) -> dict of extra rule fields (realm, fingerprint,
        # secret...); issues 5 and 6 register theirs.
        self.extra_rule_fields = extra_rule_fields or {}

    @property
    def address(self) -> str:
        if self.proxy.address is None:
            return "not listening"
        host, port = self.proxy.address
        return f"http://{host}:{port}"

    @property
    def mode(self) -> str:
        return self.proxy.settings.mode

    # -- answers --------------------------------------------------------------------

    def _rule_for(self, flow_id: str, event: str, answer: Answer) -> tuple[str, dict] | None:
        info = self.pauses.info(flow_id)  # an immutable PausedEvent: safe on any thread
        if info is None or info.event != event or answer.remember == "once":
            return None
        url = info.url
        extra = {}
        if event in self.extra_rule_fields:
            extra = self.extra_rule_fields[event](flow_id, answer)
        fields = rule_fields(url, event, answer, **extra)
        # The remembered rule must decide the next matching flow, so it goes first in the
        # file with the priority of the (saved) rule that asked: ties go to the earlier rule.
        rule = self.rules.get(info.asked_by) if info.asked_by else None
        if rule is not None and not self.rules.is_transient(rule.id) and rule.priority != 1:
            fields["priority"] = rule.priority
        return new_rule_id(self.rules, url, event), fields

    def preview_rule(self, flow_id: str, event: str, answer: Answer) -> str | None:
        try:
            made = self._rule_for(flow_id, event, answer)
        except (RememberError, KeyError) as e:
            return f"# cannot remember yet: {e}"
        if made is None:
            return None
        rule_id, fields = made
        error = self._check_rule(rule_id, fields)
        text = rule_toml(rule_id, fields)
        return text if error is None else f"{text}# not valid yet: {error}\n"

    def _check_rule(self, rule_id: str, fields: dict) -> str | None:
        try:
            Rule(id=rule_id, **fields)
        except Exception as e:  # pydantic ValidationError, MatchPatternError
            return _first_line(e)
        return None

    def answer(self, flow_id: str, event: str, answer: Answer) -> str | None:
        if self.pauses.info(flow_id) is None:
            return "this flow is no longer paused"
        if error := validate_answer(event, answer):
            return error
        params = dict(answer.params)
        if answer.remember != "once":
            secrets_before = set(self.rules.secrets.names())
            try:
                made = self._rule_for(flow_id, event, answer)
                if made is not None:
                    rule_id, fields = made
                    if error := self._check_rule(rule_id, fields):
                        raise ValueError(f"cannot remember: {error}")
                    self.rules.add(Rule(id=rule_id, **fields), position=0)
                    params["remembered_as"] = rule_id
            except Exception as e:  # RulesFileError (broken file), RememberError
                # a password stored for a rule that could not be saved must not linger
                for name in set(self.rules.secrets.names()) - secrets_before:
                    self.rules.secrets.delete(name)
                text = _first_line(e)
                return text if text.startswith("cannot remember") else f"not remembered: {text}"
        delivered = dataclasses.replace(answer, params=params, remember="once")
        self.proxy.call_soon(self._deliver, flow_id, event, delivered)
        return None

    def _deliver(self, flow_id: str, event: str, answer: Answer) -> None:
        if not self.pauses.answer(flow_id, event, answer):
            log.info("answer for %s/%s arrived after the pause ended", flow_id, event)

    # -- breakpoints ----------------------------------------------------------------

    def set_breakpoint(self, spec: str) -> str | None:
        spec = spec.strip()
        if not spec:
            self._breakpoint = None
            self._apply_breakpoints()
            return None
        fields: dict = {
            "event": "request",
            "action": "ask",
            "priority": BREAKPOINT_PRIORITY,
            "note": "breakpoint set with i on the flow list",  # true once saved too
        }
        if spec.startswith(("~", "!", "(")):
            try:
                flowfilter.parse(spec)
            except ValueError as e:
                return f"bad filter expression {spec!r}: {e}"
            fields["filter"] = spec
        else:
            try:
                compile_pattern(spec)
            except MatchPatternError as e:
                return f"{e} (or start a mitmproxy filter expression with ~)"
            fields["urls"] = [spec]
        try:
            rule = Rule(id=self.rules.new_id(BREAKPOINT_ID), **fields)
        except Exception as e:
            return _first_line(e)
        self._breakpoint = rule
        self._breakpoints_on = True
        self._apply_breakpoints()
        return None

    def toggle_breakpoints(self) -> bool:
        """Breakpoints on/off: the unsaved one and saved ``ask`` rules made from one stay
        as they are in the file (the rules screen turns those on and off)."""
        self._breakpoints_on = not self._breakpoints_on
        self._apply_breakpoints()
        return self._breakpoints_on

    def _apply_breakpoints(self) -> None:
        bp = self._breakpoint
        if bp is not None and not self.rules.is_transient(bp.id) and self.rules.get(bp.id):
            self._breakpoint = bp = None  # saved from the rules screen: now a file rule
        self.rules.set_transient([bp] if bp is not None and self._breakpoints_on else [])

    # -- the list -------------------------------------------------------------------

    def check_filter(self, expr: str) -> str | None:
        return filter_error(expr)

    def apply_filter(self, expr: str) -> tuple[FilterMatch | None, str | None]:
        """The expression is parsed here and evaluated on the proxy loop, where the live
        flows are: now for the kept flows, then for every snapshot."""
        expr = expr.strip()
        if not expr:
            self._on_loop(self.recorder.set_filter, None)
            return None, None
        try:
            flt = flowfilter.parse(expr)
        except ValueError as e:
            return None, f"bad filter expression: {e}"
        self._filter_generation += 1
        generation = self._filter_generation
        matching = self._on_loop(self.recorder.set_filter, (generation, flt))
        return FilterMatch(generation, frozenset(matching)), None

    def clear_finished(self) -> None:
        self.proxy.call_soon(self.recorder.clear_finished)

    def delete_flow(self, flow_id: str) -> str | None:
        """Drop one finished flow from the store (and the screen's list)."""

        def drop() -> str | None:
            flow = self.recorder.flows.get(flow_id)
            if flow is None:
                return "that flow is no longer kept"
            if self.pauses.info(flow_id) is not None or not record_of(flow).done:
                return "only a finished flow can be deleted (decide or wait for it first)"
            self.recorder.forget(flow_id)
            return None

        return self._on_loop(drop)

    # -- replay ---------------------------------------------------------------------

    def replay(self, flow_id: str) -> str | None:
        """Send the flow's request again through the proxy (rules apply): a new flow."""
        return self.send_request(flow_id, None)

    def send_request(self, flow_id: str, changes: dict | None) -> str | None:
        """A copy of the flow, with ``changes`` (method, url, headers, body) applied,
        sent through the proxy as a new flow; returns an error message or None. The
        live flow is read and copied on the proxy loop."""
        if changes is not None and (
            error := validate_answer("request", Answer("continue", changes))
        ):
            return error

        def go() -> str | None:
            flow = self.flow_or_stored(flow_id)
            if flow is None:
                return "that flow is no longer kept"
            if not isinstance(flow, http.HTTPFlow) or flow.request is None:
                return "only an HTTP flow can be sent again"
            if flow.websocket is not None:
                return "a WebSocket cannot be replayed"
            if flow.request.raw_content is None:
                return "its request body is no longer kept"
            copy = flow.copy()
            copy.metadata.pop(KEY, None)
            copy.response = None
            copy.error = None
            copy.websocket = None
            if changes:
                edit(copy, changes)
            seq = self.recorder.seq_of(flow_id)
            record_of(copy).note(f"replay of #{seq}" if seq else "a replay")
            assert self.proxy.master is not None
            self.proxy.master.commands.call("replay.client", [copy])
            return None

        try:
            return self._on_loop(go)
        except Exception as e:  # noqa: BLE001 - the screen shows it, the proxy goes on
            return f"could not send it: {_first_line(e)}"

    # -- the event log ---------------------------------------------------------------

    def event_log(self, limit: int = 200) -> list[tuple[float, str, str]]:
        """The last ``limit`` events, oldest first: (time, kind, text)."""
        if self.events is None:
            return []
        return self.events.tail(limit)

    # -- export ---------------------------------------------------------------------

    def _on_loop(self, fn, *args, timeout: float = 10):
        """Run ``fn`` on the proxy loop (live flows are only read there) and wait."""

        async def call():
            return fn(*args)

        if self.proxy.loop is None or not self.proxy.running:
            return fn(*args)
        return self.proxy.run_coroutine(call()).result(timeout)

    def flow_or_stored(self, flow_id: str) -> http.HTTPFlow | None:
        """The live flow (on the proxy loop), else one read back from the session file
        (one row by its indexed id)."""
        flow = self.recorder.flows.get(flow_id)
        if flow is None and self.store is not None and self.store.writing:
            found = self.store.flow_by_id(flow_id)
            flow = found[1] if found is not None else None
        return flow

    def export_curl(self, flow_id: str) -> str:
        def curl() -> str:
            flow = self.flow_or_stored(flow_id)
            if flow is None:
                raise ValueError("that flow is no longer kept")
            return curl_command(flow)

        return self._on_loop(curl)

    def _live_for_export(self, flow_ids: list[str] | None) -> tuple[int, list[http.HTTPFlow]]:
        """(on the proxy loop) The seq below which flows are kept only in the session
        file, and the flows in memory chosen (all, or ``flow_ids``). One moment for both:
        a flow evicted later is in the list; one evicted before is in the file."""
        below = self.older_below() if self.store is not None else 0
        flows = self.recorder.flows
        chosen = (
            list(flows.values()) if flow_ids is None else [flows[i] for i in flow_ids if i in flows]
        )
        return below, [f for f in chosen if isinstance(f, http.HTTPFlow)]

    def _older_for_export(self, older: str | None, below: int) -> Iterator[http.HTTPFlow]:
        """The session file's flows with seq < ``below`` that match ``older`` (as the list
        shows them), read back from the file; none when ``older`` is None."""
        if older is None or self.store is None or not self.store.writing:
            return iter(())
        return self.store.older_http_flows(older, below)

    def export_har(
        self, path: str, flow_ids: list[str] | None = None, older: str | None = None
    ) -> int:
        def live() -> tuple[int, dict]:
            below, chosen = self._live_for_export(flow_ids)
            return below, make_har(chosen)

        below, har = self._on_loop(live, timeout=300)
        stored = make_har(self._older_for_export(older, below))["log"]["entries"]
        har["log"]["entries"][:0] = stored  # oldest first, as the list
        return write_har(har, path)

    def save_flows(
        self, path: str, flow_ids: list[str] | None = None, older: str | None = None
    ) -> int:
        """``w``: all (or the given) flows to ``path`` in mitmproxy's flow format, the
        session file's older ones (``older``) first."""

        def live() -> tuple[int, list[dict]]:
            # the flows' state is read on the proxy loop; the file is written here
            below, chosen = self._live_for_export(flow_ids)
            return below, [flow_state(f) for f in chosen]

        below, states = self._on_loop(live, timeout=300)
        stored = (flow_state(f) for f in self._older_for_export(older, below))
        return write_states(itertools.chain(stored, states), path)

    def render_body(self, flow_id: str, part: str, mode: str) -> BodyView | None:
        """The detail pane's body in a view mode, rendered on the proxy loop."""

        def run() -> BodyView | None:
            flow = self.recorder.flows.get(flow_id)
            if flow is None:
                return None
            return render(flow.request if part == "request" else flow.response, flow, mode)

        view = self._on_loop(run)
        if view is None and self.store is not None:  # a flow kept only in the session file
            found = self.store.flow_by_id(flow_id)
            if found is not None:
                flow = found[1]
                return render(flow.request if part == "request" else flow.response, flow, mode)
        return view

    # -- flows kept only in the session file ----------------------------------------------

    def older_below(self) -> int:
        """The store seq below which no flow is in memory any more (on the proxy loop):
        the smallest seq of the flows in memory, else the next seq."""
        assert self.store is not None
        below = self.store._next_seq
        for flow in self.recorder.flows.values():
            seq = record_of(flow).store_seq
            if seq is not None and seq < below:
                below = seq
        return below

    def older_flows(self, expr: str, start: int, count: int) -> tuple[int, list[FlowView]]:
        """Flows of the session file older than every flow in memory that match ``expr``:
        how many, and the rows at ``[start, start + count)`` (read from the file)."""
        if self.store is None or not self.store.writing:
            return 0, []  # no file, or not open yet
        return self.store.older(expr, self._on_loop(self.older_below), start, count)

    def older_progress(self, expr: str) -> tuple[int, int] | None:
        """(done, all) of ``older_flows`` running ``expr`` now, or None."""
        return self.store.older_progress.get(expr.strip()) if self.store is not None else None

    def stored_flow(self, flow_id: str) -> FlowView | None:
        """The full snapshot of a flow read back from the session file."""
        if self.store is None:
            return None
        found = self.store.flow_by_id(flow_id)
        if found is None:
            return None
        seq, flow = found
        return snapshot(flow, seq)

    def export_rules(self, fmt: str) -> tuple[str, list[str]]:
        return export_text(self.rules, fmt)


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    if hasattr(e, "errors"):
        try:
            errs = e.errors()  # pydantic
            if errs:
                err = errs[0]
                loc = ".".join(str(x) for x in err.get("loc", ()))
                return f"{loc}: {err.get('msg')}" if loc else str(err.get("msg"))
        except Exception:
            pass
    return text.splitlines()[0] if text else type(e).__name__
