"""The engine: precedence, every condition, regex substitution, and the host index
agreeing with a plain scan of every rule."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy.test import tflow

from policies.engine import Decision, Engine, EventDetails
from policies.match_pattern import compile_pattern, split_url
from policies.model import ACTIONS_BY_EVENT, Defaults, Rule

FP = "sha256:" + ":".join(["3F"] * 32)


def rule(id, **fields) -> Rule:
    fields.setdefault("action", "cancel")
    return Rule(id=id, **fields)


def req(url, **kw) -> EventDetails:
    return EventDetails("request", url, **kw)


def test_no_rules_gives_the_defaults():
    engine = Engine([])
    expected = {
        "request": "continue",
        "response": "continue",
        "redirect": "follow",
        "auth": "ask",
        "certificate": "ask",
        "cookies": "allow",
    }
    for event, action in expected.items():
        decision = engine.decide(EventDetails(event, "https://example.com/"))
        assert (decision.action, decision.rule, decision.matched) == (action, None, ())
        assert decision.is_default
    custom = Engine([], Defaults(certificate="reject", request="ask"))
    assert custom.decide(EventDetails("certificate", "https://a:443/")).action == "reject"
    assert custom.decide(req("https://a/")).action == "ask"


def test_highest_priority_wins_then_file_order():
    engine = Engine(
        [
            rule("first", urls=["*://*.example.com/*"], action="continue"),
            rule("second", urls=["https://www.example.com/*"]),
            rule("high", urls=["<all_urls>"], action="ask", priority=5),
            rule("third", regex="example", action="continue"),
            rule("high-later", urls=["*://*/*"], priority=5),
        ]
    )
    decision = engine.decide(req("https://www.example.com/x"))
    assert decision.rule.id == "high" and decision.action == "ask"
    assert decision.matched == ("high", "high-later", "first", "second", "third")
    assert engine.decide(req("http://other.org/")).matched == ("high", "high-later")
    tie = Engine([rule("a", action="continue"), rule("b")])
    assert tie.decide(req("https://x/")).rule.id == "a"
    assert [r.id for r in engine.ordered()] == ["high", "high-later", "first", "second", "third"]


def test_negative_priority_loses_to_default_priority():
    engine = Engine([rule("low", priority=-3), rule("normal", action="continue")])
    assert engine.decide(req("https://x/")).rule.id == "normal"


def test_disabled_rules_never_match():
    engine = Engine([rule("off", enabled=False, priority=9), rule("on", action="continue")])
    decision = engine.decide(req("https://x/"))
    assert decision.rule.id == "on" and decision.matched == ("on",)
    assert engine.get("off").enabled is False
    assert [r.id for r in engine.ordered()] == ["off", "on"]


def test_rules_only_see_their_event():
    engine = Engine([rule("req"), rule("resp", event="response")])
    assert engine.decide(EventDetails("response", "https://x/", status=200)).rule.id == "resp"
    assert engine.decide(EventDetails("redirect", "https://x/", status=302)).rule is None
    with pytest.raises(ValueError):
        engine.decide(EventDetails("nonsense", "https://x/"))


def test_url_conditions():
    engine = Engine(
        [
            rule(
                "r",
                urls=["*://*.example.com/*", "https://other.org/api/*"],
                exclude_urls=["*://static.example.com/*"],
            )
        ]
    )
    assert engine.decide(req("https://example.com/")).rule
    assert engine.decide(req("http://a.b.example.com:8080/x")).rule
    assert engine.decide(req("https://other.org/api/v1?x=1")).rule
    assert not engine.decide(req("https://other.org/web")).rule
    assert not engine.decide(req("https://static.example.com/app.js")).rule
    assert not engine.decide(req("https://example.org/")).rule
    assert not engine.decide(req("ftp://example.com/")).rule


def test_methods_types_and_case():
    engine = Engine([rule("r", methods=["post", "PUT"], types=["xmlhttprequest", "ping"])])
    assert engine.decide(req("https://x/", method="post", type="xmlhttprequest")).rule
    assert engine.decide(req("https://x/", method="PUT", type="ping")).rule
    assert not engine.decide(req("https://x/", method="GET", type="xmlhttprequest")).rule
    assert not engine.decide(req("https://x/", method="POST", type="script")).rule


def test_status_conditions_on_responses_redirects_and_auth():
    engine = Engine(
        [
            rule(
                "errors",
                event="response",
                status=[500, 502, 503],
                action="respond",
                respond_status=503,
                body="down",
            ),
            rule(
                "moved", event="redirect", status=301, action="rewrite", url="https://new.example/"
            ),
            rule("proxy-auth", event="auth", proxy=True, action="cancel"),
            rule(
                "staff",
                event="auth",
                realm="Staff",
                status=401,
                action="credentials",
                username="a",
                secret="s",
            ),
        ]
    )
    decision = engine.decide(EventDetails("response", "https://x/", status=502))
    assert (
        decision.rule.id == "errors" and decision.status == 503 and decision.read_body() == b"down"
    )
    assert engine.decide(EventDetails("response", "https://x/", status=404)).rule is None
    assert (
        engine.decide(EventDetails("redirect", "https://x/", status=301)).url
        == "https://new.example/"
    )
    assert engine.decide(EventDetails("redirect", "https://x/", status=302)).action == "follow"
    decision = engine.decide(EventDetails("auth", "https://x/", status=401, realm="Staff"))
    assert (decision.action, decision.username, decision.secret) == ("credentials", "a", "s")
    assert (
        engine.decide(EventDetails("auth", "https://x/", status=401, realm="Other")).action == "ask"
    )
    assert (
        engine.decide(EventDetails("auth", "https://x/", status=407, proxy=True)).rule.id
        == "proxy-auth"
    )


def test_certificate_fingerprints_compare_without_case_or_colons():
    engine = Engine(
        [
            rule(
                "dev",
                event="certificate",
                urls=["https://dev.internal:8443/*"],
                fingerprint=FP,
                action="allow",
            )
        ]
    )
    plain = "3f" * 32
    hit = engine.decide(
        EventDetails("certificate", "https://dev.internal:8443/", fingerprint=plain)
    )
    assert hit.action == "allow"
    other = engine.decide(
        EventDetails("certificate", "https://dev.internal:8443/", fingerprint="00" * 32)
    )
    assert other.action == "ask"
    assert (
        engine.decide(
            EventDetails("certificate", "https://dev.internal:443/", fingerprint=plain)
        ).action
        == "ask"
    )
    assert engine.decide(EventDetails("certificate", "https://dev.internal:8443/")).action == "ask"
    assert (
        engine.decide(
            EventDetails("certificate", "https://dev.internal:8443/", fingerprint="junk")
        ).action
        == "ask"
    )


def test_filter_conditions_need_a_flow():
    engine = Engine([rule("posts", filter="~m POST & ~d example.com")])
    flow = tflow.tflow()
    flow.request.method = "POST"
    flow.request.host = "example.com"
    assert engine.decide(req(flow.request.url, method="POST", flow=flow)).rule.id == "posts"
    flow.request.method = "GET"
    assert engine.decide(req(flow.request.url, flow=flow)).rule is None
    assert engine.decide(req("https://example.com/", method="POST")).rule is None  # no flow


def test_regex_substitution_like_declarative_net_request():
    engine = Engine(
        [
            rule(
                "api",
                regex=r"^https://api\.example\.com/(.*)$",
                action="rewrite",
                url=r"https://staging.example.com/\1",
                priority=2,
            ),
            rule("partial", regex=r"/v(\d)/", action="redirect", url=r"/v\1-beta/"),
            rule(
                "whole",
                regex=r"^http://(old)\.example/(\w+)?",
                action="redirect",
                url=r"https://\1.example/\2?was=\0\\",
            ),
            rule(
                "literal",
                regex=r"^https://lit\.example/",
                action="redirect",
                url="https://fixed.example/",
            ),
        ]
    )
    assert engine.decide(req("https://api.example.com/v1/users?id=3")).url == (
        "https://staging.example.com/v1/users?id=3"
    )
    # the first match of the regex is replaced; the rest of the URL stays
    assert engine.decide(req("https://other.example/v2/x")).url == "https://other.example/v2-beta/x"
    assert (
        engine.decide(req("http://old.example/")).url
        == "https://old.example/?was=http://old.example/\\"
    )
    assert engine.decide(req("https://lit.example/a/b")).url == "https://fixed.example/"


def test_decision_helpers_and_repr(tmp_path):
    (tmp_path / "body.json").write_bytes(b'{"ok": true}')
    engine = Engine(
        [
            rule(
                "mock",
                action="respond",
                status=201,
                headers={"Content-Type": "application/json"},
                body_file="body.json",
                note="fake",
            ),
            rule("login", event="auth", action="credentials", username="alice", secret="intranet"),
        ],
        base_dir=tmp_path,
    )
    decision = engine.decide(req("https://x/"))
    assert decision.status == 201 and decision.headers == {"Content-Type": "application/json"}
    assert decision.body_path == tmp_path / "body.json" and decision.read_body() == b'{"ok": true}'
    assert decision.note == "fake" and decision.rule_id == "mock"
    assert repr(decision) == (
        "Decision(event='request', action='respond', rule='mock', matched=('mock',), url=None)"
    )
    auth = engine.decide(EventDetails("auth", "https://x/", status=401))
    assert auth.secret == "intranet"
    assert isinstance(auth, Decision) and "intranet" in repr(auth.rule)


def test_duplicate_ids_are_refused():
    with pytest.raises(ValueError, match="duplicate"):
        Engine([rule("a"), rule("a")])


@pytest.mark.parametrize("event", list(ACTIONS_BY_EVENT))
def test_every_action_is_returned_as_written(event):
    params = {
        "redirect": {"url": "https://t.example/"},
        "rewrite": {"url": "https://t.example/"},
        "credentials": {"username": "u", "secret": "s"},
    }
    for action in ACTIONS_BY_EVENT[event]:
        engine = Engine([Rule(id="r", event=event, action=action, **params.get(action, {}))])
        assert engine.decide(EventDetails(event, "https://a.example/", status=401)).action == action


# -- the index agrees with scanning every rule ---------------------------------------------

HOSTS = [
    "example.com",
    "a.example.com",
    "b.a.example.com",
    "other.org",
    "x.other.org",
    "[::1]",
    "127.0.0.1",
]


def random_rule(rng: random.Random, index: int) -> Rule:
    kind = rng.choice(["exact", "suffix", "any", "all", "regex", "regex-host", "multi"])
    fields: dict = {}
    host = rng.choice(HOSTS)
    if kind == "exact":
        fields["urls"] = [
            f"{rng.choice(['*', 'https', 'http'])}://{host}/{rng.choice(['*', 'a*', 'a/b'])}"
        ]
    elif kind == "suffix" and not host.startswith("["):
        fields["urls"] = [f"*://*.{host}{rng.choice(['', ':8080'])}/*"]
    elif kind == "any":
        fields["urls"] = ["*://*/a*"]
    elif kind == "regex":
        fields["regex"] = rng.choice([r"/a/", r"\?q=", r"other"])
    elif kind == "regex-host":
        fields["regex"] = (
            "^https?://" + host.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]") + "/"
        )
    elif kind == "multi":
        fields["urls"] = [f"*://{h}/*" for h in rng.sample(HOSTS, 2)] + [f"*://*.{HOSTS[0]}/*"]
    if rng.random() < 0.2:
        fields["exclude_urls"] = [f"*://{rng.choice(HOSTS)}/*"]
    if rng.random() < 0.2:
        fields["methods"] = [rng.choice(["GET", "POST"])]
    if rng.random() < 0.2:
        fields["types"] = [rng.choice(["script", "image", "other"])]
    return Rule(
        id=f"r{index}",
        priority=rng.randint(0, 3),
        enabled=rng.random() > 0.1,
        action=rng.choice(["cancel", "continue", "ask"]),
        **fields,
    )


def slow_decide(rules: list[Rule], details: EventDetails) -> tuple[str, ...]:
    import re

    parts = split_url(details.url)
    matched = []
    for position, r in enumerate(rules):
        if not r.enabled or r.event != details.event or parts is None:
            continue
        if not any(compile_pattern(p).matches(details.url) for p in r.urls):
            continue
        if any(compile_pattern(p).matches(details.url) for p in r.exclude_urls):
            continue
        if r.methods and details.method.upper() not in r.methods:
            continue
        if r.types and details.type not in r.types:
            continue
        if r.regex and not re.search(r.regex, details.url):
            continue
        matched.append((-r.priority, position, r.id))
    return tuple(m[2] for m in sorted(matched))


@settings(max_examples=60, deadline=None, database=None)
@given(st.integers(0, 2**32), st.integers(1, 60))
def test_index_agrees_with_scanning_every_rule(seed, count):
    rng = random.Random(seed)
    rules = [random_rule(rng, i) for i in range(count)]
    engine = Engine(rules)
    for _ in range(30):
        host = rng.choice([*HOSTS, "unrelated.net", "example.com.evil.net"])
        url = f"{rng.choice(['http', 'https'])}://{host}{rng.choice(['', ':8080'])}{rng.choice(['/', '/a/', '/a/b', '/x?q=1'])}"
        details = req(
            url, method=rng.choice(["GET", "POST"]), type=rng.choice(["script", "image", "other"])
        )
        expected = slow_decide(rules, details)
        decision = engine.decide(details)
        assert decision.matched == expected, (url, rules)
        assert decision.rule_id == (expected[0] if expected else None)
