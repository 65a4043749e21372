"""The certificates dialog tests of tests/certificates/test_app.py again, with the screen attached
to the proxy over a real control socket (the proxy in this process)."""

from __future__ import annotations

import pytest

import tests.certificates.test_app as base
from tests.attach.conftest import screens_through_the_socket
from tests.certificates.conftest import *  # noqa: F403 - their fixtures
from tests.certificates.test_app import *  # noqa: F403 - the same tests, collected again here


@pytest.fixture(autouse=True)
def _through_the_socket(monkeypatch):
    with screens_through_the_socket(monkeypatch, base):
        yield
