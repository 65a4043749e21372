"""Issue 16: honest outcomes (a failed response is an error in the headless line and
the HAR, a client that left a pause is "client gone") and the HAR file itself (checked
at start, written through an exclusive temp file, 0600, no proxy password)."""

from __future__ import annotations

import json
import os
import socket
import stat
import time

import pytest

from tests.faults.common import RawUpstream, one_line_error, run_cli
from tests.helpers import common, curl, headless, wait_for

pytestmark = pytest.mark.e2e


def reset_mid_body(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    conn.close()


def bad_chunk(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot a chunk\r\n")
    time.sleep(0.5)
    conn.close()


def headers_then_silence(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n")
    time.sleep(30)


@pytest.mark.parametrize(
    ("behaviour", "extra"),
    [(reset_mid_body, []), (bad_chunk, []), (headers_then_silence, ["--idle-timeout", "1"])],
)
def test_a_failed_response_is_an_error_in_the_line_and_the_har(
    settings, tmp_path, behaviour, extra
):
    har = tmp_path / "s.har"
    with RawUpstream(behaviour) as up:
        with headless(*common(settings), "--har", str(har), *extra) as w:
            r = curl(w.port, up.url("/failing"), timeout=20)
            assert not r.stdout.endswith("\n200") or r.returncode != 0
            [line] = w.wait_lines(1, timeout=20)
            assert w.terminate() == 0
    assert " error: " in line and not line.endswith(" 200"), line
    [entry] = json.loads(har.read_text())["log"]["entries"]
    assert entry["response"]["status"] == 0, entry["response"]
    assert entry["response"]["_error"]


def test_a_client_gone_while_paused_is_client_gone_not_cancelled(settings, upstream):
    from monitor.headless import flow_line
    from monitor.session import Session

    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text(
        'version = 1\n[[rule]]\nid = "ask"\nurls = ["*://127.0.0.1/ask*"]\naction = "ask"\n'
    )
    lines = []
    session = Session(
        settings, sink=lambda views, removed: None, on_finished=lambda f: lines.append(flow_line(f))
    )
    _, port = session.start()
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(f"GET {upstream.url('/ask-gone')} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        wait_for(lambda: session.pauses.keys(), what="the pause")
        sock.close()
        wait_for(lambda: lines, what="the flow's end")
    finally:
        session.stop()
    assert "client gone" in lines[0] and "cancelled" not in lines[0], lines[0]
    assert upstream.requests == []


@pytest.mark.parametrize("where", ["missing-folder", "directory"])
def test_har_destination_checked_at_start(settings, tmp_path, where):
    path = tmp_path / "nope" / "s.har" if where == "missing-folder" else tmp_path
    t0 = time.monotonic()
    line = one_line_error(run_cli("--headless", *common(settings), "--har", str(path)))
    assert "--har" in line and time.monotonic() - t0 < 15


def test_har_temp_file_is_exclusive_and_the_har_is_0600(settings, upstream, tmp_path):
    har = tmp_path / "s.har"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.symlink(victim, tmp_path / "s.har.tmp")  # the old predictable temp name
    with headless(*common(settings), "--har", str(har)) as w:
        assert curl(w.port, upstream.url("/")).stdout.endswith("\n200")
        w.wait_lines(1)
        assert w.terminate() == 0
    assert victim.read_text() == "precious"
    assert stat.S_IMODE(har.stat().st_mode) == 0o600
    assert not har.is_symlink()
    assert len(json.loads(har.read_text())["log"]["entries"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.har", "s.har.tmp", "victim.txt"]


def test_proxy_authorization_redacted_on_407(settings, upstream, tmp_path):
    har = tmp_path / "s.har"
    with headless(*common(settings), "--har", str(har), "--proxy-auth", "me:right") as w:
        r = curl(w.port, upstream.url("/"), "--proxy-user", "me:wrong-guess")
        assert r.stdout.endswith("\n407")
        wait_for(lambda: w.lines, what="the line")
        assert w.terminate() == 0
    text = har.read_text()
    assert "wrong-guess" not in text
    import base64

    assert base64.b64encode(b"me:wrong-guess").decode() not in text
