"""mitmproxy, embedded: its own event loop in its own thread, only the addons we need.

``Master.run()`` swaps the loop's task factory and exception handler, and mitmproxy's
flows are not thread-safe, so the proxy never shares Textual's loop. Everything that
touches a live flow runs on ``EmbeddedProxy.loop``; other threads go through
``call_soon`` / ``run_coroutine``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import gc
import inspect
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from mitmproxy import exceptions, hooks, master, options
from mitmproxy import flow as mflow
from mitmproxy.addonmanager import AddonManager, safecall
from mitmproxy.addons import (
    block,
    clientplayback,
    core,
    disable_h2c,
    next_layer,
    proxyauth,
    proxyserver,
    tlsconfig,
)

from monitor import limits, sockets, speedups
from monitor.settings import Settings

log = logging.getLogger("waylay.proxy")


def tune_gc() -> None:
    """Keep Python's cyclic GC off the request path, without letting garbage pile up.

    Everything alive at startup (modules, mitmproxy, textual) is frozen out of the
    collector's sight, and young collections run every 10,000 allocations instead of 700
    (the older generations keep Python's ratios, so garbage cycles of evicted flows are
    still found within a few hundred requests). Measured with wrk: ~850 -> ~600 ms of CPU
    per 1,000 requests; with a store of 35,000 flows p99 at concurrency 16 ~15 ms instead
    of 20-110 ms with the defaults (full collections walking the store); resident memory
    flat in tests/bench/soak.py. Raising the older thresholds too (50, 100) let garbage
    creep by ~60 bytes a request.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def _who_holds(port: int) -> str:
    """Which of this user's waylay proxies holds ``port`` and how to reach it, as the
    start of a hint ("" when none does): a headless run left going, say."""
    try:
        held = [p for p in sockets.running_proxies() if p.port == port]
    except (sockets.SocketDirError, OSError):
        return ""
    if not held:
        return ""
    since = time.strftime("%H:%M", time.localtime(held[0].started))
    return (
        f"waylay (pid {held[0].pid}, since {since}) listens there: `waylay attach {port}` "
        "opens its screen, Q in it stops it; or "
    )


class ProxyStartError(RuntimeError):
    """The proxy could not start (port in use, bad mode...). The message is for people."""


class _ErrorCollector(logging.Handler):
    """Keeps the errors mitmproxy logs while starting, to explain a failed start."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class AddonGroup:
    """Several addons as one entry in mitmproxy's chain.

    mitmproxy visits every chain entry on every hook of every flow with a coroutine and
    an exception guard per entry (``HookTable`` skips the entries with nothing to call,
    and the ``update`` hook that followed each flow hook when none has it). Grouped, the
    children are still called in order (mitmproxy traverses an addon's ``addons``), but
    the per-entry cost is paid once per group: with a dozen addons that was most of the
    time waylay added to a request. One difference: an
    exception in a child's hook skips the rest of its group for that hook, so the flow
    store (which must see every flow end) is a group of its own.
    """

    def __init__(self, name: str, addons: Sequence[object]) -> None:
        self.name = name
        self.addons = list(addons)

    def __repr__(self) -> str:
        return f"AddonGroup({self.name}: {', '.join(type(a).__name__ for a in self.addons)})"


_ARG_NAMES: dict[type, tuple[str, ...]] = {}


def hook_args(event: hooks.Hook) -> list[Any]:
    """``event.args()``: the values of its fields, in order (mitmproxy's own asks
    ``dataclasses.fields`` each time; the names are looked up once per kind of hook)."""
    names = _ARG_NAMES.get(type(event))
    if names is None:
        fields = dataclasses.fields(event)  # type: ignore[arg-type]
        names = _ARG_NAMES[type(event)] = tuple(f.name for f in fields)
    return [getattr(event, name) for name in names]


async def _call(funcs: list[Callable], args: list[Any]) -> None:
    for func in funcs:
        res = func(*args)
        if res is not None and inspect.isawaitable(res):
            await res


class HookTable(AddonManager):
    """mitmproxy's addon manager, with each chain entry's callables for a hook looked up
    once instead of on every event.

    For every event of every flow, mitmproxy's manager walks each chain entry's addons
    (a generator per level), asks each one for the hook by name, builds the event's
    arguments again for every addon (``dataclasses.fields`` each time), and then sends
    an ``update`` event that walks them all again although no addon here has that hook.
    This one keeps, per chain entry and hook name, the list of callables that walk
    finds, builds the arguments once per event (``hook_args``), passes over entries
    with nothing to call and sends no ``update`` nobody listens to. What is called, in
    which order, with which arguments and with which error handling (``safecall``) is
    unchanged. The table is emptied whenever an addon is registered or removed; a
    group's children are fixed once it is added (``AddonGroup``). Installed on a
    ``Master`` by ``use_hook_table``.
    """

    _table: dict[tuple[int, str], tuple[object, list[Callable]]]
    _updates: bool | None

    def _callables(self, addon: object, event: hooks.Hook) -> list[Callable]:
        key = (id(addon), event.name)
        try:
            held, funcs = self._table[key]
        except KeyError:
            pass
        else:
            if held is addon:
                return funcs
        funcs = [func for _, func in self._iter_hooks(addon, event)]
        self._table[key] = (addon, funcs)
        return funcs

    def _forget(self) -> None:
        self._table = {}
        self._updates = None

    def register(self, addon):
        self._forget()
        return super().register(addon)

    def remove(self, addon):
        self._forget()
        super().remove(addon)
        self._forget()

    def clear(self):
        super().clear()
        self._forget()

    async def invoke_addon(self, addon, event: hooks.Hook):
        funcs = self._callables(addon, event)
        if funcs:
            await _call(funcs, hook_args(event))

    async def trigger_event(self, event: hooks.Hook):
        args = None
        for entry in self.chain:
            try:
                funcs = self._callables(entry, event)
            except exceptions.AddonManagerError:
                funcs = None  # a hook that is not callable: said under safecall, below
            else:
                if not funcs:
                    continue
            try:
                with safecall():
                    if funcs is None:
                        await self.invoke_addon(entry, event)
                    else:
                        if args is None:
                            args = hook_args(event)
                        await _call(funcs, args)
            except exceptions.AddonHalt:
                return

    async def handle_lifecycle(self, event: hooks.Hook):
        await self.trigger_event(event)
        if self._anyone_updates():
            message = hook_args(event)[0]
            if isinstance(message, mflow.Flow):
                await self.trigger_event(hooks.UpdateHook([message]))

    def _anyone_updates(self) -> bool:
        if self._updates is None:
            probe = hooks.UpdateHook([])
            try:
                self._updates = any(self._callables(entry, probe) for entry in self.chain)
            except exceptions.AddonManagerError:
                return True  # trigger_event says what is wrong
        return self._updates


def use_hook_table(m: master.Master) -> None:
    """Give ``m`` a ``HookTable`` in place of its addon manager (before adding addons):
    the same object and state, its class swapped, so the options' ``changed`` signal
    connected when ``Master`` made it stays connected once, to the same manager."""
    assert not m.addons.chain, "use_hook_table before adding addons"
    m.addons.__class__ = HookTable
    HookTable._forget(m.addons)  # type: ignore[arg-type]  # (mypy cannot see the swap)


class _Readiness:
    """Addon that reports the bound addresses once the servers are up."""

    def __init__(self, proxy: EmbeddedProxy) -> None:
        self.proxy = proxy

    def running(self) -> None:
        from mitmproxy import ctx

        ps = ctx.master.addons.get("proxyserver")
        addrs = ps.listen_addrs() if ps else []
        self.proxy._on_running(list(addrs))


def mitmproxy_options(settings: Settings) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "listen_host": settings.listen_host,
        "listen_port": settings.listen_port,
        "mode": settings.modes,
        "confdir": str(settings.confdir),
        "stream_large_bodies": settings.stream_large_bodies,
        "ssl_insecure": False,
    }
    if settings.upstream_ca is not None:
        opts["ssl_verify_upstream_trusted_ca"] = str(settings.upstream_ca)
    if settings.proxy_auth:
        opts["proxyauth"] = settings.proxy_auth
    if settings.allow_remote or settings.proxy_auth:
        opts["block_global"] = False
    return opts


class EmbeddedProxy:
    """A mitmproxy ``Master`` running in a background thread.

    ``start()`` returns once the listening socket accepts connections (or raises
    ``ProxyStartError``); ``stop()`` shuts it down and joins the thread.
    """

    def __init__(
        self,
        settings: Settings,
        addons: Sequence[object] = (),
        *,
        tail: Sequence[object] = (),
        extra_options: dict[str, Any] | None = None,
    ) -> None:
        """``addons`` run after mitmproxy's own, in the same chain entry; ``tail`` (the
        flow store) is a chain entry of its own, after them."""
        self.settings = settings
        self.waylay_addons = list(addons)
        self.tail_addons = list(tail)
        self.extra_options = extra_options or {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.master: master.Master | None = None
        self.address: tuple[str, int] | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._errors = _ErrorCollector()
        self._start_error: str | None = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> tuple[str, int]:
        logging.getLogger("mitmproxy").addHandler(self._errors)
        self._thread = threading.Thread(target=self._thread_main, name="waylay-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise ProxyStartError(f"the proxy did not start within {timeout:.0f} s")
        if self._start_error is not None:
            self._thread.join(5)
            raise ProxyStartError(self._start_error)
        assert self.address is not None
        tune_gc()
        return self.address

    def stop(self, timeout: float = 10.0) -> None:
        if self.master is not None and self.loop is not None and not self.loop.is_closed():
            try:
                self.master.shutdown()
            except RuntimeError:  # loop already closed
                pass
        if self._thread is not None:
            self._thread.join(timeout)
        logging.getLogger("mitmproxy").removeHandler(self._errors)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopped.is_set()

    def call_soon(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` on the proxy loop, from any thread."""
        if self.loop is None or self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed meanwhile
            pass

    def run_coroutine(self, coro: Coroutine) -> concurrent.futures.Future:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    # -- the proxy thread --------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as e:  # noqa: BLE001 - report any start failure to start()
            if not self._ready.is_set():
                self._start_error = str(e) or type(e).__name__
        finally:
            self._stopped.set()
            self._ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        opts = options.Options()
        m = master.Master(opts, event_loop=self.loop)
        use_hook_table(m)
        self.master = m
        # Every addon is visited on every hook of every flow: only what a proxy needs.
        wanted = [
            core.Core(),
            proxyserver.Proxyserver(),
            next_layer.NextLayer(),
            tlsconfig.TlsConfig(),
            block.Block(),
            disable_h2c.DisableH2C(),
            clientplayback.ClientPlayback(),  # `r` and `D` on the screen: replays
        ]
        if self.settings.proxy_auth:
            wanted.insert(1, proxyauth.ProxyAuth())
        limits.install(self.settings)
        speedups.install()
        guards = [
            limits.UpstreamTimeouts(self.settings.connect_timeout, self.settings.read_timeout),
            limits.ConnectionWatch(to_stderr=self.settings.headless),
        ]
        m.addons.add(AddonGroup("waylay-proxy", [*wanted, *self.waylay_addons, *guards]))
        m.addons.add(AddonGroup("waylay-store", [*self.tail_addons, _Readiness(self)]))
        if "tcp_timeout" in opts:  # mitmproxy 12 has an option; 11 a constant (limits.py)
            self.extra_options.setdefault("tcp_timeout", math.ceil(self.settings.idle_timeout))
        try:
            opts.update(**mitmproxy_options(self.settings), **self.extra_options)
        except Exception as e:  # OptionsError: bad mode spec, bad confdir...
            self._start_error = str(e)
            self._ready.set()
            return
        await m.run()

    def _on_running(self, addrs: list[tuple]) -> None:
        wanted = len(self.settings.modes)
        if len(addrs) < wanted:
            detail = "; ".join(dict.fromkeys(self._errors.messages)) or "no listening socket"
            where = f"{self.settings.listen_host}:{self.settings.listen_port}"
            # mitmproxy names the address that failed: with @host:port modes, that one.
            port = self.settings.listen_port
            if m := re.search(r"bind on address \('?([^',]*)'?, (\d+)", detail):
                host, port = m.group(1), int(m.group(2))
                where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            if "address already in use" in detail:
                detail = f"address already in use ({_who_holds(port)}pick another port: "
                detail += "--listen-port N, or make run PORT=N under make; 0 picks a free one)"
            elif "Errno 13" in detail or "ermission denied" in detail:
                detail = "permission denied (ports below 1024 need privileges)"
            self._start_error = f"cannot listen on {where}: {detail}"
            self._ready.set()
            assert self.master is not None
            self.master.shutdown()
            return
        host, port = addrs[0][0], addrs[0][1]
        self.address = (host, port)
        self._ready.set()
