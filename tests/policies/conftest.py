"""Policies tests never touch the real home: config, rules and secrets live in tmp_path."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _policies_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.delenv("WAYLAY_RULES", raising=False)
    for key in list(os.environ):
        if key.startswith("WAYLAY_SECRET_"):
            monkeypatch.delenv(key)
    return home
