"""Shared fixtures: no test touches the real home directory; real servers on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trustme

from tests.servers import Upstream


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Config, rules, secrets and the CA live under a temporary folder, never in ~."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))  # hit counts
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(home / "run"))  # control sockets
    monkeypatch.delenv("WAYLAY_RULES", raising=False)
    for key in list(os.environ):
        if key.startswith("WAYLAY_SECRET_"):
            monkeypatch.delenv(key)
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NO_PROXY", "")
    yield home


@pytest.fixture(autouse=True)
def _proxies_stopped(monkeypatch):
    """Every embedded proxy a test started is stopped when the test ends, whether the test
    stopped it or not. One left running keeps its threads (the loop, the rules watcher,
    an attached screen's reader) alive for the rest of the run, and they add up: a CI run
    had 36 such threads by the middle of the suite, enough CPU that the process was never
    idle, and Textual's pilot waits for an idle process after every key, up to a second
    each. Typing a URL into a dialog then took longer than the waiting client's timeout."""
    from monitor.local import LocalProxy
    from monitor.session import Session

    started: list = []
    for cls in (Session, LocalProxy):

        def start(self, _original=cls.start):
            started.append(self)
            return _original(self)

        monkeypatch.setattr(cls, "start", start)
    yield
    for proxy in started:  # a LocalProxy comes before its Session: its socket goes first
        if isinstance(proxy, LocalProxy):
            if proxy.control is not None:
                proxy.stop(drain_timeout=0.5)
        elif proxy.proxy.running:
            proxy.stop(drain_timeout=0.5)


@pytest.fixture(scope="session")
def confdir(tmp_path_factory) -> Path:
    """One mitmproxy CA for the whole run (creating one costs ~0.5 s)."""
    from monitor.ca import ensure_ca

    d = tmp_path_factory.mktemp("confdir")
    ensure_ca(d)
    return d


@pytest.fixture(scope="session")
def waylay_ca(confdir) -> Path:
    """The PEM clients trust to talk HTTPS through waylay."""
    return confdir / "mitmproxy-ca-cert.pem"


@pytest.fixture(scope="session")
def upstream_ca() -> trustme.CA:
    """The CA that signs the test upstreams' certificates (waylay is told to trust it)."""
    return trustme.CA()


@pytest.fixture(scope="session")
def upstream_ca_pem(upstream_ca, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("upstream-ca") / "ca.pem"
    upstream_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def upstream():
    with Upstream("plain") as u:
        yield u


@pytest.fixture
def other_upstream():
    with Upstream("other") as u:
        yield u


@pytest.fixture
def tls_upstream(upstream_ca):
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    upstream_ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    with Upstream("tls", ssl_context=ctx) as u:
        yield u


@pytest.fixture
def rules_path(tmp_path) -> Path:
    return tmp_path / "config" / "rules.toml"


@pytest.fixture
def settings(tmp_path, confdir, rules_path, upstream_ca_pem):
    from monitor.settings import Settings

    return Settings(
        listen_port=0,
        confdir=confdir,
        rules=rules_path,
        upstream_ca=upstream_ca_pem,
        ask_timeout=30,
        batch_interval=0.02,
    )


@pytest.fixture
def pool():
    """Threads for blocking clients while a test drives the proxy or the app."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(64) as ex:
        yield ex
