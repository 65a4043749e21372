"""monitor/speedups.py: each faster function gives what mitmproxy's own gives, on random
input (names in any case, repeated, non-ASCII, values that are not UTF-8)."""

from __future__ import annotations

import dataclasses
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mitmproxy import http, options, optmanager

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


VALUES = st.sampled_from(
    [None, b"", b"GET", "", "x", 0, 1, True, 8080, 0.5, 1.0e9, [], (), http.Headers()]
)


@examples(4)
@given(
    kind=st.sampled_from([http.RequestData, http.ResponseData]),
    changes=st.dictionaries(st.integers(0, 11), VALUES, max_size=3),
)
def test_message_data_typecheck_is_mitmproxys(kind, changes):
    """Every field given a value of some type (right, wrong, an int for a float, None):
    the faster check passes or raises exactly as mitmproxy's."""
    if kind is http.RequestData:
        data = http.Request.make("GET", "http://example.com/").data
    else:
        data = http.Response.make(200, b"body").data
    fields = dataclasses.fields(data)
    for index, value in changes.items():
        object.__setattr__(data, fields[index % len(fields)].name, value)

    def outcome(check):
        try:
            check(data)
        except TypeError as e:
            return str(e)
        return None

    assert outcome(speedups.message_data_post_init) == outcome(
        speedups.original_message_data_post_init
    )


def test_the_typecheck_reduces_mitmproxys_field_types_to_classes():
    """Each field of a request's and a response's data is checked by isinstance alone
    (else the speed-up would not be one), and a type it cannot reduce is left to
    mitmproxy's check."""
    for kind in (http.RequestData, http.ResponseData):
        for field in dataclasses.fields(kind):
            assert speedups.accepted_classes(field.type) is not None, field
    assert speedups.accepted_classes(typing.Any) is None
    assert speedups.accepted_classes(typing.Sequence[str]) is None
    optional = typing.Optional[float]  # noqa: UP045 (typing.Union, as mitmproxy writes some)
    assert speedups.accepted_classes(optional) == (float, int, type(None))
    assert speedups.accepted_classes(float | None) == (float, int, type(None))


def test_option_reads_are_mitmproxys_and_still_copies():
    """Every option of mitmproxy's core, at its default and set: the same value; a
    mutable value is still a copy the caller may change."""
    opts = options.Options()
    opts.update(ignore_hosts=["a.example"], listen_port=8081, mode=["regular"])
    for name, option in opts._options.items():
        ours, theirs = speedups.option_current(option), speedups.original_option_current(option)
        assert ours == theirs and type(ours) is type(theirs), name
    hosts = speedups.option_current(opts._options["ignore_hosts"])
    hosts.append("b.example")
    assert opts.ignore_hosts == ["a.example"] or opts.ignore_hosts == ("a.example",)


def test_installed_they_answer_for_mitmproxy():
    before = (http.MessageData.__dict__.get("__post_init__"), optmanager._Option.current)
    try:
        speedups.install()
        assert http.MessageData.__post_init__ is speedups.message_data_post_init
        assert optmanager._Option.current is speedups.option_current
        with pytest.raises(TypeError, match="Expected <class 'int'> for port"):
            http.Request(
                "example.com", "80", b"GET", b"http", b"", b"/", b"HTTP/1.1", (), b"", (), 0, 0
            )
        assert options.Options(listen_port=1).listen_port == 1
        speedups.uninstall()
        assert http.MessageData.__post_init__ is not speedups.message_data_post_init
        assert optmanager._Option.current is not speedups.option_current
    finally:
        http.MessageData.__post_init__, optmanager._Option.current = before
