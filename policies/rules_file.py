"""The rules file: load and check it, decide with it, edit it without losing a byte.

- Loading uses ``tomllib`` (fast) and reports every problem as ``PATH:LINE:COL: message``
  (TOML syntax and schema errors alike, at the line of the offending key or rule).
- A file that fails to load is *broken*: the last good rules stay active and nothing is
  ever written to it until a later load succeeds.
- Edits change the text, never regenerate it: a rule's keys are edited with ``tomlkit``
  on that rule's block alone; adding, removing and moving cut and paste whole
  ``[[rule]]`` blocks (with the comment lines right above them). Comments, order and
  formatting survive. Every edit validates the resulting text exactly as a load would,
  then saves it atomically (temp file in the same folder, fsync, rename) and keeps the
  previous version as ``<name>.bak``.
- Never over a version waylay has not read: each save checks that the file still is
  the version the edit was made on (its SHA-256) and swaps the new text in atomically
  (see :mod:`policies.files`). If another program changed it, waylay reads that
  version (once it has settled) and makes its change again on it, by rule id; if the
  change no longer applies, the other version stays and the edit fails with an error.
  A symlinked rules file is written through to its target.
- ``times``: each time a rule *decides*, its count goes down in memory at once, and a
  writer thread writes the new count back a moment later (``times = 2`` →
  ``times = 1``; counts close together are written together), so a restart continues
  the countdown and a decision never waits for the disk. When it reaches 0 the rule
  stops deciding at once and is disabled in the file: ``enabled = false`` is written
  and the ``times`` key removed. If the file cannot be written (broken, read-only) the
  countdown goes on in memory, :attr:`RulesFile.state` says so, and the count is
  written once it can be.
- Hit counts are kept across restarts in a small JSON file in the user's state folder
  (:func:`hits_path_for`), written at most every couple of seconds and on close: never
  in the rules file.
- Watching: a changed file is taken once it has settled (same signature on two polls),
  and a version without rules replaces rules only once it is a second old, so an
  in-place save (truncate, then write) is never taken for an emptied file.
- Transient rules (unsaved breakpoints) take part in decisions but are never written.
  They come *before* the file's rules in file order, so they win priority ties.

Thread-safe: the proxy thread calls :meth:`RulesFile.decide` (which only takes a lock
held for microseconds), the UI thread edits, the watcher and writer threads read and
write the file.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import threading
import time
import tomllib
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import tomlkit
import tomlkit.items
from pydantic import ValidationError

from .engine import Decision, Engine, EventDetails
from .files import (
    NO_FILE,
    FileVersion,
    WriteConflict,
    read_version,
    settled,
    signature,
    write_atomic,
    write_checked,
)
from .model import (
    Defaults,
    Problem,
    Rule,
    problems_from_validation_error,
    validate_rule,
)
from .secrets import SecretStore, env_name

__all__ = [
    "MAX_NESTING",
    "MAX_RULES_FILE_BYTES",
    "RulesFile",
    "RulesFileError",
    "body_file_outside",
    "check_text",
    "default_rules_path",
    "hits_path_for",
    "read_rules_text",
    "write_atomic",
]

log = logging.getLogger("waylay.rules")

MAX_RULES_FILE_BYTES = 32 * 1024 * 1024
"""A rules file larger than this is refused unread (10,000 rules take about 1.5 MB)."""
MAX_NESTING = 32
"""A file nested too deeply for the TOML reader is said to go wrong where it passes this
depth (a rule needs 2)."""

_TOML_POSITION = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)\s*$")
_TOP_KEYS = ("version", "defaults", "rule")


class RulesFileError(Exception):
    """An edit that cannot be saved: the file is broken, or the edit makes it invalid."""


def config_dir() -> Path:
    """waylay's config folder: ``$XDG_CONFIG_HOME/waylay``, else ``~/.config/waylay``
    (the default rules file and the settings file live there)."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config).expanduser() / "waylay"


def default_rules_path() -> Path:
    """``$WAYLAY_RULES``, else ``$XDG_CONFIG_HOME/waylay/rules.toml`` (``~/.config``)."""
    env = os.environ.get("WAYLAY_RULES")
    if env:
        return Path(env).expanduser()
    return config_dir() / "rules.toml"


# -- locating keys in the text ------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[|\[)\s*([^\[\]#]+?)\s*(\]\]|\])\s*(?:#.*)?$")
_KEY = re.compile(r"""^(\s*)("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*[.=]""")


class _Locator:
    """Line and column of the tables and keys of a TOML text (1-based).

    A light line scanner, good enough for error positions: it knows ``[table]``,
    ``[[rule]]``, ``[rule.sub]`` headers and keys, and skips multi-line strings.
    """

    def __init__(self, text: str) -> None:
        self.keys: dict[tuple, tuple[int, int]] = {}
        self.rule_headers: list[tuple[int, int]] = []
        self.tables: dict[str, tuple[int, int]] = {}
        self.headers: list[tuple[int, str, str]] = []
        """(line, kind, name) of every table header; kind is "rule", "rule-sub" or "other"."""
        self.comments: set[int] = set()
        context: tuple = ()
        closing: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if closing is not None:
                if closing in line:
                    closing = None
                continue
            header = _HEADER.match(line)
            if header and not _KEY.match(line):
                col = line.index("[") + 1
                name = header.group(2).replace(" ", "").replace('"', "")
                kind = "rule" if header.group(1) == "[[" and name == "rule" else "other"
                if kind == "other" and name.startswith("rule.") and self.rule_headers:
                    kind = "rule-sub"
                self.headers.append((number, kind, name))
                if kind == "rule":
                    self.rule_headers.append((number, col))
                    context = ("rule", len(self.rule_headers) - 1)
                elif name.startswith("rule.") and self.rule_headers:
                    sub = name.split(".")[1]
                    context = ("rule", len(self.rule_headers) - 1, sub)
                    self.keys.setdefault(("rule", len(self.rule_headers) - 1, sub), (number, col))
                else:
                    context = tuple(name.split("."))
                    self.tables.setdefault(name, (number, col))
                continue
            if line.lstrip().startswith("#"):
                self.comments.add(number)
                continue
            key = _KEY.match(line)
            if key:
                name = key.group(2).strip("\"'")
                self.keys.setdefault((*context, name), (number, len(key.group(1)) + 1))
                rest = line[key.end() :]
                for quote in ('"""', "'''"):
                    if rest.count(quote) % 2 == 1:
                        closing = quote
                        break

    def find(self, loc: tuple) -> tuple[int, int]:
        """The best position for an error at ``loc`` (a pydantic-style key path)."""
        if not loc:
            return (1, 1)
        head = loc[0]
        if head == "rule" and len(loc) >= 2 and isinstance(loc[1], int):
            index = loc[1]
            if len(loc) >= 3 and isinstance(loc[2], str):
                position = self.keys.get(("rule", index, loc[2]))
                if position:
                    return position
            if index < len(self.rule_headers):
                return self.rule_headers[index]
            return self.keys.get(("rule",), (1, 1))
        if head == "defaults":
            if len(loc) >= 2:
                position = self.keys.get(("defaults", loc[1]))
                if position:
                    return position
            return self.tables.get("defaults") or self.keys.get(("defaults",), (1, 1))
        return self.keys.get((head,)) or self.tables.get(str(head)) or (1, 1)


# -- checking a text -----------------------------------------------------------------------


@dataclass
class _Loaded:
    rules: tuple[Rule, ...] = ()
    defaults: Defaults = field(default_factory=Defaults)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_text(text: str, path: Path | str, secrets: SecretStore | None = None) -> _Loaded:
    """Parse and validate a rules file's text; errors and warnings as ``PATH:LINE:COL: …``.

    ``secrets`` (when given) is asked for every secret a credentials rule names;
    ``body_file`` paths are checked relative to ``path``'s folder.
    """
    path = Path(path)
    out = _Loaded()

    def report(target: list[str], line: int, col: int, message: str) -> None:
        target.append(f"{path}:{line}:{col}: {message}")

    if text.startswith("\ufeff"):
        report(
            out.errors,
            1,
            1,
            "the file starts with a UTF-8 byte order mark (BOM), which TOML does not allow: "
            "save it as UTF-8 without BOM",
        )
        return out
    if len(text) > MAX_RULES_FILE_BYTES:
        report(out.errors, 1, 1, _too_large(len(text.encode("utf-8", "surrogatepass"))))
        return out
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_POSITION.search(message)
        if found and found.group(1):
            line, col = int(found.group(1)), int(found.group(2))
        else:
            line, col = max(1, text.count("\n") + (0 if text.endswith("\n") else 1)), 1
        report(out.errors, line, col, f"TOML syntax error: {_TOML_POSITION.sub('', message)}")
        return out
    except RecursionError:  # tomllib recurses once per level of nesting
        line, col = _too_deep(text) or (1, 1)
        report(
            out.errors,
            line,
            col,
            "arrays or inline tables nested too deeply for the TOML reader (hundreds of "
            "levels; a rules file needs 2)",
        )
        return out
    except (MemoryError, ValueError) as exc:  # never a traceback
        report(out.errors, 1, 1, f"cannot read it as TOML: {type(exc).__name__}")
        return out
    try:
        _check_data(data, text, path, secrets, out, report)
    except (RecursionError, MemoryError) as exc:
        out.rules = ()
        report(out.errors, 1, 1, f"cannot check it: {type(exc).__name__} (too complex)")
    return out


def _check_data(
    data: dict[str, Any],
    text: str,
    path: Path,
    secrets: SecretStore | None,
    out: _Loaded,
    report: Callable[[list[str], int, int, str], None],
) -> None:
    located: list[_Locator] = []

    def where() -> _Locator:  # only a file with something to report pays for this
        if not located:
            located.append(_Locator(text))
        return located[0]

    def problem(loc: tuple, message: str, target: list[str] | None = None) -> None:
        line, col = where().find(loc)
        report(out.errors if target is None else target, line, col, message)

    for key in data:
        if key not in _TOP_KEYS:
            hint = " (each rule is a [[rule]] table)" if key in ("rules", "rule_") else ""
            problem(
                (key,),
                f"unknown top-level key {key!r}{hint}; expected version, [defaults], [[rule]]",
            )

    version = data.get("version", 1)
    if type(version) is not int or version != 1:
        problem(("version",), f"unsupported version {version!r} (this waylay reads version 1)")

    defaults_data = data.get("defaults", {})
    if not isinstance(defaults_data, dict):
        problem(("defaults",), "[defaults] must be a table")
    else:
        try:
            out.defaults = Defaults.model_validate(defaults_data)
        except ValidationError as exc:
            for loc, message in problems_from_validation_error(exc):
                problem(("defaults", *loc), f"[defaults] {message}")
        for message in out.defaults.warnings():
            problem(("defaults", "certificate"), f"warning: {message}", out.warnings)

    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        problem(("rule",), "`rule` must be an array of tables: write each rule as [[rule]]")
        raw_rules = []
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    folder = path.parent
    for index, raw in enumerate(raw_rules):
        if not isinstance(raw, dict):
            problem(("rule", index), f"rule {index + 1} must be a table")
            continue
        label = _label(raw, index)
        rule, problems = validate_rule(raw)
        for loc, message in problems:
            problem(("rule", index, *loc), f"{label}: {message}")
        if rule is None:
            continue
        if rule.id in seen:
            first = where().find(("rule", seen[rule.id], "id"))[0]
            problem(("rule", index, "id"), f"duplicate id {rule.id!r} (first used on line {first})")
            continue
        seen[rule.id] = index
        for loc, message in _file_problems(rule, folder, secrets):
            problem(("rule", index, *loc), f"{label}: {message}")
        if rule.body_file is not None and body_file_outside(rule.body_file, folder):
            problem(
                ("rule", index, "body_file"),
                f"warning: {label}: body_file {rule.body_file!r} is outside the rules file's "
                "folder: every proxy client the rule matches is served that file",
                out.warnings,
            )
        for message in rule.warnings():
            problem(("rule", index, "action"), f"warning: {label}: {message}", out.warnings)
        rules.append(rule)
    out.rules = tuple(rules)
    if secrets is not None:
        out.warnings.extend(f"warning: {message}" for message in secrets.warnings)


def _too_large(size: int) -> str:
    return (
        f"the file is {size / 1024 / 1024:.1f} MB; waylay reads rules files up to "
        f"{MAX_RULES_FILE_BYTES // 1024 // 1024} MB"
    )


def read_rules_text(path: Path) -> str:
    """The text of a rules (or import) file; a file over :data:`MAX_RULES_FILE_BYTES` is
    refused unread (``OSError`` EFBIG with a message), bad UTF-8 is ``UnicodeDecodeError``."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > MAX_RULES_FILE_BYTES:
            raise OSError(errno.EFBIG, _too_large(size))
        data = handle.read(MAX_RULES_FILE_BYTES + 1)
    if len(data) > MAX_RULES_FILE_BYTES:  # grew while being read, or not a regular file
        raise OSError(errno.EFBIG, _too_large(len(data)))
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as read_text()


def body_file_outside(body_file: str, folder: Path) -> bool:
    """Whether ``body_file`` (relative to ``folder``) resolves outside ``folder``
    (symbolic links followed): waylay would serve a file the rules folder does not hold."""
    body = Path(body_file).expanduser()
    if not body.is_absolute():
        body = folder / body
    try:
        return not body.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError, ValueError):
        return True


def _too_deep(text: str) -> tuple[int, int] | None:
    """Line and column where arrays or inline tables nest deeper than :data:`MAX_NESTING`
    (strings and comments skipped), or None."""
    depth = 0
    line, line_start = 1, 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line, line_start = line + 1, i + 1
        elif ch == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif ch in "\"'":
            triple = text[i : i + 3] == ch * 3
            quote = ch * 3 if triple else ch
            j = i + len(quote)
            while j < n:
                if ch == '"' and text[j] == "\\":
                    j += 2
                    continue
                if text.startswith(quote, j):
                    break
                if text[j] == "\n":
                    if not triple:
                        break
                    line, line_start = line + 1, j + 1
                j += 1
            i = j + len(quote)
            continue
        elif ch in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return line, i - line_start + 1
        elif ch in "]}":
            depth = max(0, depth - 1)
        i += 1
    return None


def _label(raw: Mapping[str, Any], index: int) -> str:
    rule_id = raw.get("id")
    return f"rule {rule_id!r}" if isinstance(rule_id, str) and rule_id else f"rule #{index + 1}"


def _file_problems(rule: Rule, folder: Path, secrets: SecretStore | None) -> list[Problem]:
    problems: list[Problem] = []
    if rule.secret is not None and secrets is not None and secrets.get(rule.secret) is None:
        problems.append(
            (
                ("secret",),
                f"secret {rule.secret!r} not found: set ${env_name(rule.secret)} "
                f"or add it to {secrets.path}",
            )
        )
    if rule.body_file is not None:
        body = Path(rule.body_file).expanduser()
        if not body.is_absolute():
            body = folder / body
        if not body.is_file():
            problems.append((("body_file",), f"body_file {str(body)!r} does not exist"))
    return problems


# -- writing -------------------------------------------------------------------------------


def toml_value(value: Any) -> Any:
    """A tomlkit item for a rule value: literal strings for backslashes, inline tables."""
    if isinstance(value, str):
        if "\\" in value and "'" not in value and "\n" not in value:
            return tomlkit.string(value, literal=True)
        return tomlkit.string(value)
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        for key, item in value.items():
            table[key] = toml_value(item)
        return table
    if isinstance(value, list | tuple):
        array = tomlkit.array()
        for item in value:
            array.append(toml_value(item))
        return array
    return value


def _set_key(table: Any, key: str, value: Any) -> None:
    """Set ``key``; a new key goes right after the table's last key, before the blank lines
    and comments that end the table (a comment there introduces the next table)."""
    if key in table:
        table[key] = value
        return
    body = table.value.body
    trailing = []
    while body and body[-1][0] is None:
        item = body.pop()[1]
        if isinstance(item, tomlkit.items.Whitespace | tomlkit.items.Comment):
            trailing.append(item)  # (a deleted key leaves a Null behind: dropped)
    table.add(key, value)
    for item in reversed(trailing):
        table.add(item)


_SLUG = re.compile(r"[^a-z0-9]+")
_ATTEMPTS = 8
_HISTORY_CAP = 1000


def hits_path_for(rules_path: Path | str) -> Path:
    """Where the hit counts of a rules file are kept: the user's state folder
    (``$XDG_STATE_HOME/waylay/hits``, else ``~/.local/state/waylay/hits``), one file per
    rules file (named after its resolved path), never beside or inside the user's file."""
    real = os.path.realpath(Path(rules_path).expanduser())
    tag = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return platformdirs.user_state_path("waylay") / "hits" / f"{Path(real).name}-{tag}.json"


def _decode(data: bytes) -> str:
    """UTF-8 text with universal newlines (as ``Path.read_text`` reads it)."""
    text = data.decode("utf-8")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


@dataclass
class _Change:
    """What an edit produces: the new text; ``doc``, the tomlkit document it edited (kept
    for the next edit); ``replaced``, for an edit that only changed some rules' ``times``
    and ``enabled`` (checked block by block: no need to validate the whole file again);
    ``blocks``, the new text's blocks when known; ``fresh``, ids whose ``times`` a person
    set (the countdown starts again from the file's value)."""

    text: str
    doc: tomlkit.TOMLDocument | None = None
    replaced: dict[int, Rule] | None = None
    blocks: _RuleBlocks | None = None
    fresh: frozenset[str] = frozenset()


# -- the rules file ------------------------------------------------------------------------


class RulesFile:
    """A rules file on disk, its active rules, and every way of changing them."""

    write_delay = 0.2
    """Seconds the writer waits after a countdown so that close ones are written together."""
    hits_interval = 2.0
    """At most one write of the hit counts per this many seconds."""
    settle = 0.1
    """The watcher reads a changed file once it has stayed the same for this long."""
    empty_age = 1.0
    """A file without rules replaces one with rules only once unchanged for this long (an
    in-place save truncates first)."""

    def __init__(self, path: Path | str, *, hits_file: Path | str | None | bool = True) -> None:
        self.path = Path(path).expanduser()
        self.secrets = SecretStore(self.path.parent)
        self.hits: dict[str, int] = {}
        """Decisions made by each rule id (kept across restarts in :attr:`hits_file`)."""
        if hits_file is True:
            hits_file = hits_path_for(self.path)
        self.hits_file: Path | None = Path(hits_file) if hits_file else None
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.notice: str | None = None
        """Said in :attr:`state` while a countdown is counted in memory only (and why)."""
        self._lock = threading.RLock()  # the file: loading, editing, watching, writing
        self._count_lock = threading.Lock()  # counts and the active engine: never held long
        self._rules: tuple[Rule, ...] = ()
        self._defaults = Defaults()
        self._transient: tuple[Rule, ...] = ()
        self._times_left: dict[str, int] = {}
        self._history: dict[str, list[int]] = {}
        """``times`` values the file held (read or written) during each countdown."""
        self._dirty: set[str] = set()
        """Rules whose count in memory is not in the file yet."""
        self._exhausted: frozenset[str] = frozenset()
        """Rules used up in memory whose disabling is not in the engine yet."""
        self._engine = Engine((), self._defaults, base_dir=self.path.parent)
        self._text: str | None = None
        self._doc: tomlkit.TOMLDocument | None = None
        self._blocks_cache: tuple[str, _RuleBlocks | None] | None = None
        self._positions_cache: tuple[tuple[Rule, ...], dict[str, int]] | None = None
        self._version: FileVersion = NO_FILE
        """The version on disk as far as waylay knows (what the next save expects)."""
        self._broken = False
        self._loaded_once = False
        self._hits_loaded = False
        self._hits_dirty = False
        self._hits_saved_at = 0.0
        self._on_change: Callable[[RulesFile], None] | None = None
        self._watcher: threading.Thread | None = None
        self.watch_polls = 0
        """How many times the watcher has looked at the file (for tests and diagnostics)."""
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._at_exit = False
        self._wake = threading.Event()
        self._closed = threading.Event()

    def __repr__(self) -> str:
        return f"<RulesFile {str(self.path)!r} {self.state}>"

    # -- state ------------------------------------------------------------------------

    @property
    def error(self) -> str | None:
        """The first load error (``PATH:LINE:COL: message``), or None."""
        return self.errors[0] if self.errors else None

    @property
    def broken(self) -> bool:
        """True when the last load failed: the last good rules are active, nothing is written."""
        return self._broken

    @property
    def exists(self) -> bool:
        return self._text is not None

    @property
    def state(self) -> str:
        """Short, for a header: ``12 rules``, ``error: …``, ``new file``; then the
        :attr:`notice` if there is one."""
        if self._broken and self.errors:
            text = "error: " + self.errors[0].removeprefix(f"{self.path}:")
        elif self._text is None:
            text = "new file"
        else:
            count = len(self._rules)
            text = f"{count} rule{'s' if count != 1 else ''}"
        notice = self.notice
        return f"{text} · {notice}" if notice else text

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The file's rules, in file order (transient rules not included)."""
        return self._rules

    @property
    def transient(self) -> tuple[Rule, ...]:
        return self._transient

    @property
    def defaults(self) -> Defaults:
        return self._defaults

    @property
    def engine(self) -> Engine:
        return self._engine

    def ordered(self) -> list[Rule]:
        """Transient and file rules, enabled or not, in precedence order."""
        return self._engine.ordered()

    def get(self, rule_id: str) -> Rule | None:
        return self._engine.get(rule_id)

    def is_transient(self, rule_id: str) -> bool:
        return any(rule.id == rule_id for rule in self._transient)

    def times_left(self, rule_id: str) -> int | None:
        """How many more times a rule applies (None: no limit)."""
        rule = self.get(rule_id)
        if rule is None or rule.times is None:
            return None
        return self._times_left.get(rule_id, rule.times)

    # -- loading ----------------------------------------------------------------------

    def load(self) -> bool:
        """(Re)read the file. Never raises for a bad file: returns False and sets ``errors``,
        keeping the last good rules active and the file protected from writes."""
        with self._lock:
            self._load_hits()
            try:
                size = os.stat(self.path).st_size
            except OSError:
                size = 0
            if size > MAX_RULES_FILE_BYTES:
                self._reject(
                    [f"{self.path}:1:1: cannot read: {_too_large(size)}"],
                    FileVersion(b"", signature(self.path)),
                )
                return False
            try:
                data, version = read_version(self.path)
            except OSError as exc:
                self._reject(
                    [f"{self.path}:1:1: cannot read: {exc.strerror or exc}"],
                    FileVersion(b"", signature(self.path)),
                )
                return False
            return bool(self._load_bytes(data, version))

    def _load_bytes(
        self, data: bytes | None, version: FileVersion, *, guard_empty: bool = False
    ) -> bool | None:
        """Make ``data`` (a version of the file; None: no file) the active rules if it loads.
        None (and nothing changed) when ``guard_empty`` and it has no rules while the
        active ones have some, and it is too fresh to be trusted (an in-place save)."""
        if data is None:
            self._accept(None, _Loaded(), version)
            return True
        try:
            text = _decode(data)
        except UnicodeDecodeError:
            self._reject([f"{self.path}:1:1: cannot read: not UTF-8 text"], version)
            return False
        loaded = check_text(text, self.path, self.secrets)
        if loaded.errors:
            self._reject(loaded.errors, version)
            return False
        if guard_empty and not loaded.rules and self._rules and not self._old_enough(version):
            return None
        self._accept(text, loaded, version)
        return True

    def _old_enough(self, version: FileVersion) -> bool:
        if version.signature is None:
            return True
        return time.time_ns() - version.signature[0] >= self.empty_age * 1e9

    def _reject(self, errors: list[str], version: FileVersion) -> None:
        self.errors = errors
        self._broken = True
        self._version = version
        self._loaded_once = True

    def _accept(
        self,
        text: str | None,
        loaded: _Loaded,
        version: FileVersion,
        change: _Change | None = None,
    ) -> None:
        self._text = text
        self._doc = None
        self._blocks_cache = (
            (text, change.blocks) if text is not None and change and change.blocks else None
        )
        self._version = version
        self._broken = False
        self._loaded_once = True
        self.errors = []
        self.warnings = loaded.warnings
        cached = self._positions_cache
        if change and change.replaced is not None and cached and cached[0] is self._rules:
            self._positions_cache = (loaded.rules, cached[1])  # same ids in the same places
        self._rules = loaded.rules
        self._defaults = loaded.defaults
        self._transient = tuple(
            r for r in self._transient if self._rule_id_free(r.id, loaded.rules)
        )
        if change is not None and change.replaced is not None:
            engine = self._engine.replaced({rule.id: rule for rule in change.replaced.values()})
        else:
            engine = self._new_engine()
        fresh = change.fresh if change is not None else frozenset()
        timed = [rule for rule in loaded.rules if rule.times is not None]
        with self._count_lock:
            self._merge_counts(timed, fresh)
            self._swap_engine(engine)
        if self._dirty:
            self._wake_writer()

    def _merge_counts(self, rules: list[Rule], fresh: frozenset[str]) -> None:
        """Counts for a new version of the file's rules with ``times`` (under the count
        lock).

        A rule new to waylay, one whose ``times`` a person set through waylay (``fresh``)
        or wrote by hand (a value the file never held during this countdown) counts from
        the file's value. A value the file already held during this countdown is an older
        copy of the file saved over waylay's count (an editor that loaded the file before
        waylay's last write): the lower count in memory stays, and is written again.
        """
        left, history = self._times_left, self._history
        new_left: dict[str, int] = {}
        new_history: dict[str, list[int]] = {}
        for rule in rules:
            value = rule.times
            if value is None:
                continue
            count = left.get(rule.id)
            held = history.get(rule.id)
            if count is None or held is None or rule.id in fresh:
                count, held = value, [value]
            elif value == count:
                pass
            elif count < value and value in held:
                self._dirty.add(rule.id)  # an old copy: keep counting from memory
            else:
                count, held = value, [value]
            new_left[rule.id] = count
            new_history[rule.id] = held
        for rule in self._transient:
            if rule.id in left:
                new_left[rule.id] = left[rule.id]
            elif rule.times is not None:
                new_left[rule.id] = rule.times
        self._times_left = new_left
        self._history = new_history
        self._dirty &= set(new_left)

    def _new_engine(self, rules: Iterable[Rule] | None = None) -> Engine:
        file_rules = self._rules if rules is None else tuple(rules)
        return Engine((*self._transient, *file_rules), self._defaults, base_dir=self.path.parent)

    def _swap_engine(self, engine: Engine) -> None:
        """Make ``engine`` the active one (under the count lock); rules used up in memory
        stay left out of decisions until the file says they are disabled."""
        self._engine = engine
        self._exhausted = frozenset(
            rule_id
            for rule_id, left in self._times_left.items()
            if left <= 0 and (rule := engine.get(rule_id)) is not None and rule.enabled
        )

    def _rebuild(self) -> None:
        engine = self._new_engine()
        with self._count_lock:
            self._swap_engine(engine)

    @staticmethod
    def _rule_id_free(rule_id: str, rules: Iterable[Rule]) -> bool:
        return all(rule.id != rule_id for rule in rules)

    # -- deciding ---------------------------------------------------------------------

    def decide(self, details: EventDetails) -> Decision:
        """Decide one event with the current rules.

        Counts the deciding rule's hit in ``hits`` and, for a rule with ``times``, counts
        down in memory at once; the new count is written to the file by a writer thread
        a moment later (coalesced). This never waits for the file.
        """
        while True:
            engine = self._engine
            skip = self._exhausted
            decision = engine.decide(details, skip) if skip else engine.decide(details)
            rule = decision.rule
            if rule is None:
                return decision
            with self._count_lock:
                if self._engine is not engine or self._exhausted is not skip:
                    continue  # the rules changed meanwhile: decide again
                if rule.times is not None:
                    left = self._times_left.get(rule.id, rule.times)
                    if left <= 0:
                        self._exhausted = skip | {rule.id}
                        continue
                    left -= 1
                    self._times_left[rule.id] = left
                    if left <= 0:
                        self._exhausted = skip | {rule.id}
                    self._dirty.add(rule.id)
                self.hits[rule.id] = self.hits.get(rule.id, 0) + 1
                self._hits_dirty = True
                self._wake_writer()
            return decision

    # -- writing counts and hits (off the proxy's thread) -----------------------------

    def _wake_writer(self) -> None:
        """Have the writer thread write pending counts soon (start it the first time)."""
        if self._closed.is_set():
            return
        self._wake.set()
        writer = self._writer
        if writer is not None and writer.is_alive():
            return
        with self._writer_lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(
                    target=self._write_loop, name="waylay-rules-writer", daemon=True
                )
                self._writer.start()
                if not self._at_exit:
                    self._at_exit = True
                    atexit.register(_flush_at_exit, weakref.ref(self))

    def _write_loop(self) -> None:
        while not self._closed.is_set():
            pending = self._dirty or self._hits_dirty
            self._wake.wait(self.hits_interval if pending else None)
            if self._closed.wait(self.write_delay):
                return  # close() writes what is left
            self._wake.clear()
            try:
                self.flush(force_hits=False)
            except Exception:  # the writer must never die; the next round tries again
                log.exception("writing the rules file's counts failed")

    def flush(self, *, force_hits: bool = True) -> bool:
        """Write pending countdowns (and the hit counts) now; True when nothing is left
        pending. The writer thread does this on its own a moment after each count."""
        before = self.notice
        with self._lock:
            done = self._flush_counts()
            self._save_hits(force=force_hits)
        if self.notice != before and self._on_change is not None:
            with contextlib.suppress(Exception):
                self._on_change(self)
        return done

    def close(self) -> None:
        """Stop watching and writing; pending counts and hits are written now."""
        self.stop_watching()
        self._closed.set()
        self._wake.set()
        writer, self._writer = self._writer, None
        if writer is not None and writer is not threading.current_thread():
            writer.join(timeout=5)
        self.flush()

    def _flush_counts(self) -> bool:
        with self._count_lock:
            dirty, self._dirty = self._dirty, set()
            counts = {rule_id: self._times_left.get(rule_id) for rule_id in dirty}
        if not dirty:
            self.notice = None  # nothing is left unsaved
            return True
        transient = {rule.id for rule in self._transient}
        used_up = {i for i in dirty & transient if (counts[i] or 0) <= 0}
        if used_up:  # a used-up transient rule (a breakpoint) goes away
            self._transient = tuple(r for r in self._transient if r.id not in used_up)
            engine = self._new_engine()
            with self._count_lock:
                for rule_id in used_up:
                    self._times_left.pop(rule_id, None)
                self._swap_engine(engine)
        in_file = dirty - transient
        if not in_file:
            self.notice = None
            return True
        try:
            self._edit(lambda: self._count_change(in_file))
        except Exception as exc:  # kept pending: the next round tries again
            with self._count_lock:
                self._dirty |= in_file & set(self._times_left)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if self._broken:
                reason = "the file does not load"
            self.notice = f"countdown not saved ({_short(reason)}): counting in memory"
            return False
        self.notice = None
        return True

    def _count_change(self, ids: set[str]) -> _Change | None:
        """The text with the counts in memory of ``ids`` written (None: already there)."""
        with self._count_lock:
            counts = {rule_id: self._times_left.get(rule_id) for rule_id in ids}
        positions = self._positions()
        wanted: dict[int, tuple[Rule, dict[str, Any]]] = {}
        for rule_id, left in counts.items():
            index = positions.get(rule_id)
            if index is None or left is None:
                continue  # removed from the file meanwhile
            rule = self._rules[index]
            if left <= 0:
                if rule.enabled or rule.times is not None:
                    wanted[index] = (rule, {"times": None, "enabled": False})
            elif rule.times != left:
                wanted[index] = (rule, {"times": left})
        if not wanted:
            return None
        replaced = {index: rule.replace(**fields) for index, (rule, fields) in wanted.items()}
        mutates = {
            index: _mutation(fields, replaced[index].to_dict())
            for index, (_rule, fields) in wanted.items()
        }
        blocks = self._blocks()
        if blocks is None:
            doc = self._document()
            for index, mutate in mutates.items():
                mutate(doc["rule"][index])
            return _Change(doc.as_string(), doc)
        text, new_blocks = blocks.edit_many(mutates)
        for index, rule in replaced.items():
            seen = new_blocks.rule_at(index)
            if seen is None or seen.to_dict() != rule.to_dict():
                return _Change(text)  # unexpected: let the full check decide
        return _Change(text, replaced=replaced, blocks=new_blocks)

    def _load_hits(self) -> None:
        """Read the hit counts kept by an earlier run (once)."""
        if self._hits_loaded or self.hits_file is None:
            return
        self._hits_loaded = True
        try:
            data = json.loads(self.hits_file.read_text(encoding="utf-8"))
            saved = data["hits"]
            if not isinstance(saved, dict):
                raise TypeError
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("%s: not a waylay hits file; counting from zero", self.hits_file)
            return
        with self._count_lock:
            for rule_id, count in saved.items():
                if isinstance(rule_id, str) and type(count) is int and count > 0:
                    self.hits[rule_id] = self.hits.get(rule_id, 0) + count

    def _save_hits(self, *, force: bool) -> None:
        if not self._hits_dirty or self.hits_file is None:
            return
        if not force and time.monotonic() - self._hits_saved_at < self.hits_interval:
            return
        known = self._positions()
        with self._count_lock:
            self._hits_dirty = False
            counts = {k: v for k, v in self.hits.items() if v > 0 and k in known}
        text = json.dumps(
            {"rules": os.path.realpath(self.path), "hits": dict(sorted(counts.items()))},
            indent=1,
        )
        try:
            write_atomic(self.hits_file, text + "\n", backup=False)
        except OSError as exc:
            self._hits_dirty = True
            log.warning("cannot save hit counts to %s: %s", self.hits_file, exc)
        self._hits_saved_at = time.monotonic()

    # -- transient rules --------------------------------------------------------------

    def set_transient(self, rules: Iterable[Rule]) -> None:
        """Replace the transient (never saved) rules; their ids must not clash."""
        rules = tuple(rules)
        with self._lock:
            ids = [r.id for r in rules]
            if len(set(ids)) != len(ids):
                raise ValueError("transient rules need unique ids")
            for rule in rules:
                if not self._rule_id_free(rule.id, self._rules):
                    raise ValueError(f"rule id {rule.id!r} is already used by the rules file")
            old = self._transient
            self._transient = rules
            engine = self._new_engine()
            with self._count_lock:
                for rule in old:
                    self._times_left.pop(rule.id, None)
                self._times_left.update({r.id: r.times for r in rules if r.times is not None})
                self._swap_engine(engine)

    def persist_transient(self, rule_id: str, position: int | None = None) -> Rule:
        """Write a transient rule into the file (it stops being transient)."""
        with self._lock:
            rule = next((r for r in self._transient if r.id == rule_id), None)
            if rule is None:
                raise KeyError(rule_id)
            left = self._times_left.get(rule_id)
            if left is not None:
                rule = (
                    rule.replace(times=left)
                    if left > 0
                    else rule.replace(times=None, enabled=False)
                )
            remaining = tuple(r for r in self._transient if r.id != rule_id)
            previous = self._transient
            self._transient = remaining
            try:
                self.add(rule, position)
            except BaseException:
                self._transient = previous
                self._rebuild()
                raise
            return rule

    # -- editing ----------------------------------------------------------------------

    def new_id(self, stem: str = "rule") -> str:
        """A unique id made from ``stem`` (slugified): ``stem``, ``stem-2``, ``stem-3``…"""
        base = _SLUG.sub("-", stem.lower()).strip("-")[:48] or "rule"
        with self._lock:
            taken = {r.id for r in self._rules} | {r.id for r in self._transient}
            if base not in taken:
                return base
            n = 2
            while f"{base}-{n}" in taken:
                n += 1
            return f"{base}-{n}"

    def add(self, rule: Rule, position: int | None = None) -> Rule:
        """Insert ``rule`` at ``position`` in file order (default: at the end) and save."""
        if not isinstance(rule, Rule):
            rule = Rule.model_validate(rule)
        with self._lock:
            if self.is_transient(rule.id):
                raise RulesFileError(f"rule id {rule.id!r} is used by an unsaved rule")

            def change() -> _Change:
                blocks = self._blocks()
                if blocks is None:
                    doc = self._document()
                    array = doc["rule"]
                    index = len(array) if position is None else max(0, position)
                    array.insert(min(index, len(array)), toml_value(rule.to_dict()))
                    return _Change(doc.as_string())
                return _Change(blocks.insert(position, _render_rule(rule)))

            self._edit(change)
            return rule

    def update(self, rule_id: str, **fields: Any) -> Rule:
        """Change fields of a rule and save; a field set to None is removed, one set to
        its default value is removed too (``enabled=True`` drops ``enabled = false``).

        The edit is made on the file as it is when saved: if another program changed the
        file since waylay read it, the change is applied to that version (by rule id)."""
        with self._lock:
            result: list[Rule] = []

            def change() -> _Change:
                current = self._file_rule(rule_id)
                updated = current.replace(**fields)
                result[:] = [updated]
                mutate = _mutation(fields, updated.to_dict())
                fresh = frozenset({rule_id}) if "times" in fields else frozenset()
                blocks = self._blocks()
                if blocks is not None:
                    return _Change(blocks.edit(self._file_index(rule_id), mutate), fresh=fresh)
                doc = self._document()
                mutate(_find_rule(doc, rule_id))
                return _Change(doc.as_string(), doc, fresh=fresh)

            self._edit(change)
            return result[0]

    def set_enabled(self, rule_id: str, enabled: bool) -> Rule:
        return self.update(rule_id, enabled=bool(enabled))

    def remove(self, rule_id: str) -> None:
        """Delete a rule (and the comment lines right above it) from the file and save."""
        with self._lock:

            def change() -> _Change:
                index = self._file_index(rule_id)
                blocks = self._blocks()
                if blocks is None:
                    doc = self._document()
                    del doc["rule"][index]
                    return _Change(doc.as_string())
                return _Change(blocks.remove(index))

            self._edit(change)
            with self._count_lock:
                if self.hits.pop(rule_id, None) is not None:
                    self._hits_dirty = True
            self._wake_writer()

    def move(self, rule_id: str, delta: int) -> int:
        """Move a rule ``delta`` places in file order (negative: up) with the comment lines
        right above it; returns its new index."""
        with self._lock:
            moved: list[int] = []

            def change() -> _Change | None:
                index = self._file_index(rule_id)
                target = max(0, min(len(self._rules) - 1, index + delta))
                moved[:] = [target]
                if target == index:
                    return None
                blocks = self._blocks()
                if blocks is None:
                    doc = self._document()
                    array = doc["rule"]
                    plain = _unwrap(array[index])
                    del array[index]
                    array.insert(target, toml_value(plain))
                    return _Change(doc.as_string())
                return _Change(blocks.move(index, target))

            self._edit(change)
            return moved[0]

    def set_defaults(self, **outcomes: str | None) -> Defaults:
        """Change ``[defaults]`` entries (None removes one) and save."""

        def mutate(table: Any) -> None:
            for key, value in outcomes.items():
                if value is None:
                    if key in table:
                        del table[key]
                else:
                    _set_key(table, key, value)

        def change() -> _Change | None:
            text = self._current_text()
            blocks = self._blocks()
            if blocks is not None:
                edited = blocks.edit_table("defaults", mutate)
                if edited is not None:
                    return _Change(edited)
            elif "defaults" in self._document():
                doc = self._document()
                mutate(doc["defaults"])
                return _Change(doc.as_string(), doc)
            values = {k: v for k, v in outcomes.items() if v is not None}
            if not values:
                return None
            snippet = "[defaults]\n" + "".join(f'{k} = "{v}"\n' for k, v in values.items())
            if blocks is not None and blocks.starts:
                at = blocks.starts[0]
                lines = blocks.lines
                return _Change("".join(lines[:at]) + snippet + "\n" + "".join(lines[at:]))
            return _Change(_with_blank_line(text) + snippet)

        with self._lock:
            self._edit(change)
            return self._defaults

    def _blocks(self) -> _RuleBlocks | None:
        text = self._current_text()
        cached = self._blocks_cache
        if cached is None or cached[0] is not text:
            cached = self._blocks_cache = (text, _RuleBlocks.of(text, len(self._rules)))
        return cached[1]

    def _file_rule(self, rule_id: str) -> Rule:
        return self._rules[self._file_index(rule_id)]

    def _positions(self) -> dict[str, int]:
        """Each file rule's index by id (for the rules as they are now)."""
        rules = self._rules
        cached = self._positions_cache
        if cached is None or cached[0] is not rules:
            cached = self._positions_cache = (rules, {r.id: i for i, r in enumerate(rules)})
        return cached[1]

    def _file_index(self, rule_id: str) -> int:
        index = self._positions().get(rule_id)
        if index is not None:
            return index
        if self.is_transient(rule_id):
            raise RulesFileError(f"rule {rule_id!r} is not saved in the file (it is transient)")
        raise KeyError(rule_id)

    def _current_text(self) -> str:
        if self._text is None:
            return _NEW_FILE
        return self._text

    def _document(self) -> tomlkit.TOMLDocument:
        if self._doc is None:
            self._doc = tomlkit.parse(self._current_text())
        return self._doc

    def _ensure_writable(self) -> None:
        """Make the active rules the file's current version before an edit (reading it
        again, once it has settled, if another program changed it)."""
        if not self._loaded_once:
            self.load()
        else:
            try:
                _data, version = read_version(self.path)
            except OSError as exc:
                raise RulesFileError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
            if version.digest != self._version.digest:
                self._reload_settled()
        if self._broken:
            raise RulesFileError(
                f"{self.path} failed to load ({self.error}); waylay will not write to it "
                "until it is fixed"
            )

    def _reload_settled(self, timeout: float = 3.0) -> None:
        """Load the file's current version once another program is done writing it."""
        deadline = time.monotonic() + timeout
        while True:
            settled(self.path, quiet=0.05, timeout=max(0.0, deadline - time.monotonic()))
            try:
                data, version = read_version(self.path)
            except OSError as exc:
                raise RulesFileError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
            if self._load_bytes(data, version, guard_empty=True) is not None:
                return
            if time.monotonic() > deadline:
                raise RulesFileError(
                    f"{self.path} was emptied a moment ago; waylay does not save over it yet"
                )
            time.sleep(0.1)

    def _edit(self, change: Callable[[], _Change | None]) -> None:
        """Make the new text with ``change`` (against the file's current version), check it
        exactly as a load would, save it if the file is still that version, and make it the
        active rules. When another program wrote the file meanwhile, ``change`` is made
        again on its version: nothing either side wrote is lost."""
        with self._lock:
            put_back: tuple[bytes, FileVersion] | None = None
            try:
                for _attempt in range(_ATTEMPTS):
                    self._ensure_writable()
                    try:
                        made = change()
                    except BaseException:
                        self._doc = None  # the cached document may be half changed
                        raise
                    if made is None:
                        return
                    if made.replaced is not None:
                        rules = list(self._rules)
                        for index, rule in made.replaced.items():
                            rules[index] = rule
                        loaded = _Loaded(tuple(rules), self._defaults, [], self.warnings)
                    else:
                        loaded = check_text(made.text, self.path, self.secrets)
                    if loaded.errors:
                        self._doc = None
                        raise RulesFileError(
                            "the change would make the rules file invalid: "
                            + "; ".join(loaded.errors)
                        )
                    try:
                        version = write_checked(self.path, made.text, self._version)
                    except WriteConflict as conflict:
                        self._doc = None
                        if conflict.theirs is not None and conflict.on_disk is not None:
                            # waylay's text is on disk, the other program's version is in
                            # hand: make the change again on theirs (or put theirs back)
                            put_back = (conflict.theirs, conflict.on_disk)
                            self._load_bytes(conflict.theirs, conflict.on_disk)
                        continue
                    except BaseException:
                        self._doc = None
                        raise
                    put_back = None
                    self._remember_written(made)
                    self._accept(made.text, loaded, version, made)
                    self._doc = made.doc
                    return
                raise RulesFileError(
                    f"{self.path} kept changing while waylay saved it; nothing was written"
                )
            finally:
                if put_back is not None:
                    self._put_back(*put_back)

    def _put_back(self, theirs: bytes, over: FileVersion) -> None:
        """Another program's version, replaced by waylay in the instant of a save that then
        could not be made again: it goes back on disk as it was."""
        try:
            version = write_checked(self.path, theirs, over)
        except (WriteConflict, OSError):
            return  # someone wrote since: their newer version stays
        self._load_bytes(theirs, version)

    def _remember_written(self, made: _Change) -> None:
        """``times`` values waylay just wrote belong to their countdown's history."""
        if made.replaced is None:
            return
        with self._count_lock:
            for rule in made.replaced.values():
                held = self._history.get(rule.id)
                if held is not None and rule.times is not None and rule.times not in held:
                    held.append(rule.times)
                    if len(held) > _HISTORY_CAP:
                        del held[1 : len(held) - _HISTORY_CAP // 2]

    # -- watching ---------------------------------------------------------------------

    def start_watching(
        self, on_change: Callable[[RulesFile], None] | None = None, interval: float = 0.5
    ) -> None:
        """Poll the file (mtime, size, inode) in a daemon thread; reload on change.

        A changed file is read once it stayed the same for :attr:`settle` seconds (two
        polls), and a version without rules replaces rules only once :attr:`empty_age`
        old: an in-place save (truncate, then write) is never taken for an empty file.
        ``on_change(self)`` runs in that thread after each reload, successful or not (and
        in the writer thread when :attr:`notice` changes). waylay's own writes do not
        count as changes.
        """
        self.stop_watching()
        self._stop = threading.Event()
        self._on_change = on_change
        stop = self._stop
        if not self._loaded_once:
            self.load()

        def run() -> None:
            unset = object()
            candidate: object = unset
            while not stop.wait(interval if candidate is unset else self.settle):
                self.watch_polls += 1
                with self._lock:
                    current = signature(self.path)
                    if current == self._version.signature and not self._changed_within_tick(
                        current
                    ):
                        candidate = unset
                        continue
                    if candidate != current:
                        candidate = current  # look again in a moment: is it done?
                        continue
                    try:
                        data, version = read_version(self.path)
                        loaded = self._load_bytes(data, version, guard_empty=True)
                    except Exception as exc:  # never let the watcher die
                        self._reject(
                            [f"{self.path}:1:1: cannot load: {exc}"],
                            FileVersion(b"", current),
                        )
                        loaded = False
                    if loaded is None:
                        continue  # emptied a moment ago: wait until it is old enough
                    candidate = unset
                if on_change is not None:
                    try:
                        on_change(self)
                    except Exception:  # a broken callback must not stop the watcher
                        pass

        self._watcher = threading.Thread(target=run, name="waylay-rules-watch", daemon=True)
        self._watcher.start()

    def _changed_within_tick(self, current: tuple[int, int, int] | None) -> bool:
        """A same-size rewrite within the file system's timestamp granularity keeps the
        signature; for a recently modified file, compare the content too."""
        if current is None or time.time_ns() - current[0] > 2_000_000_000:
            return False
        try:
            _data, version = read_version(self.path)
        except OSError:
            return True
        return version.digest != self._version.digest

    def stop_watching(self) -> None:
        self._stop.set()
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout=5)


def _flush_at_exit(ref: weakref.ref[RulesFile]) -> None:
    """At interpreter exit: counts and hits not written yet are written now."""
    rules_file = ref()
    if rules_file is None or rules_file._closed.is_set():
        return
    if rules_file._lock.acquire(timeout=5):
        try:
            rules_file.flush()
        except Exception:
            pass
        finally:
            rules_file._lock.release()


def _short(reason: str) -> str:
    reason = reason.splitlines()[0] if reason else reason
    return reason if len(reason) <= 80 else reason[:79] + "…"


def _mutation(fields: Mapping[str, Any], wanted: Mapping[str, Any]) -> Callable[[Any], None]:
    """Set ``fields`` of a rule's table to their value in ``wanted`` (the rule's dict after
    the change): a key missing from ``wanted`` (removed, or back to its default) goes."""

    def mutate(table: Any) -> None:
        for key in fields:
            if key not in wanted:
                if key in table:
                    del table[key]
            elif key not in table or _unwrap(table[key]) != wanted[key]:
                _set_key(table, key, toml_value(wanted[key]))

    return mutate


_NEW_FILE = "# waylay rules: see `waylay rules check` and the README\nversion = 1\n"


def _render_rule(rule: Rule) -> str:
    """``[[rule]]`` and its keys, as waylay writes a new rule."""
    table = tomlkit.table()
    for key, value in rule.to_dict().items():
        table.add(key, toml_value(value))
    doc = tomlkit.document()
    doc.append("rule", tomlkit.aot())
    doc["rule"].append(table)
    return doc.as_string().lstrip("\n")


def _with_blank_line(text: str) -> str:
    """``text`` ending with a blank line (unless empty), so a table can follow."""
    if not text:
        return text
    if not text.endswith("\n"):
        text += "\n"
    if not text.endswith("\n\n"):
        text += "\n"
    return text


def _is_blank(line: str) -> bool:
    return not line.strip()


class _RuleBlocks:
    """The lines of a rules file cut into one block per ``[[rule]]`` table.

    A block starts at the comment lines directly above its header and runs to the next
    table (rule or other). Inserting, removing and moving whole blocks keeps every
    comment and blank line of the user's file where it belongs; editing a rule parses
    only its block with tomlkit, so an edit stays cheap in a file of thousands of rules.
    """

    def __init__(
        self,
        lines: list[str],
        starts: list[int],
        ends: list[int],
        tables: dict[str, tuple[int, int]],
    ) -> None:
        self.lines = lines
        self.starts = starts
        self.ends = ends
        self.tables = tables

    @classmethod
    def of(cls, text: str, count: int | None = None) -> _RuleBlocks | None:
        """None when the rules are not written as ``[[rule]]`` tables (an inline array).

        ``count`` is the number of rules the text holds, when the caller knows it.
        """
        where = _Locator(text)
        if count is None:
            try:
                count = len(tomllib.loads(text).get("rule", []))
            except tomllib.TOMLDecodeError:
                return None
        if count != len(where.rule_headers):
            return None
        lines = text.splitlines(keepends=True)

        def pulled_back(line_no: int) -> int:
            index = line_no - 1
            while index > 0 and index in where.comments:  # (line numbers are 1-based)
                index -= 1
            return index

        boundaries = [
            (pulled_back(n), n - 1, kind, name)
            for n, kind, name in where.headers
            if kind != "rule-sub"
        ]
        starts, ends = [], []
        tables: dict[str, tuple[int, int]] = {}
        for position, (start, header, kind, name) in enumerate(boundaries):
            end = boundaries[position + 1][0] if position + 1 < len(boundaries) else len(lines)
            if kind == "rule":
                starts.append(start)
                ends.append(end)
            else:
                tables.setdefault(name, (header, max(end, header + 1)))
        return cls(lines, starts, ends, tables)

    def _block(self, index: int) -> list[str]:
        block = self.lines[self.starts[index] : self.ends[index]]
        if block and not block[-1].endswith("\n"):
            block[-1] += "\n"
        if block and not _is_blank(block[-1]):
            block.append("\n")
        return block

    def _splice(self, start: int, end: int, pick, mutate) -> str:
        chunk = tomlkit.parse("".join(self.lines[start:end]))
        mutate(pick(chunk))
        return "".join(self.lines[:start]) + chunk.as_string() + "".join(self.lines[end:])

    def edit(self, index: int, mutate: Callable[[Any], None]) -> str:
        """The text with rule ``index``'s table changed by ``mutate``."""
        return self._splice(
            self.starts[index], self.ends[index], lambda doc: doc["rule"][0], mutate
        )

    def edit_many(self, edits: Mapping[int, Callable[[Any], None]]) -> tuple[str, _RuleBlocks]:
        """The text with several rules' tables changed, and that text's blocks (worked
        out from these, not by scanning the whole text again)."""
        lines = list(self.lines)
        starts, ends = list(self.starts), list(self.ends)
        tables = dict(self.tables)
        for index in sorted(edits, reverse=True):
            start, end = starts[index], ends[index]
            chunk = tomlkit.parse("".join(lines[start:end]))
            edits[index](chunk["rule"][0])
            new = chunk.as_string().splitlines(keepends=True)
            delta = len(new) - (end - start)
            lines[start:end] = new
            if delta:
                ends[index] += delta
                for later in range(index + 1, len(starts)):
                    starts[later] += delta
                    ends[later] += delta
                tables = {
                    name: (a + delta, b + delta) if a >= end else (a, b)
                    for name, (a, b) in tables.items()
                }
        return "".join(lines), _RuleBlocks(lines, starts, ends, tables)

    def rule_at(self, index: int) -> Rule | None:
        """Rule ``index`` as a load reads it (None if its block does not validate alone)."""
        try:
            raw = tomllib.loads("".join(self.lines[self.starts[index] : self.ends[index]]))
            rule, _problems = validate_rule(raw["rule"][0])
        except (tomllib.TOMLDecodeError, KeyError, IndexError, TypeError):
            return None
        return rule

    def edit_table(self, name: str, mutate: Callable[[Any], None]) -> str | None:
        """The text with top-level table ``name`` changed, or None if there is none."""
        if name not in self.tables:
            return None
        start, end = self.tables[name]
        return self._splice(start, end, lambda doc: doc[name], mutate)

    def insert(self, position: int | None, rendered: str) -> str:
        new = rendered.splitlines(keepends=True)
        lines = self.lines
        if self.starts and position is not None and position < len(self.starts):
            at = self.starts[max(0, position)]
            return "".join(lines[:at] + new + ["\n"] + lines[at:])
        if not self.starts:
            return _with_blank_line("".join(lines)) + rendered
        at = self.ends[-1]
        before = _with_blank_line("".join(lines[:at]))
        after = "".join(lines[at:])
        return before + rendered + ("\n" + after if after else "")

    def remove(self, index: int) -> str:
        lines = self.lines[: self.starts[index]] + self.lines[self.ends[index] :]
        text = "".join(lines)
        return text.rstrip("\n") + "\n" if text.strip() else text

    def move(self, index: int, target: int) -> str:
        block = self._block(index)
        rest = _RuleBlocks.of(self.remove(index), len(self.starts) - 1)
        assert rest is not None
        lines = rest.lines
        if target < len(rest.starts):
            at = rest.starts[target]
            text = "".join(lines[:at] + block + lines[at:])
        else:
            at = rest.ends[-1]
            text = _with_blank_line("".join(lines[:at])) + "".join(block) + "".join(lines[at:])
        return text.rstrip("\n") + "\n"


def _find_rule(doc: tomlkit.TOMLDocument, rule_id: str) -> Any:
    for table in doc.get("rule", []):
        if table.get("id") == rule_id:
            return table
    raise KeyError(rule_id)


def _unwrap(item: Any) -> Any:
    return item.unwrap() if hasattr(item, "unwrap") else item
