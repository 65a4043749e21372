"""Resource types from the header sets real browsers and tools send."""

from __future__ import annotations

import pytest
from mitmproxy.http import Headers

from policies.model import RESOURCE_TYPES
from policies.resource_types import infer_type

CHROME_NAV = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8",
    "Sec-Fetch-Dest": "document",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Site": "none",
    "Sec-Fetch-User": "?1",
    "Upgrade-Insecure-Requests": "1",
}
CASES = [
    ("chrome navigation", "GET", "https://example.com/", CHROME_NAV, "main_frame"),
    (
        "chrome iframe",
        "GET",
        "https://ads.example/frame",
        {"Accept": CHROME_NAV["Accept"], "Sec-Fetch-Dest": "iframe", "Sec-Fetch-Mode": "navigate"},
        "sub_frame",
    ),
    (
        "chrome script",
        "GET",
        "https://cdn.example/app",
        {"Accept": "*/*", "Sec-Fetch-Dest": "script", "Sec-Fetch-Mode": "no-cors"},
        "script",
    ),
    (
        "module worker",
        "GET",
        "https://cdn.example/w",
        {"Accept": "*/*", "Sec-Fetch-Dest": "worker"},
        "script",
    ),
    (
        "chrome css",
        "GET",
        "https://cdn.example/s",
        {"Accept": "text/css,*/*;q=0.1", "Sec-Fetch-Dest": "style"},
        "stylesheet",
    ),
    (
        "chrome image",
        "GET",
        "https://cdn.example/i",
        {
            "Accept": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
            "Sec-Fetch-Dest": "image",
        },
        "image",
    ),
    (
        "font",
        "GET",
        "https://fonts.example/f",
        {"Accept": "*/*", "Sec-Fetch-Dest": "font", "Origin": "https://example.com"},
        "font",
    ),
    (
        "video",
        "GET",
        "https://media.example/v",
        {"Accept": "*/*", "Sec-Fetch-Dest": "video", "Range": "bytes=0-"},
        "media",
    ),
    ("subtitles", "GET", "https://media.example/t.vtt", {"Sec-Fetch-Dest": "track"}, "media"),
    ("embed", "GET", "https://x.example/e", {"Sec-Fetch-Dest": "embed"}, "object"),
    (
        "fetch",
        "POST",
        "https://api.example/v1",
        {"Accept": "application/json", "Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors"},
        "xmlhttprequest",
    ),
    (
        "sendBeacon-less ping",
        "POST",
        "https://x.example/ping",
        {"Sec-Fetch-Dest": "empty", "Ping-To": "https://x.example/", "Content-Type": "text/ping"},
        "ping",
    ),
    (
        "csp report",
        "POST",
        "https://x.example/csp",
        {"Sec-Fetch-Dest": "report", "Content-Type": "application/csp-report"},
        "ping",
    ),
    (
        "websocket",
        "GET",
        "https://chat.example/socket",
        {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-Fetch-Dest": "empty",
            "Sec-Fetch-Mode": "websocket",
        },
        "websocket",
    ),
    # Chromium 150's own header sets (tests/browser/ measures them), HTTPS
    (
        "chrome sendBeacon text",
        "POST",
        "https://t.example/beacon",
        {
            "Content-Type": "text/plain;charset=UTF-8",
            "Accept": "*/*",
            "Origin": "https://site.example",
            "Sec-Fetch-Mode": "no-cors",
            "Sec-Fetch-Dest": "empty",
        },
        "ping",
    ),
    (
        "chrome sendBeacon form",
        "POST",
        "https://t.example/beacon",
        {
            "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
            "Sec-Fetch-Mode": "no-cors",
            "Sec-Fetch-Dest": "empty",
        },
        "ping",
    ),
    (
        "chrome keepalive fetch is not a beacon",
        "POST",
        "https://t.example/k",
        {
            "Content-Type": "text/plain;charset=UTF-8",
            "Sec-Fetch-Mode": "cors",
            "Sec-Fetch-Dest": "empty",
        },
        "xmlhttprequest",
    ),
    (
        "no-cors GET is not a beacon",
        "GET",
        "https://t.example/k",
        {"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "empty"},
        "xmlhttprequest",
    ),
    (
        "chrome link prefetch",
        "GET",
        "https://site.example/next",
        {
            "Sec-Purpose": "prefetch",
            "Accept": CHROME_NAV["Accept"],
            "Sec-Fetch-Mode": "no-cors",
            "Sec-Fetch-Dest": "empty",
        },
        "other",
    ),
    (
        "prerender stays a page",
        "GET",
        "https://site.example/next",
        {"Sec-Purpose": "prefetch;prerender", "Sec-Fetch-Dest": "document"},
        "main_frame",
    ),
    (
        "chrome json module",
        "GET",
        "https://site.example/data.json",
        {
            "Accept": "application/json,*/*;q=0.5",
            "Sec-Fetch-Mode": "cors",
            "Sec-Fetch-Dest": "json",
        },
        "script",
    ),
    (
        "chrome xslt",
        "GET",
        "https://site.example/sheet.xsl",
        {"Accept": "text/css,*/*;q=0.1", "Sec-Fetch-Mode": "same-origin", "Sec-Fetch-Dest": "xslt"},
        "stylesheet",
    ),
    # Chromium to a plain-HTTP origin: no Sec-Fetch-*; the best guesses
    (
        "http iframe",
        "GET",
        "http://site.example/frame.html",
        {"Accept": CHROME_NAV["Accept"], "Referer": "http://site.example/"},
        "sub_frame",
    ),
    (
        "http top page",
        "GET",
        "http://site.example/",
        {"Accept": CHROME_NAV["Accept"], "Upgrade-Insecure-Requests": "1"},
        "main_frame",
    ),
    (
        "http xhr",
        "GET",
        "http://site.example/api/items",
        {"Accept": "*/*", "Referer": "http://site.example/"},
        "xmlhttprequest",
    ),
    (
        "http fetch post",
        "POST",
        "http://site.example/api",
        {"Content-Type": "application/json", "Accept": "*/*", "Origin": "http://site.example"},
        "xmlhttprequest",
    ),
    (
        "http embed image",
        "GET",
        "http://site.example/e.png",
        {"Accept": "*/*", "Referer": "http://site.example/"},
        "object",
    ),
    (
        "http csp report",
        "POST",
        "http://site.example/csp",
        {"Content-Type": "application/csp-report", "Origin": "http://site.example"},
        "ping",
    ),
    (
        "http prefetch",
        "GET",
        "http://site.example/next",
        {
            "Sec-Purpose": "prefetch",
            "Accept": CHROME_NAV["Accept"],
            "Referer": "http://site.example/",
        },
        "other",
    ),
    (
        "firefox prefetch",
        "GET",
        "http://site.example/next",
        {"X-Moz": "prefetch", "Purpose": "prefetch", "Accept": "*/*"},
        "other",
    ),
    (
        "http json module",
        "GET",
        "http://site.example/data",
        {"Accept": "application/json,*/*;q=0.5", "Origin": "http://site.example"},
        "script",
    ),
    # without Sec-Fetch-*: old browsers and tools — Accept, X-Requested-With, then the extension
    (
        "old firefox image",
        "GET",
        "https://x.example/pic",
        {"Accept": "image/avif,image/webp,*/*"},
        "image",
    ),
    (
        "old navigation",
        "GET",
        "https://x.example/",
        {"Accept": "text/html,application/xhtml+xml"},
        "main_frame",
    ),
    (
        "jquery xhr",
        "GET",
        "https://x.example/data",
        {"Accept": "*/*", "X-Requested-With": "XMLHttpRequest"},
        "xmlhttprequest",
    ),
    (
        "curl script",
        "GET",
        "https://x.example/static/app.min.js?v=3",
        {"Accept": "*/*", "User-Agent": "curl/8.5.0"},
        "script",
    ),
    ("curl css", "GET", "https://x.example/a.CSS", {"Accept": "*/*"}, "stylesheet"),
    ("curl font", "GET", "https://x.example/f.woff2#x", {}, "font"),
    ("curl media", "GET", "https://x.example/live.m3u8", {}, "media"),
    ("curl page", "GET", "https://x.example/index.html", {}, "main_frame"),
    ("curl json api", "GET", "https://x.example/api/items", {"Accept": "*/*"}, "other"),
    ("dotfile", "GET", "https://x.example/.env", {}, "other"),
    ("no path", "GET", "https://x.example", {}, "other"),
]


@pytest.mark.parametrize(
    ("method", "url", "headers", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_infer_type(method, url, headers, expected):
    assert infer_type(method, url, headers) == expected
    assert expected in RESOURCE_TYPES


@pytest.mark.parametrize(
    ("method", "url", "headers", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_header_names_are_case_insensitive(method, url, headers, expected):
    lower = {k.lower(): v for k, v in headers.items()}
    upper = {k.upper(): v for k, v in headers.items()}
    mitm = Headers(**{k.replace("-", "_"): v for k, v in headers.items()})
    assert infer_type(method, url, lower) == expected
    assert infer_type(method, url, upper) == expected
    assert infer_type(method, url, mitm) == expected
