"""One monitoring session: rules, pauses, the flow store and the embedded proxy, wired.

Both the screen and ``--headless`` run a ``Session``; only the sink differs (snapshots
for the screen, one line per finished flow for headless).

This is the one place addons are wired. Each addon gets only the collaborators it uses
(rules, pauses, the flow store, a setting or two); the order of mitmproxy's chain is
written here: the auth and certificate addons run before the decider, so that the
response event sees the final (authenticated) response; the auth cache's request hook
runs after it, so that a request a rule rewrites does not take this host's credentials
along; the flow store and the event log come last, after the counter of streamed bodies
and before the ``--save`` file and the ``--session`` store, which take each flow as it
finishes. The page-types addon comes first of all: it types each request as its headers
arrive, and remembers the HTML pages that help type the next ones. The controller gets
the per-event rule fields of the remembered rules (auth: realm and secret; certificate:
fingerprint).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from mitmproxy import http

from monitor.auth import AuthResponder
from monitor.bodyview import StreamCounter
from monitor.certificates import CertificateGuard
from monitor.controller import ProxyController
from monitor.decider import Decider
from monitor.events import EventLog
from monitor.har import write_har
from monitor.pagetypes import PageTypes
from monitor.pauses import Pauses
from monitor.proxy import EmbeddedProxy, ProxyStartError
from monitor.record import record_of
from monitor.recorder import Recorder, Sink
from monitor.save import FlowSaver, SaveError
from monitor.settings import Settings
from monitor.store import SessionStore, StoreAddon, StoreError
from policies import RulesFile

log = logging.getLogger("waylay.session")


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
        self.events = EventLog()
        """Proxy errors, rules reloads, timeouts, TLS failures: what `l` shows."""
        self.decider = Decider(
            self.rules,
            self.pauses,
            self.recorder,
            ask_default=settings.ask_default,
            events=self.events,
        )
        self.auth = AuthResponder(
            self.rules,
            self.pauses,
            self.recorder,
            mode=settings.mode,
            upstream_ca=settings.upstream_ca,
        )
        self.certificates = CertificateGuard(self.rules, self.pauses, self.recorder)
        self.page_types = PageTypes()
        """Types each request first, with the HTML pages seen so far (pagetypes.py)."""
        self.saver = FlowSaver(settings.save) if settings.save is not None else None
        self.store = SessionStore(settings.session) if settings.session is not None else None
        self.proxy = EmbeddedProxy(
            settings,
            [self.page_types, self.auth, self.certificates, self.decider, self.auth.cache_hook],
            tail=[
                StreamCounter(self.recorder.touch),
                self.recorder,
                self.events,
                *([self.saver] if self.saver is not None else []),
                *([StoreAddon(self.store)] if self.store is not None else []),
            ],
        )
        self.controller = ProxyController(
            self.proxy,
            self.pauses,
            self.recorder,
            self.rules,
            extra_rule_fields={
                "auth": self.auth.rule_fields,
                "certificate": self.certificates.rule_fields,
            },
            ask_default=settings.ask_default,
            events=self.events,
            store=self.store,
        )

    def connect(
        self,
        *,
        sink: Sink | None = None,
        on_rules_changed: Callable[[RulesFile], None] | None = None,
        on_write_error: Callable[[str], None] | None = None,
    ) -> None:
        """Connect a screen built after the session (it needs the controller): snapshot
        batches go to ``sink``, rules-file reloads to ``on_rules_changed``, the one message
        of a ``--save`` file or ``--session`` store that stopped (disk full) to
        ``on_write_error`` (else it goes to stderr). Before start."""
        if sink is not None:
            self.recorder.sink = sink
        if on_rules_changed is not None:
            self.on_rules_changed = on_rules_changed
        if on_write_error is not None:
            if self.saver is not None:
                self.saver.on_error = on_write_error
            if self.store is not None:
                self.store.on_error = on_write_error

    def _pause_changed(self, key: str) -> None:
        self.recorder.touch(key)

    def start(self) -> tuple[str, int]:
        if self.saver is not None:
            try:  # a file that cannot be written fails before the proxy starts
                self.saver.open()
            except SaveError as e:
                raise ProxyStartError(str(e)) from e
        if self.store is not None:
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
            self.events.add(
                "rules", f"rules file not loaded: {rules.error} (the last good rules stay)"
            )
        else:
            self.events.add("rules", f"rules file reloaded: {len(rules.rules)} rules")
        if self.on_rules_changed is not None:
            self.on_rules_changed(rules)

    def stop(self, drain_timeout: float = 3.0) -> None:
        """Paused flows get their timeout outcome, then the proxy stops; HAR is written."""
        self.rules.close()  # stops watching; counts and hits not yet written are written
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
            if all(fid not in flows or record_of(flows[fid]).done for fid in was_paused):
                break
            await asyncio.sleep(0.02)
        self.recorder.flush()
