"""``waylay rules check`` and ``waylay rules list``: plain functions returning exit codes.

``monitor/cli.py`` wires them into argparse; both take the rules path (None: the default
path, see :func:`policies.rules_file.default_rules_path`) and optional output streams.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .describe import action_summary, conditions_summary
from .rules_file import RulesFile, check_text, default_rules_path

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
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        print(f"{target}:1:1: cannot read: {reason}", file=err)
        return 1
    rules_file = RulesFile(target)
    loaded = check_text(text, target, rules_file.secrets)
    for message in loaded.errors:
        print(message, file=err)
    for message in loaded.warnings:
        print(message, file=err)
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


def list_rules(
    path: Path | str | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    width: int | None = None,
) -> int:
    """Print the rules in precedence order as a table; 1 (and the errors) if broken."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    target, explicit = _resolve(path)
    if explicit and not target.exists():
        print(f"{target}: no such file", file=err)
        return 1
    rules_file = RulesFile(target)
    if not rules_file.load():
        for message in rules_file.errors:
            print(message, file=err)
        return 1
    console = Console(file=out, width=width, highlight=False, soft_wrap=False)
    table = Table(title=str(target), title_justify="left", show_lines=False)
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
            Text(rule.id),
            rule.event,
            Text(conditions_summary(rule)),
            Text(action_summary(rule)),
            str(rule.priority),
            "yes" if rule.enabled else "no",
            "" if left is None else str(left),
            style=None if rule.enabled else "dim",
        )
    if not rules_file.rules:
        console.print(f"{target}: no rules")
    else:
        console.print(table)
    defaults = rules_file.defaults.model_dump(exclude_defaults=True)
    if defaults:
        console.print(
            "defaults: " + ", ".join(f"{event} = {action}" for event, action in defaults.items())
        )
    return 0
