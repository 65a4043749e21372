"""Rules acting on live traffic: the request, response, redirect and cookies events.

For each event the rules decide (``RulesFile.decide``); ``ask`` pauses the flow until a
person answers (``Pauses``), and the answer is applied exactly like a rule's action.
Every decision is recorded on the flow (rule id, trace, notes) for the screen, the
headless log and HAR export.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mitmproxy import http

from monitor.destination import destination_url
from monitor.pauses import Ended, Pauses
from monitor.snapshot import flow_type, meta
from policies import EventDetails, RulesFile
from policies.printable import printable

log = logging.getLogger("waylay.decider")


def record(flow: http.HTTPFlow, decision) -> None:
    """Keep the trace of a decision on the flow: every matching rule, and the one that won."""
    m = meta(flow)
    winner = decision.rule.id if decision.rule is not None else None
    for rid in decision.matched:
        m["trace"].append((decision.event, rid, _action_of(decision, rid), rid == winner))
    if winner is not None:
        m["rule_id"] = winner


def _action_of(decision, rid: str) -> str:
    if decision.rule is not None and decision.rule.id == rid:
        return decision.action
    return "matched"


def note(flow: http.HTTPFlow, text: str) -> None:
    meta(flow)["notes"].append(text)


def cancel(flow: http.HTTPFlow, why: str) -> None:
    """Abort: the client gets no response (the connection is closed), like a browser's
    ``cancel``. Killing inside an async hook is enough: mitmproxy checks for it when the
    hook returns, so nothing hangs."""
    m = meta(flow)
    m["state"] = "cancelled"
    note(flow, why)
    if flow.killable:
        flow.kill()


def client_gone(flow: http.HTTPFlow, event: str) -> None:
    """The client went away while its flow was paused: nobody cancelled it, so it is not
    "cancelled" (by the ask rule, as it read before); it is "client gone"."""
    m = meta(flow)
    m["state"] = "error"
    m["client_gone"] = True
    note(flow, f"client gone: it disconnected while paused at the {event} event")
    if flow.killable:
        flow.kill()


def respond(flow: http.HTTPFlow, status: int, headers: dict | list | None, body: bytes) -> None:
    hdrs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    flow.response = http.Response.make(
        status, body, [(str(k).encode(), str(v).encode()) for k, v in hdrs]
    )
    meta(flow)["local_response"] = True


def redirect(flow: http.HTTPFlow, url: str) -> None:
    respond(flow, 307, {"Location": url}, b"")
    meta(flow)["state"] = "redirected"


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

    def __init__(self, rules: RulesFile, pauses: Pauses, *, ask_default: str = "continue") -> None:
        self.rules = rules
        self.pauses = pauses
        self.ask_default = ask_default
        self.touch = lambda flow: None  # set by the wiring: tell the recorder a flow changed

    # -- hooks ------------------------------------------------------------------------

    # Hooks are plain functions that return a coroutine only when there is something to
    # decide: with no rule about an event and its default "pass", a flow costs no
    # coroutine and no EventDetails (mitmproxy awaits whatever a hook returns).

    def request(self, flow: http.HTTPFlow):
        if flow.response or flow.error or not flow.live:
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
            record(flow, decision)
        return decision

    async def _decide(
        self, flow: http.HTTPFlow, event: str, status: int | None = None, ask_details=()
    ) -> tuple[str, dict, str]:
        """(action, params, who decided) for a blocking event; ``ask`` pauses the flow."""
        decision = self._decision(flow, event, status)
        if decision.action == "ask":
            return await self._ask(flow, event, ask_details)
        return decision.action, _params(decision, self.rules), "rule"

    async def _request(self, flow: http.HTTPFlow) -> None:
        await self._cookies_out(flow)
        action, params, origin = await self._decide(flow, "request")
        self._apply_request(flow, action, params, origin)

    async def _response(self, flow: http.HTTPFlow) -> None:
        m = meta(flow)
        if flow.response is None or flow.error or not flow.live or m.get("local_response"):
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
            cancel(flow, f"response cancelled ({origin})")
        elif action == "respond":
            respond(
                flow,
                int(params.get("status") or 200),
                _respond_headers(params),
                _body_bytes(params),
            )
            note(flow, f"response replaced with {params.get('status') or 200} ({origin})")
        if flow.response is not None and "set-cookie" in flow.response.headers:
            await self._cookies_in(flow)

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
            cancel(flow, f"redirect to {resp.headers['location']} cancelled ({origin})")
            return False
        if action == "rewrite" and params.get("url"):
            note(flow, f"Location {resp.headers['location']} → {params['url']} ({origin})")
            resp.headers["location"] = params["url"]
        return True

    async def _cookies_out(self, flow: http.HTTPFlow) -> None:
        if "cookie" not in flow.request.headers:
            return
        if self._decision(flow, "cookies").action == "strip":
            del flow.request.headers["cookie"]
            note(flow, "Cookie header stripped")

    async def _cookies_in(self, flow: http.HTTPFlow) -> None:
        status = flow.response.status_code if flow.response else None
        if self._decision(flow, "cookies", status).action == "strip" and flow.response:
            del flow.response.headers["set-cookie"]
            note(flow, "Set-Cookie headers stripped")

    async def _ask(self, flow: http.HTTPFlow, event: str, details=()) -> tuple[str, dict, str]:
        answer = await self.pauses.ask(
            flow.id,
            event,
            url=destination_url(flow),
            method=flow.request.method,
            details=details,
            client=flow.client_conn,
        )
        if isinstance(answer, Ended):
            if answer is Ended.GONE:
                return "gone", {}, answer.value
            outcome = self.ask_default
            if event == "redirect" and outcome == "continue":
                outcome = "follow"
            note(flow, f"{event}: {answer.value}; {outcome}")
            return outcome, {}, answer.value
        params = dict(answer.params)
        if rule_id := params.pop("remembered_as", None):
            note(flow, f"remembered as rule {rule_id}")
        return answer.action, params, "you"

    def _apply_request(self, flow, action: str, params: dict, origin: str) -> None:
        if action == "gone":
            client_gone(flow, "request")
        elif action == "cancel":
            cancel(flow, f"cancelled ({origin})")
        elif action == "redirect":
            redirect(flow, params["url"])
            note(flow, f"redirected to {params['url']} ({origin})")
        elif action == "rewrite":
            rewrite(flow, params["url"])
            note(flow, f"rewritten to {params['url']} ({origin})")
        elif action == "respond":
            respond(
                flow,
                int(params.get("status") or 200),
                _respond_headers(params),
                _body_bytes(params),
            )
            note(flow, f"answered locally with {params.get('status') or 200} ({origin})")
        elif action == "continue" and origin == "you" and params:
            edit(flow, params)
            note(flow, "edited and continued (you)")


def _cookies_matter(engine) -> bool:
    return engine.listens("cookies") or engine.defaults.cookies != "allow"


def _params(decision, rules: RulesFile) -> dict:
    """The action parameters of a rule's decision, body_file read relative to the rules file."""
    rule = decision.rule
    if rule is None:
        return {}
    params: dict = {}
    if decision.url:
        params["url"] = decision.url
    status = getattr(rule, "respond_status", None) if decision.event == "response" else rule.status
    if decision.action == "respond":
        params["status"] = status if isinstance(status, int) else 200
        params["headers"] = dict(rule.headers or {})
        if rule.body_file:
            path = Path(rule.body_file)
            if not path.is_absolute():
                path = Path(rules.path).parent / path
            try:
                params["body"] = path.read_bytes()
            except OSError as e:
                params["body"] = f"waylay: cannot read body_file {path}: {e.strerror}".encode()
                params["status"] = 500
        else:
            params["body"] = rule.body or ""
    return params


def _respond_headers(params: dict) -> list[tuple[str, str]]:
    headers = params.get("headers") or {}
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    if params.get("content_type") and not any(k.lower() == "content-type" for k, _ in pairs):
        pairs.append(("content-type", params["content_type"]))
    return pairs


def _body_bytes(params: dict) -> bytes:
    body = params.get("body") or b""
    return body.encode() if isinstance(body, str) else bytes(body)
