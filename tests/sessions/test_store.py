"""``--session FILE``: the SQLite session store with the real proxy, filters as queries
checked against mitmproxy's own filter, and a kill -9 in the middle of traffic."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import pytest
from mitmproxy.test import tflow

from monitor.store import SessionStore, flow_from_row
from tests.e2e.test_headless import run_cli
from tests.helpers import common, curl, headless, headless_to_file, until, wait_for

pytestmark = pytest.mark.e2e

EXPRESSIONS = [
    "~c 200",
    "~c 404 | ~c 500",
    "~m POST",
    "~d 127.0.0.1 & ~u /status",
    "!~c 200",
    "~u ECHO",  # mitmproxy's ~u ignores case
    "~e",
    "~s",
    "~q & !~s",
    "~t json",
    "~ts text/plain",
    "~all",
]


def test_every_flow_in_the_session_file_and_filters_as_queries(settings, upstream, tmp_path):
    path = tmp_path / "s.waylay-session"
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text(
        'version = 1\n[[rule]]\nid = "no-ads"\nurls = ["*://127.0.0.1/ads*"]\naction = "cancel"\n'
    )
    dead = socket_port()
    with headless(*common(settings), "--session", str(path)) as w:
        curl(w.port, upstream.url("/hello"))
        curl(
            w.port,
            upstream.url("/echo/json"),
            "-H",
            "content-type: application/json",
            "-d",
            '{"a":1}',
        )
        curl(w.port, upstream.url("/status/404"))
        curl(w.port, upstream.url("/status/500"))
        curl(w.port, upstream.url("/ads/x"))
        curl(w.port, f"http://127.0.0.1:{dead}/gone")
        w.wait_lines(6)
        assert w.terminate() == 0
    store = SessionStore(path)
    store.open_read_only()
    assert store.count() == 6
    rows = store.newest(10)
    assert [r["path"] for r in rows] == [
        "/hello",
        "/echo/json",
        "/status/404",
        "/status/500",
        "/ads/x",
        "/gone",
    ]
    assert [r["label"] for r in rows][:4] == ["200", "200", "404", "500"]
    assert rows[4]["state"] == "cancelled" and rows[4]["rule_id"] == "no-ads"
    assert rows[5]["label"].startswith("error: ")
    echo = flow_from_row(rows[1])
    assert echo.request.content == b'{"a":1}'
    assert b'"a":1' in echo.response.content or b'\\"a\\":1' in echo.response.content
    # every expression: the SQL answer is mitmproxy's filter run on every flow
    flows = {r["seq"]: flow_from_row(r) for r in rows}
    from mitmproxy import flowfilter

    for expr in EXPRESSIONS:
        flt = flowfilter.parse(expr)
        expected = [seq for seq, f in flows.items() if flt(f)]
        found, as_sql = store.query(expr)
        assert as_sql, expr
        assert found == expected, expr
    # plain text, as the flow list's plain filter
    assert store.query("STATUS/5")[0] == [rows[3]["seq"]]
    assert store.query("cancelled")[0] == [rows[4]["seq"]]
    assert store.query("status_5")[0] == []  # _ and % are text, not wildcards
    assert store.query("%")[0] == []
    # headers and bodies run in SQL too (tests/sessions/test_filters_sql.py), with progress
    seen = []
    found, as_sql = store.query(
        '~hq "content-type: application/json"', progress=lambda d, t: seen.append((d, t))
    )
    assert as_sql and found == [rows[1]["seq"]] and seen[-1] == (6, 6)
    # a filter SQL cannot express (~meta: waylay's record, as mitmproxy prints it): the
    # scan, with progress
    seen = []
    found, as_sql = store.query("!~meta no-such-text", progress=lambda d, t: seen.append((d, t)))
    assert not as_sql and found == [r["seq"] for r in rows] and seen[-1] == (6, 6)
    with pytest.raises(ValueError):
        store.query("~c notanumber")
    store.close()

    # waylay open shows the session, with waylay's record
    from monitor.open import make_open_app

    app = make_open_app(path)

    async def check():
        async with app.run_test(size=(150, 40)) as pilot:
            await until(pilot, lambda: len(app.flows) == 6, "the session's flows")
            views = [app.flows[i] for i in app.table.flow_ids()]
            assert [v.path for v in views][:2] == ["/hello", "/echo/json"]
            assert views[4].state == "cancelled" and views[4].rule_id == "no-ads"
            assert views[5].state == "error"
            assert app.set_filter("~c 404") is None
            assert [app.flows[i].path for i in app.table.flow_ids()] == ["/status/404"]

    import asyncio

    asyncio.run(check())


def test_waylay_open_refuses_a_foreign_sqlite_file(tmp_path):
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    r = run_cli("open", str(other))
    assert r.returncode == 2
    assert r.stderr == f"waylay: {other}: not a waylay session file (no such table: flows)\n"


def socket_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_file_that_is_not_a_session_is_one_line_and_exit_2(settings, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a database at all, just words " * 100)
    r = run_cli(*common(settings), "--headless", "--listen-port", "0", "--session", str(bad))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith(f"waylay: --session {bad}: not a waylay session file")
    assert bad.read_text().startswith("not a database")  # untouched
    r = run_cli(*common(settings), "--headless", "--session", str(tmp_path))
    assert (r.returncode, r.stderr.strip()) == (
        2,
        f"waylay: --session {tmp_path}: a directory, expected a file name",
    )


def test_kill_9_never_corrupts_and_loses_at_most_the_last_second(settings, upstream, tmp_path):
    path = tmp_path / "crash.waylay-session"
    err_path = tmp_path / "stderr"
    proc, port = headless_to_file(err_path, *common(settings), "--session", str(path))
    try:
        finished: list[float] = []
        stop = threading.Event()

        def traffic():
            with httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=10) as c:
                n = 0
                while not stop.is_set():
                    try:
                        c.get(upstream.url(f"/n/{n}"))
                    except httpx.HTTPError:
                        return
                    finished.append(time.monotonic())
                    n += 1

        workers = [threading.Thread(target=traffic) for _ in range(4)]
        for t in workers:
            t.start()
        wait_for(lambda: len(finished) >= 300, timeout=60, what="300 flows")
        (writer,) = _children(proc.pid)
        time.sleep(0.5)
        killed_at = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        # the writer process sees its pipe end, commits what it got, and ends
        wait_for(lambda: _gone(writer), timeout=10, what="the writer process to end")
        stop.set()
        for t in workers:
            t.join(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    before_last_second = sum(1 for t in finished if t <= killed_at - 1.0)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = db.execute("SELECT count(*) FROM flows").fetchone()[0]
    db.close()
    assert before_last_second >= 100
    print(
        f"kill -9: {len(finished)} answered, {before_last_second} over 1 s before, {stored} stored"
    )
    assert stored >= before_last_second, (stored, before_last_second, len(finished))
    assert stored <= len(finished) + 4


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(c) for c in f.read().split()]
    return found


def _gone(pid: int) -> bool:
    """The process has ended (a zombie nobody reaps, as in a container, counts)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_when_the_writer_process_dies_the_proxy_goes_on_with_one_message(
    settings, upstream, tmp_path
):
    path = tmp_path / "w.waylay-session"
    err_path = tmp_path / "stderr"
    proc, port = headless_to_file(err_path, *common(settings), "--session", str(path))
    try:
        assert curl(port, upstream.url("/first")).stdout.endswith("\n200")

        def stored() -> int:
            db = sqlite3.connect(path)
            try:
                return db.execute("SELECT count(*) FROM flows").fetchone()[0]
            finally:
                db.close()

        wait_for(lambda: stored() == 1, what="the first flow in the file")
        (writer,) = _children(proc.pid)
        os.kill(writer, signal.SIGKILL)
        wait_for(lambda: "no more flows are stored" in err_path.read_text(), what="the message")
        for n in range(3):  # the proxy goes on
            assert curl(port, upstream.url(f"/after/{n}")).stdout.endswith("\n200")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [line for line in err_path.read_text().splitlines() if "--session" in line]
    assert lines == [
        f"waylay: --session {path}: the writer process was killed (SIGKILL); "
        "no more flows are stored"
    ]
    assert stored() == 1
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


HOLDER = """
import os, signal, sys, time
from mitmproxy.test import tflow
from monitor.store import SessionStore
store = SessionStore(sys.argv[1], commit_interval=0.01)
store.open()
store.add(tflow.tflow(resp=True))
store.flush()
child = os.fork()
if child == 0:  # a child that keeps the pipe to the writer open, and outlives us
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    time.sleep(60)
    os._exit(0)
print(store._process.pid, child, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_writer_process_ends_when_the_proxy_is_gone_even_if_its_pipe_is_held(tmp_path):
    """A process forked from the proxy (without exec) holds the writer's pipe open, so
    the pipe does not end when the proxy is killed: the writer notices that its parent
    changed, commits and ends all the same."""
    path = tmp_path / "h.waylay-session"
    proc = subprocess.run(
        [sys.executable, "-c", HOLDER, str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    writer, holder = (int(p) for p in proc.stdout.split())
    try:
        assert not _gone(holder)
        wait_for(lambda: _gone(writer), timeout=10, what="the writer process to end")
    finally:
        os.kill(holder, signal.SIGKILL)
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM flows").fetchone()[0] == 1
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


def test_session_new_makes_a_file_under_the_state_folder(
    settings, upstream, _isolated_home, monkeypatch
):
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    with headless(*common(settings), "--session", "new") as w:
        assert curl(w.port, upstream.url("/kept")).stdout.endswith("\n200")
        w.wait_lines(1)
        assert w.terminate() == 0
    files = list(
        (_isolated_home / ".local" / "state" / "waylay" / "sessions").glob("*.waylay-session")
    )
    assert len(files) == 1
    store = SessionStore(files[0])
    store.open_read_only()
    assert [r["path"] for r in store.newest(5)] == ["/kept"]
    store.close()


def _failing_store(tmp_path):
    store = SessionStore(tmp_path / "s.waylay-session", commit_interval=0.01)
    told: list[str] = []
    store.on_error = told.append
    store.open()
    store.add(tflow.tflow(resp=True))
    wait_for(lambda: store.written == 1, what="the first row")
    return store, told


def test_a_store_whose_writer_process_dies_says_so_once_and_takes_no_more(tmp_path):
    store, told = _failing_store(tmp_path)
    os.kill(store._process.pid, signal.SIGKILL)
    wait_for(lambda: told, what="the failure")
    store.add(tflow.tflow(resp=True))
    store.close()
    assert told == [
        f"--session {store.path}: the writer process was killed (SIGKILL); no more flows are stored"
    ]
    assert store.written == 1 and store.committed == 1
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT count(*) FROM flows").fetchone()[0] == 1


def test_a_store_on_a_full_disk_says_so_once_and_keeps_what_it_committed(tmp_path):
    """The writer process may write no more than a little past the file's size now (as a
    full disk): SQLite's own error, once; the rows committed before stay readable."""
    import resource

    store, told = _failing_store(tmp_path)
    limit = os.path.getsize(str(store.path) + "-wal") + 64 * 1024
    resource.prlimit(store._process.pid, resource.RLIMIT_FSIZE, (limit, limit))
    big = tflow.tflow(resp=True)
    big.response.content = os.urandom(32 * 1024)
    for _ in range(20):
        store.add(big)
        if told:
            break
        time.sleep(0.05)
    wait_for(lambda: told, what="the failure")
    committed, taken = store.committed, store._next_seq
    for _ in range(3):
        store.add(big)
    assert store._next_seq == taken  # no more rows are taken
    store.close()
    assert len(told) == 1
    assert told[0].startswith(f"--session {store.path}: ")
    assert told[0].endswith("; no more flows are stored")
    assert "full" in told[0] or "disk I/O" in told[0], told[0]
    assert 1 <= committed < taken - 1  # the row that did not fit is not there
    reader = SessionStore(store.path)
    reader.open_read_only()
    assert reader.count() == committed
    reader.close()
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize(
    ("scheme", "host", "port", "method", "path", "host_header", "version"),
    [
        ("http", "127.0.0.1", 8081, "GET", "/a?b=c", "127.0.0.1:8081", "HTTP/1.1"),
        ("http", "10.0.0.1", 80, "GET", "/", "example.com", "HTTP/1.1"),
        ("https", "10.0.0.1", 443, "GET", "/x", "example.com:443", "HTTP/1.1"),
        ("https", "10.0.0.1", 443, "GET", "/x", "example.com:8443", "HTTP/1.1"),
        ("http", "::1", 8080, "GET", "/v6", "[::1]:8080", "HTTP/1.1"),
        ("http", "example.com", 80, "GET", "/", "bücher.example", "HTTP/1.1"),
        ("http", "example.com", 80, "GET", "/", "not a host:99999", "HTTP/1.1"),
        ("http", "example.com", 80, "GET", "/nohost", None, "HTTP/1.1"),
        ("http", "example.com", 80, "OPTIONS", "*", "example.com", "HTTP/1.1"),
        ("http", "example.com", 443, "CONNECT", "", "example.com:443", "HTTP/1.1"),
        ("https", "example.com", 443, "GET", "/h2", "example.com", "HTTP/2.0"),
    ],
)
def test_the_rows_pretty_host_and_url_are_mitmproxys(
    scheme, host, port, method, path, host_header, version
):
    """The row's ``pretty_host`` and ``url`` come from a cache of parsed Host headers:
    they are what mitmproxy's own properties give, odd requests included."""
    from monitor.store import request_urls

    for _ in range(2):  # (the second time from the cache)
        f = tflow.tflow(resp=True)
        req = f.request
        req.http_version = version
        req.method, req.scheme, req.host, req.port, req.path = method, scheme, host, port, path
        if method == "CONNECT":
            req.authority = f"{host}:{port}"
        req.headers.pop("Host", None)
        if host_header is not None:
            if version == "HTTP/2.0":
                req.authority = host_header
            else:
                req.headers["Host"] = host_header
        assert request_urls(req) == (req.pretty_host, req.pretty_url, req.url)


def test_a_flow_whose_type_nobody_asked_for_is_stored_with_the_type_the_screen_shows():
    """The resource type is inferred when first asked (a rule, the screen's row): a flow
    no rule looked at was stored without one and read back as "other" while the same
    flow in memory showed "stylesheet"."""
    from monitor.record import flow_type, record_of
    from monitor.store import COLUMNS, flow_row

    f = tflow.tflow(resp=True)
    f.request.path = "/static/site.css"
    f.request.headers["Accept"] = "*/*"
    assert record_of(f).type is None
    row = flow_row(f)
    stored = dict(zip(COLUMNS[1:], row[: len(COLUMNS) - 1], strict=True))
    assert stored["type"] == "stylesheet" == flow_type(f)


def _odd_flows():
    """Flows whose rows take every branch of ``finish_row``."""
    import enum

    from monitor.record import record_of

    class Kind(str, enum.Enum):  # noqa: UP042 (its str() is not its value: sent as the value)
        CANCELLED = "cancelled"

    plain = tflow.tflow(resp=True)
    plain.request.path = "/static/site.css"
    plain.request.headers["Accept"] = "*/*"
    typed = tflow.tflow(resp=True)
    record_of(typed).type = "ping"  # a type a rule or a page gave: kept as it is
    failed = tflow.tflow(err=True)
    empty_error = tflow.tflow(err=True)
    empty_error.error.msg = ""
    cancelled = tflow.tflow()
    record_of(cancelled).state = Kind.CANCELLED
    record_of(cancelled).note("cancelled at the request")
    credentials = tflow.tflow(resp=True)
    credentials.request.headers["Authorization"] = "Basic c2VjcmV0"
    credentials.request.headers.add("authorization", "Bearer twice")
    record_of(credentials).added("Authorization")
    encoded = tflow.tflow(resp=True)
    encoded.response.headers["Content-Type"] = "text/html"
    encoded.response.headers.add("content-type", "charset=utf-8")
    encoded.response.headers["Content-Encoding"] = "identity"
    star = tflow.tflow(resp=True)
    star.request.method, star.request.path = "OPTIONS", "*"
    connect = tflow.tflow(resp=True)
    connect.request.method, connect.request.path = "CONNECT", ""
    connect.request.authority = "example.com:443"
    no_host = tflow.tflow(resp=True)
    no_host.request.headers.pop("Host", None)
    marked = tflow.twebsocketflow()
    marked.marked = ":star:"
    return [plain, typed, failed, empty_error, cancelled, credentials, encoded, star, connect,
            no_host, marked]  # fmt: skip


def test_the_writer_process_makes_the_rows_as_mitmproxy_and_the_screen_see_the_flows(tmp_path):
    """The proxy hands the writer process each flow's raw values (header fields, the
    record as data); the writer makes the row. What it stores is what mitmproxy's own
    properties and the screen's record give, for the odd flows too."""
    import json

    from monitor.record import REDACTED, flow_type, record_of
    from monitor.store import COLUMNS, flow_row

    flows = _odd_flows()
    records = [json.loads(json.dumps(record_of(f).to_dict())) for f in flows]
    expected = [flow_row(f) for f in flows]  # (made in this process)
    store = SessionStore(tmp_path / "w.waylay-session", commit_interval=0.01)
    store.open()
    for f in flows:
        store.add(f)
    store.flush()
    rows = {r["id"]: r for r in store.rows(list(range(1, len(flows) + 1)))}
    store.close()
    assert store.unstored == 0 and len(rows) == len(flows)
    for f, made, record in zip(flows, expected, records, strict=True):
        row, req = rows[f.id], f.request
        assert tuple(row[c] for c in COLUMNS[1:]) == made[: len(COLUMNS) - 1]
        assert (row["pretty_host"], row["url"]) == (req.pretty_host, req.pretty_url)
        assert row["type"] == flow_type(f)
        assert row["req_ctype"] == req.headers.get("content-type")
        if f.response is not None:
            assert row["resp_ctype"] == f.response.headers.get("content-type")
        assert bool(row["marked"]) == bool(f.marked)
        assert bool(row["websocket"]) == (f.websocket is not None)
        assert (json.loads(row["record"]) if row["record"] else {}) == record
    assert [rows[f.id]["label"] for f in flows[2:4]] == ["error: error", "error"]
    cancelled = rows[flows[4].id]
    assert (cancelled["state"], cancelled["label"]) == ("cancelled", "cancelled")
    assert json.loads(cancelled["record"])["state"] == "cancelled"
    credentials = rows[flows[5].id]["req_headers"]
    assert b"c2VjcmV0" not in credentials and b"twice" not in credentials
    assert f"Authorization: {REDACTED}".encode() in credentials
    assert rows[flows[6].id]["resp_ctype"] == "text/html, charset=utf-8"


def test_a_flow_the_writer_cannot_make_a_row_of_is_left_out_and_the_rest_stored(tmp_path, caplog):
    """A record with something JSON cannot hold (an addon's bytes in a note) fails its
    row in the writer process: that flow is left out and logged, the others stored."""
    from monitor.record import record_of

    store = SessionStore(tmp_path / "u.waylay-session", commit_interval=0.01)
    store.open()
    flows = [tflow.tflow(resp=True) for _ in range(3)]
    record_of(flows[1]).notes.append(b"\x00bytes")
    for f in flows:
        store.add(f)
    store.flush()
    wait_for(lambda: store.unstored == 1, what="the report of the row left out")
    assert store.written == 2
    ids = [r["id"] for r in store.newest(10)]
    store.close()
    assert sorted(ids) == sorted([flows[0].id, flows[2].id])
    assert "1 flows could not be stored" in caplog.text
    assert store.failed is None
