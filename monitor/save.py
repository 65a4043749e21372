"""Flows in mitmproxy's own flow format (what ``mitmdump -w`` writes, ``mitmdump -r`` reads).

``FlowSaver`` is an addon at the end of the chain: every finished flow is appended to the
file as it finishes (``--save FILE``). ``write_flows`` saves a list of flows at once (``w``
in the screen). Both write waylay's per-flow record (trace, notes, rule: ``FlowRecord.to_dict``)
as plain data in the flow's metadata, so ``waylay open`` shows it again, and hide the
values of headers waylay itself added (credentials), as the HAR export does. A saved
file holds cookies and tokens: it is made readable by its owner only (0600).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from mitmproxy import http
from mitmproxy.io import tnetstring

from monitor.record import KEY, REDACTED, record_of
from policies.files import write_atomic

log = logging.getLogger("waylay.save")


class SaveError(OSError):
    """The flow file cannot be written; the message is one line for people."""


def plain(value: object) -> object:
    """``value`` as data tnetstring can hold (dataclasses, sets and tuples made plain)."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((plain(v) for v in value), key=repr)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)


def flow_state(flow: http.HTTPFlow) -> dict:
    """``flow.get_state()`` made safe to write: plain metadata (waylay's record as
    ``FlowRecord.to_dict``), added credentials hidden."""
    state = flow.get_state()
    metadata = {}
    for key, value in state.get("metadata", {}).items():
        if key == KEY:
            continue
        try:
            metadata[key] = plain(value)
        except Exception:  # something odd another addon left: not worth losing the flow
            log.debug("metadata %r not saved", key, exc_info=True)
    rec = record_of(flow)
    metadata[KEY] = rec.to_dict()
    state["metadata"] = metadata
    added = {h.lower().encode() for h in rec.added_headers}
    request = state.get("request")
    if added and request is not None:
        request["headers"] = tuple(
            (name, REDACTED.encode() if name.lower() in added else value)
            for name, value in request["headers"]
        )
    return state


def dump(flow: http.HTTPFlow, fo: BinaryIO) -> None:
    tnetstring.dump(flow_state(flow), fo)


def open_for_writing(path: Path | str) -> BinaryIO:
    """The ``--save`` stream, created (or truncated) readable by its owner only."""
    try:
        fd = os.open(Path(path).expanduser(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        return os.fdopen(fd, "wb")
    except OSError as e:
        raise SaveError(f"cannot write {path}: {e.strerror or e}") from e


def write_flows(flows: Iterable[http.HTTPFlow], path: Path | str) -> int:
    """Write ``flows`` to ``path`` (replacing it, atomically); returns how many."""
    return write_states((flow_state(f) for f in flows if isinstance(f, http.HTTPFlow)), path)


def write_states(states: Iterable[dict], path: Path | str) -> int:
    """Write flow states (``flow_state``) to ``path``, replacing it atomically (waylay's
    one atomic writer, mode 0600)."""
    path = Path(path).expanduser()
    buffer = io.BytesIO()
    count = 0
    for state in states:
        tnetstring.dump(state, buffer)
        count += 1
    try:
        write_atomic(path, buffer.getvalue(), backup=False, mode=0o600)
    except OSError as e:
        raise SaveError(f"cannot write {path}: {e.strerror or e}") from e
    return count


class FlowSaver:
    """Addon: append each finished flow to a flow file as it finishes (``--save``).

    A WebSocket flow is written when it ends, with its messages. Each flow is flushed to
    the file at once, so a crash loses at most the flow being written. If the disk fails,
    saving stops with one error in the log; the proxy goes on.
    """

    def __init__(self, path: Path | str, on_error: Callable[[str], None] | None = None) -> None:
        self.path = Path(path).expanduser()
        self.on_error = on_error
        """Told once when saving stops (the screen toasts it); default: stderr."""
        self.fo: BinaryIO | None = None
        self.saved = 0
        self.failed: str | None = None

    def open(self) -> None:
        """Create (truncate) the file now, so a bad path fails before the proxy starts."""
        if self.fo is None:
            self.fo = open_for_writing(self.path)

    def save(self, flow: http.HTTPFlow) -> None:
        if self.fo is None:
            return
        try:
            dump(flow, self.fo)
            self.fo.flush()
        except OSError as e:
            self.failed = f"--save {self.path}: {e.strerror or e}; no more flows are saved"
            self.close()
            self._tell(self.failed)
        else:
            self.saved += 1

    def _tell(self, message: str) -> None:
        log.error("%s", message)
        try:
            if self.on_error is not None:
                self.on_error(message)
            else:
                print(f"waylay: {message}", file=sys.stderr, flush=True)
        except Exception:
            log.debug("on_error failed", exc_info=True)

    def close(self) -> None:
        fo, self.fo = self.fo, None
        if fo is not None:
            try:
                fo.close()
            except OSError:  # the data was already flushed (or saving failed and said so)
                log.debug("closing %s failed", self.path, exc_info=True)

    # -- mitmproxy hooks ------------------------------------------------------------

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is None:
            self.save(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is None:  # a WebSocket gets websocket_end (as mitmproxy's Save)
            self.save(flow)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        self.save(flow)

    def done(self) -> None:
        self.close()
