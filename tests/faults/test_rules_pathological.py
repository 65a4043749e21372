"""Issue 15.6: pathological rules files give one ``PATH:LINE:COL: message`` line (exit 1
for ``rules check``), never a traceback; the proxy starts with the last good rules or
none, and says so.

Before: deeply nested regex groups and a huge repeat count crashed Python's regex parser
(RecursionError, OverflowError), a deeply nested TOML array crashed tomllib, and
``waylay --headless`` died with the traceback.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from policies import RulesFile
from tests.helpers import WAYLAY, curl, headless

DEPTH = 5000


def _rule(regex: str) -> str:
    return f'version = 1\n\n[[rule]]\nid = "r"\nregex = \'{regex}\'\naction = "cancel"\n'


BAD_FILES = {
    # name: (text, line, what the message says)
    "nested-array": ("version = 1\nx = " + "[" * DEPTH + "]" * DEPTH + "\n", 2, "nested"),
    "nested-inline-table": (
        "version = 1\nx = " + "{a = " * DEPTH + "1" + "}" * DEPTH + "\n",
        2,
        "nested",
    ),
    "nested-array-in-a-rule": (
        'version = 1\n[[rule]]\nid = "r"\naction = "cancel"\nurls = '
        + "[" * DEPTH
        + "]" * DEPTH
        + "\n",
        5,
        "nested",
    ),
    "huge-repeat-count": (_rule("a{4294967296}{2}{99999}"), 5, "repetition"),
    "nested-repeats": (_rule("((a{1000}){1000}){1000}"), 5, "repetition"),
    "huge-regex": (_rule("(" * 60_000 + "a" + ")" * 60_000), 5, "longer than"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_rules_check_gives_one_line_and_exit_1(tmp_path, name):
    text, line, says = BAD_FILES[name]
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    r = subprocess.run(
        [*WAYLAY, "rules", "check", str(path)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 2, lines[:5]
    assert re.match(rf"^{re.escape(str(path))}:{line}:\d+: ", lines[0]), lines[0][:300]
    assert says in lines[0]
    assert len(lines[0]) < 400  # one readable line, not the pattern
    assert lines[1] == f"{path}: 1 error"


def test_deeply_nested_regex_groups_load_and_match(tmp_path):
    """2,000 nested groups: Python's parser gave up (RecursionError); RE2 runs it."""
    path = tmp_path / "rules.toml"
    path.write_text(_rule("^https://deep\\.example/" + "(" * 2000 + "x" + ")" * 2000))
    rules = RulesFile(path)
    assert rules.load(), rules.errors
    from policies.engine import EventDetails

    assert rules.decide(EventDetails("request", "https://deep.example/x")).action == "cancel"
    assert rules.decide(EventDetails("request", "https://deep.example/y")).action == "continue"


def test_a_huge_file_is_refused_unread_with_one_line(tmp_path):
    path = tmp_path / "huge.toml"
    with open(path, "w") as handle:  # valid TOML: a comment of 40 MB
        handle.write("version = 1\n# ")
        for _ in range(40):
            handle.write("x" * (1024 * 1024))
        handle.write("\n")
    r = subprocess.run(
        [*WAYLAY, "rules", "check", str(path)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    [line] = r.stderr.splitlines()
    assert line.startswith(f"{path}:1:1: cannot read: the file is 40.0 MB")
    assert "up to 32 MB" in line


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_edit_keeps_the_last_good_rules(tmp_path, name):
    path = tmp_path / "rules.toml"
    path.write_text(
        'version = 1\n[[rule]]\nid = "good"\nurls = ["*://a.example/*"]\naction = "cancel"\n'
    )
    rules = RulesFile(path)
    assert rules.load()
    path.write_text(BAD_FILES[name][0])
    assert rules.load() is False
    assert [r.id for r in rules.rules] == ["good"]
    assert rules.broken and len(rules.errors) == 1
    assert rules.errors[0].startswith(f"{path}:")


def test_headless_starts_with_no_rules_and_says_so(settings, upstream):
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text(BAD_FILES["nested-array"][0])
    args = ["--confdir", str(settings.confdir), "--rules", str(settings.rules)]
    with headless(*args) as w:
        assert "Traceback" not in w.stderr_head
        assert f"waylay: rules file: {settings.rules}:2:" in w.stderr_head
        assert "continuing with no rules until the file is fixed" in w.stderr_head
        r = curl(w.port, upstream.url("/still-serving"))
        assert r.stdout.endswith("\n200")
        assert w.terminate() == 0


def test_headless_with_a_regex_re2_refuses_says_so_and_serves(settings, upstream):
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text(_rule(r"^http://127\.0\.0\.1:\d+/(?=x)"))
    args = ["--confdir", str(settings.confdir), "--rules", str(settings.rules)]
    with headless(*args) as w:
        assert f"waylay: rules file: {settings.rules}:5:1: " in w.stderr_head
        assert "lookahead" in w.stderr_head
        r = curl(w.port, upstream.url("/x"))
        assert r.stdout.endswith("\n200")
        assert w.terminate() == 0


@pytest.mark.parametrize("fmt", ["json", "dnr"])
def test_deeply_nested_json_import_is_one_line(tmp_path, fmt):
    source = tmp_path / "deep.json"
    source.write_text("[" * 100_000 + "]" * 100_000)
    target = tmp_path / "rules.toml"
    r = subprocess.run(
        [*WAYLAY, "rules", "import", str(source), "--format", fmt, "--into", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "nested too deeply" in r.stderr
    assert not target.exists()
