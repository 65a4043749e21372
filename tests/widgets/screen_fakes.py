"""Fakes for the screen's tests: a controller that records what the screen asks of the
proxy, a hand-moved clock, flow snapshots with fixed times, and waiting by condition."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

from widgets.model import (
    Answer,
    BodyView,
    CertificateInfo,
    FilterMatch,
    FlowView,
    PausedEvent,
    TraceEntry,
)

NOW = 1_700_000_000.0
"""The fixed clock: 2023-11-14 22:13:20 UTC."""


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeController:
    """The whole `Controller` protocol, recording every call in `calls` as (method, args...).
    `answer_error` (or `error=`) makes `answer` refuse; `filters` maps the filter
    expressions this fake knows to the flow ids each one matches."""

    address = "http://127.0.0.1:8080"
    mode = "regular"
    ask_default = "continue"

    def __init__(self, error: str | None = None) -> None:
        self.calls: list[tuple] = []
        self.answer_error = error
        self.answers: list[tuple[str, str, Answer]] = []
        """The answers accepted (not refused), in order."""
        self.previews: list[tuple[str, str, Answer]] = []
        self.breakpoints_enabled = True
        self.filters: dict[str, set[str]] = {}
        self.filter_generation = 0
        self.unfinished: set[str] = set()
        """Flow ids `delete_flow` refuses (the proxy side does not see them finished)."""
        self.send_error: str | None = None
        """Makes `replay` and `send_request` refuse with this message."""
        self.events: list[tuple[float, str, str]] = []
        """What `event_log` returns (its last `limit` lines)."""

    def answer(self, flow_id: str, event: str, answer: Answer) -> str | None:
        self.calls.append(("answer", flow_id, event, answer))
        if self.answer_error:
            return self.answer_error
        self.answers.append((flow_id, event, answer))
        return None

    def preview_rule(self, flow_id: str, event: str, answer: Answer) -> str | None:
        """A made-up rule text for any scope but "once" (it echoes what it was given, so a
        dialog that handed over a password would show it)."""
        self.calls.append(("preview_rule", flow_id, event, answer))
        self.previews.append((flow_id, event, answer))
        if answer.remember == "once":
            return None
        where = answer.pattern or {
            "url": "https://api.example.com/items?id=7",
            "host": "*://api.example.com/*",
        }.get(answer.remember, "?")
        lines = [
            "[[rule]]",
            f'id = "remembered-{answer.action}"',
            f'event = "{event}"',
            f'urls = ["{where}"]',
            f'action = "{answer.action}"',
        ]
        if "url" in answer.params:
            lines.append(f'url = "{answer.params["url"]}"')
        if "username" in answer.params:
            lines.append(f'username = "{answer.params["username"]}"')
            lines.append(f"# {answer.params.get('password', '')}")
        return "\n".join(lines)

    def set_breakpoint(self, spec: str) -> str | None:
        self.calls.append(("set_breakpoint", spec))
        if spec.startswith("bad"):
            return f"not a match pattern or filter expression: {spec!r}"
        return None

    def toggle_breakpoints(self) -> bool:
        self.breakpoints_enabled = not self.breakpoints_enabled
        self.calls.append(("toggle_breakpoints",))
        return self.breakpoints_enabled

    def check_filter(self, expr: str) -> str | None:
        self.calls.append(("check_filter", expr))
        return None if expr in self.filters else f"invalid filter expression: {expr}"

    def apply_filter(self, expr: str) -> tuple[FilterMatch | None, str | None]:
        self.calls.append(("apply_filter", expr))
        if not expr:
            return None, None
        if expr not in self.filters:
            return None, f"invalid filter expression: {expr}"
        self.filter_generation += 1
        return FilterMatch(self.filter_generation, frozenset(self.filters[expr])), None

    def clear_finished(self) -> None:
        self.calls.append(("clear_finished",))

    def delete_flow(self, flow_id: str) -> str | None:
        self.calls.append(("delete_flow", flow_id))
        if flow_id in self.unfinished:
            return "only a finished flow can be deleted (decide or wait for it first)"
        return None

    def replay(self, flow_id: str) -> str | None:
        self.calls.append(("replay", flow_id))
        return self.send_error

    def send_request(self, flow_id: str, changes: dict | None) -> str | None:
        self.calls.append(("send_request", flow_id, changes))
        return self.send_error

    def event_log(self, limit: int = 200) -> list[tuple[float, str, str]]:
        self.calls.append(("event_log", limit))
        return self.events[-limit:] if limit else list(self.events)

    def export_curl(self, flow_id: str) -> str:
        self.calls.append(("export_curl", flow_id))
        if flow_id == "gone":
            raise ValueError("that flow is no longer kept")
        return f"curl https://example.com/{flow_id}"

    def export_har(
        self, path: str, flow_ids: list[str] | None = None, older: str | None = None
    ) -> int:
        self.calls.append(("export_har", path, flow_ids) + ((older,) if older is not None else ()))
        entries = [{"id": i} for i in (flow_ids if flow_ids is not None else ["a", "b", "c"])]
        Path(path).write_text(json.dumps({"log": {"version": "1.2", "entries": entries}}))
        return len(entries)

    def save_flows(
        self, path: str, flow_ids: list[str] | None = None, older: str | None = None
    ) -> int:
        self.calls.append(("save_flows", path, flow_ids) + ((older,) if older is not None else ()))
        ids = flow_ids if flow_ids is not None else ["a", "b", "c"]
        Path(path).write_bytes(b"".join(i.encode() + b"\n" for i in ids))
        return len(ids)

    def render_body(self, flow_id: str, part: str, mode: str) -> BodyView | None:
        """None: the flow's body is not rendered here, so the pane shows the snapshot's
        preview (as a flow the proxy side no longer keeps)."""
        self.calls.append(("render_body", flow_id, part, mode))
        return None

    def export_rules(self, fmt: str) -> tuple[str, list[str]]:
        self.calls.append(("export_rules", fmt))
        return f"rules as {fmt}\n", ["auth-rule: left out: auth events", "note: renumbered"]


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


def many_views(count: int) -> list[FlowView]:
    """Flows 1..count, finished, one in seven on page 3, statuses 200-500 in turn: the
    list at scale (tests/widgets/test_flow_table_scale.py, tests/bench/screen_list.py)."""
    template = make_view(0)
    return [
        dataclasses.replace(
            template,
            id=f"f{n}",
            seq=n,
            started=NOW + n / 1000,
            path=f"/items/{n}?page={n % 7}",
            url=f"https://api.example.com/items/{n}?page={n % 7}",
            status=200 + (n % 4) * 100,
        )
        for n in range(1, count + 1)
    ]


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
