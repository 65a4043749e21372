"""The screen attached over a real control socket to a proxy in this same process:
``monitor.app.make_app``'s shape with the wire in between. The end-to-end screen tests
run through it (tests/attach/test_*_attached.py), so they cover what ``waylay`` runs
while still reaching into the proxy's pauses and flow store."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

from monitor import VERSION
from monitor.attach import make_attached_app
from monitor.control import ControlServer
from monitor.remote import Remote
from monitor.session import Session
from monitor.settings import Settings


class LocalProxy:
    """A ``Session`` with its control socket; anything not here is the session's."""

    def __init__(self, session: Session, app: Any) -> None:
        self.session = session
        self.app = app
        self.control: ControlServer | None = None

    def start(self) -> tuple[str, int]:
        address = self.session.start()
        self.control = ControlServer(self.session, hold=True, err=io.StringIO(), version=VERSION)
        self.app.connect(Remote(self.control.start()))
        return address

    def stop(self, *args: Any, **kwargs: Any) -> None:
        if self.control is not None:
            self.control.stop()
            self.control = None
        self.session.stop(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


def make_local_app(
    settings: Settings, *, clock: Callable[[], float] = time.time
) -> tuple[Any, LocalProxy]:
    """(app, proxy) like ``make_app``; ``proxy.start()`` also attaches the app."""
    session = Session(settings, clock=clock)
    app = make_attached_app(None, own_proxy=True, ask_timeout=settings.ask_timeout)
    app.clock = clock
    return app, LocalProxy(session, app)
