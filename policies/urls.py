"""Whether a string is an absolute URL a request can go to: one check for rule targets,
the dialogs' forms and the answers the screen sends."""

from __future__ import annotations

from urllib.parse import urlsplit

HTTP = ("http", "https")


def url_error(url: object, schemes: tuple[str, ...] = HTTP) -> str | None:
    """Why ``url`` is not an absolute URL with a host and one of ``schemes``, or None."""
    if not isinstance(url, str) or not url.strip():
        return "type a URL, e.g. https://example.com/"
    text = url.strip()
    if any(ch.isspace() for ch in text):
        return "a URL cannot contain spaces"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"{text!r} is not a URL: {exc}"
    if parts.scheme.lower() not in schemes or not parts.hostname:
        return f"{text!r} is not an absolute http(s) URL"
    return None
