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
- ``times``: each time a rule *decides*, its count goes down and is written back
  (``times = 2`` → ``times = 1``), so a restart continues the countdown. When it reaches
  0 the rule is disabled: ``enabled = false`` is written and the ``times`` key removed
  (a disabled rule has nothing left to count). If the file cannot be written (broken),
  the countdown and the disabling happen in memory only.
- Transient rules (unsaved breakpoints) take part in decisions but are never written.
  They come *before* the file's rules in file order, so they win priority ties.

Thread-safe: the proxy thread calls :meth:`RulesFile.decide`, the UI thread edits.
"""

from __future__ import annotations

import os
import re
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.items
from pydantic import ValidationError

from .atomic import write_atomic
from .engine import Decision, Engine, EventDetails
from .model import (
    Defaults,
    Problem,
    Rule,
    problems_from_validation_error,
    validate_rule,
)
from .secrets import SecretStore, env_name

__all__ = ["RulesFile", "RulesFileError", "default_rules_path", "check_text"]

_TOML_POSITION = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)\s*$")
_TOP_KEYS = ("version", "defaults", "rule")


class RulesFileError(Exception):
    """An edit that cannot be saved: the file is broken, or the edit makes it invalid."""


def default_rules_path() -> Path:
    """``$WAYLAY_RULES``, else ``$XDG_CONFIG_HOME/waylay/rules.toml`` (``~/.config``)."""
    env = os.environ.get("WAYLAY_RULES")
    if env:
        return Path(env).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config).expanduser() / "waylay" / "rules.toml"


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
        for message in rule.warnings():
            problem(("rule", index, "action"), f"warning: {label}: {message}", out.warnings)
        rules.append(rule)
    out.rules = tuple(rules)
    if secrets is not None:
        out.warnings.extend(f"warning: {message}" for message in secrets.warnings)
    return out


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


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


_SLUG = re.compile(r"[^a-z0-9]+")


# -- the rules file ------------------------------------------------------------------------


class RulesFile:
    """A rules file on disk, its active rules, and every way of changing them."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path).expanduser()
        self.secrets = SecretStore(self.path.parent)
        self.hits: dict[str, int] = {}
        """Decisions made by each rule id since this object was created."""
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self._lock = threading.RLock()
        self._rules: tuple[Rule, ...] = ()
        self._defaults = Defaults()
        self._transient: tuple[Rule, ...] = ()
        self._times_left: dict[str, int] = {}
        self._engine = Engine((), self._defaults, base_dir=self.path.parent)
        self._text: str | None = None
        self._doc: tomlkit.TOMLDocument | None = None
        self._signature: tuple[int, int, int] | None = None
        self._seen_text: str | None = None  # what the file held when last read or written
        self._broken = False
        self._loaded_once = False
        self._watcher: threading.Thread | None = None
        self.watch_polls = 0
        """How many times the watcher has looked at the file (for tests and diagnostics)."""
        self._stop = threading.Event()

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
        """Short, for a header: ``12 rules``, ``error: …``, ``new file``."""
        if self._broken and self.errors:
            return "error: " + self.errors[0].removeprefix(f"{self.path}:")
        if self._text is None:
            return "new file"
        count = len(self._rules)
        return f"{count} rule{'s' if count != 1 else ''}"

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
            signature = _signature(self.path)
            try:
                text = self.path.read_text(encoding="utf-8")
            except FileNotFoundError:
                self._seen_text = None
                self._accept(None, _Loaded(), None)
                return True
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                self._reject([f"{self.path}:1:1: cannot read: {reason}"], signature)
                return False
            self._seen_text = text
            loaded = check_text(text, self.path, self.secrets)
            if loaded.errors:
                self._reject(loaded.errors, signature)
                return False
            self._accept(text, loaded, signature)
            return True

    def _reject(self, errors: list[str], signature) -> None:
        self.errors = errors
        self._broken = True
        self._signature = signature
        self._loaded_once = True

    def _accept(self, text: str | None, loaded: _Loaded, signature) -> None:
        self._text = text
        self._doc = None
        self._signature = signature
        self._broken = False
        self._loaded_once = True
        self.errors = []
        self.warnings = loaded.warnings
        self._rules = loaded.rules
        self._defaults = loaded.defaults
        self._times_left = {r.id: r.times for r in loaded.rules if r.times is not None}
        self._times_left.update({r.id: r.times for r in self._transient if r.times is not None})
        self._transient = tuple(
            r for r in self._transient if self._rule_id_free(r.id, loaded.rules)
        )
        self._rebuild()

    @staticmethod
    def _rule_id_free(rule_id: str, rules: Iterable[Rule]) -> bool:
        return all(rule.id != rule_id for rule in rules)

    def _rebuild(self, rules: Iterable[Rule] | None = None) -> None:
        file_rules = self._rules if rules is None else tuple(rules)
        self._engine = Engine(
            (*self._transient, *file_rules), self._defaults, base_dir=self.path.parent
        )

    # -- deciding ---------------------------------------------------------------------

    def decide(self, details: EventDetails) -> Decision:
        """Decide one event with the current rules.

        Counts the deciding rule's hit in ``hits`` and, for a rule with ``times``, counts
        down and writes the new count (see the module docstring): that write happens in
        the calling thread, under the lock.
        """
        while True:
            decision = self._engine.decide(details)
            rule = decision.rule
            if rule is None:
                return decision
            with self._lock:
                if rule.times is not None:
                    left = self._times_left.get(rule.id, rule.times)
                    if left <= 0 or self._engine.get(rule.id) is not rule:
                        continue  # used up (or changed) by another thread meanwhile: decide again
                    self._count_down(rule, left - 1)
                self.hits[rule.id] = self.hits.get(rule.id, 0) + 1
                return decision

    def _count_down(self, rule: Rule, left: int) -> None:
        self._times_left[rule.id] = left
        if self.is_transient(rule.id):
            if left <= 0:
                self._transient = tuple(r for r in self._transient if r.id != rule.id)
                self._rebuild()
            return
        fields: dict[str, Any] = {"times": left} if left > 0 else {"times": None, "enabled": False}
        try:
            self.update(rule.id, **fields)
        except (RulesFileError, OSError):
            if left <= 0:  # cannot write: disable it in memory
                self._rebuild(
                    r.replace(enabled=False, times=None) if r.id == rule.id else r
                    for r in self._rules
                )

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
            for old in self._transient:
                self._times_left.pop(old.id, None)
            self._transient = rules
            self._times_left.update({r.id: r.times for r in rules if r.times is not None})
            self._rebuild()

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

            def change() -> tuple[str, None]:
                blocks = self._blocks()
                if blocks is None:
                    doc = self._document()
                    array = doc["rule"]
                    index = len(array) if position is None else max(0, position)
                    array.insert(min(index, len(array)), toml_value(rule.to_dict()))
                    return doc.as_string(), None
                return blocks.insert(position, _render_rule(rule)), None

            self._edit(change)
            return rule

    def update(self, rule_id: str, **fields: Any) -> Rule:
        """Change fields of a rule and save; a field set to None is removed, one set to
        its default value is removed too (``enabled=True`` drops ``enabled = false``)."""
        with self._lock:
            current = self._file_rule(rule_id)
            updated = current.replace(**fields)
            wanted = updated.to_dict()

            index = self._file_index(rule_id)

            def mutate(table: Any) -> None:
                for key in fields:
                    if key not in wanted:  # removed, or back to its default
                        if key in table:
                            del table[key]
                    elif key not in table or _unwrap(table[key]) != wanted[key]:
                        _set_key(table, key, toml_value(wanted[key]))

            def change() -> tuple[str, tomlkit.TOMLDocument | None]:
                blocks = self._blocks()
                if blocks is not None:
                    return blocks.edit(index, mutate), None
                doc = self._document()
                mutate(_find_rule(doc, rule_id))
                return doc.as_string(), doc

            self._edit(change)
            return updated

    def set_enabled(self, rule_id: str, enabled: bool) -> Rule:
        return self.update(rule_id, enabled=bool(enabled))

    def remove(self, rule_id: str) -> None:
        """Delete a rule (and the comment lines right above it) from the file and save."""
        with self._lock:
            index = self._file_index(rule_id)

            def change() -> tuple[str, None]:
                blocks = self._blocks()
                if blocks is None:
                    doc = self._document()
                    del doc["rule"][index]
                    return doc.as_string(), None
                return blocks.remove(index), None

            self._edit(change)
            self.hits.pop(rule_id, None)

    def move(self, rule_id: str, delta: int) -> int:
        """Move a rule ``delta`` places in file order (negative: up) with the comment lines
        right above it; returns its new index."""
        with self._lock:
            index = self._file_index(rule_id)
            target = max(0, min(len(self._rules) - 1, index + delta))
            if target == index:
                return index

            def change() -> tuple[str, None]:
                blocks = self._blocks()
                if blocks is None:
                    doc = self._document()
                    array = doc["rule"]
                    plain = _unwrap(array[index])
                    del array[index]
                    array.insert(target, toml_value(plain))
                    return doc.as_string(), None
                return blocks.move(index, target), None

            self._edit(change)
            return target

    def set_defaults(self, **outcomes: str | None) -> Defaults:
        """Change ``[defaults]`` entries (None removes one) and save."""

        def mutate(table: Any) -> None:
            for key, value in outcomes.items():
                if value is None:
                    if key in table:
                        del table[key]
                else:
                    _set_key(table, key, value)

        def change() -> tuple[str, tomlkit.TOMLDocument | None]:
            text = self._current_text()
            blocks = self._blocks()
            if blocks is not None:
                edited = blocks.edit_table("defaults", mutate)
                if edited is not None:
                    return edited, None
            elif "defaults" in self._document():
                doc = self._document()
                mutate(doc["defaults"])
                return doc.as_string(), doc
            values = {k: v for k, v in outcomes.items() if v is not None}
            if not values:
                return text, None
            snippet = "[defaults]\n" + "".join(f'{k} = "{v}"\n' for k, v in values.items())
            if blocks is not None and blocks.starts:
                at = blocks.starts[0]
                lines = blocks.lines
                return "".join(lines[:at]) + snippet + "\n" + "".join(lines[at:]), None
            return _with_blank_line(text) + snippet, None

        with self._lock:
            self._edit(change)
            return self._defaults

    def _blocks(self) -> _RuleBlocks | None:
        return _RuleBlocks.of(self._current_text(), len(self._rules))

    def _file_rule(self, rule_id: str) -> Rule:
        return self._rules[self._file_index(rule_id)]

    def _file_index(self, rule_id: str) -> int:
        for index, rule in enumerate(self._rules):
            if rule.id == rule_id:
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
        if not self._loaded_once:
            self.load()
        elif _signature(self.path) != self._signature:
            self.load()  # an external edit the watcher has not picked up yet: build on it
        if self._broken:
            raise RulesFileError(
                f"{self.path} failed to load ({self.error}); waylay will not write to it "
                "until it is fixed"
            )

    def _edit(self, change: Callable[[], tuple[str, tomlkit.TOMLDocument | None]]) -> None:
        """Make the new text (``change`` may edit the cached document and return it), check
        it exactly as a load would, save it atomically, and make it the active rules."""
        with self._lock:
            self._ensure_writable()
            try:
                text, doc = change()
            except BaseException:
                self._doc = None  # the cached document may be half changed
                raise
            loaded = check_text(text, self.path, self.secrets)
            if loaded.errors:
                self._doc = None
                raise RulesFileError(
                    "the change would make the rules file invalid: " + "; ".join(loaded.errors)
                )
            try:
                write_atomic(self.path, text)
            except BaseException:
                self._doc = None
                raise
            self._seen_text = text
            self._accept(text, loaded, _signature(self.path))
            self._doc = doc

    # -- watching ---------------------------------------------------------------------

    def start_watching(
        self, on_change: Callable[[RulesFile], None] | None = None, interval: float = 0.5
    ) -> None:
        """Poll the file (mtime, size, inode) in a daemon thread; reload on change.

        ``on_change(self)`` runs in that thread after each reload, successful or not.
        waylay's own writes do not count as changes.
        """
        self.stop_watching()
        self._stop = threading.Event()
        stop = self._stop
        if not self._loaded_once:
            self.load()

        def run() -> None:
            missing_once = False
            while not stop.wait(interval):
                self.watch_polls += 1
                with self._lock:
                    current = _signature(self.path)
                    if current == self._signature and not self._changed_within_tick(current):
                        missing_once = False
                        continue
                    if current is None and not missing_once:
                        missing_once = True  # an editor's save may briefly remove the file
                        continue
                    missing_once = False
                    try:
                        self.load()
                    except Exception as exc:  # never let the watcher die
                        self._reject([f"{self.path}:1:1: cannot load: {exc}"], current)
                if on_change is not None:
                    try:
                        on_change(self)
                    except Exception:  # a broken callback must not stop the watcher
                        pass

        self._watcher = threading.Thread(target=run, name="waylay-rules-watch", daemon=True)
        self._watcher.start()

    def _changed_within_tick(self, signature: tuple[int, int, int] | None) -> bool:
        """A same-size rewrite within the file system's timestamp granularity keeps the
        signature; for a recently modified file, compare the content too."""
        if signature is None or time.time_ns() - signature[0] > 2_000_000_000:
            return False
        try:
            return self.path.read_text(encoding="utf-8") != self._seen_text
        except (OSError, UnicodeDecodeError):
            return True

    def stop_watching(self) -> None:
        self._stop.set()
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout=5)


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
