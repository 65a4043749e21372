"""monitor/speedups.py: each faster function gives what mitmproxy's own gives, on random
input (names in any case, repeated, non-ASCII, values that are not UTF-8)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from mitmproxy import http

from monitor import speedups
from tests.fuzz.strategies import examples

NAMES = st.sampled_from(
    [
        b"Host",
        b"host",
        b"HOST",
        b"Content-Type",
        b"content-type",
        b"X-\xc3\xa9",
        b"x-\xc3\x89",
        b"set-cookie",
        b"Set-Cookie",
        b"",
    ]
)
FIELDS = st.lists(st.tuples(NAMES | st.binary(max_size=8), st.binary(max_size=12)), max_size=12)
QUERIES = (
    st.sampled_from(["host", "HOST", "Content-Type", "x-é", "X-É", "set-cookie", "", "missing"])
    | NAMES
    | st.text(max_size=6)
    | st.binary(max_size=6)
)


@examples(4)
@given(fields=FIELDS, name=QUERIES)
def test_headers_get_all_is_mitmproxys(fields, name):
    headers = http.Headers(fields)
    assert speedups.headers_get_all(headers, name) == speedups.original_headers_get_all(
        headers, name
    )


def test_installed_it_answers_every_header_read():
    headers = http.Headers([(b"Host", b"a"), (b"ACCEPT", b"x"), (b"accept", b"\xff")])
    before = http.Headers.get_all  # a proxy of another test may have installed it
    try:
        speedups.install()
        assert http.Headers.get_all is speedups.headers_get_all
        assert headers["accept"] == "x, \udcff"
        assert headers.get("host") == "a" and "HOST" in headers and "nope" not in headers
        assert headers.get_all(b"Accept") == ["x", "\udcff"]
        speedups.uninstall()
        assert http.Headers.get_all is not speedups.headers_get_all
        assert headers.get_all(b"Accept") == ["x", "\udcff"]
    finally:
        http.Headers.get_all = before
