"""A small evaluator of declarativeNetRequest semantics, written from Chrome's reference,
independent of waylay's translation code. Used to check that exported rules block,
allow and redirect exactly the requests waylay's engine decides.

The browser side of a request is its canonical URL (lower-case scheme and host, no
default port, a path starting with ``/``) and its DNR resource type; WebSocket requests
have ``ws(s)://`` URLs and type ``websocket``. The proxy sees the same request with an
``http(s)://`` URL: :func:`proxy_url`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# RuleActionType precedence for rules of equal priority (Chrome's reference)
RANK = {
    "allow": 6,
    "allowAllRequests": 5,
    "block": 4,
    "upgradeScheme": 3,
    "redirect": 2,
    "modifyHeaders": 1,
}
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
BROWSER_TO_WAYLAY_TYPE = {"csp_report": "ping", "webtransport": "other", "webbundle": "other"}


@dataclass(frozen=True)
class Request:
    url: str  # as the browser sends it (canonical)
    type: str = "main_frame"  # DNR ResourceType
    method: str = "get"

    @property
    def proxy_url(self) -> str:
        return proxy_url(self.url)

    @property
    def waylay_type(self) -> str:
        return BROWSER_TO_WAYLAY_TYPE.get(self.type, self.type)


def proxy_url(url: str) -> str:
    """The URL a proxy sees for a browser request: a WebSocket handshake is http(s)."""
    for browser, proxy in (("wss://", "https://"), ("ws://", "http://")):
        if url.startswith(browser):
            return proxy + url[len(browser) :]
    return url


def host_span(url: str) -> tuple[int, int]:
    start = url.index("://") + 3
    if url[start : start + 1] == "[":
        return start, url.index("]", start) + 1
    end = start
    while end < len(url) and url[end] not in "/:?#":
        end += 1
    return start, end


def host_of(url: str) -> str:
    start, end = host_span(url)
    return url[start:end]


@lru_cache(maxsize=4096)
def _compiled(url_filter: str, case_sensitive: bool) -> tuple[str, re.Pattern[str]]:
    """(anchor, regex for the rest) of a urlFilter: ``*`` any characters, ``|`` anchors at
    either end, ``||`` the start of the host or of one of its subdomains, ``^`` a
    separator (anything but a letter, a digit, ``_ - . %``) or the end of the URL."""
    pattern = url_filter
    anchor = ""
    if pattern.startswith("||"):
        anchor, pattern = "domain", pattern[2:]
    elif pattern.startswith("|"):
        anchor, pattern = "left", pattern[1:]
    right = pattern.endswith("|")
    if right:
        pattern = pattern[:-1]
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "^":
            parts.append(r"(?:[^A-Za-z0-9_.%\-]|\Z)")
        else:
            parts.append(re.escape(ch))
    if right:
        parts.append(r"\Z")
    flags = re.DOTALL | (0 if case_sensitive else re.IGNORECASE)
    return anchor, re.compile("".join(parts), flags)


def url_filter_matches(url_filter: str, url: str, case_sensitive: bool = False) -> bool:
    """Whether a DNR urlFilter matches ``url``."""
    anchor, regex = _compiled(url_filter, case_sensitive)
    if anchor == "left":
        starts = [0]
    elif anchor == "domain":
        start, end = host_span(url)
        starts = [start] + [k + 1 for k in range(start, end) if url[k] == "."]
    else:
        return regex.search(url) is not None
    return any(regex.match(url, s) for s in starts)


def _domain_match(host: str, domains: list[str]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def condition_matches(condition: dict, request: Request) -> bool:
    url = request.url
    case_sensitive = condition.get("isUrlFilterCaseSensitive", False)
    if "urlFilter" in condition and not url_filter_matches(
        condition["urlFilter"], url, case_sensitive
    ):
        return False
    if "regexFilter" in condition:
        flags = 0 if case_sensitive else re.IGNORECASE
        if re.search(condition["regexFilter"], url, flags) is None:
            return False
    if "resourceTypes" in condition:
        if request.type not in condition["resourceTypes"]:
            return False
    elif "excludedResourceTypes" in condition:
        if request.type in condition["excludedResourceTypes"]:
            return False
    elif request.type == "main_frame":
        return False  # DNR's default leaves main frames alone
    if "requestMethods" in condition and request.method not in condition["requestMethods"]:
        return False
    if request.method in condition.get("excludedRequestMethods", ()):
        return False
    host = host_of(url)
    if "requestDomains" in condition and not _domain_match(host, condition["requestDomains"]):
        return False
    if _domain_match(host, condition.get("excludedRequestDomains", [])):
        return False
    return True


def _substitute(regex: str, flags: int, url: str, template: str) -> str:
    found = re.search(regex, url, flags)
    assert found is not None

    def expand(m: re.Match[str]) -> str:
        ref = m.group(1)
        if ref == "\\":
            return "\\"
        index = int(ref)
        if index > found.re.groups:
            return ""
        return found.group(index) or ""

    return url[: found.start()] + re.sub(r"\\(\d|\\)", expand, template) + url[found.end() :]


def decide(rules: list[dict], request: Request) -> tuple[str, str | None]:
    """The browser's outcome: ("continue" | "cancel" | "redirect", redirect URL)."""
    matching = [
        r
        for r in rules
        if condition_matches(r["condition"], request)
        # "Upgrade the network request url's scheme to https if the request is http or ftp"
        and (r["action"]["type"] != "upgradeScheme" or request.url.startswith(("http:", "ftp:")))
    ]
    if not matching:
        return "continue", None
    best = max(matching, key=lambda r: (r.get("priority", 1), RANK[r["action"]["type"]], -r["id"]))
    kind = best["action"]["type"]
    if kind in ("allow", "allowAllRequests"):
        return "continue", None
    if kind == "block":
        return "cancel", None
    if kind == "upgradeScheme":
        return "redirect", "https://" + request.url.split("://", 1)[1]
    if kind == "redirect":
        redirect = best["action"]["redirect"]
        if "url" in redirect:
            return "redirect", redirect["url"]
        condition = best["condition"]
        flags = 0 if condition.get("isUrlFilterCaseSensitive", False) else re.IGNORECASE
        return "redirect", _substitute(
            condition["regexFilter"], flags, request.url, redirect["regexSubstitution"]
        )
    raise AssertionError(f"unexpected action {kind}")


def canonical(scheme: str, host: str, port: int | None, path: str) -> str:
    shown = "" if port is None or port == DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{shown}{path}"


HOSTS = (
    "example.com",
    "sub.example.com",
    "a.sub.example.com",
    "example.com.evil.net",
    "notexample.com",
    "other.org",
    "127.0.0.1",
    "[::1]",
)
PORTS = (None, 8080, 80, 443)
PATHS = (
    "/",
    "/a",
    "/a/",
    "/a/b",
    "/A/b",
    "/ab",
    "/x/a/b",
    "/a?x=1",
    "/?a",
    "/foo",
    "/foo/bar",
    "/api/v1/items",
    "/x?y=z",
    "/p.a+th(1)",
)


def browser_requests(
    types: tuple[str, ...] = ("main_frame",), methods: tuple[str, ...] = ("get",)
) -> list[Request]:
    """Canonical browser requests over hosts, ports and paths: http(s) ones with each of
    ``types``, ws(s) ones as ``websocket``."""
    out = []
    seen = set()
    for scheme in ("http", "https", "ws", "wss"):
        for host in HOSTS:
            for port in PORTS:
                for path in PATHS:
                    url = canonical(scheme, host, port, path)
                    if url in seen:
                        continue
                    seen.add(url)
                    kinds = ("websocket",) if scheme.startswith("ws") else types
                    for kind in kinds:
                        for method in methods:
                            out.append(Request(url, kind, method))
    return out
