"""Faster equivalents of mitmproxy functions on every request's path, in the proxy process.

``Headers.get_all`` is behind every header read (``headers["x"]``, ``.get``, ``in``):
mitmproxy's own, through ``MultiDict.get_all``, makes two Python calls for each header of
the message (lowering the name through ``_kconv``, decoding the value through
``_native``) for every lookup, and mitmproxy itself reads several headers a few times per
request (the body size of each message, ``Host``, ``Connection``...): about a tenth of the
proxy's time per request. The one here lowers and compares in one comprehension and
returns the same list (tests/fuzz/test_fuzz_speedups.py checks it against mitmproxy's on
random headers). Installed once, by ``EmbeddedProxy``; ``uninstall`` restores mitmproxy's.
"""

from __future__ import annotations

from mitmproxy import http

_ORIGINAL = {"get_all": http.Headers.get_all}
_always_bytes = http._always_bytes


def headers_get_all(self: http.Headers, name: str | bytes) -> list[str]:
    """``Headers.get_all``: the values of every header called ``name`` (any case), in order."""
    key = _always_bytes(name).lower()
    return [v.decode("utf-8", "surrogateescape") for k, v in self.fields if k.lower() == key]


headers_get_all.__doc__ = _ORIGINAL["get_all"].__doc__


def install() -> None:
    """Use the faster functions (idempotent)."""
    http.Headers.get_all = headers_get_all  # type: ignore[method-assign]


def uninstall() -> None:
    http.Headers.get_all = _ORIGINAL["get_all"]  # type: ignore[method-assign]


def original_headers_get_all(headers: http.Headers, name: str | bytes) -> list[str]:
    """mitmproxy's own ``Headers.get_all``, whichever is installed (for the tests)."""
    return _ORIGINAL["get_all"](headers, name)
