"""Cancels that hold (monitor/retries.py): a client that retries a request waylay cancelled
on a reused connection gets it cancelled again, as part of the same decision — one line,
no new hit, nothing upstream. Real curl, reusing its connection (two URLs on one command
line), against real loopback upstreams through ``waylay --headless``."""

from __future__ import annotations

import subprocess

import pytest

from monitor.record import record_of
from tests.helpers import common, headless, wait_for, write_rules

pytestmark = pytest.mark.e2e

ONCE = '[[rule]]\nid = "once"\nurls = ["*://*/blocked*"]\naction = "cancel"\ntimes = 1\n'


def curl_many(port: int, *args: str, cacert=None) -> subprocess.CompletedProcess:
    """One curl, several URLs: curl reuses its connection for the later ones."""
    cmd = ["curl", "-v", "--max-time", "10", "-x", f"http://127.0.0.1:{port}", "-o", "/dev/null"]
    if cacert is not None:
        cmd += ["--cacert", str(cacert)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=20)


def finish_with(w, upstream, n_lines: int) -> list[str]:
    """A last request whose line proves every earlier line is out; returns all lines."""
    r = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-x",
            f"http://127.0.0.1:{w.port}",
            upstream.url("/last"),
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert r.returncode == 0, r.stderr
    w.wait_lines(n_lines)
    wait_for(lambda: w.lines[-1].endswith("/last 200"), what="the last line")
    return w.lines


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https-connect"])
def test_a_times_1_cancel_holds_when_curl_retries_on_a_fresh_connection(
    settings, upstream, tls_upstream, waylay_ca, tls
):
    up = tls_upstream if tls else upstream
    write_rules(settings, ONCE)
    with headless(*common(settings)) as w:
        r = curl_many(
            w.port,
            "--http1.1",
            up.url("/first"),
            up.url("/blocked"),
            cacert=waylay_ca if tls else None,
        )
        # the scenario really happened: the cancel looked like a stale socket to curl
        assert "Connection died, retrying a fresh connect" in r.stderr, r.stderr
        assert r.returncode == 52, r.stderr  # and the retry got no response either
        lines = finish_with(w, upstream, 3)
    assert [x["path"] for x in up.requests if x["path"] != "/last"] == ["/first"]
    assert len(lines) == 3, lines
    assert lines[0].endswith("/first 200")
    assert lines[1].endswith("/blocked cancelled rule=once")
    assert lines[2].endswith("/last 200")


def test_a_cancelled_post_retried_with_the_same_body_never_reaches_upstream(settings, upstream):
    write_rules(settings, ONCE)
    with headless(*common(settings)) as w:
        proxy = f"http://127.0.0.1:{w.port}"
        r = curl_many(  # options after --next are per URL: the proxy again
            w.port,
            upstream.url("/first"),
            "--next",
            *("-x", proxy, "-o", "/dev/null", "-d", "secret=1"),
            upstream.url("/blocked"),
        )
        assert "Connection died, retrying a fresh connect" in r.stderr, r.stderr
        assert r.returncode == 52
        # the same URL with another body is another request: the rule had times = 1
        r = curl_many(w.port, "-d", "secret=2", upstream.url("/blocked"))
        assert r.returncode == 0, r.stderr
        lines = finish_with(w, upstream, 4)
    assert [(x["path"], x["body"]) for x in upstream.requests if x["path"] != "/last"] == [
        ("/first", ""),
        ("/blocked", "secret=2"),
    ]
    assert [line.split(" ", 1)[1] for line in lines[:3]] == [
        f"GET {upstream.url('/first')} 200",
        f"POST {upstream.url('/blocked')} cancelled rule=once",
        f"POST {upstream.url('/blocked')} 200",
    ]


@pytest.fixture
def h2_upstream(upstream_ca):
    import ssl

    from tests.h2server import H2Upstream

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    upstream_ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    ctx.set_alpn_protocols(["h2"])
    with H2Upstream(ctx) as up:
        yield up


def test_http2_cancel_is_a_stream_reset_curl_does_not_retry(
    settings, h2_upstream, waylay_ca, upstream
):
    write_rules(settings, ONCE)
    with headless(*common(settings)) as w:
        r = curl_many(
            w.port,
            "--http2",
            h2_upstream.url("/first"),
            h2_upstream.url("/blocked"),
            cacert=waylay_ca,
        )
        assert "using HTTP/2" in r.stderr, r.stderr
        assert "Connection died" not in r.stderr
        assert r.returncode == 92, r.stderr  # HTTP/2 stream error: the stream was reset
        lines = finish_with(w, upstream, 3)
    assert [path for _conn, path in h2_upstream.requests] == ["/first"]
    assert len(lines) == 3 and lines[1].endswith("/blocked cancelled rule=once"), lines


def test_a_permanent_cancel_counts_the_retry_on_one_row(settings, upstream):
    """The screen's view: one row, the retry counted on it; the rule's hits count once."""
    from monitor.session import Session

    write_rules(settings, '[[rule]]\nid = "no"\nurls = ["*://*/blocked*"]\naction = "cancel"\n')
    rows: dict = {}
    removed: list = []

    def sink(views, gone):
        rows.update({v.id: v for v in views})
        removed.extend(gone)
        for fid in gone:
            rows.pop(fid, None)

    session = Session(settings, sink=sink)
    host, port = session.start()
    try:
        r = curl_many(port, upstream.url("/first"), upstream.url("/blocked"))
        assert "Connection died, retrying a fresh connect" in r.stderr, r.stderr
        wait_for(lambda: any(v.retries for v in rows.values()), what="the retry counted on the row")
        blocked = [v for v in rows.values() if v.path == "/blocked"]
        assert len(blocked) == 1, blocked
        assert blocked[0].state == "cancelled" and blocked[0].retries == 1
        assert blocked[0].state_label == "cancelled, 1 retry"
        assert [r["path"] for r in upstream.requests] == ["/first"]
        assert session.decider.retries  # remembered for the window
    finally:
        session.stop()


def test_a_request_after_the_window_is_a_new_request(settings, upstream):
    """Outside the window the rules decide again (here: times = 1 is used up: it passes)."""
    from monitor.retries import Retries

    write_rules(settings, ONCE)
    from monitor.session import Session

    session = Session(settings)
    now = [0.0]
    session.decider.retries = Retries(window=5.0, clock=lambda: now[0])
    host, port = session.start()
    try:
        r = curl_many(port, upstream.url("/blocked"))
        assert r.returncode == 52
        now[0] = 6.0
        r = curl_many(port, upstream.url("/blocked"))
        assert r.returncode == 0, r.stderr
        assert [r["path"] for r in upstream.requests] == ["/blocked"]
    finally:
        session.stop()


def test_retries_remembers_a_bounded_number(monkeypatch):
    from mitmproxy.test import tflow

    from monitor import retries

    monkeypatch.setattr(retries, "MAX_REMEMBERED", 3)
    rs = retries.Retries()
    flows = []
    for i in range(5):
        f = tflow.tflow()
        f.request.path = f"/{i}"
        rs.cancelled(f)
        flows.append(f)
    assert len(rs) == 3
    assert rs.absorb(flows[0]) is None  # the oldest went first
    assert rs.absorb(flows[4]) is flows[4]


def test_a_persons_cancel_holds_without_a_second_pause(settings, upstream, pool):
    """`x` in the dialog: the retry is not paused again (no new question), not a row."""
    from monitor.session import Session
    from widgets.model import Answer

    write_rules(settings, '[[rule]]\nid = "ask"\nurls = ["*://*/blocked*"]\naction = "ask"\n')
    paused: list[str] = []
    session = Session(settings, sink=lambda views, gone: None)
    original_ask = session.pauses.ask

    async def counting_ask(key, event, **kw):
        paused.append(key)
        return await original_ask(key, event, **kw)

    session.pauses.ask = counting_ask
    host, port = session.start()
    try:
        run = pool.submit(curl_many, port, upstream.url("/first"), upstream.url("/blocked"))
        wait_for(lambda: session.pauses.keys(), what="the pause")
        (fid,) = session.pauses.keys()
        session.proxy.call_soon(session.pauses.answer, fid, "request", Answer("cancel"))
        r = run.result(20)
        assert "Connection died, retrying a fresh connect" in r.stderr, r.stderr
        assert r.returncode == 52
        assert paused == [fid]  # one question for the request and its retry
        rows = [f for f in session.recorder.flows.values() if f.request.path == "/blocked"]
        assert len(rows) == 1 and record_of(rows[0]).retries == 1
        assert [x["path"] for x in upstream.requests] == ["/first"]
    finally:
        session.stop()
