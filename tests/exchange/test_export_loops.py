"""Exports that cannot loop (policies/loops.py): a DNR redirect is a new request the rules
see again, and a 307 is followed by the client; an exported rule must never match its own
redirect target. Checked with the DNR evaluator (tests/exchange/dnr_eval.py) following
every redirect, and through the real command line (--strict exits 3)."""

from __future__ import annotations

import pytest

from monitor.cli import main
from policies import dnr, mitm_options
from policies.loops import examples, loop_example
from policies.model import Rule
from tests.exchange import dnr_eval

LOOPING = """\
version = 1

[[rule]]
id = "debug-js"
regex = '^(https?://cdn\\.example/lib/debug\\.js)\\?'
action = "rewrite"
url = '\\1?debug=1&'

[[rule]]
id = "any-sub"
regex = '^https?://([a-z]+)\\.example\\.com/(.*)'
action = "rewrite"
url = 'https://www.example.com/\\2'

[[rule]]
id = "js-empty"
urls = ["*://*/*.js"]
action = "redirect"
url = "https://cdn.example/empty.js"

[[rule]]
id = "self"
urls = ["*://cdn.example/*"]
action = "redirect"
url = "https://cdn.example/moved"

[[rule]]
id = "to-staging"
regex = '^https://api\\.example\\.com/(.*)$'
action = "rewrite"
url = 'https://staging.example.com/\\1'

[[rule]]
id = "upgrade"
regex = '^http://(.*)'
action = "rewrite"
url = 'https://\\1'
"""

REQUESTS = [
    "https://cdn.example/lib/debug.js?x=1",
    "https://shop.example.com/cart",
    "https://www.example.com/home",
    "https://a.example/app.js",
    "https://cdn.example/empty.js",
    "https://cdn.example/lib/other",
    "https://api.example.com/v1/items",
    "http://plain.example/page",
]


def rules_of(text: str, tmp_path) -> list[Rule]:
    from policies import RulesFile

    path = tmp_path / "rules.toml"
    path.write_text(text)
    rules = RulesFile(path)
    rules.load()
    assert rules.error is None, rules.error
    return list(rules.rules)


def follow(rules: list[dict], url: str, limit: int = 10) -> list[str]:
    """The chain of URLs a browser goes through, redirect after redirect."""
    chain = [url]
    for _ in range(limit):
        outcome, target = dnr_eval.decide(rules, dnr_eval.Request(chain[-1], "script"))
        if outcome != "redirect":
            return chain
        chain.append(target)
    raise AssertionError(f"redirect loop: {chain}")


def test_dnr_export_narrows_or_leaves_out_every_rule_that_matches_its_own_target(tmp_path):
    exported = dnr.export_rules(rules_of(LOOPING, tmp_path))
    reasons = "\n".join(exported.left_out)
    assert "debug-js: left out: it matches its own redirect target" in reasons
    assert "self: left out: it matches its own redirect target" in reasons
    assert "any-sub: narrowed: requests to www.example.com" in reasons
    assert "js-empty: narrowed: requests to cdn.example" in reasons
    assert "to-staging" not in reasons and "upgrade" not in reasons
    for url in REQUESTS:
        chain = follow(exported.rules, url)
        assert len(chain) <= 2, chain  # at most one redirect, never the same rule again
    # what the narrowed rules still do
    assert follow(exported.rules, "https://shop.example.com/cart") == [
        "https://shop.example.com/cart",
        "https://www.example.com/cart",
    ]
    assert follow(exported.rules, "https://a.example/app.js")[-1] == "https://cdn.example/empty.js"
    assert follow(exported.rules, "http://plain.example/page")[-1] == "https://plain.example/page"


def test_without_the_check_the_export_would_loop(tmp_path, monkeypatch):
    """The test above can fail: with the check switched off the DNR evaluator loops."""
    monkeypatch.setattr(dnr, "loop_example", lambda rule, excluded=(): None)
    exported = dnr.export_rules(rules_of(LOOPING, tmp_path))
    with pytest.raises(AssertionError, match="redirect loop"):
        follow(exported.rules, "https://cdn.example/lib/debug.js?x=1")


def test_mitmproxy_export_leaves_out_a_redirect_to_itself_and_keeps_rewrites(tmp_path):
    exported = mitm_options.export_options(rules_of(LOOPING, tmp_path))
    reasons = "\n".join(exported.left_out)
    assert "js-empty: left out: it matches its own redirect target" in reasons
    assert "self: left out: it matches its own redirect target" in reasons
    # map_remote rewrites once per request, inside the proxy: a rewrite cannot loop
    kept = {rid for rid, _text in exported.options["map_remote"]}
    assert {"debug-js", "any-sub", "to-staging", "upgrade"} <= kept


@pytest.mark.parametrize("fmt", ["dnr", "mitmproxy"])
def test_strict_export_exits_3_and_names_the_loop_on_stderr(tmp_path, capsys, fmt):
    path = tmp_path / "rules.toml"
    path.write_text(LOOPING)
    assert main(["rules", "export", str(path), "--format", fmt, "--strict"]) == 3
    err = capsys.readouterr().err
    assert "js-empty" in err and "redirect target" in err
    assert main(["rules", "export", str(path), "--format", fmt]) == 0


def test_examples_cover_alternatives_and_repetitions():
    got = examples(r"^https://(a|bb)\.example/x+(/y)?$")
    assert "https://a.example/x" in got and "https://bb.example/xx/y" in got


def test_loop_example_names_a_request_and_its_target():
    rule = Rule(id="r", regex=r"^(https?://h\.example/p)\?", action="rewrite", url=r"\1?d=1&")
    assert loop_example(rule) == ("http://h.example/p?", "http://h.example/p?d=1&")
    fixed = Rule(id="f", urls=["*://h.example/*"], action="redirect", url="https://o.example/")
    assert loop_example(fixed) is None
