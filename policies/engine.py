"""The decision engine: which rule decides an event, fast, with thousands of rules.

An :class:`Engine` is an immutable, compiled rule set. Rules are indexed per event, then
by host: exact hosts in a dict, ``*.suffix`` patterns in a dict walked label by label
(``a.b.example.com`` looks up ``a.b.example.com``, ``b.example.com``, ``example.com``,
``com``), and a fallback list for rules that could match any host (``*``, ``<all_urls>``,
regexes without a literal host, filters). A regex anchored at the start with a literal
host (``^https://api\\.example\\.com/``) is indexed by that host. A decision therefore
looks only at the rules that could match the URL's host, plus the fallback list.

Precedence: the enabled matching rule with the highest ``priority`` decides; on a tie the
one earlier in file order. ``Decision.matched`` lists every enabled matching rule in that
order. ``times`` is not handled here (the engine never changes); see ``RulesFile``.
"""

from __future__ import annotations

import bisect
import re
import warnings
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter
from pathlib import Path
from typing import Any

from .match_pattern import ALL_URLS_SCHEMES, SplitURL, compile_pattern, split_url
from .model import EVENTS, Defaults, Rule, normalize_fingerprint
from .regex import RegexMatch, compile_regex
from .regex_parser import sre_constants as _sre_c
from .regex_parser import sre_parse as _sre_parse

__all__ = ["Decision", "Engine", "EventDetails", "substitute"]


@dataclass(frozen=True, slots=True)
class EventDetails:
    """What the engine knows about one event. For certificate events the URL is
    ``https://HOST:PORT/``. ``flow`` (a mitmproxy flow) is only read by ``filter``
    conditions; a rule with a ``filter`` never matches when it is None."""

    event: str
    url: str
    method: str = "GET"
    type: str = "other"
    status: int | None = None
    realm: str | None = None
    proxy: bool = False
    fingerprint: str | None = None
    flow: object | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one event: the action, the rule that decided (None: ``[defaults]``),
    and the ids of every enabled rule that matched, in precedence order.

    ``url`` is the redirect/rewrite target with regex substitution applied. The rule's
    other parameters are available as properties. Holds secret names, never values.
    """

    event: str
    action: str
    rule: Rule | None
    matched: tuple[str, ...] = ()
    url: str | None = None
    base_dir: Path | None = field(default=None, compare=False)
    """The rules file's folder, against which ``body_file`` is resolved."""

    def __repr__(self) -> str:
        rule = self.rule.id if self.rule else None
        return (
            f"Decision(event={self.event!r}, action={self.action!r}, rule={rule!r}, "
            f"matched={self.matched!r}, url={self.url!r})"
        )

    @property
    def rule_id(self) -> str | None:
        return self.rule.id if self.rule else None

    @property
    def is_default(self) -> bool:
        """True when no rule matched and ``[defaults]`` decided."""
        return self.rule is None

    @property
    def status(self) -> int | None:
        """The status a ``respond`` answers with (default 200), else None."""
        return self.rule.respond_code if self.rule else None

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.rule.headers or {}) if self.rule else {}

    @property
    def body(self) -> str | None:
        return self.rule.body if self.rule else None

    @property
    def body_file(self) -> str | None:
        return self.rule.body_file if self.rule else None

    @property
    def body_path(self) -> Path | None:
        """``body_file`` resolved against the rules file's folder."""
        if not self.rule or self.rule.body_file is None:
            return None
        path = Path(self.rule.body_file).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return path

    def read_body(self) -> bytes:
        """The respond body: ``body`` as UTF-8, the bytes of ``body_file``, or empty."""
        if self.rule is None:
            return b""
        if self.rule.body is not None:
            return self.rule.body.encode()
        path = self.body_path
        return path.read_bytes() if path is not None else b""

    @property
    def username(self) -> str | None:
        return self.rule.username if self.rule else None

    @property
    def secret(self) -> str | None:
        """The secret's NAME; look its value up in a ``SecretStore``."""
        return self.rule.secret if self.rule else None

    @property
    def note(self) -> str | None:
        return self.rule.note if self.rule else None


_TEMPLATE = re.compile(r"\\(\d|\\)")


def substitute(url: str, match: RegexMatch | re.Match[str], template: str) -> str:
    """declarativeNetRequest ``regexSubstitution``: the first match of the rule's regex in
    ``url`` is replaced by ``template``, where ``\\0`` is the whole match, ``\\1``..``\\9``
    the groups (empty when a group did not take part) and ``\\\\`` a backslash."""

    def expand(m: re.Match[str]) -> str:
        ref = m.group(1)
        if ref == "\\":
            return "\\"
        index = int(ref)
        if index > (match.re.groups if index else 0):
            return ""
        return match.group(index) or ""

    return url[: match.start()] + _TEMPLATE.sub(expand, template) + url[match.end() :]


@lru_cache(maxsize=4096)
def _compile_filter(expr: str):
    from mitmproxy import flowfilter

    return flowfilter.parse(expr)


class _Compiled:
    """One enabled rule, its conditions turned into values cheap to test."""

    __slots__ = (
        "rule",
        "id",
        "index",
        "key",
        "patterns",
        "excludes",
        "regex",
        "substitutes",
        "filter",
        "methods",
        "types",
        "statuses",
        "realm",
        "proxy",
        "fingerprint",
        "any_url",
    )

    def __init__(self, rule: Rule, index: int) -> None:
        self.rule = rule
        self.id = rule.id
        self.index = index
        self.key = (-rule.priority, index)
        self.patterns = tuple(compile_pattern(p) for p in rule.urls)
        self.any_url = any(p.all_urls for p in self.patterns)
        self.excludes = tuple(compile_pattern(p) for p in rule.exclude_urls)
        self.regex = compile_regex(rule.regex) if rule.regex is not None else None
        self.substitutes = rule.url_is_substitution
        self.filter = _compile_filter(rule.filter) if rule.filter is not None else None
        self.methods = frozenset(rule.methods) if rule.methods else None
        self.types = frozenset(rule.types) if rule.types else None
        self.statuses = rule.status_condition
        self.realm = rule.realm
        self.proxy = rule.proxy
        self.fingerprint = (
            normalize_fingerprint(rule.fingerprint) if rule.fingerprint is not None else None
        )

    def check(self, parts: SplitURL | None, d: EventDetails) -> RegexMatch | bool:
        """False, or True / the regex match (truthy) when the rule matches."""
        if self.filter is not None and d.flow is None:
            return False
        if self.methods is not None and d.method.upper() not in self.methods:
            return False
        if self.types is not None and d.type not in self.types:
            return False
        if self.statuses is not None and d.status not in self.statuses:
            return False
        if self.realm is not None and d.realm != self.realm:
            return False
        if self.proxy is not None and d.proxy != self.proxy:
            return False
        if self.fingerprint is not None:
            if d.fingerprint is None:
                return False
            try:
                if normalize_fingerprint(d.fingerprint) != self.fingerprint:
                    return False
            except ValueError:
                return False
        if parts is None:
            return False
        if self.any_url:
            if parts.scheme not in ALL_URLS_SCHEMES:
                return False
        else:
            for pattern in self.patterns:
                if pattern.matches_split(parts):
                    break
            else:
                return False
        for pattern in self.excludes:
            if pattern.matches_split(parts):
                return False
        if self.filter is not None:
            if d.flow is None:
                return False
            try:
                if not self.filter(d.flow):
                    return False
            except Exception:  # a filter that cannot evaluate this flow does not match
                return False
        if self.regex is not None:
            if not self.substitutes:
                return self.regex.matches(d.url)
            found = self.regex.search(d.url)
            return found if found is not None else False
        return True


class _EventIndex:
    __slots__ = ("exact", "suffix", "fallback")

    def __init__(self) -> None:
        self.exact: dict[str, list[_Compiled]] = {}
        self.suffix: dict[str, list[_Compiled]] = {}
        self.fallback: list[_Compiled] = []

    def add(self, compiled: _Compiled) -> None:
        keys = _index_keys(compiled)
        if keys is None:
            self.fallback.append(compiled)
            return
        for kind, host in keys:
            table = self.exact if kind == "exact" else self.suffix
            bucket = table.setdefault(host, [])
            if not bucket or bucket[-1] is not compiled:
                bucket.append(compiled)

    def finish(self) -> None:
        by_key = attrgetter("key")
        for table in (self.exact, self.suffix):
            for bucket in table.values():
                bucket.sort(key=by_key)
        self.fallback.sort(key=by_key)

    def copy(self) -> _EventIndex:
        """A copy sharing the buckets (change a bucket only through :meth:`discard` and
        :meth:`insert`, which copy it first)."""
        other = _EventIndex()
        other.exact = dict(self.exact)
        other.suffix = dict(self.suffix)
        other.fallback = self.fallback
        return other

    def discard(self, compiled: _Compiled) -> None:
        keys = _index_keys(compiled)
        if keys is None:
            self.fallback = [c for c in self.fallback if c is not compiled]
            return
        for kind, host in keys:
            table = self.exact if kind == "exact" else self.suffix
            bucket = [c for c in table.get(host, ()) if c is not compiled]
            if bucket:
                table[host] = bucket
            else:
                table.pop(host, None)

    def insert(self, compiled: _Compiled) -> None:
        keys = _index_keys(compiled)
        if keys is None:
            self.fallback = _sorted_in(self.fallback, compiled)
            return
        for kind, host in keys:
            table = self.exact if kind == "exact" else self.suffix
            bucket = table.get(host, [])
            if compiled not in bucket:
                table[host] = _sorted_in(bucket, compiled)


def _sorted_in(bucket: list[_Compiled], compiled: _Compiled) -> list[_Compiled]:
    """A new list: ``bucket`` (sorted by key) with ``compiled`` in its place."""
    keys = [c.key for c in bucket]
    at = bisect.bisect_left(keys, compiled.key)
    return [*bucket[:at], compiled, *bucket[at:]]


def _index_keys(compiled: _Compiled) -> list[tuple[str, str]] | None:
    """The host buckets of a rule, or None when it belongs in the fallback list."""
    keys: list[tuple[str, str]] = []
    for pattern in compiled.patterns:
        if pattern.host == "*":
            break  # any host: only a regex's literal host can index the rule
        if pattern.host_suffix is not None:
            keys.append(("suffix", pattern.host_suffix))
        else:
            keys.append(("exact", pattern.host))
    else:
        return keys
    if compiled.regex is not None:
        host = regex_host(compiled.regex.pattern)
        if host is not None:
            return [("exact", host)]
    return None


class Engine:
    """An immutable compiled rule set: ``Engine(rules, defaults).decide(details)``.

    ``rules`` are in file order; disabled rules are kept (for :meth:`ordered`) but never
    match. ``base_dir`` is where ``body_file`` paths are resolved.
    """

    def __init__(
        self,
        rules: Iterable[Rule] = (),
        defaults: Defaults | None = None,
        *,
        base_dir: Path | None = None,
    ) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.defaults = defaults or Defaults()
        self.base_dir = base_dir
        self._by_id: dict[str, Rule] = {}
        self._position: dict[str, int] = {}
        self._compiled: dict[str, _Compiled] = {}
        self._index: dict[str, _EventIndex] = {event: _EventIndex() for event in EVENTS}
        for position, rule in enumerate(self.rules):
            if rule.id in self._by_id:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            self._by_id[rule.id] = rule
            self._position[rule.id] = position
            if rule.enabled:
                compiled = self._compiled[rule.id] = _Compiled(rule, position)
                self._index[rule.event].add(compiled)
        for index in self._index.values():
            index.finish()

    def replaced(self, rules: Mapping[str, Rule]) -> Engine:
        """A new engine in which the rules with these ids are replaced by ``rules`` (same
        place in the order); only those are compiled again. A ``times`` countdown changes
        one rule of thousands: this costs microseconds, a new ``Engine`` a fraction of a
        second."""
        new = Engine.__new__(Engine)
        new.defaults = self.defaults
        new.base_dir = self.base_dir
        listed = list(self.rules)
        new._by_id = dict(self._by_id)
        new._position = self._position
        new._compiled = dict(self._compiled)
        new._index = {event: index.copy() for event, index in self._index.items()}
        for rule_id, rule in rules.items():
            position = self._position.get(rule_id)
            if position is None or rule.id != rule_id:
                raise KeyError(rule_id)
            old = new._compiled.pop(rule_id, None)
            if old is not None:
                new._index[old.rule.event].discard(old)
            listed[position] = rule
            new._by_id[rule_id] = rule
            if rule.enabled:
                compiled = new._compiled[rule_id] = _Compiled(rule, position)
                new._index[rule.event].insert(compiled)
        new.rules = tuple(listed)
        return new

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        return f"<Engine {len(self.rules)} rules>"

    def get(self, rule_id: str) -> Rule | None:
        return self._by_id.get(rule_id)

    def listens(self, event: str) -> bool:
        """Whether any enabled rule is about ``event``. With none, every decision for it is
        the default: callers skip building the details (the proxy's per-flow fast path)."""
        index = self._index[event]
        return bool(index.exact or index.suffix or index.fallback)

    def ordered(self) -> list[Rule]:
        """Every rule (enabled or not) in precedence order: priority, then file order."""
        order = sorted(range(len(self.rules)), key=lambda i: (-self.rules[i].priority, i))
        return [self.rules[i] for i in order]

    def decide(self, details: EventDetails, skip: Container[str] = ()) -> Decision:
        """The decision for one event (see the module docstring for precedence).

        ``skip``: ids of rules to leave out (a ``times`` rule used up a moment ago)."""
        index = self._index.get(details.event)
        if index is None:
            raise ValueError(f"unknown event {details.event!r}; events are {', '.join(EVENTS)}")
        parts = split_url(details.url)
        found: list[tuple[_Compiled, Any]] = []
        if parts is not None:
            host = parts.host
            bucket = index.exact.get(host)
            if bucket:
                for compiled in bucket:
                    result = compiled.check(parts, details)
                    if result:
                        found.append((compiled, result))
            suffixes = index.suffix
            if suffixes:
                while True:
                    bucket = suffixes.get(host)
                    if bucket:
                        for compiled in bucket:
                            result = compiled.check(parts, details)
                            if result:
                                found.append((compiled, result))
                    dot = host.find(".")
                    if dot < 0:
                        break
                    host = host[dot + 1 :]
        for compiled in index.fallback:
            result = compiled.check(parts, details)
            if result:
                found.append((compiled, result))
        if skip and found:
            found = [item for item in found if item[0].id not in skip]
        if not found:
            return Decision(
                details.event,
                self.defaults.action_for(details.event),
                None,
                (),
                None,
                self.base_dir,
            )
        if len(found) > 1:
            found.sort(key=_found_key)
            unique = [found[0]]
            for item in found[1:]:
                if item[0] is not unique[-1][0]:
                    unique.append(item)
            found = unique
        winner, result = found[0]
        rule = winner.rule
        url = rule.url
        if url is not None and rule.url_is_substitution and isinstance(result, RegexMatch):
            url = substitute(details.url, result, url)
        return Decision(
            details.event,
            rule.action,
            rule,
            tuple(c.id for c, _ in found),
            url,
            self.base_dir,
        )


def _found_key(item: tuple[_Compiled, Any]) -> tuple[int, int]:
    return item[0].key


# -- literal hosts of anchored regexes -------------------------------------------------

_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")


def _scheme_only(items: Sequence[tuple[Any, Any]]) -> bool:
    """Whether these regex items can only ever match scheme characters."""
    c = _sre_c
    for op, av in items:
        if op is c.LITERAL:
            if chr(av) not in _SCHEME_CHARS:
                return False
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT) or op is getattr(c, "POSSESSIVE_REPEAT", None):
            if not _scheme_only(av[2]):
                return False
        elif op is c.SUBPATTERN:
            if not _scheme_only(av[-1]):
                return False
        elif op is c.BRANCH:
            if not all(_scheme_only(branch) for branch in av[1]):
                return False
        elif op is c.IN:
            for in_op, in_av in av:
                if in_op is c.LITERAL:
                    if chr(in_av) not in _SCHEME_CHARS:
                        return False
                elif in_op is c.RANGE:
                    low, high = in_av
                    if not all(chr(x) in _SCHEME_CHARS for x in range(low, high + 1)):
                        return False
                else:
                    return False
        else:
            return False
    return True


@lru_cache(maxsize=65536)
def regex_host(regex: str) -> str | None:
    """The one host an anchored URL regex can match, lower-cased, else None.

    ``^https?://api\\.example\\.com/(.*)`` → ``api.example.com``: after ``^``, a scheme
    part that matches only scheme characters, ``://``, literal host characters, then
    ``/``, ``:``, ``?`` or the end anchor. Anything less certain returns None.
    """
    try:
        with warnings.catch_warnings():  # RE2 syntax such as [[:alpha:]] makes re warn
            warnings.simplefilter("ignore")
            tree = _sre_parse.parse(regex)
    except Exception:
        return None
    c = _sre_c
    items = list(tree)
    if (
        not items
        or items[0][0] is not c.AT
        or items[0][1] not in (c.AT_BEGINNING, c.AT_BEGINNING_STRING)
    ):
        return None
    if tree.state.flags & c.SRE_FLAG_MULTILINE and items[0][1] is c.AT_BEGINNING:
        return None
    literal = c.LITERAL
    position = 1
    while True:
        if position + 3 > len(items):
            return None
        window = items[position : position + 3]
        if all(op is literal for op, _ in window) and "".join(chr(av) for _, av in window) == "://":
            break
        if not _scheme_only([items[position]]):
            return None
        position += 1
    position += 3
    host = []
    while position < len(items) and items[position][0] is literal:
        ch = chr(items[position][1])
        if ch in "/:?":
            break
        if ch not in _HOST_CHARS:
            return None
        host.append(ch)
        position += 1
    if not host or position >= len(items):
        return None
    op, av = items[position]
    if op is literal:
        pass  # one of / : ? (anything else returned above)
    elif op is c.AT and av in (c.AT_END, c.AT_END_STRING):
        pass
    else:
        return None
    return "".join(host).lower()
