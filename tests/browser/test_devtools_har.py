"""A HAR as Chromium's DevTools saves it ("Save all as HAR"), made from a real page load
through waylay over the DevTools protocol, opens in ``waylay open``: every entry a row,
with its method, URL, status, protocol and bodies; HTTP/2's pseudo-headers (which
DevTools lists among the request headers) are not headers; a request that got no
response (cancelled by a rule: status 0 in the HAR) is an error, not a status 0."""

from __future__ import annotations

import base64
import json

import pytest

from monitor.open import make_open_app, read_flows
from tests.browser.devtools import DevToolsChromium, record_page
from tests.browser.site import BODIES, PNG
from tests.browser.test_chromium import CANCELS
from tests.helpers import until

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("which", "page", "last", "rules"),
    [
        ("https_site", "/", "/r/done", ""),
        ("h2_site", "/cancel.html", "/r/result", CANCELS),
    ],
)
async def test_a_har_saved_by_chromium_devtools_opens(
    request, which, page, last, rules, waylay, browser_home, tmp_path
):
    site = request.getfixturevalue(which)
    session = waylay(rules)
    with DevToolsChromium(home=browser_home, proxy_port=session.port) as chrome:
        har = record_page(chrome, site.origin + page, until=last)
    path = tmp_path / "devtools.har"
    path.write_text(json.dumps(har, indent=2))
    entries = har["log"]["entries"]
    assert len(entries) >= (30 if which == "https_site" else 7)

    flows, warnings = read_flows(path)
    assert warnings == []
    assert len(flows) == len(entries)
    for flow, entry in zip(flows, entries, strict=True):
        sent, got = entry["request"], entry["response"]
        assert flow.request.method == sent["method"]
        assert flow.request.url == sent["url"], sent["url"]
        assert not [k for k in flow.request.headers if k.startswith(":")]
        if which == "h2_site":
            assert any(h["name"] == ":authority" for h in sent["headers"])  # as DevTools
            assert flow.request.is_http2 and flow.request.http_version == "HTTP/2.0"
            assert flow.request.host_header == f"localhost:{site.port}"
        if got["status"] == 0:  # no response: cancelled by waylay
            assert flow.response is None and flow.error is not None, sent["url"]
            continue
        assert flow.response.status_code == got["status"]
        if "text" in got["content"]:
            body = got["content"]["text"]
            expected = base64.b64decode(body) if got["content"].get("encoding") else body.encode()
            assert flow.response.content == expected, sent["url"]

    by_path = {f.request.path.split("?")[0]: f for f in flows}
    if which == "https_site":
        assert by_path["/r/fetch-post"].request.content == b'{"a": 1}'
        assert by_path["/r/img.png"].response.content == PNG
        assert by_path["/r/style.css"].response.content == BODIES["/r/style.css"][1]
    else:
        cancelled = {p for p, f in by_path.items() if f.error is not None}
        assert {"/r/blocked-get", "/r/blocked-post", "/r/blocked.png"} <= cancelled

    # the screen: a row for each entry, details with the body
    app = make_open_app(path)
    async with app.run_test(size=(150, 40)) as pilot:
        await until(pilot, lambda: app.table.row_count == len(entries), "every entry a row")
        await pilot.press("home")
        await pilot.press("enter")
        await until(pilot, lambda: app.detail.has_class("-open"), "details open")
        await until(pilot, lambda: app.detail._view is not None, "the first entry's details")
        assert app.detail._view.url == entries[0]["request"]["url"]
