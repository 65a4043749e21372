"""``waylay rules export`` and ``waylay rules import`` (README "Export and import"), and the rules
export behind the screen's export menu.

Formats:

- ``toml``: the rules file's schema (``version``, ``[defaults]``, ``[[rule]]``), the whole
  rule set, regenerated from the validated rules. Rules hold secret *names* only.
- ``json``: the same schema as JSON (``{"version": 1, "defaults": {…}, "rule": […]}``);
  ``rules import --format json`` reads it back.
- ``dnr``: Chrome declarativeNetRequest rules (see :mod:`policies.dnr`).
- ``mitmproxy``: a mitmproxy options file (see :mod:`policies.mitm_options`).

Export prints the text on stdout (or writes ``-o FILE`` atomically) and names each rule
it left out on stderr with the reason; exit 0, or 3 with ``--strict`` when a rule was
left out or narrowed, 1 when the rules file does not load.

Import adds the rules to the target file (``--into``, else the default rules file; a
new file also takes the imported ``[defaults]``):
an id already in use gets a new one (``id-2``…), a rule identical to one already there
(apart from its id) is skipped, and both are reported. ``--replace`` replaces the
target's rules (and, for toml/json, its ``[defaults]``). DNR rules waylay cannot express
(``modifyHeaders``, initiator conditions…) are skipped and named on stderr. The result is
checked exactly as loading the rules file would check it, then written atomically with
the previous version kept as ``<name>.bak``, only if the target still is the version the
import was merged into (else it is merged again into the new version: a running waylay's
countdowns are not lost); on any error nothing is written (exit 1). A target that fails
to load is never written; a symlinked target is written through.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import tomlkit
from pydantic import ValidationError

from . import dnr, mitm_options
from .files import WriteConflict, read_version, write_atomic, write_checked
from .model import Defaults, Rule, RuleSetModel, problems_from_validation_error
from .rules_file import (
    body_file_outside,
    check_text,
    default_rules_path,
    read_rules_text,
    toml_value,
)
from .secrets import SecretStore

__all__ = [
    "EXPORT_FORMATS",
    "IMPORT_FORMATS",
    "ExchangeError",
    "export_command",
    "export_text",
    "import_command",
    "render_toml",
]

EXPORT_FORMATS = ("toml", "json", "dnr", "mitmproxy")
IMPORT_FORMATS = ("toml", "json", "dnr")
EXIT_LEFT_OUT = 3


class ExchangeError(Exception):
    """Export or import failed; the message is for people (one or more lines)."""


class RuleSource(Protocol):
    """What an export reads: a loaded ``RulesFile`` or anything with the same three."""

    @property
    def rules(self) -> tuple[Rule, ...]: ...

    @property
    def defaults(self) -> Defaults: ...

    @property
    def path(self) -> Path: ...


@dataclass
class _Source:
    rules: tuple[Rule, ...]
    defaults: Defaults
    path: Path


@dataclass
class _Exported:
    text: str
    left_out: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- export ------------------------------------------------------------------------------


def export_text(rules_file: RuleSource, fmt: str) -> tuple[str, list[str]]:
    """The rules of ``rules_file`` as ``fmt``: the text, and one line per rule that was
    left out (``ID: left out: reason``) followed by notes (``note: …``).

    Raises :class:`ExchangeError` for an unknown format or a DNR limit.
    """
    out = _export(rules_file, fmt)
    return out.text, out.left_out + out.notes


def _export(source: RuleSource, fmt: str) -> _Exported:
    rules = tuple(source.rules)
    if fmt == "toml":
        return _Exported(render_toml(rules, source.defaults))
    if fmt == "json":
        return _Exported(json.dumps(_document(rules, source.defaults), indent=2) + "\n")
    if fmt == "dnr":
        try:
            dnr_result = dnr.export_rules(rules)
        except dnr.DnrError as exc:
            raise ExchangeError(str(exc)) from None
        return _Exported(dnr_result.text(), dnr_result.left_out, dnr_result.notes)
    if fmt == "mitmproxy":
        path = Path(source.path)
        mitm_result = mitm_options.export_options(rules, path.parent)
        return _Exported(mitm_result.text(str(path)), mitm_result.left_out, mitm_result.notes)
    raise ExchangeError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")


def _document(rules: tuple[Rule, ...] | list[Rule], defaults: Defaults) -> dict[str, Any]:
    data: dict[str, Any] = {"version": 1}
    chosen = defaults.model_dump(exclude_defaults=True)
    if chosen:
        data["defaults"] = chosen
    data["rule"] = [rule.to_dict() for rule in rules]
    return data


def _rule_tables(rules: list[Rule] | tuple[Rule, ...]) -> str:
    doc = tomlkit.document()
    aot = tomlkit.aot()
    for rule in rules:
        table = tomlkit.table()
        for key, value in rule.to_dict().items():
            table.add(key, toml_value(value))
        aot.append(table)
    doc.append("rule", aot)
    return doc.as_string().strip("\n") + "\n"


def render_toml(
    rules: list[Rule] | tuple[Rule, ...], defaults: Defaults | None = None, *, header: str = ""
) -> str:
    """A whole rules file for ``rules`` and ``defaults``, as waylay writes rules."""
    lines = [header] if header else []
    lines.append("version = 1\n")
    chosen = (defaults or Defaults()).model_dump(exclude_defaults=True)
    if chosen:
        lines.append("\n[defaults]\n")
        lines.extend(f"{key} = {json.dumps(value)}\n" for key, value in chosen.items())
    if rules:
        lines.append("\n" + _rule_tables(rules))
    return "".join(lines)


def _load_source(path: Path) -> _Source:
    """The rules of ``path`` for export. Secrets are not needed (an export names them only),
    so a missing secret does not stop it; every other load error does."""
    if not path.exists():
        raise ExchangeError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ExchangeError(f"{path}:1:1: cannot read: {reason}") from None
    loaded = check_text(text, path, None)
    if loaded.errors:
        count = len(loaded.errors)
        raise ExchangeError(
            "\n".join(loaded.errors)
            + f"\n{path}: {count} error{'s' if count != 1 else ''}; nothing exported"
        )
    return _Source(loaded.rules, loaded.defaults, path)


def export_command(
    path: Path | None,
    fmt: str,
    output: Path | None,
    *,
    strict: bool = False,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``waylay rules export [PATH] --format FMT [-o FILE] [--strict]``."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    target = Path(path).expanduser() if path is not None else default_rules_path()
    try:
        result = _export(_load_source(target), fmt)
    except ExchangeError as exc:
        print(f"waylay: {exc}" if "\n" not in str(exc) else str(exc), file=err)
        return 1
    for line in result.left_out + result.notes:
        print(line, file=err)
    if output is None:
        out.write(result.text)
        out.flush()
    else:
        try:
            write_atomic(Path(output).expanduser(), result.text, backup=False)
        except OSError as exc:
            print(f"waylay: cannot write {output}: {exc.strerror or exc}", file=err)
            return 1
        count = len(result.left_out)
        summary = f"waylay: wrote {output}"
        if count:
            summary += f" ({count} rule{'s' if count != 1 else ''} left out, named above)"
        print(summary, file=err)
    if strict and result.left_out:
        return EXIT_LEFT_OUT
    return 0


# -- import ------------------------------------------------------------------------------


@dataclass
class _Incoming:
    rules: list[Rule]
    defaults: Defaults | None
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    text: str | None = None
    """The source text when it can be written as is (a toml import with --replace)."""


def _read_incoming(file: Path, fmt: str) -> _Incoming:
    try:
        text = read_rules_text(file)
    except FileNotFoundError:
        raise ExchangeError(f"{file}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ExchangeError(f"{file}: cannot read: {reason}") from None
    if fmt == "dnr":
        try:
            result = dnr.loads(text)
        except dnr.DnrError as exc:
            raise ExchangeError(f"{file}: {exc}") from None
        return _Incoming(result.rules, None, result.skipped, result.notes)
    if fmt == "toml":
        loaded = check_text(text, file, None)
        errors = [e for e in loaded.errors if "body_file" not in e or "does not exist" not in e]
        if errors:
            raise ExchangeError("\n".join(errors))
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:  # pragma: no cover - check_text caught it
            raise ExchangeError(f"{file}: {exc}") from None
        model = _validate_document(data, file)
        return _Incoming(list(model.rules), model.defaults, text=text)
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ExchangeError(f"{file}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
        except RecursionError:
            raise ExchangeError(f"{file}:1:1: not JSON waylay reads: nested too deeply") from None
        model = _validate_document(data, file)
        return _Incoming(list(model.rules), model.defaults)
    raise ExchangeError(f"unknown import format {fmt!r}; use one of {', '.join(IMPORT_FORMATS)}")


def _validate_document(data: Any, file: Path) -> RuleSetModel:
    if not isinstance(data, dict):
        raise ExchangeError(
            f"{file}: expected an object with version, defaults and rule (the rules file's schema)"
        )
    try:
        return RuleSetModel.model_validate(data)
    except ValidationError as exc:
        lines = []
        for loc, message in problems_from_validation_error(exc):
            where = _where(loc, data)
            lines.append(f"{file}: {where}{message}")
        raise ExchangeError("\n".join(lines)) from None


def _where(loc: tuple, data: dict) -> str:
    if len(loc) >= 2 and loc[0] == "rule" and isinstance(loc[1], int):
        rules = data.get("rule")
        rule_id = None
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            rule_id = rules[loc[1]].get("id")
        label = f"rule {rule_id!r}" if isinstance(rule_id, str) else f"rule #{loc[1] + 1}"
        return f"{label}: "
    if loc and loc[0] == "defaults":
        return "[defaults] "
    return ""


def _comparable(rule: Rule) -> dict[str, Any]:
    data = rule.to_dict()
    data.pop("id")
    return data


def _fresh_id(wanted: str, taken: set[str]) -> str:
    n = 2
    while f"{wanted}-{n}" in taken:
        n += 1
    return f"{wanted}-{n}"


def import_command(
    file: Path,
    fmt: str,
    *,
    into: Path | None = None,
    replace: bool = False,
    allow_outside: bool = False,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``waylay rules import FILE --format toml|json|dnr [--into PATH] [--replace]
    [--allow-outside]``.

    A ``respond`` rule whose ``body_file`` lies outside the target's folder (``/etc/passwd``,
    ``../..``, a symbolic link out) would serve that file to every proxy client: refused
    unless ``allow_outside``."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    target = Path(into).expanduser() if into is not None else default_rules_path()
    try:
        incoming = _read_incoming(Path(file).expanduser(), fmt)
        for line in incoming.skipped + incoming.notes:
            print(line, file=err)
        if not allow_outside:
            _refuse_outside(incoming.rules, target, Path(file))
    except ExchangeError as exc:
        print(str(exc), file=err)
        print(f"waylay: nothing imported; {target} is unchanged", file=err)
        return 1
    # Merge into the file as it is, and save only if it still is that version (a running
    # waylay may be writing a countdown into it): else merge again into the new version.
    for _attempt in range(8):
        try:
            _data, version = read_version(target)
            text, report = _merged_text(target, incoming, replace)
        except OSError as exc:
            print(f"waylay: cannot read {target}: {exc.strerror or exc}", file=err)
            return 1
        except ExchangeError as exc:
            print(str(exc), file=err)
            print(f"waylay: nothing imported; {target} is unchanged", file=err)
            return 1
        if text is None:
            break
        try:
            write_checked(target, text, version, backup=True)
        except WriteConflict as conflict:
            if conflict.theirs is not None and conflict.on_disk is not None:
                with contextlib.suppress(WriteConflict, OSError):  # put theirs back
                    write_checked(target, conflict.theirs, conflict.on_disk, backup=False)
            continue
        except OSError as exc:
            print(f"waylay: cannot write {target}: {exc.strerror or exc}", file=err)
            return 1
        break
    else:
        print(f"waylay: {target} kept changing while importing; nothing imported", file=err)
        return 1
    for line in report.lines:
        print(line, file=err)
    if text is None:
        print(f"waylay: nothing to import; {target} is unchanged", file=out)
        return 0
    print(report.summary(target, replace), file=out)
    return 0


def _refuse_outside(rules: list[Rule], target: Path, source: Path) -> None:
    folder = target.parent
    outside = [
        rule
        for rule in rules
        if rule.body_file is not None and body_file_outside(rule.body_file, folder)
    ]
    if not outside:
        return
    lines = [
        f"{source}: rule {rule.id!r}: body_file {rule.body_file!r} is outside {folder}: "
        "waylay would serve it to every proxy client the rule matches"
        for rule in outside
    ]
    lines.append(
        "waylay: copy the files into that folder, or import with --allow-outside if you mean it"
    )
    raise ExchangeError("\n".join(lines))


@dataclass
class _Report:
    added: int = 0
    renamed: list[str] = field(default_factory=list)
    identical: list[str] = field(default_factory=list)
    replaced: int = 0
    lines: list[str] = field(default_factory=list)

    def summary(self, target: Path, replace: bool) -> str:
        what = f"{self.added} rule{'s' if self.added != 1 else ''}"
        if replace:
            return f"waylay: replaced {self.replaced} rules of {target} with {what}"
        extra = []
        if self.renamed:
            extra.append(f"{len(self.renamed)} with a new id")
        if self.identical:
            extra.append(f"{len(self.identical)} identical skipped")
        tail = f" ({', '.join(extra)})" if extra else ""
        return f"waylay: imported {what} into {target}{tail}"


def _merged_text(target: Path, incoming: _Incoming, replace: bool) -> tuple[str | None, _Report]:
    """The target's new text (None: no change) after checking it as a load would."""
    report = _Report()
    current_text: str | None
    try:
        current_text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        current_text = None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ExchangeError(f"{target}: cannot read: {reason}") from None
    secrets = SecretStore(target.parent)
    current_rules: tuple[Rule, ...] = ()
    current_defaults = Defaults()
    if current_text is not None:
        loaded = check_text(current_text, target, secrets)
        if loaded.errors:
            raise ExchangeError(
                "\n".join(loaded.errors)
                + f"\n{target} does not load; waylay never writes to a broken rules file "
                "(fix it, or move it away)"
            )
        current_rules, current_defaults = loaded.rules, loaded.defaults

    if replace:
        report.replaced = len(current_rules)
        report.added = len(incoming.rules)
        defaults = incoming.defaults if incoming.defaults is not None else current_defaults
        if incoming.text is not None:
            text = incoming.text
        else:
            text = render_toml(incoming.rules, defaults, header=_HEADER)
        _check_result(text, target, secrets)
        return text, report

    taken = {rule.id for rule in current_rules}
    seen = {json.dumps(_comparable(rule), sort_keys=True): rule.id for rule in current_rules}
    new: list[Rule] = []
    for rule in incoming.rules:
        key = json.dumps(_comparable(rule), sort_keys=True)
        if key in seen:
            report.identical.append(rule.id)
            report.lines.append(f"{rule.id}: skipped: identical to rule {seen[key]!r}")
            continue
        if rule.id in taken:
            fresh = _fresh_id(rule.id, taken)
            report.renamed.append(rule.id)
            report.lines.append(f"{rule.id}: imported as {fresh!r} (the id is taken)")
            rule = rule.model_copy(update={"id": fresh})
        taken.add(rule.id)
        seen[key] = rule.id
        new.append(rule)
    if incoming.defaults is not None and current_text is not None:
        differing = {
            k: v
            for k, v in incoming.defaults.model_dump().items()
            if current_defaults.model_dump()[k] != v
        }
        if differing:
            shown = ", ".join(f"{k} = {v}" for k, v in differing.items())
            report.lines.append(
                f"note: [defaults] of the imported file not applied ({shown}); "
                "use --replace to take them"
            )
    report.added = len(new)
    if not new:
        return None, report
    if current_text is None:  # a new file takes the imported [defaults] too
        base = render_toml([], incoming.defaults, header=_HEADER)
    else:
        base = current_text
    text = _append_rules(base, new)
    _check_result(text, target, secrets)
    return text, report


_HEADER = "# waylay rules: see `waylay rules check` and the README\n"


def _append_rules(text: str, rules: list[Rule]) -> str:
    """``text`` with ``rules`` added at the end as ``[[rule]]`` tables."""
    tables = _rule_tables(rules)
    base = text if text.endswith("\n") or not text else text + "\n"
    candidate = (base + "\n" if base.strip() else base) + tables
    try:
        tomllib.loads(candidate)
        return candidate
    except tomllib.TOMLDecodeError:
        pass  # the file keeps its rules in an inline array: edit the document instead
    doc = tomlkit.parse(text)
    array = doc.get("rule")
    if array is None:
        doc["rule"] = tomlkit.aot()
        array = doc["rule"]
    for rule in rules:
        array.append(toml_value(rule.to_dict()))
    return doc.as_string()


def _check_result(text: str, target: Path, secrets: SecretStore) -> None:
    loaded = check_text(text, target, secrets)
    if loaded.errors:
        raise ExchangeError(
            "the imported rules would make the rules file invalid:\n" + "\n".join(loaded.errors)
        )
