"""Which webRequest resource type a request is, from what a proxy can see of it.

Chrome's ``declarativeNetRequest`` is the reference: waylay gives a request the type
Chrome gives it (DNR's ``csp_report`` is waylay's ``ping``). Measured with a real headless
Chromium against a page loading one of each kind of subresource (tests/browser/).

Certain: a browser that sends ``Sec-Fetch-Dest`` (every current one, to secure origins:
HTTPS, localhost and loopback addresses) says what the request is for, and only three
cases need a second header: ``empty`` is a beacon (``ping``) when it is a ``no-cors``
POST with a body a beacon can have, and ``other`` when ``Sec-Purpose``/``Purpose`` say
prefetch; ``report`` is ``ping``. ``Upgrade: websocket`` and a ping's ``Ping-To`` /
``text/ping`` are certain too.

A best guess, without ``Sec-Fetch-Dest`` (Chromium sends none to a plain-HTTP origin that
is not loopback; old browsers and tools never do), the first that applies: pings and
reports by ``Ping-To`` or ``Content-Type``; prefetches by ``Sec-Purpose``/``Purpose``;
``X-Requested-With``; Chrome's ``Accept`` for a JSON module; then, for a GET whose
``Referer`` is an HTML page the proxy saw (``PageElements``), the element of that page
that names the URL, where the ``Accept`` fits that element and only one kind of element
fits (this tells a ``<script>`` without extension from a fetch, both ``Accept: */*``, and
an HTML ``<object>``/``<embed>`` from an iframe, both asking for a document); then the
first type in ``Accept`` (a document request with a ``Referer`` is guessed to be a
frame, one without to be a page); a file extension (an image extension asked for with
``Accept: */*`` is an ``<object>``/``<embed>``: ``<img>`` asks for images); without a
known extension, Chromium's media loader (``Accept-Encoding: identity;q=1, *;q=0`` and a
``Range``) is ``media`` and ``Accept: */*`` with a ``Referer`` or an ``Origin`` (a
browser's subresource) ``xmlhttprequest``; else ``other``. What cannot be told apart
there: a beacon from a fetch POST (guessed ``xmlhttprequest``), a request a script makes
for a URL its page also names in an element (typed as the element), and a followed link
from an iframe (both carry a ``Referer``). README.md, "Resource types", says the same.
"""

from __future__ import annotations

import html
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from urllib.parse import urljoin, urlsplit, urlunsplit

__all__ = ["PageElements", "infer_type"]

_DEST_TYPES = {
    "document": "main_frame",
    "iframe": "sub_frame",
    "frame": "sub_frame",
    "fencedframe": "sub_frame",
    "script": "script",
    "worker": "script",
    "sharedworker": "script",
    "serviceworker": "script",
    "audioworklet": "script",
    "paintworklet": "script",
    "xslt": "stylesheet",
    "style": "stylesheet",
    "image": "image",
    "font": "font",
    "audio": "media",
    "video": "media",
    "track": "media",
    "object": "object",
    "embed": "object",
    "empty": "xmlhttprequest",
    "json": "script",  # a JSON module import
    "report": "ping",
    "manifest": "other",
    "webidentity": "other",
}

_ACCEPT_PREFIXES = (
    ("text/html", "main_frame"),
    ("application/xhtml+xml", "main_frame"),
    ("text/css", "stylesheet"),
    ("image/", "image"),
    ("application/javascript", "script"),
    ("text/javascript", "script"),
    ("application/ecmascript", "script"),
    ("font/", "font"),
    ("application/font", "font"),
    ("video/", "media"),
    ("audio/", "media"),
    ("application/json", "xmlhttprequest"),
    ("text/event-stream", "xmlhttprequest"),
)

_EXTENSIONS = {
    "html": "main_frame",
    "htm": "main_frame",
    "xhtml": "main_frame",
    "js": "script",
    "mjs": "script",
    "cjs": "script",
    "css": "stylesheet",
    "png": "image",
    "jpg": "image",
    "jpeg": "image",
    "gif": "image",
    "webp": "image",
    "avif": "image",
    "svg": "image",
    "ico": "image",
    "bmp": "image",
    "apng": "image",
    "woff": "font",
    "woff2": "font",
    "ttf": "font",
    "otf": "font",
    "eot": "font",
    "mp4": "media",
    "webm": "media",
    "m4v": "media",
    "mov": "media",
    "mp3": "media",
    "m4a": "media",
    "ogg": "media",
    "oga": "media",
    "ogv": "media",
    "opus": "media",
    "wav": "media",
    "flac": "media",
    "vtt": "media",
    "m3u8": "media",
    "mpd": "media",
    "swf": "object",
}


def folded_fields(fields: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Raw header fields (mitmproxy's ``Headers.fields``) as a dict of lower-cased names
    to values, folded as ``Headers.get`` folds repeated ones (joined by ", "): what
    ``infer_type`` asks of them, at a third of the cost of ``Headers``' lookups. The
    proxy's record (``monitor.record``) and the session store's writer process both
    type requests from it."""
    out: dict[str, str] = {}
    for raw_name, raw_value in fields:
        name = raw_name.decode("utf-8", "surrogateescape").lower()
        value = raw_value.decode("utf-8", "surrogateescape")
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _getter(headers: Mapping[str, str]):
    if isinstance(headers, dict):
        lowered = {str(k).lower(): v for k, v in headers.items()}
        return lowered.get
    # mitmproxy's Headers and the like are case-insensitive already
    return headers.get


def infer_type(
    method: str, url: str, headers: Mapping[str, str], pages: PageElements | None = None
) -> str:
    """The resource type of a request (one of ``model.RESOURCE_TYPES``).

    ``headers`` may be a mitmproxy ``Headers`` or a plain dict; names are compared
    case-insensitively either way. ``pages``, the HTML documents seen so far, helps only
    a request without ``Sec-Fetch-Dest`` whose ``Referer`` is one of them.
    """
    get = _getter(headers)
    upgrade = get("upgrade")
    if upgrade and upgrade.strip().lower() == "websocket":
        return "websocket"
    dest = (get("sec-fetch-dest") or "").strip().lower()
    if dest:
        if dest == "document":
            # a nested browsing context would say iframe/frame; a document is top level
            return "main_frame"
        if dest == "empty":
            if get("ping-to") or _is_ping(get):
                return "ping"
            if _is_prefetch(get):
                return "other"
            if _is_beacon(method, get):
                return "ping"
            return "xmlhttprequest"
        if dest in _DEST_TYPES:
            return _DEST_TYPES[dest]
    if get("ping-to") or _is_ping(get) or _is_report(get):
        return "ping"
    if _is_prefetch(get):
        return "other"
    requested_with = get("x-requested-with")
    if requested_with and requested_with.strip().lower() == "xmlhttprequest":
        return "xmlhttprequest"
    accept = (get("accept") or "").strip().lower()
    if accept == _JSON_MODULE_ACCEPT:
        return "script"
    if pages is not None and method.upper() == "GET":
        by_element = _type_from_element(pages, url, get("referer"), accept)
        if by_element:
            return by_element
    if accept:
        first = accept.split(",", 1)[0].split(";", 1)[0].strip()
        for prefix, kind in _ACCEPT_PREFIXES:
            if first.startswith(prefix):
                if kind == "main_frame" and get("referer"):
                    return "sub_frame"  # a best guess: a followed link has a Referer too
                return kind
    by_extension = _type_from_extension(url)
    if by_extension == "image" and accept == "*/*":
        return "object"  # <img> asks for image/*; <object> and <embed> ask for anything
    if by_extension == "other" and _is_media_load(get):
        return "media"
    if by_extension == "other" and accept == "*/*" and (get("referer") or get("origin")):
        return "xmlhttprequest"
    return by_extension


# Chromium's media loader (<audio>, <video>) asks for every piece uncompressed, and a
# range; nothing else in the browser sends this Accept-Encoding.
_MEDIA_ENCODING = "identity;q=1, *;q=0"


def _is_media_load(get) -> bool:
    encoding = (get("accept-encoding") or "").strip().lower()
    return encoding == _MEDIA_ENCODING and (get("range") or "").strip().startswith("bytes=")


# Chrome's Accept for `import ... with {type: "json"}`; a fetch asking for JSON says less.
_JSON_MODULE_ACCEPT = "application/json,*/*;q=0.5"
# What navigator.sendBeacon can send without a CORS preflight (then it is no-cors).
_BEACON_BODIES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")


def _is_prefetch(get) -> bool:
    purpose = (get("sec-purpose") or get("purpose") or "").strip().lower()
    return purpose.startswith("prefetch") and "prerender" not in purpose


def _is_beacon(method: str, get) -> bool:
    """``Sec-Fetch-Dest: empty`` with ``Sec-Fetch-Mode: no-cors`` and a POST: a fetch or
    XHR is ``cors`` or ``same-origin`` unless a page asks for ``no-cors`` explicitly."""
    if method.upper() != "POST":
        return False
    if (get("sec-fetch-mode") or "").strip().lower() != "no-cors":
        return False
    content_type = (get("content-type") or "").strip().lower()
    return not content_type or content_type.startswith(_BEACON_BODIES)


def _is_report(get) -> bool:
    content_type = (get("content-type") or "").strip().lower()
    return content_type.startswith(("application/csp-report", "application/reports+json"))


def _is_ping(get) -> bool:
    content_type = get("content-type")
    return bool(content_type) and content_type.strip().lower().startswith("text/ping")


def _type_from_extension(url: str) -> str:
    start = url.find("://")
    start = url.find("/", start + 3 if start >= 0 else 0)
    if start < 0:
        return "other"
    end = len(url)
    for ch in "?#":
        i = url.find(ch, start)
        if 0 <= i < end:
            end = i
    path = url[start:end]
    name = path.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    if dot <= 0:
        return "other"
    return _EXTENSIONS.get(name[dot + 1 :].lower(), "other")


# What an element's request asks for, in Chromium, Firefox and Safari: a frame, an
# <object> or <embed> of a document asks for HTML; a <script>, an <object>/<embed> of
# anything else, and media ask for anything. Only these can be told apart by the element.
_DOCUMENT_ACCEPTS = ("text/html", "application/xhtml+xml")
_BY_DOCUMENT_ACCEPT = frozenset({"sub_frame", "object"})
_BY_ANY_ACCEPT = frozenset({"script", "object", "media"})


def _type_from_element(pages: PageElements, url: str, referer: str | None, accept: str):
    if not referer:
        return None
    kinds = pages.kinds(referer, url)
    if not kinds:
        return None
    if accept.startswith(_DOCUMENT_ACCEPTS):
        fitting = kinds & _BY_DOCUMENT_ACCEPT
    elif accept == "*/*":
        fitting = kinds & _BY_ANY_ACCEPT
    else:
        return None  # a specific Accept (image, CSS) says it better than the element
    return next(iter(fitting)) if len(fitting) == 1 else None


# (tag, attribute) -> the type of the request the element makes for that URL
_ELEMENT_TYPES = {
    ("script", "src"): "script",
    ("iframe", "src"): "sub_frame",
    ("frame", "src"): "sub_frame",
    ("object", "data"): "object",
    ("embed", "src"): "object",
    ("img", "src"): "image",
    ("audio", "src"): "media",
    ("video", "src"): "media",
    ("source", "src"): "media",
    ("track", "src"): "media",
}
_LINK_TYPES = {"stylesheet": "stylesheet", "icon": "image", "modulepreload": "script"}
_PRELOAD_AS = {
    # a preload's `as` names a request destination, as Sec-Fetch-Dest does
    **{
        dest: _DEST_TYPES[dest]
        for dest in ("script", "style", "image", "font", "audio", "video", "track")
    },
    "fetch": "xmlhttprequest",
}
_TAG = re.compile(
    r"<(script|iframe|frame|object|embed|img|video|audio|source|track|link|base)\b"
    r"((?:[^>\"']++|\"[^\"]*+\"|'[^']*+')*+)>",  # possessive: no backtracking
    re.I,
)
_ATTRIBUTE = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")
_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_ELEMENTS = 10_000  # of one document: bounded time and memory whatever the page


def _without_comments(text: str) -> str:
    """``text`` without ``<!-- ... -->`` (an unclosed one runs to the end, as in HTML), in
    one pass whatever the page holds."""
    kept: list[str] = []
    at = 0
    while (start := text.find("<!--", at)) >= 0:
        kept.append(text[at:start])
        end = text.find("-->", start + 4)
        if end < 0:
            return "".join(kept)
        at = end + 3
    kept.append(text[at:])
    return "".join(kept)


def _attributes(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for m in _ATTRIBUTE.finditer(text):
        name = m.group(1).lower()
        if name not in found:  # HTML keeps the first of a repeated attribute
            value = m.group(2) if m.group(2) is not None else m.group(3) or m.group(4) or ""
            found[name] = html.unescape(value).strip()
    return found


def page_url_key(url: str) -> str | None:
    """A URL as a browser names it in a ``Referer``: scheme and host lower-cased, no
    default port, no fragment, ``/`` for an empty path; None if it is not http(s)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", parts.query, ""))


def elements_of(url: str, text: str) -> dict[str, frozenset[str]]:
    """URL (as ``page_url_key`` writes it) -> the types of the requests the elements of
    the HTML document ``text`` at ``url`` make for it. Elements a script writes later,
    and URLs in CSS or script text, are not there."""
    base = url
    found: dict[str, set[str]] = {}
    for n, m in enumerate(_TAG.finditer(_without_comments(text))):
        if n >= MAX_ELEMENTS:
            break
        tag = m.group(1).lower()
        attributes = _attributes(m.group(2))
        if tag == "base":
            if "href" in attributes and base == url:  # the first <base href> counts
                base = urljoin(url, attributes["href"])
            continue
        if tag == "link":
            rels = attributes.get("rel", "").lower().split()
            kind = next((_LINK_TYPES[r] for r in rels if r in _LINK_TYPES), None)
            if kind is None and "preload" in rels:
                kind = _PRELOAD_AS.get(attributes.get("as", "").lower())
            target = attributes.get("href")
        else:
            attribute = "data" if tag == "object" else "src"
            kind = _ELEMENT_TYPES.get((tag, attribute))
            target = attributes.get(attribute)
            if tag == "video" and attributes.get("poster"):
                key = page_url_key(urljoin(base, attributes["poster"]))
                if key:
                    found.setdefault(key, set()).add("image")
        if kind is None or not target:
            continue
        key = page_url_key(urljoin(base, target))
        if key:
            found.setdefault(key, set()).add(kind)
    return {k: frozenset(v) for k, v in found.items()}


class PageElements:
    """The HTML documents a proxy saw, by URL, and what their elements load.

    A browser names the document that asked for a subresource in the ``Referer`` (the
    full URL for a request to the same origin, by default), and it has the document
    before it asks for what the document's elements name. ``add`` each HTML document as
    it passes; ``kinds`` then tells what element of the referring document named a URL.
    Bounded: the last ``max_pages`` documents, the first ``max_chars`` characters and
    ``MAX_ELEMENTS`` elements of each.
    """

    def __init__(self, max_pages: int = 256, max_chars: int = 1_000_000) -> None:
        self.max_pages = max_pages
        self.max_chars = max_chars
        self._pages: OrderedDict[str, dict[str, frozenset[str]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pages)

    def add(self, url: str, text: str) -> None:
        """Remember the HTML document ``text`` served at ``url`` (replacing an older one)."""
        read = self.read(url, text)
        if read is not None:
            self.keep(*read)

    def read(self, url: str, text: str) -> tuple[str, dict[str, frozenset[str]]] | None:
        """The elements of a document, not yet kept: this part takes time (about 0.1 s
        for a 200 KB page), touches nothing shared and may run in another thread."""
        key = page_url_key(url)
        if key is None:
            return None
        return key, elements_of(key, text[: self.max_chars])

    def keep(self, key: str, elements: dict[str, frozenset[str]]) -> None:
        """Remember what ``read`` found."""
        self._pages[key] = elements
        self._pages.move_to_end(key)
        while len(self._pages) > self.max_pages:
            self._pages.popitem(last=False)

    def kinds(self, referer: str, url: str) -> frozenset[str]:
        """The types of the elements of the document ``referer`` that name ``url``
        (empty if that document was not seen or does not name it)."""
        page = self._pages.get(page_url_key(referer) or "")
        if not page:
            return frozenset()
        return page.get(page_url_key(url) or "", frozenset())
