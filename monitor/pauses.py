"""Paused events: a flow waits here until a person answers, time runs out, or the client
leaves. Every blocking event (request, response, redirect, auth, certificate) uses it.

Everything here runs on the proxy loop. An addon hook awaits ``Pauses.ask()``; mitmproxy
keeps serving other connections meanwhile. Hook tasks are not cancelled when a client
disconnects, so ``client_disconnected`` ends that client's pauses itself: no pause
outlives its client, its deadline, or the proxy.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from widgets.model import Answer, AuthFacts, CertificateInfo, PausedEvent


class Ended(enum.Enum):
    """Why a pause ended without an answer."""

    TIMEOUT = "timed out"
    HEADLESS = "nobody to ask (headless)"
    GONE = "client disconnected"
    SHUTDOWN = "waylay shut down"


@dataclass
class _Pending:
    info: PausedEvent
    future: asyncio.Future
    client: object | None


class Pauses:
    def __init__(
        self,
        *,
        timeout: float | None,
        headless: bool,
        on_change: Callable[[str], None] = lambda key: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.timeout = timeout
        self.headless = headless
        self.on_change = on_change
        self.clock = clock
        self._pending: dict[str, _Pending] = {}
        self._closed = False

    def __len__(self) -> int:
        return len(self._pending)

    def info(self, key: str) -> PausedEvent | None:
        p = self._pending.get(key)
        return p.info if p is not None else None

    def keys(self) -> list[str]:
        return list(self._pending)

    async def ask(
        self,
        key: str,
        event: str,
        *,
        url: str,
        method: str = "GET",
        details: tuple[tuple[str, str], ...] = (),
        certificate: CertificateInfo | None = None,
        auth: AuthFacts | None = None,
        asked_by: str | None = None,
        client: object | None = None,
    ) -> Answer | Ended:
        """Pause ``key`` (a flow id) on ``event`` until answered; returns the ``Answer`` or
        why it ended without one. The caller applies the timeout outcome for ``Ended``."""
        if self.headless:
            return Ended.HEADLESS
        if self._closed:
            return Ended.SHUTDOWN
        loop = asyncio.get_running_loop()
        now = self.clock()
        info = PausedEvent(
            flow_id=key,
            event=event,  # type: ignore[arg-type]
            since=now,
            deadline=now + self.timeout if self.timeout is not None else math.inf,
            url=url,
            method=method,
            details=details,
            certificate=certificate,
            auth=auth,
            asked_by=asked_by,
        )
        pending = _Pending(info, loop.create_future(), client)
        previous = self._pending.get(key)
        if previous is not None and not previous.future.done():
            previous.future.set_result(Ended.SHUTDOWN)
        self._pending[key] = pending
        self.on_change(key)
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), self.timeout)
        except TimeoutError:
            return Ended.TIMEOUT
        finally:
            if self._pending.get(key) is pending:
                del self._pending[key]
            self.on_change(key)

    def answer(self, key: str, event: str, answer: Answer) -> bool:
        """Deliver a person's answer; False when nothing (or another event) is paused."""
        p = self._pending.get(key)
        if p is None or p.info.event != event or p.future.done():
            return False
        p.future.set_result(answer)
        return True

    def client_disconnected(self, client: object) -> None:
        for p in list(self._pending.values()):
            if p.client is client and not p.future.done():
                p.future.set_result(Ended.GONE)

    def end_all(self, why: Ended) -> None:
        """Every pause gets the outcome of ``why`` now (the last screen went away and
        nobody is held for); new pauses are still possible."""
        for p in list(self._pending.values()):
            if not p.future.done():
                p.future.set_result(why)

    def release_all(self) -> None:
        """Shutdown: every pause gets its timeout outcome now."""
        self._closed = True
        for p in list(self._pending.values()):
            if not p.future.done():
                p.future.set_result(Ended.SHUTDOWN)
