"""The rule model: every event/action pair, action parameters, conditions per event."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from policies.model import (
    ACTIONS_BY_EVENT,
    DEFAULT_ACTIONS,
    EVENTS,
    Defaults,
    Rule,
    RuleSetModel,
    normalize_fingerprint,
    problems_from_validation_error,
    validate_rule,
)

FP = "sha256:" + ":".join(["AB"] * 32)

# the smallest valid parameters for each action
PARAMS = {
    ("request", "redirect"): {"url": "https://example.org/"},
    ("request", "rewrite"): {"url": "https://example.org/"},
    ("redirect", "rewrite"): {"url": "https://example.org/"},
    ("auth", "credentials"): {"username": "alice", "secret": "intranet"},
}
ALL_ACTIONS = sorted({a for actions in ACTIONS_BY_EVENT.values() for a in actions})


def test_events_and_actions_are_the_spec_table():
    assert EVENTS == ("request", "response", "redirect", "auth", "certificate", "cookies")
    assert ACTIONS_BY_EVENT == {
        "request": ("continue", "cancel", "redirect", "rewrite", "respond", "ask"),
        "response": ("continue", "cancel", "respond", "ask"),
        "redirect": ("follow", "rewrite", "cancel", "ask"),
        "auth": ("credentials", "cancel", "ask"),
        "certificate": ("allow", "reject", "ask"),
        "cookies": ("allow", "strip"),
    }
    assert DEFAULT_ACTIONS == {
        "request": "continue",
        "response": "continue",
        "redirect": "follow",
        "auth": "ask",
        "certificate": "ask",
        "cookies": "allow",
    }


@pytest.mark.parametrize(
    ("event", "action"),
    [(e, a) for e in EVENTS for a in ALL_ACTIONS],
    ids=[f"{e}-{a}" for e in EVENTS for a in ALL_ACTIONS],
)
def test_every_event_action_pair(event, action):
    data = {"id": "r", "event": event, "action": action, **PARAMS.get((event, action), {})}
    if action == "respond" and event == "response":
        data["respond_status"] = 503
    rule, problems = validate_rule(data)
    if action in ACTIONS_BY_EVENT[event]:
        assert problems == [] and rule is not None
        assert rule.event == event and rule.action == action
    else:
        assert rule is None
        assert [loc for loc, _ in problems] == [("action",)]
        assert f"{action!r}" in problems[0][1] and event in problems[0][1]


def test_unknown_action_lists_the_events_actions():
    _, problems = validate_rule({"id": "r", "action": "block"})
    assert problems == [
        (
            ("action",),
            "unknown action 'block'; request events accept: continue, cancel, redirect, rewrite, respond, ask",
        )
    ]


@pytest.mark.parametrize(
    ("data", "loc", "fragment"),
    [
        ({"action": "redirect"}, ("action",), "redirect needs a `url`"),
        ({"event": "redirect", "action": "rewrite"}, ("action",), "rewrite needs a `url`"),
        ({"action": "cancel", "url": "https://x/"}, ("url",), "only redirect and rewrite"),
        ({"action": "redirect", "url": "/relative"}, ("url",), "not an absolute http(s) URL"),
        ({"action": "redirect", "url": "https://x/\\1"}, ("url",), "no `regex`"),
        ({"action": "redirect", "regex": "(a)", "url": "https://x/\\2"}, ("url",), "has 1 group"),
        ({"action": "respond", "body": "a", "body_file": "b"}, ("body_file",), "not both"),
        ({"action": "cancel", "body": "a"}, ("body",), "only `respond`"),
        ({"action": "cancel", "headers": {"a": "b"}}, ("headers",), "only `respond`"),
        ({"action": "cancel", "status": 404}, ("status",), "only `respond`"),
        ({"action": "respond", "status": [200, 201]}, ("status",), "single integer"),
        (
            {"action": "respond", "respond_status": 200},
            ("respond_status",),
            "request events use `status`",
        ),
        (
            {"event": "auth", "action": "credentials", "username": "a"},
            ("action",),
            "needs `secret`",
        ),
        (
            {"event": "auth", "action": "credentials", "secret": "a"},
            ("action",),
            "needs `username`",
        ),
        (
            {"event": "auth", "action": "cancel", "username": "a"},
            ("username",),
            "only `credentials`",
        ),
        ({"action": "cancel", "realm": "x"}, ("realm",), "auth events only"),
        ({"event": "response", "action": "cancel", "proxy": True}, ("proxy",), "auth events only"),
        ({"action": "cancel", "fingerprint": FP}, ("fingerprint",), "certificate events only"),
        (
            {"event": "certificate", "action": "allow", "methods": ["GET"]},
            ("methods",),
            "no request",
        ),
        ({"event": "cookies", "action": "strip", "status": 200}, ("status",), "no status"),
    ],
)
def test_action_parameters_must_make_sense(data, loc, fragment):
    rule, problems = validate_rule({"id": "r", **data})
    assert rule is None
    assert any(p_loc == loc and fragment in msg for p_loc, msg in problems), problems


@pytest.mark.parametrize(
    ("data", "loc", "fragment"),
    [
        ({"action": "cancel", "colour": "red"}, ("colour",), "unknown field 'colour'"),
        ({"action": "cancel", "priority": "high"}, ("priority",), "must be an integer"),
        ({"action": "cancel", "priority": 1.5}, ("priority",), "must be an integer"),
        ({"action": "cancel", "priority": True}, ("priority",), "must be an integer"),
        ({"action": "cancel", "enabled": "yes"}, ("enabled",), "true or false"),
        ({"action": "cancel", "times": 0}, ("times",), "at least 1"),
        ({"action": "cancel", "urls": "https://x/*"}, ("urls",), "must be a list"),
        ({"action": "cancel", "urls": []}, ("urls",), "must not be empty"),
        ({"action": "cancel", "urls": ["https://x"]}, ("urls",), "missing path"),
        ({"action": "cancel", "exclude_urls": ["http*://x/"]}, ("exclude_urls",), "scheme"),
        ({"action": "cancel", "regex": "("}, ("regex",), "invalid regular expression"),
        ({"action": "cancel", "filter": "~d ("}, ("filter",), "invalid mitmproxy filter"),
        ({"action": "cancel", "methods": ["G ET"]}, ("methods",), "invalid HTTP method"),
        ({"action": "cancel", "types": ["video"]}, ("types", 0), "is not one of"),
        (
            {"event": "response", "action": "cancel", "status": 700},
            ("status",),
            "not an HTTP status",
        ),
        (
            {"event": "response", "action": "cancel", "status": "404"},
            ("status",),
            "integer or a list",
        ),
        (
            {"event": "certificate", "action": "allow", "fingerprint": "md5:00"},
            ("fingerprint",),
            "SHA-256",
        ),
        ({"action": "respond", "headers": {"Bad Name": "x"}}, ("headers",), "invalid header name"),
        ({"action": "respond", "headers": {"X": "a\r\nb"}}, ("headers",), "line break"),
        (
            {"event": "auth", "action": "credentials", "username": "a", "secret": "hunter 2!"},
            ("secret",),
            "NAME",
        ),
        ({"event": "bogus", "action": "cancel"}, ("event",), "is not one of"),
    ],
)
def test_field_errors(data, loc, fragment):
    rule, problems = validate_rule({"id": "r", **data})
    assert rule is None
    assert any(p_loc == loc and fragment in msg for p_loc, msg in problems), problems


def test_id_is_required_and_without_spaces():
    assert validate_rule({"action": "cancel"})[1] == [(("id",), "`id` is required")]
    assert "spaces" in validate_rule({"id": "a b", "action": "cancel"})[1][0][1]
    assert validate_rule({"id": "", "action": "cancel"})[0] is None


def test_status_means_respond_status_for_requests_and_a_condition_otherwise():
    respond = Rule(id="r", action="respond", status=404)
    assert respond.respond_code == 404 and respond.status_condition is None
    assert Rule(id="r", action="respond").respond_code == 200
    cond = Rule(id="r", event="response", status=[500, 502], action="respond", respond_status=503)
    assert cond.status_condition == {500, 502} and cond.respond_code == 503
    assert Rule(id="r", event="response", action="respond").respond_code == 200
    assert Rule(id="r", event="redirect", status=301, action="follow").status_condition == {301}
    assert Rule(id="r", action="cancel").respond_code is None


def test_methods_are_normalised_and_fingerprints_compare_loosely():
    assert Rule(id="r", methods=["get", "Post"], action="cancel").methods == ("GET", "POST")
    assert normalize_fingerprint(FP) == "ab" * 32
    assert normalize_fingerprint("SHA256:" + "Ab" * 32) == "ab" * 32
    assert normalize_fingerprint("ab" * 32) == "ab" * 32
    with pytest.raises(ValueError):
        normalize_fingerprint("sha256:abc")


def test_rules_are_immutable_and_replace_validates():
    rule = Rule(id="r", action="cancel")
    with pytest.raises(ValidationError):
        rule.action = "continue"  # type: ignore[misc]
    assert rule.replace(priority=5).priority == 5
    assert rule.replace(note="x").replace(note=None).note is None
    with pytest.raises(ValidationError):
        rule.replace(action="follow")


def test_to_dict_is_minimal_and_ordered():
    rule = Rule(
        id="api",
        regex=r"^https://api\.example\.com/(.*)$",
        action="rewrite",
        url=r"https://staging.example.com/\1",
        priority=2,
    )
    data = rule.to_dict()
    assert list(data) == ["id", "event", "regex", "action", "url", "priority"]
    assert Rule.model_validate(data) == rule
    assert rule.url_is_substitution


def test_warnings_for_certificate_allow_without_fingerprint():
    assert Rule(id="c", event="certificate", action="allow").warnings()
    assert not Rule(id="c", event="certificate", action="allow", fingerprint=FP).warnings()
    assert not Rule(id="c", event="certificate", action="reject").warnings()


def test_rule_repr_holds_secret_names_only():
    rule = Rule(id="login", event="auth", action="credentials", username="alice", secret="intranet")
    assert "secret='intranet'" in repr(rule)


def test_defaults_and_rule_set():
    assert Defaults().action_for("certificate") == "ask"
    with pytest.raises(ValidationError):
        Defaults(auth="credentials")
    with pytest.raises(ValidationError):
        Defaults(request="redirect")
    model = RuleSetModel.model_validate(
        {
            "version": 1,
            "defaults": {"certificate": "reject"},
            "rule": [{"id": "a", "action": "cancel"}],
        }
    )
    assert model.rules[0].id == "a" and model.defaults.certificate == "reject"
    assert model.to_dict() == {
        "version": 1,
        "defaults": {"certificate": "reject"},
        "rule": [{"id": "a", "event": "request", "action": "cancel"}],
    }
    assert RuleSetModel.model_validate(model.to_dict()) == model


def test_rule_set_errors():
    with pytest.raises(ValidationError) as caught:
        RuleSetModel.model_validate({"rule": [{"id": "a", "action": "cancel"}] * 2})
    assert problems_from_validation_error(caught.value) == [
        (("rule", 1, "id"), "duplicate id 'a' (first used by rule 1)")
    ]
    with pytest.raises(ValidationError) as caught:
        RuleSetModel.model_validate({"version": 2})
    assert "unsupported version 2" in problems_from_validation_error(caught.value)[0][1]


def test_policies_imports_neither_textual_nor_mitmproxy():
    """policies is a pure library: textual never, mitmproxy only for `filter` rules."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, policies, policies.cli\n"
        "from policies import Engine, EventDetails, Rule, RulesFile\n"
        "Engine([Rule(id='a', action='cancel')]).decide(EventDetails('request', 'https://x/'))\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'mitmproxy')]\n"
        "assert not bad, bad\n"
    )
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
