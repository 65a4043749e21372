"""Helpers for the fault tests: waylay as a subprocess, raw upstreams that misbehave."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.helpers import WAYLAY


def run_cli(
    *args: str, timeout: float = 20, env: dict | None = None
) -> subprocess.CompletedProcess:
    """waylay with ``args``; a run that does not exit within ``timeout`` is killed and
    reported as exit code None (it started instead of refusing)."""
    proc = subprocess.Popen(
        [*WAYLAY, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, None, out, err)  # type: ignore[arg-type]
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def one_line_error(r: subprocess.CompletedProcess) -> str:
    """Exit 2 and exactly one line on stderr, no traceback; returns the line."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


class RawUpstream:
    """A TCP server on 127.0.0.1 whose ``handler(conn)`` writes whatever bytes it wants:
    for upstreams that misbehave (1xx, resets mid-body, silence, broken chunks)."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.handler = handler
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            read_head(conn)
            self.handler(conn)
        except OSError:
            pass

    def __enter__(self) -> RawUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@contextmanager
def never_accepting() -> Iterator[int]:
    """A port on 127.0.0.1 whose listening socket never accepts and whose backlog is full:
    SYNs to it go unanswered, so connecting hangs (until the connect timeout)."""
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = []
        for _ in range(8):  # fill the accept queue
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(f)
        try:
            yield port
        finally:
            for f in fillers:
                f.close()
