"""Issue 17: hit counts survive a restart of waylay (kept in the state folder, not in the
rules file), and a breakpoint saved from the rules screen carries a true note."""

from __future__ import annotations

import json

import httpx
import pytest

from monitor.session import Session
from policies import RulesFile
from policies.rules_file import hits_path_for
from tests.helpers import headless

pytestmark = pytest.mark.e2e

RULES = (
    "version = 1\n\n"
    '[[rule]]\nid = "teapot"\nurls = ["*://127.0.0.1/tea*"]\naction = "respond"\n'
    'status = 418\nbody = "short and stout"\n'
)


def _run(settings, upstream, requests: int) -> None:
    args = ["--confdir", str(settings.confdir), "--rules", str(settings.rules)]
    with headless(*args) as proc:
        with httpx.Client(proxy=f"http://127.0.0.1:{proc.port}", timeout=20) as client:
            for _ in range(requests):
                assert client.get(upstream.url("/tea")).status_code == 418
            assert client.get(upstream.url("/coffee")).status_code == 200
        assert proc.terminate() == 0


def test_hit_counts_survive_a_restart(settings, upstream):
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text(RULES)
    _run(settings, upstream, 3)
    hits = hits_path_for(settings.rules)
    assert json.loads(hits.read_text())["hits"] == {"teapot": 3}
    _run(settings, upstream, 2)
    assert json.loads(hits.read_text())["hits"] == {"teapot": 5}
    rules_file = RulesFile(settings.rules)
    assert rules_file.load() and rules_file.hits == {"teapot": 5}
    assert settings.rules.read_text() == RULES  # the person's file is never rewritten for hits


def test_a_saved_breakpoint_has_a_true_note(settings):
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text("version = 1\n")
    session = Session(settings)
    session.start()
    try:
        assert session.controller.set_breakpoint("*://127.0.0.1/saved*") is None
        [bp] = session.rules.transient
        session.rules.persist_transient(bp.id)  # what `s` on the rules screen does
    finally:
        session.stop()
    on_disk = RulesFile(settings.rules)
    assert on_disk.load()
    note = on_disk.get(bp.id).note
    assert note and "unsaved" not in note and "breakpoint" in note
