"""15.2: a spoofed Host header must not decide which rule applies. The request goes to
the destination in the request line (or the CONNECT target, or the reverse target), so
rules, the flow list, the headless log and HAR use that, and say when Host differs."""

from __future__ import annotations

import dataclasses
import json
import socket

import pytest

from tests.helpers import common, curl, headless, wait_for

pytestmark = pytest.mark.e2e


def cancel_rule(settings, host_pattern: str = "127.0.0.1") -> None:
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text(
        'version = 1\n[[rule]]\nid = "no-secret"\n'
        f'urls = ["*://{host_pattern}/secret*"]\naction = "cancel"\n'
    )


def test_absolute_form_with_a_spoofed_host_is_still_cancelled(settings, upstream):
    cancel_rule(settings)
    with headless(*common(settings)) as w:
        r = curl(w.port, upstream.url("/secret"), "-H", "Host: other.example")
        assert not r.stdout.endswith("\n200"), r.stdout
        [line] = w.wait_lines(1)
    assert upstream.requests == []
    assert f"GET http://127.0.0.1:{upstream.port}/secret cancelled rule=no-secret" in line
    assert "Host header says other.example" in line


def test_a_rule_about_the_spoofed_host_does_not_apply_to_the_real_destination(settings, upstream):
    cancel_rule(settings, "other.example")
    with headless(*common(settings)) as w:
        r = curl(w.port, upstream.url("/secret"), "-H", "Host: other.example")
        assert r.stdout.endswith("\n200")
        [line] = w.wait_lines(1)
    assert "rule=" not in line


def test_connect_with_a_spoofed_host_inside_the_tunnel(settings, tls_upstream, waylay_ca):
    cancel_rule(settings)
    with headless(*common(settings)) as w:
        r = curl(w.port, tls_upstream.url("/secret"), "-H", "Host: other.example", cacert=waylay_ca)
        assert not r.stdout.endswith("\n200"), r.stdout
        line = wait_for(lambda: [x for x in w.lines if "/secret" in x], what="the line")[0]
    assert tls_upstream.requests == []
    assert f"https://127.0.0.1:{tls_upstream.port}/secret cancelled rule=no-secret" in line


def test_http2_authority_with_a_spoofed_host(settings, tls_upstream, waylay_ca):
    """curl sends the Host header as HTTP/2's :authority."""
    cancel_rule(settings)
    with headless(*common(settings)) as w:
        r = curl(
            w.port,
            tls_upstream.url("/secret"),
            "--http2",
            "-H",
            "Host: other.example",
            cacert=waylay_ca,
        )
        assert not r.stdout.endswith("\n200"), r.stdout
        wait_for(lambda: any("/secret" in x for x in w.lines), what="the line")
    assert tls_upstream.requests == []


def test_reverse_mode_with_a_spoofed_host(settings, upstream):
    cancel_rule(settings)
    with headless(*common(settings), "--mode", f"reverse:{upstream.base}") as w:
        with socket.create_connection(("127.0.0.1", w.port), timeout=10) as s:
            s.sendall(b"GET /secret HTTP/1.1\r\nHost: other.example\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        assert not data.startswith(b"HTTP/1.1 200"), data
        [line] = w.wait_lines(1)
    assert upstream.requests == []
    assert "cancelled rule=no-secret" in line


def test_upstream_mode_with_a_spoofed_host(settings, upstream, tmp_path):
    """waylay in front of another proxy (a second waylay, without rules): the first
    one's rule holds."""
    cancel_rule(settings)
    inner_rules = tmp_path / "inner.toml"
    inner_rules.write_text("version = 1\n")
    inner_args = ["--confdir", str(settings.confdir), "--rules", str(inner_rules)]
    with headless(*inner_args) as inner:
        outer_args = [*common(settings), "--mode", f"upstream:http://127.0.0.1:{inner.port}"]
        with headless(*outer_args) as outer:
            r = curl(outer.port, upstream.url("/secret"), "-H", "Host: other.example")
            assert not r.stdout.endswith("\n200"), r.stdout
            [line] = outer.wait_lines(1)
        assert inner.lines == []
    assert upstream.requests == []
    assert "cancelled rule=no-secret" in line


def test_screen_and_har_use_the_destination_and_note_the_host(settings, upstream, tmp_path):
    har = tmp_path / "s.har"
    with headless(*common(settings), "--har", str(har)) as w:
        r = curl(w.port, upstream.url("/echo"), "-H", "Host: other.example")
        assert r.stdout.endswith("\n200")
        w.wait_lines(1)
        assert w.terminate() == 0
    [entry] = json.loads(har.read_text())["log"]["entries"]
    assert entry["request"]["url"] == upstream.url("/echo")


def test_flow_list_row_shows_the_destination_and_a_host_note(settings, upstream):
    from monitor.session import Session

    views = {}

    def sink(batch, removed):
        for v in batch:
            views[v.id] = v

    session = Session(settings, sink=sink)
    _, port = session.start()
    try:
        r = curl(port, upstream.url("/echo"), "-H", "Host: other.example")
        assert r.stdout.endswith("\n200")
        view = wait_for(lambda: next((v for v in views.values() if v.finished), None), what="a row")
    finally:
        session.stop()
    assert view.host == "127.0.0.1" and view.url == upstream.url("/echo")
    assert any(
        f"Host header says other.example, request goes to 127.0.0.1:{upstream.port}" in n
        for n in view.notes
    ), view.notes


def test_credentials_for_the_host_header_never_go_to_another_destination(settings, monkeypatch):
    """A credentials rule for server A must not answer a challenge from server B because
    the request to B says ``Host: A``: the password would go to B."""
    from monitor.session import Session
    from tests.auth.conftest import PASSWORD, credentials_rule
    from tests.auth.servers import AuthUpstream
    from tests.helpers import write_rules

    monkeypatch.setenv("WAYLAY_SECRET_STAFF", PASSWORD)
    with (
        AuthUpstream("basic", users={"alice": PASSWORD}, name="a") as a,
        AuthUpstream("basic", users={"alice": "b-password"}, name="b") as b,
    ):
        write_rules(settings, credentials_rule(urls=f'["http://127.0.0.1:{a.port}/*"]'))
        # headless: no screen, so a question with no rule gets its outcome at once
        session = Session(dataclasses.replace(settings, headless=True))
        port = session.start()[1]
        try:
            r = curl(port, b.url("/echo/secret"), "-H", f"Host: 127.0.0.1:{a.port}")
            assert r.stdout.endswith("\n401"), r.stdout  # no rule for B: the 401 passes
            assert all(at.authorization is None for at in b.attempts), b.attempts
            # and the rule still answers A itself
            r = curl(port, a.url("/echo/secret"))
            assert r.stdout.endswith("\n200"), r.stdout
        finally:
            session.stop()


@pytest.mark.parametrize(
    ("host", "port", "header", "note"),
    [
        ("127.0.0.1", 8080, "127.0.0.1:8080", None),
        ("example.com", 80, "example.com", None),
        ("example.com", 80, "example.com:80", None),
        ("Example.COM", 8080, "example.com.:8080", None),  # parsed: case, trailing dot
        ("example.com", 8080, "example.com", "Host header says example.com, request goes to"),
        ("example.com", 8080, "example.com:8081", "Host header says example.com:8081,"),
        ("example.com", 8080, "other.example:8080", "Host header says other.example:8080,"),
        ("::1", 8080, "[::1]:8080", None),
        ("::1", 8080, "::1:8080", "Host header says ::1:8080, request goes to"),  # ambiguous
        ("::1", 8080, "[::2]:8080", "Host header says [::2]:8080,"),
    ],
)
def test_host_mismatch_says_only_when_host_and_port_differ(host, port, header, note):
    from mitmproxy.test import tflow

    from monitor.destination import host_mismatch

    flow = tflow.tflow()
    flow.request.host, flow.request.port, flow.request.scheme = host, port, "http"
    flow.request.headers["Host"] = header
    got = host_mismatch(flow)
    assert (got is None) if note is None else (got is not None and got.startswith(note)), got
