"""The end-to-end screen tests of tests/e2e/test_screen.py again, with the screen
attached to the proxy over a real control socket (the proxy in this process, so the
tests can still look at its pauses and flow store): what ``waylay`` runs."""

from __future__ import annotations

import pytest

import tests.e2e.test_screen as base
from tests.attach.conftest import screens_through_the_socket
from tests.e2e.test_screen import *  # noqa: F403 - the same tests, collected again here

# Checks where the one-process composition keeps the filter (the proxy's recorder);
# attached screens each have their own, held by the control server:
# tests/attach/test_attach.py::test_filters_run_in_the_proxy_process covers it.
del test_a_filter_expression_runs_on_the_proxy_side_and_follows_new_flows  # noqa: F821


@pytest.fixture(autouse=True)
def _through_the_socket(monkeypatch):
    with screens_through_the_socket(monkeypatch, base):
        yield
