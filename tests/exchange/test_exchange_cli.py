"""``waylay rules export`` and ``waylay rules import`` through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.cli import main
from policies import RulesFile
from policies.exchange import export_text
from policies.model import Defaults, Rule, RuleSetModel

RULES = """\
# my rules: comments are kept when waylay writes
version = 1

[defaults]
certificate = "reject"

[[rule]]
id = "no-trackers"  # the classic
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
id = "intranet-login"
event = "auth"
urls = ["https://intranet.example/*"]
realm = "Staff"
action = "credentials"
username = "alice"
secret = "intranet-login"

[[rule]]
id = "teapot"
urls = ["https://example.com/tea"]
action = "respond"
status = 418
headers = { "X-Tea" = "yes" }
body = "short and stout"
note = "a note"
times = 3
"""

SECRET = "hunter2-very-secret"


@pytest.fixture
def rules(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    monkeypatch.setenv("WAYLAY_SECRET_INTRANET_LOGIN", SECRET)
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["rules", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def model_of(path: Path) -> RuleSetModel:
    rules_file = RulesFile(path)
    assert rules_file.load(), rules_file.errors
    return RuleSetModel(rule=rules_file.rules, defaults=rules_file.defaults)


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_toml_and_json_are_lossless_and_load_back(capsys, rules, tmp_path, fmt):
    code, out, err = run(capsys, "export", str(rules), "--format", fmt)
    assert code == 0 and err == ""
    assert SECRET not in out and "intranet-login" in out  # the secret's name, never its value
    exported = tmp_path / f"exported.{fmt}"
    exported.write_text(out)
    target = tmp_path / "again" / "rules.toml"
    code, out2, err2 = run(capsys, "import", str(exported), "--format", fmt, "--into", str(target))
    assert code == 0, err2
    assert model_of(target) == model_of(rules)
    assert "imported 4 rules" in out2


def test_json_has_the_rules_file_schema(capsys, rules):
    code, out, _ = run(capsys, "export", str(rules), "--format", "json")
    data = json.loads(out)
    assert set(data) == {"version", "defaults", "rule"}
    assert RuleSetModel.model_validate(data).defaults == Defaults(certificate="reject")


def test_dnr_export_names_left_out_rules_on_stderr(capsys, rules):
    code, out, err = run(capsys, "export", str(rules), "--format", "dnr")
    assert code == 0
    assert len(json.loads(out)) == 2
    assert err.splitlines() == [
        "intranet-login: left out: auth events have no declarativeNetRequest equivalent",
        "teapot: left out: the respond action has no declarativeNetRequest equivalent",
    ]
    code, _, _ = run(capsys, "export", str(rules), "--format", "dnr", "--strict")
    assert code == 3


def test_mitmproxy_export_to_a_file(capsys, rules, tmp_path):
    target = tmp_path / "out" / "config.yaml"
    target.parent.mkdir()
    code, out, err = run(capsys, "export", str(rules), "--format", "mitmproxy", "-o", str(target))
    assert code == 0 and out == ""
    assert "map_remote:" in target.read_text()
    assert "no-trackers: left out: `types`" in err
    assert f"wrote {target} (3 rules left out, named above)" in err


def test_export_of_the_default_rules_file(capsys, rules, monkeypatch):
    monkeypatch.setenv("WAYLAY_RULES", str(rules))
    code, out, _ = run(capsys, "export", "--format", "toml")
    assert code == 0 and 'id = "api-to-staging"' in out


def test_export_of_a_broken_file_fails_with_its_errors(capsys, tmp_path):
    broken = tmp_path / "rules.toml"
    broken.write_text('version = 1\n[[rule]]\nid = "x"\naction = "explode"\n')
    code, out, err = run(capsys, "export", str(broken), "--format", "dnr")
    assert code == 1 and out == ""
    assert err.startswith(f"{broken}:4:1: rule 'x': ")
    code, _, err = run(capsys, "export", str(tmp_path / "missing.toml"), "--format", "json")
    assert code == 1 and "no such file" in err


def test_export_text_for_the_screen(rules):
    rules_file = RulesFile(rules)
    assert rules_file.load()
    text, warnings = export_text(rules_file, "dnr")
    assert json.loads(text)[0]["condition"]["urlFilter"] == "||tracker.example^"
    assert [w.split(":")[0] for w in warnings] == ["intranet-login", "teapot"]
    text, warnings = export_text(rules_file, "mitmproxy")
    assert text.startswith("# mitmproxy options exported by waylay")
    assert SECRET not in text


# -- import ----------------------------------------------------------------------------------

DNR = [
    {"id": 1, "action": {"type": "block"}, "condition": {"urlFilter": "||ads.example^"}},
    {
        "id": 2,
        "priority": 2,
        "action": {"type": "redirect", "redirect": {"url": "https://example.com/"}},
        "condition": {"urlFilter": "|http://example.com/", "resourceTypes": ["main_frame"]},
    },
    {
        "id": 3,
        "action": {
            "type": "modifyHeaders",
            "requestHeaders": [{"header": "x-a", "operation": "remove"}],
        },
        "condition": {"urlFilter": "||x.example^"},
    },
]


def test_dnr_import_adds_rules_keeps_the_file_and_reports(capsys, rules, tmp_path):
    source = tmp_path / "rules.json"
    source.write_text(json.dumps(DNR))
    original = rules.read_text()
    code, out, err = run(capsys, "import", str(source), "--format", "dnr", "--into", str(rules))
    assert code == 0, err
    assert "rule #3 (id 3): skipped: action modifyHeaders" in err
    assert "imported 2 rules" in out
    text = rules.read_text()
    assert text.startswith(original)  # appended: comments and layout untouched
    assert (tmp_path / "rules.toml.bak").read_text() == original
    ids = [r.id for r in model_of(rules).rules]
    assert ids[-2:] == ["dnr-2", "dnr-1"]  # priority 2 first

    # again: identical rules are skipped, nothing is written
    code, out, err = run(capsys, "import", str(source), "--format", "dnr", "--into", str(rules))
    assert code == 0
    assert "dnr-2: skipped: identical to rule 'dnr-2'" in err
    assert "nothing to import" in out
    assert rules.read_text() == text


def test_an_id_in_use_gets_a_new_one(capsys, rules, tmp_path):
    source = tmp_path / "more.toml"
    source.write_text(
        'version = 1\n[[rule]]\nid = "no-trackers"\nurls = ["*://*.b.example/*"]\naction = "cancel"\n'
    )
    code, out, err = run(capsys, "import", str(source), "--format", "toml", "--into", str(rules))
    assert code == 0, err
    assert "no-trackers: imported as 'no-trackers-2' (the id is taken)" in err
    assert "1 with a new id" in out
    assert model_of(rules).rules[-1].id == "no-trackers-2"


def test_replace(capsys, rules, tmp_path):
    source = tmp_path / "rules.json"
    source.write_text(json.dumps(DNR[:1]))
    code, out, err = run(
        capsys, "import", str(source), "--format", "dnr", "--into", str(rules), "--replace"
    )
    assert code == 0, err
    model = model_of(rules)
    assert [r.id for r in model.rules] == ["dnr-1"]
    assert model.defaults == Defaults(certificate="reject")  # a DNR file has no defaults
    assert "replaced 4 rules" in out


def test_import_into_a_new_default_file(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("WAYLAY_RULES", str(tmp_path / "cfg" / "rules.toml"))
    source = tmp_path / "rules.json"
    source.write_text(json.dumps(DNR[:1]))
    code, _, err = run(capsys, "import", str(source), "--format", "dnr")
    assert code == 0, err
    assert [r.id for r in model_of(tmp_path / "cfg" / "rules.toml").rules] == ["dnr-1"]


@pytest.mark.parametrize(
    ("fmt", "content", "message"),
    [
        ("dnr", "[{", "not JSON"),
        ("dnr", '{"rules": []}', "a JSON array of rules"),
        (
            "dnr",
            json.dumps(
                [
                    {
                        "id": 1,
                        "action": {"type": "redirect", "redirect": {"url": "javascript:x"}},
                        "condition": {},
                    }
                ]
            ),
            "would make an invalid waylay rule",
        ),
        ("json", '{"version": 1, "rule": [{"id": "a", "action": "fly"}]}', "rule 'a': "),
        ("json", "[1, 2]", "expected an object"),
        ("toml", 'version = 1\n[[rule]]\nid = "a"\naction = "cancel"\nbogus = 1\n', ":5:1:"),
        ("toml", "version = [\n", "TOML syntax error"),
        (
            "toml",
            'version = 1\n[[rule]]\nid = "c"\nevent = "auth"\naction = "credentials"\n'
            'username = "u"\nsecret = "nowhere"\n',
            "WAYLAY_SECRET_NOWHERE",
        ),
        (
            "toml",
            'version = 1\n[[rule]]\nid = "f"\naction = "respond"\nbody_file = "missing.txt"\n',
            "does not exist",
        ),
    ],
)
def test_bad_input_is_a_clear_error_and_nothing_is_written(
    capsys, rules, tmp_path, fmt, content, message
):
    source = tmp_path / f"incoming.{fmt}"
    source.write_text(content)
    before = rules.read_bytes()
    code, out, err = run(capsys, "import", str(source), "--format", fmt, "--into", str(rules))
    assert code == 1
    assert message in err
    assert f"nothing imported; {rules} is unchanged" in err
    assert rules.read_bytes() == before
    assert not (tmp_path / "rules.toml.bak").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_broken_target_is_never_written(capsys, tmp_path):
    target = tmp_path / "rules.toml"
    target.write_text("version = 1\n[[rule]]\nid = 'x'\n")
    source = tmp_path / "rules.json"
    source.write_text(json.dumps(DNR[:1]))
    for extra in ([], ["--replace"]):
        code, _, err = run(
            capsys, "import", str(source), "--format", "dnr", "--into", str(target), *extra
        )
        assert code == 1 and "never writes to a broken rules file" in err
        assert target.read_text() == "version = 1\n[[rule]]\nid = 'x'\n"


def test_the_screen_exports_rules_through_the_same_code(rules):
    rules_file = RulesFile(rules)
    assert rules_file.load()
    text, warnings = export_text(rules_file, "toml")
    assert warnings == []
    again = RulesFile(rules.parent / "copy.toml")
    (rules.parent / "copy.toml").write_text(text)
    assert again.load(), again.errors
    assert again.rules == rules_file.rules
    assert isinstance(again.rules[0], Rule)
