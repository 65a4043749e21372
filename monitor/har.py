"""HAR 1.2 from flows, with mitmproxy's writer; credentials waylay added are redacted."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from mitmproxy import http, version
from mitmproxy.addons.savehar import SaveHar

from monitor.snapshot import META

REDACTED = "(added by waylay; redacted)"
PROXY_REDACTED = "(redacted)"
ALWAYS_REDACTED = ("proxy-authorization",)
"""Request headers never written to a HAR: the proxy's own password, which a client
sends even when the proxy rejects it (407), unlike the headers to the upstream."""


def make_har(flows: Iterable[http.HTTPFlow]) -> dict:
    flows = [f for f in flows if isinstance(f, http.HTTPFlow)]
    har = SaveHar().make_har(flows)
    har["log"]["creator"] = {
        "name": "waylay",
        "version": "0.1.0",
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
        m = flow.metadata.get(META) or {}
        if flow.error is not None or m.get("client_gone"):
            # The response failed (reset mid-body, bad chunk, silence after the headers):
            # the client did not get this status. Status 0, as browsers record failures.
            why = "client gone" if m.get("client_gone") else flow.error.msg
            entry["response"]["status"] = 0
            entry["response"]["statusText"] = f"error: {why}"
            entry["response"]["_error"] = why
        added = {h.lower() for h in m.get("added_headers", ())}
        for header in entry["request"]["headers"]:
            name = header["name"].lower()
            if name in added:
                header["value"] = REDACTED
            elif name in ALWAYS_REDACTED:
                header["value"] = PROXY_REDACTED
    return har


def write_har(flows: Iterable[http.HTTPFlow], path: Path | str) -> int:
    """Write flows as HAR 1.2 to ``path`` atomically; returns the number of entries."""
    har = make_har(flows)
    path = Path(path)
    # A fresh temp file of a random name, created exclusively (O_EXCL, mode 0600) in the
    # destination's folder: nothing planted at a predictable name is followed. The HAR
    # holds cookies and tokens, so the final file is 0600 too (os.replace keeps it).
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(har, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return len(har["log"]["entries"])
