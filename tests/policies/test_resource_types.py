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
