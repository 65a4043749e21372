"""``waylay open FILE``: flow files and HAR written by mitmproxy's own mitmdump (a real
proxy subprocess), by waylay, and bad files; the screen under the pilot."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from monitor.open import OpenError, make_open_app, read_flows
from tests.e2e.test_headless import run_cli
from tests.helpers import common, curl, headless, until, wait_for
from tests.sessions.test_save import MITMDUMP

pytestmark = pytest.mark.e2e

SIZE = (150, 40)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def mitmdump_files(tmp_path_factory):
    """A real mitmdump proxy on loopback: three requests, its -w flow file and its HAR."""
    from tests.servers import Upstream

    folder = tmp_path_factory.mktemp("mitmdump")
    flows, har = folder / "mitm.flows", folder / "mitm.har"
    port = free_port()
    with Upstream("plain") as upstream:
        proc = subprocess.Popen(
            [
                MITMDUMP,
                "--listen-host", "127.0.0.1", "-p", str(port),
                "-w", str(flows),
                "--set", f"hardump={har}",
                "--set", f"confdir={folder / 'conf'}",
                "-q",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            wait_for(lambda: listening(port), timeout=30, what="mitmdump listening")
            assert curl(port, upstream.url("/hello")).stdout.endswith("\n200")
            r = curl(port, upstream.url("/echo/json"), "-H", "content-type: application/json",
                     "-d", '{"who": "mitmdump"}')  # fmt: skip
            assert r.stdout.endswith("\n200")
            assert curl(port, upstream.url("/status/404")).stdout.endswith("\n404")
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
    assert har.exists(), err
    return flows, har


async def browse(path: Path, check) -> None:
    app = make_open_app(path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.flows, "the file's flows")
        await check(app, pilot)


def paths(app) -> list[str]:
    return [app.flows[i].path for i in app.table.flow_ids()]


async def three_mitmdump_flows(app, pilot):
    assert paths(app) == ["/hello", "/echo/json", "/status/404"]
    assert app.header.mode == "read-only"
    views = {v.path: v for v in app.flows.values()}
    assert views["/hello"].state == "done" and views["/hello"].status == 200
    assert views["/status/404"].status == 404
    assert views["/echo/json"].method == "POST"
    assert b'"who": "mitmdump"' in views["/echo/json"].request_body
    # filters run on the file's flows
    assert app.set_filter("~c 404") is None
    assert paths(app) == ["/status/404"]
    assert app.set_filter("~m POST") is None
    assert paths(app) == ["/echo/json"]
    assert app.set_filter("hello") is None
    assert paths(app) == ["/hello"]
    assert app.set_filter("") is None
    # details
    app.table.focus()
    await pilot.press("enter")
    await until(pilot, lambda: app.detail.has_class("-open"), "the detail pane")
    assert app.detail.flow_id == app.table.flow_ids()[0]
    # export works; answering does not
    curl_text = app.controller.export_curl(app.table.flow_ids()[1])
    assert curl_text.startswith("curl") and "/echo/json" in curl_text
    assert app.controller.set_breakpoint("~d x") is not None
    # no proxy: replay, duplicate and delete say so and change nothing
    first = app.table.flow_ids()[0]
    assert "read-only" in app.controller.replay(first)
    assert "read-only" in app.controller.send_request(first, {"method": "PUT"})
    assert "read-only" in app.controller.delete_flow(first)
    assert app.controller.event_log() == []
    app.table.focus()
    await pilot.press("d")
    await pilot.pause()
    assert first in app.flows and len(app.flows) == 3


async def test_a_mitmdump_flow_file_opens(mitmdump_files):
    await browse(mitmdump_files[0], three_mitmdump_flows)


async def test_a_mitmproxy_har_opens(mitmdump_files):
    await browse(mitmdump_files[1], three_mitmdump_flows)


async def test_waylay_har_and_flow_file_open_with_the_rule_trace(settings, upstream, tmp_path):
    har, saved = tmp_path / "waylay.har", tmp_path / "waylay.flows"
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text(
        'version = 1\n[[rule]]\nid = "no-ads"\nurls = ["*://127.0.0.1/ads*"]\naction = "cancel"\n'
    )
    with headless(*common(settings), "--har", str(har), "--save", str(saved)) as w:
        assert curl(w.port, upstream.url("/hello")).stdout.endswith("\n200")
        curl(w.port, upstream.url("/ads/x"))
        w.wait_lines(2)
        assert w.terminate() == 0

    async def check_har(app, pilot):
        assert paths(app) == ["/hello", "/ads/x"]
        assert app.flows[app.table.flow_ids()[0]].response_body == b"hello from plain\n"

    async def check_flows(app, pilot):
        assert paths(app) == ["/hello", "/ads/x"]
        ads = app.flows[app.table.flow_ids()[1]]
        assert ads.state == "cancelled" and ads.rule_id == "no-ads"
        assert [(t.rule_id, t.decided) for t in ads.trace] == [("no-ads", True)]

    await browse(har, check_har)
    await browse(saved, check_flows)


async def test_save_from_an_opened_file_round_trips(mitmdump_files, tmp_path):
    out = tmp_path / "again.flows"

    async def check(app, pilot):
        assert app.set_filter("~c 200") is None
        assert app.controller.save_flows(str(out), app.table.flow_ids()) == 2

    await browse(mitmdump_files[0], check)
    assert [f.request.path for f in read_flows(out)[0]] == ["/hello", "/echo/json"]


def test_a_cut_off_flow_file_opens_what_is_whole_and_says_so(mitmdump_files, tmp_path):
    data = mitmdump_files[0].read_bytes()
    cut = tmp_path / "cut.flows"
    cut.write_bytes(data[: len(data) - 50])
    flows, warnings = read_flows(cut)
    assert [f.request.path for f in flows] == ["/hello", "/echo/json"]
    assert warnings == [
        "the file ends in the middle of a flow (a crash while writing?); 2 flows read"
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello world", "neither a mitmproxy flow file nor HAR"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "neither a mitmproxy flow file nor HAR"),
        (b"", "holds no flows"),
        (b'{"log": ', "not JSON (line 1 column 9: Expecting value)"),
        (b'{"a": 1}', 'JSON, but not HAR (no "log" object)'),
        (b'{"log": {"version": "1.2"}}', 'HAR without a "log.entries" list'),
        (
            b'{"log": {"entries": [{"request": {}}]}}',
            "HAR entry 1 cannot be read: missing 'startedDateTime'",
        ),
        (b"5:hello,", "neither a mitmproxy flow file nor HAR"),
    ],
)
def test_a_bad_file_is_one_line_and_exit_2(tmp_path, content, message):
    bad = tmp_path / "bad"
    bad.write_bytes(content)
    r = run_cli("open", str(bad))
    assert r.returncode == 2
    assert r.stderr == f"waylay: {bad}: {message}\n"
    assert r.stdout == ""


def test_a_missing_file_or_a_folder_is_one_line_and_exit_2(tmp_path):
    r = run_cli("open", str(tmp_path / "nope.har"))
    assert (r.returncode, r.stderr) == (
        2,
        f"waylay: {tmp_path / 'nope.har'}: No such file or directory\n",
    )
    r = run_cli("open", str(tmp_path))
    assert (r.returncode, r.stderr) == (2, f"waylay: {tmp_path}: is a folder, not a file\n")


def test_make_open_app_raises_for_a_bad_file(tmp_path):
    (tmp_path / "x.har").write_text(json.dumps({"log": {"entries": "no"}}))
    with pytest.raises(OpenError):
        make_open_app(tmp_path / "x.har")


def _entry(url: str, version: str, headers: list, status: int, **response) -> dict:
    return {
        "startedDateTime": "2026-11-27T10:00:00.000Z",
        "time": 12.5,
        "request": {"method": "GET", "url": url, "httpVersion": version, "headers": headers},
        "response": {
            "status": status,
            "httpVersion": version,
            "headers": [],
            "content": {"size": 0, "mimeType": "x-unknown"},
            **response,
        },
    }


@pytest.mark.parametrize("version", ["http/2.0", "HTTP/2", "h2", ""])
def test_har_of_a_browser_http2_pseudo_headers_and_status_0(tmp_path, version):
    """What browsers' HARs hold and mitmproxy's reader takes literally: HTTP/2's version
    spelled several ways, pseudo-headers among the request headers (Chrome), status 0
    for a request that got no response. (tests/browser makes one with Chromium.)"""
    pseudo = [
        {"name": ":authority", "value": "example.test:8443"},
        {"name": ":method", "value": "GET"},
        {"name": ":path", "value": "/a"},
        {"name": ":scheme", "value": "https"},
        {"name": "accept", "value": "*/*"},
    ]
    har = {
        "log": {
            "entries": [
                _entry("https://example.test:8443/a", version, pseudo, 200),
                _entry(
                    "https://example.test:8443/b",
                    version,
                    pseudo,
                    0,
                    statusText="",
                    _error="net::ERR_CONNECTION_RESET",
                ),
            ]
        }
    }
    path = tmp_path / "browser.har"
    path.write_text(json.dumps(har))
    (ok, failed), warnings = read_flows(path)
    assert warnings == []
    for flow in (ok, failed):
        assert flow.request.is_http2 and flow.request.http_version == "HTTP/2.0"
        names = list(flow.request.headers.keys())
        assert "accept" in names and not [n for n in names if n.startswith(":")]
        assert flow.request.host_header == "example.test:8443"
    assert ok.response.status_code == 200 and ok.error is None
    if version:
        assert ok.response.http_version == "HTTP/2.0"
    assert failed.response is None and failed.error.msg == "net::ERR_CONNECTION_RESET"
