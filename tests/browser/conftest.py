"""Fixtures for the headless-Chromium tests: the browser (skipped, with the reason, only
when it cannot be installed), a HOME whose NSS database trusts waylay's CA and the test
upstreams' CA, the test site over HTTPS and plain HTTP, and waylay in-process."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

import pytest

from tests.browser.chromium import Chromium, missing, nss_home
from tests.browser.site import Site
from tests.helpers import write_rules
from tests.wsserver import WebSocketEcho


@pytest.fixture(scope="session")
def chromium_ready():
    reason = missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def browser_home(tmp_path, chromium_ready, waylay_ca, upstream_ca_pem) -> Path:
    """The README's set-up: waylay's CA (and, for the runs without waylay, the CA of the
    test site) trusted in the NSS database of a fresh HOME."""
    return nss_home(tmp_path / "browser-home", {"waylay": waylay_ca, "test-site": upstream_ca_pem})


@pytest.fixture
def ws_echo():
    with WebSocketEcho() as ws:
        yield ws


@pytest.fixture
def https_site(upstream_ca, ws_echo):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    upstream_ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    with Site("https-site", ssl_context=ctx, ws_url=f"ws://127.0.0.1:{ws_echo.port}/r/ws") as s:
        s.origin = f"https://localhost:{s.port}"
        yield s


def insecure_loopback_name() -> str | None:
    """A host name that is not loopback to Chromium (so it sends no Sec-Fetch-* headers,
    as to any plain-HTTP site) but that this machine resolves to 127.0.0.1: its own name,
    when /etc/hosts says so."""
    name = socket.gethostname()
    if not name or name == "localhost" or name.endswith(".localhost"):
        return None
    try:
        addresses = {a[4][0] for a in socket.getaddrinfo(name, 80, proto=socket.IPPROTO_TCP)}
    except OSError:
        return None
    return name if addresses == {"127.0.0.1"} else None


@pytest.fixture
def http_site(ws_echo):
    name = insecure_loopback_name()
    if name is None:
        pytest.skip(
            "this machine's host name does not resolve to 127.0.0.1 only, and a plain-HTTP "
            "site needs a non-loopback name (Chromium treats 127.0.0.1 and localhost as secure)"
        )
    with Site("http-site", ws_url=f"ws://127.0.0.1:{ws_echo.port}/r/ws") as s:
        s.origin = f"http://{name}:{s.port}"
        yield s


@pytest.fixture
def waylay(settings):
    """Start waylay in-process with the given rules text; stopped at the end."""
    from monitor.session import Session

    sessions = []

    def start(rules: str = "") -> Session:
        write_rules(settings, rules)
        session = Session(settings)
        session.port = session.start()[1]
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        session.stop()


def open_page(url: str, home: Path, *, proxy_port=None, extensions=(), until, timeout=30.0):
    """Chromium on ``url`` until ``until()`` is true (the page reported back), then closed.

    The first navigation goes through a ``data:`` page that moves on after a second: a
    navigation started while an unpacked extension's rules are still loading can stall."""
    bounce = f"data:text/html,<script>setTimeout(() => location.href = '{url}', 1000)</script>"
    with Chromium(bounce, home=home, proxy_port=proxy_port, extensions=list(extensions)) as c:
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise AssertionError(f"Chromium did not finish {url} in {timeout}s:\n{c.output()}")
            if c.proc.poll() is not None:
                raise AssertionError(f"Chromium exited ({c.proc.returncode}):\n{c.output()}")
            time.sleep(0.05)


@pytest.fixture
def plain_site():
    """The test site over plain HTTP on 127.0.0.1 (HTTP/1.1 keep-alive through waylay)."""
    with Site("plain-site") as s:
        s.origin = f"http://127.0.0.1:{s.port}"
        yield s


@pytest.fixture
def h2_site(upstream_ca):
    """The cancel page over HTTP/2 (Chromium then speaks HTTP/2 to waylay too)."""
    from tests.browser.h2site import H2Site

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    upstream_ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    with H2Site(ctx) as s:
        yield s
