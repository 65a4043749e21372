"""The interactive monitor: a ``Session`` feeding the Textual screen from ``widgets``."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

from monitor.proxy import ProxyStartError
from monitor.session import Session
from monitor.settings import Settings
from widgets.model import FlowView


class _Relay:
    """Forwards snapshot batches to the app once it exists (the session starts first)."""

    def __init__(self) -> None:
        self.app = None

    def __call__(self, views: Sequence[FlowView], removed: Sequence[str]) -> None:
        if self.app is not None:
            self.app.push_flows(views, removed)


def make_app(settings: Settings, *, clock: Callable[[], float] = time.time):
    """Build the session and the app around it (the proxy is not started yet).

    Used by ``waylay`` and by the end-to-end tests: start with ``app.session.start()``
    (or let ``WaylayMonitor.on_mount`` do it)."""
    from widgets.app import WaylayApp

    # The screen and the proxy share the GIL. With the default 5 ms switch interval a
    # render holds the proxy off for whole slices; 1 ms hands it back sooner (measured:
    # concurrency-1 throughput +40%, p99 28 -> 19 ms with the screen running).
    sys.setswitchinterval(0.001)
    relay = _Relay()
    holder: dict = {}

    def rules_changed(rules) -> None:
        app = holder.get("app")
        if app is None or not app.is_running:
            return
        if rules.error:
            app.call_from_thread(app.notify_error, f"rules file: {rules.error}")
        refresh = getattr(app, "rules_changed", None)
        if refresh is not None:
            app.call_from_thread(refresh)

    session = Session(settings, sink=relay, on_rules_changed=rules_changed, clock=clock)

    class WaylayMonitor(WaylayApp):
        def on_unmount(self) -> None:
            session.stop()

    app = WaylayMonitor(
        session.controller,
        rules_source=session.rules,
        clock=clock,
        ask_timeout=settings.ask_timeout,
    )
    app.session = session
    if session.saver is not None:  # saving stopped (disk full...): a toast, not stderr

        def save_failed(message: str) -> None:
            if app.is_running:
                app.call_from_thread(app.notify_error, message)

        session.saver.on_error = save_failed
    if session.store is not None:

        def store_failed(message: str) -> None:
            if app.is_running:
                app.call_from_thread(app.notify_error, message)

        session.store.on_error = store_failed
    relay.app = app
    holder["app"] = app
    return app


def run_app(settings: Settings) -> int:
    app = make_app(settings)
    try:
        app.session.start()
    except ProxyStartError as e:
        print(f"waylay: {e}", file=sys.stderr)
        return 2
    if app.session.rules.error:
        app.call_later(app.notify_error, f"rules file: {app.session.rules.error}")
    app.run()
    return 0
