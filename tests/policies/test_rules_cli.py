"""`waylay rules check` and `waylay rules list`."""

from __future__ import annotations

import io

from policies.cli import action_summary, check, conditions_summary, list_rules
from policies.model import Rule

GOOD = """\
version = 1

[defaults]
auth = "cancel"

[[rule]]
id = "no-trackers"
urls = ["*://*.tracker.example/*"]
types = ["script", "image"]
methods = ["GET"]
action = "cancel"

[[rule]]
id = "api-to-staging"
regex = '^https://api\\.example\\.com/(.*)$'
action = "rewrite"
url = 'https://staging.example.com/\\1'
priority = 2

[[rule]]
id = "once"
action = "ask"
times = 3
enabled = false
"""


def run(func, path, **kw):
    out, err = io.StringIO(), io.StringIO()
    code = func(path, stdout=out, stderr=err, **kw)
    return code, out.getvalue(), err.getvalue()


def test_check_ok(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(GOOD)
    code, out, err = run(check, path)
    assert (code, err) == (0, "")
    assert out == f"{path}: OK, 3 rules (1 disabled) for request\n"


def test_check_errors(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(
        GOOD.replace('action = "cancel"', 'action = "block"').replace(
            "priority = 2", 'priority = "2"'
        )
    )
    code, out, err = run(check, path)
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert lines[0] == (
        f"{path}:11:1: rule 'no-trackers': unknown action 'block'; request events accept: "
        "continue, cancel, redirect, rewrite, respond, ask"
    )
    assert lines[1] == f"{path}:18:1: rule 'api-to-staging': priority: must be an integer, got '2'"
    assert lines[2] == f"{path}: 2 errors"


def test_check_warnings_do_not_fail(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(
        '[[rule]]\nid = "dev"\nevent = "certificate"\nurls = ["https://dev.internal/*"]\naction = "allow"\n'
    )
    code, out, err = run(check, path)
    assert code == 0
    assert "OK, 1 rule for certificate, 1 warning" in out
    assert (
        err
        == f"{path}:5:1: warning: rule 'dev': allows ANY certificate for its URLs, even a forged one: add a `fingerprint`\n"
    )


def test_check_missing_files(tmp_path, monkeypatch):
    code, out, err = run(check, tmp_path / "nope.toml")
    assert code == 1 and "no such file" in err
    monkeypatch.setenv("WAYLAY_RULES", str(tmp_path / "default.toml"))
    code, out, err = run(check, None)
    assert code == 0 and "no rules file yet" in out and str(tmp_path / "default.toml") in out


def test_check_uses_the_default_path(tmp_path, monkeypatch, _policies_home):
    path = _policies_home / ".config" / "waylay" / "rules.toml"
    path.parent.mkdir(parents=True)
    path.write_text(GOOD)
    code, out, _ = run(check, None)
    assert code == 0 and out.startswith(f"{path}: OK")


def test_list_in_precedence_order(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(GOOD)
    code, out, err = run(list_rules, path, width=200)
    assert code == 0 and err == ""
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == ["api-to-staging", "no-trackers", "once"]
    api, trackers, once = ([cell.strip() for cell in row.split("│")[1:-1]] for row in rows)
    assert api == [
        "api-to-staging",
        "request",
        r"regex ^https://api\.example\.com/(.*)$",
        r"rewrite → https://staging.example.com/\1",
        "2",
        "yes",
        "",
    ]
    assert trackers == [
        "no-trackers",
        "request",
        "*://*.tracker.example/*; GET; types script,image",
        "cancel",
        "1",
        "yes",
        "",
    ]
    assert once == ["once", "request", "any", "ask", "1", "no", "3"]
    assert "defaults: auth = cancel" in out
    for header in ("id", "event", "conditions", "action", "priority", "enabled", "times left"):
        assert header in out


def test_list_a_broken_file(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text("[[rule]]\nid = 1\n")
    code, out, err = run(list_rules, path)
    assert code == 1 and f"{path}:2:1:" in err


def test_summaries():
    rule = Rule(
        id="r",
        event="auth",
        urls=["https://a/*"],
        exclude_urls=["https://a/public/*"],
        status=[401],
        realm="Staff",
        proxy=False,
        action="credentials",
        username="alice",
        secret="intranet",
    )
    assert (
        conditions_summary(rule)
        == "https://a/*; not https://a/public/*; status 401; realm 'Staff'; server 401"
    )
    assert action_summary(rule) == "credentials alice (secret intranet)"
    assert (
        action_summary(Rule(id="m", action="respond", status=404, body="nope"))
        == "respond 404 4 bytes"
    )
    assert (
        action_summary(Rule(id="m", event="response", action="respond", body_file="x.json"))
        == "respond 200 file x.json"
    )
