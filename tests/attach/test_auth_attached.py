"""The auth dialog tests of tests/auth/test_app.py again, with the screen attached
to the proxy over a real control socket (the proxy in this process)."""

from __future__ import annotations

import pytest

import tests.auth.test_app as base
from tests.attach.conftest import screens_through_the_socket
from tests.auth.conftest import *  # noqa: F403 - their fixtures
from tests.auth.test_app import *  # noqa: F403 - the same tests, collected again here


@pytest.fixture(autouse=True)
def _through_the_socket(monkeypatch):
    with screens_through_the_socket(monkeypatch, base):
        yield
