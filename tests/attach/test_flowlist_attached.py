"""The end-to-end flow-list tests of tests/e2e/test_flowlist.py again, with the screen
attached to the proxy over a real control socket (what ``waylay`` runs): delete, replay,
duplicate, the event log, the upstream-response edit and filters all cross the wire."""

from __future__ import annotations

import pytest

import tests.e2e.test_flowlist as base
from monitor.local import make_local_app
from tests.e2e.test_flowlist import *  # noqa: F403 - the same tests, collected again here


@pytest.fixture(autouse=True)
def _through_the_socket(monkeypatch):
    made = []

    def attached(*args, **kwargs):
        app, proxy = make_local_app(*args, **kwargs)
        made.append(app)
        return app, proxy

    monkeypatch.setattr(base, "make_app", attached)
    yield
    assert made and all(app.remote is not None for app in made), "not through the socket"
