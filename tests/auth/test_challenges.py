"""The pure parts of the auth event: parsing challenges, choosing one, signing, the cache."""

from __future__ import annotations

import base64

import pytest

from monitor.auth import secret_name, upstream_proxy
from monitor.challenges import (
    AuthCache,
    Challenge,
    Signer,
    SigningError,
    is_auth_challenge,
    parse_challenges,
    pick,
    protected_prefix,
)
from tests.auth.servers import AuthUpstream, parse_digest


def test_one_challenge_with_quoted_and_token_params():
    [c] = parse_challenges(['Digest realm="a \\"b\\", c", nonce=abc123, qop="auth,auth-int"'])
    assert c.kind == "digest"
    assert c.params == {"realm": 'a "b", c', "nonce": "abc123", "qop": "auth,auth-int"}


def test_several_challenges_in_one_header_and_across_headers():
    found = parse_challenges(
        [
            'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"',
            'Digest realm="d", nonce="n1", algorithm=SHA-256',
            "Negotiate abc+/def==",
        ]
    )
    assert [(c.scheme, c.realm) for c in found] == [
        ("Newauth", "apps"),
        ("Basic", "simple"),
        ("Digest", "d"),
        ("Negotiate", ""),
    ]
    assert found[0].params["title"] == 'Login to "apps"'
    assert found[3].token68 == "abc+/def=="


def test_bare_scheme_and_garbage_do_not_raise():
    assert [c.scheme for c in parse_challenges(["Basic", "", "Bearer, Basic realm=x"])] == [
        "Basic",
        "Bearer",
        "Basic",
    ]
    assert parse_challenges(['"unterminated']) == []


def test_bearer_alone_is_not_an_auth_event():
    assert not is_auth_challenge(parse_challenges(['Bearer realm="api", error="invalid_token"']))
    assert is_auth_challenge(parse_challenges(['Bearer realm="api", Basic realm="x"']))


def test_pick_prefers_digest_and_the_strongest_algorithm():
    cs = parse_challenges(
        [
            'Basic realm="r"',
            'Digest realm="r", nonce="1", algorithm=MD5, qop="auth"',
            'Digest realm="r", nonce="2", algorithm=SHA-256, qop="auth"',
        ]
    )
    assert pick(cs).params["nonce"] == "2"
    assert pick(cs[:1]).kind == "basic"


def test_pick_skips_what_it_cannot_answer():
    int_only = Challenge("Digest", {"realm": "r", "nonce": "1", "qop": "auth-int"})
    unknown = Challenge("Digest", {"realm": "r", "nonce": "1", "algorithm": "SHA-512-256"})
    basic = Challenge("Basic", {"realm": "r"})
    assert pick([int_only, unknown]) is None
    assert pick([int_only, unknown, basic]) is basic


def test_basic_header_is_utf8_base64():
    value = Signer(Challenge("Basic", {"realm": "r"}), "zoë", "pässword:x").header("GET", "/")
    assert value.startswith("Basic ")
    assert base64.b64decode(value[6:]).decode() == "zoë:pässword:x"


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_digest_header_satisfies_a_strict_server_and_counts_nonces(algorithm):
    """The test server's verifier (independent code) accepts each header once: the nonce
    count goes up, and a replayed header is refused."""
    server = AuthUpstream("digest", users={"alice": "pw"}, algorithms=(algorithm,))
    try:
        [c] = parse_challenges(server.challenges())
        signer = Signer(c, "alice", "pw")
        first = signer.header("POST", "/a/b?x=1")
        second = signer.header("GET", "/a/c")
        assert parse_digest(first)["nc"] == "00000001"
        assert parse_digest(second)["nc"] == "00000002"
        assert server.check("POST", "/a/b?x=1", first)[0]
        assert server.check("GET", "/a/c", second)[0]
        ok, why, _ = server.check("GET", "/a/c", second)
        assert not ok and "replayed" in why
        wrong = Signer(c, "alice", "nope").header("GET", "/a/c")
        assert server.check("GET", "/a/c", wrong)[:2] == (
            False,
            "wrong response hash (wrong password?)",
        )
    finally:
        server.httpd.server_close()


def test_digest_update_restarts_the_count():
    c1 = Challenge("Digest", {"realm": "r", "nonce": "n1", "qop": "auth"})
    signer = Signer(c1, "u", "p")
    signer.header("GET", "/")
    signer.header("GET", "/")
    signer.update(Challenge("Digest", {"realm": "r", "nonce": "n2", "qop": "auth"}))
    p = parse_digest(signer.header("GET", "/"))
    assert (p["nonce"], p["nc"]) == ("n2", "00000001")


def test_digest_signing_problems_are_signing_errors():
    c = Challenge("Digest", {"realm": "r", "nonce": "n", "algorithm": "SHA-512-256"})
    with pytest.raises(SigningError):
        Signer(c, "u", "p").header("GET", "/")


def test_signer_repr_hides_the_password():
    signer = Signer(Challenge("Basic", {"realm": "r"}), "alice", "hunter2")
    assert "hunter2" not in repr(signer)


def test_cache_finds_the_longest_protected_prefix():
    cache = AuthCache()
    key = ("server", "http", "h", 80)
    a = Signer(Challenge("Basic", {"realm": "A"}), "a", "1")
    b = Signer(Challenge("Basic", {"realm": "B"}), "b", "2")
    cache.store(key, a, protected_prefix("/docs/index.html"))
    cache.store(key, b, protected_prefix("/docs/private/x?y=/z"))
    assert cache.find(key, "/docs/other").signer is a
    assert cache.find(key, "/docs/private/deeper/x").signer is b
    assert cache.find(key, "/elsewhere") is None
    assert cache.find(("server", "http", "h", 81), "/docs/x") is None
    cache.drop(key, cache.find(key, "/docs/private/1"))
    assert cache.find(key, "/docs/private/1").signer is a


def test_cache_keeps_schemes_apart_and_the_latest_wins_a_tie():
    cache = AuthCache()
    key = ("server", "http", "h", 80)
    basic = Signer(Challenge("Basic", {"realm": "Staff"}), "alice", "pw")
    digest = Signer(Challenge("Digest", {"realm": "Staff", "nonce": "n"}), "alice", "pw")
    cache.store(key, basic, "/docs/")
    cache.store(key, digest, "/docs/")
    found = cache.find(key, "/docs/x")
    assert found is not None and found.signer is digest and found.space == ("Staff", "Digest")
    cache.drop(key, found)  # dropping Digest leaves Basic in its own space
    assert cache.find(key, "/docs/x").signer is basic


def test_protected_prefix():
    assert protected_prefix("/a/b/c.html?q=/x/y") == "/a/b/"
    assert protected_prefix("/") == "/"
    assert protected_prefix("") == "/"


def test_secret_names_are_valid_and_stable():
    name = secret_name("intranet.example", 'Staff "HQ"', "Alice@corp")
    assert name == "auth-intranet-example-staff-hq-alice-corp"
    assert secret_name("h", "", "u") == "auth-h-u"


def test_upstream_proxy_address():
    assert upstream_proxy("regular") is None
    assert upstream_proxy("upstream:http://127.0.0.1:3128") == ("127.0.0.1", 3128)
