"""15.7 and issue 16's option checks: every bad option value is one line on stderr and
exit 2 at start, the allowed range is in --help; the proxy password can come from the
environment or a file; headless warns about an exposed secrets.toml."""

from __future__ import annotations

import math
import os
import socket

import pytest

from tests.faults.common import one_line_error, run_cli
from tests.helpers import common, curl, headless

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--ask-timeout", "inf"], "--ask-timeout"),
        (["--ask-timeout", "nan"], "--ask-timeout"),
        (["--ask-timeout", "-1"], "--ask-timeout"),
        (["--ask-timeout", "0"], "--ask-timeout"),
        (["--ask-timeout", "1e300"], "--ask-timeout"),
        (["--ask-timeout", "soon"], "--ask-timeout"),
        (["--max-body-memory", "-1"], "--max-body-memory"),
        (["--max-body-memory", "-5m"], "--max-body-memory"),
        (["--max-flows", "0"], "--max-flows"),
        (["--max-flows", "-3"], "--max-flows"),
        (["--listen-port", "70000"], "--listen-port"),
        (["--listen-port", "-1"], "--listen-port"),
        (["--mode", "upstream:"], "upstream needs a URL"),
        (["--mode", "reverse:"], "reverse needs a URL"),
        (["--mode", "transparent"], "--mode"),
        (["--proxy-auth", ":"], "--proxy-auth"),
        (["--proxy-auth", "user:"], "--proxy-auth"),
        (["--proxy-auth", ":pass"], "--proxy-auth"),
        (["--max-header-size", "0"], "--max-header-size"),
        (["--idle-timeout", "inf"], "--idle-timeout"),
        (["--read-timeout", "-2"], "--read-timeout"),
        (["--connect-timeout", "nan"], "--connect-timeout"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(settings, args, says):
    line = one_line_error(run_cli("--headless", "--listen-port", "0", *common(settings), *args))
    assert says in line


def test_help_states_the_ranges():
    out = run_cli("--help").stdout
    flat = " ".join(out.split())
    assert "(0, 604800], or none to wait for ever" in flat
    assert "0-65535" in flat
    assert "at least 1" in flat
    assert "1k-64m" in flat


def test_confdir_that_is_a_file(settings, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    args = ["--headless", "--rules", str(settings.rules), "--confdir", str(f)]
    assert "not a directory" in one_line_error(run_cli(*args))


def test_confdir_that_cannot_be_created(settings, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    args = ["--headless", "--rules", str(settings.rules), "--confdir", str(f / "sub")]
    assert "--confdir" in one_line_error(run_cli(*args))


@pytest.mark.parametrize("content", [None, "not a certificate", "dir"])
def test_upstream_ca_that_is_not_a_readable_pem(settings, tmp_path, content):
    path = tmp_path / "ca.pem"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    args = ["--headless", "--confdir", str(settings.confdir), "--upstream-ca", str(path)]
    assert "--upstream-ca" in one_line_error(run_cli(*args))


def test_a_failed_mode_listener_names_its_own_address(settings):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_cli(
            "--headless",
            "--listen-port",
            "0",
            *common(settings),
            "--mode",
            f"regular@127.0.0.1:{port}",
        )
    line = one_line_error(r)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "address already in use" in line


def test_ask_timeout_none_waits_for_ever_and_says_so():
    from monitor.cli import main_parser
    from widgets.format import paused_label
    from widgets.model import PausedEvent

    args = main_parser().parse_args(["--ask-timeout", "none"])
    assert args.ask_timeout is None
    paused = PausedEvent(flow_id="f", event="request", since=0.0, deadline=math.inf, url="u")
    assert paused_label(paused, 12.0) == "⏸ request 12s, no time limit"


async def test_ask_timeout_none_in_the_pauses():
    import asyncio

    from monitor.pauses import Pauses
    from widgets.model import Answer

    pauses = Pauses(timeout=None, headless=False)
    task = asyncio.ensure_future(pauses.ask("f", "request", url="http://x/"))
    while pauses.info("f") is None:
        await asyncio.sleep(0.01)
    assert pauses.info("f").deadline == math.inf
    assert pauses.answer("f", "request", Answer(action="continue"))
    assert (await task).action == "continue"


@pytest.mark.parametrize("how", ["env", "file"])
def test_proxy_password_from_env_or_file(settings, upstream, tmp_path, how):
    env, args = {}, []
    if how == "env":
        env["WAYLAY_PROXY_AUTH"] = "me:s3cret"
    else:
        f = tmp_path / "auth"
        f.write_text("me:s3cret\n")
        args = ["--proxy-auth-file", str(f)]
    with headless(*common(settings), *args, env=env) as w:
        assert curl(w.port, upstream.url("/")).stdout.endswith("\n407")
        r = curl(w.port, upstream.url("/"), "--proxy-user", "me:s3cret")
        assert r.stdout.endswith("\n200")
        cmdline = open(f"/proc/{w.proc.pid}/cmdline", "rb").read()
        assert b"s3cret" not in cmdline


def test_proxy_auth_file_missing(settings, tmp_path):
    r = run_cli("--headless", *common(settings), "--proxy-auth-file", str(tmp_path / "nope"))
    assert "--proxy-auth-file" in one_line_error(r)


@pytest.mark.parametrize("problem", ["mode", "symlink"])
def test_headless_warns_about_an_exposed_secrets_file(settings, tmp_path, problem):
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text("version = 1\n")
    secrets = settings.rules.parent / "secrets.toml"
    if problem == "mode":
        secrets.write_text('login = "x"\n')
        os.chmod(secrets, 0o644)
    else:
        real = tmp_path / "real-secrets.toml"
        real.write_text('login = "x"\n')
        os.chmod(real, 0o600)
        secrets.symlink_to(real)
    with headless(*common(settings)) as w:
        head = w.stderr_head
    assert "warning" in head and str(secrets) in head
    assert ("can be read by other users" if problem == "mode" else "symbolic link") in head
    assert '"x"' not in head
