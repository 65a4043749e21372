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
is not loopback; old browsers and tools never do), in this order: CSP reports by their
``Content-Type``; prefetches by ``Sec-Purpose``/``Purpose``; ``X-Requested-With``; a
specific ``Accept`` (a document request with a ``Referer`` is guessed to be a frame,
one without to be a page); a file extension (an image extension asked for with
``Accept: */*`` is an ``<object>``/``<embed>``: ``<img>`` asks for images); a browser's
request for something without an extension (it has a ``Referer`` or an ``Origin``) is
guessed to be ``xmlhttprequest``; else ``other``. What cannot be told apart there: a
beacon from a fetch POST (guessed ``xmlhttprequest``), a script without extension from a
fetch (guessed ``xmlhttprequest``), an HTML ``<object>`` from an iframe (guessed
``sub_frame``), and a followed link from an iframe (both carry a ``Referer``).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["infer_type"]

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


def _getter(headers: Mapping[str, str]):
    if isinstance(headers, dict):
        lowered = {str(k).lower(): v for k, v in headers.items()}
        return lowered.get
    # mitmproxy's Headers and the like are case-insensitive already
    return headers.get


def infer_type(method: str, url: str, headers: Mapping[str, str]) -> str:
    """The resource type of a request (one of ``model.RESOURCE_TYPES``).

    ``headers`` may be a mitmproxy ``Headers`` or a plain dict; names are compared
    case-insensitively either way.
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
    if by_extension == "other" and accept == "*/*" and (get("referer") or get("origin")):
        return "xmlhttprequest"
    return by_extension


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
