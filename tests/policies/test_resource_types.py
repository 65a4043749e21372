"""Resource types from the header sets real browsers and tools send."""

from __future__ import annotations

import pytest
from mitmproxy.http import Headers

from policies.model import RESOURCE_TYPES
from policies.resource_types import (
    MAX_ELEMENTS,
    PageElements,
    elements_of,
    infer_type,
    page_url_key,
)

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


# Without Sec-Fetch-Dest (plain HTTP), the page a request's Referer names tells what
# requests look alike: Chromium's headers, read through waylay (tests/browser).
DOC_ACCEPT = CHROME_NAV["Accept"]
PAGE_URL = "http://shop.example:8080/catalog/index.html"
PAGE_HTML = """<!doctype html><html><head>
<base href="/static/">
<script src="app"></script>
<SCRIPT type=module SRC='mod?v=1&amp;x=2'></SCRIPT>
<link rel="preload stylesheet" href="theme">
<link rel=icon href=/favicon>
<link rel="preload" as="fetch" href="/api/boot">
<link rel="modulepreload" href="chunk">
<!-- <script src="commented"></script> -->
</head><body>
<img src="pic" alt="a > b">
<iframe src="http://shop.example:8080/frames/ad#top"></iframe>
<object data="/docs/manual" type="text/html"></object>
<embed src="/widget">
<video src="clip" poster="still"><track src="subs"></video>
<audio><source src="song"></audio>
<object data="both"></object><iframe src="both"></iframe>
<a href="link-only">a link loads nothing</a>
</body></html>"""


def page_elements() -> PageElements:
    pages = PageElements()
    pages.add(PAGE_URL + "#section", PAGE_HTML)
    return pages


def test_the_elements_of_a_page_by_url():
    found = elements_of(PAGE_URL, PAGE_HTML)
    static = "http://shop.example:8080/static/"
    assert found == {
        static + "app": {"script"},
        static + "mod?v=1&x=2": {"script"},  # entities decoded, case ignored, base applied
        static + "theme": {"stylesheet"},
        "http://shop.example:8080/favicon": {"image"},
        "http://shop.example:8080/api/boot": {"xmlhttprequest"},
        static + "chunk": {"script"},
        static + "pic": {"image"},  # a '>' inside a quoted attribute ends nothing
        "http://shop.example:8080/frames/ad": {"sub_frame"},  # no fragment
        "http://shop.example:8080/docs/manual": {"object"},
        "http://shop.example:8080/widget": {"object"},
        static + "clip": {"media"},
        static + "still": {"image"},
        static + "subs": {"media"},
        static + "song": {"media"},
        static + "both": {"object", "sub_frame"},
    }


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("HTTP://Shop.Example:80/a?b#c", "http://shop.example/a?b"),
        ("https://x.example:443", "https://x.example/"),
        ("https://x.example:8443/", "https://x.example:8443/"),
        ("http://[::1]:8080/p", "http://[::1]:8080/p"),
        ("ftp://x.example/a", None),
        ("about:blank", None),
        ("http://x.example:99999/", None),
    ],
)
def test_page_url_keys(url, key):
    assert page_url_key(url) == key


@pytest.mark.parametrize(
    ("name", "path", "headers", "expected", "without_pages"),
    [
        ("script without extension", "/static/app", {"Accept": "*/*"}, "script", "xmlhttprequest"),
        ("a fetch the page does not name", "/api/items", {"Accept": "*/*"}, "xmlhttprequest", None),
        ("html object", "/docs/manual", {"Accept": DOC_ACCEPT}, "object", "sub_frame"),
        ("embed", "/widget", {"Accept": "*/*"}, "object", "xmlhttprequest"),
        ("iframe", "/frames/ad", {"Accept": DOC_ACCEPT}, "sub_frame", None),
        ("media without extension", "/static/clip", {"Accept": "*/*"}, "media", "xmlhttprequest"),
        # an object and an iframe name it: the Accept fits both, so the guess stands
        ("ambiguous", "/static/both", {"Accept": DOC_ACCEPT}, "sub_frame", None),
        # a specific Accept beats the element; an element's Accept that does not fit it
        # (a script asking for HTML) is a navigation or a fetch, not the element
        ("css asked for", "/static/app", {"Accept": "text/css,*/*;q=0.1"}, "stylesheet", None),
        ("html asked of a script", "/static/app", {"Accept": DOC_ACCEPT}, "sub_frame", None),
        ("a fetch of a preloaded url", "/api/boot", {"Accept": "*/*"}, "xmlhttprequest", None),
        # with Sec-Fetch-Dest the browser says it; the page is not asked
        (
            "fetch of a script url, said",
            "/static/app",
            {"Accept": "*/*", "Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors"},
            "xmlhttprequest",
            None,
        ),
    ],
)
def test_a_request_is_typed_by_the_element_that_names_it(
    name, path, headers, expected, without_pages
):
    url = "http://shop.example:8080" + path
    headers = {**headers, "Referer": PAGE_URL}
    assert infer_type("GET", url, headers, page_elements()) == expected
    assert infer_type("GET", url, headers) == (without_pages or expected)


@pytest.mark.parametrize(
    ("method", "referer"),
    [
        ("POST", PAGE_URL),  # elements only GET
        ("GET", None),
        ("GET", "http://shop.example:8080/"),  # another page (an origin-only Referer)
        ("GET", "http://other.example/catalog/index.html"),
        ("GET", "not a url"),
    ],
)
def test_only_the_referring_page_tells(method, referer):
    headers = {"Accept": "*/*", **({"Referer": referer} if referer else {})}
    url = "http://shop.example:8080/static/app"
    guess = infer_type(method, url, headers, page_elements())
    assert guess == infer_type(method, url, headers) != "script"


def test_comments_hide_elements_to_their_end_or_the_end_of_the_page():
    text = '<!-- <script src="/a"> --><script src="/b"><!-- x -- y --><img src="/c"><!-- <img src="/d">'
    assert elements_of("http://a.example/", text) == {
        "http://a.example/b": {"script"},
        "http://a.example/c": {"image"},
    }


def test_pages_are_bounded_and_the_newest_version_counts():
    pages = PageElements(max_pages=2, max_chars=60)
    pages.add("http://a.example/1", '<script src="/s"></script>')
    pages.add("http://a.example/2", '<script src="/s"></script>')
    pages.add("http://a.example/1", '<img src="/s">')  # reloaded, changed
    pages.add("http://a.example/3", "<p>" + "x" * 60 + '<script src="/late"></script>')
    pages.add("ftp://a.example/4", '<script src="/s"></script>')  # not a web page
    assert len(pages) == 2
    assert pages.kinds("http://a.example/2", "http://a.example/s") == frozenset()  # dropped
    assert pages.kinds("http://a.example/1", "http://a.example/s") == {"image"}
    assert pages.kinds("http://a.example/3", "http://a.example/late") == frozenset()  # cut


def test_a_pathological_page_is_read_in_bounded_time():
    import time

    unclosed = '<img src="never closed ' + ("x" * 100 + "<script src=a>") * 20_000
    many = "".join(f'<img src="/i{i}">' for i in range(3 * MAX_ELEMENTS))
    comments = "<!-- never closed " * 100_000 + '<script src="/hidden"></script>'
    for text in (unclosed, many, comments):
        start = time.process_time()
        found = elements_of("http://a.example/", text)
        assert time.process_time() - start < 2.0
        assert len(found) <= MAX_ELEMENTS


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Accept": "*/*", "Accept-Encoding": "identity;q=1, *;q=0", "Range": "bytes=0-"}, "media"),
        (
            {"Accept": "*/*", "Accept-Encoding": "gzip, deflate", "Range": "bytes=0-"},
            "xmlhttprequest",
        ),
        ({"Accept": "*/*", "Accept-Encoding": "identity;q=1, *;q=0"}, "xmlhttprequest"),
    ],
    ids=["chromium media load", "a fetch with a range", "no range"],
)
def test_a_media_load_without_extension(headers, expected):
    url = "http://tv.example/stream/42"
    assert infer_type("GET", url, {**headers, "Referer": "http://tv.example/"}) == expected
