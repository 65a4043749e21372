"""The end-to-end screen tests of tests/e2e/test_screen.py again, with the screen
attached to the proxy over a real control socket (the proxy in this process, so the
tests can still look at its pauses and flow store): what ``waylay`` runs."""

from __future__ import annotations

import pytest

import tests.e2e.test_screen as base
from monitor.local import make_local_app
from tests.e2e.test_screen import *  # noqa: F403 - the same tests, collected again here

# Checks where the one-process composition keeps the filter (the proxy's recorder);
# attached screens each have their own, held by the control server:
# tests/attach/test_attach.py::test_filters_run_in_the_proxy_process covers it.
del test_a_filter_expression_runs_on_the_proxy_side_and_follows_new_flows  # noqa: F821


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
