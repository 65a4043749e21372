"""One monitoring session: rules, pauses, the flow store and the embedded proxy, wired.

Both the screen and ``--headless`` run a ``Session``; only the sink differs (snapshots
for the screen, one line per finished flow for headless).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from mitmproxy import http

from monitor.bodyview import StreamCounter
from monitor.controller import ProxyController
from monitor.decider import Decider
from monitor.har import write_har
from monitor.pauses import Pauses
from monitor.proxy import EmbeddedProxy
from monitor.recorder import Recorder, Sink
from monitor.settings import Settings
from policies import RulesFile

log = logging.getLogger("waylay.session")


def event_addons(session: Session) -> list[object]:
    """Addons for the auth and certificate events. They run before the decider, so that
    the response event sees the final (authenticated) response."""
    from monitor.auth import AuthResponder
    from monitor.certificates import CertificateGuard

    return [AuthResponder(session), CertificateGuard(session)]


def _store_addon(store):
    from monitor.store import StoreAddon

    return StoreAddon(store)


class Session:
    def __init__(
        self,
        settings: Settings,
        *,
        sink: Sink | None = None,
        on_finished: Callable[[http.HTTPFlow], None] | None = None,
        on_rules_changed: Callable[[RulesFile], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.on_rules_changed = on_rules_changed
        self.rules = RulesFile(settings.rules)
        self.rules.load()
        self.pauses = Pauses(
            timeout=settings.ask_timeout,
            headless=settings.headless,
            on_change=self._pause_changed,
            clock=clock,
        )
        self.recorder = Recorder(
            max_flows=settings.max_flows,
            pauses=self.pauses,
            sink=sink,
            on_finished=on_finished,
            interval=settings.batch_interval,
            max_body_bytes=settings.max_body_memory,
        )
        self.decider = Decider(self.rules, self.pauses, ask_default=settings.ask_default)
        self.saver = None
        if settings.save is not None:
            from monitor.save import FlowSaver

            self.saver = FlowSaver(settings.save)
        self.store = None
        if settings.session is not None:
            from monitor.store import SessionStore

            self.store = SessionStore(settings.session)
        self.extra_addons = event_addons(self)
        # An event addon may need a hook after the decider's (e.g. the auth cache: a request
        # a rule rewrites must not take the old host's credentials along).
        late = [a for addon in self.extra_addons for a in getattr(addon, "after_decider", ())]
        self.proxy = EmbeddedProxy(
            settings,
            [*self.extra_addons, self.decider, *late],
            tail=[
                StreamCounter(self.recorder.touch),
                self.recorder,
                *([self.saver] if self.saver is not None else []),
                *([_store_addon(self.store)] if self.store is not None else []),
            ],
        )
        self.controller = ProxyController(self.proxy, self.pauses, self.recorder, self.rules)
        for addon in self.extra_addons:
            register = getattr(addon, "register_controller", None)
            if register is not None:
                register(self.controller)

    def _pause_changed(self, key: str) -> None:
        self.recorder.touch(key)

    def start(self) -> tuple[str, int]:
        if self.saver is not None:
            from monitor.proxy import ProxyStartError
            from monitor.save import SaveError

            try:  # a file that cannot be written fails before the proxy starts
                self.saver.open()
            except SaveError as e:
                raise ProxyStartError(str(e)) from e
        if self.store is not None:
            from monitor.proxy import ProxyStartError
            from monitor.store import StoreError

            try:
                self.store.open()
            except StoreError as e:
                raise ProxyStartError(f"--session {e}") from e
        address = self.proxy.start()
        self.rules.start_watching(self._rules_changed)
        return address

    def _rules_changed(self, rules: RulesFile) -> None:
        if rules.error:
            log.warning("rules file: %s (keeping the last good rules)", rules.error)
        if self.on_rules_changed is not None:
            self.on_rules_changed(rules)

    def stop(self, drain_timeout: float = 3.0) -> None:
        """Paused flows get their timeout outcome, then the proxy stops; HAR is written."""
        self.rules.stop_watching()
        if self.proxy.loop is not None and self.proxy.running:
            try:
                self.proxy.run_coroutine(self._drain(drain_timeout)).result(drain_timeout + 2)
            except Exception:  # loop gone or drain timed out: stop anyway
                log.debug("drain did not finish", exc_info=True)
        self.proxy.stop()
        if self.saver is not None:
            self.saver.close()
        if self.store is not None:
            self.store.close()
        if self.settings.har is not None:
            write_har(list(self.recorder.flows.values()), self.settings.har)

    async def _drain(self, timeout: float) -> None:
        was_paused = self.pauses.keys()
        self.pauses.release_all()
        deadline = time.monotonic() + timeout
        flows = self.recorder.flows
        while time.monotonic() < deadline:
            if all(
                fid not in flows or (flows[fid].metadata.get("waylay") or {}).get("done")
                for fid in was_paused
            ):
                break
            await asyncio.sleep(0.02)
        self.recorder.flush()
