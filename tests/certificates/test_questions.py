"""Bad upstream certificates with a person to ask (the ``certificate`` event), at the Session
level: real TLS upstreams, real clients trusting only waylay's CA, answers delivered the
way the screen delivers them (``ProxyController.answer``)."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import threading

import httpx
import pytest

from monitor.har import make_har
from monitor.record import record_of
from policies import RulesFile
from tests.certificates.certs import BAD
from tests.certificates.conftest import (
    client,
    flows_to,
    guard,
    question,
    record_questions,
)
from tests.helpers import curl, wait_for
from widgets.model import Answer

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("kind", BAD)
def test_each_bad_certificate_is_asked_about_with_its_reason_and_rejecting_gives_502(
    kind, cert_for, serve, start_session, waylay_ca, pool
):
    cert = cert_for(kind)
    bad = serve(cert)
    session = start_session()
    with client(session, waylay_ca) as c:
        pending = pool.submit(c.get, bad.url("/secret"))
        key = question(session)
        paused = session.pauses.info(key)
        info = paused.certificate
        assert paused.url == f"https://127.0.0.1:{bad.port}/"
        assert (info.host, info.port) == ("127.0.0.1", bad.port)
        assert info.reason == cert.reason
        assert info.fingerprint == cert.fingerprint
        assert info.chain and info.chain[0] == info.subject
        if kind == "wrong host":
            assert info.sans == ("wrong.example",)
        elif kind != "untrusted CA" or info.sans:
            assert "127.0.0.1" in info.sans
        # the flow list shows the waiting request as paused on the certificate
        view = session.recorder.view(key)
        assert view.state_label == "⏸ certificate" and view.path == "/secret"
        assert view.paused.certificate == info and view.certificate == info
        assert not pending.done()

        assert session.controller.answer(key, "certificate", Answer("reject")) is None
        r = pending.result(10)
    assert r.status_code == 502
    assert f"127.0.0.1:{bad.port}" in r.text and cert.reason in r.text
    assert "rejected by you" in r.text
    assert bad.requests == []
    [flow] = flows_to(session, bad.port)
    assert flow.id == key
    assert flow.error is not None and cert.reason in flow.error.msg
    view = session.recorder.view(flow.id)
    assert view.state == "error" and view.certificate == info
    assert any("rejected by you" in n for n in view.notes)
    assert RulesFile(session.settings.rules).load() is not None
    assert not session.settings.rules.exists()  # "once" remembers nothing


def test_allow_once_lets_the_waiting_request_through_and_the_next_connection_asks_again(
    cert_for, serve, start_session, waylay_ca, pool
):
    cert = cert_for("expired")
    bad = serve(cert)
    session = start_session()
    with client(session, waylay_ca) as c:
        pending = pool.submit(c.get, bad.url("/one"))
        key = question(session)
        assert session.controller.answer(key, "certificate", Answer("allow")) is None
        r = pending.result(10)
        assert r.status_code == 200 and r.text == "hello from bad\n"
        assert c.get(bad.url("/two")).status_code == 200  # same connection: no new question
    assert [q["path"] for q in bad.requests] == ["/one", "/two"]
    for flow in flows_to(session, bad.port):
        view = session.recorder.view(flow.id)
        assert view.certificate is not None and view.certificate.reason == "expired"
        assert any("expired" in n and "allowed by you (once)" in n for n in view.notes)
    assert session.recorder.view(key).path == "/one"
    har = json.dumps(make_har(list(session.recorder.flows.values())))  # exports still work
    assert "/two" in har

    with client(session, waylay_ca) as c:  # a new connection: "once" was for the other one
        pending = pool.submit(c.get, bad.url("/three"))
        key = question(session)
        session.controller.answer(key, "certificate", Answer("reject"))
        assert pending.result(10).status_code == 502
    assert [q["path"] for q in bad.requests] == ["/one", "/two"]


def test_remember_always_pins_the_certificate_and_a_new_certificate_asks_again(
    cert_for, serve, start_session, waylay_ca, pool
):
    cert = cert_for("self-signed")
    bad = serve(cert)
    session = start_session()
    with client(session, waylay_ca) as c:
        pending = pool.submit(c.get, bad.url("/first"))
        key = question(session)
        preview = session.controller.preview_rule(
            key, "certificate", Answer("allow", remember="url")
        )
        assert f'fingerprint = "{cert.fingerprint}"' in preview
        assert (
            session.controller.answer(key, "certificate", Answer("allow", remember="url")) is None
        )
        assert pending.result(10).status_code == 200
    rules = RulesFile(session.settings.rules)
    rules.load()
    [rule] = rules.rules
    assert rule.event == "certificate" and rule.action == "allow"
    assert list(rule.urls) == [f"https://127.0.0.1:{bad.port}/*"]
    assert rule.fingerprint == cert.fingerprint

    # the next connection passes without asking (a curl process: a brand-new client)
    r = curl(session.port, bad.url("/second"), cacert=waylay_ca)
    assert r.stdout.splitlines()[-1] == "200", r
    assert session.pauses.keys() == []
    [second] = [f for f in flows_to(session, bad.port) if f.request.path == "/second"]
    assert session.recorder.view(second.id).rule_id == rule.id

    # the upstream's certificate changes: the pinned rule does not apply, waylay asks again
    cert_for("self-signed").configure(bad.ctx)
    with client(session, waylay_ca) as c:
        pending = pool.submit(c.get, bad.url("/third"))
        key = question(session)
        assert session.pauses.info(key).certificate.fingerprint != cert.fingerprint
        session.controller.answer(key, "certificate", Answer("reject"))
        assert pending.result(10).status_code == 502
    assert [q["path"] for q in bad.requests] == ["/first", "/second"]


def test_a_valid_upstream_never_asks(tls_upstream, start_session, waylay_ca):
    session = start_session()
    with client(session, waylay_ca, timeout=5) as c:
        assert c.get(tls_upstream.url("/ok")).status_code == 200
    r = curl(session.port, tls_upstream.url("/curl"), cacert=waylay_ca, timeout=5)
    assert r.stdout.splitlines()[-1] == "200", r
    assert session.pauses.keys() == [] and guard(session).questions() == {}
    for flow in session.recorder.flows.values():
        assert record_of(flow).certificate is None


def test_timeout_rejects(cert_for, serve, start_session, waylay_ca):
    bad = serve(cert_for("untrusted CA"))
    session = start_session(ask_timeout=0.5)
    with client(session, waylay_ca) as c:
        r = c.get(bad.url("/late"))
    assert r.status_code == 502
    assert "untrusted issuer" in r.text and "no answer within 0.5 s" in r.text
    assert bad.requests == []


def test_two_requests_waiting_on_one_http2_connection_get_one_question(
    cert_for, start_session, waylay_ca, pool
):
    """curl --parallel puts both transfers on one HTTP/2 connection (it waits for the first
    connection to know it can multiplex): both wait on the one bad handshake."""
    from tests.h2server import H2Upstream

    with H2Upstream(cert_for("expired").context(alpn=["h2"])) as h2up:
        session = start_session()
        asked = record_questions(session)
        run = pool.submit(
            curl,
            session.port,
            h2up.url("/a"),
            "--parallel",
            "--http2",
            h2up.url("/b"),
            cacert=waylay_ca,
        )
        key = question(session)
        assert session.controller.answer(key, "certificate", Answer("allow")) is None
        result = run.result(20)
        assert result.returncode == 0, result
        assert "h2 answer for /a" in result.stdout and "h2 answer for /b" in result.stdout
        assert result.stdout.count("\n200") == 2  # -w writes each transfer's status
        assert h2up.connections == 1
        assert sorted(h2up.requests) == [(1, "/a"), (1, "/b")]
    assert asked == [key]
    for flow in flows_to(session, h2up.port):
        assert flow.request.http_version == "HTTP/2.0"
        assert any("allowed by you (once)" in n for n in record_of(flow).notes)


def test_connections_bringing_the_same_certificate_share_one_question(
    cert_for, serve, start_session, waylay_ca, pool
):
    bad = serve(cert_for("wrong host"))
    session = start_session()
    asked = record_questions(session)
    runs = [pool.submit(curl, session.port, bad.url(f"/c{i}"), cacert=waylay_ca) for i in (1, 2)]
    key = question(session)
    wait_for(lambda: guard(session).questions() == {key: 2}, what="the second connection waiting")
    session.controller.answer(key, "certificate", Answer("allow"))
    for run in runs:
        assert run.result(20).stdout.splitlines()[-1] == "200"
    assert sorted(q["path"] for q in bad.requests) == ["/c1", "/c2"]
    assert asked == [key] and guard(session).questions() == {}


def test_the_client_leaving_ends_the_question(cert_for, serve, start_session, waylay_ca):
    bad = serve(cert_for("expired"))
    session = start_session()
    proc = subprocess.Popen(
        ["curl", "-sS", "--cacert", str(waylay_ca), "-x", f"http://127.0.0.1:{session.port}",
         bad.url("/gone")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        key = question(session)
    finally:
        proc.kill()
        proc.wait()
    wait_for(lambda: session.pauses.keys() == [], what="the question to end")
    wait_for(lambda: session.recorder.view(key).finished, what="the flow to end")
    assert bad.requests == []


class _ClosesFirstConnection:
    """A TLS upstream that drops its first connection right after the handshake (as a
    server whose keep-alive runs out while a person thinks) and answers on the next."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.connections = 0
        self.requests: list[bytes] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            try:
                with self.ctx.wrap_socket(raw, server_side=True) as conn:
                    if self.connections == 1:
                        continue  # handshake done, then gone
                    head = conn.recv(65536)
                    self.requests.append(head.split(b"\r\n", 1)[0])
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            except OSError:
                pass

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._sock.close()
        self._thread.join(5)


def test_an_answer_holds_for_the_reconnect_when_the_upstream_dropped_the_idle_connection(
    cert_for, start_session, waylay_ca, pool
):
    upstream = _ClosesFirstConnection(cert_for("expired").context())
    try:
        session = start_session()
        asked = record_questions(session)
        with client(session, waylay_ca) as c:
            pending = pool.submit(c.get, upstream.url("/after-reconnect"))
            key = question(session)
            server_conn = session.recorder.flows[key].server_conn
            wait_for(lambda: server_conn.timestamp_end, what="the upstream to drop the connection")
            session.controller.answer(key, "certificate", Answer("allow"))
            r = pending.result(10)
        assert r.status_code == 200 and r.text == "ok\n"
        assert upstream.connections == 2 and asked == [key]
        assert upstream.requests == [b"GET /after-reconnect HTTP/1.1"]
        notes = session.recorder.view(key).notes
        assert any("allowed by you (once)" in n for n in notes), notes
    finally:
        upstream.close()


def test_reverse_proxy_mode_asks_on_the_first_request_too(cert_for, serve, start_session, pool):
    bad = serve(cert_for("self-signed"))
    session = start_session(mode=f"reverse:https://127.0.0.1:{bad.port}")
    with httpx.Client(timeout=20) as c:  # plain HTTP to waylay, which speaks TLS upstream
        pending = pool.submit(c.get, f"http://127.0.0.1:{session.port}/rev")
        key = question(session)
        assert session.pauses.info(key).certificate.reason == "self-signed"
        session.controller.answer(key, "certificate", Answer("allow"))
        r = pending.result(10)
    assert r.status_code == 200 and r.text == "hello from bad\n"
    assert [q["path"] for q in bad.requests] == ["/rev"]
