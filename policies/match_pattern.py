"""WebExtension match patterns (``<all_urls>``, ``scheme://host/path``), compiled once.

The grammar is the one of MDN's "Match patterns" page, with Chrome's port rules:

- ``<all_urls>`` matches every URL whose scheme is in :data:`ALL_URLS_SCHEMES`.
- scheme: ``*`` (http and https only) or one of :data:`SCHEMES`.
- host: ``*`` (any host), ``*.example.com`` (``example.com`` and every subdomain) or an
  exact host; IPv6 hosts in brackets. A ``file`` pattern has an empty host (``file:///``).
  ``host:port`` matches only that port, ``host:*`` and a bare host match any port (as in
  Chrome; Firefox rejects ports). The URL's port is its default port when absent.
- path: required, starts with ``/``; ``*`` matches any run of characters. It is matched
  against the URL's path plus query string; the fragment is ignored.

``compile_pattern`` caches, so compiling the same pattern for thousands of rules is cheap
and the resulting :class:`MatchPattern` objects are immutable and shared.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, NamedTuple

__all__ = [
    "ALL_URLS",
    "ALL_URLS_SCHEMES",
    "DEFAULT_PORTS",
    "SCHEMES",
    "MatchPattern",
    "MatchPatternError",
    "SplitURL",
    "compile_pattern",
    "split_url",
]

ALL_URLS = "<all_urls>"
SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp", "file"})
"""Schemes a pattern may name explicitly."""
ALL_URLS_SCHEMES = SCHEMES
"""Schemes ``<all_urls>`` matches."""
WILDCARD_SCHEMES = frozenset({"http", "https"})
"""Schemes a ``*`` scheme matches."""
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}

_HOST_CHARS = re.compile(r"^[^\s/?#@*\[\]:\\]+$")
_IPV6 = re.compile(r"^\[[0-9a-fA-F:.]+\]$")


class MatchPatternError(ValueError):
    """An invalid match pattern; the message names the pattern and what is wrong with it."""

    def __init__(self, pattern: str, reason: str) -> None:
        self.pattern = pattern
        self.reason = reason
        super().__init__(f"invalid match pattern {pattern!r}: {reason}")


class SplitURL(NamedTuple):
    """The parts of a URL a match pattern looks at."""

    scheme: str
    """Lower-case scheme."""
    host: str
    """Lower-case host without userinfo and port; IPv6 hosts keep their brackets."""
    port: int | None
    """The explicit port, else the scheme's default port, else None."""
    path: str
    """Path plus ``?query`` (never empty: at least ``/``), without the fragment."""


def split_url(url: str) -> SplitURL | None:
    """Split ``url`` for matching, or None if it is not a ``scheme://`` URL.

    Faster than ``urllib.parse.urlsplit`` and forgiving: a port that is not a number makes
    the URL unmatched by port-specific patterns (port None) instead of raising.
    """
    sep = url.find("://")
    if sep <= 0:
        return None
    scheme = url[:sep].lower()
    rest_start = sep + 3
    end = len(url)
    for ch in "/?#":
        i = url.find(ch, rest_start)
        if 0 <= i < end:
            end = i
    netloc = url[rest_start:end]
    tail = url[end:]
    at = netloc.rfind("@")
    if at >= 0:
        netloc = netloc[at + 1 :]
    port: int | None = None
    if netloc.startswith("["):
        close = netloc.find("]")
        if close < 0:
            host = netloc
            port_text = ""
        else:
            host = netloc[: close + 1]
            port_text = netloc[close + 2 :] if netloc[close + 1 : close + 2] == ":" else ""
    else:
        host, colon, port_text = netloc.partition(":")
        if not colon:
            port_text = ""
    if port_text:
        if port_text.isdigit():
            port = int(port_text)
    else:
        port = DEFAULT_PORTS.get(scheme)
    hash_at = tail.find("#")
    if hash_at >= 0:
        tail = tail[:hash_at]
    if not tail.startswith("/"):
        tail = "/" + tail
    return SplitURL(scheme, host.lower(), port, tail)


class MatchPattern:
    """A compiled match pattern. Immutable; compare and hash by the pattern text.

    Attributes, for exporters and the index: ``pattern`` (the text), ``all_urls`` (True for
    ``<all_urls>``), ``scheme`` (``*``, a named scheme, or ``<all_urls>``), ``schemes``
    (the set it matches), ``host`` (``*``, ``*.suffix`` or exact, lower-case; ``*`` for
    ``<all_urls>``), ``host_suffix`` (the part after ``*.``, or None), ``port`` (int, or
    None for any port) and ``path`` (``/*`` for ``<all_urls>``).
    """

    __slots__ = (
        "pattern",
        "all_urls",
        "scheme",
        "schemes",
        "host",
        "host_suffix",
        "port",
        "path",
        "_any_host",
        "_dot_suffix",
        "_path_kind",
        "_path_arg",
    )

    pattern: str
    all_urls: bool
    scheme: str
    _any_host: bool
    _dot_suffix: str  # (None when host_suffix is None; read only when it is not)
    _path_kind: int
    _path_arg: Any
    schemes: frozenset[str]
    host: str
    host_suffix: str | None
    port: int | None
    path: str

    def __init__(self, pattern: str) -> None:
        if not isinstance(pattern, str):
            raise MatchPatternError(repr(pattern), "a match pattern must be a string")
        setter = object.__setattr__
        setter(self, "pattern", pattern)
        if pattern == ALL_URLS:
            setter(self, "all_urls", True)
            setter(self, "scheme", ALL_URLS)
            setter(self, "schemes", ALL_URLS_SCHEMES)
            setter(self, "host", "*")
            setter(self, "host_suffix", None)
            setter(self, "port", None)
            setter(self, "path", "/*")
        else:
            scheme, host, port, path = _parse(pattern)
            setter(self, "all_urls", False)
            setter(self, "scheme", scheme)
            setter(self, "schemes", WILDCARD_SCHEMES if scheme == "*" else frozenset({scheme}))
            setter(self, "host", host)
            setter(self, "host_suffix", host[2:] if host.startswith("*.") else None)
            setter(self, "port", port)
            setter(self, "path", path)
        setter(self, "_any_host", self.host == "*")
        setter(self, "_dot_suffix", "." + self.host_suffix if self.host_suffix else None)
        kind, arg = _compile_path(self.path)
        setter(self, "_path_kind", kind)
        setter(self, "_path_arg", arg)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("MatchPattern is immutable")

    def __repr__(self) -> str:
        return f"MatchPattern({self.pattern!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MatchPattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(("MatchPattern", self.pattern))

    def __reduce__(self):
        return (compile_pattern, (self.pattern,))

    def matches(self, url: str) -> bool:
        """Whether ``url`` matches this pattern."""
        parts = split_url(url)
        return parts is not None and self.matches_split(parts)

    def matches_split(self, parts: SplitURL) -> bool:
        """Like :meth:`matches`, for a URL already split with :func:`split_url`."""
        scheme, host, port, path = parts
        if scheme not in self.schemes:
            return False
        if not self._any_host:
            suffix = self.host_suffix
            if suffix is None:
                if host != self.host:
                    return False
            elif host != suffix and not host.endswith(self._dot_suffix):
                return False
        if self.port is not None and port != self.port:
            return False
        kind = self._path_kind
        if kind == 0:
            return True
        if kind == 1:
            return path == self._path_arg
        if kind == 2:
            return path.startswith(self._path_arg)
        return self._path_arg.fullmatch(path) is not None


def _parse(pattern: str) -> tuple[str, str, int | None, str]:
    if not pattern:
        raise MatchPatternError(pattern, "empty pattern")
    if pattern != pattern.strip():
        raise MatchPatternError(pattern, "leading or trailing whitespace")
    sep = pattern.find("://")
    if sep < 0:
        raise MatchPatternError(
            pattern, "missing scheme: expected SCHEME://HOST/PATH or <all_urls>"
        )
    scheme = pattern[:sep].lower()
    if "*" in scheme and scheme != "*":
        raise MatchPatternError(pattern, "'*' in the scheme must be the only character")
    if scheme != "*" and scheme not in SCHEMES:
        allowed = ", ".join(sorted(SCHEMES))
        raise MatchPatternError(
            pattern, f"unsupported scheme {scheme!r} (use *, {allowed}, or <all_urls>)"
        )
    rest = pattern[sep + 3 :]
    slash = rest.find("/")
    if slash < 0:
        raise MatchPatternError(pattern, "missing path: add '/' or '/*' after the host")
    hostport, path = rest[:slash], rest[slash:]
    if any(ch.isspace() for ch in path):
        raise MatchPatternError(pattern, "whitespace in the path")
    if "#" in path:
        raise MatchPatternError(pattern, "a pattern cannot match a fragment ('#')")
    host, port = _parse_host(pattern, scheme, hostport)
    return scheme, host, port, path


def _parse_host(pattern: str, scheme: str, hostport: str) -> tuple[str, int | None]:
    if scheme == "file":
        if hostport not in ("", "*") and not _HOST_CHARS.match(hostport):
            raise MatchPatternError(pattern, f"invalid host {hostport!r}")
        return hostport.lower(), None
    if not hostport:
        raise MatchPatternError(pattern, "missing host")
    if "@" in hostport:
        raise MatchPatternError(pattern, "a pattern cannot contain userinfo ('@')")
    port: int | None = None
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            raise MatchPatternError(pattern, "unclosed '[' in an IPv6 host")
        host, after = hostport[: close + 1], hostport[close + 1 :]
        if not _IPV6.match(host):
            raise MatchPatternError(pattern, f"invalid IPv6 host {host!r}")
        if after:
            if not after.startswith(":"):
                raise MatchPatternError(pattern, f"unexpected {after!r} after the host")
            port = _parse_port(pattern, after[1:])
        return host.lower(), port
    host, colon, port_text = hostport.partition(":")
    if colon:
        port = _parse_port(pattern, port_text)
    if not host:
        raise MatchPatternError(pattern, "missing host")
    if host == "*":
        return host, port
    if "*" in host:
        if host.startswith("*."):
            if "*" in host[2:]:
                raise MatchPatternError(pattern, "'*' in the host must be at the start")
            if not host[2:] or host[2:].startswith("."):
                raise MatchPatternError(pattern, "missing host name after '*.'")
        elif host.startswith("*"):
            raise MatchPatternError(
                pattern, "'*' in the host must be the only character or be followed by '.'"
            )
        else:
            raise MatchPatternError(pattern, "'*' in the host must be at the start")
    bare = host[2:] if host.startswith("*.") else host
    if not _HOST_CHARS.match(bare) or bare.endswith(".") and len(bare) == 1:
        raise MatchPatternError(pattern, f"invalid host {host!r}")
    if ".." in bare or bare.startswith("."):
        raise MatchPatternError(pattern, f"invalid host {host!r} (empty label)")
    return host.lower(), port


def _parse_port(pattern: str, text: str) -> int | None:
    if text == "*":
        return None
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise MatchPatternError(pattern, f"invalid port {text!r} (1-65535 or *)")
    return int(text)


def _compile_path(path: str) -> tuple[int, object]:
    """0: anything, 1: exact, 2: prefix, 3: regex."""
    if path == "/*":
        return 0, None
    stars = path.count("*")
    if stars == 0:
        return 1, path
    if stars == 1 and path.endswith("*"):
        return 2, path[:-1]
    regex = ".*".join(re.escape(piece) for piece in path.split("*"))
    return 3, re.compile(regex, re.DOTALL)


@lru_cache(maxsize=65536)
def compile_pattern(pattern: str) -> MatchPattern:
    """Compile ``pattern`` (cached), or raise :class:`MatchPatternError` saying why not."""
    return MatchPattern(pattern)
