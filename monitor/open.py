"""``waylay open FILE``: a saved session in the screen, without a proxy.

FILE is a mitmproxy flow file (``mitmdump -w``, ``waylay --save``, ``w`` in the screen)
or a HAR file (waylay's, mitmproxy's exporter, a browser's devtools). The flows are read
once, before the screen starts, so a file that cannot be read is one line and exit 2.
Browsing, filters, details and exports work as in a live session; nothing can be paused
or answered (``FileController`` says so).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path

from mitmproxy import flow as mflow
from mitmproxy import flowfilter, http
from mitmproxy.io import tnetstring
from mitmproxy.io.compat import migrate_flow
from mitmproxy.io.har import request_to_flow

from monitor.bodyview import render
from monitor.exports import curl_command
from monitor.har import write_har
from monitor.options_check import OneLineParser
from monitor.record import KEY, FlowRecord, record_of
from monitor.save import write_flows
from monitor.snapshot import filter_error, matches, snapshot
from monitor.store import SessionStore, StoreError, flow_from_row
from policies.printable import printable
from widgets.model import Answer, BodyView, FilterMatch, FlowView

log = logging.getLogger("waylay.open")

READ_ONLY = "read-only: this is a saved session, not a live proxy"


class OpenError(ValueError):
    """The file cannot be opened; the message is one line for people."""


# -- reading ------------------------------------------------------------------------


def _har_flows(data: bytes, path: Path) -> list[http.HTTPFlow]:
    try:
        har = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise OpenError(f"{path}: not UTF-8 text, so not HAR ({e.reason})") from None
    except json.JSONDecodeError as e:
        raise OpenError(f"{path}: not JSON (line {e.lineno} column {e.colno}: {e.msg})") from None
    entries = har.get("log", {}).get("entries") if isinstance(har, dict) else None
    if not isinstance(har, dict) or not isinstance(har.get("log"), dict):
        raise OpenError(f'{path}: JSON, but not HAR (no "log" object)')
    if not isinstance(entries, list):
        raise OpenError(f'{path}: HAR without a "log.entries" list')
    flows = []
    for n, entry in enumerate(entries, 1):
        try:
            flows.append(_har_flow(entry))
        except Exception as e:  # KeyError, ValueError, TypeError from a malformed entry
            what = f"missing {e}" if isinstance(e, KeyError) else str(e) or type(e).__name__
            raise OpenError(f"{path}: HAR entry {n} cannot be read: {what}") from None
    return flows


_HAR_VERSIONS = {
    "h2": "HTTP/2.0",
    "http/2": "HTTP/2.0",
    "http/2.0": "HTTP/2.0",
    "h3": "HTTP/3",
    "http/3": "HTTP/3",
    "http/3.0": "HTTP/3",
}
"""HAR ``httpVersion`` spellings (Chrome's "http/2.0", Firefox's "HTTP/2", ALPN's "h2")
as mitmproxy names the versions. Its reader sets "HTTP/2", which its own ``is_http2``
does not take for HTTP/2, and anything else it does not know to HTTP/1.1."""


def _har_flow(entry: dict) -> http.HTTPFlow:
    """One HAR entry as a flow: mitmproxy's reader, then what browsers' HARs hold that it
    takes literally. HTTP/2 and HTTP/3 pseudo-headers (``:authority``, ``:path``…, which
    Chrome lists among the request headers) are not headers: ``:authority`` becomes the
    request's authority, and a request that has them is HTTP/2 when its entry says no
    version. Status 0 (Chrome, Firefox and waylay write it for a request that
    got no response: blocked, cancelled, failed) is an error, not a response."""
    flow = request_to_flow(entry)
    for part, key in ((flow.request, "request"), (flow.response, "response")):
        version = str(entry[key].get("httpVersion") or "").lower()
        if part is not None and version in _HAR_VERSIONS:
            part.http_version = _HAR_VERSIONS[version]
    request = flow.request
    pseudo = [k for k in request.headers if k.startswith(":")]
    if pseudo:
        authority = request.headers.get(":authority")
        for name in pseudo:
            del request.headers[name]
        if not (request.is_http2 or request.is_http3):  # no version given (a failed request)
            request.http_version = "HTTP/2.0"  # pseudo-headers: HTTP/2's, or HTTP/3's
        if authority:
            request.authority = authority
    if flow.response is not None:
        for name in [k for k in flow.response.headers if k.startswith(":")]:
            del flow.response.headers[name]
        if flow.response.status_code == 0:
            got = entry["response"]
            why = got.get("_error") or got.get("statusText") or "no response"
            flow.response = None
            flow.error = mflow.Error(str(why), request.timestamp_end or request.timestamp_start)
    return flow


def _dump_flows(data: bytes, path: Path) -> tuple[list[mflow.Flow], str | None]:
    """Flows of a mitmproxy flow file, and a warning when its end is cut off (a crash)."""
    flows: list[mflow.Flow] = []
    rest = memoryview(data)
    while rest:
        try:
            state, rest = tnetstring.pop(rest)
        except (ValueError, TypeError, IndexError):
            if not flows:
                raise OpenError(f"{path}: neither a mitmproxy flow file nor HAR") from None
            return flows, (
                f"the file ends in the middle of a flow (a crash while writing?); "
                f"{len(flows)} flows read"
            )
        if not isinstance(state, dict):
            raise OpenError(f"{path}: neither a mitmproxy flow file nor HAR")
        try:
            flows.append(mflow.Flow.from_state(migrate_flow(state)))
        except Exception as e:
            raise OpenError(
                f"{path}: flow {len(flows) + 1} cannot be read: {_first_line(e)}"
            ) from None
    return flows, None


def read_flows(path: Path | str) -> tuple[list[http.HTTPFlow], list[str]]:
    """The HTTP flows of ``path`` and warnings for people; raises ``OpenError``."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise OpenError(f"{path}: is a folder, not a file") from None
    except OSError as e:
        raise OpenError(f"{path}: {e.strerror or e}") from None
    warnings: list[str] = []
    if data.startswith(b"SQLite format 3\x00"):
        return _session_flows(path, warnings)
    if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"{", b"[")):
        flows: list[mflow.Flow] = list(_har_flows(data, path))
    else:
        flows, warning = _dump_flows(data, path)
        if warning:
            warnings.append(warning)
    http_flows = [f for f in flows if isinstance(f, http.HTTPFlow)]
    if len(http_flows) < len(flows):
        other = len(flows) - len(http_flows)
        warnings.append(
            f"{other} non-HTTP flow{'s' if other != 1 else ''} (TCP, UDP, DNS) not shown"
        )
    if not flows:
        raise OpenError(f"{path}: holds no flows")
    return http_flows, warnings


SESSION_LIMIT = 50_000
"""The newest flows of a session file (``--session``) that ``waylay open`` holds in
memory; the older ones are read from the file as the list shows them."""


def _session_flows(path: Path, warnings: list[str]) -> tuple[list[http.HTTPFlow], list[str]]:
    store = SessionStore(path)
    try:
        store.open_read_only()
        total = store.count()
        rows = store.newest(SESSION_LIMIT)
    except (StoreError, sqlite3.Error) as e:
        text = str(e)
        raise OpenError(text if text.startswith(str(path)) else f"{path}: {text}") from None
    finally:
        store.close()
    if not rows:
        raise OpenError(f"{path}: holds no flows")
    if total > len(rows):
        warnings.append(
            f"{total:,} flows in the session: the newest {len(rows):,} are in memory, "
            "the older ones are read from the file as you scroll up to them"
        )
    return [flow_from_row(r) for r in rows], warnings


def _prepare(flow: http.HTTPFlow) -> None:
    """Make a read flow look finished to the screen, with waylay's record if it has one
    (saved as plain data: ``FlowRecord.to_dict``)."""
    saved = flow.metadata.get(KEY)
    rec = saved if isinstance(saved, FlowRecord) else FlowRecord.from_dict(saved)
    flow.metadata[KEY] = rec
    rec.done = True
    if flow.response is None and flow.error is None and rec.state is None:
        rec.state = "error"
        rec.note("the file holds no response for this flow")


# -- the controller -------------------------------------------------------------------


class FileController:
    """``widgets.model.Controller`` for flows read from a file: everything that reads."""

    def __init__(self, path: Path, flows: Iterable[http.HTTPFlow]) -> None:
        self.path = path
        self.flows: dict[str, http.HTTPFlow] = {}
        self._filter_generation = 0
        for f in flows:
            _prepare(f)
            self.flows[f.id] = f

    def views(self) -> list[FlowView]:
        return [snapshot(f, seq) for seq, f in enumerate(self.flows.values(), 1)]

    @property
    def address(self) -> str:
        return str(self.path)

    @property
    def mode(self) -> str:
        return "read-only"

    @property
    def ask_default(self) -> str:
        return "continue"

    def answer(self, flow_id: str, event: str, answer: Answer) -> str | None:
        return READ_ONLY

    def preview_rule(self, flow_id: str, event: str, answer: Answer) -> str | None:
        return None

    def set_breakpoint(self, spec: str) -> str | None:
        return READ_ONLY if spec.strip() else None

    def toggle_breakpoints(self) -> bool:
        return False

    def check_filter(self, expr: str) -> str | None:
        return filter_error(expr)

    def apply_filter(self, expr: str) -> tuple[FilterMatch | None, str | None]:
        """The flows never change here: the match of every flow, once."""
        expr = expr.strip()
        if not expr:
            return None, None
        try:
            flt = flowfilter.parse(expr)
        except ValueError as e:
            return None, f"bad filter expression: {e}"
        self._filter_generation += 1
        matching = frozenset(fid for fid, f in self.flows.items() if matches(flt, f))
        return FilterMatch(self._filter_generation, matching), None

    def clear_finished(self) -> None:
        self.flows.clear()  # the file stays as it is

    def _chosen(self, flow_ids: list[str] | None) -> list[http.HTTPFlow]:
        if flow_ids is None:
            return list(self.flows.values())
        return [self.flows[i] for i in flow_ids if i in self.flows]

    def export_curl(self, flow_id: str) -> str:
        flow = self.flows.get(flow_id)
        if flow is None:
            raise ValueError("that flow is no longer listed")
        return curl_command(flow)

    def _older(self, older: str | None) -> Iterable[http.HTTPFlow]:
        """Flows kept only in the file (a session file's older ones): none here."""
        return ()

    def export_har(
        self, path: str, flow_ids: list[str] | None = None, older: str | None = None
    ) -> int:
        return write_har([*self._older(older), *self._chosen(flow_ids)], path)

    def save_flows(
        self, path: str, flow_ids: list[str] | None = None, older: str | None = None
    ) -> int:
        return write_flows(itertools.chain(self._older(older), self._chosen(flow_ids)), path)

    def render_body(self, flow_id: str, part: str, mode: str) -> BodyView | None:
        flow = self.flows.get(flow_id)
        if flow is None:
            return None
        return render(flow.request if part == "request" else flow.response, flow, mode)

    def delete_flow(self, flow_id: str) -> str | None:
        return READ_ONLY

    def replay(self, flow_id: str) -> str | None:
        return READ_ONLY  # there is no proxy to send it through

    def send_request(self, flow_id: str, changes: dict | None) -> str | None:
        return READ_ONLY

    def event_log(self, limit: int = 200) -> list[tuple[float, str, str]]:
        return []  # no proxy, no events

    def export_rules(self, fmt: str) -> tuple[str, list[str]]:
        raise ValueError("a saved session has no rules file to export")


class SessionFileController(FileController):
    """A session file (``--session``): the newest flows in memory as ``FileController``,
    the older ones read from the file by range (``widgets.model.OlderFlows``)."""

    def __init__(self, path: Path, flows: list[http.HTTPFlow]) -> None:
        super().__init__(path, flows)
        seqs = [record_of(f).store_seq for f in flows]
        self.below = min((s for s in seqs if s is not None), default=1)
        self.store = SessionStore(path)
        self.store.open_read_only()

    def older_flows(self, expr: str, start: int, count: int) -> tuple[int, list[FlowView]]:
        return self.store.older(expr, self.below, start, count)

    def older_progress(self, expr: str) -> tuple[int, int] | None:
        return self.store.older_progress.get(expr.strip())

    def _older(self, older: str | None) -> Iterable[http.HTTPFlow]:
        if older is None:
            return ()
        return self.store.older_http_flows(older, self.below)

    def export_curl(self, flow_id: str) -> str:
        if flow_id in self.flows:
            return super().export_curl(flow_id)
        found = self.store.flow_by_id(flow_id)
        if found is None:
            raise ValueError("that flow is no longer listed")
        return curl_command(found[1])

    def stored_flow(self, flow_id: str) -> FlowView | None:
        found = self.store.flow_by_id(flow_id)
        if found is None:
            return None
        seq, flow = found
        _prepare(flow)
        return snapshot(flow, seq)

    def render_body(self, flow_id: str, part: str, mode: str) -> BodyView | None:
        if flow_id in self.flows:
            return super().render_body(flow_id, part, mode)
        found = self.store.flow_by_id(flow_id)
        if found is None:
            return None
        flow = found[1]
        return render(flow.request if part == "request" else flow.response, flow, mode)


# -- the command ----------------------------------------------------------------------


def open_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="waylay open",
        description="Browse a saved session (a mitmproxy flow file or HAR) without a proxy.",
    )
    p.add_argument("file", type=Path, help="mitmproxy flow file (mitmdump -w, --save) or HAR")
    return p


def make_open_app(path: Path | str):
    """The screen on the flows of ``path`` (raises ``OpenError``); used by the tests."""
    from widgets.app import WaylayApp

    path = Path(path).expanduser()
    flows, warnings = read_flows(path)
    controller: FileController
    if _is_session_file(path):
        try:
            controller = SessionFileController(path, flows)
        except (StoreError, sqlite3.Error) as e:
            raise OpenError(f"{path}: {e}") from None
    else:
        controller = FileController(path, flows)
    views = controller.views()

    class OpenedApp(WaylayApp):
        def on_mount(self) -> None:
            super().on_mount()
            self.push_flows(views)
            for warning in warnings:
                self.notify(warning, severity="warning", timeout=10, markup=False)

    app = OpenedApp(controller, title_info={"file": path.name})
    app.sub_title = f"{path} (read-only)"
    return app


def _is_session_file(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def open_main(argv: list[str]) -> int:
    args = open_parser().parse_args(argv)
    try:
        app = make_open_app(args.file)
    except OpenError as e:
        print(f"waylay: {printable(e)}", file=sys.stderr)
        return 2
    app.run()
    return 0


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
