"""Fuzzing the rule model, match patterns and the engine."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from policies.engine import Engine, EventDetails
from policies.match_pattern import MatchPatternError, compile_pattern, split_url
from policies.model import ACTIONS_BY_EVENT, RESOURCE_TYPES, Rule, validate_rule
from policies.regex import RegexError, compile_regex

from .strategies import examples, patterns, regexes, rule_data, rule_sets, urls


@examples(2)
@given(rule_data())
def test_rule_data_validates_or_says_what_is_wrong(data):
    rule, problems = validate_rule(data)
    if rule is None:
        assert problems
        for loc, message in problems:
            assert isinstance(loc, tuple) and isinstance(message, str) and message
            assert "\n" not in message
    else:
        assert problems == []
        assert rule.action in ACTIONS_BY_EVENT[rule.event]
        # what waylay writes reads back as the same rule
        assert Rule.model_validate(rule.to_dict()) == rule
        rule.warnings()


@examples(2)
@given(rule_data())
def test_the_model_raises_only_validation_errors(data):
    try:
        Rule.model_validate(data)
    except ValidationError:
        pass


@examples(5)
@given(patterns(), urls())
def test_match_patterns_compile_or_refuse_and_never_fail_to_match(pattern, url):
    try:
        compiled = compile_pattern(pattern)
    except MatchPatternError as exc:
        assert str(exc)
        return
    assert isinstance(compiled.matches(url), bool)
    parts = split_url(url)
    if parts is not None:
        assert compiled.matches_split(parts) == compiled.matches(url)


@examples(2)
@given(regexes, urls())
def test_regexes_compile_as_re2_or_refuse_and_search_any_url(pattern, url):
    try:
        regex = compile_regex(pattern)
    except RegexError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    found = regex.search(url)
    assert regex.matches(url) is (found is not None)
    if found is not None:
        assert 0 <= found.start() <= found.end() <= len(url)
        assert found.group(0) == url[found.start() : found.end()]
        for n in range(regex.groups + 1):
            text = found.group(n)
            assert text is None or text in url


@examples(2)
@given(
    rule_sets,
    urls(),
    st.sampled_from(("GET", "POST", "put")),
    st.sampled_from(RESOURCE_TYPES),
)
def test_the_indexed_engine_decides_as_trying_every_rule_would(rules, url, method, kind):
    details = EventDetails("request", url, method=method, type=kind)
    decision = Engine(rules).decide(details)
    # the oracle: each enabled rule on its own, in precedence order
    alone = [r for r in rules if r.enabled and Engine([r]).decide(details).matched == (r.id,)]
    alone.sort(key=lambda r: (-r.priority, rules.index(r)))
    assert decision.matched == tuple(r.id for r in alone)
    if alone:
        assert decision.rule == alone[0] and decision.action == alone[0].action
    else:
        assert decision.rule is None and decision.action == "continue"


@examples(2)
@given(rule_data(), urls())
def test_any_valid_rule_decides_any_event_without_failing(data, url):
    rule, _ = validate_rule(data)
    if rule is None:
        return
    engine = Engine([rule])
    details = EventDetails(rule.event, url, status=200, realm="r", fingerprint="ab" * 32)
    decision = engine.decide(details)
    assert decision.action in ACTIONS_BY_EVENT[rule.event]
    if decision.rule is not None and rule.url_is_substitution:
        assert isinstance(decision.url, str)
