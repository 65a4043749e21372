"""Hypothesis strategies for rules, match patterns, URLs and the files that hold them."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st

from policies.model import ALL_ACTIONS, EVENTS, RESOURCE_TYPES, Rule

FIELDS = tuple(Rule.model_fields)


def examples(factor: int):
    """``@examples(3)``: this (cheap) test runs 3 times the profile's examples."""
    return settings(max_examples=settings.default.max_examples * factor)


# -- scalars -------------------------------------------------------------------------------

SCHEMES = ("http", "https", "ws", "wss", "ftp", "file", "*", "HTTP", "", "data")
HOST_PIECES = (
    "example.com",
    "a.example.com",
    "*.example.com",
    "*",
    "127.0.0.1",
    "[::1]",
    "[0:0::1]",
    "xn--mnchen-3ya.de",
    "münchen.de",
    "EXAMPLE.com",
    "localhost",
    "a..b",
    ".",
    "",
    "h:8080",
    "h:99999",
    "h:",
    "user@h",
)

url_text = st.text(
    # (a lone surrogate: mitmproxy keeps a path's bytes that are not UTF-8 that way)
    alphabet=st.sampled_from(
        [*"abcAZ019-._~:/?#[]@!$&'()*+,;=% \t\né\x00\x1b\\^|{}<>\"", "\udcff", "𝄞"]
    ),
    max_size=40,
)


@st.composite
def patterns(draw) -> str:
    """Match patterns, mostly well-formed, often not."""
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.text(max_size=40))
    if kind == 1:
        return "<all_urls>"
    scheme = draw(st.sampled_from(SCHEMES))
    host = draw(st.sampled_from(HOST_PIECES))
    path = draw(st.sampled_from(("/*", "/", "", "/a*b", "/*/x?y=*", "/%41", "/ünï", "/**")))
    if kind == 4:
        path += draw(url_text)
    return f"{scheme}://{host}{path}"


@st.composite
def urls(draw) -> str:
    scheme = draw(st.sampled_from(("http", "https", "ws", "wss", "ftp", "HTTPS", "")))
    host = draw(
        st.sampled_from(
            ("example.com", "a.example.com", "b.a.example.com", "127.0.0.1", "[::1]", "münchen.de")
        )
        | st.text(max_size=12)
    )
    port = draw(st.sampled_from(("", ":80", ":443", ":8080", ":0", ":99999", ":x")))
    path = draw(st.sampled_from(("/", "/a", "/aaaaaaaaaaaaaaaaaaaaaaaaab", "/x?y=1#f")) | url_text)
    return f"{scheme}://{host}{port}{path}"


REGEX_PIECES = (
    "^https?://",
    "^https://a\\.example\\.com/",
    "(.*)",
    "(a+)+$",
    "[a-z]+",
    "\\d{2,4}",
    "(?i)",
    "(?=x)",
    "(a)\\1",
    "\\z",
    "\\Z",
    "[[:alpha:]]",
    "\\pL",
    "a{1001}",
    "a{4294967296}",
    "(?P<n>x)",
    "(?<n>x)",
    "|",
    "(",
    ")",
    "[",
    "\\",
    "é",
    "\x00",
    "{,3}",
)

regexes = st.lists(st.sampled_from(REGEX_PIECES) | st.text(max_size=6), max_size=6).map("".join)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

FIELD_VALUES = {
    "id": st.text(max_size=12) | st.sampled_from(("r", "a b", "x\x1b")),
    "event": st.sampled_from(EVENTS) | st.text(max_size=8),
    "urls": st.lists(patterns(), max_size=3),
    "exclude_urls": st.lists(patterns(), max_size=2),
    "regex": regexes,
    "filter": st.sampled_from(("~d example.com", "~m POST", "~u x & !~h y", "~q", "(", "~bogus")),
    "methods": st.lists(st.sampled_from(("GET", "post", "PROPFIND", "", "G T")), max_size=3),
    "types": st.lists(st.sampled_from(RESOURCE_TYPES + ("nope",)), max_size=3),
    "status": st.integers(0, 1000) | st.lists(st.integers(0, 700), max_size=3),
    "realm": st.text(max_size=8),
    "proxy": st.booleans(),
    "fingerprint": st.sampled_from(("sha256:" + "ab" * 32, "AB:" * 31 + "AB", "nope")),
    "action": st.sampled_from(sorted(ALL_ACTIONS)) | st.text(max_size=8),
    "url": st.sampled_from(("https://b.example/\\1", "https://b.example/", "\\0", "nope", "")),
    "respond_status": st.integers(0, 1000),
    "headers": st.dictionaries(
        st.sampled_from(("X-A", "bad name", "")), st.text(max_size=8), max_size=2
    ),
    "body": st.text(max_size=20),
    "body_file": st.sampled_from(("body.json", "/etc/passwd", "../x", "", "~/x")),
    "username": st.text(max_size=8),
    "secret": st.sampled_from(("api-key", "not a name", "")),
    "priority": st.integers(-(2**40), 2**40),
    "enabled": st.booleans(),
    "times": st.integers(-2, 5),
    "note": st.text(max_size=20),
}


@st.composite
def rule_data(draw) -> dict:
    """A rule's data as a file would hold it: typed fields, wrong types, unknown keys."""
    data: dict = {}
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=8, unique=True)):
        data[name] = draw(
            FIELD_VALUES[name] | json_values if draw(st.booleans()) else FIELD_VALUES[name]
        )
    if draw(st.integers(0, 3)):
        data.setdefault("id", draw(FIELD_VALUES["id"]))
        data.setdefault("action", draw(st.sampled_from(sorted(ALL_ACTIONS))))
    if not draw(st.integers(0, 9)):
        data[draw(st.text(max_size=6))] = draw(json_values)
    return data


@st.composite
def request_rules(draw, index: int) -> Rule:
    """A valid request rule of the kinds the engine indexes differently."""
    data: dict = {"id": f"r{index}", "action": draw(st.sampled_from(("continue", "cancel", "ask")))}
    kind = draw(st.integers(0, 3))
    if kind in (0, 1):
        data["urls"] = [
            draw(
                st.sampled_from(
                    (
                        "*://example.com/*",
                        "*://*.example.com/*",
                        "https://a.example.com/a*",
                        "http://127.0.0.1/*",
                        "*://*/aaaa*",
                        "<all_urls>",
                        "https://*/*",
                        "*://[::1]:8080/*",
                    )
                )
            )
            for _ in range(draw(st.integers(1, 2)))
        ]
    if kind in (1, 2):
        data["regex"] = draw(
            st.sampled_from(
                (
                    "^https://a\\.example\\.com/",
                    "^https?://example\\.com/(.*)$",
                    "(a+)+$",
                    "(?i)EXAMPLE",
                    "[?&]utm_",
                    "^http://127\\.0\\.0\\.1(:\\d+)?/",
                    "é",
                )
            )
        )
    if draw(st.booleans()):
        data["exclude_urls"] = ["*://*.a.example.com/*"]
    if draw(st.booleans()):
        data["methods"] = draw(st.lists(st.sampled_from(("GET", "POST")), min_size=1, max_size=2))
    if draw(st.booleans()):
        data["types"] = draw(st.lists(st.sampled_from(RESOURCE_TYPES), min_size=1, max_size=2))
    data["priority"] = draw(st.integers(-2, 3))
    data["enabled"] = draw(st.booleans())
    return Rule.model_validate(data)


rule_sets = st.integers(0, 8).flatmap(lambda n: st.tuples(*(request_rules(i) for i in range(n))))
