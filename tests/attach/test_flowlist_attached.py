"""The end-to-end flow-list tests of tests/e2e/test_flowlist.py again, with the screen
attached to the proxy over a real control socket (what ``waylay`` runs): delete, replay,
duplicate, the event log, the upstream-response edit and filters all cross the wire."""

from __future__ import annotations

import pytest

import tests.e2e.test_flowlist as base
from tests.attach.conftest import screens_through_the_socket
from tests.e2e.test_flowlist import *  # noqa: F403 - the same tests, collected again here


@pytest.fixture(autouse=True)
def _through_the_socket(monkeypatch):
    with screens_through_the_socket(monkeypatch, base):
        yield
