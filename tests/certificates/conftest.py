"""Fixtures for the certificate event: upstreams with good and bad certificates, sessions,
clients that trust only waylay's CA."""

from __future__ import annotations

import dataclasses
import ssl
from contextlib import contextmanager

import httpx
import pytest

from monitor.certificates import CertificateGuard
from monitor.session import Session
from tests.certificates.certs import ServerCert, make
from tests.helpers import wait_for
from tests.servers import Upstream


@pytest.fixture
def cert_for(upstream_ca):
    """``cert_for(kind) -> ServerCert`` (see ``tests.certificates.certs``)."""
    return lambda kind: make(kind, upstream_ca)


@pytest.fixture
def serve():
    """``serve(cert) -> Upstream`` over TLS with that certificate; ``.ctx`` can be
    re-configured to change the certificate while it runs."""
    with contextmanager(_serving)() as start:
        yield start


def _serving():
    started: list[Upstream] = []

    def start(cert: ServerCert, name: str = "bad") -> Upstream:
        ctx = cert.context()
        upstream = Upstream(name, ssl_context=ctx)
        upstream.ctx = ctx
        upstream.__enter__()
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        upstream.__exit__(None, None, None)


@pytest.fixture
def start_session(settings):
    """``start_session(**setting_overrides) -> Session`` (started, ``.port`` set)."""
    started: list[Session] = []

    def start(**overrides) -> Session:
        session = Session(dataclasses.replace(settings, **overrides))
        session.port = session.start()[1]
        started.append(session)
        return session

    yield start
    for session in started:
        session.stop()


def allow_rule(port: int, fingerprint: str | None, rule_id: str = "dev-cert") -> str:
    pinned = f'fingerprint = "{fingerprint}"\n' if fingerprint else ""
    return (
        f'[[rule]]\nid = "{rule_id}"\nevent = "certificate"\n'
        f'urls = ["https://127.0.0.1:{port}/*"]\n{pinned}action = "allow"\n'
    )


def client(session, waylay_ca, timeout: float = 20, **kwargs) -> httpx.Client:
    trust = ssl.create_default_context(cafile=str(waylay_ca))
    return httpx.Client(
        proxy=f"http://127.0.0.1:{session.port}", verify=trust, timeout=timeout, **kwargs
    )


def guard(session) -> CertificateGuard:
    return session.certificates


def question(session, timeout: float = 10) -> str:
    """Wait for exactly one paused certificate event; its key (the flow shown paused)."""
    keys = wait_for(lambda: session.pauses.keys(), timeout, "a certificate question")
    assert len(keys) == 1, keys
    info = session.pauses.info(keys[0])
    assert info is not None and info.event == "certificate"
    return keys[0]


def record_questions(session) -> list[str]:
    """From now on, the keys of every question the session asks (in order)."""
    asked: list[str] = []
    ask = session.pauses.ask

    async def recording_ask(key, event, **kwargs):
        asked.append(key)
        return await ask(key, event, **kwargs)

    session.pauses.ask = recording_ask
    return asked


def flows_to(session, port: int, method: str = "GET"):
    return [
        f
        for f in session.recorder.flows.values()
        if f.request.port == port and f.request.method == method
    ]
