"""407 from an upstream proxy: waylay in ``--mode upstream:URL`` in front of a second, real
mitmproxy (``mitmdump --set proxyauth=USER:PASS``) on loopback. Plain HTTP requests get the
407 as a response; HTTPS goes through a CONNECT that the proxy answers 407, which waylay
probes and answers before the real CONNECT is sent."""

from __future__ import annotations

import pytest

from monitor.record import record_of
from tests.auth.conftest import (
    PROXY_PASSWORD,
    PROXY_USER,
    asked,
    client,
    credentials_rule,
    paused,
)
from tests.helpers import curl, write_rules
from widgets.model import Answer

pytestmark = pytest.mark.e2e


def proxy_rule(secret="proxy") -> str:
    return credentials_rule(
        rule_id="corp-proxy",
        urls='["<all_urls>"]',
        username=PROXY_USER,
        secret=secret,
        extra="proxy = true\n",
    )


@pytest.fixture
def via_proxy(settings, upstream_proxy):
    settings.mode = f"upstream:{upstream_proxy.url}"
    return settings


def all_notes(session) -> list[str]:
    return [n for f in session.recorder.flows.values() for n in record_of(f).notes]


def test_rule_answers_the_proxy_for_http_and_https(
    via_proxy, start_session, monkeypatch, upstream, tls_upstream, waylay_ca, upstream_proxy
):
    monkeypatch.setenv("WAYLAY_SECRET_PROXY", PROXY_PASSWORD)
    write_rules(via_proxy, proxy_rule())
    session = start_session()
    with client(session, waylay_ca) as c:
        r = c.get(upstream.url("/echo/plain"))
        assert r.status_code == 200
        assert r.json()["path"] == "/echo/plain"
        # the proxy strips its own credentials: upstream never sees them
        assert "proxy-authorization" not in r.json()["headers"]
    p = curl(session.port, tls_upstream.url("/echo/secure"), cacert=waylay_ca)
    body, _, status = p.stdout.rpartition("\n")
    assert (p.returncode, status) == (0, "200"), p.stderr
    assert '"server": "tls"' in body
    shown = all_notes(session)
    assert (
        f"auth: 407 from the upstream proxy 127.0.0.1:{upstream_proxy.port}: Basic realm 'mitmproxy'"
        in shown
    )
    assert f"auth: credentials supplied for {PROXY_USER} (rule corp-proxy)" in shown
    assert not any(PROXY_PASSWORD in n for n in shown)


def test_https_first_then_http_reuses_the_proxy_credentials(
    via_proxy, start_session, monkeypatch, upstream, tls_upstream, waylay_ca
):
    monkeypatch.setenv("WAYLAY_SECRET_PROXY", PROXY_PASSWORD)
    write_rules(via_proxy, proxy_rule())
    session = start_session()
    with client(session, waylay_ca) as c:
        assert c.get(tls_upstream.url("/echo")).status_code == 200
        assert c.get(tls_upstream.url("/echo")).status_code == 200
        assert c.get(upstream.url("/echo")).status_code == 200
    connects = [f for f in session.recorder.flows.values() if f.request.method == "CONNECT"]
    assert len(connects) == 1  # one probe and event; later CONNECTs carry the cached header
    assert connects[0].response.status_code == 200
    last = list(session.recorder.flows.values())[-1]
    assert any(
        "Proxy-Authorization for proxyuser sent up front" in n for n in record_of(last).notes
    )


def test_the_dialog_answers_the_proxy(via_proxy, start_session, pool, upstream, upstream_proxy):
    write_rules(via_proxy, "")
    session = start_session()
    with client(session) as c:
        fut = pool.submit(c.get, upstream.url("/echo"))
        [fid] = paused(session)
        details = dict(session.pauses.info(fid).details)
        assert details == {
            "host": "127.0.0.1",
            "port": str(upstream_proxy.port),
            "proxy": "yes",
            "realm": "mitmproxy",
            "scheme": "Basic",
            "url": upstream.url("/echo"),
        }
        wrong = Answer("credentials", {"username": PROXY_USER, "password": "nope"})
        assert session.controller.answer(fid, "auth", wrong) is None
        assert asked(session, 2) == fid
        right = Answer(
            "credentials", {"username": PROXY_USER, "password": PROXY_PASSWORD}, remember="host"
        )
        assert session.controller.answer(fid, "auth", right) is None
        r = fut.result(10)
        assert r.status_code == 200 and r.json()["path"] == "/echo"
    text = via_proxy.rules.read_text()
    assert "proxy = true" in text
    assert "urls" not in text  # every URL: the default, so not written
    assert f'username = "{PROXY_USER}"' in text and PROXY_PASSWORD not in text
    assert session.rules.secrets.get(f"auth-127-0-0-1-mitmproxy-{PROXY_USER}") == PROXY_PASSWORD


def test_the_dialog_answers_a_connect(
    via_proxy, start_session, pool, tls_upstream, waylay_ca, upstream_proxy
):
    write_rules(via_proxy, "")
    session = start_session()
    fut = pool.submit(curl, session.port, tls_upstream.url("/echo"), cacert=waylay_ca)
    [fid] = paused(session)
    info = session.pauses.info(fid)
    assert (info.method, info.url) == ("CONNECT", f"https://127.0.0.1:{tls_upstream.port}/")
    assert dict(info.details)["proxy"] == "yes"
    assert session.recorder.view(fid).state_label == "⏸ auth"
    answer = Answer("credentials", {"username": PROXY_USER, "password": PROXY_PASSWORD})
    assert session.controller.answer(fid, "auth", answer) is None
    p = fut.result(20)
    assert p.stdout.endswith("\n200"), p.stderr


def test_a_wrong_proxy_password_gives_the_client_the_407(
    via_proxy, start_session, monkeypatch, upstream
):
    monkeypatch.setenv("WAYLAY_SECRET_PROXY", "wrong")
    write_rules(via_proxy, proxy_rule())
    session = start_session()
    with client(session) as c:
        r = c.get(upstream.url("/echo"))
    assert r.status_code == 407
    assert "proxy-authenticate" in r.headers
    assert all_notes(session)[-1] == "auth: rule corp-proxy gave them; the 407 passes to the client"
    assert upstream.requests == []


def test_an_unanswered_connect_gives_the_client_a_502(
    via_proxy, start_session, tls_upstream, waylay_ca
):
    """mitmproxy fails a CONNECT the upstream proxy refuses: the client gets a 502 naming
    the 407, and the next CONNECT probes and decides again."""
    via_proxy.headless = True
    write_rules(via_proxy, "")
    session = start_session()
    for _ in range(2):
        p = curl(session.port, tls_upstream.url("/echo"), cacert=waylay_ca)
        assert p.stdout.endswith("\n502")
        assert "refused HTTP CONNECT request: 407" in p.stdout
    connects = [f for f in session.recorder.flows.values() if f.request.method == "CONNECT"]
    assert len(connects) >= 2
    assert record_of(connects[0]).notes[-1] == (
        "auth: nobody to ask (headless); the CONNECT goes on without credentials "
        "(the client gets a 502)"
    )
    assert tls_upstream.requests == []
