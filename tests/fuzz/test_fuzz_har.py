"""Fuzzing the HAR writer (monitor/har.py) with flows of random requests and responses:
any flow mitmproxy can hold becomes a HAR entry that is valid JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mitmproxy import flow as mflow
from mitmproxy import http
from mitmproxy.test import tflow

from monitor.har import make_har, write_har
from monitor.record import record_of

from .strategies import examples

header_names = st.sampled_from(
    (
        b"Content-Type",
        b"Cookie",
        b"Set-Cookie",
        b"Authorization",
        b"X-\xff",
        b"Content-Encoding",
        b"Location",
    )
) | st.binary(min_size=1, max_size=8).filter(
    lambda b: b":" not in b and b"\r" not in b and b"\n" not in b
)
header_values = st.sampled_from(
    (
        b"application/json",
        b"text/html; charset=bogus",
        b"image/png",
        b"a=1; b=2; Path=/; Expires=garbage",
        b"gzip",
        b"br",
        b"multipart/form-data; boundary=x",
        b"application/x-www-form-urlencoded",
    )
) | st.binary(max_size=20).filter(lambda b: b"\r" not in b and b"\n" not in b)
headers = st.lists(st.tuples(header_names, header_values), max_size=5)
bodies = st.binary(max_size=64) | st.sampled_from(
    (b'{"a": 1}', b"a=1&b=%ff", b"\x89PNG\r\n\x1a\n", b"\x1f\x8b\x08garbage", "é€".encode())
)


@st.composite
def flows(draw) -> http.HTTPFlow:
    method = draw(st.sampled_from(("GET", "POST", "PUT", "CONNECT", "PROPFIND", "X")))
    scheme = draw(st.sampled_from(("http", "https")))
    host = draw(st.sampled_from(("example.com", "127.0.0.1", "[::1]", "xn--mnchen-3ya.de")))
    path = draw(st.text(max_size=20).map(lambda p: "/" + p))
    flow = tflow.tflow()
    request = flow.request
    request.method = method
    request.scheme = scheme
    request.host = host
    request.path = path
    request.headers = http.Headers(draw(headers))
    request.content = draw(bodies)
    if draw(st.booleans()):
        flow.response = http.Response.make(draw(st.integers(100, 999)), draw(bodies), draw(headers))
        flow.response.reason = draw(st.sampled_from(("OK", "", "Ünknown", "x\x00y")))
    if draw(st.integers(0, 3)) == 0:
        flow.error = mflow.Error(draw(st.text(max_size=20)))
    if draw(st.booleans()):
        record_of(flow).added_headers = draw(
            st.lists(st.sampled_from(("Authorization", "Cookie", "X-\xff")), max_size=2)
        )
    return flow


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz-har")


@examples(2)
@given(st.lists(flows(), max_size=3))
def test_any_flows_make_a_har_that_is_json(folder, flows):
    har = make_har(flows)
    entries = har["log"]["entries"]
    assert len(entries) == len(flows)
    text = json.dumps(har)
    for entry in json.loads(text)["log"]["entries"]:
        assert entry["response"]["content"]["mimeType"] is not None
    path = folder / "out.har"
    assert write_har(flows, path) == len(flows)
    assert json.loads(path.read_text())["log"]["version"] == "1.2"
