"""Fixtures for the auth event: servers that demand credentials, a session, an upstream
proxy (a real ``mitmdump`` with ``proxyauth``), and helpers to write rules and secrets."""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import httpx
import pytest

from monitor.record import record_of
from monitor.session import Session
from tests.auth.servers import AuthUpstream
from tests.helpers import wait_for

PASSWORD = "wonder-land-7"
PROXY_USER, PROXY_PASSWORD = "proxyuser", "proxy-pass-9"


@pytest.fixture
def basic_server():
    with AuthUpstream("basic", users={"alice": PASSWORD}) as s:
        yield s


@pytest.fixture
def digest_server():
    with AuthUpstream("digest", users={"alice": PASSWORD}) as s:
        yield s


def credentials_rule(
    rule_id="staff", urls='["*://127.0.0.1/*"]', username="alice", secret="staff", extra=""
) -> str:
    return (
        f'[[rule]]\nid = "{rule_id}"\nevent = "auth"\nurls = {urls}\naction = "credentials"\n'
        f'username = "{username}"\nsecret = "{secret}"\n{extra}'
    )


@pytest.fixture
def start_session(settings):
    """``start_session(settings=None) -> Session`` started, with ``.port``; all stopped after."""
    started: list[Session] = []

    def start(s=None) -> Session:
        session = Session(s or settings)
        session.port = session.start()[1]
        started.append(session)
        return session

    yield start
    for session in started:
        session.stop()


def client(session, waylay_ca=None, timeout=20) -> httpx.Client:
    return httpx.Client(
        proxy=f"http://127.0.0.1:{session.port}",
        verify=ssl.create_default_context(cafile=str(waylay_ca)) if waylay_ca else True,
        timeout=timeout,
    )


def paused(session, n=1, timeout=10.0) -> list[str]:
    return wait_for(
        lambda: len(session.pauses.keys()) >= n and session.pauses.keys(),
        timeout,
        what=f"{n} paused flows",
    )


def asked(session, attempt: int) -> str:
    """The id of the flow paused at auth for the ``attempt``-th time."""

    def check():
        for fid in session.pauses.keys():
            info = session.pauses.info(fid)
            if info is not None and info.auth is not None and info.auth.attempt == attempt:
                return fid
        return None

    return wait_for(check, what=f"auth asked for the {attempt}. time")


def flow_of(session, flow_id):
    return session.recorder.flows[flow_id]


def notes(session, flow_id=None) -> list[str]:
    flows = session.recorder.flows
    f = flows[flow_id] if flow_id else list(flows.values())[-1]
    return list(record_of(f).notes)


class MitmdumpProxy:
    """A real mitmproxy (``mitmdump``) on loopback that wants proxy credentials."""

    def __init__(self, auth: str) -> None:
        self.confdir = tempfile.mkdtemp(prefix="mitmdump-")
        exe = Path(sys.executable).parent / "mitmdump"
        self.proc = subprocess.Popen(
            [
                str(exe),
                "--listen-host", "127.0.0.1",
                "--listen-port", "0",
                "--set", f"confdir={self.confdir}",
                "--set", f"proxyauth={auth}",
                "--set", "ignore_hosts=.*",  # TLS passes through: HTTPS reaches the real upstream
                "--set", "termlog_verbosity=info",
                "--set", "flow_detail=1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.port: int | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_for(lambda: self.port or self.proc.poll() is not None, 20, "mitmdump to listen")
        if self.port is None:
            raise RuntimeError("mitmdump did not start:\n" + "\n".join(self.lines))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            m = re.search(r"proxy listening at [^\s]*:(\d+)", line)
            if m and self.port is None:
                self.port = int(m.group(1))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)


@pytest.fixture(scope="module")
def upstream_proxy():
    proxy = MitmdumpProxy(f"{PROXY_USER}:{PROXY_PASSWORD}")
    yield proxy
    proxy.stop()
