"""The embedded proxy's hook table calls what mitmproxy's own addon manager calls."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from mitmproxy import exceptions, master, options
from mitmproxy.addonmanager import AddonManager
from mitmproxy.addons import core
from mitmproxy.proxy.layers import http as hl
from mitmproxy.test import tflow

from monitor.proxy import AddonGroup, EmbeddedProxy, HookTable, use_hook_table

pytestmark = pytest.mark.e2e


class Recorder:
    """Logs every hook it sees, with its arguments, into a shared list."""

    def __init__(self, name: str, log: list) -> None:
        self.name = name
        self.log = log

    def requestheaders(self, flow) -> None:
        self.log.append((self.name, "requestheaders", flow.id))

    def request(self, flow) -> None:
        self.log.append((self.name, "request", flow.id))

    async def response(self, flow) -> None:  # an async hook is awaited
        await asyncio.sleep(0)
        self.log.append((self.name, "response", flow.id))


class Updates(Recorder):
    def update(self, flows) -> None:
        self.log.append((self.name, "update", tuple(f.id for f in flows)))


class Fails(Recorder):
    def request(self, flow) -> None:
        self.log.append((self.name, "request", flow.id))
        raise ValueError("boom")


class Halts(Recorder):
    def response(self, flow) -> None:
        self.log.append((self.name, "response", flow.id))
        raise exceptions.AddonHalt


class Late:
    """Added after events have been sent: its hooks must be seen from then on."""

    def __init__(self, log: list) -> None:
        self.log = log

    def request(self, flow) -> None:
        self.log.append(("late", "request", flow.id))

    def update(self, flows) -> None:
        self.log.append(("late", "update", tuple(f.id for f in flows)))


async def _drive(table: bool) -> tuple[list, list[str]]:
    """The same chain and events through mitmproxy's manager or the hook table: what each
    addon was called with, in order, and the errors logged."""
    m = master.Master(options.Options(), event_loop=asyncio.get_running_loop())
    if table:
        use_hook_table(m)
    log: list = []
    errors: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record) -> None:
            errors.append(record.getMessage())

    handler = Catch(level=logging.ERROR)
    logging.getLogger("mitmproxy.addonmanager").addHandler(handler)
    try:
        m.addons.add(
            AddonGroup(
                "first", [core.Core(), Recorder("a", log), Fails("b", log), Recorder("c", log)]
            )
        )
        m.addons.add(AddonGroup("second", [Updates("d", log), Halts("e", log)]))
        m.addons.add(Recorder("f", log))
        flow = tflow.tflow(resp=True)
        flow.id = "one"
        await m.addons.handle_lifecycle(hl.HttpRequestHeadersHook(flow))
        await m.addons.handle_lifecycle(hl.HttpRequestHook(flow))
        await m.addons.handle_lifecycle(hl.HttpResponseHook(flow))
        late = Late(log)
        m.addons.add(late)
        flow.id = "two"
        await m.addons.handle_lifecycle(hl.HttpRequestHook(flow))
        m.addons.remove(late)
        flow.id = "three"
        await m.addons.handle_lifecycle(hl.HttpRequestHook(flow))
        # an addon managing its own children registers a new one (mitmproxy's way)
        child = Recorder("child", log)
        m.addons.get("second").addons.append(child)
        m.addons.register(child)
        flow.id = "four"
        await m.addons.handle_lifecycle(hl.HttpRequestHook(flow))
    finally:
        logging.getLogger("mitmproxy.addonmanager").removeHandler(handler)
    return log, errors


async def test_the_hook_table_calls_what_mitmproxy_calls():
    expected, expected_errors = await _drive(table=False)
    got, errors = await _drive(table=True)
    assert got == expected
    assert errors == expected_errors
    # what the comparison covers: an update hook, an error skipping the rest of its
    # group, a halt ending the event, an addon added and removed between events
    assert ("d", "update", ("one",)) in got
    assert ("c", "request", "one") not in got and ("d", "request", "one") in got
    assert ("f", "response", "one") not in got
    assert ("late", "request", "two") in got and ("late", "request", "three") not in got
    assert ("late", "update", ("two",)) in got
    assert ("child", "request", "four") in got
    assert errors and all("boom" in e for e in errors)


async def test_an_update_hook_added_later_is_sent_updates():
    m = master.Master(options.Options(), event_loop=asyncio.get_running_loop())
    use_hook_table(m)
    log: list = []
    m.addons.add(AddonGroup("only", [Recorder("a", log)]))
    flow = tflow.tflow(resp=True)
    flow.id = "before"
    await m.addons.handle_lifecycle(hl.HttpRequestHook(flow))
    m.addons.add(Late(log))
    flow.id = "after"
    await m.addons.handle_lifecycle(hl.HttpRequestHook(flow))
    assert log == [
        ("a", "request", "before"),
        ("a", "request", "after"),
        ("late", "request", "after"),
        ("late", "update", ("after",)),
    ]


async def test_a_master_with_the_hook_table_keeps_its_options_signal_once():
    m = master.Master(options.Options(), event_loop=asyncio.get_running_loop())
    use_hook_table(m)
    assert isinstance(m.addons, HookTable) and isinstance(m.addons, AddonManager)
    seen: list = []

    class Configured:
        def configure(self, updated) -> None:
            seen.append(set(updated))

    m.addons.add(Configured())
    seen.clear()
    m.options.update(listen_port=1234)
    assert seen == [{"listen_port"}]


def test_the_proxy_calls_its_addons_through_the_table(settings, upstream):
    seen: list = []
    proxy = EmbeddedProxy(settings, [Recorder("mine", seen)])
    host, port = proxy.start()
    try:
        assert isinstance(proxy.master.addons, HookTable)
        with httpx.Client(proxy=f"http://{host}:{port}", timeout=10) as client:
            r = client.get(upstream.url("/hello"))
        assert r.status_code == 200 and "hello from plain" in r.text
        assert [hook for _, hook, _ in seen] == ["requestheaders", "request", "response"]
    finally:
        proxy.stop()
    assert not proxy.running


def test_hook_arguments_are_mitmproxys_for_every_hook():
    """``hook_args`` gives what ``Hook.args`` gives, for every hook mitmproxy declares
    (each field a distinct object, so an order or a field left out shows)."""
    import dataclasses

    from mitmproxy import hooks

    from monitor.proxy import hook_args

    assert len(hooks.all_hooks) > 20
    for name, kind in hooks.all_hooks.items():
        event = kind(*[object() for _ in dataclasses.fields(kind)])
        for _ in range(2):  # (the second time from the names kept)
            assert hook_args(event) == event.args(), name
