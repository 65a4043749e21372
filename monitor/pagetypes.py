"""Resource types with the pages seen so far: the first addon of the chain.

A request without ``Sec-Fetch-Dest`` (a browser talking to a plain-HTTP site) leaves
its type to a guess, and some requests look exactly alike: a ``<script>`` without an
extension and a ``fetch`` (both ``Accept: */*``), an HTML ``<object>`` and an iframe.
The page that asked for them tells: ``PageTypes`` remembers each HTML document such a
browser loads through waylay (``policies.PageElements``) and types each request when its
headers arrive, with the element of the document its ``Referer`` names
(``policies.infer_type``). Reading a document takes time (about 0.1 s for a 200 KB page
with 6,000 elements): it runs in a thread of its own while that one response waits, so
other clients never wait for it, and the document is known before the browser has it.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor

from mitmproxy import http
from mitmproxy.net.http.headers import parse_content_type

from monitor.record import flow_type, record_of
from policies import PageElements, infer_type

DOCUMENT_TYPES = frozenset({"main_frame", "sub_frame", "object"})
HTML_TYPES = ("text/html", "application/xhtml+xml")
MAX_BODY = 8 * 1024 * 1024  # a bigger document is not read for its elements


class PageTypes:
    def __init__(self, pages: PageElements | None = None) -> None:
        self.pages = pages if pages is not None else PageElements()
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="waylay-pages")

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if not self.pages:  # no page seen: the type is inferred when first asked, as ever
            return
        rec = record_of(flow)
        if rec.type is None:
            req = flow.request
            # pretty_url: the URL as the browser sees it, which its Referer names
            rec.type = infer_type(req.method, req.pretty_url, req.headers, self.pages)

    def done(self) -> None:
        self._reader.shutdown(wait=False, cancel_futures=True)

    def response(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        """Remember an HTML document a browser loaded without ``Sec-Fetch-Dest``: its
        subresources come without it too. Documents that came with it need nothing."""
        req, resp = flow.request, flow.response  # the cheapest tests first: every flow
        if resp is None or not 200 <= resp.status_code < 300 or req.method != "GET":
            return None
        content_type = resp.headers.get("content-type", "").strip().lower()
        if not content_type.startswith(HTML_TYPES) or "sec-fetch-dest" in req.headers:
            return None
        rec = record_of(flow)
        if rec.local_response:
            return None
        if rec.type is None:  # no page was known when it was asked for
            if "html" not in req.headers.get("accept", ""):
                return None  # not asked for as a document (only pages type an <object>)
            flow_type(flow)
        if rec.type not in DOCUMENT_TYPES:
            return None
        raw = resp.raw_content
        if not raw or len(raw) > MAX_BODY:  # empty, streamed through, or too big to read
            return None
        encoding = resp.headers.get("content-encoding", "").strip().lower()
        parsed = parse_content_type(content_type)
        charset = parsed[2].get("charset", "utf-8") if parsed else "utf-8"
        return self._remember(req.pretty_url, raw, encoding, charset)

    async def _remember(self, url: str, raw: bytes, encoding: str, charset: str) -> None:
        loop = asyncio.get_running_loop()
        read = await loop.run_in_executor(self._reader, self._read, url, raw, encoding, charset)
        if read is not None:
            self.pages.keep(*read)

    def _read(self, url: str, raw: bytes, encoding: str, charset: str):
        text = document_text(raw, encoding, charset, self.pages.max_chars)
        return self.pages.read(url, text) if text else None


def document_text(raw: bytes, encoding: str, charset: str, max_chars: int) -> str | None:
    """The start of a document as text, decompressed with a bound (a small gzip body can
    unpack to gigabytes); None for an encoding that cannot be read that way (br, zstd)."""
    limit = max_chars * 4  # enough bytes for max_chars characters of any UTF-8
    if encoding in ("", "identity"):
        data = raw[:limit]
    elif encoding in ("gzip", "x-gzip", "deflate"):
        try:  # gzip and zlib headers (wbits 47), then raw deflate
            data = zlib.decompressobj(47).decompress(raw, limit)
        except zlib.error:
            try:
                data = zlib.decompressobj(-15).decompress(raw, limit)
            except zlib.error:
                return None
    else:
        return None
    try:
        return data.decode(charset, errors="replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", errors="replace")
