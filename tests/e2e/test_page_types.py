"""Resource types without Sec-Fetch-Dest, through the real proxy: the page a request's
``Referer`` names, seen by waylay first, types a ``<script>`` without extension and an
HTML ``<object>`` (monitor/pagetypes.py), and rules with ``types`` see that type.
httpx sends Chromium's plain-HTTP headers (what tests/browser read from a real one) to
the test site of tests/browser/site.py."""

from __future__ import annotations

import httpx
import pytest

from monitor.record import flow_type, record_of
from tests.browser.site import Site
from tests.helpers import wait_for, write_rules

pytestmark = pytest.mark.e2e

DOCUMENT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
NO_SCRIPTS = '[[rule]]\nid = "no-scripts"\ntypes = ["script"]\naction = "cancel"\n'


@pytest.fixture
def site():
    with Site("page-site") as s:
        yield s


def test_the_referring_page_types_what_looks_alike(settings, site):
    from monitor.session import Session

    write_rules(settings, NO_SCRIPTS)
    s = Session(settings)
    _, port = s.start()
    page = site.url("/")
    try:
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=10) as c:
            # before the page passed, a script without extension looks like a fetch
            early = c.get(site.url("/r/script-noext"), headers={"Accept": "*/*", "Referer": page})
            assert early.status_code == 200
            assert c.get(page, headers={"Accept": DOCUMENT}).status_code == 200
            with pytest.raises(httpx.RemoteProtocolError):  # now a script: cancelled
                c.get(site.url("/r/script-noext"), headers={"Accept": "*/*", "Referer": page})
            fetched = c.get(site.url("/r/fetch-get"), headers={"Accept": "*/*", "Referer": page})
            assert fetched.status_code == 200
            embedded = c.get(
                site.url("/r/object.html"), headers={"Accept": DOCUMENT, "Referer": page}
            )
            framed = c.get(site.url("/r/frame.html"), headers={"Accept": DOCUMENT, "Referer": page})
            assert embedded.status_code == framed.status_code == 200

        def rows():
            return [f for f in s.recorder.flows.values() if record_of(f).retry_of is None]

        flows = wait_for(lambda: len(rows()) == 6 and rows(), what="six rows")
    finally:
        s.stop()
    typed = [(f.request.path, flow_type(f), record_of(f).state) for f in flows]
    assert typed == [
        ("/r/script-noext", "xmlhttprequest", None),
        ("/", "main_frame", None),
        ("/r/script-noext", "script", "cancelled"),
        ("/r/fetch-get", "xmlhttprequest", None),
        ("/r/object.html", "object", None),
        ("/r/frame.html", "sub_frame", None),
    ]
    assert [r["path"] for r in site.requests].count("/r/script-noext") == 1


def test_a_page_is_read_within_a_bound_whatever_its_encoding():
    import gzip
    import zlib

    from monitor.pagetypes import document_text

    page = '<script src="/app"></script>'
    assert document_text(page.encode(), "", "utf-8", 100) == page
    assert document_text(gzip.compress(page.encode()), "gzip", "utf-8", 100) == page
    assert document_text(zlib.compress(page.encode()), "deflate", "utf-8", 100) == page
    raw_deflate = zlib.compressobj(wbits=-15)
    data = raw_deflate.compress(page.encode()) + raw_deflate.flush()
    assert document_text(data, "deflate", "utf-8", 100) == page
    assert document_text("é".encode("latin-1"), "", "latin-1", 100) == "é"
    assert document_text(b"x", "", "no-such-charset", 100) == "x"
    assert document_text(b"\x00\x01", "br", "utf-8", 100) is None  # no bounded reader
    assert document_text(b"not gzip", "gzip", "utf-8", 100) is None
    bomb = gzip.compress(b" " * 200_000_000)  # 200 MB of spaces in ~200 KB
    assert len(bomb) < 1_000_000
    text = document_text(bomb, "gzip", "utf-8", 1000)
    assert text is not None and len(text) == 4000  # the bound, not 200 MB
