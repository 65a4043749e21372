"""Paused request events end-to-end at the Session level: a real proxy, real clients,
answers delivered the way the screen delivers them (``ProxyController.answer``)."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from monitor.record import record_of
from monitor.session import Session
from policies import RulesFile
from tests.helpers import wait_for
from widgets.model import Answer

pytestmark = pytest.mark.e2e


@pytest.fixture
def ask_rules(settings):
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text(
        'version = 1\n[[rule]]\nid = "ask"\nurls = ["*://127.0.0.1/ask*"]\naction = "ask"\n'
    )
    return settings


@pytest.fixture
def session(ask_rules):
    s = Session(ask_rules)
    host, port = s.start()
    s.port = port
    yield s
    s.stop()


def client(session, timeout=20) -> httpx.Client:
    return httpx.Client(proxy=f"http://127.0.0.1:{session.port}", timeout=timeout)


def paused(session, n=1):
    return wait_for(
        lambda: len(session.pauses.keys()) >= n and session.pauses.keys(), what=f"{n} paused flows"
    )


def test_ask_pauses_while_other_flows_flow(session, upstream, pool):
    with client(session) as c:
        fut = pool.submit(c.get, upstream.url("/ask"))
        [fid] = paused(session)
        assert not fut.done()
        with client(session) as c2:
            assert c2.get(upstream.url("/free")).status_code == 200
        assert session.pauses.info(fid).event == "request"
        view = session.recorder.view(fid)
        assert view.state == "paused" and view.state_label == "⏸ request"
        assert session.controller.answer(fid, "request", Answer("continue")) is None
        assert fut.result(10).status_code == 200
    assert [r["path"] for r in upstream.requests] == ["/free", "/ask"]


def test_cancel_redirect_rewrite_respond_from_answers(session, upstream, other_upstream, pool):
    with client(session) as c:
        f = pool.submit(c.get, upstream.url("/ask-cancel"))
        [fid] = paused(session)
        session.controller.answer(fid, "request", Answer("cancel"))
        with pytest.raises(httpx.RemoteProtocolError):
            f.result(5)
    with client(session) as c:
        f = pool.submit(c.get, upstream.url("/ask-redirect"))
        [fid] = paused(session)
        err = session.controller.answer(fid, "request", Answer("redirect", {"url": "not a url"}))
        assert err and "URL" in err
        assert session.pauses.info(fid) is not None  # still paused
        session.controller.answer(
            fid, "request", Answer("redirect", {"url": other_upstream.url("/x")})
        )
        r = f.result(5)
        assert r.status_code == 307 and r.headers["location"] == other_upstream.url("/x")
    with client(session) as c:
        f = pool.submit(c.get, upstream.url("/ask-rewrite"))
        [fid] = paused(session)
        session.controller.answer(
            fid, "request", Answer("rewrite", {"url": other_upstream.url("/echo/rw")})
        )
        assert f.result(5).json()["server"] == "other"
    with client(session) as c:
        f = pool.submit(c.get, upstream.url("/ask-respond"))
        [fid] = paused(session)
        session.controller.answer(
            fid,
            "request",
            Answer(
                "respond",
                {"status": 201, "body": "made", "headers": [("Content-Type", "text/x")]},
            ),
        )
        r = f.result(5)
        assert (r.status_code, r.text, r.headers["content-type"]) == (201, "made", "text/x")
    assert upstream.requests == []


def test_edit_then_continue_keeps_content_length_right(session, upstream, pool):
    with client(session) as c:
        f = pool.submit(c.post, upstream.url("/ask-edit"), content=b"original")
        [fid] = paused(session)
        session.controller.answer(
            fid,
            "request",
            Answer(
                "continue",
                {
                    "method": "PUT",
                    "url": upstream.url("/echo/edited"),
                    "headers": [("X-Edited", "1"), ("Content-Type", "text/plain")],
                    "body": "a longer edited body",
                },
            ),
        )
        body = f.result(5).json()
    assert body["method"] == "PUT" and body["path"] == "/echo/edited"
    assert body["body"] == "a longer edited body"
    assert body["headers"]["content-length"] == str(len("a longer edited body"))
    assert body["headers"]["x-edited"] == "1"


def test_remember_this_host_writes_a_rule_and_the_next_request_is_not_paused(
    session, upstream, pool
):
    with client(session) as c:
        f = pool.submit(c.get, upstream.url("/ask-1"))
        [fid] = paused(session)
        preview = session.controller.preview_rule(fid, "request", Answer("cancel", remember="host"))
        assert 'urls = ["*://127.0.0.1/*"]' in preview and 'action = "cancel"' in preview
        assert session.controller.answer(fid, "request", Answer("cancel", remember="host")) is None
        with pytest.raises(httpx.RemoteProtocolError):
            f.result(5)
        on_disk = RulesFile(session.rules.path)
        on_disk.load()
        saved = [r for r in on_disk.rules if r.action == "cancel"]
        assert len(saved) == 1 and saved[0].urls == ("*://127.0.0.1/*",)
        t0 = time.monotonic()
        with pytest.raises(httpx.RemoteProtocolError):
            c.get(upstream.url("/ask-2"))  # decided by the new rule (higher in file? same prio)
        assert time.monotonic() - t0 < 2 and not session.pauses.keys()


def test_timeout_gives_the_ask_default(ask_rules, upstream):
    ask_rules.ask_timeout = 0.5
    ask_rules.ask_default = "cancel"
    s = Session(ask_rules)
    _, port = s.start()
    try:
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=10) as c:
            t0 = time.monotonic()
            with pytest.raises(httpx.RemoteProtocolError):
                c.get(upstream.url("/ask-slow"))
            assert 0.4 < time.monotonic() - t0 < 5
    finally:
        s.stop()
    assert upstream.requests == []


def test_client_that_vanishes_while_paused_ends_its_flow(session, upstream):
    sock = socket.create_connection(("127.0.0.1", session.port))
    sock.sendall(
        f"GET {upstream.url('/ask-gone')} HTTP/1.1\r\nHost: 127.0.0.1:{upstream.port}\r\n\r\n".encode()
    )
    [fid] = paused(session)
    sock.close()
    wait_for(lambda: not session.pauses.keys(), what="pause to end")
    view = wait_for(lambda: (v := session.recorder.view(fid)) and v.finished and v, what="flow end")
    # Nobody cancelled it (issue 16): the client went away.
    assert view.state == "error" and view.error == "client gone"
    assert any("client gone: it disconnected while paused" in n for n in view.notes)
    assert upstream.requests == []


def test_fifty_paused_flows_released_together(session, upstream, pool):
    with client(session) as c:
        futs = [pool.submit(c.get, upstream.url(f"/ask-{i}")) for i in range(50)]
        keys = paused(session, 50)
        assert len(keys) == 50
        for fid in keys:
            assert session.controller.answer(fid, "request", Answer("continue")) is None
        assert all(f.result(20).status_code == 200 for f in futs)
    assert len(upstream.requests) == 50


def test_shutdown_releases_paused_flows_with_the_timeout_outcome(ask_rules, upstream, pool):
    s = Session(ask_rules)
    _, port = s.start()
    with httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=10) as c:
        f = pool.submit(c.get, upstream.url("/ask-shutdown"))
        wait_for(lambda: s.pauses.keys(), what="pause")
        s.stop()
        assert f.result(10).status_code == 200  # --ask-default continue


def test_breakpoint_pattern_and_filter(session, upstream, pool):
    ctl = session.controller
    assert "pattern" in (ctl.set_breakpoint("google.*") or "")
    assert "filter" in (ctl.set_breakpoint("~nonsense(") or "")
    assert ctl.set_breakpoint("*://127.0.0.1/brk*") is None
    with client(session) as c:
        f = pool.submit(c.get, upstream.url("/brk"))
        [fid] = paused(session)
        assert session.recorder.view(fid).paused.event == "request"
        assert ctl.toggle_breakpoints() is False  # off: the next one passes
        assert c.get(upstream.url("/brk-2")).status_code == 200
        ctl.answer(fid, "request", Answer("continue"))
        assert f.result(5).status_code == 200
    assert ctl.set_breakpoint("~m POST") is None
    with client(session) as c:
        f = pool.submit(c.post, upstream.url("/posted"), content=b"1")
        [fid] = paused(session)
        ctl.answer(fid, "request", Answer("continue"))
        assert f.result(5).status_code == 200
    assert ctl.set_breakpoint("") is None
    assert not [r for r in session.rules.ordered() if session.rules.is_transient(r.id)]


def test_a_breakpoint_saved_from_the_rules_screen_becomes_a_file_rule(session):
    ctl = session.controller
    assert ctl.set_breakpoint("*://127.0.0.1/saved*") is None
    [bp] = [r for r in session.rules.ordered() if session.rules.is_transient(r.id)]
    session.rules.persist_transient(bp.id)
    assert ctl.toggle_breakpoints() is False  # no error: the saved rule is left alone
    assert ctl.toggle_breakpoints() is True
    assert ctl.set_breakpoint("*://127.0.0.1/next*") is None
    on_disk = RulesFile(session.rules.path)
    on_disk.load()
    assert bp.id in [r.id for r in on_disk.rules]


def test_bodies_are_bounded_in_bytes_as_well_as_flows(settings, upstream):
    settings.max_body_memory = 50_000
    s = Session(settings)
    _, port = s.start()
    try:
        with httpx.Client(proxy=f"http://127.0.0.1:{port}") as c:
            for _ in range(5):
                assert len(c.get(upstream.url("/bytes/20000")).content) == 20_000
        flows = list(s.recorder.flows.values())
        wait_for(
            lambda: all(record_of(f).done for f in flows),
            what="all flows done",
        )
        kept = [f for f in flows if f.response.raw_content]
        assert len(flows) == 5  # every flow stays
        assert len(kept) == 2 and kept == flows[-2:]  # only the newest bodies fit 50 KB
        assert any("bodies dropped" in n for n in s.recorder.view(flows[0].id).notes)
    finally:
        s.stop()


@pytest.mark.parametrize("with_screen", [False, True])
def test_the_stores_bookkeeping_stays_bounded(settings, upstream, with_screen):
    """A long session must not grow: every per-flow record goes with its flow (a headless
    session once kept the id of every evicted flow for a screen it did not have)."""
    settings.max_flows = 5
    settings.headless = not with_screen
    batches = []
    s = Session(
        settings,
        sink=(lambda views, removed: batches.append(len(removed))) if with_screen else None,
    )
    _, port = s.start()
    try:
        with httpx.Client(proxy=f"http://127.0.0.1:{port}") as c:
            for _ in range(40):
                assert c.get(upstream.url("/bytes/10")).status_code == 200
        rec = s.recorder
        wait_for(lambda: not rec._dirty and not rec._removed, what="the bridge to drain")
        assert len(rec.flows) <= 5 and len(rec._seq) <= 5 and len(rec._bodies) <= 5
        if with_screen:
            wait_for(lambda: sum(batches) >= 35, what="the screen to hear of the evictions")
    finally:
        s.stop()
