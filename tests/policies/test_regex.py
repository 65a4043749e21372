"""Rule regexes are RE2 (policies/regex.py): matching, substitution, refusals, exports."""

from __future__ import annotations

import pytest

from policies.engine import Engine, EventDetails, substitute
from policies.model import Rule, validate_rule
from policies.regex import (
    RegexError,
    compile_regex,
    regex_problem,
    to_python,
    top_level_alternation,
)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/v1/users?id=7",
        "https://api.example.com/é/ü?x=ß",  # not ASCII: offsets are characters, not bytes
        "https://api.example.com/\udcff\u20ac/𝄞",  # a bad byte mitmproxy kept as a surrogate
    ],
)
def test_substitution_with_groups(url):
    rule = Rule(
        id="r",
        regex=r"^https://api\.example\.com/([^/]+)/(.*)$",
        action="rewrite",
        url=r"https://staging.example.com/\2/\1?was=\0",
    )
    decision = Engine([rule]).decide(EventDetails("request", url))
    first, rest = url.removeprefix("https://api.example.com/").split("/", 1)
    assert decision.url == f"https://staging.example.com/{rest}/{first}?was={url}"


def test_substitution_replaces_the_first_match_only_and_unset_groups_are_empty():
    regex = compile_regex(r"(a)|(b)")
    found = regex.search("xbab")
    assert (found.start(), found.end(), found.group(1), found.group(2)) == (1, 2, None, "b")
    assert substitute("xbab", found, r"[\1\2\\]") == "x[b\\]ab"


def test_matches_agrees_with_search():
    regex = compile_regex(r"(?i)\.PNG$")
    assert regex.matches("https://a/x.png") and regex.search("https://a/x.png") is not None
    assert not regex.matches("https://a/x.png?") and regex.search("https://a/x.png?") is None
    assert regex.matches("https://a/é.png")


@pytest.mark.parametrize(
    ("pattern", "hint"),
    [
        ("a(?=b)", "lookahead"),
        ("(?<!a)b", "lookbehind"),
        (r"(a)\1", "backreferences"),
        ("a*+", "possessive"),
        (r"x\Z", r"\z"),
        (r"\u00e9", r"\x{hhhh}"),
        ("a{1001}", "1000"),
        ("(", "missing )"),
    ],
)
def test_refusals_say_why(pattern, hint):
    problem = regex_problem(pattern)
    assert problem is not None and hint in problem
    with pytest.raises(RegexError):
        compile_regex(pattern)
    rule, problems = validate_rule({"id": "r", "regex": pattern, "action": "cancel"})
    assert rule is None and "(RE2)" in problems[0][1]


def test_re2_only_syntax_is_fine():
    for pattern in (r"[[:alpha:]]+\z", r"\pL", r"(?<name>x)", r"\x{e9}", r"(?U)a+"):
        assert regex_problem(pattern) is None, pattern


def test_rules_re2_reads_differently_from_python_get_a_warning():
    rule = Rule(id="r", regex="a{,3}", action="cancel")
    assert any("{0,n}" in w for w in rule.warnings())
    rule = Rule(id="r", regex="a{4294967296}", action="cancel")
    assert any("literal text" in w for w in rule.warnings())


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("a|b", True),
        ("(a|b)", False),
        ("[|]", False),
        (r"\|", False),
        (r"\Qa|b\E", False),
        ("[]|]", False),
        ("[[:alpha:]|]", False),
        ("(a)|b", True),
    ],
)
def test_top_level_alternation(pattern, expected):
    assert top_level_alternation(pattern) is expected


def test_to_python_translates_or_says_why():
    assert to_python(r"(?<h>[^/]+)/x\z") == r"(?P<h>[^/]+)/x\Z"
    for pattern in (r"\pL", r"[[:alpha:]]", r"\x{e9}", "(?U)a+", "a{,3}"):
        with pytest.raises(ValueError):
            to_python(pattern)


def test_mitmproxy_export_translates_re2_or_leaves_the_rule_out():
    from policies import mitm_options

    rules = [
        Rule(id="ok", regex=r"^https://a\.example/(?<h>x)$", action="cancel"),
        Rule(id="posix", regex=r"^https://a\.example/[[:digit:]]+", action="cancel"),
    ]
    exported = mitm_options.export_options(rules)
    [(rule_id, entry)] = exported.options["block_list"]
    assert rule_id == "ok" and "(?P<h>x)" in entry, entry
    [left_out] = exported.left_out
    assert left_out.startswith("posix: ") and "POSIX" in left_out


def test_re2_syntax_never_makes_python_warn(recwarn):
    """Python's parser (host index, mitmproxy export) reads some RE2 syntax with a
    FutureWarning; none may reach stderr, where the screen draws."""
    from policies import mitm_options
    from policies.engine import regex_host

    assert regex_host(r"^https://a\.example/[[:alpha:]]") == "a.example"
    rule = Rule(
        id="r", regex=r"^https://a\.example/([a&&b])$", action="rewrite", url=r"https://b/\1"
    )
    mitm_options.export_options([rule])
    assert [str(w.message) for w in recwarn] == []
