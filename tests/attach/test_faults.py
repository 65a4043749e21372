"""Faults and refusals of the control socket (issue 11): kill -9 on either side, another
uid, another protocol, stale sockets, several proxies; the proxy never imports textual."""

from __future__ import annotations

import os
import pty
import select
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import msgspec
import pytest

from monitor import wire
from monitor.attach import make_attached_app, resolve
from monitor.remote import Remote, RemoteController, peek
from monitor.sockets import running_proxies, runtime_dir
from tests.helpers import WAYLAY, curl, until, wait_for
from widgets.model import FlowView

pytestmark = pytest.mark.e2e

SIZE = (150, 40)
ASK = '[[rule]]\nid = "ask"\nurls = ["*://127.0.0.1/ask*"]\naction = "ask"\n'
REPO = Path(__file__).resolve().parents[2]

SCREEN_STUB = textwrap.dedent(
    """
    import sys, time
    from monitor.remote import Remote
    r = Remote(sys.argv[1])
    print("attached", flush=True)
    time.sleep(300)
    """
)


def attach_stub(path: str) -> subprocess.Popen:
    """A screen process (the client end of the socket, without a terminal)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SCREEN_STUB, path], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "attached"
    return proc


class Terminal:
    """A command on a pseudo-terminal (Textual needs one); output collected live."""

    def __init__(self, argv: list[str], env: dict | None = None) -> None:
        self.master, slave = pty.openpty()
        os.set_blocking(self.master, False)
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={
                **os.environ,
                "TERM": "xterm-256color",
                "COLUMNS": "150",
                "LINES": "40",
                **(env or {}),
            },
            start_new_session=True,
        )
        os.close(slave)
        self.output = b""
        self._done = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while not self._done.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                self.output += chunk

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait(self, timeout: float = 20) -> int:
        rc = self.proc.wait(timeout)
        time.sleep(0.2)  # the last output
        self._done.set()
        return rc

    def text(self) -> str:
        return self.output.decode(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._done.set()
        os.close(self.master)


# -- kill -9 ------------------------------------------------------------------------------


def test_kill_9_of_the_screen_with_hold_the_pause_waits_for_the_next_screen(
    start_proxy, upstream, pool
):
    proxy = start_proxy("--hold", rules_text=ASK)
    screen = attach_stub(proxy.path)
    pending = pool.submit(curl, proxy.port, upstream.url("/ask"))
    wait_for(lambda: peek(proxy.path).paused == 1, what="the pause")
    screen.kill()
    screen.wait(5)
    screen.stdout.close()
    time.sleep(0.5)  # the proxy has noticed (a fixed wait is the point: nothing may happen)
    assert not pending.done() and proxy.alive()
    assert peek(proxy.path).paused == 1
    again = RemoteController(Remote(proxy.path))
    [fid] = [fid for fid in wait_for(lambda: again.remote.known, what="the state")]
    assert again.answer(fid, "request", wire.answer_from({"action": "continue"})) is None
    assert pending.result(10).stdout.endswith("200")
    again.remote.close()


def test_kill_9_of_the_screen_without_hold_the_pause_gets_its_outcome_at_once(
    start_proxy, upstream, pool
):
    proxy = start_proxy("--ask-timeout", "60", rules_text=ASK)
    screen = attach_stub(proxy.path)
    pending = pool.submit(curl, proxy.port, upstream.url("/ask"))
    wait_for(lambda: peek(proxy.path).paused == 1, what="the pause while a screen is attached")
    started = time.monotonic()
    screen.kill()
    screen.wait(5)
    screen.stdout.close()
    assert pending.result(10).stdout.endswith("200")  # --ask-default continue
    assert time.monotonic() - started < 5
    assert proxy.alive()
    wait_for(lambda: any("/ask 200" in line for line in proxy.out), what="the headless line")


async def test_kill_9_of_the_proxy_closes_the_screen_with_exit_2(start_proxy, upstream):
    proxy = start_proxy()
    app = make_attached_app(Remote(proxy.path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.remote.batches, "the first state")
        proxy.kill9()
        await until(pilot, lambda: not app.is_running, "the screen closes", timeout=5)
    assert app.return_code == 2
    assert app.gone


def test_kill_9_of_the_proxy_waylay_attach_says_so_in_one_line(start_proxy):
    proxy = start_proxy()
    term = Terminal([*WAYLAY, "attach", proxy.path])
    try:
        wait_for(lambda: peek(proxy.path) and b"attached to" in term.output, 20, "the screen")
        proxy.kill9()
        assert term.wait(10) == 2
        text = term.text()
        assert "Traceback" not in text
        assert f"waylay: the proxy at {proxy.path} is gone" in text
    finally:
        term.kill()


# -- refusals -----------------------------------------------------------------------------


def test_a_screen_of_another_protocol_gets_one_line(start_proxy):
    proxy = start_proxy()
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(proxy.path)
        s.settimeout(5)
        f = s.makefile("rb")
        welcome = wire.decode_to_screen(f.read(wire.frame_length(f.read(4))))
        assert isinstance(welcome, wire.Welcome) and welcome.protocol == wire.PROTOCOL
        s.sendall(wire.frame(wire.Hello(protocol=wire.PROTOCOL + 98, version="9.9")))
        bye = wire.decode_to_screen(f.read(wire.frame_length(f.read(4))))
        assert isinstance(bye, wire.Bye)
        assert f"speaks control protocol {wire.PROTOCOL}" in bye.reason
        assert f"the screen speaks {wire.PROTOCOL + 98}" in bye.reason
        assert f.read(1) == b""  # closed
        f.close()
    assert proxy.alive()


def test_waylay_attach_to_a_proxy_of_another_protocol_says_so_in_one_line(tmp_path):
    path = tmp_path / "old.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        payload = msgspec.msgpack.encode({"type": "Welcome", "protocol": 7, "other": "shape"})
        conn.sendall(len(payload).to_bytes(4, "big") + payload)
        conn.recv(100)
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    r = subprocess.run([*WAYLAY, "attach", str(path)], capture_output=True, text=True, timeout=20)
    server.close()
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert f"speaks control protocol 7, this waylay speaks {wire.PROTOCOL}" in r.stderr


NOBODY = 65534


def _as_nobody(args: list[str]) -> subprocess.CompletedProcess:
    """waylay as uid 65534, with the system's Python 3.11 and this checkout's packages."""
    site = next((REPO / ".venv" / "lib").glob("python3.*/site-packages"))
    return subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            "/usr/bin/python3",
            "-m",
            "monitor.cli",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
        env={"PYTHONPATH": f"{REPO}:{site}", "HOME": "/nonexistent", "PATH": os.environ["PATH"]},
    )


needs_root = pytest.mark.skipif(
    os.getuid() != 0 or not Path("/usr/bin/python3").exists() or sys.version_info[:2] != (3, 11),
    reason="runs a client as another uid: needs root, setpriv and the system Python 3.11",
)


@needs_root
def test_another_uid_cannot_reach_the_socket(start_proxy):
    proxy = start_proxy()
    r = _as_nobody(["attach", proxy.path])
    assert r.returncode == 2, r.stderr
    assert f"waylay: permission denied on {proxy.path}: it is another user's proxy" in r.stderr
    assert "Traceback" not in r.stderr


@needs_root
def test_another_uid_is_refused_by_the_proxy_even_when_the_socket_is_reachable(start_proxy):
    """Permissions loosened by hand (0711 folder, 0666 socket): the peer check still refuses."""
    proxy = start_proxy()
    os.chmod(Path(proxy.path).parent, 0o711)
    os.chmod(proxy.path, 0o666)
    for parent in Path(proxy.path).parents:  # the pytest temp folders
        if parent == Path("/"):
            break
        os.chmod(parent, os.stat(parent).st_mode | 0o011)
    r = _as_nobody(["attach", proxy.path])
    assert r.returncode == 2, r.stderr
    assert f"waylay: this proxy belongs to uid 0; uid {NOBODY} may not attach to it" in r.stderr, (
        r.stderr
    )
    assert "Traceback" not in r.stderr
    proxy.wait_err(f"refused a screen: this proxy belongs to uid 0; uid {NOBODY}")
    assert proxy.alive()


# -- finding proxies ----------------------------------------------------------------------


def _dead_socket(folder: Path, pid: int = 999_999) -> Path:
    """What a proxy killed with -9 leaves: a socket nobody listens on, and its json."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"proxy-{pid}.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    path.with_suffix(".json").write_text(
        f'{{"pid": {pid}, "socket": "{path}", "port": 1, "address": "http://127.0.0.1:1", '
        '"mode": "regular", "rules": "r.toml", "started": 0}'
    )
    return path


def test_a_stale_socket_is_detected_and_removed(start_proxy):
    stale = _dead_socket(runtime_dir())
    r = subprocess.run([*WAYLAY, "attach", str(stale)], capture_output=True, text=True, timeout=20)
    assert r.returncode == 2
    assert r.stderr == f"waylay: no proxy listens on {stale} any more (it stopped)\n"
    r = subprocess.run([*WAYLAY, "attach"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 2 and "no waylay proxy is running" in r.stderr
    assert not stale.exists() and not stale.with_suffix(".json").exists()
    # a proxy killed with -9 leaves the same: found stale and cleaned up
    proxy = start_proxy()
    proxy.kill9()
    assert Path(proxy.path).exists()
    r = subprocess.run([*WAYLAY, "attach", "--list"], capture_output=True, text=True, timeout=20)
    assert "no waylay proxy is running" in r.stderr
    assert not Path(proxy.path).exists()


def test_waylay_attach_with_zero_one_and_two_proxies(start_proxy):
    r = subprocess.run([*WAYLAY, "attach"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 2
    assert (
        r.stderr
        == "waylay: no waylay proxy is running for you (start one with: waylay --headless)\n"
    )

    first = start_proxy()
    assert resolve(None) == (first.path, None)
    assert resolve(str(first.port)) == (first.path, None)
    assert resolve("1")[0] is None

    second = start_proxy()
    r = subprocess.run([*WAYLAY, "attach"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 2
    assert "2 proxies are running; name one: waylay attach PORT|PATH" in r.stderr
    assert first.path in r.stderr and second.path in r.stderr
    r = subprocess.run([*WAYLAY, "attach", "--list"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["PORT", "MODE", "FLOWS", "PAUSED"]
    assert [line.split()[0] for line in lines[1:]] == [str(first.port), str(second.port)]
    assert resolve(str(second.port)) == (second.path, None)


# -- layering -----------------------------------------------------------------------------

NO_TEXTUAL = textwrap.dedent(
    """
    import atexit, sys
    def report():
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "textual")
        print("textual modules: " + (" ".join(loaded) or "none"), file=sys.stderr, flush=True)
    atexit.register(report)
    from monitor.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


async def test_the_proxy_process_never_imports_textual(start_proxy, upstream):
    proxy = start_proxy(prefix=[sys.executable, "-c", NO_TEXTUAL])
    assert curl(proxy.port, upstream.url("/x")).stdout.endswith("200")
    app = make_attached_app(Remote(proxy.path))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.flows, "the flow")
        [fid] = app.flows
        assert "curl" in app.controller.export_curl(fid)
        assert app.controller.detail(fid).response_body
        found, error = app.controller.apply_filter("~u /x")
        assert error is None and found is not None and found(app.flows[fid])
    assert proxy.stop() == 0
    wait_for(lambda: any("textual modules:" in line for line in proxy.err), what="the report")
    assert "textual modules: none\n" in proxy.err, proxy.err


def test_a_screen_that_does_not_read_never_holds_the_proxy_and_is_resynchronised(
    start_proxy, upstream, pool
):
    """A stuck screen: past its queue's bound (50 batches, 10 s) the queue is dropped,
    the proxy goes on at full speed, and once the screen reads it gets the current state."""
    from monitor.control import QUEUE_FRAMES

    proxy = start_proxy()
    s = socket.socket(socket.AF_UNIX)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(proxy.path)
    f = s.makefile("rb")
    wire.decode_to_screen(f.read(wire.frame_length(f.read(4))))
    s.sendall(wire.frame(wire.Hello(protocol=wire.PROTOCOL, version="test")))
    started = time.monotonic()
    n = 0
    # traffic for longer than the queue's bound: more batches than the queue holds
    while time.monotonic() - started < QUEUE_FRAMES * 0.2 + 2:
        r = curl(proxy.port, upstream.url(f"/n{n}?{'x' * 8000}"), timeout=5)
        assert r.stdout.endswith("200")
        n += 1
    # now read everything: the screen ends up with the proxy's current state
    rows: dict[str, FlowView] = {}
    s.settimeout(5)
    deadline = time.monotonic() + 20
    resets = 0
    while time.monotonic() < deadline and not (
        len(rows) == n and all(r.state == "done" for r in rows.values())
    ):
        message = wire.decode_to_screen(f.read(wire.frame_length(f.read(4))))
        if isinstance(message, wire.ViewBatch):
            if message.reset:
                resets += 1
                rows.clear()
            for row in message.rows:
                rows[row.id] = row
            for fid in message.removed:
                rows.pop(fid, None)
    assert len(rows) == n and all(r.state == "done" for r in rows.values())
    assert resets >= 2, "the stuck screen was re-synchronised"
    f.close()
    s.close()


# -- plain `waylay`: the screen starts its own proxy process --------------------------------


def _plain_waylay(confdir, rules_path) -> list[str]:
    """Plain `waylay` (a screen and its own proxy) on a free port, in the test's folders."""
    return [*WAYLAY, "--listen-port", "0", "--confdir", str(confdir), "--rules", str(rules_path)]


def test_waylay_runs_its_proxy_in_a_child_process_and_q_stops_it(confdir, rules_path, upstream):
    term = Terminal(_plain_waylay(confdir, rules_path))
    try:
        try:
            [info] = wait_for(running_proxies, 60, "the screen's proxy")
        except AssertionError:
            raise AssertionError(f"no proxy; the terminal shows: {term.text()[-3000:]!r}") from None
        assert info.pid != term.proc.pid  # its own process
        assert curl(info.port, upstream.url("/seen")).stdout.endswith("200")
        wait_for(lambda: b"/seen" in term.output, 30, "the flow on the screen")
        assert b"attached to" not in term.output  # its own proxy, not an attached one
        term.send("q")
        assert term.wait(30) == 0, term.text()[-3000:]
        wait_for(lambda: not running_proxies(), 10, "the proxy stopped with its screen")
        wait_for(lambda: not _pid_alive(info.pid), 10, "the proxy process gone")
        assert "Traceback" not in term.text()
    finally:
        term.kill()


def test_waylay_says_why_its_proxy_cannot_start(confdir, rules_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = subprocess.run(
            [*WAYLAY, "--listen-port", str(port), "--confdir", str(confdir)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert r.returncode == 2
    assert "address already in use" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM], ids=["SIGHUP", "SIGTERM"])
def test_the_screen_takes_its_own_proxy_along_when_its_terminal_goes(
    confdir, rules_path, upstream, signum
):
    """A closed window or a dropped ssh (SIGHUP), or SIGTERM: before, the screen died and
    its proxy stayed behind, unseen, holding the port."""
    term = Terminal(_plain_waylay(confdir, rules_path))
    try:
        [info] = wait_for(running_proxies, 60, "the screen's proxy")
        assert curl(info.port, upstream.url("/seen")).stdout.endswith("200")
        wait_for(lambda: b"/seen" in term.output, 30, "the flow on the screen")
        os.kill(term.proc.pid, signum)
        code = term.wait(30)
        wait_for(lambda: not running_proxies(), 15, "the proxy stopped with its screen")
        wait_for(lambda: not _pid_alive(info.pid), 15, "the proxy process gone")
        assert code == (0 if signum == signal.SIGTERM else 128 + signum), term.text()[-2000:]
        assert "Traceback" not in term.text()
    finally:
        term.kill()


@pytest.mark.parametrize("own", [True, False], ids=["its own proxy", "attached"])
def test_a_terminal_that_hangs_up_without_a_sighup_is_noticed(
    confdir, rules_path, upstream, start_proxy, own
):
    """Under `make run` the terminal's session leader is make, which on a hang-up waits
    for its job, so the screen gets no SIGHUP: before, it went on reading nothing from a
    terminal that was gone, busily, its proxy holding the port. Here the leader is a
    shell that ignores SIGHUP and waits; the window closes (the pty's master end)."""
    if own:
        argv = _plain_waylay(confdir, rules_path)
    else:
        proxy = start_proxy()
        argv = [*WAYLAY, "attach", proxy.path]
    term = Terminal(["sh", "-c", f"trap '' HUP; {shlex.join(argv)}; true"])
    closed = False
    try:
        if own:
            [info] = wait_for(running_proxies, 60, "the screen's proxy")
            port = info.port
        else:
            port = proxy.port
        wait_for(lambda: _children(term.proc.pid), 30, "the screen under the shell")
        wait_for(lambda: b"waylay" in term.output, 60, "the screen drawn")
        assert curl(port, upstream.url("/seen")).stdout.endswith("200")
        wait_for(lambda: b"/seen" in term.output, 30, "the flow on the screen")
        screens = _children(term.proc.pid)
        assert screens, "the screen runs under the shell"
        term._done.set()
        os.close(term.master)  # the window closes
        closed = True
        wait_for(lambda: not any(_pid_alive(p) for p in screens), 15, "the screen gone")
        assert term.proc.wait(15) == 0
        if own:
            wait_for(lambda: not running_proxies(), 15, "the proxy stopped with its screen")
            wait_for(lambda: not _pid_alive(info.pid), 15, "the proxy process gone")
        else:
            assert proxy.alive() and peek(proxy.path).flows == 1  # detached: it goes on
    finally:
        if not closed:
            term.kill()
        elif term.proc.poll() is None:
            term.proc.kill()


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def test_a_port_held_by_a_waylay_proxy_says_which_and_how_to_reach_it(start_proxy, confdir):
    proxy = start_proxy()
    r = subprocess.run(
        [*WAYLAY, "--headless", "--listen-port", str(proxy.port), "--confdir", str(confdir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    [line] = r.stderr.splitlines()
    assert "address already in use" in line
    assert f"waylay (pid {proxy.pid}," in line and f"`waylay attach {proxy.port}`" in line


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of a child of someone else counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
