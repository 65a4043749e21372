"""Fakes for the screen's tests: a controller that records what the screen asks of the
proxy, a hand-moved clock, flow snapshots with fixed times, and waiting by condition."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from widgets.model import Answer, CertificateInfo, FlowView, PausedEvent, TraceEntry

NOW = 1_700_000_000.0
"""The fixed clock: 2023-11-14 22:13:20 UTC."""


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeController:
    """The `Controller` protocol, recording every call in `calls` as (method, args...)."""

    address = "http://127.0.0.1:8080"
    mode = "regular"
    ask_default = "continue"

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.answer_error: str | None = None
        self.breakpoints_enabled = True
        self.filters: dict[str, set[str]] = {}
        """Filter expressions this fake knows, and the flow ids each one matches."""

    @property
    def answers(self) -> list[tuple[str, str, Answer]]:
        return [call[1:] for call in self.calls if call[0] == "answer"]

    def answer(self, flow_id: str, event: str, answer: Answer) -> str | None:
        self.calls.append(("answer", flow_id, event, answer))
        return self.answer_error

    def preview_rule(self, flow_id: str, event: str, answer: Answer) -> str | None:
        self.calls.append(("preview_rule", flow_id, event, answer))
        return None

    def set_breakpoint(self, spec: str) -> str | None:
        self.calls.append(("set_breakpoint", spec))
        if spec.startswith("bad"):
            return f"not a match pattern or filter expression: {spec!r}"
        return None

    def toggle_breakpoints(self) -> bool:
        self.breakpoints_enabled = not self.breakpoints_enabled
        self.calls.append(("toggle_breakpoints",))
        return self.breakpoints_enabled

    def filter_predicate(self, expr: str) -> tuple[object | None, str | None]:
        self.calls.append(("filter_predicate", expr))
        if expr not in self.filters:
            return None, f"invalid filter expression: {expr}"
        matching = self.filters[expr]
        return (lambda flow_id: flow_id in matching), None

    def clear_finished(self) -> None:
        self.calls.append(("clear_finished",))


class RulesSource:
    """What the app reads of the rules file: `.path` and `.state`."""

    def __init__(self, path: str = "/etc/waylay/rules.toml", state: str = "3 rules") -> None:
        self.path = Path(path)
        self.state = state


def make_view(n: int = 1, **changes) -> FlowView:
    """Flow number `n`: a finished GET with a JSON response, started `n` s after NOW-100."""
    flow_id = changes.pop("id", f"f{n}")
    host = changes.pop("host", "api.example.com")
    path = changes.pop("path", f"/items/{n}")
    scheme = changes.pop("scheme", "https")
    port = changes.pop("port", 443)
    base = dict(
        id=flow_id,
        seq=n,
        started=NOW - 100 + n,
        method="GET",
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        url=f"{scheme}://{host}{'' if port in (80, 443) else f':{port}'}{path}",
        type="xmlhttprequest",
        state="done",
        status=200,
        reason="OK",
        size=2048,
        duration=0.087,
        request_headers=(("Host", host), ("Accept", "application/json")),
        response_headers=(("Content-Type", "application/json"), ("Content-Length", "17")),
        response_body=b'{"id": 1, "ok": true}',
        response_content_type="application/json",
        timing=(("connected", 0.012), ("request sent", 0.015), ("response started", 0.080)),
    )
    base.update(changes)
    return FlowView(**base)


def paused_view(n: int, event: str = "request", *, since: float = NOW - 5, **changes) -> FlowView:
    """Flow `n`, paused at `event` since `since`, with a 120 s deadline."""
    view = make_view(n, **changes)
    certificate = None
    if event == "certificate":
        certificate = CertificateInfo(
            host=view.host,
            port=view.port,
            reason="self-signed certificate",
            subject="CN=api.example.com",
            issuer="CN=api.example.com",
            sans=("api.example.com",),
            not_before="2023-01-01",
            not_after="2033-01-01",
            fingerprint="sha256:3f:a1:00",
        )
    paused = PausedEvent(
        flow_id=view.id,
        event=event,
        since=since,
        deadline=since + 120,
        url=view.url,
        method=view.method,
        certificate=certificate,
    )
    return dataclasses.replace(
        view,
        state="paused",
        status=None,
        reason="",
        size=None,
        duration=None,
        response_headers=(),
        response_body=b"",
        paused=paused,
    )


def traced(view: FlowView) -> FlowView:
    return dataclasses.replace(
        view,
        rule_id="no-trackers",
        trace=(
            TraceEntry("request", "no-trackers", "cancel", True),
            TraceEntry("request", "log-all", "continue", False),
        ),
        notes=("cancelled by rule no-trackers",),
    )


async def wait_until(pilot, condition: Callable[[], object], what: str, timeout: float = 10.0):
    """Let the app run until `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause()
    return condition()
