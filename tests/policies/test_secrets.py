"""Secrets: the environment wins, the file is private, and no value ever shows."""

from __future__ import annotations

import io
import logging
import stat

import pytest

from policies.cli import check, list_rules
from policies.engine import EventDetails
from policies.model import Rule
from policies.rules_file import RulesFile, RulesFileError
from policies.secrets import SecretsError, SecretStore, env_name

VALUE = "correct-horse-battery-staple-42"


def test_env_name():
    assert env_name("intranet-login") == "WAYLAY_SECRET_INTRANET_LOGIN"
    assert env_name("db_pw") == "WAYLAY_SECRET_DB_PW"


def test_set_creates_a_private_file_and_get_reads_it(tmp_path):
    store = SecretStore(tmp_path / "conf")
    assert store.get("intranet") is None and "intranet" not in store
    store.set("intranet", VALUE)
    path = tmp_path / "conf" / "secrets.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.get("intranet") == VALUE and "intranet" in store
    assert store.names() == ["intranet"]
    assert store.source("intranet") == str(path)
    assert store.warnings == []
    store.set("other", "x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SecretStore(tmp_path / "conf").get("intranet") == VALUE
    store.delete("other")
    assert store.names() == ["intranet"]


def test_the_environment_wins(tmp_path, monkeypatch):
    store = SecretStore(tmp_path)
    store.set("intranet-login", "from-file")
    monkeypatch.setenv("WAYLAY_SECRET_INTRANET_LOGIN", "from-env")
    assert store.get("intranet-login") == "from-env"
    assert store.source("intranet-login") == "$WAYLAY_SECRET_INTRANET_LOGIN"
    monkeypatch.setenv("WAYLAY_SECRET_ONLY_ENV", "e")
    assert store.get("only-env") == "e"


def test_comments_in_the_secrets_file_survive(tmp_path):
    path = tmp_path / "secrets.toml"
    path.write_text('# mine\na = "1"  # first\n')
    path.chmod(0o600)
    SecretStore(tmp_path).set("b", "2")
    assert path.read_text() == '# mine\na = "1"  # first\nb = "2"\n'


def test_a_readable_file_is_warned_about(tmp_path):
    store = SecretStore(tmp_path)
    store.set("a", VALUE)
    (tmp_path / "secrets.toml").chmod(0o644)
    assert len(store.warnings) == 1
    assert "can be read by other users (mode 0644)" in store.warnings[0]
    assert VALUE not in store.warnings[0]


def test_bad_names_and_broken_files(tmp_path):
    store = SecretStore(tmp_path)
    with pytest.raises(SecretsError):
        store.set("has space", VALUE)
    path = tmp_path / "secrets.toml"
    path.write_text(f'a = "{VALUE}"\nb = \n')
    path.chmod(0o600)
    assert store.get("a") is None
    assert store.warnings and VALUE not in store.warnings[0]
    with pytest.raises(SecretsError) as caught:
        store.set("c", "x")
    assert VALUE not in str(caught.value)
    assert path.read_text() == f'a = "{VALUE}"\nb = \n'


def test_values_appear_in_no_output(tmp_path, monkeypatch, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    store = SecretStore(tmp_path)
    store.set("intranet", VALUE)
    monkeypatch.setenv("WAYLAY_SECRET_FROM_ENV", VALUE + "-env")
    rules_path = tmp_path / "rules.toml"
    rules_file = RulesFile(rules_path)
    rules_file.load()
    rules_file.add(
        Rule(
            id="login",
            event="auth",
            urls=["https://intra.example/*"],
            action="credentials",
            username="alice",
            secret="intranet",
        )
    )
    rules_file.add(
        Rule(id="env-login", event="auth", action="credentials", username="bob", secret="from-env")
    )
    decision = rules_file.decide(EventDetails("auth", "https://intra.example/", status=401))
    assert rules_file.secrets.get(decision.secret) == VALUE  # the proxy can get it...
    with pytest.raises(RulesFileError) as caught:
        rules_file.add(
            Rule(id="bad", event="auth", action="credentials", username="c", secret="nope")
        )
    out, err = io.StringIO(), io.StringIO()
    assert check(rules_path, stdout=out, stderr=err) == 0
    assert list_rules(rules_path, stdout=out, stderr=err, width=200) == 0
    texts = [
        repr(store),
        str(store),
        repr(rules_file),
        repr(rules_file.rules),
        repr(decision),
        repr(decision.rule),
        str(caught.value),
        " ".join(rules_file.warnings),
        " ".join(store.warnings),
        rules_path.read_text(),
        rules_path.with_name("rules.toml.bak").read_text(),
        out.getvalue(),
        err.getvalue(),
        caplog.text,
        *capsys.readouterr(),
    ]
    assert "intranet" in out.getvalue()  # ...and the name shows, as it should
    for text in texts:
        assert VALUE not in text
