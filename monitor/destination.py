"""Where a request really goes, whatever its Host header says.

mitmproxy's ``pretty_url``/``pretty_host`` prefer the ``Host`` header (``:authority`` in
HTTP/2), which the client writes freely; the connection goes to ``request.host`` and
``request.port`` (the absolute-form URL, the CONNECT target, the reverse or upstream
target). Rules, breakpoints, the flow list and exports use the destination, so that
``curl -x waylay http://blocked/ -H 'Host: allowed'`` cannot slip past a rule about
``blocked``; a Host header naming somewhere else is shown as a note.
"""

from __future__ import annotations

from mitmproxy import http
from mitmproxy.net.http import url as mitm_url


def destination_url(flow: http.HTTPFlow) -> str:
    """The URL of the request's real destination (``host:port`` for a CONNECT)."""
    return flow.request.url


def destination_host(flow: http.HTTPFlow) -> str:
    return flow.request.host


def host_mismatch(flow: http.HTTPFlow) -> str | None:
    """``Host header says X`` when the Host header (or ``:authority``) names another host
    or port than the one the request goes to; None when they agree or there is none."""
    req = flow.request
    header = req.host_header
    if not header:
        return None
    # what nearly every client sends, told without parsing: host:port, or the host
    # alone on the scheme's default port (an IPv6 host is always parsed: brackets)
    to_host, to_port = req.host, req.port
    if ":" not in to_host and (
        header == f"{to_host}:{to_port}"
        or (header == to_host and to_port == mitm_url.default_port(req.scheme))
    ):
        return None
    try:
        host, port = mitm_url.parse_authority(header, check=False)
    except ValueError:
        return f"Host header says {header!r}, not the destination"
    if port is None:
        port = mitm_url.default_port(req.scheme)
    same_host = host.lower().rstrip(".") == req.host.lower().rstrip(".")
    if same_host and port == req.port:
        return None
    return f"Host header says {header}, request goes to {mitm_url.hostport(req.scheme, req.host, req.port)}"
