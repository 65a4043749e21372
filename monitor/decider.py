"""Rules acting on live traffic: the request, response, redirect and cookies events.

For each event the rules decide (``RulesFile.decide``); ``ask`` pauses the flow until a
person answers (``Pauses``), and the answer is applied exactly like a rule's action.
Every decision is recorded on the flow (rule id, trace, notes) for the screen, the
headless log and HAR export.
"""

from __future__ import annotations

import logging

from mitmproxy import http

from monitor.destination import destination_url
from monitor.events import EventLog
from monitor.pauses import Ended, Pauses
from monitor.record import flow_type, record_of
from monitor.recorder import Recorder
from monitor.retries import Retries
from policies import Decision, EventDetails, RulesFile
from policies.printable import printable

log = logging.getLogger("waylay.decider")


def cancel(flow: http.HTTPFlow, why: str) -> None:
    """Abort: the client gets no response (the connection is closed), like a browser's
    ``cancel``. Killing inside an async hook is enough: mitmproxy checks for it when the
    hook returns, so nothing hangs."""
    rec = record_of(flow)
    rec.state = "cancelled"
    rec.note(why)
    if flow.killable:
        flow.kill()


def client_gone(flow: http.HTTPFlow, event: str) -> None:
    """The client went away while its flow was paused: nobody cancelled it, so it is not
    "cancelled" (by the ask rule, as it read before); it is "client gone"."""
    rec = record_of(flow)
    rec.state = "error"
    rec.client_gone = True
    rec.note(f"client gone: it disconnected while paused at the {event} event")
    if flow.killable:
        flow.kill()


def respond(flow: http.HTTPFlow, status: int, headers: dict | list | None, body: bytes) -> None:
    hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    flow.response = http.Response.make(
        status, body, [(str(k).encode(), str(v).encode()) for k, v in hdrs]
    )
    record_of(flow).local_response = True


def respond_with(flow: http.HTTPFlow, params: dict) -> int:
    """Answer locally with a respond decision's parameters (a rule's or a person's): status
    (default 200), headers, body. Returns the status."""
    status = int(params.get("status") or 200)
    respond(flow, status, _respond_headers(params), _body_bytes(params))
    return status


def redirect(flow: http.HTTPFlow, url: str) -> None:
    respond(flow, 307, {"Location": url}, b"")
    record_of(flow).state = "redirected"


def rewrite(flow: http.HTTPFlow, url: str) -> None:
    """Send the request somewhere else, transparently for the client."""
    had_host = "host" in flow.request.headers
    flow.request.url = url
    if had_host:
        flow.request.headers["host"] = flow.request.host_header or flow.request.pretty_host


def edit(flow: http.HTTPFlow, params: dict) -> None:
    """Apply a person's edits of method, URL, headers and body; Content-Length follows."""
    req = flow.request
    if params.get("method"):
        req.method = str(params["method"]).upper()
    if params.get("url") and params["url"] not in (req.url, printable(req.url)):
        rewrite(flow, params["url"])
    if "headers" in params and params["headers"] is not None:
        req.headers.clear()
        for name, value in params["headers"]:
            req.headers.add(name, value)
    if "body" in params and params["body"] is not None:
        body = params["body"]
        req.content = body.encode() if isinstance(body, str) else bytes(body)  # sets Content-Length


class Decider:
    """Applies rules to request/response/redirect/cookies events and pauses on ``ask``."""

    def __init__(
        self,
        rules: RulesFile,
        pauses: Pauses,
        recorder: Recorder | None = None,
        *,
        ask_default: str = "continue",
        events: EventLog | None = None,
    ) -> None:
        self.rules = rules
        self.pauses = pauses
        self.recorder = recorder
        self.ask_default = ask_default
        self.events = events
        """The event log: it hears of decisions made by a timeout."""
        self.retries = Retries()

    # -- hooks ------------------------------------------------------------------------

    # Hooks are plain functions that return a coroutine only when there is something to
    # decide: with no rule about an event and its default "pass", a flow costs no
    # coroutine and no EventDetails (mitmproxy awaits whatever a hook returns).

    def request(self, flow: http.HTTPFlow):
        if flow.response or flow.error or not flow.live:
            return None
        # A replay (the screen's `r` and `D`) is a person's new request, never a client's
        # retry, even when it repeats a request cancelled a moment ago.
        if (
            self.retries
            and not flow.is_replay
            and (original := self.retries.absorb(flow)) is not None
        ):
            self._absorbed(flow, original)
            return None
        engine = self.rules.engine
        if (
            not engine.listens("request")
            and engine.defaults.request == "continue"
            and not ("cookie" in flow.request.headers and _cookies_matter(engine))
        ):
            return None
        return self._request(flow)

    def response(self, flow: http.HTTPFlow):
        engine = self.rules.engine
        if (
            not engine.listens("response")
            and not engine.listens("redirect")
            and not _cookies_matter(engine)
            and engine.defaults.response == "continue"
            and engine.defaults.redirect == "follow"
        ):
            return None
        return self._response(flow)

    def _decision(self, flow: http.HTTPFlow, event: str, status: int | None = None):
        """Decide ``event`` for ``flow`` with the rules and record the trace."""
        decision = self.rules.decide(
            EventDetails(
                event=event,
                url=destination_url(flow),
                method=flow.request.method,
                type=flow_type(flow),
                status=status,
                flow=flow,
            )
        )
        if decision.rule is not None:
            record_of(flow).decided(decision)
        return decision

    async def _decide(
        self, flow: http.HTTPFlow, event: str, status: int | None = None, ask_details=()
    ) -> tuple[str, dict, str]:
        """(action, params, who decided) for a blocking event; ``ask`` pauses the flow."""
        decision = self._decision(flow, event, status)
        if decision.action == "ask":
            return await self._ask(flow, event, ask_details, decision.rule_id)
        return decision.action, _params(decision), "rule"

    async def _request(self, flow: http.HTTPFlow) -> None:
        await self._cookies_out(flow)
        action, params, origin = await self._decide(flow, "request")
        self._apply_request(flow, action, params, origin)

    async def _response(self, flow: http.HTTPFlow) -> None:
        if flow.response is None or flow.error or not flow.live or record_of(flow).local_response:
            return
        resp = flow.response
        if 300 <= resp.status_code < 400 and "location" in resp.headers:
            if not await self._redirect_event(flow):
                return
        action, params, origin = await self._decide(flow, "response", resp.status_code)
        if action == "gone":
            client_gone(flow, "response")
            return
        if action == "cancel":
            self._cancel(flow, f"response cancelled ({origin})")
        elif action == "respond":
            status = respond_with(flow, params)
            record_of(flow).note(f"response replaced with {status} ({origin})")
        if flow.response is not None and "set-cookie" in flow.response.headers:
            await self._cookies_in(flow)

    def _cancel(self, flow: http.HTTPFlow, why: str) -> None:
        """Cancel, and make the cancel hold: the client's retries are part of it."""
        cancel(flow, why)
        self.retries.cancelled(flow)

    def _absorbed(self, flow: http.HTTPFlow, original: http.HTTPFlow) -> None:
        """``flow`` is the client retrying ``original``, which was cancelled: cancel it again
        without asking the rules (no hit, no ``times``, no pause) and show it as part of
        ``original``, not as a row or a headless line of its own."""
        cancel(flow, f"retry of a cancelled request ({original.id})")
        if self.recorder is not None:
            self.recorder.drop(flow)
            self.recorder.touch(original)

    # -- events -----------------------------------------------------------------------

    async def _redirect_event(self, flow: http.HTTPFlow) -> bool:
        """Upstream answered 3xx with a Location. Returns False when the flow ended."""
        resp = flow.response
        assert resp is not None
        location = (("Location", resp.headers["location"]),)
        action, params, origin = await self._decide(flow, "redirect", resp.status_code, location)
        if action == "gone":
            client_gone(flow, "redirect")
            return False
        if action == "cancel":
            self._cancel(flow, f"redirect to {resp.headers['location']} cancelled ({origin})")
            return False
        if action == "rewrite" and params.get("url"):
            record_of(flow).note(
                f"Location {resp.headers['location']} → {params['url']} ({origin})"
            )
            resp.headers["location"] = params["url"]
        return True

    async def _cookies_out(self, flow: http.HTTPFlow) -> None:
        if "cookie" not in flow.request.headers:
            return
        if self._decision(flow, "cookies").action == "strip":
            del flow.request.headers["cookie"]
            record_of(flow).note("Cookie header stripped")

    async def _cookies_in(self, flow: http.HTTPFlow) -> None:
        status = flow.response.status_code if flow.response else None
        if self._decision(flow, "cookies", status).action == "strip" and flow.response:
            del flow.response.headers["set-cookie"]
            record_of(flow).note("Set-Cookie headers stripped")

    async def _ask(
        self, flow: http.HTTPFlow, event: str, details=(), asked_by: str | None = None
    ) -> tuple[str, dict, str]:
        answer = await self.pauses.ask(
            flow.id,
            event,
            url=destination_url(flow),
            method=flow.request.method,
            details=details,
            asked_by=asked_by,
            client=flow.client_conn,
        )
        if isinstance(answer, Ended):
            if answer is Ended.GONE:
                return "gone", {}, answer.value
            outcome = self.ask_default
            if event == "redirect" and outcome == "continue":
                outcome = "follow"
            record_of(flow).note(f"{event}: {answer.value}; {outcome}")
            if self.events is not None:
                self.events.add(
                    "timeout",
                    f"{flow.request.method} {printable(flow.request.url)}: "
                    f"{event} {answer.value}; {outcome}",
                )
            return outcome, {}, answer.value
        params = dict(answer.params)
        if rule_id := params.pop("remembered_as", None):
            record_of(flow).note(f"remembered as rule {rule_id}")
        return answer.action, params, "you"

    def _apply_request(self, flow, action: str, params: dict, origin: str) -> None:
        if action == "gone":
            client_gone(flow, "request")
        elif action == "cancel":
            self._cancel(flow, f"cancelled ({origin})")
        elif action == "redirect":
            redirect(flow, params["url"])
            record_of(flow).note(f"redirected to {params['url']} ({origin})")
        elif action == "rewrite":
            rewrite(flow, params["url"])
            record_of(flow).note(f"rewritten to {params['url']} ({origin})")
        elif action == "respond":
            status = respond_with(flow, params)
            record_of(flow).note(f"answered locally with {status} ({origin})")
        elif action == "continue" and origin == "you" and params:
            edit(flow, params)
            record_of(flow).note("edited and continued (you)")


def _cookies_matter(engine) -> bool:
    return engine.listens("cookies") or engine.defaults.cookies != "allow"


def _params(decision: Decision) -> dict:
    """The action parameters of a rule's decision; ``body_file`` is read by the engine's
    ``Decision`` (``~`` expanded, relative to the rules file's folder)."""
    if decision.rule is None:
        return {}
    params: dict = {}
    if decision.url:
        params["url"] = decision.url
    if decision.action == "respond":
        params["status"] = decision.status or 200
        params["headers"] = decision.headers
        try:
            params["body"] = decision.read_body()
        except OSError as e:
            params["body"] = (
                f"waylay: cannot read body_file {decision.body_path}: {e.strerror}".encode()
            )
            params["status"] = 500
    return params


def _respond_headers(params: dict) -> list[tuple[str, str]]:
    """A respond answer's headers: a rule's table (a dict) or the dialog's pairs."""
    headers = params.get("headers") or {}
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


def _body_bytes(params: dict) -> bytes:
    body = params.get("body") or b""
    return body.encode() if isinstance(body, str) else bytes(body)
