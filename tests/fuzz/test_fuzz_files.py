"""Fuzzing the readers of files: the rules file (TOML), the JSON and DNR importers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import dnr, exchange
from policies.rules_file import check_text, toml_value

from .strategies import examples, json_values, rule_data

PATH = Path("/fuzz/rules.toml")
LINE = re.compile(rf"^{re.escape(str(PATH))}:\d+:\d+: [^\n]+$")

GOOD = """# my rules
version = 1

[defaults]
certificate = "reject"

[[rule]]
id = "api"
regex = '^https://api\\.example\\.com/(.*)$'
action = "rewrite"
url = 'https://staging.example.com/\\1'
priority = 2

[[rule]]
id = "ads"
urls = ["*://*.ads.example/*"]
types = ["script", "image"]
action = "cancel"
times = 3
"""

toml_chars = st.sampled_from(
    list("[]{}=\"'#.,\n \t\\abcxyz019-_") + ["[[rule]]", "\ufeff", "é", "\x00"]
)


def assert_clean(loaded) -> None:
    for message in loaded.errors + loaded.warnings:
        assert LINE.match(message), message
    if loaded.errors:
        assert loaded.rules == () or all(r.id for r in loaded.rules)


@examples(2)
@given(st.text(max_size=200))
def test_any_text_is_rules_or_one_line_errors(text):
    assert_clean(check_text(text, PATH))


@examples(2)
@given(st.lists(toml_chars, max_size=80).map("".join))
def test_toml_shaped_text_is_rules_or_one_line_errors(text):
    assert_clean(check_text(text, PATH))


@examples(2)
@given(st.data())
def test_a_good_file_mutated_is_rules_or_one_line_errors(data):
    text = GOOD
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        if data.draw(st.booleans()):
            text = text[:at] + data.draw(st.lists(toml_chars, max_size=5).map("".join)) + text[at:]
        else:
            text = text[:at] + text[at + data.draw(st.integers(1, 10)) :]
    assert_clean(check_text(text, PATH))


@examples(1)
@given(
    st.lists(rule_data(), max_size=4), st.dictionaries(st.text(max_size=6), json_values, max_size=2)
)
def test_rules_written_as_toml_are_rules_or_one_line_errors(rules, extra):
    import tomlkit

    doc = tomlkit.document()
    doc["version"] = 1
    for key, value in extra.items():
        try:
            doc[key] = toml_value(value)
        except Exception:  # noqa: BLE001 - tomlkit cannot write every value (None, nan keys)
            pass
    array = tomlkit.aot()
    for data in rules:
        try:
            array.append(toml_value(data))
        except Exception:  # noqa: BLE001
            pass
    doc["rule"] = array
    try:
        text = doc.as_string()
    except Exception:  # noqa: BLE001
        return
    assert_clean(check_text(text, PATH))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz-import")


@examples(2)
@given(
    st.one_of(
        st.fixed_dictionaries(
            {"version": st.sampled_from((1, 2, "1")), "rule": st.lists(rule_data(), max_size=4)}
        ),
        json_values,
    )
)
def test_json_import_reads_rules_or_gives_a_clean_error(folder, document):
    source = folder / "in.json"
    try:
        source.write_text(json.dumps(document))
    except ValueError:  # nan/inf keys json cannot write
        return
    try:
        incoming = exchange._read_incoming(source, "json")
    except exchange.ExchangeError as exc:
        assert str(exc)
    else:
        assert all(rule.id for rule in incoming.rules)


@examples(2)
@given(st.text(max_size=120))
def test_json_import_of_any_text_gives_a_clean_error(folder, text):
    source = folder / "text.json"
    source.write_text(text)
    try:
        exchange._read_incoming(source, "json")
    except exchange.ExchangeError as exc:
        assert str(exc)


DNR_TYPES = (
    "block",
    "allow",
    "redirect",
    "upgradeScheme",
    "modifyHeaders",
    "allowAllRequests",
    "nope",
)

dnr_conditions = st.fixed_dictionaries(
    {},
    optional={
        "urlFilter": st.sampled_from(
            ("||example.com^", "|https://a.example/*", "*", "|wss://x", "^", "")
        )
        | st.text(max_size=12),
        "regexFilter": st.sampled_from(
            ("(a+)+$", "^https://(.*)", "(?=x)", "\\p{L}", "[[:alpha:]]\\z")
        )
        | st.text(max_size=10),
        "isUrlFilterCaseSensitive": st.booleans() | json_values,
        "resourceTypes": st.lists(st.sampled_from(dnr.DNR_RESOURCE_TYPES + ("nope",)), max_size=3),
        "excludedResourceTypes": st.lists(st.sampled_from(dnr.DNR_RESOURCE_TYPES), max_size=2),
        "requestDomains": st.lists(
            st.sampled_from(("example.com", "", "münchen.de", "a..b")), max_size=2
        ),
        "excludedRequestDomains": st.lists(st.text(max_size=8), max_size=2),
        "requestMethods": st.lists(st.sampled_from(("get", "post", "other", "x")), max_size=2),
        "initiatorDomains": st.lists(st.text(max_size=5), max_size=1),
    },
)
dnr_actions = st.fixed_dictionaries(
    {"type": st.sampled_from(DNR_TYPES)},
    optional={
        "redirect": st.fixed_dictionaries(
            {},
            optional={
                "url": st.sampled_from(("https://b.example/", "nope", "")),
                "regexSubstitution": st.sampled_from(("https://b/\\1", "\\0", "\\", "x")),
                "extensionPath": st.just("/a.html"),
                "transform": json_values,
            },
        )
    },
)
dnr_rules = st.fixed_dictionaries(
    {
        "id": st.integers(-1, 5) | json_values,
        "action": dnr_actions | json_values,
        "condition": dnr_conditions,
    },
    optional={"priority": st.integers(-1, 2**31) | json_values},
)


@examples(2)
@given(st.lists(dnr_rules | json_values, max_size=5) | json_values)
def test_dnr_import_translates_or_gives_a_clean_error(data):
    try:
        result = dnr.import_rules(data)
    except dnr.DnrError as exc:
        assert str(exc)
    else:
        ids = [rule.id for rule in result.rules]
        assert len(ids) == len(set(ids))


@examples(2)
@given(st.text(max_size=120))
def test_dnr_import_of_any_text_gives_a_clean_error(text):
    try:
        dnr.loads(text)
    except dnr.DnrError as exc:
        assert str(exc)
