"""One flow as a curl command, with mitmproxy's own exporter.

mitmproxy's ``curl_command`` reads ``ctx.options.export_preserve_original_ip``, an option
only its ``Export`` addon declares; waylay's embedded proxy does not load that addon, so
for the length of the call ``ctx.options`` is an option set that has it (the call runs on
the proxy's loop, where nothing else runs meanwhile).

Two things are done differently from the exporter's output, both so that running the
command sends the request that was recorded:

- the body goes in ``--data-raw``, not ``-d``: curl reads ``-d @name`` as a file name;
- a body with line breaks or other control characters is passed as it is, quoted for
  the shell, where mitmproxy 11 writes them as ``\\xNN`` text (12 uses ``$(printf …)``,
  which drops trailing newlines).
"""

from __future__ import annotations

import shlex

from mitmproxy import exceptions, http
from mitmproxy.addons import export

from monitor.mitmctx import lent_options

__all__ = ["curl_command"]


def curl_command(flow: http.HTTPFlow) -> str:
    """The flow's request as a shell command running curl (raises ValueError when it
    cannot be one: not an HTTP flow, or a body that is not text)."""
    if not isinstance(flow, http.HTTPFlow) or flow.request is None:
        raise ValueError("only HTTP requests can be exported as curl commands")
    with lent_options("export_preserve_original_ip", export.Export().load):
        try:
            command = export.curl_command(flow)
        except exceptions.CommandError as exc:
            raise ValueError(f"cannot export this request as curl: {exc}") from None
    command = _to_destination(command, flow.request)
    request = flow.request.copy()
    request.decode(strict=False)
    if not request.content:
        return command
    return _with_raw_body(command, request)


def _to_destination(command: str, request: http.Request) -> str:
    """mitmproxy's exporter writes ``pretty_url``, which trusts the Host header: the URL
    becomes the destination the request really went to (the Host header stays a -H)."""
    shown, real = shlex.quote(request.pretty_url), shlex.quote(request.url)
    if shown == real:
        return command
    at = command.rfind(" " + shown)
    if at < 0:
        raise ValueError("cannot export this request as curl: unexpected exporter output")
    return command[:at] + " " + real + command[at + 1 + len(shown) :]


def _with_raw_body(command: str, request: http.Request) -> str:
    try:
        text = (request.content or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("cannot export this request as curl: its body is not UTF-8 text") from None
    if "\x00" in text:
        raise ValueError("cannot export this request as curl: its body contains NUL bytes")
    try:
        shown = export.request_content_for_console(request)
    except exceptions.CommandError as exc:
        raise ValueError(f"cannot export this request as curl: {exc}") from None
    for suffix in (f" -d {shown}", f" -d {shlex.quote(shown)}"):
        if command.endswith(suffix):
            return command[: -len(suffix)] + " --data-raw " + shlex.quote(text)
    raise ValueError("cannot export this request as curl: unexpected exporter output")
