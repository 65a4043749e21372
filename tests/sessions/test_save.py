"""``--save FILE`` and ``w``: flows in mitmproxy's own format, read back by the installed
mitmdump (a real subprocess) and by mitmproxy's reader."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.io import FlowReader

from monitor.app import make_app
from tests.e2e.test_headless import run_cli
from tests.helpers import common, curl, headless, headless_to_file, until, wait_for

pytestmark = pytest.mark.e2e

MITMDUMP = str(Path(sys.executable).with_name("mitmdump"))


def read_flows(path: Path) -> list[http.HTTPFlow]:
    with open(path, "rb") as fo:
        return list(FlowReader(fo).stream())


def mitmdump_reads(path: Path) -> str:
    """What the installed mitmdump prints reading ``path`` (no proxy, exits when done)."""
    assert Path(MITMDUMP).exists() or shutil.which("mitmdump")
    r = subprocess.run(
        [MITMDUMP, "-n", "-r", str(path), "--flow-detail", "1", "--set", "termlog_verbosity=warn"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_headless_save_streams_each_finished_flow_and_mitmdump_reads_it(
    settings, upstream, tls_upstream, waylay_ca, tmp_path
):
    saved = tmp_path / "session.flows"
    rules = settings.rules
    rules.parent.mkdir(parents=True, exist_ok=True)
    rules.write_text(
        'version = 1\n[[rule]]\nid = "no-ads"\nurls = ["*://127.0.0.1/ads*"]\naction = "cancel"\n'
    )
    with headless(*common(settings), "--save", str(saved)) as w:
        assert curl(w.port, upstream.url("/hello")).stdout.endswith("\n200")
        # streamed: on disk while waylay is still running
        wait_for(lambda: saved.exists() and len(read_flows(saved)) == 1, what="the first flow")
        r = curl(w.port, tls_upstream.url("/status/404"), cacert=waylay_ca)
        assert r.stdout.endswith("\n404")
        curl(w.port, upstream.url("/ads/banner"))
        curl(w.port, upstream.url("/echo/post"), "-d", "name=waylay")
        wait_for(lambda: len(read_flows(saved)) == 4, what="four flows on disk")
        out = mitmdump_reads(saved)  # while waylay still writes to it
        assert w.terminate() == 0
    flows = read_flows(saved)
    assert [f.request.path for f in flows] == ["/hello", "/status/404", "/ads/banner", "/echo/post"]
    assert flows[0].response.status_code == 200
    assert flows[0].response.content == b"hello from plain\n"
    assert flows[1].request.scheme == "https" and flows[1].response.status_code == 404
    assert flows[2].response is None or flows[2].error is not None
    assert flows[2].metadata["waylay"]["rule_id"] == "no-ads"
    assert flows[3].request.content == b"name=waylay"
    assert (
        '"name=waylay"' in flows[3].response.get_text()
        or "name=waylay" in flows[3].response.get_text()
    )
    for path in ("/hello", "/status/404", "/ads/banner", "/echo/post"):
        assert path in out, out
    assert "200 OK" in out and "404" in out


def test_save_to_a_missing_folder_is_one_line_and_exit_2(settings, tmp_path):
    r = run_cli(*common(settings), "--headless", "--save", str(tmp_path / "nope" / "x.flows"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0
    assert "--save" in r.stderr and "does not exist" in r.stderr


def test_save_to_a_folder_is_one_line_and_exit_2(settings, tmp_path):
    r = run_cli(*common(settings), "--headless", "--save", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.strip() == f"waylay: --save {tmp_path}: a directory, expected a file name"


def test_save_where_no_file_can_be_made_is_one_line_and_exit_2(settings):
    # /proc/1 is a folder where nobody, root included, can create a file
    r = run_cli(*common(settings), "--headless", "--listen-port", "0", "--save", "/proc/1/x.flows")
    assert r.returncode == 2
    assert r.stderr.strip() == "waylay: --save /proc/1/x.flows: cannot write in /proc/1"


def test_a_full_disk_stops_saving_with_one_message_and_the_proxy_goes_on(
    settings, upstream, tmp_path
):
    err_path = tmp_path / "stderr"
    proc, port = headless_to_file(
        err_path, *common(settings), "--save", "/dev/full", stdout=subprocess.PIPE
    )
    try:
        for path in ("/one", "/two"):
            assert curl(port, upstream.url(path)).stdout.endswith("\n200")
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out.splitlines()[1].endswith("/two 200"), out
    text = err_path.read_text()
    assert text.count("no more flows are saved") == 1, text
    assert "--save /dev/full: No space left on device" in text


async def test_w_saves_all_or_the_listed_flows(settings, upstream, tmp_path, pool, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app, session = make_app(settings)
    _, port = session.start()
    async with app.run_test(size=(150, 40)) as pilot:

        def traffic():
            for path in ("/a", "/b", "/status/500"):
                curl(port, upstream.url(path))

        await asyncio.get_running_loop().run_in_executor(pool, traffic)
        await until(
            pilot,
            lambda: len(app.flows) == 3 and all(v.finished for v in app.flows.values()),
            "three finished rows",
        )
        # all flows, to the proposed file in the current folder
        await pilot.press("w")
        await until(pilot, lambda: app.screen.id == "save-flows", "the save menu")
        proposed = Path(app.screen.query_one("#save-path").value)
        assert proposed.parent == tmp_path and proposed.suffix == ".flows"
        await pilot.press("enter")
        await until(pilot, lambda: app.screen.id != "save-flows", "the menu to close")
        assert [f.request.path for f in read_flows(proposed)] == ["/a", "/b", "/status/500"]
        assert "/status/500" in mitmdump_reads(proposed)

        # filtered: the listed flows are the first choice
        assert app.set_filter("~c 500") is None
        await pilot.press("w")
        await until(pilot, lambda: app.screen.id == "save-flows", "the save menu")
        field = app.screen.query_one("#save-path")
        field.value = str(tmp_path / "errors.flows")
        await pilot.press("enter")
        await until(pilot, lambda: (tmp_path / "errors.flows").exists(), "the listed flows")
        assert [f.request.path for f in read_flows(tmp_path / "errors.flows")] == ["/status/500"]

        # a folder that does not exist: said in the menu, nothing written, the menu stays
        await until(pilot, lambda: app.screen.id != "save-flows", "the menu to close")
        await pilot.press("w")
        await until(pilot, lambda: app.screen.id == "save-flows", "the save menu")
        app.screen.query_one("#save-path").value = str(tmp_path / "nope" / "x.flows")
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.id == "save-flows"
        assert "does not exist" in str(app.screen.query_one("#save-status").content)
        assert not (tmp_path / "nope").exists()
