"""The exports through the real controller of a running session: a real request through
waylay's proxy, then curl (mitmproxy's exporter on the proxy's loop, where waylay loads no
Export addon), HAR and the rules, as the export menu asks for them."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from monitor.session import Session
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def session(settings):
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text(
        'version = 1\n[[rule]]\nid = "no-ads"\nurls = ["*://*.ads.example/*"]\naction = "cancel"\n'
        '[[rule]]\nid = "login"\nevent = "auth"\naction = "cancel"\n'
    )
    s = Session(settings)
    _, s.port = s.start()
    yield s
    s.stop()


def test_curl_har_and_rules_from_a_live_session(session, upstream, tmp_path):
    with httpx.Client(proxy=f"http://127.0.0.1:{session.port}", timeout=20) as client:
        response = client.post(
            upstream.url("/echo/submit?x=1"),
            content=b'{"a": 1}\n',
            headers={"Content-Type": "application/json", "X-Trace": "t-1"},
        )
    assert response.status_code == 200
    [flow_id] = wait_for(lambda: list(session.recorder.flows), what="the recorded flow")
    controller = session.controller

    command = controller.export_curl(flow_id)
    before = len(upstream.requests)
    result = subprocess.run(["sh", "-c", command + " -sS -o /dev/null"], capture_output=True)
    assert result.returncode == 0, result.stderr
    replayed = upstream.requests[before]
    original = upstream.requests[before - 1]
    assert (replayed["method"], replayed["path"], replayed["body"]) == (
        original["method"],
        original["path"],
        original["body"],
    )
    assert replayed["headers"]["x-trace"] == "t-1"
    assert replayed["headers"]["content-type"] == "application/json"

    har = tmp_path / "flows.har"
    assert controller.export_har(str(har), [flow_id]) == 1
    entry = json.loads(har.read_text())["log"]["entries"][0]
    assert entry["request"]["url"] == upstream.url("/echo/submit?x=1")

    text, warnings = controller.export_rules("dnr")
    assert json.loads(text)[0]["condition"]["urlFilter"] == "||ads.example^"
    assert warnings == ["login: left out: auth events have no declarativeNetRequest equivalent"]
