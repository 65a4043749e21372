"""declarativeNetRequest → waylay rules, and the round trip waylay → DNR → waylay.

Imported rules are checked the same way exports are: the DNR evaluator decides browser
requests from the DNR rules, waylay's engine decides the same requests from the imported
rules as the proxy sees them; they must agree.
"""

from __future__ import annotations

import json

import pytest

from policies import dnr
from policies.engine import Engine, EventDetails
from policies.model import Rule
from tests.exchange import dnr_eval

REQUESTS = dnr_eval.browser_requests(types=("main_frame", "script", "csp_report"))
METHOD_REQUESTS = dnr_eval.browser_requests(methods=("get", "post"))


def outcome(engine: Engine, request: dnr_eval.Request) -> tuple[str, str | None]:
    decision = engine.decide(
        EventDetails("request", request.proxy_url, request.method.upper(), request.waylay_type)
    )
    action = "redirect" if decision.action == "rewrite" else decision.action
    return action, decision.url if action == "redirect" else None


def assert_import_agrees(dnr_rules: list[dict], requests=REQUESTS) -> list[Rule]:
    imported = dnr.import_rules(dnr_rules)
    assert not imported.skipped, imported.skipped
    engine = Engine(imported.rules)
    wrong = [
        (r, outcome(engine, r), dnr_eval.decide(dnr_rules, r))
        for r in requests
        if outcome(engine, r) != dnr_eval.decide(dnr_rules, r)
    ]
    assert not wrong, f"{len(wrong)} disagreements, e.g. {wrong[:5]}"
    return imported.rules


def block(condition: dict, rule_id: int = 1, **extra) -> dict:
    return {"id": rule_id, "action": {"type": "block"}, "condition": condition, **extra}


ALL = list(dnr.EXPORTED_RESOURCE_TYPES)

# urlFilter → the urls it becomes (None: a regex)
URL_FILTERS = [
    ("||example.com^", ["*://*.example.com/*"]),
    ("||sub.example.com^", ["*://*.sub.example.com/*"]),
    ("||example.com/", ["http://*.example.com:80/*", "https://*.example.com:443/*"]),
    ("||example.com:8080/", ["*://*.example.com:8080/*"]),
    ("||example.com:443/", ["http://*.example.com:443/*"]),
    ("|https://example.com^", ["https://example.com/*"]),
    ("|https://example.com/", ["https://example.com:443/*"]),
    ("|https://example.com/|", ["https://example.com:443/"]),
    ("|wss://example.com^", ["https://example.com/*"]),
    ("|http://", ["http://*/*"]),
    ("|https://example.com:8080/", ["https://example.com:8080/*"]),
    ("||example.com/a", None),  # case-insensitive path
    ("||example.com", None),  # no separator: also example.com.evil.net
    ("|https://example.com/a/*/b", None),
    ("example.com/a", None),
    ("/a?x=", None),
    ("api/v1^", None),
    ("|http*://example.com/", None),
    ("|https://*.example.com/", None),
    ("||example.com^*foo", None),
    ("|https://example.com:443/", None),  # a canonical URL never shows :443
]


@pytest.mark.parametrize(("url_filter", "urls"), URL_FILTERS)
@pytest.mark.parametrize("types", [None, ALL, ["script", "websocket"]])
def test_url_filters_are_translated_exactly(url_filter, urls, types):
    condition: dict = {"urlFilter": url_filter}
    if types is not None:
        condition["resourceTypes"] = types
    rules = assert_import_agrees([block(condition)])
    if url_filter == "|https://example.com:443/":
        return
    if urls is None:
        assert rules[0].regex is not None and rules[0].urls == ("<all_urls>",)
    else:
        assert list(rules[0].urls) == urls and rules[0].regex is None


@pytest.mark.parametrize(
    "url_filter", ["||example.com/A", "|https://example.com/A/b|", "/A/", "|https://example.com^"]
)
def test_case_sensitive_url_filters(url_filter):
    assert_import_agrees([block({"urlFilter": url_filter, "isUrlFilterCaseSensitive": True})])


def test_regex_filters_in_re2_syntax_are_kept_as_they_are():
    """Rule regexes are RE2, like DNR's: RE2-only syntax needs no translation."""
    rules = dnr.import_rules(
        [
            block(
                {
                    "regexFilter": r"^https://[[:alpha:]]+\.example/\p{L}\z",
                    "isUrlFilterCaseSensitive": True,
                }
            )
        ]
    ).rules
    assert rules[0].regex == r"^https://[[:alpha:]]+\.example/\p{L}\z"


def test_regex_filters_are_kept_as_regexes():
    rules = assert_import_agrees(
        [
            block({"regexFilter": r"^https://(?:[^/]*\.)?example\.com/a", "resourceTypes": ALL}),
            block({"regexFilter": r"/A/B$", "isUrlFilterCaseSensitive": True}, 2),
        ]
    )
    assert rules[0].regex == r"(?i)^https://(?:[^/]*\.)?example\.com/a"
    assert rules[1].regex == r"/A/B$"


def test_redirects_and_upgrade_scheme():
    rules = assert_import_agrees(
        [
            {
                "id": 1,
                "priority": 3,
                "action": {
                    "type": "redirect",
                    "redirect": {"regexSubstitution": r"https://other.org/new/\1?from=\0"},
                },
                "condition": {
                    "regexFilter": r"^https://example\.com/api/(.*)",
                    "resourceTypes": ALL,
                },
            },
            {
                "id": 2,
                "priority": 2,
                "action": {"type": "redirect", "redirect": {"url": "https://other.org/x"}},
                "condition": {"urlFilter": "||sub.example.com^"},
            },
            {
                "id": 3,
                "action": {"type": "upgradeScheme"},
                "condition": {"urlFilter": "||example.com^", "resourceTypes": ALL},
            },
        ]
    )
    assert [r.action for r in rules] == ["redirect", "redirect", "rewrite"]
    assert rules[2].url == r"https://\1"


def test_domains_types_and_methods():
    assert_import_agrees(
        [
            block({"requestDomains": ["example.com", "other.org"], "resourceTypes": ["script"]}),
            block(
                {
                    "urlFilter": "/a",
                    "requestDomains": ["example.com"],
                    "excludedRequestDomains": ["sub.example.com"],
                },
                2,
            ),
            block({"excludedResourceTypes": ["script"], "urlFilter": "||other.org^"}, 3),
        ]
    )
    rules = assert_import_agrees(
        [
            block({"urlFilter": "||example.com^", "requestMethods": ["post"]}),
            block(
                {"urlFilter": "||other.org^", "excludedRequestMethods": ["get", "other"]},
                2,
            ),
        ],
        METHOD_REQUESTS,
    )
    assert rules[0].methods == ("POST",)
    assert "GET" not in rules[1].methods


def test_dnr_precedence_becomes_file_order():
    """Equal priority: DNR lets allow beat block, whatever the ids; waylay uses file order."""
    rules = assert_import_agrees(
        [
            block({"urlFilter": "||example.com^", "resourceTypes": ALL}, 1),
            {
                "id": 2,
                "action": {"type": "redirect", "redirect": {"url": "https://other.org/"}},
                "condition": {"urlFilter": "||sub.example.com^", "resourceTypes": ALL},
            },
            {
                "id": 3,
                "action": {"type": "allow"},
                "condition": {"urlFilter": "||a.sub.example.com^", "resourceTypes": ALL},
            },
            block({"urlFilter": "||other.org^"}, 4, priority=7),
        ]
    )
    assert [r.id for r in rules] == ["dnr-4", "dnr-3", "dnr-1", "dnr-2"]


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        (
            {
                "id": 1,
                "action": {
                    "type": "modifyHeaders",
                    "requestHeaders": [{"header": "x", "operation": "remove"}],
                },
                "condition": {},
            },
            "modifyHeaders",
        ),
        ({"id": 1, "action": {"type": "allowAllRequests"}, "condition": {}}, "allowAllRequests"),
        (block({"initiatorDomains": ["a.com"]}), "initiatorDomains"),
        (block({"domainType": "thirdParty"}), "domainType"),
        (block({"tabIds": [1]}), "tabIds"),
        (block({"requestMethods": ["other"]}), "requestMethods `other`"),
        (block({"excludedRequestMethods": ["get"]}), "excludedRequestMethods"),
        (
            {
                "id": 1,
                "action": {"type": "redirect", "redirect": {"extensionPath": "/a.html"}},
                "condition": {},
            },
            "extensionPath",
        ),
        (block({"regexFilter": r"a(?=b)"}), "not a regex RE2 runs"),
        (block({"urlFilter": "|ftp://example.com"}), "no http(s)"),
        (block({"urlFilter": "|wss://example.com^", "resourceTypes": ["script"]}), "no request"),
    ],
)
def test_rules_waylay_cannot_express_are_skipped_with_a_reason(rule, reason):
    result = dnr.import_rules([rule, block({"urlFilter": "||ok.example^"}, 99)])
    assert [r.id for r in result.rules] == ["dnr-99"]
    assert len(result.skipped) == 1 and reason in result.skipped[0], result.skipped
    assert result.skipped[0].startswith("rule #1 (id 1): skipped: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ('{"id": 1}', "a JSON array of rules"),
        ("[1]", "rule #1: must be an object"),
        ('[{"action": {"type": "block"}, "condition": {}}]', "`id` must be an integer"),
        (
            '[{"id": 1, "action": {"type": "block"}, "condition": {}},'
            ' {"id": 1, "action": {"type": "block"}, "condition": {}}]',
            "duplicate id 1",
        ),
        ('[{"id": 1, "condition": {}}]', "`action` must be an object"),
        ('[{"id": 1, "action": {"type": "explode"}, "condition": {}}]', "unknown action type"),
        ('[{"id": 1, "action": {"type": "block"}}]', "`condition` must be an object"),
        (
            '[{"id": 1, "action": {"type": "block"}, "condition": {"resourceTypes": ["doc"]}}]',
            "unknown value 'doc'",
        ),
        (
            '[{"id": 1, "action": {"type": "block"}, "condition": {"urlFilter": "||*x"}}]',
            "||*",
        ),
        (
            '[{"id": 1, "action": {"type": "block"},'
            ' "condition": {"urlFilter": "a", "regexFilter": "a"}}]',
            "not both",
        ),
        ('[{"id": 1, "priority": 0, "action": {"type": "block"}, "condition": {}}]', "priority"),
        ('[{"id": 1, "action": {"type": "redirect"}, "condition": {}}]', "`redirect` object"),
        (
            '[{"id": 1, "action": {"type": "redirect", "redirect": {"url": "ftp://x/"}},'
            ' "condition": {}}]',
            "would make an invalid waylay rule: url: 'ftp://x/' is not an absolute http(s) URL",
        ),
        (
            '[{"id": 1, "action": {"type": "redirect", "redirect": {"regexSubstitution": "\\\\2"}},'
            ' "condition": {"regexFilter": "(a)"}}]',
            "would make an invalid waylay rule: url: uses \\2",
        ),
    ],
)
def test_malformed_input_is_a_clear_error(text, message):
    with pytest.raises(dnr.DnrError) as caught:
        dnr.loads(text)
    assert message in str(caught.value)


# -- round trip ------------------------------------------------------------------------------

ROUND_TRIP = [
    Rule(id="trackers", urls=["*://*.example.com/*"], types=["script", "image"], action="cancel"),
    Rule(id="keep-sub", urls=["*://*.sub.example.com/*"], action="continue"),
    Rule(id="https-only", urls=["https://other.org/*"], action="cancel", priority=2),
    Rule(
        id="moved",
        urls=["https://example.com:443/a/*"],
        action="redirect",
        url="https://other.org/moved",
        priority=3,
    ),
    Rule(
        id="api",
        regex=r"^https?://example\.com/api/(.*)$",
        action="rewrite",
        url=r"https://other.org/v2/\1",
        priority=4,
    ),
    Rule(id="foo-posts", urls=["*://*/foo*"], methods=["POST"], action="cancel"),
    Rule(id="port", urls=["http://127.0.0.1:8080/*"], action="cancel"),
    Rule(
        id="not-sub",
        urls=["*://*.example.com/x/*"],
        exclude_urls=["*://*.sub.example.com/*"],
        action="cancel",
        priority=5,
    ),
    Rule(id="v6", urls=["http://[::1]/a*"], types=["websocket", "main_frame"], action="cancel"),
]


def test_round_trip_gives_the_same_decisions():
    exported = dnr.export_rules(ROUND_TRIP)
    assert exported.left_out == []
    text = json.dumps(exported.rules)
    imported = dnr.loads(text)
    assert imported.skipped == []
    before, after = Engine(ROUND_TRIP), Engine(imported.rules)
    requests = dnr_eval.browser_requests(
        types=("main_frame", "script", "image", "csp_report"), methods=("get", "post")
    )
    wrong = [r for r in requests if outcome(before, r) != outcome(after, r)]
    assert not wrong, [(r, outcome(before, r), outcome(after, r)) for r in wrong[:5]]
    # and the browser agrees with both
    wrong = [r for r in requests if outcome(before, r) != dnr_eval.decide(exported.rules, r)]
    assert not wrong, wrong[:5]
