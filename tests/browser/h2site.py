"""The test site's cancel page over HTTP/2 with TLS (``tests.h2server``), so that Chromium
talks HTTP/2 through waylay: waylay offers the client the protocol the upstream chose.
Requests are recorded like ``Site``'s (method, path, query)."""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

from h2.connection import H2Connection

from tests.browser.site import BODIES
from tests.h2server import H2Server


class H2Site(H2Server):
    def __init__(self, ctx: ssl.SSLContext) -> None:
        super().__init__(ctx)
        self.requests: list[dict] = []
        self.origin = f"https://localhost:{self.port}"

    def paths(self) -> set[str]:
        return {r["path"] for r in self.requests}

    def answer(self, h2: H2Connection, stream_id: int, headers: dict, number: int) -> None:
        parts = urlsplit(headers[":path"])
        self.requests.append(
            {"method": headers[":method"], "path": parts.path, "query": parts.query}
        )
        ctype, body = BODIES.get(parts.path, ("text/plain", b"ok"))
        self.reply(h2, stream_id, body, ctype, ("cache-control", "no-store"))
