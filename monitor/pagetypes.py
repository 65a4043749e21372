"""Resource types with the pages seen so far: the first addon of the chain.

A request without ``Sec-Fetch-Dest`` (a browser talking to a plain-HTTP site) leaves
its type to a guess, and some requests look exactly alike: a ``<script>`` without an
extension and a ``fetch`` (both ``Accept: */*``), an HTML ``<object>`` and an iframe.
The page that asked for them tells: ``PageTypes`` remembers each HTML document such a
browser loads through waylay (``policies.PageElements``) and types each request when its
headers arrive, with the element of the document its ``Referer`` names
(``policies.infer_type``). Everything here runs on the proxy loop.
"""

from __future__ import annotations

from mitmproxy import http

from monitor.record import record_of
from policies import PageElements, infer_type

DOCUMENT_TYPES = frozenset({"main_frame", "sub_frame", "object"})
HTML_TYPES = ("text/html", "application/xhtml+xml")
MAX_BODY = 8 * 1024 * 1024  # a bigger document is not read for its elements


class PageTypes:
    def __init__(self, pages: PageElements | None = None) -> None:
        self.pages = pages if pages is not None else PageElements()

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        rec = record_of(flow)
        if rec.type is None:
            req = flow.request
            # pretty_url: the URL as the browser sees it, which its Referer names
            rec.type = infer_type(req.method, req.pretty_url, req.headers, self.pages)

    def response(self, flow: http.HTTPFlow) -> None:
        """Remember an HTML document a browser loaded without ``Sec-Fetch-Dest``: its
        subresources come without it too. Documents that came with it need nothing."""
        req, resp = flow.request, flow.response
        if resp is None or req.method != "GET" or "sec-fetch-dest" in req.headers:
            return
        rec = record_of(flow)
        if rec.local_response or rec.type not in DOCUMENT_TYPES:
            return
        if not 200 <= resp.status_code < 300:
            return
        content_type = resp.headers.get("content-type", "").strip().lower()
        if not content_type.startswith(HTML_TYPES):
            return
        raw = resp.raw_content
        if raw is None or len(raw) > MAX_BODY:  # streamed through, or too big to read
            return
        try:
            text = resp.get_text(strict=False)
        except ValueError:
            return
        if text:
            self.pages.add(req.pretty_url, text)
