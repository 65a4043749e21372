"""The session store's writer process: rows, SQLite writing and body indexing on another
core.

The proxy process takes each finished flow's values as they are (``store.raw_row``:
``RAW``) and hands them over once per commit interval, one marshalled list on this
process's stdin; this process makes their rows (``finish_row``: header blocks, pretty
URLs, resource types, the record's JSON: work the proxy's core would otherwise do for
every flow), inserts them and indexes their bodies in one transaction, and reports what
is committed on its stdout. It runs as a script (``python -I store_writer.py``) on the
standard library, with mitmproxy's URL functions and waylay's resource types (a few ms
to import; never the rest of mitmproxy), so it starts in a few tens of milliseconds. It
ends when its stdin ends: at ``SessionStore.close``, or when the proxy process is gone
(even killed: the pipe's other end closes). A proxy process that is gone while something
else holds the pipe is noticed by the parent's pid changing.

The schema and the statements are here too; ``monitor.store`` imports them.

Frames: proxy -> writer, 8 bytes of length then a message in ``marshal``'s format (a
dict of settings first, then lists of raw rows: str, bytes, numbers, None and tuples,
lists and dicts of them, which ``marshal`` writes about three times faster than
``pickle``); writer -> proxy, 4 bytes of length then a pickled tuple,
written whole in one ``write`` (shorter than PIPE_BUF, so never interleaved or cut):
``("ok", committed, indexed, written, unstored)`` or ``("error", message)`` (then it
ends). ``unstored``: flows whose row could not be made, left out.
"""

from __future__ import annotations

import json
import marshal
import os
import pickle
import select
import signal
import sqlite3
import struct
import sys
from collections.abc import Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS flows (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    method TEXT NOT NULL,
    scheme TEXT NOT NULL,
    host TEXT NOT NULL,
    pretty_host TEXT NOT NULL,
    port INTEGER NOT NULL,
    path TEXT NOT NULL,
    url TEXT NOT NULL,
    http_version TEXT NOT NULL,
    status INTEGER,
    reason TEXT,
    error TEXT,
    state TEXT NOT NULL,
    label TEXT NOT NULL,
    type TEXT,
    rule_id TEXT,
    websocket INTEGER NOT NULL DEFAULT 0,
    marked INTEGER NOT NULL DEFAULT 0,
    req_ctype TEXT,
    resp_ctype TEXT,
    req_size INTEGER NOT NULL,
    resp_size INTEGER,
    client TEXT,
    server TEXT,
    comment TEXT,
    replay TEXT,
    marker TEXT
);
CREATE TABLE IF NOT EXISTS blobs (
    seq INTEGER PRIMARY KEY,
    req_headers BLOB NOT NULL,
    resp_headers BLOB,
    req_body BLOB,
    resp_body BLOB,
    record TEXT
);
CREATE TABLE IF NOT EXISTS heads (
    seq INTEGER PRIMARY KEY,
    req BLOB NOT NULL,
    resp BLOB,
    enc INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS flows_status ON flows(status);
CREATE INDEX IF NOT EXISTS flows_host ON flows(pretty_host);
CREATE INDEX IF NOT EXISTS flows_resp_ctype ON flows(resp_ctype);
"""

INDEX_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS req_text USING fts5(
    body, content='', detail=none, columnsize=0, tokenize='trigram');
CREATE VIRTUAL TABLE IF NOT EXISTS resp_text USING fts5(
    body, content='', detail=none, columnsize=0, tokenize='trigram');
CREATE TABLE IF NOT EXISTS unindexed (seq INTEGER PRIMARY KEY, sides INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('indexed', '0');
"""
"""The body index: which three-character pieces (trigrams, case folded) each stored body
holds, without positions or a copy of the text (SQLite's FTS5), so a body filter with a
literal of three characters or more reads only the bodies that may match. Bodies with a
Content-Encoding (searched decoded) or a NUL byte (where FTS5 stops reading) are not
indexed: ``unindexed`` lists them (1: the request's, 2: the response's), always read.
``meta.indexed``: every seq up to it is indexed; the writer fills the index after each
commit, and an older file's rows in batches when idle."""
INDEX_BATCH = 5000
"""Rows indexed per transaction when catching up (about 0.1 s of the writer's time)."""
MAX_BATCH = 20_000
"""Rows written in one transaction at most."""

ADDED = ("client", "server", "comment", "replay", "marker")
"""Columns of schema 2: the client's and the server's address as mitmproxy's ``~src`` and
``~dst`` see them ("host:port"; "" for none), the flow's comment, ``is_replay`` and
marker. A file from before has them from when it is next opened for writing, NULL in
its older rows (read as the flow was rebuilt before: ``store.ADDED_BEFORE``)."""
COLUMNS = (
    "seq id started ended method scheme host pretty_host port path url http_version status "
    "reason error state label type rule_id websocket marked req_ctype resp_ctype req_size "
    "resp_size"
).split() + list(ADDED)
"""The narrow table filters scan; headers, bodies and the record are in ``blobs``."""
BLOB_COLUMNS = "seq req_headers resp_headers req_body resp_body record".split()
INSERT = f"INSERT INTO flows ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
INSERT_HEADS = "INSERT INTO heads (seq, req, resp, enc) VALUES (?, ?, ?, ?)"
INSERT_BLOBS = (
    f"INSERT INTO blobs ({', '.join(BLOB_COLUMNS)}) VALUES ({', '.join('?' * len(BLOB_COLUMNS))})"
)
ROW = [*COLUMNS, "req_headers", "resp_headers", "req_body", "resp_body", "record", "enc"]
"""A row as the writer inserts it (``finish_row``): seq, then ``store.flow_row``'s values."""
INCOMING = f"""
CREATE TEMP VIEW IF NOT EXISTS incoming ({", ".join(ROW)}) AS SELECT {", ".join(["NULL"] * len(ROW))};
CREATE TEMP TRIGGER IF NOT EXISTS incoming_row INSTEAD OF INSERT ON incoming BEGIN
    {INSERT.replace("?", "NEW.{}").format(*COLUMNS)};
    {INSERT_BLOBS.replace("?", "NEW.{}").format(*BLOB_COLUMNS)};
    {INSERT_HEADS.replace("?", "NEW.{}").format("seq", "req_headers", "resp_headers", "enc")};
END;
"""
"""A row goes into the three tables through this view: one statement a row, not three."""
INSERT_ROW = f"INSERT INTO incoming VALUES ({', '.join('?' * len(ROW))})"

ROWS_HEADER = struct.Struct("<Q")
REPORT_HEADER = struct.Struct("<I")
REPORT_MAX = 4000
"""A report is written in one piece, under PIPE_BUF (4096 bytes on Linux)."""


RAW = (
    "id started ended method scheme host port path http_version authority urls status "
    "reason error state type rule_id websocket req_fields resp_fields req_size resp_size "
    "req_body resp_body record peername address comment replay marker"
).split()
"""A flow as the proxy process sends it (``store.raw_row``): its own values, taken as they
come (header fields, the record as a dict); ``finish_row`` makes the stored row of it
here, on the writer's core. ``authority`` is the Host header (or ``:authority``);
``urls`` is None in the common case (an origin-form request with one), else mitmproxy's
own ``(pretty_host, pretty_url, url)``. ``state``/``type``: the record's, or None.
``peername``/``address``: the client's and the server's, as mitmproxy has them."""


class RowMaker:
    """What ``finish_row`` needs beyond the standard library, loaded when first used (the
    process starts without it): mitmproxy's URL functions (a few ms to import; not the
    rest of mitmproxy) and the resource types (``policies/resource_types.py``, standard
    library only, loaded from its file: the ``policies`` package would import all of it)."""

    def __init__(self) -> None:
        from mitmproxy.net.http import url

        types = sys.modules.get("policies.resource_types")
        if types is None:
            import importlib.util
            from pathlib import Path

            path = Path(__file__).resolve().parent.parent / "policies" / "resource_types.py"
            spec = importlib.util.spec_from_file_location("waylay_resource_types", path)
            assert spec is not None and spec.loader is not None
            types = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(types)
        self.url = url
        self.infer_type = types.infer_type
        self.folded_fields = types.folded_fields
        self.origins: dict[tuple[str, str], tuple[str, str]] = {}

    def urls(
        self, scheme: str, host: str, port: int, path: str, authority: str | None, urls
    ) -> tuple[str, str, str]:
        """A request's ``(pretty_host, pretty_url, url)`` as mitmproxy makes them, from
        ``RAW``'s values. The Host header's parse (IDNA, a host check) is kept: hosts
        repeat."""
        if urls is not None:
            return urls
        assert authority  # (the common case has one)
        key = (scheme, authority)
        origin = self.origins.get(key)
        url = self.url
        if origin is None:
            pretty_host, pretty_port = url.parse_authority(authority, check=False)
            pretty_port = pretty_port or url.default_port(scheme) or 443
            origin = (pretty_host, url.unparse(scheme, pretty_host, pretty_port, ""))
            if len(self.origins) >= 1024:
                self.origins.clear()
            self.origins[key] = origin
        return origin[0], origin[1] + path, url.unparse(scheme, host, port, path)


_maker: RowMaker | None = None


def row_maker() -> RowMaker:
    global _maker
    return _maker if _maker is not None else (_maker := RowMaker())


def head(fields) -> tuple[bytes, str | None, bool]:
    """In one pass over a message's header fields: the header block, the Content-Type as
    ``Headers.get`` gives it (values joined by ", "), and whether there is a
    Content-Encoding."""
    lines, types, encoded = [], [], False
    for name, value in fields:
        lines.append(name + b": " + value)
        lower = name.lower()
        if lower == b"content-type":
            types.append(value.decode("utf-8", "surrogateescape"))
        elif lower == b"content-encoding":
            encoded = True
    return b"\r\n".join(lines), ", ".join(types) if types else None, encoded


def finish_row(raw: tuple) -> tuple:
    """The stored row (``ROW``: seq, the ``flows`` columns, the blobs, ``enc``) of a raw
    row as the proxy sends it (seq, then ``RAW``)."""
    (
        seq, fid, started, ended, method, scheme, host, port, path, http_version, authority,
        urls, status, reason, error, state, rtype, rule_id, websocket, req_fields,
        resp_fields, req_size, resp_size, req_body, resp_body, record, peername, address,
        comment, replay, marker,
    ) = raw  # fmt: skip
    state = state or ("error" if error is not None else "done")
    if state == "error":
        label = f"error: {error}" if error else "error"
    elif state in ("cancelled", "redirected"):
        label = state
    else:
        label = str(status) if status is not None else "…"
    made = row_maker()
    pretty_host, pretty_url, full_url = made.urls(scheme, host, port, path, authority, urls)
    if rtype is None:  # as ``record.flow_type`` infers it: the type the screen shows
        rtype = made.infer_type(method, full_url, made.folded_fields(req_fields))
    req_block, req_ctype, req_enc = head(req_fields)
    resp_block, resp_ctype, resp_enc = head(resp_fields) if resp_fields is not None else (None,) * 3
    return (
        seq, fid, started, ended, method, scheme, host, pretty_host, port, path, pretty_url,
        http_version, status, reason, error, state, label, rtype, rule_id, int(websocket),
        int(bool(marker)), req_ctype, resp_ctype, req_size, resp_size,
        f"{peername[0]}:{peername[1]}" if peername else "",
        f"{address[0]}:{address[1]}" if address else "",
        comment, replay, marker, req_block, resp_block,
        req_body, resp_body, json.dumps(record) if record else None,
        req_enc | bool(resp_enc) << 1,
    )  # fmt: skip


def indexed_of(db: sqlite3.Connection) -> int:
    """The highest seq the file's body index holds (0: none)."""
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'indexed'").fetchone()
    except sqlite3.Error:
        return 0
    return int(row[0]) if row is not None else 0


class Writer:
    """The writing side of one session file (in this process)."""

    def __init__(self, settings: dict, out: int) -> None:
        self.path = settings["path"]
        self.indexing: bool = settings["indexing"]
        self.index_batch: int = settings.get("index_batch", INDEX_BATCH)
        self.max_batch: int = settings.get("max_batch", MAX_BATCH)
        self.parent = settings.get("parent", os.getppid())
        self.out = out
        self.written = 0
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA busy_timeout = 5000")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise sqlite3.OperationalError(f"cannot use WAL mode ({mode})")
        db.execute("PRAGMA synchronous = NORMAL")
        db.executescript(INCOMING)
        self.db = db
        self.maker = row_maker()  # (its imports fail here, at the start, if they do)
        self.unstored = 0
        """Rows that could not be made (``finish_row`` failed): left out, counted."""
        self.committed = db.execute("SELECT max(seq) FROM flows").fetchone()[0] or 0
        self.indexed = indexed_of(db) if self.indexing else 0

    def report(self, *message, wait: bool = False) -> None:
        _send(self.out, message, wait)

    def store(self, rows: list[tuple]) -> None:
        db = self.db
        for start in range(0, len(rows), self.max_batch):
            batch = rows[start : start + self.max_batch]
            db.execute("BEGIN")
            unstored = self.unstored
            db.executemany(INSERT_ROW, self.finished(batch))
            if self.indexing and self.indexed == self.committed:  # in the same transaction
                self.index_some(upto=batch[-1][0])
            db.execute("COMMIT")
            self.committed = batch[-1][0]
            self.written += len(batch) - (self.unstored - unstored)
        self.report("ok", self.committed, self.indexed, self.written, self.unstored)

    def finished(self, batch: list[tuple]) -> Iterator[tuple]:
        for raw in batch:
            try:
                yield finish_row(raw)
            except Exception:  # one flow that cannot be a row must not stop the others
                self.unstored += 1

    def backlog(self) -> bool:
        return self.indexing and self.indexed < self.committed

    def index_some(self, upto: int | None = None) -> None:
        """Put rows into the body index: those up to ``upto``, just inserted, in their
        transaction; else up to ``index_batch`` committed rows not yet indexed, in a
        transaction of their own."""
        db = self.db
        in_transaction = upto is not None
        if not self.indexing or (not in_transaction and self.indexed >= self.committed):
            return
        high = upto if upto is not None else min(self.committed, self.indexed + self.index_batch)
        span = {"low": self.indexed, "high": high}
        try:
            db.execute("SAVEPOINT indexing" if in_transaction else "BEGIN")
            kept = {
                side: f"{column} IS NOT NULL AND NOT heads.enc & {side} "
                f"AND NOT instr({column}, x'00')"
                for side, column in ((1, "req_body"), (2, "resp_body"))
            }
            for side, table, column in ((1, "req_text", "req_body"), (2, "resp_text", "resp_body")):
                db.execute(
                    f"INSERT INTO {table} (rowid, body) SELECT seq, {column} FROM blobs "
                    f"JOIN heads USING (seq) WHERE seq > :low AND seq <= :high AND {kept[side]}",
                    span,
                )
            db.execute(
                "INSERT INTO unindexed SELECT * FROM (SELECT seq, "
                f"(req_body IS NOT NULL AND NOT ({kept[1]})) "
                f"| ((resp_body IS NOT NULL AND NOT ({kept[2]})) << 1) AS sides "
                "FROM blobs JOIN heads USING (seq) WHERE seq > :low AND seq <= :high) "
                "WHERE sides != 0",
                span,
            )
            db.execute("UPDATE meta SET value = :high WHERE key = 'indexed'", span)
            db.execute("RELEASE indexing" if in_transaction else "COMMIT")
            self.indexed = high
        except sqlite3.Error:  # the flows are stored all the same; filters scan
            self.indexing = False
            try:
                if in_transaction:
                    db.execute("ROLLBACK TO indexing")
                    db.execute("RELEASE indexing")
                else:
                    db.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def finish(self) -> None:
        """The last rows, and a short backlog, are indexed before the file is closed."""
        while self.backlog() and self.committed - self.indexed <= 20 * self.index_batch:
            before = self.indexed
            self.index_some()
            if self.indexed == before:
                break
        self.db.close()
        self.report("ok", self.committed, self.indexed, self.written, self.unstored, wait=True)


def _send(out: int, message: tuple, wait: bool = False) -> None:
    """Tell the proxy process; a routine report that does not fit in the pipe now is
    dropped (the next one says more), the last one waits."""
    data = pickle.dumps(message)
    frame = REPORT_HEADER.pack(len(data)) + data
    os.set_blocking(out, wait)
    try:
        os.write(out, frame)
    except OSError:  # full (BlockingIOError), or the proxy process is gone
        pass


def _read_exactly(fd: int, n: int) -> bytes | None:
    """``n`` bytes from ``fd``, or None at its end (a frame cut short is dropped)."""
    parts, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _frame(fd: int):
    head = _read_exactly(fd, ROWS_HEADER.size)
    if head is None:
        return None
    body = _read_exactly(fd, ROWS_HEADER.unpack(head)[0])
    return None if body is None else marshal.loads(body)


def main() -> int:
    # the terminal's Ctrl-C, a hang-up or a SIGTERM to the process group end the proxy,
    # which closes the pipe: this process commits what it got then, and ends
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    rows_in, out = sys.stdin.fileno(), sys.stdout.fileno()
    settings = _frame(rows_in)
    if settings is None:
        return 0
    writer = None
    try:
        writer = Writer(settings, out)
        writer.report("ok", writer.committed, writer.indexed, 0, 0)
        while True:
            busy = writer.backlog()
            ready, _, _ = select.select([rows_in], [], [], 0 if busy else 1.0)
            if ready:
                rows = _frame(rows_in)
                if rows is None:
                    break
                if rows:
                    writer.store(rows)
            elif busy:
                writer.index_some()  # an older file's rows, a batch at a time, when idle
                writer.report(
                    "ok", writer.committed, writer.indexed, writer.written, writer.unstored
                )
            elif os.getppid() != writer.parent:
                break  # the proxy process is gone and something else holds the pipe
        writer.finish()
    except (sqlite3.Error, OSError, MemoryError, ValueError, EOFError, TypeError, ImportError) as e:
        if writer is not None:
            try:
                writer.db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        _send(out, ("error", (str(e) or type(e).__name__)[: REPORT_MAX // 2]), wait=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
