"""Which webRequest resource type a request is, from what a proxy can see of it.

The order of evidence: ``Upgrade: websocket``; ``Sec-Fetch-Dest`` (every current browser
sends it); a ping's ``Ping-To`` / ``text/ping``; ``X-Requested-With: XMLHttpRequest``;
a specific ``Accept`` header; the path's extension; else ``other``.
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
    "xslt": "script",
    "style": "stylesheet",
    "image": "image",
    "font": "font",
    "audio": "media",
    "video": "media",
    "track": "media",
    "object": "object",
    "embed": "object",
    "empty": "xmlhttprequest",
    "json": "xmlhttprequest",
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
        if dest == "empty" and (get("ping-to") or _is_ping(get)):
            return "ping"
        if dest in _DEST_TYPES:
            return _DEST_TYPES[dest]
    if get("ping-to") or _is_ping(get):
        return "ping"
    requested_with = get("x-requested-with")
    if requested_with and requested_with.strip().lower() == "xmlhttprequest":
        return "xmlhttprequest"
    accept = (get("accept") or "").strip().lower()
    if accept:
        first = accept.split(",", 1)[0].split(";", 1)[0].strip()
        for prefix, kind in _ACCEPT_PREFIXES:
            if first.startswith(prefix):
                return kind
    return _type_from_extension(url)


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
