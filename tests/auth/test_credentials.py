"""401 challenges end-to-end: a real session, real Basic and Digest servers, real clients
(httpx and curl). Credentials come from rules (environment and file secrets) and from a
person, delivered the way the screen delivers them (``ProxyController.answer``)."""

from __future__ import annotations

import base64
import json
import ssl

import httpx
import pytest

from monitor.record import REDACTED, record_of
from policies import SecretStore
from tests.auth.conftest import (
    PASSWORD,
    asked,
    client,
    credentials_rule,
    notes,
    paused,
)
from tests.auth.servers import AuthUpstream, parse_digest
from tests.helpers import curl, write_rules
from widgets.model import Answer

pytestmark = pytest.mark.e2e


def give_secret(settings, monkeypatch, source: str, name: str = "staff", value: str = PASSWORD):
    if source == "env":
        monkeypatch.setenv(f"WAYLAY_SECRET_{name.upper().replace('-', '_')}", value)
    else:
        SecretStore(settings.rules.parent).set(name, value)


def fetch(session, url: str, via: str, waylay_ca, *, method="GET", body: bytes | None = None):
    """(status, body bytes) as the client saw them."""
    if via == "httpx":
        with client(session, waylay_ca) as c:
            r = c.request(method, url, content=body)
            return r.status_code, r.content
    args = ["-X", method] + (["--data-binary", body.decode()] if body is not None else [])
    p = curl(session.port, url, *args, cacert=waylay_ca)
    assert p.returncode == 0, p.stderr
    text, _, status = p.stdout.rpartition("\n")
    return int(status), text.encode()


def tls_context(upstream_ca):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    upstream_ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    return ctx


CASES = [
    # scheme, Digest algorithm, secret from, client, TLS upstream
    ("basic", None, "env", "httpx", False),
    ("basic", None, "file", "curl", False),
    ("basic", None, "env", "curl", True),
    ("digest", "MD5", "env", "curl", False),
    ("digest", "MD5", "file", "httpx", False),
    ("digest", "SHA-256", "env", "httpx", True),
    ("digest", "SHA-256", "file", "curl", False),
]


@pytest.mark.parametrize(("scheme", "algorithm", "secret", "via", "tls"), CASES)
def test_rule_credentials_answer_the_challenge(
    settings,
    start_session,
    monkeypatch,
    waylay_ca,
    upstream_ca,
    scheme,
    algorithm,
    secret,
    via,
    tls,
):
    give_secret(settings, monkeypatch, secret)
    write_rules(settings, credentials_rule())
    session = start_session()
    algorithms = (algorithm,) if algorithm else ()
    ssl_context = tls_context(upstream_ca) if tls else None
    with AuthUpstream(
        scheme, users={"alice": PASSWORD}, algorithms=algorithms, ssl_context=ssl_context
    ) as srv:
        status, body = fetch(session, srv.url("/echo/doc?x=1"), via, waylay_ca)
        assert status == 200
        echoed = json.loads(body)
        assert (echoed["server"], echoed["path"]) == (scheme, "/echo/doc?x=1")
        assert [a.accepted for a in srv.attempts] == [False, True]
        sent = srv.attempts[1].authorization
        assert sent.lower().startswith(scheme)
        if algorithm:
            assert parse_digest(sent)["algorithm"] == algorithm
    shown = notes(session)
    assert shown[0].startswith(f"auth: 401 from 127.0.0.1:{srv.port}: {scheme.title()}")
    assert "auth: credentials supplied for alice (rule staff)" in shown
    assert shown[-1] == "auth: 200 OK with credentials for alice"
    assert not any(PASSWORD in n for n in shown)
    flow = list(session.recorder.flows.values())[-1]
    assert record_of(flow).rule_id == "staff"


@pytest.mark.parametrize("via", ["httpx", "curl"])
def test_post_body_is_sent_again_intact(settings, start_session, monkeypatch, waylay_ca, via):
    give_secret(settings, monkeypatch, "env")
    write_rules(settings, credentials_rule())
    session = start_session()
    body = json.dumps({"name": "zoë", "items": list(range(50))}).encode()
    with AuthUpstream("digest", users={"alice": PASSWORD}) as srv:
        status, answer = fetch(
            session, srv.url("/echo/form"), via, waylay_ca, method="POST", body=body
        )
        assert status == 200
        echoed = json.loads(answer)
        assert echoed["method"] == "POST"
        assert echoed["body"].encode() == body
        assert echoed["headers"]["content-length"] == str(len(body))
        assert [(a.method, a.accepted) for a in srv.attempts] == [("POST", False), ("POST", True)]


def test_later_requests_carry_the_credentials_up_front(
    settings, start_session, monkeypatch, upstream
):
    give_secret(settings, monkeypatch, "env")
    write_rules(settings, credentials_rule())
    session = start_session()
    with AuthUpstream("digest", users={"alice": PASSWORD}) as srv, client(session) as c:
        assert c.get(srv.url("/docs/a")).status_code == 200
        assert c.get(srv.url("/docs/b")).status_code == 200
        assert c.post(srv.url("/docs/sub/c"), content=b"x").status_code == 200
        assert [a.accepted for a in srv.attempts] == [False, True, True, True]
        counts = [parse_digest(a.authorization)["nc"] for a in srv.attempts[1:]]
        assert counts == ["00000001", "00000002", "00000003"]  # one nonce, counted per use
        assert "sent up front" in notes(session)[0]
        # another server (another port) gets nothing
        assert "authorization" not in c.get(upstream.url("/echo")).json()["headers"]


def test_basic_then_digest_on_the_same_server_answers_the_digest_challenge(
    settings, start_session, monkeypatch
):
    """A server that asked for Basic and then moves to Digest: the cached Basic goes up
    front and is refused with a Digest challenge. That is no verdict on the credentials:
    the matching rule answers the Digest challenge and the client gets the 200."""
    give_secret(settings, monkeypatch, "env")
    write_rules(settings, credentials_rule())
    session = start_session()
    with AuthUpstream("basic", users={"alice": PASSWORD}) as srv, client(session) as c:
        assert c.get(srv.url("/echo/a")).status_code == 200
        srv.scheme = "digest"  # the same server, host and port now wants Digest
        r = c.get(srv.url("/echo/b"))
        assert r.status_code == 200, r.text
        assert r.json()["path"] == "/echo/b"
        again = c.get(srv.url("/echo/c"))
        assert again.status_code == 200
        sent = [(a.path, (a.authorization or "").split(" ")[0], a.accepted) for a in srv.attempts]
        assert sent == [
            ("/echo/a", "", False),
            ("/echo/a", "Basic", True),
            ("/echo/b", "Basic", False),  # the cached Basic, up front
            ("/echo/b", "Digest", True),  # the rule's credentials, signed for Digest
            ("/echo/c", "Digest", True),  # now the cached Digest goes up front
        ]
    shown = notes(session, list(session.recorder.flows)[1])
    assert "auth: credentials supplied for alice (rule staff)" in shown
    assert not any("were rejected" in n for n in shown)
    assert shown[-1] == "auth: 200 OK with credentials for alice"


def test_a_rewritten_request_does_not_take_the_credentials_along(
    settings, start_session, monkeypatch, upstream
):
    """The cache applies after the decider: a rule that sends the request to another host
    must not leak this host's credentials to it."""
    give_secret(settings, monkeypatch, "env")
    with AuthUpstream("basic", users={"alice": PASSWORD}) as srv:
        write_rules(
            settings,
            credentials_rule()
            + f'[[rule]]\nid = "away"\nurls = ["*://127.0.0.1:{srv.port}/elsewhere*"]\n'
            f'action = "rewrite"\nurl = "{upstream.url("/echo")}"\n',
        )
        session = start_session()
        with client(session) as c:
            assert c.get(srv.url("/echo")).status_code == 200
            r = c.get(srv.url("/elsewhere"))
        assert r.json()["server"] == "plain"
        assert "authorization" not in r.json()["headers"]


def test_digest_is_chosen_over_basic_in_one_header(settings, start_session, monkeypatch):
    give_secret(settings, monkeypatch, "env")
    write_rules(settings, credentials_rule())
    session = start_session()
    with (
        AuthUpstream(
            "digest",
            users={"alice": PASSWORD},
            algorithms=("MD5",),
            also_offer=('Basic realm="Staff"', 'Bearer realm="api"'),
            one_header=True,
        ) as srv,
        client(session) as c,
    ):
        assert c.get(srv.url("/echo")).status_code == 200
        assert srv.attempts[1].authorization.startswith("Digest ")


def test_stale_nonce_is_renewed_without_asking(settings, start_session, monkeypatch):
    give_secret(settings, monkeypatch, "env")
    write_rules(settings, credentials_rule())
    session = start_session()
    with (
        AuthUpstream("digest", users={"alice": PASSWORD}, nonce_uses=1) as srv,
        client(session) as c,
    ):
        assert c.get(srv.url("/echo/1")).status_code == 200
        assert c.get(srv.url("/echo/2")).status_code == 200
        assert [(a.accepted, a.why) for a in srv.attempts] == [
            (False, "no credentials"),
            (True, ""),
            (False, "stale nonce"),
            (True, ""),
        ]
    assert "auth: the nonce was stale; trying again with the new one" in notes(session)


@pytest.mark.parametrize("path", ["/bearer", "/status/401"])
def test_other_401s_pass_untouched(settings, start_session, upstream, path):
    """Bearer-only challenges and 401s without a challenge are no auth event: no pause."""
    write_rules(settings, "")
    session = start_session()
    with AuthUpstream("basic") as srv, client(session) as c:
        url = srv.url(path) if path == "/bearer" else upstream.url(path)
        r = c.get(url)
    assert r.status_code == 401
    assert session.pauses.keys() == []
    assert not any(n.startswith("auth:") for n in notes(session))


def test_a_rule_with_a_wrong_password_gives_the_client_the_401(
    settings, start_session, monkeypatch, waylay_ca
):
    give_secret(settings, monkeypatch, "env", value="not-the-password")
    write_rules(settings, credentials_rule())
    session = start_session()
    with AuthUpstream("digest", users={"alice": PASSWORD}) as srv:
        status, body = fetch(session, srv.url("/echo"), "curl", waylay_ca)
        assert status == 401
        assert b"wrong response hash" in body  # the upstream's own answer to the retry
        assert len(srv.attempts) <= 3
        assert [a.accepted for a in srv.attempts] == [False, False]
        # the next request is decided again: no cached credentials, no loop
        with client(session) as c:
            assert c.get(srv.url("/echo")).status_code == 401
        assert len(srv.attempts) == 4
    shown = notes(session)
    assert "auth: credentials for alice rejected (401)" in shown
    assert shown[-1] == "auth: rule staff gave them; the 401 passes to the client"


def test_a_missing_secret_is_a_rules_file_error_not_a_crash(settings, start_session, pool):
    write_rules(settings, credentials_rule(secret="nowhere"))
    session = start_session()
    assert "secret 'nowhere' not found" in (session.rules.error or "")
    with AuthUpstream("basic") as srv, client(session) as c:
        # the broken file decides nothing: the default asks; cancelled, the 401 goes through
        fut = pool.submit(c.get, srv.url("/echo"))
        [fid] = paused(session)
        assert session.controller.answer(fid, "auth", Answer("cancel")) is None
        assert fut.result(10).status_code == 401


# -- from the screen ----------------------------------------------------------------------


def test_the_dialog_answers_with_the_details_it_needs(settings, start_session, pool):
    write_rules(settings, "")
    session = start_session()
    with (
        AuthUpstream("digest", users={"alice": PASSWORD}, realm="Lab") as srv,
        client(session) as c,
    ):
        fut = pool.submit(c.get, srv.url("/echo/x"))
        [fid] = paused(session)
        info = session.pauses.info(fid)
        assert info.event == "auth"
        assert dict(info.details) == {
            "host": "127.0.0.1",
            "port": str(srv.port),
            "proxy": "no",
            "realm": "Lab",
            "scheme": "Digest",
            "url": srv.url("/echo/x"),
        }
        view = session.recorder.view(fid)
        assert view.state_label == "⏸ auth"
        answer = Answer("credentials", {"username": "alice", "password": PASSWORD})
        assert session.controller.answer(fid, "auth", answer) is None
        r = fut.result(10)
        assert r.status_code == 200 and r.json()["path"] == "/echo/x"
    assert "auth: credentials supplied for alice (you)" in notes(session, fid)


def test_a_wrong_password_from_the_dialog_asks_again(settings, start_session, pool):
    write_rules(settings, "")
    session = start_session()
    with AuthUpstream("basic", users={"alice": PASSWORD}) as srv, client(session) as c:
        fut = pool.submit(c.get, srv.url("/echo"))
        [fid] = paused(session)
        wrong = Answer("credentials", {"username": "alice", "password": "guess"})
        assert session.controller.answer(fid, "auth", wrong) is None
        assert asked(session, 2) == fid
        assert not fut.done()
        right = Answer("credentials", {"username": "alice", "password": PASSWORD})
        assert session.controller.answer(fid, "auth", right) is None
        assert fut.result(10).status_code == 200
        assert [a.accepted for a in srv.attempts] == [False, False, True]
    assert "auth: credentials for alice rejected (401)" in notes(session, fid)


def test_three_wrong_passwords_end_with_the_401(settings, start_session, pool):
    write_rules(settings, "")
    session = start_session()
    with AuthUpstream("digest", users={"alice": PASSWORD}) as srv, client(session) as c:
        fut = pool.submit(c.get, srv.url("/echo"))
        for attempt in (1, 2, 3):
            fid = asked(session, attempt)
            wrong = Answer("credentials", {"username": "alice", "password": f"guess{attempt}"})
            assert session.controller.answer(fid, "auth", wrong) is None
        r = fut.result(10)
        assert r.status_code == 401
        assert len(srv.attempts) == 4  # the request, then three tries
    assert notes(session)[-1] == "auth: 3 tries; the 401 passes to the client"


def test_cancel_passes_the_challenge_unchanged(settings, start_session, pool):
    write_rules(settings, "")
    session = start_session()
    with AuthUpstream("basic") as srv, client(session) as c:
        fut = pool.submit(c.get, srv.url("/echo"))
        [fid] = paused(session)
        assert session.controller.answer(fid, "auth", Answer("cancel")) is None
        r = fut.result(10)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Basic realm="Staff", charset="UTF-8"'
    assert r.text == "authentication required (no credentials)\n"
    assert len(srv.attempts) == 1


def test_timeout_of_the_dialog_gives_the_client_the_401(settings, start_session):
    settings.ask_timeout = 0.5
    write_rules(settings, "")
    session = start_session()
    with AuthUpstream("digest") as srv, client(session) as c:
        r = c.get(srv.url("/echo"))
    assert r.status_code == 401
    assert "nonce=" in r.headers["www-authenticate"]
    assert "auth: timed out; the 401 passes to the client" in notes(session)


def test_headless_asks_nobody_and_passes_the_401(settings, start_session):
    settings.headless = True
    write_rules(settings, "")
    session = start_session()
    with AuthUpstream("basic") as srv, client(session) as c:
        assert c.get(srv.url("/echo")).status_code == 401
    assert "auth: nobody to ask (headless); the 401 passes to the client" in notes(session)


# -- remembering and secrets ------------------------------------------------------------


def test_remembered_credentials_keep_the_password_in_secrets_only(
    settings, start_session, pool, tmp_path, confdir, _isolated_home
):
    write_rules(settings, "")
    session = start_session()
    with AuthUpstream("basic", users={"alice": PASSWORD}) as srv:
        with client(session) as c:
            fut = pool.submit(c.get, srv.url("/page"))  # not /echo: it echoes the headers
            [fid] = paused(session)
            answer = Answer(
                "credentials", {"username": "alice", "password": PASSWORD}, remember="host"
            )
            preview = session.controller.preview_rule(
                fid, "auth", Answer("credentials", {"username": "alice"}, remember="host")
            )
            assert 'secret = "auth-127-0-0-1-staff-alice"' in preview
            assert session.controller.answer(fid, "auth", answer) is None
            assert fut.result(10).status_code == 200

        rules_text = settings.rules.read_text()
        assert 'username = "alice"' in rules_text
        assert 'secret = "auth-127-0-0-1-staff-alice"' in rules_text
        assert 'realm = "Staff"' in rules_text
        assert 'urls = ["*://127.0.0.1/*"]' in rules_text
        secrets_file = settings.rules.parent / "secrets.toml"
        assert secrets_file.stat().st_mode & 0o777 == 0o600
        assert PASSWORD in secrets_file.read_text()

        # what the screen gets: credentials redacted, the username in the notes only
        view = session.recorder.view(fid)
        assert ("Authorization", REDACTED) in view.request_headers
        assert "auth: remembered as rule auth-127-0-0-1" in view.notes
        har = tmp_path / "export" / "flows.har"
        har.parent.mkdir()
        assert session.controller.export_har(str(har)) == 1

        token = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
        leaks = []
        for root in {settings.rules.parent, confdir, _isolated_home, har.parent}:
            for path in root.rglob("*"):
                if path.is_file() and path != secrets_file:
                    data = path.read_bytes()
                    if PASSWORD.encode() in data or token.encode() in data:
                        leaks.append(path)
        assert leaks == []
        assert json.loads(har.read_text())["log"]["entries"][0]["response"]["status"] == 200
        assert not any(PASSWORD in n or token in n for n in view.notes)

        # a new session: the remembered rule answers, nobody is asked
        session.stop()
        again = start_session()
        with client(again) as c:
            assert c.get(srv.url("/echo")).status_code == 200
        assert again.pauses.keys() == []
        assert "auth: credentials supplied for alice (rule auth-127-0-0-1)" in notes(again)


def test_http_errors_from_the_retry_are_reported(settings, start_session, monkeypatch):
    """The server drops the connection on the retry: the client gets the original 401."""
    give_secret(settings, monkeypatch, "env")
    write_rules(settings, credentials_rule())
    session = start_session()
    with AuthUpstream("basic", users={"alice": PASSWORD}) as srv, client(session) as c:
        srv.drop_authorized = True
        r = c.get(srv.url("/echo"))
    assert r.status_code == 401
    assert any(n.startswith("auth: the retry failed") for n in notes(session))


def test_httpx_sees_no_challenge_with_its_own_digest_client(settings, start_session, monkeypatch):
    """A client that does Digest itself still works through waylay with no rule: its own
    answer to the challenge goes through (waylay asks only when the 401 reaches it)."""
    settings.headless = True
    write_rules(settings, "")
    session = start_session()
    with AuthUpstream("digest", users={"alice": PASSWORD}) as srv:
        with httpx.Client(
            proxy=f"http://127.0.0.1:{session.port}", auth=httpx.DigestAuth("alice", PASSWORD)
        ) as c:
            assert c.get(srv.url("/echo")).status_code == 200


def test_a_certificate_allowed_once_holds_for_the_retry(
    settings, start_session, monkeypatch, pool, waylay_ca
):
    """The retry opens a new connection for the same client: a certificate a person allowed
    for that client is allowed for the retry too, without asking again."""
    import trustme

    untrusted = trustme.CA()
    give_secret(settings, monkeypatch, "env")
    write_rules(settings, credentials_rule())
    session = start_session()
    with AuthUpstream(
        "basic", users={"alice": PASSWORD}, ssl_context=tls_context(untrusted)
    ) as srv:
        with client(session, waylay_ca) as c:
            fut = pool.submit(c.get, srv.url("/page"))
            [fid] = paused(session)
            assert session.pauses.info(fid).event == "certificate"
            assert session.controller.answer(fid, "certificate", Answer("allow")) is None
            r = fut.result(10)
        assert r.status_code == 200, r.text
        assert [a.accepted for a in srv.attempts] == [False, True]


def test_one_answer_serves_every_request_waiting_on_the_realm(settings, start_session, pool):
    write_rules(settings, "")
    session = start_session()
    with AuthUpstream("digest", users={"alice": PASSWORD}) as srv, client(session) as c:
        futures = [pool.submit(c.get, srv.url(f"/img/{i}")) for i in range(3)]
        fids = paused(session, 3)
        answer = Answer("credentials", {"username": "alice", "password": PASSWORD})
        assert session.controller.answer(fids[0], "auth", answer) is None
        assert [f.result(10).status_code for f in futures] == [200, 200, 200]
    assert session.pauses.keys() == []
    assert sum(a.accepted for a in srv.attempts) == 3
    assert any("accepted on another request" in n for fid in fids[1:] for n in notes(session, fid))


def test_remembering_into_a_broken_rules_file_leaves_no_password_behind(settings, pool):
    """The dialog gets an error, the flow stays paused, and secrets.toml does not keep a
    password for a rule that was never saved."""
    from monitor.session import Session
    from tests.auth.servers import AuthUpstream
    from tests.helpers import wait_for
    from widgets.model import Answer

    with AuthUpstream("basic", users={"alice": PASSWORD}) as srv:
        s = Session(settings)
        _, port = s.start()
        try:
            with httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=20) as c:
                reply = pool.submit(c.get, srv.url("/page"))
                [fid] = wait_for(lambda: s.pauses.keys(), what="the auth pause")
                settings.rules.parent.mkdir(parents=True, exist_ok=True)
                settings.rules.write_text("version = 1\n[[rule]]\nid = \n")  # broken
                wait_for(lambda: s.rules.error, what="the watcher to see it")
                answer = Answer(
                    "credentials", {"username": "alice", "password": PASSWORD}, remember="host"
                )
                error = s.controller.answer(fid, "auth", answer)
                assert error and error.startswith("not remembered")
                assert s.pauses.keys() == [fid]  # still paused
                secrets = settings.rules.parent / "secrets.toml"
                assert not secrets.exists() or PASSWORD not in secrets.read_text()
                s.controller.answer(
                    fid, "auth", Answer("credentials", {"username": "alice", "password": PASSWORD})
                )
                assert reply.result(10).status_code == 200
        finally:
            s.stop()
