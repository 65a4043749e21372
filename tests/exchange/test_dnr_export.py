"""waylay rules → declarativeNetRequest: valid rules, and the same decisions.

Every exported rule validates against the JSON Schema of DNR's ``Rule``. Each match
pattern of the table is exported and evaluated on a few thousand browser requests by a
small DNR evaluator (tests/exchange/dnr_eval.py); waylay's engine decides the same
requests as the proxy sees them. They must agree on every request.
"""

from __future__ import annotations

import jsonschema
import pytest

from policies import dnr
from policies.engine import Engine, EventDetails
from policies.model import Rule
from tests.exchange import dnr_eval
from tests.exchange.dnr_schema import RULE, RULESET

VALIDATOR = jsonschema.Draft202012Validator(RULESET)
REQUESTS = dnr_eval.browser_requests()
TYPED_REQUESTS = dnr_eval.browser_requests(types=("main_frame", "script", "csp_report", "other"))
METHOD_REQUESTS = dnr_eval.browser_requests(methods=("get", "post", "put"))
REGEX = "regex"


def waylay_outcome(engine: Engine, request: dnr_eval.Request) -> tuple[str, str | None]:
    decision = engine.decide(
        EventDetails("request", request.proxy_url, request.method.upper(), request.waylay_type)
    )
    action = "redirect" if decision.action == "rewrite" else decision.action
    return action, decision.url if action == "redirect" else None


def assert_same_decisions(rules: list[Rule], requests=REQUESTS) -> list[dict]:
    exported = dnr.export_rules(rules)
    assert not list(VALIDATOR.iter_errors(exported.rules)), list(
        VALIDATOR.iter_errors(exported.rules)
    )
    engine = Engine([r for r in rules if f"{r.id}: left out" not in " ".join(exported.left_out)])
    wrong = []
    for request in requests:
        ours = waylay_outcome(engine, request)
        theirs = dnr_eval.decide(exported.rules, request)
        if ours != theirs:
            wrong.append((request, ours, theirs))
    assert not wrong, f"{len(wrong)} disagreements, e.g. {wrong[:5]}"
    return exported.rules


# pattern → the urlFilters it becomes (in order), or REGEX for one regexFilter
PATTERNS = [
    ("<all_urls>", [None]),
    ("*://*/*", [None]),
    ("*://*.example.com/*", ["||example.com^"]),
    ("*://*.sub.example.com/*", ["||sub.example.com^"]),
    ("*://*.com/*", ["||com^"]),
    (
        "*://example.com/*",
        [
            "|http://example.com^",
            "|ws://example.com^",
            "|https://example.com^",
            "|wss://example.com^",
        ],
    ),
    ("https://example.com/*", ["|https://example.com^", "|wss://example.com^"]),
    ("http://example.com/*", ["|http://example.com^", "|ws://example.com^"]),
    ("https://*/*", ["|https://", "|wss://"]),
    ("http://*/*", ["|http://", "|ws://"]),
    ("https://example.com:443/*", ["|https://example.com/", "|wss://example.com/"]),
    ("https://example.com:443/a/*", ["|https://example.com/a/", "|wss://example.com/a/"]),
    ("https://example.com:8080/a*", ["|https://example.com:8080/a", "|wss://example.com:8080/a"]),
    ("http://example.com:80/a/b", ["|http://example.com/a/b|", "|ws://example.com/a/b|"]),
    ("https://example.com:443/", ["|https://example.com/|", "|wss://example.com/|"]),
    ("http://example.com:443/*", ["|http://example.com:443/", "|ws://example.com:443/"]),
    ("https://example.com:443/a?x=*", ["|https://example.com/a?x=", "|wss://example.com/a?x="]),
    ("https://example.com:443/*a*b", ["|https://example.com/*a*b|", "|wss://example.com/*a*b|"]),
    ("*://*.example.com:8080/*", ["||example.com:8080/"]),
    ("*://*.example.com:8080/a/*", ["||example.com:8080/a/"]),
    ("*://*.example.com:443/*", REGEX),  # 443 is https's default, not http's
    ("*://*.example.com/a/*", REGEX),  # any port, then a path
    ("https://*.example.com/*", REGEX),  # a scheme and subdomains
    ("https://example.com/a/*", REGEX),  # any port, then a path
    ("*://example.com/foo*", REGEX),
    ("*://*/foo*", REGEX),
    ("*://*:8080/*", REGEX),
    ("https://example.com/A/*", REGEX),
    ("http://127.0.0.1/*", ["|http://127.0.0.1^", "|ws://127.0.0.1^"]),
    ("http://[::1]/*", ["|http://[::1]^", "|ws://[::1]^"]),
    ("http://[::1]:8080/a*", ["|http://[::1]:8080/a", "|ws://[::1]:8080/a"]),
    ("*://*.example.com/p.a+th(1)", REGEX),
    ("https://example.com:443/a|b", REGEX),  # '|' cannot be said in a urlFilter
    ("https://example.com:443/a^b", REGEX),
]


@pytest.mark.parametrize(("pattern", "expected"), PATTERNS)
def test_each_pattern_is_exported_exactly(pattern, expected):
    rules = assert_same_decisions([Rule(id="r", urls=[pattern], action="cancel")])
    conditions = [r["condition"] for r in rules]
    if expected == REGEX:
        assert len(conditions) == 1 and "regexFilter" in conditions[0], conditions
    else:
        assert [c.get("urlFilter") for c in conditions] == expected
    for condition in conditions:
        assert condition["resourceTypes"]  # always set, main_frame included by default
        assert ("urlFilter" in condition or "regexFilter" in condition) == (
            condition.get("isUrlFilterCaseSensitive") is True
        )


@pytest.mark.parametrize(
    "pattern",
    [
        "*://*.example.com/*",
        "https://example.com/*",
        "*://example.com/*",
        "https://example.com/a/*",
        "http://*/*",
    ],
)
@pytest.mark.parametrize(
    "types", [["script"], ["websocket"], ["script", "websocket"], ["ping"], ["main_frame"]]
)
def test_types_with_patterns(pattern, types):
    assert_same_decisions(
        [Rule(id="r", urls=[pattern], types=types, action="cancel")], TYPED_REQUESTS
    )


def test_resource_types_are_always_set_and_follow_waylay_types():
    rules = dnr.export_rules(
        [
            Rule(id="all", action="cancel"),
            Rule(id="ping", types=["ping"], action="cancel", priority=2),
        ]
    ).rules
    assert "main_frame" in rules[0]["condition"]["resourceTypes"]
    assert set(rules[0]["condition"]["resourceTypes"]) == set(dnr.EXPORTED_RESOURCE_TYPES)
    assert rules[1]["condition"]["resourceTypes"] == ["ping", "csp_report"]


def test_methods_become_lower_case_request_methods():
    rule = Rule(id="m", urls=["*://*.example.com/*"], methods=["POST", "put"], action="cancel")
    exported = assert_same_decisions([rule], METHOD_REQUESTS)
    assert exported[0]["condition"]["requestMethods"] == ["post", "put"]


def test_exclude_urls_become_excluded_request_domains():
    rule = Rule(
        id="x",
        urls=["*://*.example.com/*"],
        exclude_urls=["*://*.sub.example.com/*"],
        action="cancel",
    )
    exported = assert_same_decisions([rule])
    assert exported[0]["condition"]["excludedRequestDomains"] == ["sub.example.com"]


def test_a_list_of_patterns_becomes_consecutive_rules():
    rule = Rule(id="two", urls=["*://*.example.com/*", "*://other.org/*"], action="cancel")
    exported = assert_same_decisions([rule])
    assert [r["id"] for r in exported] == list(range(1, len(exported) + 1))
    assert exported[0]["condition"]["urlFilter"] == "||example.com^"


def test_actions_and_precedence():
    """Overlapping rules of every exported action, with ties DNR breaks differently."""
    rules = [
        Rule(id="block-example", urls=["*://*.example.com/*"], action="cancel"),
        Rule(id="allow-sub", urls=["*://*.sub.example.com/*"], action="continue"),
        Rule(
            id="redirect-a",
            urls=["https://example.com:443/a/*"],
            action="redirect",
            url="https://other.org/moved",
        ),
        Rule(
            id="rewrite-api",
            regex=r"^https?://example\.com/api/(.*)$",
            action="rewrite",
            url=r"https://other.org/v2/\1",
            priority=3,
        ),
        Rule(id="high-block", urls=["*://*.other.org/*"], action="cancel", priority=2),
        Rule(id="allow-foo", urls=["*://*/foo*"], action="continue", priority=2),
    ]
    exported = dnr.export_rules(rules)
    assert exported.left_out == []
    assert any("renumbered" in note for note in exported.notes)
    assert_same_decisions(rules)
    redirect = next(r for r in exported.rules if "regexSubstitution" in str(r["action"]))
    assert redirect["action"]["redirect"]["regexSubstitution"] == r"https://other.org/v2/\1"
    assert redirect["condition"]["regexFilter"].startswith("^(?:https?|wss?)://")


def test_priorities_are_kept_when_that_changes_nothing():
    rules = [
        Rule(id="allow", urls=["*://*.sub.example.com/*"], action="continue", priority=5),
        Rule(id="block", urls=["*://*.example.com/*"], action="cancel", priority=5),
        Rule(id="low", urls=["*://*/*"], action="cancel", priority=2),
    ]
    exported = dnr.export_rules(rules)
    assert exported.notes == []
    assert [r["priority"] for r in exported.rules] == [5, 5, 2]
    assert_same_decisions(rules)


@pytest.mark.parametrize(("high", "low"), [(0, -3), (2**40, 2**35)])
def test_priorities_dnr_cannot_hold_are_renumbered(high, low):
    rules = [
        Rule(id="a", urls=["*://*.example.com/*"], action="cancel", priority=high),
        Rule(id="b", urls=["*://*.sub.example.com/*"], action="continue", priority=low),
    ]
    exported = dnr.export_rules(rules)
    assert [r["priority"] for r in exported.rules] == [2, 1]
    assert_same_decisions(rules)


@pytest.mark.parametrize(
    ("regex", "covers_ws"),
    [
        (r"^https://example\.com/a", True),
        (r"^http://example\.com/", True),
        (r"^https?://(?:[^/]*\.)?example\.com(?::\d+)?/foo", True),
        (r"example\.com/a/", False),
        (r"/foo$", False),
    ],
)
def test_user_regexes(regex, covers_ws):
    rule = Rule(id="re", regex=regex, action="cancel")
    exported = dnr.export_rules([rule])
    types = exported.rules[0]["condition"]["resourceTypes"]
    assert ("websocket" in types) is covers_ws
    assert bool(exported.left_out) is not covers_ws  # a narrowed rule is named
    if covers_ws:
        assert_same_decisions([rule], TYPED_REQUESTS)
    else:
        narrowed = [r for r in TYPED_REQUESTS if r.type != "websocket"]
        assert_same_decisions([rule], narrowed)


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        (Rule(id="r", event="response", action="cancel"), "response events"),
        (Rule(id="r", event="auth", action="cancel"), "auth events"),
        (
            Rule(id="r", event="certificate", action="reject"),
            "certificate events",
        ),
        (Rule(id="r", event="cookies", action="strip"), "cookies events"),
        (Rule(id="r", action="ask"), "ask action"),
        (Rule(id="r", action="respond", body="hi"), "respond action"),
        (Rule(id="r", action="cancel", times=3), "`times`"),
        (Rule(id="r", action="cancel", filter="~m POST"), "`filter`"),
        (Rule(id="r", action="cancel", enabled=False), "disabled"),
        (Rule(id="r", action="cancel", methods=["PROPFIND"]), "PROPFIND"),
        (
            Rule(id="r", urls=["*://*.a.com/*"], exclude_urls=["*://a.com/*"], action="cancel"),
            "not a whole domain",
        ),
        (
            Rule(id="r", urls=["*://a.com/*"], regex="x", action="cancel"),
            "`regex` together with `urls`",
        ),
        (Rule(id="r", regex="/" + "a" * 300, action="cancel"), "2 KB"),
        (Rule(id="r", urls=["ws://a.com/*"], action="cancel"), "never match"),
        (Rule(id="r", urls=["http://münchen.de/*"], action="cancel"), "punycode"),
        (Rule(id="r", urls=["http://127.1/*"], action="cancel"), "numeric host"),
        (Rule(id="r", urls=["http://[0:0::1]/*"], action="cancel"), "[::1]"),
    ],
)
def test_rules_dnr_cannot_express_are_left_out_with_a_reason(rule, reason):
    exported = dnr.export_rules(
        [rule, Rule(id="ok", urls=["*://*.example.com/*"], action="cancel")]
    )
    assert len(exported.left_out) == 1
    assert exported.left_out[0].startswith("r: left out: ")
    assert reason in exported.left_out[0]
    assert [r["condition"].get("urlFilter") for r in exported.rules] == ["||example.com^"]
    assert exported.rules[0]["id"] == 1


def test_more_than_1000_regex_rules_is_a_clear_error():
    rules = [
        Rule(id=f"r{i}", regex=f"^https://h{i}\\.example/", action="cancel") for i in range(1001)
    ]
    with pytest.raises(dnr.DnrError, match="1001 DNR rules need a regexFilter.*at most 1000"):
        dnr.export_rules(rules)
    assert len(dnr.export_rules(rules[:1000]).rules) == 1000


@pytest.mark.parametrize(
    ("regex", "problem"),
    [
        (r"^https://a\.b/(\d+)$", None),
        (r"(?i)^https?://[a-z0-9-]+\.example/", None),
        (r"^https://(?P<host>[^/]+)/", None),
        (r"[[:alpha:]]\z", None),  # RE2 syntax Python's re lacks is fine: Chrome runs RE2
        (r"a(?=b)", "lookahead"),
        (r"(?<!a)b", "lookbehind"),
        (r"(a)\1", "backreference"),
        (r"(?>a)", "atomic"),
        (r"a++", "possessive"),
        (r"a\Z", r"\z"),
        (r"(?x) a", "verbose"),
        (r"a{1001}", "1000"),
        (r"(?#c)a", "comment"),
        ("/" + "a" * 300, "2 KB"),  # fine for waylay, too big for Chrome
    ],
)
def test_re2_compatibility_is_what_chrome_would_compile(regex, problem):
    found = dnr.re2_problem(regex)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_every_exported_rule_validates_against_the_schema_of_rule():
    rules = []
    for index, (pattern, _) in enumerate(PATTERNS):
        rules.append(Rule(id=f"p{index}", urls=[pattern], action="cancel"))
    rules.append(
        Rule(id="sub", regex=r"^https://a\.example/(.*)", action="redirect", url=r"https://b/\1")
    )
    rules.append(Rule(id="fixed", urls=["*://*.c.example/*"], action="rewrite", url="https://d/"))
    rules.append(Rule(id="allow", urls=["*://*.e.example/*"], action="continue", methods=["GET"]))
    exported = dnr.export_rules(rules)
    rule_validator = jsonschema.Draft202012Validator(RULE)
    for rule in exported.rules:
        rule_validator.validate(rule)
    assert [r["id"] for r in exported.rules] == list(range(1, len(exported.rules) + 1))


def test_the_schema_rejects_what_chrome_rejects():
    """The schema is not vacuous."""
    validator = jsonschema.Draft202012Validator(RULE)
    good = {"id": 1, "action": {"type": "block"}, "condition": {"urlFilter": "||a^"}}
    assert validator.is_valid(good)
    for bad in [
        {**good, "id": 0},
        {**good, "action": {"type": "redirect"}},
        {**good, "action": {"type": "nope"}},
        {**good, "condition": {"urlFilter": "||*a"}},
        {**good, "condition": {"urlFilter": "a", "regexFilter": "a"}},
        {**good, "condition": {"resourceTypes": []}},
        {**good, "condition": {"resourceTypes": ["document"]}},
        {**good, "condition": {"requestMethods": ["GET"]}},
        {
            **good,
            "action": {"type": "redirect", "redirect": {"regexSubstitution": "x"}},
        },
    ]:
        assert not validator.is_valid(bad), bad
