"""Issue 16 (``rules check`` caps its list, a BOM gets a hint; ``rules import`` of
``respond`` rules whose ``body_file`` is outside the rules folder is refused unless asked,
and ``rules check`` warns about them) and issue 17 (``rules list`` piped: one rule per
line, never wrapped; ``--format table|tsv|json``).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.helpers import WAYLAY


def waylay(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The real command, its stdout a pipe (not a terminal)."""
    return subprocess.run([*WAYLAY, *args], capture_output=True, text=True, timeout=timeout)


# -- rules check ---------------------------------------------------------------------------


def test_check_caps_the_error_list(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(
        "version = 1\n"
        + "".join(f'\n[[rule]]\nid = "r{i}"\naction = "nope"\n' for i in range(3000))
    )
    r = waylay("rules", "check", str(path))
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert len(lines) == 52, lines[-3:]
    assert all(line.startswith(f"{path}:") and "unknown action" in line for line in lines[:50])
    assert lines[50] == "… and 2950 more errors"
    assert lines[51] == f"{path}: 3000 errors"


def test_check_gives_a_hint_for_a_utf8_bom(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_bytes(b"\xef\xbb\xbfversion = 1\n")
    r = waylay("rules", "check", str(path))
    assert r.returncode == 1
    first = r.stderr.splitlines()[0]
    assert first.startswith(f"{path}:1:1: ")
    assert "byte order mark (BOM)" in first and "UTF-8 without BOM" in first


def test_check_warns_about_a_body_file_outside_the_folder(tmp_path):
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "inside.json").write_text("{}")
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    path = folder / "rules.toml"
    path.write_text(
        "version = 1\n\n"
        '[[rule]]\nid = "in"\nurls = ["*://a.example/*"]\naction = "respond"\nbody_file = "inside.json"\n\n'
        '[[rule]]\nid = "out"\nurls = ["*://b.example/*"]\naction = "respond"\nbody_file = "../secret.txt"\n'
    )
    r = waylay("rules", "check", str(path))
    assert r.returncode == 0  # a warning, not an error: the user may mean it
    [warning] = r.stderr.splitlines()
    assert warning.startswith(f"{path}:13:1: warning: rule 'out': body_file '../secret.txt'")
    assert "outside the rules file's folder" in warning
    assert "1 warning" in r.stdout


# -- rules import: body_file outside the folder --------------------------------------------


def _respond_rules(body_file: str) -> str:
    return (
        "version = 1\n\n"
        '[[rule]]\nid = "leak"\nurls = ["*://leak.example/*"]\naction = "respond"\n'
        f"body_file = '{body_file}'\n"
    )


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink"])
def test_import_refuses_a_body_file_outside_the_rules_folder(tmp_path, kind):
    folder = tmp_path / "config"
    folder.mkdir()
    target = folder / "rules.toml"
    target.write_text('version = 1\n\n[[rule]]\nid = "mine"\naction = "continue"\n')
    before = target.read_text()
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0")
    body = {"absolute": str(secret), "dotdot": "../passwd", "symlink": "link"}[kind]
    if kind == "symlink":
        os.symlink(secret, folder / "link")
    source = tmp_path / "incoming.toml"
    source.write_text(_respond_rules(body))

    r = waylay("rules", "import", str(source), "--format", "toml", "--into", str(target))
    assert r.returncode == 1
    assert f"rule 'leak': body_file '{body}' is outside {folder}" in r.stderr
    assert "--allow-outside" in r.stderr
    assert target.read_text() == before

    r = waylay(
        "rules", "import", str(source), "--format", "toml", "--into", str(target), "--allow-outside"
    )
    assert r.returncode == 0, r.stderr
    assert "leak" in target.read_text()


def test_import_refuses_it_from_json_too_and_accepts_a_file_inside(tmp_path):
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "ok.json").write_text("{}")
    target = folder / "rules.toml"
    rules = [
        {"id": "ok", "action": "respond", "body_file": "ok.json"},
        {"id": "etc", "action": "respond", "body_file": "/etc/passwd"},
    ]
    source = tmp_path / "in.json"
    source.write_text(json.dumps({"version": 1, "rule": rules}))
    r = waylay("rules", "import", str(source), "--format", "json", "--into", str(target))
    assert r.returncode == 1 and "rule 'etc'" in r.stderr and "rule 'ok'" not in r.stderr
    assert not target.exists()
    source.write_text(json.dumps({"version": 1, "rule": rules[:1]}))
    r = waylay("rules", "import", str(source), "--format", "json", "--into", str(target))
    assert r.returncode == 0, r.stderr


# -- rules list, piped ---------------------------------------------------------------------

LONG = "*://a-rather-long-host-name.example.com/with/a/long/path/that/goes/on/and/on/*"


@pytest.fixture
def listed(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(
        "version = 1\n\n"
        f'[[rule]]\nid = "long-one"\nurls = ["{LONG}", "{LONG}2"]\naction = "cancel"\ntimes = 2\n\n'
        '[[rule]]\nid = "sub"\nregex = \'^https://api\\.example\\.com/(.*)$\'\naction = "rewrite"\n'
        "url = 'https://staging.example.com/\\1'\npriority = 2\n\n"
        '[[rule]]\nid = "off"\naction = "continue"\nenabled = false\nnote = "tab\\there"\n'
    )
    return path


def test_list_piped_prints_one_rule_per_line_without_wrapping(listed):
    r = waylay("rules", "list", str(listed))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split("\t") == [
        "id",
        "event",
        "conditions",
        "action",
        "priority",
        "enabled",
        "times_left",
    ]
    rows = [line.split("\t") for line in lines[1:]]
    assert [row[0] for row in rows] == ["sub", "long-one", "off"]  # precedence order
    assert all(len(row) == 7 for row in rows)
    assert rows[1][2] == f"{LONG} {LONG}2"  # whole, on one line
    assert rows[0][3] == "rewrite → https://staging.example.com/\\1"
    assert rows[1][6] == "2" and rows[2][5] == "no"


def test_list_format_tsv_is_the_same_and_json_has_every_field(listed):
    assert (
        waylay("rules", "list", str(listed), "--format", "tsv").stdout
        == waylay("rules", "list", str(listed)).stdout
    )
    r = waylay("rules", "list", str(listed), "--format", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["path"] == str(listed)
    assert [rule["id"] for rule in data["rules"]] == ["sub", "long-one", "off"]
    assert data["rules"][0]["url"] == "https://staging.example.com/\\1"
    assert data["rules"][1]["times_left"] == 2
    assert data["rules"][2]["note"] == "tab\there"
    assert data["defaults"]["certificate"] == "ask"


def test_list_format_table_piped_does_not_wrap(listed):
    r = waylay("rules", "list", str(listed), "--format", "table")
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 3  # one line per rule
    assert f"{LONG} {LONG}2" in r.stdout


def test_list_format_is_checked(listed):
    r = waylay("rules", "list", str(listed), "--format", "yaml")
    assert r.returncode == 2
    assert "invalid choice" in r.stderr
