"""Flows out: HAR 1.2 (monitor/har.py, mitmproxy's writer) and a curl command for one flow
(monitor/exports.py, mitmproxy's exporter) that, run with the real ``curl``, sends the
recorded request again."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import jsonschema
import pytest
from mitmproxy import http
from mitmproxy.test import tflow, tutils

from monitor.exports import curl_command
from monitor.har import write_har
from monitor.record import record_of

# HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/): the required fields
NAME_VALUES = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "value"],
        "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
    },
}
HAR_ENTRY = {
    "type": "object",
    "required": ["startedDateTime", "time", "request", "response", "cache", "timings"],
    "properties": {
        "startedDateTime": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"},
        "time": {"type": "number", "minimum": 0},
        "request": {
            "type": "object",
            "required": [
                "method",
                "url",
                "httpVersion",
                "cookies",
                "headers",
                "queryString",
                "headersSize",
                "bodySize",
            ],
            "properties": {"headers": NAME_VALUES, "queryString": NAME_VALUES},
        },
        "response": {
            "type": "object",
            "required": [
                "status",
                "statusText",
                "httpVersion",
                "cookies",
                "headers",
                "content",
                "redirectURL",
                "headersSize",
                "bodySize",
            ],
            "properties": {
                "status": {"type": "integer"},
                "headers": NAME_VALUES,
                "content": {"type": "object", "required": ["size", "mimeType"]},
            },
        },
        "cache": {"type": "object"},
        "timings": {
            "type": "object",
            "required": ["send", "wait", "receive"],
            "properties": {
                k: {"type": "number", "minimum": -1} for k in ("send", "wait", "receive")
            },
        },
    },
}
HAR = {
    "type": "object",
    "required": ["log"],
    "properties": {
        "log": {
            "type": "object",
            "required": ["version", "creator", "entries"],
            "properties": {
                "version": {"const": "1.2"},
                "creator": {"type": "object", "required": ["name", "version"]},
                "entries": {"type": "array"},
            },
        }
    },
}

SECRET = "s3cr3t-passw0rd"


def completed_flows() -> list[http.HTTPFlow]:
    flows = []
    for index, (method, path) in enumerate(
        [("GET", "/a?x=1"), ("POST", "/submit"), ("PUT", "/b"), ("GET", "/private")]
    ):
        flow = tflow.tflow(resp=True)
        flow.request.method = method
        flow.request.path = path
        flow.request.content = f"body {index}".encode()
        flows.append(flow)
    credentials = base64.b64encode(f"alice:{SECRET}".encode()).decode()
    flows[-1].request.headers["Authorization"] = f"Basic {credentials}"
    record_of(flows[-1]).added("Authorization")
    return flows


def test_har_is_har_1_2_holds_every_flow_and_no_secret(tmp_path):
    flows = completed_flows()
    cancelled = tflow.tflow(err=True)
    cancelled.request.path = "/cancelled"
    path = tmp_path / "flows.har"
    assert write_har([*flows, cancelled], path) == 5
    text = path.read_text()
    har = json.loads(text)
    jsonschema.validate(har, HAR)
    entries = har["log"]["entries"]
    assert [e["request"]["url"] for e in entries] == [f.request.url for f in [*flows, cancelled]]
    for entry in entries:  # the cancelled one too: content needs size and mimeType
        jsonschema.validate(entry, HAR_ENTRY)
    assert SECRET not in text
    assert base64.b64encode(f"alice:{SECRET}".encode()).decode() not in text


# -- curl ------------------------------------------------------------------------------------


def flow_to(upstream, method: str, path: str, headers: dict[str, str], body: bytes):
    request = tutils.treq(
        method=method.encode(),
        host="127.0.0.1",
        port=upstream.port,
        path=path.encode(),
        headers=http.Headers(
            [(k.encode(), v.encode()) for k, v in headers.items()]
            + [(b"host", f"127.0.0.1:{upstream.port}".encode())]
        ),
        content=body,
    )
    return tflow.tflow(req=request)


CASES = [
    ("GET", "/echo/plain?q=1&r=a%20b", {"X-Custom": "value with spaces"}, b""),
    (
        "POST",
        "/echo/form",
        {"Content-Type": "application/json", "User-Agent": "waylay-test/1"},
        b'{"a": 1,\n "quote": "it\'s \\"fine\\"",\n "tab": "\t"}\n',
    ),
    ("PUT", "/echo/at", {"Content-Type": "text/plain"}, b"@not-a-file\n\n"),
    ("DELETE", "/echo/x", {"Accept": "application/json", "Cookie": "a=1; b=2"}, b""),
    ("PATCH", "/echo/unicode", {"Content-Type": "text/plain; charset=utf-8"}, "grüße ✓".encode()),
]


@pytest.mark.parametrize(("method", "path", "headers", "body"), CASES)
def test_the_curl_command_sends_the_same_request(upstream, method, path, headers, body):
    assert shutil.which("curl"), "these tests run the real curl binary"
    flow = flow_to(upstream, method, path, headers, body)
    command = curl_command(flow)
    assert command.startswith("curl ")
    result = subprocess.run(
        ["sh", "-c", command + " -sS -o /dev/null"], capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    seen = upstream.requests[-1]
    assert seen["method"] == method
    assert seen["path"] == path
    assert seen["body"].encode() == body
    for name, value in headers.items():
        assert seen["headers"][name.lower()] == value


def test_curl_refuses_what_it_cannot_reproduce():
    binary = tflow.tflow()
    binary.request.content = b"\x00\x01\xff"
    with pytest.raises(ValueError, match="not UTF-8|NUL"):
        curl_command(binary)
    with pytest.raises(ValueError, match="only HTTP"):
        curl_command(tflow.ttcpflow())  # type: ignore[arg-type]


def test_curl_works_inside_waylays_proxy_which_lacks_the_export_addon():
    """waylay's master loads no Export addon, so ctx.options has no
    export_preserve_original_ip; the exporter still works and ctx.options is left alone."""
    from mitmproxy import ctx
    from mitmproxy.test import taddons

    with taddons.context() as tctx:
        assert "export_preserve_original_ip" not in tctx.options
        before = ctx.options
        assert curl_command(tflow.tflow()).startswith("curl ")
        assert ctx.options is before


def test_the_curl_command_goes_where_the_request_went_whatever_its_host_header(upstream):
    """A request to the upstream that said ``Host: elsewhere.example`` is exported to the
    upstream (its destination), with the Host header kept as it was sent."""
    flow = flow_to(upstream, "GET", "/echo/spoofed", {}, b"")
    flow.request.headers["host"] = "elsewhere.example"
    command = curl_command(flow)
    assert f"http://127.0.0.1:{upstream.port}/echo/spoofed" in command
    assert "http://elsewhere.example/" not in command
    result = subprocess.run(
        ["sh", "-c", command + " -sS -o /dev/null"], capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    seen = upstream.requests[-1]
    assert seen["path"] == "/echo/spoofed"
    assert seen["headers"]["host"] == "elsewhere.example"
