"""Proxies in their own processes, for the attach tests."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from tests.helpers import WAYLAY, wait_for


class ProxyProcess:
    """``waylay --headless`` with its control socket; stdout and stderr collected live."""

    def __init__(self, proc: subprocess.Popen, timeout: float = 30.0) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self.port = 0
        self.path = ""
        self._readers = [
            threading.Thread(target=self._read, args=(proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(proc.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        deadline = time.monotonic() + timeout
        while not self.path:
            text = "".join(self.err)
            if m := re.search(r"listening on http://[^\s]+:(\d+)", text):
                self.port = int(m.group(1))
            if m := re.search(r"attach with: waylay attach (\S+)", text):
                self.path = m.group(1)
            if proc.poll() is not None or time.monotonic() > deadline:
                time.sleep(0.2)
                self.close()
                raise AssertionError(f"the proxy did not start: {''.join(self.err)}")
            time.sleep(0.01)

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_err(self, text: str, timeout: float = 10.0) -> str:
        return wait_for(
            lambda: next((line for line in self.err if text in line), None),
            timeout,
            f"{text!r} on the proxy's stderr (have {''.join(self.err)!r})",
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        """Kill it if it still runs; close the pipes once everything was read."""
        if self.alive():
            self.proc.kill()
        self.proc.wait(10)
        for reader in self._readers:
            reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@pytest.fixture
def start_proxy(confdir, rules_path, upstream_ca_pem):
    """Start proxies: ``start_proxy("--hold", rules_text=...)``; all stopped at the end."""
    started: list[ProxyProcess] = []

    def start(*args: str, rules_text: str | None = None, prefix: list[str] | None = None):
        if rules_text is not None:
            rules_path.parent.mkdir(parents=True, exist_ok=True)
            rules_path.write_text("version = 1\n" + rules_text)
        proc = subprocess.Popen(
            [
                *(prefix or WAYLAY),
                "--headless",
                "--listen-port",
                "0",
                "--confdir",
                str(confdir),
                "--rules",
                str(rules_path),
                "--upstream-ca",
                str(upstream_ca_pem),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        p = ProxyProcess(proc)
        started.append(p)
        return p

    yield start
    for p in started:
        p.close()


@contextlib.contextmanager
def screens_through_the_socket(monkeypatch, module):
    """Within it, ``module.make_app`` builds the screen attached to its proxy over a real
    control socket (``monitor.local``); at the end, every screen made must have been."""
    from monitor.local import make_local_app

    made = []

    def attached(*args, **kwargs):
        app, proxy = make_local_app(*args, **kwargs)
        made.append(app)
        return app, proxy

    monkeypatch.setattr(module, "make_app", attached)
    yield
    assert made and all(app.remote is not None for app in made), "not through the socket"
