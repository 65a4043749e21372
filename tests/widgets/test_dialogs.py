"""The decision dialogs under ``run_test()``: each key sends the right Answer, bad input is
refused without sending anything, remember scopes preview their rule, and a flow that ends
elsewhere closes its dialog."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import tomllib

import httpx
import pytest
from rich.console import Console
from screen_fakes import FakeController
from textual.app import App
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static, TextArea

from tests.helpers import focused_input
from widgets.dialogs import (
    AuthDialog,
    CertificateDialog,
    DecisionDialog,
    RedirectDialog,
    RememberBar,
    RequestDialog,
    ResponseDialog,
    check_http_url,
    check_match_pattern,
    dialog_for,
    parse_header_lines,
)
from widgets.model import Answer, AuthFacts, CertificateInfo, FlowView, PausedEvent

NOW = 1_700_000_000.0


def fixed_clock() -> float:
    return NOW


def make_view(event: str = "request", **changes) -> FlowView:
    details: tuple[tuple[str, str], ...] = ()
    certificate = None
    auth = None
    url = "https://api.example.com/items?id=7"
    if event == "auth":
        auth = AuthFacts(
            host="api.example.com", port=443, proxy=False, realm="Staff", scheme="Digest"
        )
        details = (
            ("host", "api.example.com"),
            ("port", "443"),
            ("proxy", "no"),
            ("realm", "Staff"),
            ("scheme", "Digest"),
        )
    elif event == "redirect":
        details = (("Location", "https://login.example.com/start"),)
    elif event == "certificate":
        url = "https://dev.internal:8443/"
        certificate = CertificateInfo(
            host="dev.internal",
            port=8443,
            reason="self-signed certificate",
            subject="CN=dev.internal",
            issuer="CN=dev.internal",
            sans=("dev.internal", "*.dev.internal"),
            not_before="2024-01-01 00:00:00 UTC",
            not_after="2034-01-01 00:00:00 UTC",
            fingerprint="sha256:3f:a1:5c:09:de:ad:be:ef:00:11:22:33:44:55:66:77:"
            "88:99:aa:bb:cc:dd:ee:ff:01:23:45:67:89:ab:cd:ef",
            chain=("CN=dev.internal",),
        )
    paused = PausedEvent(
        flow_id="f1",
        event=event,  # type: ignore[arg-type]
        since=NOW - 5,
        deadline=NOW + 115,
        url=url,
        method="POST",
        details=details,
        certificate=certificate,
        auth=auth,
    )
    view = FlowView(
        id="f1",
        seq=1,
        started=NOW - 5,
        method="POST",
        scheme="https",
        host="api.example.com",
        port=443,
        path="/items?id=7",
        url=url,
        type="xmlhttprequest",
        state="paused",
        paused=paused,
        request_headers=(
            ("Host", "api.example.com"),
            ("Content-Type", "application/json"),
            ("Content-Length", "12"),
            ("X-Note", "[bold]not markup[/bold]"),
        ),
        request_body=b'{"count": 1}',
        request_body_size=12,
        status=302 if event in ("redirect", "response") else None,
        reason="Found" if event == "redirect" else "",
    )
    return dataclasses.replace(view, **changes)


class DialogHost(App[None]):
    """Pushes one dialog and records what it was dismissed with and what it notified."""

    def __init__(self, dialog: DecisionDialog) -> None:
        super().__init__()
        self.dialog = dialog
        self.results: list[Answer | None] = []
        self.notices: list[str] = []

    def on_mount(self) -> None:
        self.push_screen(self.dialog, callback=self.results.append)

    def notify(self, message: str, **kwargs) -> None:
        self.notices.append(message)
        super().notify(message, **kwargs)


def host_for(event: str = "request", controller: FakeController | None = None, **changes):
    controller = controller or FakeController()
    dialog = dialog_for(make_view(event, **changes), controller, clock=fixed_clock)
    return DialogHost(dialog), controller


def text_of(widget: Static) -> str:
    """The plain text a Static shows (or its rendering, for widgets that render)."""
    if isinstance(widget, RememberBar):
        return str(widget.render())
    return str(widget.content)


async def type_text(pilot, text: str) -> None:
    await pilot.press(*text)


async def replace_input(pilot, text: str) -> None:
    """Clear the focused Input (once focus is on one) and type ``text`` into it."""
    await focused_input(pilot, "Input")
    await type_text(pilot, text)


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://example.com/", True),
        ("http://127.0.0.1:8080/x?y=1", True),
        ("http://[::1]:9/", True),
        ("example.com", False),
        ("ftp://example.com/", False),
        ("https://", False),
        ("https://exa mple.com/", False),
        ("http://example.com:99999/", False),
        ("", False),
    ],
)
def test_check_http_url(url: str, ok: bool) -> None:
    assert (check_http_url(url) is None) is ok


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [
        ("<all_urls>", True),
        ("*://*.example.com/*", True),
        ("https://example.com:8443/api/*", True),
        ("*://example.com", False),
        ("example.com/*", False),
        ("", False),
    ],
)
def test_check_match_pattern(pattern: str, ok: bool) -> None:
    assert (check_match_pattern(pattern) is None) is ok


def test_parse_header_lines() -> None:
    assert parse_header_lines("A: 1\n\nB-C:  two words \n") == [("A", "1"), ("B-C", "two words")]
    with pytest.raises(ValueError, match="line 2"):
        parse_header_lines("A: 1\nno colon here")


def test_dialog_for_picks_by_event() -> None:
    controller = FakeController()
    expected = {
        "request": RequestDialog,
        "response": ResponseDialog,
        "redirect": RedirectDialog,
        "auth": AuthDialog,
        "certificate": CertificateDialog,
    }
    for event, cls in expected.items():
        assert type(dialog_for(make_view(event), controller)) is cls
    with pytest.raises(ValueError, match="not paused"):
        dialog_for(make_view(paused=None), controller)


# --------------------------------------------------------------------------- request dialog


@pytest.mark.parametrize(("key", "action"), [("c", "continue"), ("x", "cancel")])
async def test_request_single_key_actions(key: str, action: str) -> None:
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        await pilot.press(key)
        assert controller.answers == [("f1", "request", Answer(action))]
        assert app.results == [Answer(action)]
        assert app.screen is not app.dialog


@pytest.mark.parametrize("key,action", [("r", "redirect"), ("w", "rewrite")])
async def test_request_redirect_and_rewrite_take_a_url(key: str, action: str) -> None:
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        await pilot.press(key)
        url_input = app.dialog.query_one("#url-input", Input)
        assert app.focused is url_input
        assert url_input.value == "https://api.example.com/items?id=7"
        await replace_input(pilot, "https://staging.example.com/items")
        await pilot.press("enter")
        sent = Answer(action, {"url": "https://staging.example.com/items"})
        assert controller.answers == [("f1", "request", sent)]
        assert app.results == [sent]


async def test_request_bad_redirect_url_is_refused_and_nothing_is_sent() -> None:
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        await pilot.press("r")
        await replace_input(pilot, "not a url")
        await pilot.press("enter")
        error = app.dialog.query_one("#error", Static)
        assert error.display
        assert "URL" in text_of(error)
        assert controller.answers == []
        assert app.screen is app.dialog
        # fixing it sends
        await replace_input(pilot, "http://localhost:9000/")
        await pilot.press("enter")
        assert controller.answers == [
            ("f1", "request", Answer("redirect", {"url": "http://localhost:9000/"}))
        ]


async def test_controller_error_is_shown_and_the_dialog_stays() -> None:
    app, controller = host_for("request", FakeController(error="flow f1 is no longer paused"))
    async with app.run_test() as pilot:
        await pilot.press("r")
        await pilot.press("enter")
        error = app.dialog.query_one("#error", Static)
        assert error.display
        assert text_of(error) == "flow f1 is no longer paused"
        assert app.screen is app.dialog
        assert app.results == []


async def test_request_respond_form() -> None:
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        await pilot.press("m")
        dialog = app.dialog
        status = dialog.query_one("#respond-status", Input)
        assert app.focused is status  # the form starts at the status
        assert status.selection.is_empty  # focus selects nothing: a key never wipes it
        await pilot.press("backspace", "backspace", "backspace", *"451", "tab")
        assert status.value == "451"
        assert app.focused is dialog.query_one("#respond-type", Input)
        app.focused.value = "text/html"
        await pilot.press("tab")
        assert app.focused is dialog.query_one("#respond-body", TextArea)
        await type_text(pilot, "blocked by waylay")
        await pilot.press("ctrl+s")
        sent = Answer(
            "respond",
            {
                "status": 451,
                "headers": [("Content-Type", "text/html")],
                "body": "blocked by waylay",
            },
        )
        assert controller.answers == [("f1", "request", sent)]


async def test_request_respond_refuses_a_bad_status() -> None:
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        await pilot.press("m")
        app.dialog.query_one("#respond-status", Input).focus()
        await pilot.pause()
        await replace_input(pilot, "99")
        await pilot.press("enter")
        assert "between 100 and 599" in text_of(app.dialog.query_one("#error", Static))
        assert controller.answers == []


async def test_request_edit_then_continue() -> None:
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        await pilot.press("e")
        dialog = app.dialog
        assert app.focused is dialog.query_one("#edit-url", Input)
        await replace_input(pilot, "https://api.example.com/items?id=8")
        dialog.query_one("#edit-method", Input).value = "put"
        headers = dialog.query_one("#edit-headers", TextArea)
        headers.text = headers.text + "\nX-Debug: 1"
        dialog.query_one("#edit-body", TextArea).text = '{"count": 12345}'
        await pilot.press("ctrl+s")
        assert len(controller.answers) == 1
        _, event, answer = controller.answers[0]
        assert event == "request"
        assert answer.action == "continue"
        assert answer.params == {
            "method": "PUT",
            "url": "https://api.example.com/items?id=8",
            "headers": [
                ("Host", "api.example.com"),
                ("Content-Type", "application/json"),
                ("Content-Length", "16"),  # kept right for the new body
                ("X-Note", "[bold]not markup[/bold]"),
                ("X-Debug", "1"),
            ],
            "body": '{"count": 12345}',
        }


async def test_request_edit_refuses_bad_header_lines() -> None:
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        await pilot.press("e")
        app.dialog.query_one("#edit-headers", TextArea).text = "Host example.com"
        await pilot.press("ctrl+s")
        assert "header line 1" in text_of(app.dialog.query_one("#error", Static))
        assert controller.answers == []


async def test_request_edit_leaves_a_truncated_body_alone() -> None:
    app, controller = host_for("request", request_body=b"x" * 10, request_body_size=5000)
    async with app.run_test() as pilot:
        await pilot.press("e")
        assert app.dialog.query_one("#edit-body", TextArea).read_only
        await pilot.press("ctrl+s")
        ((_, _, answer),) = controller.answers
        assert "body" not in answer.params
        assert ("Content-Length", "12") in answer.params["headers"]


async def test_escape_closes_and_the_flow_stays_paused() -> None:
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        await pilot.press("escape")
        assert app.results == [None]
        assert controller.answers == []
        assert app.screen is not app.dialog


async def test_escape_in_a_form_goes_back_to_the_decision() -> None:
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        for key in ("r", "m", "e"):
            await pilot.press(key)
            assert app.dialog.mode != "decide"
            await pilot.press("escape")
            assert app.dialog.mode == "decide"
            assert app.screen is app.dialog
        await pilot.press("escape")
        assert app.results == [None]
        assert controller.answers == []


async def test_countdown_follows_the_clock_and_new_snapshots() -> None:
    now = [NOW]
    controller = FakeController()
    dialog = dialog_for(make_view("request"), controller, clock=lambda: now[0])
    app = DialogHost(dialog)
    async with app.run_test():
        frame = dialog.query_one("#frame")
        assert "1:55 left" in str(frame.border_subtitle)
        now[0] += 60
        dialog._tick()
        assert "0:55 left" in str(frame.border_subtitle)
        view = make_view("request")
        later = dataclasses.replace(view.paused, deadline=NOW + 600)
        dialog.flow_updated(dataclasses.replace(view, paused=later))
        assert "9:00 left" in str(frame.border_subtitle)
        now[0] = NOW + 601
        dialog._tick()
        assert "timing out" in str(frame.border_subtitle)
        assert app.screen is dialog


# --------------------------------------------------------------------------- remember


@pytest.mark.parametrize(
    ("key", "scope", "where"),
    [("2", "url", "https://api.example.com/items?id=7"), ("3", "host", "*://api.example.com/*")],
)
async def test_remember_shows_the_rule_then_confirms(key: str, scope: str, where: str) -> None:
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        dialog = app.dialog
        preview = dialog.query_one("#preview", Static)
        assert not preview.display
        await pilot.press(key)
        bar = dialog.query_one(RememberBar)
        assert bar.scope == scope
        assert preview.display
        assert "press an action key" in text_of(preview)
        await pilot.press("x")
        assert controller.answers == []  # not yet: the rule is shown first
        shown = text_of(preview)
        assert 'action = "cancel"' in shown and where in shown
        assert dialog.query_one("#confirm", Static).display
        await pilot.press("enter")
        sent = Answer("cancel", remember=scope)  # type: ignore[arg-type]
        assert controller.answers == [("f1", "request", sent)]
        assert app.results == [sent]


async def test_remember_same_key_twice_confirms_and_escape_steps_back() -> None:
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        await pilot.press("3", "c")
        await pilot.press("escape")  # back out of the confirmation
        assert app.screen is app.dialog
        assert not app.dialog.query_one("#confirm", Static).display
        await pilot.press("c", "c")
        assert controller.answers == [("f1", "request", Answer("continue", remember="host"))]


async def test_remember_once_again_sends_at_once() -> None:
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        await pilot.press("3", "1")
        assert not app.dialog.query_one("#preview", Static).display
        await pilot.press("x")
        assert controller.answers == [("f1", "request", Answer("cancel"))]


async def test_remember_pattern() -> None:
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        dialog = app.dialog
        await pilot.press("4")
        pattern = dialog.query_one("#pattern", Input)
        assert pattern.display and app.focused is pattern
        assert pattern.value == "https://api.example.com/*"
        await replace_input(pilot, "nonsense")
        await pilot.press("enter")
        assert "invalid match pattern" in text_of(dialog.query_one("#error", Static))
        assert app.focused is pattern
        await replace_input(pilot, "*://*.example.com/items*")
        await pilot.press("enter")
        assert app.focused is dialog.query_one("#summary")
        await pilot.press("c")
        assert '"*://*.example.com/items*"' in text_of(dialog.query_one("#preview", Static))
        await pilot.press("enter")
        sent = Answer("continue", remember="pattern", pattern="*://*.example.com/items*")
        assert controller.answers == [("f1", "request", sent)]
        assert controller.answers[0][2].pattern == "*://*.example.com/items*"


async def test_remember_with_a_form_previews_live_and_sends_on_enter() -> None:
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        dialog = app.dialog
        await pilot.press("3", "r")
        await replace_input(pilot, "https://other.example/")
        shown = text_of(dialog.query_one("#preview", Static))
        assert 'action = "redirect"' in shown and 'url = "https://other.example/"' in shown
        last = controller.previews[-1][2]
        assert last.remember == "host" and last.params == {"url": "https://other.example/"}
        await pilot.press("enter")
        sent = Answer("redirect", {"url": "https://other.example/"}, remember="host")
        assert controller.answers == [("f1", "request", sent)]


# --------------------------------------------------------------------------- the flow goes away


async def test_flow_updated_without_pause_closes_the_dialog() -> None:
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        view = make_view("request")
        app.dialog.flow_updated(
            dataclasses.replace(view, paused=None, state="error", error="client disconnected")
        )
        await pilot.pause()
        assert app.screen is not app.dialog
        assert app.results == [None]
        assert controller.answers == []
        assert any("flow ended: client disconnected" in notice for notice in app.notices)


async def test_flow_updated_decided_elsewhere_and_other_flows() -> None:
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        view = make_view("request")
        other = dataclasses.replace(view, id="f2", paused=None, state="done", status=200)
        app.dialog.flow_updated(other)
        assert app.screen is app.dialog  # not this dialog's flow
        app.dialog.flow_updated(dataclasses.replace(view, paused=None, state="done", status=200))
        await pilot.pause()
        assert app.screen is not app.dialog
        assert any("decided elsewhere (200)" in notice for notice in app.notices)
        await pilot.press("c")  # a late key decides nothing
        assert controller.answers == []


async def test_flow_updated_with_another_event_closes_the_dialog() -> None:
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        response = make_view("response")
        app.dialog.flow_updated(response)
        await pilot.pause()
        assert app.results == [None]
        assert any("now paused at response" in notice for notice in app.notices)


async def test_flow_updated_under_another_screen_or_before_it_shows() -> None:
    # before the dialog is even on screen
    dialog = dialog_for(make_view("request"), FakeController(), clock=fixed_clock)
    dialog.flow_updated(dataclasses.replace(make_view(), paused=None, state="done", status=200))
    app = DialogHost(dialog)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.results == [None]
        assert any("decided elsewhere" in notice for notice in app.notices)
    # under another screen (help, say): closes once it is back on top
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        other = ModalScreen()
        await app.push_screen(other)
        app.dialog.flow_updated(dataclasses.replace(make_view(), paused=None, state="cancelled"))
        await pilot.pause()
        assert app.screen is other and app.results == []
        app.pop_screen()
        await pilot.pause()
        assert app.results == [None]
        assert app.dialog not in app.screen_stack


async def test_flow_updated_timed_out() -> None:
    now = [NOW]
    dialog = dialog_for(make_view("request"), FakeController(), clock=lambda: now[0])
    app = DialogHost(dialog)
    async with app.run_test() as pilot:
        now[0] = NOW + 120
        dialog.flow_updated(dataclasses.replace(make_view(), paused=None, state="cancelled"))
        await pilot.pause()
        assert any("timed out (cancelled)" in notice for notice in app.notices)


# --------------------------------------------------------------------------- response, redirect


async def test_response_dialog_actions() -> None:
    app, controller = host_for("response")
    async with app.run_test() as pilot:
        await pilot.press("r", "w")  # not response actions
        assert app.dialog.mode == "decide"
        await pilot.press("m")
        await pilot.press("ctrl+s")
        ((_, event, answer),) = controller.answers
        assert event == "response"
        assert answer.action == "respond" and answer.params["status"] == 200
    app, controller = host_for("response")
    async with app.run_test() as pilot:
        await pilot.press("c")
        assert controller.answers == [("f1", "response", Answer("continue"))]


async def test_redirect_dialog_actions() -> None:
    app, controller = host_for("redirect")
    async with app.run_test() as pilot:
        await pilot.press("c")
        assert controller.answers == [("f1", "redirect", Answer("follow"))]
    app, controller = host_for("redirect")
    async with app.run_test() as pilot:
        await pilot.press("r")  # no redirect action on a redirect
        assert app.dialog.mode == "decide"
        await pilot.press("w")
        assert app.focused.value == "https://login.example.com/start"
        await replace_input(pilot, "https://login.example.com/other")
        await pilot.press("enter")
        assert controller.answers == [
            ("f1", "redirect", Answer("rewrite", {"url": "https://login.example.com/other"}))
        ]
    app, controller = host_for("redirect")
    async with app.run_test() as pilot:
        await pilot.press("x")
        assert controller.answers == [("f1", "redirect", Answer("cancel"))]


# --------------------------------------------------------------------------- auth


async def test_auth_dialog_shows_the_challenge() -> None:
    app, _ = host_for("auth")
    async with app.run_test():
        shown = app.export_screenshot()
        for fact in ("the server (401)", "api.example.com:443", "Staff", "Digest"):
            assert fact.replace(" ", "&#160;") in shown or fact in shown


async def test_auth_enter_walks_the_fields_and_sends_credentials() -> None:
    app, controller = host_for("auth")
    async with app.run_test() as pilot:
        dialog = app.dialog
        # typing starts in the username: no key is lost, none lands in the wrong field
        assert app.focused is dialog.query_one("#username", Input)
        await type_text(pilot, "alice")
        assert dialog.query_one("#username", Input).value == "alice"
        await pilot.press("enter")
        assert app.focused is dialog.query_one("#password", Input)
        assert controller.answers == []
        await type_text(pilot, "s3cret-pw")
        assert "s3cret-pw" not in app.export_screenshot()
        await pilot.press("enter")
        sent = Answer("credentials", {"username": "alice", "password": "s3cret-pw"})
        assert controller.answers == [("f1", "auth", sent)]
        assert "s3cret-pw" not in repr(sent)
        assert not any("s3cret-pw" in notice for notice in app.notices)


async def test_auth_needs_both_fields() -> None:
    app, controller = host_for("auth")
    async with app.run_test() as pilot:
        dialog = app.dialog
        dialog.query_one("#password", Input).focus()
        await pilot.pause()
        await type_text(pilot, "pw")
        await pilot.press("enter")
        assert "username and a password" in text_of(dialog.query_one("#error", Static))
        assert app.focused is dialog.query_one("#username", Input)
        assert controller.answers == []


async def test_auth_cancel() -> None:
    app, controller = host_for("auth")
    async with app.run_test() as pilot:
        await pilot.press("x")  # typed into the username: not a decision
        assert controller.answers == []
        assert app.dialog.query_one("#username", Input).value == "x"
        await pilot.press("shift+tab", "x")  # out of the fields, x cancels
        assert controller.answers == [("f1", "auth", Answer("cancel"))]


async def test_auth_remember_host_and_realm_never_shows_the_password() -> None:
    app, controller = host_for("auth")
    async with app.run_test() as pilot:
        dialog = app.dialog
        await pilot.press("shift+tab")
        await pilot.press("2", "4")  # not offered for auth
        assert dialog.query_one(RememberBar).scope == "once"
        await pilot.press("3")
        assert dialog.query_one(RememberBar).scope == "host"
        dialog.query_one("#username", Input).focus()
        await pilot.pause()
        await type_text(pilot, "alice")
        await pilot.press("enter")
        await type_text(pilot, "hunter22")
        shown = text_of(dialog.query_one("#preview", Static))
        assert 'username = "alice"' in shown
        assert "hunter22" not in shown
        assert all("hunter22" not in str(p[2].params) for p in controller.previews)
        assert "hunter22" not in app.export_screenshot()
        await pilot.press("enter")
        sent = Answer("credentials", {"username": "alice", "password": "hunter22"}, remember="host")
        assert controller.answers == [("f1", "auth", sent)]


async def test_auth_error_never_echoes_the_password() -> None:
    controller = FakeController(error="upstream refused hunter22")
    app, _ = host_for("auth", controller)
    async with app.run_test() as pilot:
        dialog = app.dialog
        dialog.query_one("#username", Input).value = "alice"
        dialog.query_one("#password", Input).value = "hunter22"
        await pilot.press("enter")
        assert text_of(dialog.query_one("#error", Static)) == "upstream refused ***"
        assert app.screen is dialog


# --------------------------------------------------------------------------- certificate


@pytest.mark.parametrize(("key", "action"), [("y", "allow"), ("n", "reject")])
async def test_certificate_allow_reject(key: str, action: str) -> None:
    app, controller = host_for("certificate")
    async with app.run_test() as pilot:
        await pilot.press(key)
        assert controller.answers == [("f1", "certificate", Answer(action))]


async def test_certificate_always_for_this_certificate() -> None:
    app, controller = host_for("certificate")
    async with app.run_test() as pilot:
        dialog = app.dialog
        await pilot.press("3", "4")  # not offered for certificates
        assert dialog.query_one(RememberBar).scope == "once"
        await pilot.press("2", "y")
        assert controller.answers == []
        assert 'action = "allow"' in text_of(dialog.query_one("#preview", Static))
        await pilot.press("y")
        assert controller.answers == [("f1", "certificate", Answer("allow", remember="url"))]


async def test_certificate_dialog_shows_the_certificate() -> None:
    app, _ = host_for("certificate")
    async with app.run_test(size=(120, 40)):
        table = app.dialog.query_one("#certificate", Static).content
        console = Console(width=200, record=True, file=io.StringIO())
        console.print(table)
        shown = console.export_text()
        for fact in (
            "self-signed certificate",
            "dev.internal:8443",
            "CN=dev.internal",
            "dev.internal, *.dev.internal",
            "2034-01-01 00:00:00 UTC",
            "sha256:3f:a1:5c:09",
        ):
            assert fact in shown


# --------------------------------------------------------------------------- snapshots


def test_snapshot_request_dialog(snap_compare) -> None:
    """The request dialog over a paused POST: method and URL, type, the request headers
    (an X-Note header shown literally, not as markup), the JSON body, the action hints,
    the remember bar with "3 this host" selected, the TOML rule that `x` would save under
    "rule to be saved", the confirmation line, and "1:55 left, then it continues" in the
    bottom border (the --ask-default outcome named)."""
    app, _ = host_for("request")
    assert snap_compare(app, press=["3", "x"], terminal_size=(110, 40))


def test_snapshot_certificate_dialog(snap_compare) -> None:
    """The certificate dialog: a red (error-coloured) frame titled "security decision",
    the warning sentence naming dev.internal:8443 and "self-signed certificate", then the
    problem, server, subject, issuer, SANs, validity, SHA-256 fingerprint and chain; the
    remember bar offers only "once (this connection)" and "always for this certificate"."""
    app, _ = host_for("certificate")
    assert snap_compare(app, terminal_size=(110, 34))


# --------------------------------------------------------------------------- with the real proxy


@pytest.fixture
def pool():
    """Clients block: they run here while the dialog runs on the test's loop."""
    with concurrent.futures.ThreadPoolExecutor(4) as executor:
        yield executor


@pytest.fixture
def live(settings, pool):
    """A real session whose rules pause every request to a path starting with /ask."""
    from monitor.session import Session

    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text(
        'version = 1\n[[rule]]\nid = "ask"\nurls = ["*://127.0.0.1/ask*"]\naction = "ask"\n'
    )
    session = Session(settings)
    _, port = session.start()
    yield session, port, pool
    session.stop()


def paused_view(session) -> FlowView:
    from tests.helpers import wait_for

    [flow_id] = wait_for(lambda: list(session.pauses.keys()), what="a paused flow")
    return wait_for(
        lambda: (v := session.recorder.view(flow_id)) is not None and v.paused and v,
        what="its snapshot",
    )


def proxied(port: int) -> httpx.Client:
    return httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=20)


@pytest.mark.e2e
async def test_live_respond_redirect_and_edit(live, upstream) -> None:
    session, port, pool = live
    with proxied(port) as client:
        reply = pool.submit(client.get, upstream.url("/ask-respond"))
        app = DialogHost(dialog_for(paused_view(session), session.controller))
        async with app.run_test() as pilot:
            await pilot.press("m")  # the form starts at the status
            await pilot.press("backspace", "backspace", "backspace", *"202", "tab", "tab")
            await type_text(pilot, "from waylay")
            await pilot.press("ctrl+s")
            assert app.results and app.results[0].action == "respond"
        response = reply.result(10)
        assert (response.status_code, response.text) == (202, "from waylay")
        assert response.headers["content-type"].startswith("text/plain")

        reply = pool.submit(client.get, upstream.url("/ask-redirect"))
        app = DialogHost(dialog_for(paused_view(session), session.controller))
        async with app.run_test() as pilot:
            await pilot.press("r")
            await replace_input(pilot, "no url")
            await pilot.press("enter")
            assert app.results == [] and session.pauses.keys()  # still paused
            await replace_input(pilot, "https://elsewhere.example/")
            await pilot.press("enter")
        response = reply.result(10)
        assert response.status_code == 307
        assert response.headers["location"] == "https://elsewhere.example/"

        reply = pool.submit(client.post, upstream.url("/ask-edit"), content=b"short")
        app = DialogHost(dialog_for(paused_view(session), session.controller))
        async with app.run_test() as pilot:
            await pilot.press("e")
            await replace_input(pilot, upstream.url("/echo/edited"))
            app.dialog.query_one("#edit-body", TextArea).text = "a much longer body"
            await pilot.press("ctrl+s")
        echoed = reply.result(10).json()
        assert echoed["path"] == "/echo/edited" and echoed["body"] == "a much longer body"
        assert echoed["headers"]["content-length"] == str(len("a much longer body"))


@pytest.mark.e2e
async def test_live_remember_this_host(live, upstream) -> None:
    session, port, pool = live
    with proxied(port) as client:
        reply = pool.submit(client.get, upstream.url("/ask-1"))
        app = DialogHost(dialog_for(paused_view(session), session.controller))
        async with app.run_test() as pilot:
            await pilot.press("3", "x")
            shown = text_of(app.dialog.query_one("#preview", Static))
            assert '"*://127.0.0.1/*"' in shown and 'action = "cancel"' in shown
            assert session.pauses.keys()  # shown, not yet decided
            await pilot.press("enter")
        with pytest.raises(httpx.TransportError):
            reply.result(10)
        saved = [r for r in on_disk_rules(session.rules.path) if r["action"] == "cancel"]
        assert [r["urls"] for r in saved] == [["*://127.0.0.1/*"]]
        with pytest.raises(httpx.TransportError):
            client.get(upstream.url("/ask-2"))  # decided by the new rule, no pause
        assert not session.pauses.keys()


def on_disk_rules(path) -> list[dict]:
    return tomllib.loads(path.read_text())["rule"]


@pytest.mark.e2e
async def test_live_auth_dialog_remembers_without_writing_the_password(settings, pool):
    from monitor.session import Session
    from tests.auth.servers import AuthUpstream

    password = "tea-party-42"
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text("version = 1\n")
    session = Session(settings)
    _, port = session.start()
    try:
        with (
            AuthUpstream("basic", users={"alice": password}, realm="Lab") as server,
            proxied(port) as client,
        ):
            reply = pool.submit(client.get, server.url("/echo/x"))
            view = paused_view(session)
            assert view.paused.event == "auth"
            app = DialogHost(dialog_for(view, session.controller))
            async with app.run_test(size=(110, 40)) as pilot:
                shown = app.export_screenshot()
                assert "Lab" in shown and "Basic" in shown
                await type_text(pilot, "alice")  # typing starts in the username
                await pilot.press("shift+tab", "3")  # out of the fields: remember host
                app.dialog.query_one("#username", Input).focus()
                await pilot.press("enter")
                await type_text(pilot, password)
                preview = text_of(app.dialog.query_one("#preview", Static))
                assert 'username = "alice"' in preview and password not in preview
                assert password not in app.export_screenshot()
                await pilot.press("enter")
                assert app.results and app.results[0].remember == "host"
                assert not any(password in notice for notice in app.notices)
            response = reply.result(10)
            assert response.status_code == 200 and response.json()["path"] == "/echo/x"
    finally:
        session.stop()
    rules_text = settings.rules.read_text()
    assert 'username = "alice"' in rules_text and "secret = " in rules_text
    assert password not in rules_text
    secrets = settings.rules.parent / "secrets.toml"
    assert password in secrets.read_text()
    assert secrets.stat().st_mode & 0o777 == 0o600


@pytest.mark.e2e
async def test_live_certificate_dialog_allow_always_pins_the_certificate(
    settings, upstream_ca, waylay_ca, pool
) -> None:
    import ssl

    from monitor.session import Session
    from tests.certificates.certs import make
    from tests.servers import Upstream

    cert = make("self-signed", upstream_ca)
    session = Session(settings)
    _, port = session.start()
    trust = ssl.create_default_context(cafile=str(waylay_ca))
    try:
        with (
            Upstream("bad", ssl_context=cert.context()) as bad,
            httpx.Client(proxy=f"http://127.0.0.1:{port}", verify=trust, timeout=20) as client,
        ):
            reply = pool.submit(client.get, bad.url("/secret"))
            view = paused_view(session)
            assert view.paused.event == "certificate"
            app = DialogHost(dialog_for(view, session.controller))
            async with app.run_test(size=(120, 40)) as pilot:
                shown = app.export_screenshot()
                assert cert.reason.replace(" ", "&#160;") in shown or cert.reason in shown
                await pilot.press("2", "y")
                preview = text_of(app.dialog.query_one("#preview", Static))
                assert 'action = "allow"' in preview and "fingerprint" in preview
                assert session.pauses.keys()  # shown, not decided yet
                await pilot.press("enter")
                assert app.results and app.results[0] == Answer("allow", remember="url")
            assert reply.result(10).status_code == 200
            [saved] = [r for r in on_disk_rules(settings.rules) if r["event"] == "certificate"]
            assert saved["action"] == "allow"
            assert saved["urls"] == [f"https://127.0.0.1:{bad.port}/*"]
            assert saved["fingerprint"] == cert.fingerprint
            # a new connection: the pinned rule allows it without asking
            with httpx.Client(proxy=f"http://127.0.0.1:{port}", verify=trust, timeout=20) as fresh:
                assert fresh.get(bad.url("/again")).status_code == 200
            assert not session.pauses.keys()
    finally:
        session.stop()


# --------------------------------------------------------------------------- forms that do not eat input


def test_the_header_editor_refuses_two_headers_on_one_line() -> None:
    with pytest.raises(ValueError, match="line 2 holds two headers .Accept and Content-Type."):
        parse_header_lines("Host: a\nAccept: */* Content-Type: text/plain")
    with pytest.raises(ValueError, match="two headers .X-A and host."):
        parse_header_lines("X-A: 1 host: b")
    # a colon inside a value is still a value
    assert parse_header_lines("X-Note: time: 5pm\nReferer: https://a.example/x") == [
        ("X-Note", "time: 5pm"),
        ("Referer", "https://a.example/x"),
    ]


async def test_the_edit_form_says_which_line_holds_two_headers() -> None:
    app, controller = host_for("request")
    async with app.run_test(size=(110, 40)) as pilot:
        await pilot.press("e")
        app.dialog.query_one("#edit-headers", TextArea).text = "Accept: a Cookie: b"
        await pilot.press("ctrl+s")
        error = text_of(app.dialog.query_one("#error", Static))
        assert "holds two headers (Accept and Cookie)" in error
        assert controller.answers == []


async def test_a_field_keeps_its_text_when_it_gets_focus() -> None:
    app, controller = host_for("request")
    async with app.run_test() as pilot:
        await pilot.press("w")
        url = app.dialog.query_one("#url-input", Input)
        assert app.focused is url and url.value == "https://api.example.com/items?id=7"
        await pilot.press(*"&x=1")  # appended, not a replacement of the whole URL
        assert url.value == "https://api.example.com/items?id=7&x=1"


@pytest.mark.parametrize(
    ("form", "labels"),
    [
        ("m", ["respond to the client with", "status", "content type", "body"]),
        ("e", ["edit the request", "method", "URL", "headers", "body"]),
        ("w", ["send the request upstream to"]),
    ],
)
async def test_every_field_has_a_visible_label(form, labels) -> None:
    app, _ = host_for("request")
    async with app.run_test(size=(110, 40)) as pilot:
        await pilot.press(form)
        shown = app.export_screenshot().replace("&#160;", " ")
        for label in labels:
            assert label in shown, label
        # every input of the open form has a Label right before it in its container
        form_widget = app.dialog.query_one("#forms").visible_content
        for field in form_widget.query("Input, TextArea"):
            siblings = list(field.parent.children)
            before = siblings[: siblings.index(field)]
            assert before and isinstance(before[-1], Label) and before[-1].display, field.id


async def test_the_auth_dialog_labels_its_fields() -> None:
    app, _ = host_for("auth")
    async with app.run_test(size=(110, 40)):
        shown = app.export_screenshot().replace("&#160;", " ")
        assert "username" in shown and "password" in shown


async def test_redirect_rewrite_starts_from_the_location_made_absolute() -> None:
    app, controller = host_for("redirect")
    async with app.run_test() as pilot:
        await pilot.press("w")
        assert app.dialog.query_one("#url-input", Input).value == "https://login.example.com/start"
    view = make_view("redirect")
    relative = dataclasses.replace(
        view, paused=dataclasses.replace(view.paused, details=(("Location", "/login?next=1"),))
    )
    app = DialogHost(dialog_for(relative, FakeController(), clock=fixed_clock))
    async with app.run_test() as pilot:
        await pilot.press("w")
        assert (
            app.dialog.query_one("#url-input", Input).value
            == "https://api.example.com/login?next=1"
        )


@pytest.mark.parametrize(
    ("default", "words"), [("continue", "then it continues"), ("cancel", "then it is cancelled")]
)
async def test_the_countdown_names_the_timeout_outcome(default, words) -> None:
    controller = FakeController()
    controller.ask_default = default
    app, _ = host_for("request", controller)
    async with app.run_test():
        subtitle = str(app.dialog.query_one("#frame").border_subtitle)
        assert words in subtitle and "--ask-default" not in subtitle


async def test_a_client_that_stopped_waiting_is_named_in_the_notice() -> None:
    app, _ = host_for("request")
    async with app.run_test() as pilot:
        gone = dataclasses.replace(  # what the proxy side's snapshot says (client_gone)
            make_view(),
            paused=None,
            state="error",
            error="client gone",
            notes=("client gone: it disconnected while paused at the request event",),
        )
        app.dialog.flow_updated(gone)
        await pilot.pause()
        assert app.results == [None]
        [notice] = app.notices
        assert "the client stopped waiting" in notice and "decided elsewhere" not in notice


async def test_toasts_never_cover_the_fields_of_a_dialog() -> None:
    from textual.widgets._toast import Toast, ToastRack

    app, _ = host_for("request")
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        for form in ("m", "e"):
            await pilot.press(form)
            for n in range(3):
                app.notify(f"a long notice number {n} that takes some room " * 2, timeout=30)
            for _ in range(50):
                await pilot.pause()
                toasts = [toast.region for toast in app.screen.query(Toast) if toast.region]
                if toasts:
                    break
            shown = app.export_screenshot().replace("&#160;", " ")
            assert "a long notice number 2" in shown  # the newest is on screen
            toasts.append(app.screen.query_one(ToastRack).region)
            fields = [w for w in app.dialog.query("Input, TextArea") if w.display]
            for field in fields:
                if not field.region:
                    continue
                for toast in toasts:
                    assert not toast.overlaps(field.region), (field.id, toast, field.region)
            await pilot.press("escape")
