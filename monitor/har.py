"""HAR 1.2 from flows, with mitmproxy's writer; credentials waylay added are redacted."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from mitmproxy import http, version
from mitmproxy.addons.savehar import SaveHar

from monitor import VERSION
from monitor.record import REDACTED, record_of
from policies.files import write_atomic

PROXY_REDACTED = "(redacted)"
ALWAYS_REDACTED = ("proxy-authorization",)
"""Request headers never written to a HAR: the proxy's own password, which a client
sends even when the proxy rejects it (407), unlike the headers to the upstream."""


def make_har(flows: Iterable[http.HTTPFlow]) -> dict:
    flows = [f for f in flows if isinstance(f, http.HTTPFlow)]
    har = SaveHar().make_har(flows)
    har["log"]["creator"] = {
        "name": "waylay",
        "version": VERSION,
        "comment": f"mitmproxy {version.VERSION}",
    }
    for flow, entry in zip(flows, har["log"]["entries"], strict=True):
        # mitmproxy leaves `content` empty for flows without a response (cancelled,
        # errored); HAR 1.2 requires size and mimeType.
        content = entry["response"].setdefault("content", {})
        content.setdefault("size", 0)
        content.setdefault("mimeType", "x-unknown")
        # mitmproxy writes pretty_url, which trusts the Host header: the destination.
        if flow.request.method != "CONNECT":
            entry["request"]["url"] = flow.request.url
        rec = record_of(flow)
        if flow.error is not None or rec.client_gone:
            # The response failed (reset mid-body, bad chunk, silence after the headers):
            # the client did not get this status. Status 0, as browsers record failures.
            why = "client gone" if rec.client_gone or flow.error is None else flow.error.msg
            entry["response"]["status"] = 0
            entry["response"]["statusText"] = f"error: {why}"
            entry["response"]["_error"] = why
        added = {h.lower() for h in rec.added_headers}
        for header in entry["request"]["headers"]:
            name = header["name"].lower()
            if name in added:
                header["value"] = REDACTED
            elif name in ALWAYS_REDACTED:
                header["value"] = PROXY_REDACTED
    return har


def write_har(flows: Iterable[http.HTTPFlow] | dict, path: Path | str) -> int:
    """Write flows (or a HAR ``make_har`` made) as HAR 1.2 to ``path`` atomically;
    returns the number of entries."""
    har = flows if isinstance(flows, dict) else make_har(flows)
    # The one atomic writer: a temp file of a random name created exclusively (mkstemp:
    # O_EXCL) in the destination's folder, so nothing planted at a predictable name is
    # followed; 0600, since a HAR holds cookies and tokens.
    write_atomic(Path(path), json.dumps(har, indent=2), backup=False, mode=0o600)
    return len(har["log"]["entries"])
