"""HAR 1.2 from flows, with mitmproxy's writer; credentials waylay added are redacted."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from mitmproxy import http, version
from mitmproxy.addons.savehar import SaveHar

from monitor import VERSION
from monitor.record import REDACTED, record_of
from policies.atomic import write_atomic


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
        added = {h.lower() for h in record_of(flow).added_headers}
        if not added:
            continue
        for header in entry["request"]["headers"]:
            if header["name"].lower() in added:
                header["value"] = REDACTED
    return har


def write_har(flows: Iterable[http.HTTPFlow], path: Path | str) -> int:
    """Write flows as HAR 1.2 to ``path`` atomically; returns the number of entries."""
    har = make_har(flows)
    write_atomic(Path(path), json.dumps(har, indent=2), backup=False)
    return len(har["log"]["entries"])
