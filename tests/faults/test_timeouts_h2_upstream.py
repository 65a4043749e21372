"""Issue 16, what round 2 left open: upstream timeouts for HTTP/2 clients and in upstream
mode, and HTTP/2 header blocks bounded by --max-header-size. Real waylay, real clients
(httpx over HTTP/2, curl --http2, raw sockets), real listeners that misbehave."""

from __future__ import annotations

import socket
import ssl
import time

import httpx
import pytest

from tests.faults.common import RawUpstream, never_accepting
from tests.h2server import H2Upstream, SilentH2Upstream
from tests.helpers import common, curl, headless, wait_for

pytestmark = pytest.mark.e2e

FAST = ("--connect-timeout", "1", "--read-timeout", "1")


def h2_context(upstream_ca) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    upstream_ca.issue_cert("127.0.0.1").configure_cert(ctx)
    return ctx


def h2_client(port: int, waylay_ca) -> httpx.Client:
    """httpx speaking HTTP/2 over TLS through waylay, trusting waylay's CA."""
    return httpx.Client(
        proxy=f"http://127.0.0.1:{port}",
        verify=ssl.create_default_context(cafile=str(waylay_ca)),
        http2=True,
        timeout=20,
    )


def curl_h2(port: int, url: str, waylay_ca) -> tuple[str, str, str]:
    """curl --http2 through waylay: (HTTP version, status, body). curl offers h2 first, so
    it speaks HTTP/2 to waylay even when waylay has no upstream protocol to follow."""
    r = curl(port, url, "--http2", "-w", "\n%{http_version} %{http_code}", cacert=waylay_ca)
    body, _, last = r.stdout.rpartition("\n")
    version, _, status = last.partition(" ")
    return version, status, body


def silent(conn: socket.socket) -> None:
    time.sleep(30)


# -- HTTP/2 clients --------------------------------------------------------------------------


def test_http2_client_gets_504_naming_the_read_timeout(settings, upstream_ca, waylay_ca):
    """The upstream finishes TLS and HTTP/2 and never answers the request: the stream gets
    504 (it got mitmproxy's 502 "peer closed connection")."""
    with SilentH2Upstream(h2_context(upstream_ca)) as up:
        with headless(*common(settings), *FAST) as w, h2_client(w.port, waylay_ca) as client:
            t0 = time.monotonic()
            r = client.get(up.url("/silent"))
            assert time.monotonic() - t0 < 10
            [line] = w.wait_lines(1)
    assert r.http_version == "HTTP/2"
    assert r.status_code == 504, r.text
    assert "no response from" in r.text and "--read-timeout" in r.text
    assert up.requests == [(1, "/silent")]
    assert "error: 504: no response from" in line


class PartlySilentH2Upstream(H2Upstream):
    """Never answers paths under /silent; answers the others."""

    def answer(self, h2, stream_id: int, headers: dict, number: int) -> None:
        if headers[":path"].startswith("/silent"):
            self.requests.append((number, headers[":path"]))
        else:
            super().answer(h2, stream_id, headers, number)


def test_a_read_timeout_ends_only_its_own_stream_of_a_shared_http2_connection(
    settings, upstream_ca, waylay_ca, pool
):
    """Two requests share one HTTP/2 connection to the upstream: the one never answered
    gets 504 and its stream is reset; the connection stays for the next request (the
    read timeout used to close it, and with it every other stream on it)."""
    with PartlySilentH2Upstream(h2_context(upstream_ca)) as up:
        with headless(*common(settings), *FAST) as w, h2_client(w.port, waylay_ca) as client:
            assert client.get(up.url("/first")).status_code == 200
            silent_one = pool.submit(client.get, up.url("/silent"))
            wait_for(lambda: (1, "/silent") in up.requests, what="the silent request upstream")
            r = silent_one.result(timeout=15)
            after = client.get(up.url("/after"))
            w.wait_lines(3)
    assert (r.http_version, r.status_code) == ("HTTP/2", 504), r.text
    assert "--read-timeout" in r.text
    assert (after.http_version, after.status_code) == ("HTTP/2", 200)
    assert up.requests == [(1, "/first"), (1, "/silent"), (1, "/after")]
    assert up.connections == 1


def test_http2_client_gets_504_when_the_upstream_never_finishes_tls(settings, waylay_ca):
    """The upstream accepts and says nothing: the TLS handshake waylay starts with it (before
    the client's own handshake can finish) used to hold the client until it gave up."""
    with RawUpstream(silent) as up, headless(*common(settings), *FAST) as w:
        t0 = time.monotonic()
        version, status, body = curl_h2(w.port, f"https://127.0.0.1:{up.port}/tls", waylay_ca)
        assert time.monotonic() - t0 < 10
        assert (version, status) == ("2", "504"), body
        assert "did not finish the TLS handshake" in body and "--connect-timeout" in body
        # httpx offers http/1.1 before h2; with no upstream protocol to follow, waylay takes
        # the client's first choice. The answer is the same.
        with h2_client(w.port, waylay_ca) as client:
            r = client.get(f"https://127.0.0.1:{up.port}/tls-httpx")
        assert r.status_code == 504 and "--connect-timeout" in r.text, r.text
        lines = w.wait_lines(2)
    assert all("error: 504:" in x and "TLS handshake" in x for x in lines), lines


def test_https_to_an_upstream_that_never_accepts_gets_504(settings, waylay_ca):
    """waylay connects when the client's CONNECT comes (to learn the server's certificate
    and protocol): the CONNECT itself is answered 504 with the reason (it used to hang)."""
    with never_accepting() as port, headless(*common(settings), *FAST) as w:
        t0 = time.monotonic()
        with h2_client(w.port, waylay_ca) as client, pytest.raises(httpx.ProxyError) as e:
            client.get(f"https://127.0.0.1:{port}/")
        assert time.monotonic() - t0 < 10
        assert "504" in str(e.value)
        with socket.create_connection(("127.0.0.1", w.port), timeout=10) as s:
            s.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
            s.settimeout(10)
            answer = s.recv(65536)
            while b"--connect-timeout" not in answer and (chunk := s.recv(65536)):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 504"), answer
        assert b"could not connect to 127.0.0.1" in answer and b"--connect-timeout" in answer


# -- upstream mode -------------------------------------------------------------------------


def test_upstream_mode_a_proxy_that_never_answers_gets_504(settings, waylay_ca):
    """The upstream proxy accepts and never answers: a plain request (forwarded as is) hits
    the read timeout, an HTTPS one (CONNECT to the proxy, then TLS) the connect timeout."""
    with RawUpstream(silent) as proxy:
        mode = f"upstream:http://127.0.0.1:{proxy.port}"
        with headless(*common(settings), *FAST, "--mode", mode) as w:
            t0 = time.monotonic()
            r = curl(w.port, "http://127.0.0.1:9/plain", timeout=20)
            assert time.monotonic() - t0 < 10
            assert r.stdout.endswith("\n504"), r.stdout
            assert "--read-timeout" in r.stdout
            t0 = time.monotonic()
            version, status, body = curl_h2(w.port, "https://127.0.0.1:9/tls", waylay_ca)
            assert time.monotonic() - t0 < 10
            assert (version, status) == ("2", "504"), body
            assert "upstream proxy 127.0.0.1:" in body
            assert "did not answer the CONNECT request" in body and "--connect-timeout" in body
            lines = w.wait_lines(2)
    assert "/plain error: 504: no response" in lines[0], lines
    assert "/tls error: 504: upstream proxy" in lines[1], lines


def test_upstream_mode_a_server_silent_behind_the_proxy_gets_504(settings, waylay_ca):
    """The upstream proxy answers the CONNECT, then nothing comes through the tunnel: the
    TLS handshake with the server behind it is what the connect timeout names."""

    def tunnel_to_nowhere(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        time.sleep(30)

    with RawUpstream(tunnel_to_nowhere) as proxy:
        mode = f"upstream:http://127.0.0.1:{proxy.port}"
        with headless(*common(settings), *FAST, "--mode", mode) as w:
            t0 = time.monotonic()
            version, status, body = curl_h2(w.port, "https://127.0.0.1:9/tls", waylay_ca)
            assert time.monotonic() - t0 < 10
            assert (version, status) == ("2", "504"), body
            assert "127.0.0.1:9 did not finish the TLS handshake" in body
            assert f"through upstream proxy 127.0.0.1:{proxy.port}" in body
            [line] = w.wait_lines(1)
    assert "/tls error: 504: 127.0.0.1:9 did not finish the TLS handshake" in line


def test_upstream_mode_a_proxy_that_never_accepts_gets_504(settings, waylay_ca):
    with never_accepting() as port:
        with headless(*common(settings), *FAST, "--mode", f"upstream:http://127.0.0.1:{port}") as w:
            t0 = time.monotonic()
            r = curl(w.port, "http://127.0.0.1:9/plain", timeout=20)
            assert time.monotonic() - t0 < 10
            assert r.stdout.endswith("\n504"), r.stdout
            assert f"could not connect to upstream proxy 127.0.0.1:{port}" in r.stdout
            version, status, body = curl_h2(w.port, "https://127.0.0.1:9/tls", waylay_ca)
            assert (version, status) == ("2", "504"), body
            assert "could not connect to upstream proxy" in body
            assert "--connect-timeout" in body
            wait_for(lambda: len(w.lines) >= 2, what="two lines")


# -- HTTP/2 header blocks --------------------------------------------------------------------


def test_an_oversized_http2_header_block_gets_431_on_its_stream(settings, upstream_ca, waylay_ca):
    """--max-header-size 8k: a 12 KiB header block is answered 431 on its stream (it was
    passed upstream: only hpack's 64 KiB applied) and the connection goes on; one past
    twice the limit cannot be decoded safely, and only that connection is closed."""
    with H2Upstream(h2_context(upstream_ca)) as up:
        with headless(*common(settings), "--max-header-size", "8k") as w:
            with h2_client(w.port, waylay_ca) as client:
                r = client.get(up.url("/big"), headers={"x-big": "a" * 12 * 1024})
                assert r.http_version == "HTTP/2"
                assert r.status_code == 431, r.text
                assert "--max-header-size" in r.text
                ok = client.get(up.url("/small"))
                assert (ok.http_version, ok.status_code) == ("HTTP/2", 200)
            with h2_client(w.port, waylay_ca) as client, pytest.raises(httpx.HTTPError):
                client.get(up.url("/huge"), headers={"x-big": "a" * 40 * 1024})
            with h2_client(w.port, waylay_ca) as client:
                assert client.get(up.url("/after")).status_code == 200
    assert [path for _, path in up.requests] == ["/small", "/after"]


def test_http2_header_blocks_follow_a_larger_limit_too(settings, upstream_ca, waylay_ca):
    """--max-header-size 256k: a 100 KiB header block passes (hpack's 64 KiB default cut
    the connection whatever the option said)."""
    big = H2Upstream(h2_context(upstream_ca))
    big.max_header_list_size = 1024 * 1024
    with big as up:
        with headless(*common(settings), "--max-header-size", "256k") as w:
            with h2_client(w.port, waylay_ca) as client:
                r = client.get(up.url("/big"), headers={"x-big": "a" * 100 * 1024})
    assert (r.http_version, r.status_code) == ("HTTP/2", 200), r.text
    assert up.requests == [(1, "/big")]


class BigHeadersH2Upstream(H2Upstream):
    """Answers with a 20 KiB response header."""

    def answer(self, h2, stream_id: int, headers: dict, number: int) -> None:
        self.requests.append((number, headers[":path"]))
        self.reply(h2, stream_id, b"big", "text/plain", ("x-big", "b" * 20 * 1024))


def test_an_oversized_http2_response_head_from_upstream_is_a_502(settings, upstream_ca, waylay_ca):
    with BigHeadersH2Upstream(h2_context(upstream_ca)) as up:
        with headless(*common(settings), "--max-header-size", "8k") as w:
            with h2_client(w.port, waylay_ca) as client:
                r = client.get(up.url("/big-answer"))
            [line] = w.wait_lines(1)
    assert r.status_code == 502, r.text
    assert "header" in r.text.lower()
    assert "/big-answer error:" in line
