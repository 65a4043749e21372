"""The screen tests of issue 14 again, with the screen attached to the proxy over a real
control socket (what ``waylay`` runs): `w` saves flows where the proxy holds them (the
file read back with mitmproxy's io and by ``mitmdump -r``), `v` renders bodies in a view
mode on the proxy's side, `/` searches, streamed sizes come with the rows and WebSocket
messages with the details fetched on demand."""

from __future__ import annotations

import pytest

import tests.sessions.test_bodies as bodies
import tests.sessions.test_save as save
from monitor.local import make_local_app
from tests.sessions.test_bodies import (  # noqa: F401 - collected again here
    test_view_modes_search_streamed_and_websocket_in_the_screen,
)
from tests.sessions.test_save import test_w_saves_all_or_the_listed_flows  # noqa: F401


@pytest.fixture(autouse=True)
def _through_the_socket(monkeypatch):
    made = []
    calls: list[str] = []

    def attached(*args, **kwargs):
        app, proxy = make_local_app(*args, **kwargs)
        made.append(app)
        request = proxy.start

        def start():
            address = request()
            asked = app.remote.request

            def counted(op, *a, **kw):
                calls.append(op)
                return asked(op, *a, **kw)

            app.remote.request = counted
            return address

        proxy.start = start
        return app, proxy

    monkeypatch.setattr(bodies, "make_app", attached)
    monkeypatch.setattr(save, "make_app", attached)
    yield calls
    assert made and all(app.remote is not None for app in made), "not through the socket"


@pytest.fixture(autouse=True)
def _checked(request, _through_the_socket):
    yield
    calls = _through_the_socket
    name = request.node.name
    # each test is only worth something here if `w` and `v` asked the proxy
    if name.startswith("test_w_saves"):
        assert "save_flows" in calls, calls
    elif name.startswith("test_view_modes"):
        assert "render_body" in calls and "detail" in calls, calls
