"""waylay rules as mitmproxy options: a ``config.yaml`` for ``mitmproxy``/``mitmdump``.

Each exported entry fires exactly when waylay's engine would decide by its rule, given
the rules that are exported: an entry's flow filter is the rule's conditions, ``&`` the
negation of the conditions of every exported rule of the same event that takes
precedence over it (higher ``priority``, or earlier in the file on a tie). A rule that is
left out is named with its reason, and the export behaves as if it were absent.

What becomes what (only ``request`` and ``cookies`` events; mitmproxy's options cannot
act on a response, a redirect, a challenge or a certificate):

- ``cancel`` → ``block_list`` with status 444 (mitmproxy kills the flow: no response).
- ``redirect`` (no ``\\1``) → ``block_list`` with 307 plus a ``modify_headers`` entry
  that adds ``Location`` to that response (only to responses the block list made).
  A redirect whose target matches its own condition is left out (a client would loop).
- ``rewrite`` → ``map_remote`` (applied once per request: it cannot loop); a ``regex`` substitution keeps its meaning (the first
  match is replaced, as in waylay, not every match as ``re.sub`` would).
- ``respond`` with an empty body → ``block_list`` with its status; with ``body_file``
  and status 200 → ``map_local`` (an absolute path); ``headers`` → ``modify_headers``.
- ``continue`` (request) and ``allow`` (cookies) produce no entry but take part in
  precedence; ``strip`` (cookies) → ``modify_headers`` removing ``Cookie`` and
  ``Set-Cookie``.

Answers mitmproxy makes carry its own ``Server`` header (and ``map_local`` a guessed
``Content-Type`` unless the rule sets one); status, body and the rule's headers are
waylay's. URL conditions become ``~u`` regexes that match exactly the URLs waylay's matcher does
on ``pretty_url`` (the string both look at), case-insensitive for scheme and host and
case-sensitive for the path, written so that they survive mitmproxy 11's
``block_list``, which lower-cases its whole filter. ``types`` and ``times`` have no
flow-filter equivalent, so such rules are left out.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Final

from .engine import Engine, EventDetails
from .loops import loop_example
from .match_pattern import (
    ALL_URLS,
    ALL_URLS_SCHEMES,
    DEFAULT_PORTS,
    MatchPattern,
    compile_pattern,
    split_url,
)
from .model import Rule
from .regex import to_python
from .regex_parser import sre_constants as _sre_c
from .regex_parser import sre_parse as _sre_parse

__all__ = ["MitmExport", "export_options", "filter_quote", "pattern_regex", "case_sensitive"]

KILL_STATUS: Final = 444
"""mitmproxy's ``block_list`` code for "close the connection without a response"."""

_SEPARATORS: Final = "|/#%`;,=@!+\u241f"
_OPTIONS_ORDER: Final = ("block_list", "map_remote", "map_local", "modify_headers")
_BLOCKLISTED: Final = '~meta "^blocklisted: True$"'


class _LeftOut(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class MitmExport:
    options: dict[str, list[tuple[str, str]]]
    """Option name → (rule id, entry) in file order."""
    left_out: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def text(self, source: str | None = None) -> str:
        lines = [
            "# mitmproxy options exported by waylay" + (f" from {source}" if source else "") + ".",
            "# Use it as config.yaml in a confdir: mitmdump --set confdir=DIR",
        ]
        for name in _OPTIONS_ORDER:
            entries = self.options.get(name) or []
            if not entries:
                continue
            lines.append(f"{name}:")
            for rule_id, entry in entries:
                lines.append(f"  # rule {rule_id}")
                lines.append(f"  - {json.dumps(entry, ensure_ascii=False)}")
        return "\n".join(lines) + "\n"


# -- regexes -----------------------------------------------------------------------------


def _literal(text: str) -> str:
    """Regex text matching ``text`` literally that means the same after ``str.lower()``."""
    out = []
    for ch in text:
        code = ord(ch)
        if code > 0xFFFF:
            raise _LeftOut(f"the character {ch!r} cannot be written in a lower-case-safe regex")
        if ch.isascii() and ch.isalnum():
            out.append(ch if not ch.isupper() else f"\\x{code:02x}")
        elif ch.isascii():
            out.append("\\" + ch if ch in ".^$|?*+()[]{}\\" else ch)
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out)


def pattern_regex(pattern: str | MatchPattern) -> str:
    """A Python regex that ``re.search`` matches, case-insensitively, against exactly the
    URLs the match pattern matches (``MatchPattern.matches``), for any string."""
    p = compile_pattern(pattern) if isinstance(pattern, str) else pattern
    if p.all_urls:
        return "^(?:" + "|".join(sorted(ALL_URLS_SCHEMES)) + ")://"
    schemes = sorted(p.schemes)
    groups: list[tuple[list[str], bool | None]]
    if p.port is None:
        groups = [(schemes, None)]
    else:
        # the URL's port is the explicit one, else the scheme's default: group by default
        with_default = [s for s in schemes if DEFAULT_PORTS.get(s) == p.port]
        others = [s for s in schemes if DEFAULT_PORTS.get(s) != p.port]
        groups = [(g, g is with_default) for g in (with_default, others) if g]
    alternatives = []
    for group, default_ok in groups:
        netloc = _netloc_regex(p, default_ok)
        alternatives.append(f"(?:{'|'.join(group)})://{netloc}")
    head = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
    path = p.path[1:]
    wild = "[^#]*"
    body = wild.join(_literal(piece) for piece in path.split("*"))
    return f"^{head}(?:/|(?!/))(?-i:{body})(?![^#])"


def _netloc_regex(p: MatchPattern, default_ok: bool | None) -> str:
    """Userinfo, host and port as ``split_url`` reads them, constrained by ``p``.

    ``default_ok`` None: any port; True: the scheme's default port (no port text, or an
    empty one) or the explicit port; False: the explicit port only.
    """
    if default_ok is None:
        port_tail = "(?::[^/?#@]*)?"  # the non-bracket host stops at the first ':'
        bracket_after = "[^/?#@]*"
    else:
        explicit = f":0*{p.port}"
        port_tail = f"(?:{explicit}|:?)" if default_ok else explicit
        bracket_after = f"(?:{explicit}|(?::|[^:/?#@][^/?#@]*)?)" if default_ok else explicit
    end = "(?![^/?#])"
    host = p.host
    branches = []
    if host == "*":
        branches.append(f"(?!\\[)[^/?#@:]*{port_tail}")
        branches.append(f"\\[[^\\]/?#@]*\\]{bracket_after}")
        if default_ok is not False:
            branches.append("\\[[^\\]/?#@]*")
    elif p.host_suffix is not None:
        suffix = _literal(p.host_suffix)
        branches.append(f"(?!\\[)(?:[^/?#@:]*\\.)?{suffix}{port_tail}")
        if default_ok is not False:
            branches.append(f"\\[[^\\]/?#@]*\\.{suffix}")
    elif host.startswith("["):
        branches.append(f"{_literal(host)}{bracket_after}")
    else:
        lead = "" if host else "(?!\\[)"
        branches.append(f"{lead}{_literal(host)}{port_tail}")
    inner = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:[^/?#]*@)?{inner}{end}"


def _global_flags(regex: str) -> tuple[str, str]:
    """Split the leading global flag groups off ``regex``: ``("ai", rest)``."""
    flags = ""
    rest = regex
    while True:
        found = re.match(r"\(\?([aiLmsux]+)\)", rest)
        if not found:
            return flags, rest
        flags += found.group(1)
        rest = rest[found.end() :]


def case_sensitive(regex: str) -> str:
    """``regex`` as a case-sensitive ``~u`` argument (mitmproxy compiles filters with
    IGNORECASE) that keeps its meaning after ``str.lower()``."""
    flags, rest = _global_flags(regex)
    safe = _lower_safe(rest)
    prefix = f"(?{flags})" if flags else ""
    if "i" in flags:
        return prefix + safe
    return f"{prefix}(?-i:{safe})"


def _lower_safe(regex: str) -> str:
    """Rewrite upper-case letters as ``\\xNN`` so ``str.lower()`` changes nothing."""
    out = []
    i, n = 0, len(regex)
    while i < n:
        ch = regex[i]
        if ch == "\\":
            nxt = regex[i + 1 : i + 2]
            if nxt.isascii() and nxt.isupper():
                raise _LeftOut(f"its regex uses \\{nxt}, which mitmproxy 11's block_list breaks")
            if nxt == "x":
                out.append("\\x" + regex[i + 2 : i + 4].lower())
                i += 4
                continue
            if nxt == "u":
                out.append("\\u" + regex[i + 2 : i + 6].lower())
                i += 6
                continue
            out.append(regex[i : i + 2])
            i += 2
            continue
        if regex.startswith("(?P<", i) or regex.startswith("(?P=", i):
            close = regex.find(">" if regex[i + 3] == "<" else ")", i)
            name = regex[i + 4 : close]
            if name != name.lower():
                raise _LeftOut("its regex has an upper-case group name")
            out.append(regex[i : close + 1])
            i = close + 1
            continue
        if regex.startswith("(?", i):
            flags = re.match(r"\(\?([aiLmsux-]+)[:)]", regex[i:])
            if flags:
                if "L" in flags.group(1):
                    raise _LeftOut("its regex uses the L flag")
                out.append(flags.group(0))
                i += len(flags.group(0))
                continue
        if ch.isascii() and ch.isupper():
            out.append(f"\\x{ord(ch):02x}")
        elif not ch.isascii() and ch.lower() != ch:
            if ord(ch) > 0xFFFF:
                raise _LeftOut(f"its regex has the character {ch!r}")
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def filter_quote(regex: str) -> str:
    """A regex as a double-quoted flow-filter argument (the parser unescapes ``\\x``)."""
    return '"' + regex.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _url(regex: str) -> str:
    return "~u " + filter_quote(regex)


# -- conditions ------------------------------------------------------------------------------


def _python_regex(regex: str) -> str:
    """A rule's regex (RE2) in the Python ``re`` syntax mitmproxy's filters use."""
    try:
        return to_python(regex)
    except ValueError as exc:
        raise _LeftOut(f"its regex {exc}") from None


def _condition(rule: Rule) -> str:
    if rule.types is not None:
        raise _LeftOut(
            "`types` has no flow-filter equivalent (waylay infers resource types itself)"
        )
    if rule.times is not None:
        raise _LeftOut("`times` (a countdown) has no mitmproxy option equivalent")
    parts = []
    patterns = [compile_pattern(p) for p in rule.urls]
    if any(p.all_urls for p in patterns):
        parts.append(_url(pattern_regex(ALL_URLS)))
    else:
        alternatives = [_url(pattern_regex(p)) for p in patterns]
        parts.append(
            alternatives[0] if len(alternatives) == 1 else "(" + " | ".join(alternatives) + ")"
        )
    for text in rule.exclude_urls:
        parts.append("!" + _url(pattern_regex(text)))
    if rule.regex is not None:
        parts.append(_url(case_sensitive(_python_regex(rule.regex))))
    if rule.methods is not None:
        names = "|".join(re.escape(m) for m in rule.methods)
        parts.append("~m " + filter_quote(f"^(?:{names})$"))
    if rule.filter is not None:
        parts.append(f"({rule.filter})")
    return " & ".join(parts)


def _effective(condition: str, shields: list[str]) -> str:
    if not shields:
        return condition
    return " & ".join([f"({condition})", *(f"!({s})" for s in shields)])


_REQUEST_ONLY_CODES: Final = frozenset({"m", "u", "d", "hq", "bq", "tq", "src", "http", "all"})
"""Filter operators whose result is the same on the request and, later, on its response."""


def _request_only(expr: str) -> bool:
    from mitmproxy import flowfilter

    def walk(node) -> bool:
        if isinstance(node, flowfilter.FNot):
            return walk(node.itm)
        if isinstance(node, flowfilter.FAnd | flowfilter.FOr):
            return all(walk(item) for item in node.lst)
        return getattr(type(node), "code", None) in _REQUEST_ONLY_CODES

    try:
        return walk(flowfilter.parse(expr))
    except ValueError:
        return False


def _separator(*parts: str) -> str:
    for sep in _SEPARATORS:
        if not any(sep in part for part in parts):
            return sep
    raise _LeftOut("no separator character is free for its option entry")


@dataclass
class _Entry:
    option: str
    rule: Rule
    text: str


# -- export ----------------------------------------------------------------------------------


def export_options(rules: Iterable[Rule], base_dir: Path | None = None) -> MitmExport:
    """Translate waylay rules (file order) into mitmproxy options; see the module doc."""
    rules = list(rules)
    reasons: dict[int, str] = {}
    while True:
        entries = _translate(rules, base_dir, reasons)
        dropped = _map_local_after_rewrites(rules, entries)
        if not dropped:
            break
        reasons.update(dropped)  # and again without them: they no longer take precedence

    export = MitmExport({name: [] for name in _OPTIONS_ORDER})
    for index, rule in enumerate(rules):
        if index in reasons:
            export.left_out.append(f"{rule.id}: left out: {reasons[index]}")
            continue
        for entry in entries.get(index, []):
            export.options[entry.option].append((rule.id, entry.text))
    return export


def _translate(
    rules: list[Rule], base_dir: Path | None, reasons: dict[int, str]
) -> dict[int, list[_Entry]]:
    """Entries per rule index, in precedence order per event; fills ``reasons``."""
    order = sorted(range(len(rules)), key=lambda i: (-rules[i].priority, i))
    shields: dict[str, list[tuple[str, str | None]]] = {"request": [], "cookies": []}
    entries: dict[int, list[_Entry]] = {}
    for index in order:
        if index in reasons:
            continue
        rule = rules[index]
        try:
            entries[index] = _entries_for(rule, shields, base_dir)
        except _LeftOut as out:
            reasons[index] = out.reason
            continue
        shields[rule.event].append((_condition(rule), rule.filter))
    return entries


def _entries_for(
    rule: Rule, shields: dict[str, list[tuple[str, str | None]]], base_dir: Path | None
) -> list[_Entry]:
    if not rule.enabled:
        raise _LeftOut("disabled (a disabled rule decides nothing)")
    if rule.event not in ("request", "cookies"):
        raise _LeftOut(f"mitmproxy's options cannot act on {rule.event} events")
    if rule.action == "ask":
        raise _LeftOut("`ask` needs a person; mitmproxy's options cannot pause")
    condition = _condition(rule)
    higher = shields[rule.event]
    effective = _effective(condition, [c for c, _ in higher])
    filters = [f for f in (rule.filter, *(f for _, f in higher)) if f is not None]

    def block(status: int) -> _Entry:
        if any(f != f.lower() for f in filters):
            raise _LeftOut(
                "a `filter` expression with upper-case letters (mitmproxy 11's block_list "
                "lower-cases its filter)"
            )
        sep = _separator(effective)
        return _Entry("block_list", rule, f"{sep}{effective}{sep}{status}")

    def header(name: str, value: str, after_block: bool) -> _Entry:
        if not all(_request_only(f) for f in filters):
            raise _LeftOut(
                "a `filter` expression that reads more than the request would be evaluated "
                f"again on the response to set the {name} header"
            )
        if not value or value.startswith("@"):
            raise _LeftOut(f"header {name}: mitmproxy's modify_headers cannot set {value!r}")
        flt = "~s & " + (f"{_BLOCKLISTED} & " if after_block else "") + f"({effective})"
        sep = _separator(flt, name)
        return _Entry("modify_headers", rule, f"{sep}{flt}{sep}{name}{sep}{value}")

    action = rule.action
    if rule.event == "cookies":
        if action == "allow":
            return []
        if rule.filter is not None:
            raise _LeftOut("a `filter` expression cannot be evaluated on headers alone")
        made = []
        for name in ("Cookie", "Set-Cookie"):
            sep = _separator(effective, name)
            made.append(_Entry("modify_headers", rule, f"{sep}{effective}{sep}{name}{sep}"))
        return made
    if action == "continue":
        return []
    if action == "cancel":
        return [block(KILL_STATUS)]
    if action == "redirect":
        if rule.url_is_substitution:
            raise _LeftOut(
                "a redirect with \\1.. substitution: modify_headers can only set a fixed Location"
            )
        assert rule.url is not None
        if loop := loop_example(rule):  # the client follows the 307: see policies/loops.py
            raise _LeftOut(
                f"it matches its own redirect target ({loop[1]}): a client following the "
                "307 would be redirected again and again"
            )
        return [block(307), header("Location", rule.url, True)]
    if action == "rewrite":
        return [_map_remote(rule, effective)]
    assert action == "respond"
    return _respond(rule, effective, base_dir, block, header)


def _respond(rule: Rule, effective: str, base_dir: Path | None, block, header) -> list[_Entry]:
    from mitmproxy.net.http.status_codes import RESPONSES

    status = rule.respond_code or 200
    made: list[_Entry] = []
    if rule.body_file is not None:
        if status != 200:
            raise _LeftOut(
                "map_local answers 200 only; this rule responds with a body_file "
                f"and status {status}"
            )
        path = Path(rule.body_file).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        if not path.is_file():
            raise _LeftOut(f"body_file {str(path)!r} is not a file (map_local needs it)")
        target = str(path.resolve())
        sep = _separator(effective, "^")
        made.append(_Entry("map_local", rule, f"{sep}{effective}{sep}^{sep}{target}"))
        after_block = False
    elif rule.body:
        raise _LeftOut("an inline `body`: mitmproxy can only answer with a file (map_local)")
    else:
        if status == KILL_STATUS or status not in RESPONSES:
            raise _LeftOut(f"status {status} is not one block_list can answer with")
        made.append(block(status))
        after_block = True
    for name, value in (rule.headers or {}).items():
        made.append(header(name, value, after_block))
    return made


def _map_remote(rule: Rule, effective: str) -> _Entry:
    assert rule.url is not None
    if rule.url_is_substitution:
        assert rule.regex is not None
        regex = _python_regex(rule.regex)
        with warnings.catch_warnings():  # "possible nested set" must not reach the screen
            warnings.simplefilter("ignore")
            tree = _sre_parse.parse(regex)
        if _has_numbered_refs(tree):
            raise _LeftOut("its regex refers to its own groups, which map_remote would renumber")
        flags, rest = _global_flags(regex)
        groups = tree.state.groups - 1
        subject = f"(?{flags})" if flags else ""
        subject += f"\\A([\\s\\S]*?)({rest})([\\s\\S]*)\\Z"
        replacement = "\\g<1>" + _replacement(rule.url, groups) + f"\\g<{groups + 3}>"
    else:
        subject = "\\A[\\s\\S]*\\Z"
        replacement = rule.url.replace("\\", "\\\\")
    sep = _separator(effective, subject)
    return _Entry("map_remote", rule, f"{sep}{effective}{sep}{subject}{sep}{replacement}")


def _has_numbered_refs(items) -> bool:
    c = _sre_c
    for op, av in items:
        if op in (c.GROUPREF, c.GROUPREF_EXISTS):
            return True
        if op in (c.MAX_REPEAT, c.MIN_REPEAT) or op is getattr(c, "POSSESSIVE_REPEAT", None):
            if _has_numbered_refs(av[2]):
                return True
        elif op is c.SUBPATTERN or op is getattr(c, "ATOMIC_GROUP", None):
            if _has_numbered_refs(av[-1] if op is c.SUBPATTERN else av):
                return True
        elif op is c.BRANCH:
            if any(_has_numbered_refs(b) for b in av[1]):
                return True
        elif op in (c.ASSERT, c.ASSERT_NOT):
            if _has_numbered_refs(av[1]):
                return True
    return False


def _replacement(template: str, groups: int) -> str:
    """waylay's ``\\0``..``\\9`` template as an ``re.sub`` replacement, groups shifted by 2."""
    out = []
    i = 0
    while i < len(template):
        ch = template[i]
        if ch == "\\" and i + 1 < len(template):
            nxt = template[i + 1]
            if nxt.isdigit():
                index = int(nxt)
                if index == 0:
                    out.append("\\g<2>")
                elif index <= groups:
                    out.append(f"\\g<{index + 2}>")
                i += 2
                continue
            if nxt == "\\":
                out.append("\\\\")
                i += 2
                continue
            out.append("\\\\")
            i += 1
            continue
        out.append("\\\\" if ch == "\\" else ch)
        i += 1
    return "".join(out)


def _map_local_after_rewrites(
    rules: list[Rule], entries: dict[int, list[_Entry]]
) -> dict[int, str]:
    """mitmproxy runs map_local after map_remote, on the rewritten URL; waylay decides once.
    The map_local rules whose conditions a rewritten URL could meet, with the reason."""
    rewrites = [
        rules[i] for i, made in entries.items() if any(e.option == "map_remote" for e in made)
    ]
    dropped: dict[int, str] = {}
    for index, made in entries.items():
        if not any(e.option == "map_local" for e in made):
            continue
        for rewrite in rewrites:
            if _may_meet(rules[index], rewrite):
                dropped[index] = (
                    f"rewrite rule {rewrite.id!r} can send requests to a URL it matches, and "
                    "mitmproxy's map_local runs after map_remote on the new URL"
                )
                break
    return dropped


def _may_meet(local: Rule, rewrite: Rule) -> bool:
    """Whether a URL ``rewrite`` produces could meet the conditions of ``local``."""
    if local.filter is not None or rewrite.url is None:
        return True
    if rewrite.url_is_substitution:
        return _may_meet_template(local, rewrite.url)
    probe = local.model_copy(update={"priority": 1, "enabled": True, "times": None})
    engine = Engine([probe])
    methods = rewrite.methods or local.methods or ("GET",)
    return any(
        engine.decide(EventDetails("request", rewrite.url, method)).rule is not None
        for method in methods
    )


def _may_meet_template(local: Rule, template: str) -> bool:
    """For a substitution, only the literal part before the first ``\\N`` is known; a
    local rule none of whose patterns can match a URL that starts with it is not met."""
    head = re.match(r"([a-z][a-z0-9+.-]*)://([^/?#\\]+)(?=[/?#])", template, re.IGNORECASE)
    if head is None or local.regex is not None:
        return True
    scheme = head.group(1).lower()
    parts = split_url(f"{scheme}://{head.group(2)}/")
    if parts is None:
        return True
    tail = template[head.end() :].split("\\", 1)[0]
    if "#" in tail:
        tail = tail.split("#", 1)[0]  # the rest is a fragment: nothing more is known
    path = tail if tail.startswith("/") else "/" + tail
    for text in local.urls:
        p = compile_pattern(text)
        if p.all_urls:
            return True
        if scheme not in p.schemes or (p.port is not None and p.port != parts.port):
            continue
        if p.host_suffix is not None:
            host_ok = parts.host == p.host_suffix or parts.host.endswith("." + p.host_suffix)
        else:
            host_ok = p.host in ("*", parts.host)
        if host_ok and _globs_meet(p.path, path + "*"):
            return True
    return False


def _globs_meet(a: str, b: str) -> bool:
    """Whether some string matches both globs (``*`` is any run of characters)."""

    @cache
    def meet(i: int, j: int) -> bool:
        if i == len(a):
            return all(ch == "*" for ch in b[j:])
        if j == len(b):
            return all(ch == "*" for ch in a[i:])
        if a[i] == "*":
            return meet(i + 1, j) or meet(i, j + 1)
        if b[j] == "*":
            return meet(i, j + 1) or meet(i + 1, j)
        return a[i] == b[j] and meet(i + 1, j + 1)

    return meet(0, 0)
