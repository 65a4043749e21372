"""The disk-backed session store: every finished flow in one SQLite file (``--session``).

One row per flow: the columns the flow list shows and filters need (indexed where a
filter can use an index), the header blocks, bodies up to ``body_cap`` bytes each, and
waylay's record (rule, trace, notes) as JSON. When a flow finishes, the proxy loop takes
its values as they are (``raw_row``: header fields, bodies, the record as data; about
7 µs, no ``get_state``); a thread hands the flows added every ``commit_interval``
seconds to the store's writer process (``monitor/store_writer.py``, one marshalled list
on a pipe), which makes their rows (header blocks, pretty URLs, resource types, JSON),
inserts them and indexes their bodies (``INDEX_SCHEMA``) in one transaction on another
core, and reports what it committed. A
crash (kill -9) loses at most the rows of the last interval: the writer commits what it
got when its pipe ends, and ends. The file is in WAL mode: a crash never leaves it
half-written, and readers (``query``, ``waylay open``, this process's own read
connections) never block the writer.

Filters run as SQL where the mitmproxy filter expression allows it (``~d ~u ~m ~c ~e
~q ~s ~a ~t ~tq ~ts ~h ~hq ~hs ~b ~bq ~bs ~websocket ~marked ~all``, with ``& | !``; regexes
run in SQLite through a registered function; a body filter reads only the rows the body
index names), and otherwise fall back to a scan that rebuilds each flow and runs
mitmproxy's filter on it, reporting progress.
"""

from __future__ import annotations

import fcntl
import json
import logging
import marshal
import os
import pickle
import re
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from array import array
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from mitmproxy import connection, flowfilter, http
from mitmproxy.flow import Error

from monitor import store_scan, store_writer
from monitor.record import KEY, REDACTED, FlowRecord, record_of
from monitor.store_writer import (  # noqa: F401 (the schema's names, for readers)
    ADDED,
    COLUMNS,
    INDEX_BATCH,
    INDEX_SCHEMA,
    INSERT_ROW,
    MAX_BATCH,
    SCHEMA,
)
from widgets.model import FlowView

log = logging.getLogger("waylay.store")

SCHEMA_VERSION = 2
"""2: the columns ``ADDED`` (client and server address, comment, replay, marker)."""
ADDED_BEFORE = {
    "client": "'127.0.0.1:0'",
    "server": "host || ':' || port",
    "comment": "''",
    "replay": "NULL",
    "marker": "CASE WHEN marked THEN 'marked' ELSE '' END",
}
"""SQL for the ``ADDED`` columns of a row stored before them (NULL, or no such column in a
file not opened for writing since): the values its rebuilt flow has (``flow_from_row``),
so a filter's SQL and mitmproxy's filter on the rebuilt flow agree."""
LISTED = ", ".join(c for c in COLUMNS if c not in ADDED)
"""The columns a row of the flow list needs (``view_of_row``)."""
CHUNK = 100_000
"""Seqs a filter runs over between two progress reports."""
SERVED = 50_000
"""Ids of older rows handed to screens that are remembered (with their seq)."""
BODY_CAP = 1024 * 1024
"""Bytes of each body kept in the store by default (the flow keeps its real size)."""

CANDIDATES = 0.25
"""A chunk whose candidates are more than this share of its rows is scanned instead
(reading rows by seq costs more per row than reading them in order)."""
SELECT = "SELECT * FROM flows JOIN blobs USING (seq)"

SCAN_WORKERS = store_scan.cores()
"""Worker processes a filter over more than one range runs in (1: none, in this one)."""
_pool: store_scan.ScanPool | None = None
_pool_lock = threading.Lock()


def _scan_pool() -> store_scan.ScanPool | None:
    """The process's filter workers (started on first use, kept), or None: one core."""
    global _pool
    if SCAN_WORKERS < 2:
        return None
    with _pool_lock:
        if _pool is None or _pool.size != SCAN_WORKERS:  # (a test set another size)
            if _pool is not None:
                _pool.stop()
            _pool = store_scan.ScanPool(SCAN_WORKERS)
        return _pool


F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def _name_thread(name: bytes) -> None:
    """The OS's name of the calling thread (Linux; elsewhere nothing)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name, 0, 0, 0)  # PR_SET_NAME
    except Exception:
        pass


def _plain(value: object) -> object:
    """``value`` as the plain types ``marshal`` writes (a str enum as its str…)."""
    if value is None or type(value) in (bool, int, float, str, bytes):
        return value
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str.__str__(value)
    return str(value)


class StoreError(OSError):
    """The session file cannot be used; the message is one line for people."""


# -- rows -----------------------------------------------------------------------------


def _parse_header_block(block: bytes | None) -> http.Headers:
    if not block:
        return http.Headers()
    fields = []
    for line in block.split(b"\r\n"):
        name, _, value = line.partition(b": ")
        fields.append((name, value))
    return http.Headers(fields)


def _urls(req: http.Request) -> tuple[str | None, tuple[str, str, str] | None]:
    """``RAW``'s ``authority`` and ``urls``: the Host header, and mitmproxy's own
    ``(pretty_host, pretty_url, url)`` where they are not the common case's."""
    authority = req.host_header
    if not authority or req.first_line_format == "authority" or req.path == "*":
        return authority, (req.pretty_host, req.pretty_url, req.url)  # (as mitmproxy has it)
    return authority, None


def request_urls(req: http.Request) -> tuple[str, str, str]:
    """``(req.pretty_host, req.pretty_url, req.url)`` as a stored row gets them."""
    authority, urls = _urls(req)
    return store_writer.row_maker().urls(req.scheme, req.host, req.port, req.path, authority, urls)


def _redacted(headers: http.Headers, added: list[str]) -> tuple[tuple[bytes, bytes], ...]:
    """The header fields with the values of the credentials waylay added hidden (as in
    HAR and --save)."""
    names = {h.lower() for h in added}
    copy = headers.copy()
    for name in list(copy.keys()):
        if name.lower() in names:
            copy[name] = REDACTED
    return copy.fields


def raw_row(flow: http.HTTPFlow, body_cap: int = BODY_CAP) -> tuple:
    """A finished flow's values as the writer process makes its row of them
    (``store_writer.RAW``, ``finish_row``). Runs on the proxy loop, where every µs is the
    proxy's: it only takes what the flow holds (no parsing, formatting, JSON or type
    inference; those run on the writer's core)."""
    req, resp, err = flow.request, flow.response, flow.error
    rec = record_of(flow)
    req_body = req.raw_content
    resp_body = resp.raw_content if resp is not None else None
    authority, urls = _urls(req)
    return (
        flow.id,
        req.timestamp_start,
        resp.timestamp_end if resp is not None else (err.timestamp if err is not None else None),
        req.method,
        req.scheme,
        req.host,
        req.port,
        req.path,
        req.http_version,
        authority,
        urls,
        resp.status_code if resp is not None else None,
        resp.reason if resp is not None else None,
        err.msg if err is not None else None,
        rec.state,
        rec.type,
        rec.rule_id,
        flow.websocket is not None,
        req.headers.fields if not rec.added_headers else _redacted(req.headers, rec.added_headers),
        resp.headers.fields if resp is not None else None,
        len(req_body) if req_body is not None else 0,
        len(resp_body) if resp_body is not None else None,
        req_body[:body_cap] if req_body else None,
        resp_body[:body_cap] if resp_body else None,
        rec.to_dict() or None,
        flow.client_conn.peername if flow.client_conn else None,
        flow.server_conn.address if flow.server_conn else None,
        flow.comment,
        flow.is_replay,
        flow.marked,
    )


def flow_row(flow: http.HTTPFlow, body_cap: int = BODY_CAP) -> tuple:
    """The stored row of a finished flow, made in this process (``store_writer.ROW``
    without the seq)."""
    return store_writer.finish_row((0, *raw_row(flow, body_cap)))[1:]


def _address(text: str) -> tuple[str, int] | None:
    """A stored "host:port" (as ``~src``/``~dst`` see it) as an address; "" is none."""
    host, _, port = text.rpartition(":")
    try:
        return (host, int(port)) if host else None
    except ValueError:
        return None


def flow_from_row(row: sqlite3.Row) -> http.HTTPFlow:
    """A flow rebuilt from its row (bodies as kept, up to the cap)."""
    keys = row.keys()
    added = {name: row[name] if name in keys else None for name in ADDED}
    peer = ("127.0.0.1", 0) if added["client"] is None else _address(added["client"])
    client = connection.Client(
        peername=peer,  # type: ignore[arg-type]  # (None: none, which mitmproxy allows)
        sockname=("127.0.0.1", 0),
        timestamp_start=row["started"],
    )
    server = connection.Server(
        address=(row["host"], row["port"]) if added["server"] is None else _address(added["server"])
    )
    flow = http.HTTPFlow(client, server)
    flow.id = row["id"]
    flow.request = http.Request(
        row["host"],
        row["port"],
        row["method"].encode(),
        row["scheme"].encode(),
        b"",
        row["path"].encode(),
        row["http_version"].encode(),
        _parse_header_block(row["req_headers"]),
        row["req_body"] or b"",
        None,
        row["started"],
        row["ended"] or row["started"],
    )
    if row["status"] is not None:
        flow.response = http.Response(
            row["http_version"].encode(),
            row["status"],
            (row["reason"] or "").encode(),
            _parse_header_block(row["resp_headers"]),
            row["resp_body"] or b"",
            None,
            row["started"],
            row["ended"] or row["started"],
        )
    if row["error"] is not None:
        flow.error = Error(row["error"], row["ended"] or row["started"])
    if added["marker"] is not None:
        flow.marked = added["marker"]
    else:
        flow.marked = "marked" if row["marked"] else ""
    flow.comment = added["comment"] or ""
    flow.is_replay = added["replay"]
    try:
        saved = json.loads(row["record"]) if row["record"] else {}
    except ValueError:  # a damaged record loses waylay's notes, not the flow
        saved = {}
    rec = FlowRecord.from_dict(saved)
    if rec.state is None and row["state"] in ("cancelled", "redirected", "error"):
        rec.state = row["state"]
    rec.type = row["type"]
    rec.store_seq = row["seq"]
    flow.metadata[KEY] = rec
    return flow


_HAS_ENCODING = "instr(lower(CAST({} AS TEXT)), 'content-encoding')"

# -- filters as SQL -----------------------------------------------------------------------


class _NotSQL(Exception):
    pass


_LITERAL = re.compile(r"[\w\-/:=&%@,;~]+")


def _fragments(pattern: str) -> list[str] | None:
    """The literal pieces a match must contain, for a pattern made of words and dots
    (``example.com``, ``/api/v1``): each piece appears in every match. None otherwise."""
    pieces = pattern.replace("\\.", ".").split(".")
    if not pattern or not all(_LITERAL.fullmatch(p) for p in pieces if p):
        return None
    return [p for p in pieces if p]


_SPECIAL_ESCAPES = frozenset("xuUN0123456789")
"""Escapes that name a character by number or name: not read as literals here."""


def _literal_run(pattern: str) -> tuple[str, bool] | None:
    """The longest run of characters every match of ``pattern`` contains, and whether
    the pattern is nothing but that run (a plain literal). None when unsure: any group
    or alternation, an escape naming a character by number, an odd brace."""
    if "|" in pattern or "(" in pattern or ")" in pattern:
        return None
    runs: list[str] = []
    current: list[str] = []
    exact = True
    last_literal = False
    i, n = 0, len(pattern)

    def flush() -> None:
        if current:
            runs.append("".join(current))
            current.clear()

    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n or pattern[i + 1] in _SPECIAL_ESCAPES:
                return None
            escaped = pattern[i + 1]
            i += 2
            if escaped.isascii() and not escaped.isalnum() and escaped not in " \t\n":
                current.append(escaped)  # \. \- \/ …: the character itself
                last_literal = True
            else:  # \d \w \s \b \n …: a class or an assertion
                flush()
                exact = last_literal = False
            continue
        if c == "[":
            end = i + 1
            if end < n and pattern[end] == "^":
                end += 1
            if end < n and pattern[end] == "]":
                end += 1
            while end < n and pattern[end] != "]":
                end += 2 if pattern[end] == "\\" else 1
            if end >= n:
                return None
            flush()
            exact = last_literal = False
            i = end + 1
            continue
        if c in "*?+{":
            if c == "{":
                end = pattern.find("}", i)
                bounds = pattern[i + 1 : end] if end > 0 else ""
                if not re.fullmatch(r"\d*(,\d*)?", bounds) or not bounds.strip(","):
                    return None  # Python would read the brace as a character
                optional = bounds.split(",")[0] in ("", "0")
                i = end + 1
            else:
                optional = c != "+"
                i += 1
            if i < n and pattern[i] in "?+":  # lazy or possessive: the same minimum
                i += 1
            if last_literal and current and optional:
                current.pop()  # the character before was optional
            flush()
            exact = last_literal = False
            continue
        if c in ".^$":
            flush()
            exact = last_literal = False
            i += 1
            continue
        # (a "]" or "}" that closes nothing is the character itself, in Python's re)
        current.append(c)
        last_literal = True
        i += 1
    flush()
    if not runs:
        return None
    longest = max(runs, key=len)
    return longest, exact and len(runs) == 1 and longest == pattern.replace("\\", "")


class _Literal(NamedTuple):
    text: bytes
    """The run, lower-cased when the regex ignores case."""
    exact: bool
    """The regex is nothing but this run."""
    typed: bytes
    """The run as the pattern spells it."""


def _literal(regex: re.Pattern) -> _Literal | None:
    """The longest literal run (bytes, lower-cased when the regex ignores case: ASCII
    only, as Python's bytes regexes and SQLite's lower() fold case) that every match of
    a bytes regex contains, and whether the regex is exactly that literal; or None."""
    pattern = regex.pattern
    if isinstance(pattern, bytes):
        try:
            pattern = pattern.decode("utf-8")
        except UnicodeDecodeError:
            return None
    found = _literal_run(pattern)
    if found is None:
        return None
    typed = literal = found[0].encode()
    if regex.flags & re.IGNORECASE:
        if not literal.isascii():
            return None  # a bytes regex folds ASCII only; keep it simple
        literal = literal.lower()
    return _Literal(literal, found[1], typed)


def _to_sql(
    node,
    regexes: list[re.Pattern],
    db: sqlite3.Connection,
    need: set[str] | None = None,
    heads: bool = True,
    added: frozenset[str] = frozenset(ADDED),
) -> tuple[str, list]:
    """SQL for a parsed mitmproxy filter, or _NotSQL. ``need`` collects the tables
    beyond ``flows`` it reads ("heads", "blobs"); ``heads``: the file has the headers
    table (else they are read from blobs); ``added``: the ``ADDED`` columns it has."""
    name = type(node).__name__
    if need is None:
        need = set()
    req_h, resp_h = ("heads.req", "heads.resp") if heads else ("req_headers", "resp_headers")

    def sub(n) -> tuple[str, list]:
        return _to_sql(n, regexes, db, need, heads, added)

    def found_in(column: str, literal: _Literal) -> tuple[str, list]:
        """SQL: the literal is in the column (ASCII case folded as Python's bytes
        regexes do when the filter ignores case). Folding copies the whole value, so
        the literal as typed is looked for first: a value that holds it as typed is a
        match without the copy. A literal without letters is never folded."""
        text = literal.text
        if not node.re.flags & re.IGNORECASE or text == text.upper():
            return f"instr({column}, ?)", [text]
        folded = f"instr(CAST(lower({column}) AS BLOB), ?)"
        return f"CASE WHEN instr({column}, ?) THEN 1 ELSE {folded} END", [literal.typed, text]

    def header(column: str) -> tuple[str, list]:
        need.add("heads" if heads else "blobs")
        literal = _literal(node.re)
        if literal is not None and re.search(rb"[\r\n]", literal.text):
            # mitmproxy searches the block with a CRLF after every line, the last one
            # too: a piece without CR or LF is what lies in the block for sure
            piece = max(re.split(rb"[\r\n]+", literal.text), key=len)
            literal = _Literal(piece, False, piece)
        if literal is not None and literal.exact and literal.text:
            # a plain literal: SQLite alone answers (a CRLF after every line, as
            # mitmproxy searches, cannot make or break a match of plain characters)
            found, args = found_in(column, literal)
            return f"coalesce({found}, 0) > 0", args
        regexes.append(node.re)  # mitmproxy's own compiled pattern and flags
        call = f"wl_head({len(regexes) - 1}, {column})"
        if literal is None or not literal.text:
            return call, []
        found, args = found_in(column, literal)
        return f"({found} AND {call})", args

    def body(column: str, block: str, side: int) -> tuple[str, list]:
        need.add("blobs")
        need.add("heads" if heads else "blobs")
        regexes.append(node.re)
        # an encoded body (gzip, br…) is searched decoded: by Python, as mitmproxy does;
        # the header block is handed over only then (a body without one is searched as is)
        if heads:
            encoded = f"(heads.enc & {side})"
        else:
            encoded = f"instr(lower(CAST({block} AS TEXT)), 'content-encoding')"
        call = f"wl_body({len(regexes) - 1}, {column}, CASE WHEN {encoded} THEN {block} END)"
        literal = _literal(node.re)
        if literal is None or not literal.text:
            return call, []
        found, args = found_in(column, literal)
        if literal.exact:  # a plain literal: SQLite answers for the bodies not encoded
            return f"(CASE WHEN {encoded} THEN {call} ELSE coalesce({found}, 0) > 0 END)", args
        return f"(({found} OR {encoded}) AND {call})", args

    def compiled() -> re.Pattern:
        pattern = node.re.pattern
        if isinstance(pattern, bytes):
            pattern = pattern.decode("utf-8", "replace")
        return re.compile(pattern, node.re.flags & (re.IGNORECASE | re.MULTILINE))

    def added_column(name: str) -> str:
        """An ``ADDED`` column, as the rebuilt flow has it in rows stored before it."""
        before = ADDED_BEFORE[name]
        return f"coalesce({name}, {before})" if name in added else before

    def rex(column: str) -> tuple[str, list]:
        """A regex over a column of (nearly) unique values: literal pieces first, in C."""
        regex = compiled()
        regexes.append(regex)
        call = f"wl_re({len(regexes) - 1}, {column})"
        pieces = _fragments(regex.pattern)
        if not pieces:
            return call, []
        longest = max(pieces, key=len)
        if regex.flags & re.IGNORECASE:
            return f"(instr(lower({column}), ?) AND {call})", [longest.lower()]
        return f"(instr({column}, ?) AND {call})", [longest]

    def among(*columns: str, match: Callable[[str], object] | None = None) -> tuple[str, list]:
        """A regex (or ``match``) over columns with few distinct values (hosts, methods,
        content types): run on the distinct values once, then an IN over the (indexed)
        column."""
        if match is None:
            match = compiled().search
        parts, args = [], []
        for column in columns:
            values = [
                v
                for (v,) in db.execute(f"SELECT DISTINCT {column} FROM flows")
                if v is not None and match(v)
            ]
            if values:
                parts.append(f"{column} IN ({','.join('?' * len(values))})")
                args += values
        return ("(" + " OR ".join(parts) + ")" if parts else "0"), args

    if name == "FAnd":
        parts = [sub(n) for n in node.lst]
        return "(" + " AND ".join(p[0] for p in parts) + ")", [a for p in parts for a in p[1]]
    if name == "FOr":
        parts = [sub(n) for n in node.lst]
        return "(" + " OR ".join(p[0] for p in parts) + ")", [a for p in parts for a in p[1]]
    if name == "FNot":
        sql, args = sub(node.itm)
        return f"(NOT coalesce({sql}, 0))", args
    if name == "FCode":
        return "status = ?", [node.num]
    if name == "FMethod":
        return among("method")
    if name == "FDomain":
        return among("pretty_host", "host")
    if name == "FUrl":
        return rex("url")
    if name == "FErr":
        return "error IS NOT NULL", []
    if name in ("FReq", "FAll", "FHTTP"):
        return "1", []
    if name == "FResp":
        return "status IS NOT NULL", []
    if name == "FWebSocket":
        return "websocket = 1", []
    if name == "FMarked":
        return "marked = 1", []
    if name in ("FTCP", "FUDP", "FDNS"):
        return "0", []
    if name in ("FSrc", "FDst"):  # no address ("") is no match
        address = added_column("client" if name == "FSrc" else "server")
        sql, args = rex(address)
        return f"({address} != '' AND {sql})", args
    if name == "FComment":
        return rex(added_column("comment"))
    if name == "FMarker":
        return rex(added_column("marker"))
    if name == "FReplay":
        return f"{added_column('replay')} IS NOT NULL", []
    if name in ("FReplayClient", "FReplayServer"):
        side = "request" if name == "FReplayClient" else "response"
        return f"{added_column('replay')} IS ?", [side]
    if name == "FAsset":
        # mitmproxy's own patterns, searched in each Content-Type header of the response:
        # literals (with ".*" after), so searching the values joined finds the same ones
        def asset(value: str) -> bool:
            raw = value.encode("utf-8", "surrogateescape")
            return any(r.search(raw) for r in node.ASSET_TYPES)

        return among("resp_ctype", match=asset)
    if name == "FContentTypeRequest":
        return among("req_ctype")
    if name == "FContentTypeResponse":
        return among("resp_ctype")
    if name == "FContentType":
        return among("req_ctype", "resp_ctype")
    if name == "FHeadRequest":
        return header(req_h)
    # a response's header block is NULL exactly when there is no response
    if name == "FHeadResponse":
        sql, args = header(resp_h)
        return f"({resp_h} IS NOT NULL AND {sql})", args
    if name == "FHead":
        q, q_args = header(req_h)
        r, r_args = header(resp_h)
        return f"({q} OR ({resp_h} IS NOT NULL AND {r}))", q_args + r_args
    if name == "FBodRequest":
        return body("blobs.req_body", req_h, 1)
    if name == "FBodResponse":
        sql, args = body("blobs.resp_body", resp_h, 2)
        return f"({resp_h} IS NOT NULL AND {sql})", args
    if name == "FBod":
        q, q_args = body("blobs.req_body", req_h, 1)
        r, r_args = body("blobs.resp_body", resp_h, 2)
        return f"({q} OR ({resp_h} IS NOT NULL AND {r}))", q_args + r_args
    raise _NotSQL(name)


def _trigrams(literal: bytes) -> str | None:
    """An FTS5 query for the rows of the body index that may hold ``literal``: every
    trigram of it, or enough to cover it (None when it has fewer than three characters).
    A body holding the literal's bytes holds its characters as SQLite reads them, but
    for a last character outside ASCII, which stray continuation bytes after it in the
    body could make another: that one is left out."""
    text = literal.decode("utf-8")
    if text and not text[-1].isascii():
        text = text[:-1]
    if len(text) < 3 or "\x00" in text:
        return None
    starts = list(range(0, len(text) - 2, 3))[:12]
    starts.append(len(text) - 3)
    grams = dict.fromkeys(text[i : i + 3] for i in starts)
    return " AND ".join('"' + g.replace('"', '""') + '"' for g in grams)


def _candidates(node, args: list) -> str | None:
    """SQL selecting the seqs (within ``:lo <= seq < :hi``, all indexed) among which every
    match of the filter lies, from the body index; None when the index cannot narrow
    it. ``args`` gets the FTS5 queries (named ``:m0``, ``:m1``…)."""
    name = type(node).__name__
    if name == "FAnd":
        parts = [c for c in (_candidates(n, args) for n in node.lst) if c is not None]
        return " INTERSECT ".join(f"SELECT * FROM ({p})" for p in parts) if parts else None
    if name == "FOr":
        each = [_candidates(n, args) for n in node.lst]
        if any(c is None for c in each):
            return None
        return " UNION ALL ".join(f"SELECT * FROM ({c})" for c in each)
    sides = {"FBodRequest": (1,), "FBodResponse": (2,), "FBod": (1, 2)}.get(name)
    if sides is None:
        return None
    literal = _literal(node.re)
    query = _trigrams(literal.text) if literal is not None and literal.text else None
    if query is None:
        return None
    args.append(query)
    key = f":m{len(args) - 1}"
    parts = []
    for side in sides:
        table = "req_text" if side == 1 else "resp_text"
        parts.append(
            f"SELECT rowid FROM {table} WHERE {table} MATCH {key} AND rowid >= :lo AND rowid < :hi"
        )
    enc = sides[0] if len(sides) == 1 else 3
    parts.append(f"SELECT seq FROM unindexed WHERE sides & {enc} AND seq >= :lo AND seq < :hi")
    return " UNION ALL ".join(parts)  # (a seq twice does no harm: it is read once)


_FLOW_COLUMN = re.compile(r"(?<![\w.])(" + "|".join(c for c in COLUMNS if c != "seq") + r")\b")


def _tables(flt, where: str, need: set[str]) -> str:
    """The FROM of a filter's query. Headers and bodies are in tables of their own;
    when no part of an AND can use the flows table's indexes, the widest table needed
    is read in order and the others are looked up only for its candidates (SQLite
    checks each condition as soon as its table is there), and the flows table only
    when the filter reads it."""
    if not need:
        return "flows"
    parts = flt.lst if type(flt).__name__ == "FAnd" else [flt]
    if len(parts) > 1 and any(not _needs_more(p) for p in parts):
        # a part on the flows table alone (an index on status, host…) leads
        return "flows" + "".join(f" JOIN {t} USING (seq)" for t in ("heads", "blobs") if t in need)
    order: list[str] = [t for t in ("blobs", "heads") if t in need]
    if _FLOW_COLUMN.search(where):
        order.append("flows")
    return order[0] + "".join(f" CROSS JOIN {t} USING (seq)" for t in order[1:])


def _needs_more(node) -> bool:
    """The filter reads headers or bodies somewhere."""
    name = type(node).__name__
    if name in ("FAnd", "FOr"):
        return any(_needs_more(n) for n in node.lst)
    if name == "FNot":
        return _needs_more(node.itm)
    return name.startswith(("FHead", "FBod"))


# -- the store ----------------------------------------------------------------------------


class SessionStore:
    """One session file. ``add`` (proxy loop) is all the proxy calls; ``query``, ``count``
    and ``flow`` read through their own connection and may run on any thread."""

    def __init__(
        self,
        path: Path | str,
        *,
        body_cap: int = BODY_CAP,
        commit_interval: float = 0.25,
    ) -> None:
        self.path = Path(path).expanduser()
        self.body_cap = body_cap
        self.commit_interval = commit_interval
        self._incoming: deque[tuple] = deque()
        """Rows added and not yet handed to the writer process, which gets them every
        commit interval in one piece (a queue's put would wake the sending thread, and
        make the proxy's thread hand it the GIL, for every flow)."""
        self._stop = threading.Event()
        self._wake_r = self._wake_w = -1
        self._sender: threading.Thread | None = None
        self._process: subprocess.Popen | None = None
        self.writing = False
        """The file is open for writing (``open``) and the writer process is running."""
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self.written = 0
        self.unstored = 0
        """Flows the writer process could not make a row of (left out; logged)."""
        self._next_seq = 1
        """The seq the next flow added gets (``add`` numbers rows, on the proxy loop)."""
        self.committed = 0
        """The highest seq committed to the file so far."""
        self._older: dict[str, tuple[int, array]] = {}
        """Filter expression -> (the seqs below which it was run, the matching seqs)."""
        self._older_lock = threading.Lock()
        self._older_count: tuple[int, int] | None = None
        self._served: OrderedDict[str, int] = OrderedDict()
        self._served_lock = threading.Lock()
        """Flow id -> seq of the older rows handed out lately: what a screen can ask for
        by id (details, bodies, replay) without an index on ids (it would slow writing)."""
        self.older_progress: dict[str, tuple[int, int]] = {}
        """Filter expression -> (seqs done, seqs in all) while ``older`` runs it."""
        self.on_error: Callable[[str], None] | None = None
        """Told once (from the sending thread) when storing stops; default: stderr."""
        self.failed: str | None = None
        self._indexing = True
        """The writer fills the body index (False: this SQLite has no FTS5, or it failed)."""
        self.indexed = 0
        """The highest seq in the body index (as the writer process last reported)."""

    # -- opening --------------------------------------------------------------------

    def _connect(
        self, *, read_only: bool = False, regexes: list[re.Pattern] | None = None
    ) -> sqlite3.Connection:
        """A connection; its SQL functions use ``regexes`` (a filter's own connection)."""
        if regexes is None:
            regexes = self._regexes
        try:
            if read_only:
                db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            else:
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA busy_timeout = 5000")
            if not read_only:
                mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode != "wal":
                    raise StoreError(f"{self.path}: cannot use WAL mode ({mode})")
                db.execute("PRAGMA synchronous = NORMAL")
                db.executescript(SCHEMA)
                try:
                    db.executescript(INDEX_SCHEMA)
                except sqlite3.OperationalError as e:  # an SQLite without FTS5
                    log.info("no body index: %s", e)
                    self._indexing = False
                have = self._added(db)
                for column in (c for c in ADDED if c not in have):  # older file: NULL in rows
                    db.execute(f"ALTER TABLE flows ADD COLUMN {column} TEXT")
                db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
                if db.execute("SELECT value FROM meta WHERE key = 'heads'").fetchone() is None:
                    # a file from before the heads table: its headers, copied once
                    db.execute("BEGIN")
                    db.execute(
                        "INSERT OR IGNORE INTO heads (seq, req, resp, enc) "
                        "SELECT seq, req_headers, resp_headers, "
                        f"(({_HAS_ENCODING.format('req_headers')}) > 0) "
                        f"| ((coalesce({_HAS_ENCODING.format('resp_headers')}, 0) > 0) << 1) "
                        "FROM blobs"
                    )
                    db.execute("INSERT INTO meta VALUES ('heads', 'all')")
                    db.execute("COMMIT")
            else:
                db.execute("SELECT seq FROM flows LIMIT 1").fetchone()  # a session file?
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: not a waylay session file ({e})") from None
        except OSError as e:
            raise StoreError(f"{self.path}: {e.strerror or e}") from None

        store_scan.register(db, regexes)
        return db

    @staticmethod
    def _added(db: sqlite3.Connection) -> frozenset[str]:
        """The ``ADDED`` columns the file has."""
        return frozenset(r[1] for r in db.execute("PRAGMA table_info(flows)")) & set(ADDED)

    def _heads(self, db: sqlite3.Connection) -> bool:
        """Every row's headers are in the narrow ``heads`` table (else only in blobs)."""
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'heads'").fetchone()
        except sqlite3.Error:
            return False
        return row is not None and row[0] == "all"

    _regexes: list[re.Pattern] = []

    def open(self) -> None:
        """Create or reopen the file and start the writer process (raises ``StoreError``).
        The schema is made (or an older file brought up to date) here, so a file that
        cannot be a session fails before the proxy starts; then the writer process gets
        the file, and this process keeps only read connections."""
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a folder, not a file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # it holds cookies and tokens: readable by its owner only (SQLite gives its
            # -wal and -shm files the same mode)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        except OSError as e:
            raise StoreError(f"{self.path}: {e.strerror or e}") from None
        db = self._connect()
        try:
            last = db.execute("SELECT max(seq) FROM flows").fetchone()[0]
            self.indexed = store_writer.indexed_of(db) if self._indexing else 0
        finally:
            db.close()
        self._next_seq = (last or 0) + 1
        self.committed = last or 0
        settings = {
            "path": str(self.path),
            "indexing": self._indexing,
            "index_batch": INDEX_BATCH,
            "max_batch": MAX_BATCH,
            "parent": os.getpid(),
        }
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", store_writer.__file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                bufsize=0,
            )
            assert self._process.stdin is not None
            try:  # fewer, larger writes of a batch (Linux; 64 KiB otherwise)
                fcntl.fcntl(self._process.stdin.fileno(), F_SETPIPE_SZ, 1 << 20)
            except OSError:
                pass
            self._send(settings)
        except OSError as e:
            raise StoreError(f"{self.path}: cannot start the writer process: {e}") from None
        self._wake_r, self._wake_w = os.pipe()
        self._stop.clear()
        self.writing = True
        self._sender = threading.Thread(target=self._send_loop, name="waylay-store", daemon=True)
        self._sender.start()

    def open_read_only(self) -> None:
        if not self.path.is_file():
            raise StoreError(f"{self.path}: no such file")
        self._reader = self._connect(read_only=True)
        self.committed = self._reader.execute("SELECT max(seq) FROM flows").fetchone()[0] or 0

    def close(self) -> None:
        """Hand over what is queued, let the writer process commit it and end, close the
        file."""
        if self._sender is not None:
            self._stop.set()
            os.write(self._wake_w, b"x")
            self._sender.join(60)
            self._sender = None
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)
            self._wake_r = self._wake_w = -1
        if self._process is not None:
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                log.warning("--session %s: the writer process did not end; killed", self.path)
                self._process.kill()
                self._process.wait()
            for pipe in (self._process.stdin, self._process.stdout):
                if pipe is not None:
                    pipe.close()
            self._process = None
        self.writing = False
        if self._reader is not None:
            try:
                self._reader.close()
            except sqlite3.Error:
                log.debug("close failed", exc_info=True)
        self._reader = None

    # -- writing --------------------------------------------------------------------

    def add(self, flow: http.HTTPFlow) -> None:
        if not self.writing or self.failed:
            return
        try:
            row = raw_row(flow, self.body_cap)
        except Exception:  # a flow that cannot be a row must not break the proxy
            log.exception("flow %s not stored", flow.id)
            return
        seq = self._next_seq
        self._next_seq += 1
        record_of(flow).store_seq = seq
        self._incoming.append((seq, *row))

    def _send(self, message: dict | list[tuple]) -> None:
        """One frame to the writer process (blocks while its pipe is full)."""
        assert self._process is not None and self._process.stdin is not None
        try:  # rows are str, bytes, numbers and None: marshal is 3x faster than pickle
            data = marshal.dumps(message)
        except ValueError:  # a subclass (a str enum…) somewhere: plain values instead
            assert isinstance(message, list)
            data = marshal.dumps([tuple(_plain(v) for v in row) for row in message])
        frame = memoryview(store_writer.ROWS_HEADER.pack(len(data)) + data)
        while frame:
            frame = frame[self._process.stdin.write(frame) :]

    def _send_loop(self) -> None:
        """Every commit interval: the rows added meanwhile go to the writer process in
        one write, and its reports (what is committed) are read. At ``close``: the last
        rows, then its pipe is closed, and its reports read until it ends."""
        assert self._process is not None and self._process.stdout is not None
        assert self._process.stdin is not None
        _name_thread(b"waylay-store")  # its CPU apart in top -H, /proc (the bench)
        reports = self._process.stdout.fileno()
        incoming = self._incoming
        buffer = b""
        due = time.monotonic() + self.commit_interval
        closing = False
        while True:
            wait = 60.0 if closing else max(0.0, due - time.monotonic())
            ready, _, _ = select.select([reports, self._wake_r], [], [], wait)
            if closing and not ready:
                break  # no word for a minute: given up
            if reports in ready:
                chunk = os.read(reports, 65536)
                buffer = self._reports(buffer + chunk)
                if not chunk or self.failed:
                    break
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
            if closing:
                continue
            stopping = self._stop.is_set()
            if stopping or time.monotonic() >= due:
                due = time.monotonic() + self.commit_interval
                rows = [incoming.popleft() for _ in range(len(incoming))]
                try:
                    if rows:
                        self._send(rows)
                    if stopping:
                        self._process.stdin.close()  # the writer commits and ends
                        closing = True
                except (OSError, ValueError):
                    break  # the writer process is gone
        if self.failed is None and not (closing and self._exited_well()):
            self._fail(self._death())
        incoming.clear()

    def _exited_well(self) -> bool:
        assert self._process is not None
        try:
            return self._process.wait(30) == 0
        except subprocess.TimeoutExpired:
            return False

    def _death(self) -> str:
        assert self._process is not None
        try:  # its pipe's end comes a moment before its exit status
            code = self._process.wait(5)
        except subprocess.TimeoutExpired:
            return "the writer process stopped answering"
        if code < 0:
            return f"the writer process was killed ({signal.Signals(-code).name})"
        return f"the writer process ended (exit status {code})"

    def _reports(self, buffer: bytes) -> bytes:
        """Read the writer's whole reports in ``buffer``; the rest (a report cut short) is
        given back."""
        size = store_writer.REPORT_HEADER.size
        while len(buffer) >= size:
            length = store_writer.REPORT_HEADER.unpack_from(buffer)[0]
            if len(buffer) < size + length:
                break
            report = pickle.loads(buffer[size : size + length])
            buffer = buffer[size + length :]
            if report[0] == "ok":
                _, self.committed, self.indexed, self.written, unstored = report
                if unstored > self.unstored:
                    log.error("--session %s: %d flows could not be stored", self.path, unstored)
                    self.unstored = unstored
            elif self.failed is None:
                self._fail(report[1])
        return buffer

    def _fail(self, reason: str) -> None:
        """Storing stops: one message, to ``on_error`` or stderr."""
        self.failed = f"--session {self.path}: {reason}; no more flows are stored"
        log.error("%s", self.failed)
        try:
            if self.on_error is not None:
                self.on_error(self.failed)
            else:
                print(f"waylay: {self.failed}", file=sys.stderr, flush=True)
        except Exception:
            log.debug("on_error failed", exc_info=True)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything added so far is committed (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        target = self._next_seq - 1
        while self.committed < target and not self.failed and time.monotonic() < deadline:
            time.sleep(0.01)

    # -- reading --------------------------------------------------------------------

    def _read_db(self) -> sqlite3.Connection:
        if self._reader is None:
            self._reader = self._connect(read_only=True)
        return self._reader

    def count(self) -> int:
        with self._read_lock:
            return self._read_db().execute("SELECT count(*) FROM flows").fetchone()[0]

    def flow(self, seq: int) -> http.HTTPFlow | None:
        with self._read_lock:
            row = self._read_db().execute(f"{SELECT} WHERE seq = ?", (seq,)).fetchone()
        return flow_from_row(row) if row is not None else None

    def rows(self, seqs: list[int]) -> Iterator[sqlite3.Row]:
        with self._read_lock:
            db = self._read_db()
            for start in range(0, len(seqs), 500):
                chunk = seqs[start : start + 500]
                marks = ",".join("?" * len(chunk))
                yield from db.execute(f"{SELECT} WHERE seq IN ({marks}) ORDER BY seq", chunk)

    def newest(self, n: int) -> list[sqlite3.Row]:
        with self._read_lock:
            rows = self._read_db().execute(f"{SELECT} ORDER BY seq DESC LIMIT ?", (n,)).fetchall()
        return rows[::-1]

    def query(
        self,
        expr: str,
        *,
        progress: Callable[[int, int], None] | None = None,
        since: int = 0,
        below: int | None = None,
    ) -> tuple[list[int], bool]:
        """The seqs of the flows that match ``expr`` (a mitmproxy filter expression, or
        plain text found in the URL, method or state), oldest first, and whether it ran as
        SQL (False: the scan fallback, which reports ``progress(done, total)``). Only rows
        with ``since <= seq < below`` are looked at."""
        span = "seq >= :since AND seq < :below"
        bounds = {"since": since, "below": below if below is not None else 2**62}
        expr = expr.strip()
        if not expr:
            with self._read_lock:
                return store_scan.seqs(
                    self._read_db(), f"SELECT seq FROM flows WHERE {span}", bounds
                ), True
        if "~" not in expr:
            # LIKE ignores ASCII case in C, without a lower() copy of every value
            like = "%" + re.sub(r"([\\%_])", r"\\\1", expr) + "%"
            sql = (
                f"SELECT seq FROM flows WHERE {span} AND (url LIKE :t ESCAPE '\\' OR method "
                "LIKE :t ESCAPE '\\' OR label LIKE :t ESCAPE '\\')"
            )
            with self._read_lock:
                return store_scan.seqs(self._read_db(), sql, {"t": like, **bounds}), True
        flt = flowfilter.parse(expr)  # raises ValueError for people
        regexes: list[re.Pattern] = []
        need: set[str] = set()
        # a connection of its own: a long filter never holds up the rows the list reads
        db = self._connect(read_only=True, regexes=regexes)
        try:
            try:
                where, args = _to_sql(flt, regexes, db, need, self._heads(db), self._added(db))
            except _NotSQL:
                where = None
            if where is None:
                return self._scan(db, flt, progress, span, bounds), False
            db.row_factory = None
            named = {f"a{i}": a for i, a in enumerate(args)}
            for i in range(len(args)):
                where = where.replace("?", f":a{i}", 1)
            tables = _tables(flt, where, need)
            sql = f"SELECT seq FROM {tables} WHERE {span} AND "
            sql += f"({where})"  # NULL at the top is no match, as 0 (_seqs orders them)
            narrowed = None
            indexed = store_writer.indexed_of(db) if need else 0
            if indexed:
                queries: list[str] = []
                among = _candidates(flt, queries)
                if among is not None:
                    named.update({f"m{i}": q for i, q in enumerate(queries)})
                    narrowed = (
                        among,
                        f"SELECT seq FROM {tables} WHERE seq IN (SELECT value FROM "
                        f"json_each(:seqs)) AND ({where})",
                        indexed,
                        CANDIDATES,
                    )

            params = {**named, **bounds}
            return self._chunked(db, sql, params, progress, narrowed, regexes), True
        finally:
            db.close()

    def _chunked(
        self,
        db: sqlite3.Connection,
        sql: str,
        params: dict,
        progress: Callable[[int, int], None] | None,
        narrowed: store_scan.Narrowed | None,
        regexes: list[re.Pattern],
    ) -> list[int]:
        """Run a filter's query over seq ranges of CHUNK rows, reporting progress after
        each (a million flows: ten steps), the ranges in worker processes on every core
        when there are two or more. ``narrowed``: in a range the body index covers, only
        the candidates are read, unless they are most of its rows."""
        # (one query for each: SQLite reads the whole range for a min and a max together)
        span = "FROM flows WHERE seq >= :since AND seq < :below"
        (low,) = db.execute(f"SELECT min(seq) {span}", params).fetchone()
        (high,) = db.execute(f"SELECT max(seq) {span}", params).fetchone()
        if low is None:
            if progress is not None:
                progress(0, 0)
            return []
        spans: list[tuple[int, int]] = []
        start = low
        while start <= high:
            end = min(start + CHUNK, high + 1)
            if narrowed is not None and start <= narrowed[2] < end - 1:
                end = narrowed[2] + 1  # the index's last row ends a chunk
            spans.append((start, end))
            start = end
        total = high - low + 1

        def done(end: int) -> None:
            if progress is not None:
                progress(end - low, total)

        pool = _scan_pool() if len(spans) > 1 else None
        if pool is not None:
            try:
                return pool.run((str(self.path), sql, params, narrowed, regexes), spans, done)
            except store_scan.ScanError as e:
                log.warning("filter run in this process: %s", e)
        if narrowed is None and progress is None:
            return store_scan.seqs(db, sql, params)
        found: list[int] = []
        for start, end in spans:
            found += store_scan.range_seqs(db, sql, params, narrowed, start, end)
            done(end)
        return found

    def _scan(self, db, flt, progress, span: str = "1", bounds: dict | None = None) -> list[int]:
        bounds = bounds or {}
        total = db.execute(f"SELECT count(*) FROM flows WHERE {span}", bounds).fetchone()[0]
        found = []
        rows = db.execute(f"{SELECT} WHERE {span} ORDER BY seq", bounds)
        for done, row in enumerate(rows, 1):
            try:
                if flt(flow_from_row(row)):
                    found.append(row["seq"])
            except Exception:
                log.debug("filter failed on flow %s", row["seq"], exc_info=True)
            if progress is not None and done % 5000 == 0:
                progress(done, total)
        if progress is not None:
            progress(total, total)
        return found

    # -- flows older than the ones in memory ----------------------------------------------

    def older(self, expr: str, below: int, start: int, count: int) -> tuple[int, list[FlowView]]:
        """The flows with ``seq < below`` (those no longer in memory) that match ``expr``
        ("" for all; as ``query``), oldest first: how many, and the list rows of those at
        ``[start, start + count)``. A filter's seqs are kept for the next call (a few
        expressions, 8 bytes a match) and extended as ``below`` grows; rows are read by
        range, so the caller holds only what it shows."""
        below = min(below, self.committed + 1)
        expr = expr.strip()
        if not expr:
            with self._read_lock:
                db = self._read_db()
                counted = self._older_count
                if counted is not None and counted[0] == below:  # rows are never removed
                    total = counted[1]
                else:
                    sql = "SELECT count(*) FROM flows WHERE seq < ?"
                    total = db.execute(sql, (below,)).fetchone()[0]
                    self._older_count = (below, total)
                rows = []
                if count > 0 and start < total:
                    first = db.execute("SELECT min(seq) FROM flows").fetchone()[0] or 1
                    columns = LISTED
                    if below - first == total:  # seqs without gaps (as the writer makes them)
                        rows = db.execute(
                            f"SELECT {columns} FROM flows WHERE seq >= ? AND seq < ? ORDER BY seq",
                            (first + start, min(first + start + count, below)),
                        ).fetchall()
                    else:
                        rows = db.execute(
                            f"SELECT {columns} FROM flows WHERE seq < ? ORDER BY seq "
                            "LIMIT ? OFFSET ?",
                            (below, count, start),
                        ).fetchall()
            return total, self._serve([view_of_row(r) for r in rows])
        with self._older_lock:
            done, seqs = self._older.get(expr, (0, array("q")))
        if below > done:  # run outside the lock: other filters and rows go on meanwhile

            def progress(d: int, t: int) -> None:
                self.older_progress[expr] = (d, t)

            try:
                found, _ = self.query(expr, since=done, below=below, progress=progress)
            finally:
                self.older_progress.pop(expr, None)
            seqs = seqs + array("q", found)
            with self._older_lock:
                kept = self._older.get(expr)
                if kept is None or kept[0] < below:
                    self._older.pop(expr, None)
                    while len(self._older) >= 4:  # the oldest expression goes
                        del self._older[next(iter(self._older))]
                    self._older[expr] = (below, seqs)
        total = len(seqs)
        if count <= 0 or start >= total:
            return total, []
        chosen = list(seqs[start : start + count])
        marks = ",".join("?" * len(chosen))
        with self._read_lock:
            rows = (
                self._read_db()
                .execute(
                    f"SELECT {LISTED} FROM flows WHERE seq IN ({marks}) ORDER BY seq",
                    chosen,
                )
                .fetchall()
            )
        return total, self._serve([view_of_row(r) for r in rows])

    def _serve(self, views: list[FlowView]) -> list[FlowView]:
        served = self._served
        with self._served_lock:
            for view in views:
                served[view.id] = view.seq
                served.move_to_end(view.id)
            while len(served) > SERVED:
                served.popitem(last=False)
        return views

    def flow_by_id(self, flow_id: str) -> tuple[int, http.HTTPFlow] | None:
        """(seq, the flow rebuilt) of a row by flow id, or None: by its seq when ``older``
        handed it out lately (the usual case), else by a scan of the ids."""
        seq = self._served.get(flow_id)
        with self._read_lock:
            db = self._read_db()
            row = None
            if seq is not None:
                row = db.execute(f"{SELECT} WHERE seq = ?", (seq,)).fetchone()
                if row is not None and row["id"] != flow_id:
                    row = None
            if row is None:
                sql = f"{SELECT} WHERE seq = (SELECT max(seq) FROM flows WHERE id = ?)"
                row = db.execute(sql, (flow_id,)).fetchone()
        return (row["seq"], flow_from_row(row)) if row is not None else None

    def older_http_flows(self, expr: str, below: int) -> Iterator[http.HTTPFlow]:
        """The flows that ``older(expr, below, …)`` lists, rebuilt whole (for a save or an
        export), oldest first. Read 500 at a time: the read lock is held for a chunk, so
        the list's own reads go on between chunks."""
        seqs, _ = self.query(expr, below=min(below, self.committed + 1))
        for start in range(0, len(seqs), 500):
            for row in list(self.rows(seqs[start : start + 500])):
                yield flow_from_row(row)


def view_of_row(row: sqlite3.Row) -> FlowView:
    """The flow list's row of a stored flow, from the narrow table alone."""
    ended, started = row["ended"], row["started"]
    return FlowView(
        id=row["id"],
        seq=row["seq"],
        started=started,
        method=row["method"],
        scheme=row["scheme"],
        host=row["host"],
        port=row["port"],
        path=row["path"],
        url=row["url"],
        http_version=row["http_version"],
        type=row["type"] or "other",
        state=row["state"]
        if row["state"] in ("done", "cancelled", "redirected", "error")
        else "done",
        status=row["status"],
        reason=row["reason"] or "",
        error=row["error"],
        size=row["resp_size"],
        duration=(ended - started) if ended is not None else None,
        rule_id=row["rule_id"],
        is_websocket=bool(row["websocket"]),
    )


class StoreAddon:
    """Addon: each finished flow goes to the store (as ``FlowSaver`` for ``--save``)."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is None:
            self.store.add(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is None:
            self.store.add(flow)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        self.store.add(flow)
