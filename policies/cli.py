"""``waylay rules check`` and ``waylay rules list``: plain functions returning exit codes.

``monitor/cli.py`` wires them into argparse; both take the rules path (None: the default
path, see :func:`policies.rules_file.default_rules_path`) and optional output streams.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .describe import action_summary, conditions_summary
from .printable import printable
from .rules_file import RulesFile, check_text, default_rules_path, read_rules_text

__all__ = ["check", "conditions_summary", "action_summary", "list_rules"]


def _resolve(path: Path | str | None) -> tuple[Path, bool]:
    """The path to use, and whether the user named it explicitly."""
    if path is None:
        return default_rules_path(), False
    return Path(path).expanduser(), True


def check(
    path: Path | str | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Validate a rules file. 0 and a one-line summary, or each error and 1.

    Errors are ``PATH:LINE:COL: message`` on stderr; warnings (e.g. a certificate
    ``allow`` without a ``fingerprint``) go to stderr too but do not fail the check.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    target, explicit = _resolve(path)
    if not target.exists():
        if explicit:
            print(f"{target}: no such file", file=err)
            return 1
        print(f"{target}: no rules file yet (no rules; defaults apply)", file=out)
        return 0
    try:
        text = read_rules_text(target)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        print(f"{target}:1:1: cannot read: {reason}", file=err)
        return 1
    rules_file = RulesFile(target)
    loaded = check_text(text, target, rules_file.secrets)
    _print_capped(loaded.errors, "error", err)
    _print_capped(loaded.warnings, "warning", err)
    if loaded.errors:
        count = len(loaded.errors)
        print(f"{target}: {count} error{'s' if count != 1 else ''}", file=err)
        return 1
    rules = loaded.rules
    disabled = sum(1 for rule in rules if not rule.enabled)
    events = sorted({rule.event for rule in rules})
    summary = f"{target}: OK, {len(rules)} rule{'s' if len(rules) != 1 else ''}"
    if disabled:
        summary += f" ({disabled} disabled)"
    if events:
        summary += f" for {', '.join(events)}"
    if loaded.warnings:
        summary += f", {len(loaded.warnings)} warning{'s' if len(loaded.warnings) != 1 else ''}"
    print(summary, file=out)
    return 0


MAX_SHOWN = 50
"""``rules check`` prints at most this many errors (and as many warnings), then a count."""


def _print_capped(messages: list[str], what: str, err: TextIO) -> None:
    for message in messages[:MAX_SHOWN]:
        print(printable(message), file=err)
    hidden = len(messages) - MAX_SHOWN
    if hidden > 0:
        print(f"… and {hidden} more {what}{'s' if hidden != 1 else ''}", file=err)


LIST_FORMATS = ("table", "tsv", "json")
_TSV_COLUMNS = ("id", "event", "conditions", "action", "priority", "enabled", "times_left")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _tsv_cell(text: str) -> str:
    """One TSV field: control characters (tab and newline included) written as escapes,
    so that every rule stays on one line and nothing reaches the terminal raw."""

    def escape(m: re.Match[str]) -> str:
        ch = m.group(0)
        return {"\t": "\\t", "\n": "\\n", "\r": "\\r"}.get(ch, f"\\x{ord(ch):02x}")

    return _CONTROL.sub(escape, text)


def list_rules(
    path: Path | str | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    width: int | None = None,
    fmt: str | None = None,
) -> int:
    """Print the rules in precedence order; 1 (and the errors) if the file is broken.

    ``fmt``: ``table`` (for a person), ``tsv`` (one rule per line, a header line first,
    tab-separated, never wrapped) or ``json`` (every field of every rule). None: ``table``
    on a terminal (or when a ``width`` is given), ``tsv`` when stdout is a pipe or a file.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    if fmt is None and width is not None:
        fmt = "table"
    if fmt is None:
        isatty = getattr(out, "isatty", None)
        fmt = "table" if isatty is not None and isatty() else "tsv"
    if fmt not in LIST_FORMATS:
        print(f"waylay: unknown format {fmt!r}; use one of {', '.join(LIST_FORMATS)}", file=err)
        return 2
    target, explicit = _resolve(path)
    if explicit and not target.exists():
        print(f"{target}: no such file", file=err)
        return 1
    rules_file = RulesFile(target)
    if not rules_file.load():
        _print_capped(rules_file.errors, "error", err)
        return 1
    if fmt == "json":
        _list_json(rules_file, target, out)
    elif fmt == "tsv":
        _list_tsv(rules_file, out)
    else:
        _list_table(rules_file, target, out, width)
    return 0


def _list_tsv(rules_file: RulesFile, out: TextIO) -> None:
    lines = ["\t".join(_TSV_COLUMNS)]
    for rule in rules_file.ordered():
        left = rules_file.times_left(rule.id)
        cells = (
            rule.id,
            rule.event,
            conditions_summary(rule),
            action_summary(rule),
            str(rule.priority),
            "yes" if rule.enabled else "no",
            "" if left is None else str(left),
        )
        lines.append("\t".join(_tsv_cell(cell) for cell in cells))
    out.write("\n".join(lines) + "\n")
    out.flush()


def _list_json(rules_file: RulesFile, target: Path, out: TextIO) -> None:
    rules = []
    for rule in rules_file.ordered():
        data = rule.to_dict()
        left = rules_file.times_left(rule.id)
        if left is not None:
            data["times_left"] = left
        rules.append(data)
    document = {
        "path": str(target),
        "defaults": rules_file.defaults.model_dump(),
        "rules": rules,
    }
    out.write(json.dumps(document, indent=2, ensure_ascii=True) + "\n")
    out.flush()


def _list_table(rules_file: RulesFile, target: Path, out: TextIO, width: int | None) -> None:
    isatty = getattr(out, "isatty", None)
    if width is None and not (isatty is not None and isatty()):
        width = 100_000  # written to a file: rows as long as they need, never wrapped
    console = Console(file=out, width=width, highlight=False, soft_wrap=False)
    table = Table(title=Text(printable(target)), title_justify="left", show_lines=False)
    table.add_column("id", no_wrap=True)
    table.add_column("event")
    table.add_column("conditions", overflow="fold")
    table.add_column("action", overflow="fold")
    table.add_column("priority", justify="right")
    table.add_column("enabled")
    table.add_column("times left", justify="right")
    for rule in rules_file.ordered():
        left = rules_file.times_left(rule.id)
        table.add_row(
            Text(printable(rule.id)),
            rule.event,
            Text(printable(conditions_summary(rule))),
            Text(printable(action_summary(rule))),
            str(rule.priority),
            "yes" if rule.enabled else "no",
            "" if left is None else str(left),
            style=None if rule.enabled else "dim",
        )
    if not rules_file.rules:
        console.print(Text(f"{printable(target)}: no rules"))
    else:
        console.print(table)
    defaults = rules_file.defaults.model_dump(exclude_defaults=True)
    if defaults:
        console.print(
            "defaults: " + ", ".join(f"{event} = {action}" for event, action in defaults.items())
        )
