"""Bad upstream certificates decided without a person: headless mode (nobody to ask:
reject), ``certificate`` rules pinned to a fingerprint, and connections that carry a
request already (no time to ask)."""

from __future__ import annotations

import socket

import pytest

from monitor.record import record_of
from tests.certificates.conftest import (
    allow_rule,
    client,
    flows_to,
    record_questions,
)
from tests.helpers import curl, headless, write_rules

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("kind", ["expired", "self-signed", "untrusted CA"])
def test_headless_without_a_rule_rejects_with_a_502_naming_the_problem(
    kind, cert_for, serve, start_session, waylay_ca
):
    cert = cert_for(kind)
    bad = serve(cert)
    session = start_session(headless=True)
    with client(session, waylay_ca, timeout=5) as c:
        r = c.get(bad.url("/x"))
    assert r.status_code == 502
    assert cert.reason in r.text and f"127.0.0.1:{bad.port}" in r.text
    assert "headless" in r.text and cert.fingerprint in r.text
    r = curl(session.port, bad.url("/y"), cacert=waylay_ca, timeout=5)
    assert r.stdout.splitlines()[-1] == "502" and cert.reason in r.stdout
    assert bad.requests == []
    for flow in flows_to(session, bad.port):
        assert cert.reason in flow.error.msg
        assert record_of(flow).certificate.fingerprint == cert.fingerprint


def test_headless_allow_rule_pinned_to_the_fingerprint_passes_until_the_certificate_changes(
    settings, cert_for, serve, start_session, waylay_ca
):
    cert = cert_for("expired")
    bad = serve(cert)
    bare_hex = cert.fingerprint.removeprefix("sha256:").replace(":", "").lower()
    write_rules(settings, allow_rule(bad.port, bare_hex))  # compared normalised
    session = start_session(headless=True)
    with client(session, waylay_ca, timeout=5) as c:
        r = c.get(bad.url("/pinned"))
    assert r.status_code == 200 and r.text == "hello from bad\n"
    [flow] = flows_to(session, bad.port)
    rec = record_of(flow)
    assert rec.rule_id == "dev-cert"
    assert ("certificate", "dev-cert", "allow", True) in rec.trace
    assert any("expired" in n and "allowed by rule dev-cert" in n for n in rec.notes)

    cert_for("expired").configure(bad.ctx)  # same host and port, another certificate
    with client(session, waylay_ca, timeout=5) as c:
        r = c.get(bad.url("/changed"))
    assert r.status_code == 502 and "expired" in r.text and "headless" in r.text
    assert [q["path"] for q in bad.requests] == ["/pinned"]


def test_reject_rule_fails_the_handshake_without_asking(
    settings, cert_for, serve, start_session, waylay_ca
):
    bad = serve(cert_for("not yet valid"))
    write_rules(
        settings,
        '[[rule]]\nid = "no-bad-certs"\nevent = "certificate"\naction = "reject"\n',
    )
    session = start_session()
    asked = record_questions(session)
    with client(session, waylay_ca, timeout=5) as c:
        r = c.get(bad.url("/nope"))
    assert r.status_code == 502
    assert "not yet valid" in r.text and "rejected by rule no-bad-certs" in r.text
    assert asked == [] and bad.requests == []
    [flow] = flows_to(session, bad.port)
    assert record_of(flow).rule_id == "no-bad-certs"


def test_allow_rule_without_fingerprint_allows_any_certificate_there(
    settings, cert_for, serve, start_session, waylay_ca
):
    bad = serve(cert_for("untrusted CA"))
    write_rules(settings, allow_rule(bad.port, None, rule_id="trust-dev-box"))
    session = start_session()
    asked = record_questions(session)
    with client(session, waylay_ca, timeout=5) as c:
        assert c.get(bad.url("/a")).status_code == 200
        cert_for("self-signed").configure(bad.ctx)
    with client(session, waylay_ca, timeout=5) as c:
        assert c.get(bad.url("/b")).status_code == 200
    assert asked == []
    assert [q["path"] for q in bad.requests] == ["/a", "/b"]


def test_valid_certificates_pass_whatever_the_rules_say(
    settings, tls_upstream, start_session, waylay_ca
):
    write_rules(settings, '[[rule]]\nid = "r"\nevent = "certificate"\naction = "reject"\n')
    session = start_session(headless=True)
    with client(session, waylay_ca, timeout=5) as c:
        assert c.get(tls_upstream.url("/fine")).status_code == 200


def _absolute_form_get(proxy_port: int, url: str) -> bytes:
    """A plain-HTTP request to the proxy for an https:// URL (no CONNECT): mitmproxy opens
    the TLS connection for a request that is already waiting on it."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as sock:
        host = url.split("/")[2]
        sock.sendall(f"GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_a_connection_opened_for_a_waiting_request_cannot_ask_and_is_rejected(
    settings, cert_for, serve, start_session
):
    cert = cert_for("expired")
    bad = serve(cert)
    session = start_session()
    asked = record_questions(session)
    reply = _absolute_form_get(session.port, bad.url("/absolute"))
    assert reply.startswith(b"HTTP/1.1 502")
    assert asked == [] and bad.requests == []
    [flow] = flows_to(session, bad.port)
    assert "no time to ask" in flow.error.msg and "expired" in flow.error.msg
    assert record_of(flow).certificate.fingerprint == cert.fingerprint

    # a pinned rule decides there too, without a question
    write_rules(settings, allow_rule(bad.port, cert.fingerprint))
    session.rules.load()
    reply = _absolute_form_get(session.port, bad.url("/absolute-allowed"))
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"hello from bad\n")
    assert asked == []


def test_waylay_headless_subprocess_with_curl(settings, cert_for, serve, waylay_ca):
    pinned, other = cert_for("self-signed"), cert_for("wrong host")
    good = serve(pinned, name="pinned")
    bad = serve(other, name="other")
    write_rules(settings, allow_rule(good.port, pinned.fingerprint))
    args = ["--confdir", str(settings.confdir), "--rules", str(settings.rules)]
    with headless(*args, "--upstream-ca", str(settings.upstream_ca)) as w:
        ok = curl(w.port, good.url("/ok"), cacert=waylay_ca, timeout=5)
        assert ok.stdout.splitlines()[-1] == "200", ok
        assert ok.stdout.startswith("hello from pinned")
        no = curl(w.port, bad.url("/no"), cacert=waylay_ca, timeout=5)
        assert no.stdout.splitlines()[-1] == "502", no
        assert "hostname mismatch" in no.stdout
        lines = w.wait_lines(2)
    assert lines[0].endswith(f"GET https://127.0.0.1:{good.port}/ok 200 rule=dev-cert")
    assert f"GET https://127.0.0.1:{bad.port}/no error: waylay: the TLS certificate" in lines[1]
    assert "hostname mismatch" in lines[1]
    assert bad.requests == []


def test_allowing_one_certificate_leaves_verification_on_for_the_others(
    settings, cert_for, serve, start_session, waylay_ca
):
    """Per connection, never global: ssl_insecure stays off and another upstream's bad
    certificate is still caught after one was allowed."""
    allowed, other = serve(cert_for("self-signed")), serve(cert_for("self-signed"))
    write_rules(settings, allow_rule(allowed.port, None))
    session = start_session(headless=True)
    with client(session, waylay_ca, timeout=5) as c:
        assert c.get(allowed.url("/a")).status_code == 200
        assert c.get(other.url("/b")).status_code == 502
        assert c.get(allowed.url("/c")).status_code == 200
    assert session.proxy.master.options.ssl_insecure is False
    assert other.requests == []
