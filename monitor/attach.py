"""``waylay attach``: the screen on a proxy that runs in another process.

Also how plain ``waylay`` runs: it starts the proxy as a child process (``waylay
--headless --hold`` with its control socket) and attaches to it; quitting that screen
stops its proxy. An attached screen's ``q`` detaches and leaves the proxy running;
``Q`` (confirmed) stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from monitor.remote import AttachError, Remote, RemoteController, peek
from monitor.sockets import ProxyInfo, running_proxies

EXIT_GONE = 2


def attach_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="waylay attach",
        description="Open the screen on a running waylay proxy (started with waylay "
        "--headless, or by another screen). q detaches, Q stops the proxy.",
    )
    p.add_argument(
        "target",
        nargs="?",
        default=None,
        metavar="PORT|PATH",
        help="the proxy's port or its control socket; default: the only one running",
    )
    p.add_argument("--list", action="store_true", help="list the running proxies and exit")
    return p


def _started(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _counts(info: ProxyInfo) -> tuple[str, str]:
    """Flows and paused, asked of the proxy itself ("?" when it does not answer)."""
    try:
        welcome = peek(info.socket)
    except AttachError:
        return "?", "?"
    return str(welcome.flows), str(welcome.paused)


def list_table(found: Iterable[ProxyInfo]) -> str:
    rows = [("PORT", "MODE", "FLOWS", "PAUSED", "STARTED", "RULES", "SOCKET")]
    for info in found:
        flows, paused = _counts(info)
        rows.append(
            (
                str(info.port),
                info.mode,
                flows,
                paused,
                _started(info.started),
                info.rules,
                info.socket,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    )


def resolve(target: str | None) -> tuple[str | None, str | None]:
    """(socket path, None) or (None, a message for stderr)."""
    if target is not None and not target.isdigit():
        return str(Path(target).expanduser()), None
    found = running_proxies()
    if target is not None:
        port = int(target)
        match = [i for i in found if i.port == port]
        if not match:
            return None, f"no waylay proxy of yours listens on port {port} (waylay attach --list)"
        return match[0].socket, None
    if not found:
        return None, "no waylay proxy is running for you (start one with: waylay --headless)"
    if len(found) > 1:
        return None, (
            f"{len(found)} proxies are running; name one: waylay attach PORT|PATH\n"
            + list_table(found)
        )
    return found[0].socket, None


def attach_main(argv: list[str]) -> int:
    args = attach_parser().parse_args(argv)
    if args.list:
        found = running_proxies()
        if not found:
            print("no waylay proxy is running", file=sys.stderr)
            return 0
        print(list_table(found))
        return 0
    path, error = resolve(args.target)
    if path is None:
        print(f"waylay: {error}", file=sys.stderr)
        return 2
    return run_attached(path)


def _terminal_fd() -> int | None:
    """The terminal the screen reads its keys from (Textual reads stdin), if it is one."""
    try:
        fd = sys.__stdin__.fileno() if sys.__stdin__ is not None else -1
    except (OSError, ValueError):
        return None
    return fd if fd >= 0 and os.isatty(fd) else None


def _hung_up_terminal() -> bool:
    """The screen's terminal has hung up (its window closed, its ssh dropped)."""
    fd = _terminal_fd()
    if fd is None:
        return True  # (it was one at mount: it is gone now)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        events = poller.poll(0)
    except OSError:
        return False
    return any(mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, mask in events)


def make_attached_app(
    remote: Remote | None, *, own_proxy: bool = False, ask_timeout: float | None = 120
):
    """The screen for ``remote`` (not running yet). With None, ``app.connect(remote)``
    must come before it runs (the proxy's socket does not exist yet)."""
    from textual import on
    from textual.app import SystemCommand
    from textual.binding import BindingType
    from textual.message import Message

    from monitor.user_settings import apply_user_settings
    from widgets import keys
    from widgets.app import FlowsUpdated, WaylayApp
    from widgets.model import FlowView
    from widgets.prompts import ConfirmPrompt

    class BatchesWaiting(Message):
        """The connection has batches for the screen (merged until taken)."""

    class AttachedApp(WaylayApp):
        """The screen of a proxy in another process."""

        BINDINGS: ClassVar[list[BindingType]] = keys.bindings(keys.ATTACHED)

        controller: RemoteController

        def __init__(self) -> None:
            super().__init__(RemoteController(None), ask_timeout=ask_timeout)
            self.remote: Remote | None = None
            self.own_proxy = own_proxy
            self.gone: str | None = None
            self.stopped = False
            self.goes_with_the_terminal = False
            """Set by `waylay` for the screen of its own proxy: a hang-up (the window
            closed, ssh dropped) or SIGTERM stops that proxy too, as `q` does. Before, the
            proxy stayed behind, unseen, holding the port."""
            self._ui_loop: asyncio.AbstractEventLoop | None = None
            self._rules_error: str | None = None

        def connect(self, remote: Remote) -> None:
            """Bind the screen to its proxy (before it runs)."""
            self.remote = remote
            self.controller = RemoteController(remote)
            self.rules_source = remote.rules
            self.ask_timeout = remote.welcome.ask_timeout
            if not self.own_proxy:
                self.title_info["attached to"] = remote.path

        def on_mount(self) -> None:
            remote = self.remote
            assert remote is not None, "connect() the screen to its proxy first"
            super().on_mount()
            apply_user_settings(self)  # theme, keymap; a theme picked later is kept
            self._ui_loop = asyncio.get_running_loop()
            if self.goes_with_the_terminal:
                self._ui_loop.add_signal_handler(signal.SIGTERM, self.exit)
                self._ui_loop.add_signal_handler(signal.SIGHUP, self._hung_up)
            if not self.is_headless and _terminal_fd() is not None:
                self.set_interval(1.0, self._check_terminal, name="terminal watch")
            remote.on_closed = self._closed_from_thread
            remote.on_rules = self._rules_from_thread
            remote.set_notify(self._batches_waiting)
            self._rules_error = remote.rules.error
            if remote.rules.error:
                self.notify_error(f"rules file: {remote.rules.error}")
            if remote.closed is not None:
                self.proxy_gone(remote.closed)

        def _hung_up(self) -> None:
            """The terminal is gone: nothing can be drawn or restored there, so stop the
            proxy (its paused flows get their outcome) and leave at once."""
            self._stop_now()
            os._exit(128 + signal.SIGHUP)

        def _check_terminal(self) -> None:
            """A terminal that hung up without a SIGHUP for this process: under `make
            run`, make leads the terminal's session and, hung up, waits for its job, so
            the signal never comes. Textual reads nothing from such a terminal, forever
            and busily (about half a core); seen here, it is a hang-up as SIGHUP's: the
            screen's own proxy stops with it, an attached screen detaches."""
            if not _hung_up_terminal():
                return
            if self.goes_with_the_terminal:
                self._hung_up()
            os._exit(128 + signal.SIGHUP)

        def _batches_waiting(self) -> None:  # the connection's reader thread
            self.post_message(BatchesWaiting())

        @on(BatchesWaiting)
        def _apply_batches(self) -> None:
            """Whatever arrived since the last time, as one batch: a screen that fell
            behind catches up in one step, and keys never wait behind a queue of them."""
            if self.remote is not None:
                views, removed = self.remote.take()
                if views or removed:
                    self.on_flows_updated(FlowsUpdated(tuple(views), tuple(removed)))

        def _from_thread(self, fn, *args) -> None:
            if self._ui_loop is None:  # not mounted yet: on_mount looks at the remote
                return
            try:
                self._ui_loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # the screen has closed
                pass

        def _closed_from_thread(self, reason: str) -> None:
            self._from_thread(self.proxy_gone, reason)

        def _rules_from_thread(self) -> None:
            error = self.remote.rules.error if self.remote is not None else None
            fresh = error if error != self._rules_error else None  # a new error: a toast
            self._rules_error = error
            self._from_thread(self.rules_changed, fresh)

        def proxy_gone(self, reason: str) -> None:
            if self.stopped or (self.remote is not None and self.remote.closed == "detached"):
                return
            self.gone = reason
            self.exit(return_code=EXIT_GONE)

        # -- details on demand ---------------------------------------------------------

        def _show_detail_of(self, flow_id: str | None) -> None:
            view: FlowView | None = None
            if flow_id is not None and flow_id in self.flows:
                view = self.controller.detail(flow_id) or self.flows.get(flow_id)
            elif flow_id is not None:  # an older flow, from the proxy's session file
                view = self._stored_view(flow_id)
            self.detail.show_flow(view, self.clock())

        def full_view(self, view: FlowView) -> FlowView:
            return self.controller.detail(view.id) or view

        def open_decision(self, view: FlowView) -> None:
            full = self.controller.detail(view.id) if view.paused is not None else None
            if full is not None and full.paused is not None:
                view = full
            super().open_decision(view)

        # -- leaving ---------------------------------------------------------------------

        async def action_quit(self) -> None:
            """`q`: an attached screen detaches (the proxy goes on); the screen of its own
            proxy stops it, asking first while flows are paused."""
            if self.own_proxy:
                await super().action_quit()
                return
            self.exit()

        def exit(self, *args, **kwargs) -> None:
            if self.own_proxy and self.gone is None and not self.stopped:
                self._stop_now()
            super().exit(*args, **kwargs)

        def _stop_now(self) -> None:
            self.stopped = True
            try:
                self.controller.stop_proxy()
            except Exception:  # gone already: nothing to stop
                pass

        def action_stop_proxy(self) -> None:
            """`Q`: stop the proxy (confirmed); every screen attached to it closes."""
            paused = len(self._paused_ids)
            extra = (
                f" {paused} paused flow{' gets its' if paused == 1 else 's get their'} "
                "timeout outcome."
                if paused
                else ""
            )

            def done(yes: bool | None) -> None:
                if yes:
                    self._stop_now()
                    super(AttachedApp, self).exit()

            self.push_screen(
                ConfirmPrompt(
                    f"Stop the proxy at {self.controller.address}?{extra}",
                    yes="Stop",
                    no="Keep it",
                    id="stop-proxy",
                ),
                done,
            )

        def get_system_commands(self, screen):
            yield from super().get_system_commands(screen)
            if not self.own_proxy:
                yield SystemCommand("Detach", "Close this screen, the proxy goes on (q)", self.exit)
            for key in keys.ATTACHED:
                yield SystemCommand(
                    key.palette, f"{key.words} ({key.key_text})", self.action_stop_proxy
                )

    app = AttachedApp()
    if remote is not None:
        app.connect(remote)
    return app


def tune_screen_gc() -> None:
    """The screen's share of ``monitor.proxy.tune_gc``: what is alive once Textual is
    imported stays out of the collector's sight, and young collections run every 10,000
    allocations instead of 700. Tens of thousands of rows arrive as snapshots with their
    tuples: with Python's defaults, decoding 50,000 of them spent two thirds of its time in
    the collector (measured: 23 against 8 us a row), and every batch of a busy proxy paid
    collections walking the whole flow list."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def run_attached(path: str, *, own_proxy: bool = False) -> int:
    try:
        remote = Remote(path)
    except AttachError as e:
        print(f"waylay: {e}", file=sys.stderr)
        return EXIT_GONE
    app = make_attached_app(remote, own_proxy=own_proxy)
    app.goes_with_the_terminal = own_proxy
    tune_screen_gc()
    try:
        app.run()
    finally:
        remote.close()
    if app.gone is not None:
        print(f"waylay: the proxy at {path} is gone: {app.gone}", file=sys.stderr)
        return EXIT_GONE
    return 0


class ProxyChild:
    """The proxy process of a screen: ``waylay ARGV --headless --hold`` whose control
    socket's path comes back on a pipe once it accepts."""

    def __init__(self, argv: list[str]) -> None:
        read_fd, write_fd = os.pipe()
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor.cli",
                *argv,
                "--headless",
                "--hold",
                "--screen-child",
                str(write_fd),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            pass_fds=(write_fd,),
            start_new_session=True,  # ctrl+c in the terminal is the screen's, not the proxy's
        )
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as ready:
            self.path = ready.readline().decode().strip()

    def failure(self) -> tuple[int, str]:
        """Exit code and stderr of a proxy that did not start."""
        code = self.proc.wait()
        self.log.seek(0)
        return code or 2, self.log.read()

    def wait(self, screen_code: int) -> None:
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            if screen_code == 0:  # the screen quit: its proxy must not stay behind
                self.proc.terminate()
                self.proc.wait(10)


def run_screen(argv: list[str]) -> int:
    """Plain ``waylay``: the proxy in a child process, this process the screen on it."""
    child = ProxyChild(argv)
    if not child.path:
        code, err = child.failure()
        sys.stderr.write(err)
        return code
    code = run_attached(child.path, own_proxy=True)
    child.wait(code)
    return code
