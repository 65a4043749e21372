"""A filter's query over a session file, in ranges of seqs, on every core.

A filter over a million stored flows reads every body it cannot rule out from the
body index: SQLite's reading and ``instr``, and, for a regex, Python's ``re`` through
a registered function (``wl_re``, ``wl_head``, ``wl_body``), which holds the GIL for
each row. One core does a million 1 KB bodies in about 2 s. :class:`ScanPool` runs the
ranges of one query in worker processes (at most one per core), so the filter takes
about half that on two cores, and a filter run in the proxy process no longer holds
the proxy's GIL for its regexes.

The workers run this file as a script (``python -I store_scan.py``, as the store's
writer): the standard library only, so one starts in a few tens of milliseconds; the
one import of mitmproxy (``encoding``, to search a gzip body as mitmproxy does) waits
for the first encoded body. A worker reads jobs on its stdin and answers each on its
stdout, and ends when its stdin ends (when the process that started it ends, even
killed). Frames: 4 bytes of length, then a pickle; a job is ``(path, sql, params,
narrowed, start, end, regexes)``, an answer ``("ok", seqs)`` or ``("error", message)``.

``monitor.store`` imports the shared parts from here (one copy): ``content``,
``register``, ``seqs``, ``range_seqs``.
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import re
import sqlite3
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

HEADER = struct.Struct("!I")

Narrowed = tuple[str, str, int, float]
"""A body filter's candidates from the body index: (the SQL of the candidates of a range,
the query over given seqs, the highest seq indexed, the share of a range's rows above
which the range is read whole instead)."""


def content(body: bytes | None, block: bytes | None) -> bytes:
    """What mitmproxy's ``~b`` searches in a stored body: ``get_content(strict=False)``,
    i.e. decoded by its Content-Encoding, or as kept when that fails."""
    data = body or b""
    if not block or not data:
        return data
    values = []
    for line in block.split(b"\r\n"):
        name, _, value = line.partition(b": ")
        if name.lower() == b"content-encoding":
            values.append(value)
    if not values:
        return data
    ce = b", ".join(values).decode("utf-8", "surrogateescape")
    if not ce:
        return data
    from mitmproxy.net import encoding  # only here: a worker runs without it until then

    try:
        decoded = encoding.decode(data, ce)
        if isinstance(decoded, str):
            raise ValueError(f"Invalid Content-Encoding: {ce}")
        return decoded
    except ValueError:
        return data


def register(db: sqlite3.Connection, regexes: list[re.Pattern]) -> None:
    """The SQL functions a filter's query calls: ``wl_re(i, text)``, ``wl_head(i, block)``
    and ``wl_body(i, body, block)`` search with ``regexes[i]`` (the list is read at each
    call: a connection kept for many queries takes each one's patterns in place)."""

    def wl_re(index: int, value: str | None) -> int:
        if value is None:
            return 0
        return 1 if regexes[index].search(value) else 0

    def wl_head(index: int, block: bytes | None) -> int:
        if block is None:
            return 0
        # what mitmproxy's ~h searches: bytes(headers), a CRLF after every line
        return 1 if regexes[index].search(block + b"\r\n" if block else b"") else 0

    def wl_body(index: int, body: bytes | None, block: bytes | None) -> int:
        if block is None:  # not encoded: searched as kept
            return 1 if regexes[index].search(body or b"") else 0
        try:
            found = content(body, block)
        except Exception:  # as the scan: a body that cannot be read does not match
            return 0
        return 1 if regexes[index].search(found) else 0

    db.create_function("wl_re", 2, wl_re, deterministic=True)
    db.create_function("wl_head", 2, wl_head, deterministic=True)
    db.create_function("wl_body", 3, wl_body, deterministic=True)


def seqs(db: sqlite3.Connection, sql: str, params: dict) -> list[int]:
    """The seqs a query selects (its one column is ``seq``), in order. They come back as
    one JSON array: a million rows handed to Python one at a time cost a quarter second
    more (measured on the million-flow session, a body filter that every flow matches)."""
    (text,) = db.execute(f"SELECT json_group_array(seq) FROM ({sql})", params).fetchone()
    found: list[int] = json.loads(text)
    found.sort()  # (SQLite may drop a subquery's ORDER BY; sorted input sorts in one pass)
    return found


def range_seqs(
    db: sqlite3.Connection,
    sql: str,
    params: dict,
    narrowed: Narrowed | None,
    start: int,
    end: int,
) -> list[int]:
    """A filter's matches with ``start <= seq < end``: through the body index's
    candidates when it covers the range and they are few enough, else by reading
    every row of it."""
    part = {**params, "since": start, "below": end}
    if narrowed is not None and end - 1 <= narrowed[2]:
        most = int((end - start) * narrowed[3])
        bounds = {**part, "lo": start, "hi": end}
        among = [r[0] for r in db.execute(f"{narrowed[0]} LIMIT {most + 1}", bounds)]
        if len(among) <= most:
            if not among:
                return []
            part["seqs"] = json.dumps(among)
            return seqs(db, narrowed[1], part)
    return seqs(db, sql, part)


# -- the pool (in the process that filters) ------------------------------------------------


class ScanError(Exception):
    """A worker could not run a range (it is gone, or SQLite refused): the caller runs
    the query itself."""


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _read_exactly(stream, n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) < n:
        raise EOFError("the scan worker is gone")
    return data


class _Worker:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-I", __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def run(self, job: tuple) -> list[int]:
        assert self.process.stdin is not None and self.process.stdout is not None
        data = pickle.dumps(job)
        self.process.stdin.write(HEADER.pack(len(data)) + data)
        self.process.stdin.flush()
        size = HEADER.unpack(_read_exactly(self.process.stdout, HEADER.size))[0]
        answer = pickle.loads(_read_exactly(self.process.stdout, size))
        if answer[0] != "ok":
            raise ScanError(answer[1])
        return answer[1]

    def stop(self) -> None:
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


class ScanPool:
    """Worker processes for filter queries, started on first use (at most ``size``) and
    kept for the next filter; a worker that fails is stopped and replaced."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._started = 0
        self._lock = threading.Lock()

    def _take(self) -> _Worker:
        """An idle worker that is alive, else a new one (at most ``size``), else the
        first one back."""
        wait = 0.0
        while True:
            try:
                worker = self._idle.get(timeout=wait) if wait else self._idle.get_nowait()
            except queue.Empty:
                pass
            else:
                if worker.process.poll() is None:
                    return worker
                self._drop(worker)  # ended while idle (killed): replaced
                continue
            with self._lock:
                start = self._started < self.size
                if start:
                    self._started += 1
            if start:
                try:
                    return _Worker()
                except OSError as e:
                    with self._lock:
                        self._started -= 1
                    raise ScanError(f"cannot start a scan worker: {e}") from None
            wait = 0.05  # all busy: the first one back (or room, if one fails meanwhile)

    def _drop(self, worker: _Worker) -> None:
        worker.stop()
        with self._lock:
            self._started -= 1

    def _run(self, job: tuple) -> list[int]:
        worker = self._take()
        try:
            found = worker.run(job)
        except Exception as e:  # gone mid-range, cut short, or SQLite refused: replaced
            self._drop(worker)
            raise ScanError(str(e) or type(e).__name__) from None
        self._idle.put(worker)
        return found

    def run(
        self,
        job: tuple,
        spans: Sequence[tuple[int, int]],
        done: Callable[[int], None] | None = None,
    ) -> list[int]:
        """The matches of a query (``job``: path, sql, params, narrowed; the regexes
        last) over ``spans`` of seqs, in order; ``done(end)`` after each span, in order."""
        path, sql, params, narrowed, regexes = job
        found: list[int] = []
        with ThreadPoolExecutor(min(self.size, len(spans)), "waylay-scan") as ex:
            parts = [
                ex.submit(self._run, (path, sql, params, narrowed, s, e, regexes)) for s, e in spans
            ]
            try:
                for (_, end), part in zip(spans, parts, strict=True):
                    found += part.result()
                    if done is not None:
                        done(end)
            finally:
                for part in parts:
                    part.cancel()
        return found

    def stop(self) -> None:
        while True:
            try:
                self._drop(self._idle.get_nowait())
            except queue.Empty:
                return


# -- the worker (this file, run as a script) -----------------------------------------------


def main() -> int:
    import signal

    # the terminal's Ctrl-C reaches the whole process group: the filtering process
    # decides; this one ends when its stdin does
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    jobs, out = sys.stdin.buffer, sys.stdout.buffer
    db: sqlite3.Connection | None = None
    opened = None
    regexes: list[re.Pattern] = []
    while True:
        head = jobs.read(HEADER.size)
        if len(head) < HEADER.size:
            return 0
        data = jobs.read(HEADER.unpack(head)[0])
        try:
            path, sql, params, narrowed, start, end, patterns = pickle.loads(data)
            if opened != path:
                if db is not None:
                    db.close()
                db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                db.execute("PRAGMA busy_timeout = 5000")
                register(db, regexes)
                opened = path
            assert db is not None
            regexes[:] = patterns
            answer: tuple = ("ok", range_seqs(db, sql, params, narrowed, start, end))
        except Exception as e:  # the filtering process runs the range itself and says why
            answer = ("error", f"{type(e).__name__}: {e}")
            if db is not None:
                db.close()
            db = opened = None
        frame = pickle.dumps(answer)
        out.write(HEADER.pack(len(frame)) + frame)
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
