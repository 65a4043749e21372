"""A real browser through waylay: Debian's headless Chromium, waylay's CA trusted in an
NSS database (the README's set-up), the test site of tests/browser/site.py.

- Every subresource of the page passes and waylay gives it the resource type Chrome
  itself gives it (read with a DNR extension that stamps each request with its type).
- A cancel on a reused keep-alive connection holds: Chromium retries, nothing reaches the
  server, one row per cancelled request.
- The DNR export, loaded as an unpacked MV3 extension into Chromium without waylay,
  blocks, allows and redirects exactly what waylay does with the same rules file.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest

from monitor.record import flow_type, record_of
from policies import dnr
from tests.browser.conftest import open_page
from tests.browser.extensions import dnr_extension, types_extension
from tests.browser.site import EXPECTED, SECURE_ONLY
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

# Without Sec-Fetch-Dest (plain HTTP) these cannot be told apart from another request
# that looks the same; waylay's guess differs from Chrome's (README: "Resource types").
# A <script> without extension and an HTML <object> look like a fetch and an iframe too,
# but the page that names them (their Referer) tells, and waylay saw it.
HTTP_GUESSES = {
    "/r/beacon": "xmlhttprequest",  # a sendBeacon text POST looks like a fetch POST
    "/r/beacon-form": "xmlhttprequest",
}
CHROME_TO_WAYLAY = {"csp_report": "ping"}


def site_flows(session, site, ws_port=None):
    ports = {site.port, ws_port}
    return [
        f
        for f in session.recorder.flows.values()
        if f.request.method != "CONNECT" and f.request.port in ports
    ]


@pytest.mark.parametrize("which", ["https_site", "http_site"])
def test_every_subresource_passes_with_the_type_chrome_gives_it(
    request, which, waylay, browser_home, tmp_path, ws_echo
):
    site = request.getfixturevalue(which)
    secure = which == "https_site"
    session = waylay()
    open_page(
        site.origin + "/",
        browser_home,
        proxy_port=session.port,
        extensions=[types_extension(tmp_path / "types")],
        until=lambda: "/r/done" in site.paths(),
    )
    flows = wait_for(
        lambda: (
            [f for f in site_flows(session, site, ws_echo.port) if f.response or f.websocket]
            if all(f.response for f in site_flows(session, site, ws_echo.port))
            else None
        ),
        what="every flow of the page answered",
    )
    wanted = {p for p in EXPECTED if secure or p not in SECURE_ONLY}
    seen = {f.request.path.split("?")[0] for f in flows}
    assert wanted <= seen, f"missing: {sorted(wanted - seen)}"
    for f in flows:  # all passed: answered by the site, nothing cancelled
        assert record_of(f).state is None and f.error is None, f
        assert f.response.status_code in (200, 206, 101), f
    assert wanted - {"/r/ws"} <= site.paths()

    by_path: dict[str, tuple[str, str]] = {}
    for f in flows:
        path = f.request.path.split("?")[0]
        chrome = f.request.headers.get("x-chrome-type")
        assert chrome, f"Chrome's type extension did not stamp {path}"
        by_path.setdefault(path, (CHROME_TO_WAYLAY.get(chrome, chrome), flow_type(f)))
    for path, expected in EXPECTED.items():
        if path in by_path:
            assert by_path[path][0] == expected, (path, by_path[path])  # the site's list
    wrong = {p: w for p, (c, w) in by_path.items() if c != w}
    agree = len(by_path) - len(wrong)
    print(f"\n{which}: {agree} of {len(by_path)} requests typed as Chrome types them")
    if secure:
        assert wrong == {}, wrong
    else:  # every other request agrees (38 the page loads, and a favicon when asked)
        assert wrong.items() <= HTTP_GUESSES.items(), wrong
        assert agree >= 36, f"{agree} of {len(by_path)}: {wrong}"  # issue 12's target


CANCELS = "".join(
    f'[[rule]]\nid = "{name}"\nurls = ["*://*/r/{name}*"]\naction = "cancel"\ntimes = 1\n'
    for name in ("blocked-get", "blocked-post", "blocked.png")
)


@pytest.mark.parametrize("which", ["plain_site", "https_site", "h2_site"])
def test_a_cancel_on_a_reused_connection_holds(request, which, waylay, browser_home):
    """`times = 1` cancels of a fetch GET, a fetch POST and an image, each sent on a
    keep-alive connection the page just used: Chromium takes the closed connection for a
    stale one and sends the request again; the retry is part of the same cancel."""
    site = request.getfixturevalue(which)
    session = waylay(CANCELS)
    open_page(
        site.origin + "/cancel.html",
        browser_home,
        proxy_port=session.port,
        until=lambda: "/r/result" in site.paths(),
    )
    result = next(r for r in site.requests if r["path"] == "/r/result")
    assert parse_qs(result["query"]) == {"get": ["failed"], "post": ["failed"], "img": ["failed"]}
    flows = site_flows(session, site)
    assert not {"/r/blocked-get", "/r/blocked-post", "/r/blocked.png"} & site.paths()
    rows = [f for f in flows if "/r/blocked" in f.request.path]
    assert sorted(f.request.path for f in rows) == [
        "/r/blocked-get",
        "/r/blocked-post",
        "/r/blocked.png",
    ], "one row per cancelled request"
    assert all(record_of(f).state == "cancelled" for f in rows)
    retries = sum(record_of(f).retries for f in rows)
    print(f"\n{which}: 3 cancels held; Chromium retried {retries} time(s), all absorbed")
    if which == "h2_site":  # a stream reset, not a closed connection: nothing to retry
        assert {f.request.http_version for f in flows} == {"HTTP/2.0"}
    else:
        assert retries >= 1, "Chromium did not retry: the test proved nothing"


DNR_RULES = """
[[rule]]
id = "no-images"
urls = ["*://*/r/img*"]
types = ["image"]
action = "cancel"

[[rule]]
id = "no-beacons"
types = ["ping"]
action = "cancel"

[[rule]]
id = "no-frame-parts"
urls = ["*://*/r/frame-*"]
action = "cancel"

[[rule]]
id = "but-frame-style"
urls = ["*://*/r/frame-style.css"]
action = "continue"
priority = 2

[[rule]]
id = "script-v2"
regex = '^(https://localhost:\\d+/r/script\\.js)$'
types = ["script"]
action = "rewrite"
url = '\\1?v=2'

[[rule]]
id = "style-moved"
urls = ["*://*/r/style.css"]
action = "redirect"
url = "{origin}/r/style-noext?moved=1"

[[rule]]
id = "no-posted-fetch"
urls = ["*://*/r/fetch-*"]
methods = ["POST"]
action = "cancel"

[[rule]]
id = "no-json-modules"
urls = ["*://*/r/data.json"]
types = ["script"]
action = "cancel"
"""


def test_the_dnr_export_in_chromium_agrees_with_waylay(
    https_site, waylay, browser_home, tmp_path, settings
):
    site = https_site
    rules_text = DNR_RULES.replace("{origin}", site.origin)
    session = waylay(rules_text)
    open_page(
        site.origin + "/",
        browser_home,
        proxy_port=session.port,
        until=lambda: "/r/done" in site.paths(),
    )
    through_waylay = {_target(r) for r in site.requests}
    exported = dnr.export_rules(session.rules.rules)
    assert exported.left_out == [], exported.left_out
    site.requests.clear()
    extension = dnr_extension(tmp_path / "export", exported.rules)
    open_page(
        site.origin + "/",
        browser_home,
        extensions=[extension],
        until=lambda: "/r/done" in site.paths(),
    )
    with_dnr = {_target(r) for r in site.requests}
    # what the rules did, the same way in both runs
    for gone in (
        "/r/img.png",
        "/r/img-noext",
        "/r/beacon",
        "/r/beacon-form",
        "/r/a-ping",
        "/r/csp-report",
        "/r/frame-img.gif",
        "/r/fetch-post",
        "/r/fetch-form",
        "/r/style.css",
        "/r/script.js",
        "/r/data.json",
    ):
        assert gone not in through_waylay, gone
    for kept in (
        "/r/frame-style.css",
        "/r/style-noext?moved=1",
        "/r/script.js?v=2",
        "/r/fetch-get",
        "/r/module.mjs",
        "/r/xhr",
    ):
        assert kept in through_waylay, kept
    ignore = {"/favicon.ico"}
    assert through_waylay - ignore == with_dnr - ignore, (
        f"only through waylay: {sorted(through_waylay - with_dnr)}; "
        f"only with the DNR export: {sorted(with_dnr - through_waylay)}\n"
        + json.dumps(exported.rules, indent=1)
    )


def _target(record: dict) -> str:
    return record["path"] + (f"?{record['query']}" if record.get("query") else "")
