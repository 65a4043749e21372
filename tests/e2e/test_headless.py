"""``waylay --headless`` as a real subprocess with real curl and real upstreams."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time

import pytest

from tests.helpers import WAYLAY, common, curl, headless

pytestmark = pytest.mark.e2e


def test_listening_line_flow_lines_and_clean_sigterm(settings, upstream, tls_upstream, waylay_ca):
    with headless(*common(settings)) as w:
        r = curl(w.port, upstream.url("/hello"))
        assert r.returncode == 0, r.stderr
        assert r.stdout.endswith("\n200")
        assert "hello from plain" in r.stdout
        r = curl(w.port, tls_upstream.url("/echo"), cacert=waylay_ca)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout.rsplit("\n", 1)[0])["server"] == "tls"
        lines = w.wait_lines(2)
        assert re.fullmatch(
            r"\d\d:\d\d:\d\d\.\d{3} GET http://127\.0\.0\.1:\d+/hello 200", lines[0]
        )
        assert re.fullmatch(
            r"\d\d:\d\d:\d\d\.\d{3} GET https://127\.0\.0\.1:\d+/echo 200", lines[1]
        )
        assert w.terminate() == 0


def test_sigint_is_clean_too(settings):
    with headless(*common(settings)) as w:
        import signal

        w.proc.send_signal(signal.SIGINT)
        assert w.proc.wait(15) == 0


def test_unreachable_upstream_is_an_error_line_and_the_proxy_keeps_serving(settings, upstream):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]  # bound, never listening: connection refused
        with headless(*common(settings)) as w:
            r = curl(w.port, f"http://127.0.0.1:{dead_port}/x")
            assert r.stdout.endswith("\n502")
            r = curl(w.port, upstream.url("/after"))
            assert r.stdout.endswith("\n200")
            lines = w.wait_lines(2)
            assert f"http://127.0.0.1:{dead_port}/x error: " in lines[0]
            assert "Connect call failed" in lines[0]
            assert lines[1].endswith("/after 200")
            assert w.terminate() == 0


def test_a_client_that_does_not_trust_the_ca_gets_an_error_line(settings, tls_upstream):
    """No request ever reaches a hook; the failed handshake is a line of its own."""
    with headless(*common(settings)) as w:
        r = curl(w.port, tls_upstream.url("/secret"))
        assert r.returncode == 60, r.stderr  # curl: the peer's certificate is not trusted
        (line,) = w.wait_lines(1)
        target = f"127.0.0.1:{tls_upstream.port}"
        assert re.fullmatch(
            rf"\d\d:\d\d:\d\d\.\d{{3}} CONNECT {re.escape(target)} error: client TLS "
            rf"handshake failed: The client does not trust the proxy's certificate for "
            rf"{re.escape(target)} \(.*unknown ca\); `waylay ca` tells how to make a "
            rf"client trust waylay's CA",
            line,
        ), line
        assert w.terminate() == 0


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*WAYLAY, *args], capture_output=True, text=True, timeout=timeout)


def test_port_in_use_is_a_clear_error_with_exit_2(settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_cli("--headless", "--listen-port", str(port), *common(settings))
    assert r.returncode == 2
    assert "address already in use" in r.stderr
    assert "--listen-port N" in r.stderr and "make run PORT=N" in r.stderr
    assert "Traceback" not in r.stderr


def test_non_loopback_without_auth_is_refused(settings):
    r = run_cli("--headless", "--listen-host", "0.0.0.0", *common(settings))
    assert r.returncode == 2
    assert "open proxy" in r.stderr and "--proxy-auth" in r.stderr
    assert "Traceback" not in r.stderr


def test_proxy_auth_required_when_given(settings, upstream):
    with headless(*common(settings), "--proxy-auth", "me:secret") as w:
        r = curl(w.port, upstream.url("/"))
        assert r.stdout.endswith("\n407")
        r = curl(w.port, upstream.url("/"), "--proxy-user", "me:secret")
        assert r.stdout.endswith("\n200")
        assert w.terminate() == 0


def test_har_written_on_exit(settings, upstream, tmp_path):
    har = tmp_path / "session.har"
    with headless(*common(settings), "--har", str(har)) as w:
        for i in range(3):
            assert curl(w.port, upstream.url(f"/n{i}")).stdout.endswith("\n200")
        w.wait_lines(3)
        assert w.terminate() == 0
    data = json.loads(har.read_text())
    assert data["log"]["version"] == "1.2"
    urls = [e["request"]["url"] for e in data["log"]["entries"]]
    assert urls == [upstream.url(f"/n{i}") for i in range(3)]


def test_reverse_mode_passes_through(settings, upstream):
    with headless(*common(settings), "--mode", f"reverse:{upstream.base}") as w:
        r = subprocess.run(
            ["curl", "-sS", f"http://127.0.0.1:{w.port}/echo"],
            capture_output=True,
            text=True,
            timeout=15,
        )
        assert json.loads(r.stdout)["server"] == "plain"
        assert w.terminate() == 0


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("waylay ")


def test_ca_command_prints_path_and_trust_instructions(tmp_path):
    r = run_cli("ca", "--confdir", str(tmp_path / "c"))
    assert r.returncode == 0
    pem = tmp_path / "c" / "mitmproxy-ca-cert.pem"
    assert pem.exists() and str(pem) in r.stdout
    for word in (
        "update-ca-certificates",
        "security add-trusted-cert",
        "certutil",
        "Firefox",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
        "NODE_EXTRA_CA_CERTS",
    ):
        assert word in r.stdout


def test_shutdown_with_a_paused_flow_gives_it_the_timeout_outcome(settings, upstream, tmp_path):
    """Headless never pauses: ask gets --ask-default at once (here: cancel)."""
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text('version = 1\n[[rule]]\nid = "ask-all"\naction = "ask"\n')
    with headless(*common(settings), "--ask-default", "cancel") as w:
        t0 = time.monotonic()
        r = curl(w.port, upstream.url("/asked"))
        assert time.monotonic() - t0 < 5
        assert r.returncode != 0  # cancelled: no response at all
        assert w.wait_lines(1)[0].endswith("cancelled rule=ask-all")
        assert w.terminate() == 0
    assert upstream.requests == []


def test_https_to_an_unreachable_upstream_is_an_error_line(settings, waylay_ca):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
        with headless(*common(settings)) as w:
            r = curl(w.port, f"https://127.0.0.1:{dead_port}/", cacert=waylay_ca)
            assert r.returncode != 0
            [line] = w.wait_lines(1)
            assert f"CONNECT 127.0.0.1:{dead_port} error: Cannot connect to" in line
            assert "If you plan" not in line


def test_an_upstream_that_resets_is_an_error_and_the_proxy_keeps_serving(settings, upstream):
    import struct
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    reset_port = listener.getsockname()[1]

    def reset_each() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)  # read the request, then reset instead of answering
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    threading.Thread(target=reset_each, daemon=True).start()
    try:
        with headless(*common(settings)) as w:
            r = curl(w.port, f"http://127.0.0.1:{reset_port}/reset")
            assert r.stdout.endswith("\n502")
            assert curl(w.port, upstream.url("/after-reset")).stdout.endswith("\n200")
            lines = w.wait_lines(2)
            assert f":{reset_port}/reset error: " in lines[0]
            assert lines[1].endswith("/after-reset 200")
            assert w.terminate() == 0
    finally:
        listener.close()


def test_socks5_mode(settings, upstream):
    with headless(*common(settings), "--mode", "socks5") as w:
        r = subprocess.run(
            ["curl", "-sS", "--socks5", f"127.0.0.1:{w.port}", upstream.url("/echo/socks")],
            capture_output=True,
            text=True,
            timeout=15,
        )
        assert json.loads(r.stdout)["path"] == "/echo/socks"
        assert w.wait_lines(1)[0].endswith("/echo/socks 200")
        assert w.terminate() == 0
