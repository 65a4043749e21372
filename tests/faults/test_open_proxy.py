"""15.3: the loopback-only promise covers every way mitmproxy can be told where to
listen: --listen-host, @host:port in any --mode, several modes, IPv6 ::, and names
that resolve to non-loopback addresses."""

from __future__ import annotations

import pytest

from tests.faults.common import one_line_error, run_cli
from tests.helpers import common, curl, headless

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    "args",
    [
        ["--mode", "reverse:http://127.0.0.1:9@0.0.0.0:0"],
        ["--mode", "regular@0.0.0.0:0"],
        ["--mode", "socks5@[::]:0"],
        ["--mode", "regular@::1:0", "--mode", "socks5@0.0.0.0:0"],
        ["--listen-host", "::"],
        ["--listen-host", ""],
        ["--listen-host", "0"],  # a name getaddrinfo resolves to 0.0.0.0
        ["--listen-host", "no-such-host.invalid"],
    ],
)
def test_non_loopback_listeners_are_refused_without_auth(settings, args):
    r = run_cli("--headless", "--listen-port", "0", *common(settings), *args)
    line = one_line_error(r)
    assert "open proxy" in line and "--proxy-auth" in line


def test_the_refusal_names_the_mode_that_asked(settings):
    r = run_cli(
        "--headless",
        "--listen-port",
        "0",
        *common(settings),
        "--mode",
        "reverse:http://127.0.0.1:9@0.0.0.0:0",
    )
    assert "refusing to listen on 0.0.0.0 (--mode 'reverse:http://127.0.0.1:9@0.0.0.0:0')" in (
        r.stderr
    )


def test_empty_proxy_auth_does_not_open_it(settings):
    r = run_cli("--headless", *common(settings), "--listen-host", "0.0.0.0", "--proxy-auth", ":")
    line = one_line_error(r)
    assert "--proxy-auth" in line


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_still_starts(settings, upstream, host):
    with headless(*common(settings), "--listen-host", host) as w:
        r = curl(w.port, upstream.url("/"))
        assert r.stdout.endswith("\n200")


def test_a_mode_on_loopback_with_its_own_port_serves(settings, upstream):
    with headless(*common(settings), "--mode", "regular@127.0.0.1:0") as w:
        r = curl(w.port, upstream.url("/"))
        assert r.stdout.endswith("\n200")
