"""The certificates dialog tests of tests/certificates/test_app.py again, with the screen attached
to the proxy over a real control socket (the proxy in this process)."""

from __future__ import annotations

import pytest

import tests.certificates.test_app as base
from monitor.local import make_local_app
from tests.certificates.conftest import *  # noqa: F403 - their fixtures
from tests.certificates.test_app import *  # noqa: F403 - the same tests, collected again here


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
