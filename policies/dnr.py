"""Chrome declarativeNetRequest (DNR) rules, both ways: waylay rules → a static ruleset
that Chrome, Edge, Firefox 113+ and Safari load, and a DNR ruleset → waylay rules.

What "exact" means here. A browser evaluates DNR rules on the request URL as it sends it:
canonical (lower-case scheme and host, punycode, no default port, no userinfo, a path
that starts with ``/``), and WebSocket handshakes as ``ws://`` / ``wss://`` URLs of type
``websocket``. waylay, a proxy, sees the same request as an ``http(s)://`` URL. An
exported rule must block, allow or redirect exactly the requests the waylay rule decides;
so a match pattern ``https://host/*`` becomes ``|https://host^`` for ordinary requests
and ``|wss://host^`` for ``websocket`` ones, and ``*://…`` (http and https) needs no
scheme at all, since a browser's DNR sees only http, https, ws and wss.

Translation rules (waylay → DNR):

- Only enabled ``request``-event rules with ``cancel`` (→ ``block``), ``continue``
  (→ ``allow``), ``redirect`` and ``rewrite`` (→ ``redirect``, with ``url`` or, for a
  ``regex`` with ``\\1``.., ``regexSubstitution``) are exported; everything else
  (other events, ``respond``, ``ask``, ``filter``, ``times``, disabled rules, methods DNR
  does not name) is left out with a reason.
- A match pattern becomes one or more ``urlFilter`` conditions when DNR's syntax says
  exactly the same thing, else one RE2 ``regexFilter``. A pattern that lists several
  URLs, or needs a ``ws`` twin, becomes several DNR rules with consecutive ids.
  ``isUrlFilterCaseSensitive`` is always ``true`` (waylay's paths are case-sensitive).
- ``resourceTypes`` is always set; waylay's ``ping`` covers DNR's ``csp_report`` (a
  report is ``Sec-Fetch-Dest: report``, which waylay calls ``ping``).
- ``exclude_urls`` must be whole domains (``*://*.example.com/*``) to become
  ``excludedRequestDomains``.
- DNR breaks priority ties by action (allow > block > upgradeScheme > redirect), waylay
  by file order. ``priority`` is kept unless that changes a decision; then the
  priorities are renumbered (same order, ties split) and a note says so.
- A user ``regex`` is RE2 already (waylay's dialect); it must also fit the 2 KB of
  compiled memory Chrome allows a ``regexFilter`` (checked by compiling it as Chrome
  does). Its WebSocket requests are covered only when it starts with a literal ``^http://``, ``^https://`` or ``^https?://`` (rewritten to also
  accept ``ws``/``wss``); otherwise ``websocket`` is dropped from its types and a note
  says so.
- At most 1,000 rules may use ``regexFilter`` (Chrome's limit): more is an error.

Import (DNR → waylay): ``block`` → ``cancel``, ``allow`` → ``continue``, ``redirect``
→ ``redirect``, ``upgradeScheme`` → ``rewrite`` to ``https://``. ``urlFilter`` becomes
match patterns when exact, else a ``regex`` with the same meaning; ``regexFilter`` is kept
as ``regex`` (a filter anchored at ``ws://``/``wss://`` becomes an ``http(s)`` one for
``websocket`` requests only). Case-insensitive filters (DNR's default) become ``(?i)``
regexes unless the case cannot matter. Rules with actions or conditions waylay has no
equivalent for (``modifyHeaders``, ``allowAllRequests``, ``initiatorDomains``,
``tabIds``…) are skipped and reported; malformed input, or a rule waylay would reject,
raises :class:`DnrError`. The imported rules are ordered so that waylay's tie-break (file
order) gives DNR's (action order). One difference remains: a filter that does not start
with a scheme, yet mentions one (``s://``), sees ``http(s)`` where a browser's WebSocket
request has ``ws(s)``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from .loops import loop_example, narrowing_host
from .match_pattern import MatchPattern, compile_pattern
from .model import RESOURCE_TYPES, Rule, problems_from_validation_error
from .regex import regex_problem, top_level_alternation

__all__ = [
    "DNR_ACTION_TYPES",
    "DNR_METHODS",
    "DNR_RESOURCE_TYPES",
    "EXPORTED_RESOURCE_TYPES",
    "MAX_REGEX_RULES",
    "DnrError",
    "DnrExport",
    "DnrImport",
    "export_rules",
    "import_rules",
    "loads",
    "re2_problem",
]

DNR_RESOURCE_TYPES: Final = (
    "main_frame",
    "sub_frame",
    "stylesheet",
    "script",
    "image",
    "font",
    "object",
    "xmlhttprequest",
    "ping",
    "csp_report",
    "media",
    "websocket",
    "webtransport",
    "webbundle",
    "other",
)
"""Chrome's ``ResourceType`` enum: every value an imported ruleset may use."""

EXPORTED_RESOURCE_TYPES: Final = tuple(
    t for t in DNR_RESOURCE_TYPES if t not in ("webtransport", "webbundle")
)
"""The types an export lists: those Chrome, Firefox and Safari all accept."""

DNR_METHODS: Final = ("connect", "delete", "get", "head", "options", "patch", "post", "put")
"""Chrome's ``RequestMethod`` enum without ``other`` (which waylay cannot say)."""

DNR_ACTION_TYPES: Final = (
    "block",
    "redirect",
    "allow",
    "upgradeScheme",
    "modifyHeaders",
    "allowAllRequests",
)

MAX_REGEX_RULES: Final = 1000
_MAX_PRIORITY: Final = 2**31 - 1  # a DNR priority is a 32-bit integer

_RANK: Final = {
    "allow": 6,
    "allowAllRequests": 5,
    "block": 4,
    "upgradeScheme": 3,
    "redirect": 2,
    "modifyHeaders": 1,
}
"""DNR's tie-break between rules of equal priority: the higher rank wins."""

_WAYLAY_TO_DNR_TYPES: Final = {
    t: (t, "csp_report") if t == "ping" else (t,) for t in RESOURCE_TYPES
}
_WS: Final = {"http": "ws", "https": "wss"}
_DEFAULT_PORT: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_ALL_TYPES: Final = frozenset(RESOURCE_TYPES)
_RE_META = frozenset(".^$|?*+()[]{}\\")
_URL_FILTER_SPECIAL = frozenset("*|^")


class DnrError(ValueError):
    """A malformed DNR ruleset, an import that would create an invalid rule, or a DNR
    limit the export would exceed. The message says which rule and what is wrong."""


@dataclass
class DnrExport:
    rules: list[dict[str, Any]]
    """The DNR rules, ids 1..N in file order."""
    left_out: list[str] = field(default_factory=list)
    """One line per waylay rule that was left out (or narrowed): ``ID: reason``."""
    notes: list[str] = field(default_factory=list)
    """Information that changes nothing, e.g. renumbered priorities."""

    def text(self) -> str:
        return json.dumps(self.rules, indent=2, ensure_ascii=False) + "\n"


@dataclass
class DnrImport:
    rules: list[Rule]
    skipped: list[str] = field(default_factory=list)
    """One line per DNR rule that was not imported: ``rule N: reason``."""
    notes: list[str] = field(default_factory=list)


class _LeftOut(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- export ------------------------------------------------------------------------------


@dataclass
class _Cond:
    url_filter: str | None = None
    regex_filter: str | None = None
    types: frozenset[str] = _ALL_TYPES


@dataclass
class _Exported:
    rule: Rule
    index: int
    conds: list[_Cond]
    action: dict[str, Any]
    shared: dict[str, Any]

    @property
    def outcome(self) -> str:
        return json.dumps(self.action, sort_keys=True)

    @property
    def rank(self) -> int:
        return _RANK[self.action["type"]]


def export_rules(rules: Iterable[Rule]) -> DnrExport:
    """Translate waylay rules (file order) into DNR rules; see the module docstring."""
    exported: list[_Exported] = []
    left_out: list[str] = []
    notes: list[str] = []
    for index, rule in enumerate(rules):
        try:
            item, narrowed = _export_rule(rule, index)
        except _LeftOut as out:
            left_out.append(f"{rule.id}: left out: {out.reason}")
            continue
        if narrowed:
            left_out.append(f"{rule.id}: narrowed: {narrowed}")
        exported.append(item)

    priorities, renumbered = _priorities(exported)
    if renumbered:
        notes.append(
            "note: priorities renumbered (same order, ties split): DNR breaks priority ties "
            "by action (allow > block > redirect), waylay by file order"
        )
    dnr_rules: list[dict[str, Any]] = []
    for item in exported:
        for cond in item.conds:
            condition: dict[str, Any] = {}
            if cond.url_filter is not None:
                condition["urlFilter"] = cond.url_filter
            if cond.regex_filter is not None:
                condition["regexFilter"] = cond.regex_filter
            if "urlFilter" in condition or "regexFilter" in condition:
                condition["isUrlFilterCaseSensitive"] = True
            condition["resourceTypes"] = _dnr_types(cond.types)
            condition.update(item.shared)
            dnr_rules.append(
                {
                    "id": len(dnr_rules) + 1,
                    "priority": priorities[id(item)],
                    "action": item.action,
                    "condition": condition,
                }
            )
    regex_count = sum(1 for r in dnr_rules if "regexFilter" in r["condition"])
    if regex_count > MAX_REGEX_RULES:
        raise DnrError(
            f"{regex_count} DNR rules need a regexFilter, but a ruleset may have at most "
            f"{MAX_REGEX_RULES}: write more of the rules' patterns so that a urlFilter can "
            "express them (e.g. *://*.example.com/*), or split the rule set"
        )
    return DnrExport(dnr_rules, left_out, notes)


def _export_rule(rule: Rule, index: int) -> tuple[_Exported, str | None]:
    if not rule.enabled:
        raise _LeftOut("disabled (a disabled rule decides nothing)")
    if rule.event != "request":
        raise _LeftOut(f"{rule.event} events have no declarativeNetRequest equivalent")
    if rule.action in ("respond", "ask"):
        raise _LeftOut(f"the {rule.action} action has no declarativeNetRequest equivalent")
    if rule.times is not None:
        raise _LeftOut("`times` (a countdown) has no declarativeNetRequest equivalent")
    if rule.filter is not None:
        raise _LeftOut("a mitmproxy `filter` condition has no declarativeNetRequest equivalent")

    shared: dict[str, Any] = {}
    if rule.methods is not None:
        unknown = [m for m in rule.methods if m.lower() not in DNR_METHODS]
        if unknown:
            raise _LeftOut(f"method {unknown[0]} is not one DNR can name")
        shared["requestMethods"] = [m.lower() for m in rule.methods]
    domains = _excluded_domains(rule.exclude_urls)
    if domains:
        shared["excludedRequestDomains"] = domains

    types = frozenset(rule.types) if rule.types is not None else _ALL_TYPES
    narrowed: str | None = None
    patterns = [compile_pattern(p) for p in rule.urls]
    if rule.regex is not None:
        if not any(p.all_urls for p in patterns):
            raise _LeftOut(
                "`regex` together with `urls` cannot be one DNR condition "
                "(a DNR rule has one urlFilter or one regexFilter)"
            )
        regex, covers_ws = _regex_with_ws(rule.regex)
        problem = re2_problem(regex, capture=rule.url_is_substitution)
        if problem:
            raise _LeftOut(f"Chrome's RE2 would refuse its `regex`: {problem}")
        if not covers_ws and "websocket" in types:
            types = types - {"websocket"}
            narrowed = (
                "WebSocket requests are not covered: the browser sees them as ws(s):// "
                "URLs and `regex` is written for http(s):// (start it with ^https?:// "
                "to cover them)"
            )
            if not types:
                raise _LeftOut(narrowed)
        conds = [_Cond(regex_filter=regex, types=types)]
    else:
        conds = []
        for pattern in patterns:
            conds.extend(_pattern_conditions(pattern, types))
        if not conds:
            raise _LeftOut(
                "its match patterns never match a request waylay sees "
                "(waylay sees WebSocket handshakes as http(s):// URLs; ftp and file are "
                "not proxied)"
            )

    action = _dnr_action(rule, conds)
    if action["type"] == "redirect":
        unlooped = _without_loop(rule, shared)
        if unlooped:
            narrowed = f"{narrowed}; {unlooped}" if narrowed else unlooped
    return _Exported(rule, index, conds, action, shared), narrowed


def _without_loop(rule: Rule, shared: dict[str, Any]) -> str | None:
    """A browser's DNR redirect is a new request the rules see again: a rule must not
    match its own target (policies/loops.py). Narrow it by the target's host, or leave
    it out; returns what was narrowed."""
    excluded = tuple(shared.get("excludedRequestDomains", ()))
    example = loop_example(rule, excluded)
    if example is None:
        return None
    source, target = example
    host = narrowing_host(rule, target, excluded)
    if host is None:
        raise _LeftOut(
            f"it matches its own redirect target ({source} → {target}): a browser would "
            "redirect it again and again"
        )
    shared["excludedRequestDomains"] = [*excluded, host]
    return (
        f"requests to {host} (and its subdomains) are not redirected: the rule matches its "
        f"own redirect target there ({source} → {target}), a browser would loop"
    )


def _dnr_action(rule: Rule, conds: list[_Cond]) -> dict[str, Any]:
    if rule.action == "cancel":
        return {"type": "block"}
    if rule.action == "continue":
        return {"type": "allow"}
    assert rule.action in ("redirect", "rewrite") and rule.url is not None
    if rule.url_is_substitution:
        template = rule.url
        bad = re.search(r"\\(?![0-9\\])", template)
        if bad:
            raise _LeftOut(
                "its `url` has a backslash that is not \\0..\\9 or \\\\ (RE2 rejects it)"
            )
        assert all(c.regex_filter is not None for c in conds)
        return {"type": "redirect", "redirect": {"regexSubstitution": template}}
    return {"type": "redirect", "redirect": {"url": rule.url}}


def _dnr_types(types: frozenset[str]) -> list[str]:
    wanted = {d for t in types for d in _WAYLAY_TO_DNR_TYPES[t]}
    return [t for t in EXPORTED_RESOURCE_TYPES if t in wanted]


def _excluded_domains(patterns: Sequence[str]) -> list[str]:
    domains: list[str] = []
    for text in patterns:
        p = compile_pattern(text)
        if p.all_urls:
            raise _LeftOut("exclude_urls has <all_urls>: the rule matches nothing")
        if not p.schemes & {"http", "https"}:
            continue  # never matches a proxied URL, so it excludes nothing
        if (
            p.scheme == "*"
            and p.host_suffix is not None
            and p.port is None
            and p.path == "/*"
            and _plain_host(p.host_suffix)
        ):
            domains.append(p.host_suffix)
            continue
        raise _LeftOut(
            f"exclude_urls pattern {text!r} is not a whole domain like *://*.example.com/* "
            "(DNR can only exclude request domains)"
        )
    return domains


def _plain_host(host: str) -> bool:
    return host.isascii() and re.fullmatch(r"[a-z0-9._-]+", host) is not None


def _check_host(p: MatchPattern) -> None:
    host = p.host_suffix if p.host_suffix is not None else p.host
    if host == "*":
        return
    if not host.isascii():
        raise _LeftOut(
            f"pattern {p.pattern!r}: a non-ASCII host (browsers send punycode; write it as xn--…)"
        )
    if "%" in host:
        raise _LeftOut(f"pattern {p.pattern!r}: a percent-encoded host")
    if host.startswith("["):
        inner = host[1:-1]
        try:
            canonical = ipaddress.IPv6Address(inner).compressed
        except ValueError:
            raise _LeftOut(f"pattern {p.pattern!r}: an invalid IPv6 host") from None
        if canonical != inner:
            raise _LeftOut(f"pattern {p.pattern!r}: browsers write this IPv6 host as [{canonical}]")
        return
    last = host.rstrip(".").rsplit(".", 1)[-1]
    if re.fullmatch(r"[0-9]+|0x[0-9a-f]*", last):
        try:
            ipv4: str | None = str(ipaddress.IPv4Address(host))
        except ValueError:
            ipv4 = None
        if ipv4 != host or p.host_suffix is not None:
            raise _LeftOut(
                f"pattern {p.pattern!r}: browsers rewrite this numeric host, so DNR "
                "would never see it as written"
            )


def _pattern_conditions(p: MatchPattern, types: frozenset[str]) -> list[_Cond]:
    if p.all_urls:
        return [_Cond(types=types)]
    schemes = sorted(p.schemes & {"http", "https"})
    if not schemes:
        return []
    _check_host(p)
    if not p.path.isascii():
        raise _LeftOut(f"pattern {p.pattern!r}: a non-ASCII path (browsers percent-encode it)")
    conds = _url_filter_conditions(p, schemes, types)
    if conds is None:
        conds = [_Cond(regex_filter=_pattern_regex(p, schemes), types=types)]
    return conds


def _path_filter(path: str) -> str | None:
    """The urlFilter text for a pattern path (it follows the host and port), or None."""
    if any(c in path for c in "|^"):
        return None
    if path.endswith("*"):
        return path.rstrip("*")
    return path + "|"


def _url_filter_conditions(
    p: MatchPattern, schemes: list[str], types: frozenset[str]
) -> list[_Cond] | None:
    """urlFilter conditions saying exactly what ``p`` says, or None when there are none."""
    web = types - {"websocket"}
    ws = types & {"websocket"}
    host, port, path = p.host, p.port, p.path
    any_path = path == "/*"
    both = len(schemes) == 2

    if host == "*":
        if port is not None or not any_path:
            return None
        if both:
            return [_Cond(types=types)]
        s = schemes[0]
        return [_Cond(url_filter=f"|{b}://", types=t) for b, t in ((s, web), (_WS[s], ws)) if t]

    if p.host_suffix is not None:
        suffix = p.host_suffix
        if not both or any(c in suffix for c in _URL_FILTER_SPECIAL):
            return None
        if port is None:
            return [_Cond(url_filter=f"||{suffix}^", types=types)] if any_path else None
        if port in (80, 443):
            return None  # the default port of one scheme: canonical URLs drop it
        tail = _path_filter(path)
        if tail is None:
            return None
        return [_Cond(url_filter=f"||{suffix}:{port}{tail}", types=types)]

    if any(c in host for c in _URL_FILTER_SPECIAL):
        return None
    conds: list[_Cond] = []
    for s in schemes:
        for b, t in ((s, web), (_WS[s], ws)):
            if not t:
                continue
            if port is None:
                if not any_path:
                    return None  # "any port, then this path" needs a regex
                text = f"|{b}://{host}^"
            else:
                tail = _path_filter(path)
                if tail is None:
                    return None
                shown = "" if port == _DEFAULT_PORT[b] else f":{port}"
                text = f"|{b}://{host}{shown}{tail}"
            conds.append(_Cond(url_filter=text, types=t))
    return conds


def _re2_escape(text: str) -> str:
    return "".join("\\" + c if c in _RE_META else c for c in text)


def _pattern_regex(p: MatchPattern, schemes: list[str]) -> str:
    """An RE2 regexFilter matching exactly the canonical URLs ``p`` matches (and their
    ws/wss twins for WebSocket requests)."""
    browser = sorted(set(schemes) | {_WS[s] for s in schemes})
    if p.host == "*":
        host = r"(?:\[[0-9a-f:.]+\]|[^/:?#@\[\]]+)"
    elif p.host_suffix is not None:
        host = r"(?:[^/:?#@\[\]]*\.)?" + _re2_escape(p.host_suffix)
    else:
        host = _re2_escape(p.host)
    groups: list[tuple[list[str], str]] = []
    if p.port is None:
        groups.append((browser, "(?::[0-9]+)?"))
    else:
        plain = [b for b in browser if _DEFAULT_PORT[b] == p.port]
        shown = [b for b in browser if _DEFAULT_PORT[b] != p.port]
        if plain:
            groups.append((plain, ""))
        if shown:
            groups.append((shown, f":{p.port}"))
    alternatives = [f"(?:{'|'.join(bs)})://{host}{port}" for bs, port in groups]
    head = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
    wild_end = p.path.endswith("*")
    pieces = (p.path.rstrip("*") if wild_end else p.path).split("*")
    body = ".*".join(_re2_escape(piece) for piece in pieces)
    tail = body if wild_end else body + "$"
    return f"^{head}{tail}"


_WS_PREFIXES: Final = {
    "^https://": "^(?:https|wss)://",
    "^http://": "^(?:http|ws)://",
    "^https?://": "^(?:https?|wss?)://",
}


def _regex_with_ws(regex: str) -> tuple[str, bool]:
    """The regexFilter for a user regex, and whether it also covers the browser's
    ``ws(s)://`` URLs of the WebSocket handshakes waylay sees as ``http(s)://``."""
    for prefix, replacement in _WS_PREFIXES.items():
        if regex.startswith(prefix) and not _top_level_branch(regex):
            return replacement + regex[len(prefix) :], True
    return regex, False


def _top_level_branch(regex: str) -> bool:
    return top_level_alternation(regex)


# -- RE2 compatibility ---------------------------------------------------------------------

CHROME_REGEX_MEMORY: Final = 2048
"""Chrome compiles a ``regexFilter`` with RE2's ``max_mem`` at 2 KB and refuses larger."""


def re2_problem(regex: str, *, capture: bool = True, case_sensitive: bool = True) -> str | None:
    """Why Chrome would refuse ``regex`` as a ``regexFilter``, or None.

    Exact: rule regexes are RE2 already, and this compiles the pattern with the options
    Chrome uses (its 2 KB memory limit, case sensitivity, capture groups only when a
    ``regexSubstitution`` needs them).
    """
    problem = regex_problem(
        regex, capture=capture, case_sensitive=case_sensitive, max_mem=CHROME_REGEX_MEMORY
    )
    if problem is not None and "pattern too large" in problem:
        return "it needs more than the 2 KB of compiled memory Chrome allows a regexFilter"
    return problem


# -- priorities ----------------------------------------------------------------------------


def _priorities(items: list[_Exported]) -> tuple[dict[int, int], bool]:
    """DNR priority per exported rule: waylay's when that keeps every decision, else a
    renumbering in waylay's precedence order that splits conflicting ties."""
    if not items:
        return {}, False
    keep = all(1 <= item.rule.priority <= _MAX_PRIORITY for item in items)
    if keep:
        by_priority: dict[int, list[_Exported]] = {}
        for item in items:
            by_priority.setdefault(item.rule.priority, []).append(item)
        for group in by_priority.values():
            for position, earlier in enumerate(group):
                for later in group[position + 1 :]:
                    if later.outcome != earlier.outcome and later.rank >= earlier.rank:
                        keep = False
    if keep:
        return {id(item): item.rule.priority for item in items}, False
    ordered = sorted(items, key=lambda item: (-item.rule.priority, item.index))
    levels: list[list[_Exported]] = []
    for item in ordered:
        current = levels[-1] if levels else None
        if (
            current is not None
            and current[0].rule.priority == item.rule.priority
            and all(m.outcome == item.outcome or item.rank < m.rank for m in current)
        ):
            current.append(item)
        else:
            levels.append([item])
    total = len(levels)
    return {id(m): total - level for level, group in enumerate(levels) for m in group}, True


# -- import --------------------------------------------------------------------------------

_CONDITION_KEYS: Final = frozenset(
    {
        "urlFilter",
        "regexFilter",
        "isUrlFilterCaseSensitive",
        "resourceTypes",
        "excludedResourceTypes",
        "requestMethods",
        "excludedRequestMethods",
        "requestDomains",
        "excludedRequestDomains",
    }
)
_UNSUPPORTED_CONDITIONS: Final = {
    "initiatorDomains": "the initiator (the page that made the request)",
    "excludedInitiatorDomains": "the initiator (the page that made the request)",
    "domains": "the initiator (the page that made the request)",
    "excludedDomains": "the initiator (the page that made the request)",
    "domainType": "first- or third-party requests",
    "tabIds": "browser tabs",
    "excludedTabIds": "browser tabs",
    "responseHeaders": "response headers",
    "excludedResponseHeaders": "response headers",
    "topDomains": "the top-level page",
    "excludedTopDomains": "the top-level page",
}
_HOST_RUN = re.compile(r"[a-z0-9._%-]+", re.IGNORECASE)


def loads(text: str) -> DnrImport:
    """Parse a DNR ruleset's JSON text and translate it (raises :class:`DnrError`)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DnrError(f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise DnrError("not JSON waylay reads: nested too deeply") from None
    return import_rules(data)


def import_rules(data: Any) -> DnrImport:
    """Translate a parsed DNR ruleset (a list of rule objects) into waylay rules.

    The waylay rules come in an order whose file-order tie-break gives DNR's decisions:
    by priority, then by DNR's action order. Raises :class:`DnrError` for malformed input
    or a rule waylay would reject.
    """
    if not isinstance(data, list):
        raise DnrError("a DNR ruleset is a JSON array of rules")
    seen: set[int] = set()
    made: list[tuple[int, int, int, Rule]] = []
    skipped: list[str] = []
    notes: list[str] = []
    for position, raw in enumerate(data):
        where = f"rule #{position + 1}"
        if not isinstance(raw, dict):
            raise DnrError(f"{where}: must be an object")
        rule_id = raw.get("id")
        if type(rule_id) is not int or rule_id < 1:
            raise DnrError(f"{where}: `id` must be an integer of at least 1")
        where = f"rule #{position + 1} (id {rule_id})"
        if rule_id in seen:
            raise DnrError(f"{where}: duplicate id {rule_id}")
        seen.add(rule_id)
        try:
            fields, rank = _import_rule(raw, where, notes)
        except _LeftOut as out:
            skipped.append(f"{where}: skipped: {out.reason}")
            continue
        try:
            rule = Rule.model_validate(fields)
        except ValidationError as exc:
            problems = problems_from_validation_error(exc)
            detail = "; ".join(
                f"{'.'.join(map(str, loc))}: {msg}" if loc else msg for loc, msg in problems
            )
            raise DnrError(f"{where}: would make an invalid waylay rule: {detail}") from None
        made.append((-rule.priority, -rank, position, rule))
    made.sort(key=lambda t: t[:3])
    return DnrImport([m[3] for m in made], skipped, notes)


def _import_rule(raw: Mapping[str, Any], where: str, notes: list[str]) -> tuple[dict, int]:
    for key in raw:
        if key not in ("id", "priority", "action", "condition"):
            raise DnrError(f"{where}: unknown key {key!r}")
    priority = raw.get("priority", 1)
    if type(priority) is not int or priority < 1:
        raise DnrError(f"{where}: `priority` must be an integer of at least 1")
    action = raw.get("action")
    if not isinstance(action, dict) or not isinstance(action.get("type"), str):
        raise DnrError(f"{where}: `action` must be an object with a `type`")
    kind = action["type"]
    if kind not in DNR_ACTION_TYPES:
        raise DnrError(f"{where}: unknown action type {kind!r}")
    condition = raw.get("condition")
    if not isinstance(condition, dict):
        raise DnrError(f"{where}: `condition` must be an object")
    _check_condition(condition, where)

    if kind in ("modifyHeaders", "allowAllRequests"):
        what = {
            "modifyHeaders": "changes request/response headers",
            "allowAllRequests": "allows every request of a frame",
        }[kind]
        raise _LeftOut(f"action {kind} ({what}) has no waylay equivalent")
    for key in condition:
        if key in _UNSUPPORTED_CONDITIONS:
            raise _LeftOut(
                f"condition `{key}`: waylay does not know {_UNSUPPORTED_CONDITIONS[key]}"
            )
        if key not in _CONDITION_KEYS:
            raise _LeftOut(f"condition `{key}` has no waylay equivalent")

    fields: dict[str, Any] = {"id": f"dnr-{raw['id']}", "event": "request", "priority": priority}
    case_sensitive = condition.get("isUrlFilterCaseSensitive", False)
    types = _import_types(condition, where, notes)
    regex: str | None = None
    urls: list[str] | None = None

    domains = condition.get("requestDomains")
    if domains is not None:
        urls = [f"*://*.{_domain(d, where)}/*" for d in domains]
    excluded = condition.get("excludedRequestDomains")
    if excluded:
        fields["exclude_urls"] = [f"*://*.{_domain(d, where)}/*" for d in excluded]

    if "urlFilter" in condition:
        translated = _translate_url_filter(condition["urlFilter"], case_sensitive, where)
        if translated.kind == "web":
            types = types - {"websocket"}
        elif translated.kind == "ws":
            types = types & {"websocket"}
        if translated.urls is not None and urls is None:
            urls = list(translated.urls)
        else:
            regex = translated.regex
    elif "regexFilter" in condition:
        original = condition["regexFilter"]
        scheme_kind, original = _regex_scheme_kind(original)
        if scheme_kind == "web":
            types = types - {"websocket"}
        elif scheme_kind == "ws":
            types = types & {"websocket"}
        regex = _python_regex(original, case_sensitive)
    if urls is not None:
        fields["urls"] = urls
    methods = _import_methods(condition, where)
    if methods is not None:
        fields["methods"] = methods

    if kind == "block":
        fields["action"] = "cancel"
    elif kind == "allow":
        fields["action"] = "continue"
    elif kind == "upgradeScheme":
        if regex is not None:
            raise _LeftOut(
                "upgradeScheme with a filter that needs a regex: waylay's rewrite needs "
                "the regex for the scheme"
            )
        regex = r"^http://(.*)$"
        types = types - {"websocket"}  # DNR upgrades http (and ftp) requests, not ws
        fields["action"] = "rewrite"
        fields["url"] = r"https://\1"
    else:
        redirect = action.get("redirect")
        if not isinstance(redirect, dict):
            raise DnrError(f"{where}: a redirect action needs a `redirect` object")
        if "url" in redirect:
            if not isinstance(redirect["url"], str):
                raise DnrError(f"{where}: redirect.url must be a string")
            fields["url"] = redirect["url"]
        elif "regexSubstitution" in redirect:
            if "regexFilter" not in condition:
                raise DnrError(f"{where}: regexSubstitution needs a regexFilter")
            if not isinstance(redirect["regexSubstitution"], str):
                raise DnrError(f"{where}: redirect.regexSubstitution must be a string")
            fields["url"] = redirect["regexSubstitution"]
        elif "extensionPath" in redirect or "transform" in redirect:
            which = "extensionPath" if "extensionPath" in redirect else "transform"
            raise _LeftOut(f"redirect.{which} has no waylay equivalent")
        else:
            raise DnrError(
                f"{where}: `redirect` needs url, regexSubstitution, transform or extensionPath"
            )
        fields["action"] = "redirect"
    if not types:
        raise _LeftOut("it matches no request waylay can see (no resource type is left)")
    if types != _ALL_TYPES:
        fields["types"] = [t for t in RESOURCE_TYPES if t in types]
    if regex is not None:
        fields["regex"] = regex
    return fields, _RANK[kind]


def _check_condition(condition: Mapping[str, Any], where: str) -> None:
    if "urlFilter" in condition and "regexFilter" in condition:
        raise DnrError(f"{where}: give urlFilter or regexFilter, not both")
    for key in ("urlFilter", "regexFilter"):
        if key in condition:
            value = condition[key]
            if not isinstance(value, str) or not value:
                raise DnrError(f"{where}: {key} must be a non-empty string")
    if "urlFilter" in condition:
        text = condition["urlFilter"]
        if not text.isascii():
            raise DnrError(f"{where}: urlFilter must be ASCII")
        if text.startswith("||*"):
            raise DnrError(f"{where}: urlFilter may not start with ||* (write * instead)")
    if "isUrlFilterCaseSensitive" in condition and not isinstance(
        condition["isUrlFilterCaseSensitive"], bool
    ):
        raise DnrError(f"{where}: isUrlFilterCaseSensitive must be true or false")
    for key, allowed in (
        ("resourceTypes", DNR_RESOURCE_TYPES),
        ("excludedResourceTypes", DNR_RESOURCE_TYPES),
        ("requestMethods", (*DNR_METHODS, "other")),
        ("excludedRequestMethods", (*DNR_METHODS, "other")),
    ):
        if key in condition:
            value = condition[key]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise DnrError(f"{where}: {key} must be a list of strings")
            for v in value:
                if v not in allowed:
                    raise DnrError(f"{where}: {key}: unknown value {v!r}")
            if key in ("resourceTypes", "requestMethods") and not value:
                raise DnrError(f"{where}: {key} must not be empty")
    for key in ("requestDomains", "excludedRequestDomains"):
        if key in condition:
            value = condition[key]
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise DnrError(f"{where}: {key} must be a list of domain names")
            if key == "requestDomains" and not value:
                raise DnrError(f"{where}: requestDomains must not be empty")


def _domain(name: str, where: str) -> str:
    host = name.lower()
    if not host.isascii() or not re.fullmatch(r"[a-z0-9._-]+|\[[0-9a-f:.]+\]", host):
        raise DnrError(f"{where}: {name!r} is not a domain name (write non-ASCII ones as xn--…)")
    if host.startswith("["):
        raise _LeftOut(f"request domain {name!r}: an IPv6 address cannot be a waylay *.host")
    return host


def _import_types(condition: Mapping[str, Any], where: str, notes: list[str]) -> frozenset[str]:
    if "resourceTypes" in condition:
        dnr = set(condition["resourceTypes"])
    elif "excludedResourceTypes" in condition:
        dnr = set(DNR_RESOURCE_TYPES) - set(condition["excludedResourceTypes"])
    else:
        dnr = set(DNR_RESOURCE_TYPES) - {"main_frame"}  # DNR's default
    types = frozenset(t for t in RESOURCE_TYPES if t in dnr)
    partial = []
    if ("csp_report" in dnr) != ("ping" in dnr):
        partial.append("csp_report (waylay counts reports as ping)")
    extra = {"webtransport", "webbundle"} & dnr
    if extra and "other" not in dnr:
        partial.append(f"{', '.join(sorted(extra))} (waylay counts them as other)")
    if partial:
        notes.append(f"note: {where}: types follow waylay's: {'; '.join(partial)}")
    return types


def _import_methods(condition: Mapping[str, Any], where: str) -> list[str] | None:
    if "requestMethods" in condition:
        methods = condition["requestMethods"]
        if "other" in methods:
            raise _LeftOut(
                "requestMethods `other` (any non-standard method) has no waylay equivalent"
            )
        return [m.upper() for m in methods]
    if "excludedRequestMethods" in condition:
        excluded = set(condition["excludedRequestMethods"])
        if "other" not in excluded:
            raise _LeftOut(
                "excludedRequestMethods without `other`: waylay cannot say 'any method but these'"
            )
        kept = [m.upper() for m in DNR_METHODS if m not in excluded]
        if not kept:
            raise _LeftOut("excludedRequestMethods excludes every method")
        return kept
    return None


@dataclass
class _Translated:
    urls: tuple[str, ...] | None
    """Match patterns saying exactly what the urlFilter says (as waylay sees URLs)."""
    regex: str
    """A regex saying the same, always available."""
    kind: str | None
    """``web``: matches only http(s) requests; ``ws``: only WebSocket ones; None: both."""


def _translate_url_filter(text: str, case_sensitive: bool, where: str) -> _Translated:
    anchor: str | None = None
    body = text
    if body.startswith("||"):
        anchor, body = "domain", body[2:]
    elif body.startswith("|"):
        anchor, body = "left", body[1:]
    right = False
    if body.endswith("|") and body:
        right, body = True, body[:-1]

    scheme: str | None = None
    kind: str | None = None
    if anchor == "left":
        lowered = body if case_sensitive else body.lower()
        found = re.match(r"(https?|wss?)://", lowered)
        if found:
            scheme = found.group(1)
            kind = "ws" if scheme.startswith("ws") else "web"
        else:
            literal = re.match(r"[^*^]*", lowered).group(0)  # type: ignore[union-attr]
            if not literal:
                anchor = None  # "|*…" says nothing about the start
            elif "https://".startswith(literal) or "http://".startswith(literal):
                kind = "web"
            elif "wss://".startswith(literal) or "ws://".startswith(literal):
                raise _LeftOut(
                    f"urlFilter {text!r} names part of a ws(s) scheme; WebSocket handshakes "
                    "reach waylay as http(s):// URLs"
                )
            else:
                raise _LeftOut(
                    f"urlFilter {text!r} matches no http(s) or ws(s) URL, so nothing waylay sees"
                )

    regex = _filter_regex(anchor, body, right, case_sensitive, scheme)
    urls = _filter_patterns(anchor, body, right, case_sensitive, scheme)
    return _Translated(urls, regex, kind)


def _filter_regex(
    anchor: str | None, body: str, right: bool, case_sensitive: bool, scheme: str | None
) -> str:
    out = []
    if anchor == "domain":
        out.append(r"^[a-z][a-z0-9+.\-]*://(?:[^/?#:@\[\]]*\.)?")
    elif anchor == "left":
        out.append("^")
        if scheme is not None and scheme.startswith("ws"):
            out.append({"ws": "http", "wss": "https"}[scheme])
            body = body[len(scheme) :]
    for ch in body:
        if ch == "*":
            out.append(".*")
        elif ch == "^":
            out.append(r"(?:[^a-zA-Z0-9_.%\-]|\z)")
        else:
            out.append(re.escape(ch))
    if right:
        out.append(r"\z")
    return ("" if case_sensitive else "(?i)") + "".join(out)


def _filter_patterns(
    anchor: str | None, body: str, right: bool, case_sensitive: bool, scheme: str | None
) -> tuple[str, ...] | None:
    """Match patterns for the urlFilter forms whose meaning a pattern list has exactly."""
    if anchor == "domain":
        rest = body
        schemes: tuple[str, ...] = ("http", "https")
    elif anchor == "left" and scheme is not None:
        rest = body[len(scheme) + 3 :]
        schemes = (scheme,)
    else:
        return None
    if anchor == "left" and rest == "" and not right:
        return tuple(f"{_proxy_scheme(s)}://*/*" for s in schemes)
    host_match = _HOST_RUN.match(rest)
    if host_match is None:
        return None
    host = host_match.group(0)
    tail = rest[host_match.end() :]
    if case_sensitive and host != host.lower():
        return None  # canonical hosts are lower-case: let the regex say "never"
    host = host.lower()
    if "%" in host or host.startswith(".") or host.endswith(".") or ".." in host:
        return None
    star = "*." if anchor == "domain" else ""
    if tail == "^" and not right:
        if anchor == "domain":
            return (f"*://*.{host}/*",)
        return tuple(f"{_proxy_scheme(s)}://{host}/*" for s in schemes)
    found = re.fullmatch(r"(?::([0-9]+))?(/[^^|]*)", tail)
    if found is None:
        return None
    port_text, path = found.groups()
    if not case_sensitive and path.lower() != path.upper():
        return None  # a case-insensitive path: only a regex says that
    if not right:
        path += "*"
    patterns = []
    for s in schemes:
        if port_text is None:
            port = _DEFAULT_PORT[s]
        else:
            port = int(port_text)
            if port == _DEFAULT_PORT[s] or not 0 < port < 65536 or port_text != str(port):
                continue  # a canonical URL never shows its default port
        patterns.append(f"{_proxy_scheme(s)}://{star}{host}:{port}{path}")
    if not patterns:
        return None
    if len(patterns) == 2 and patterns[0][len("http") :] == patterns[1][len("https") :]:
        return ("*" + patterns[0][len("http") :],)
    return tuple(patterns)


def _proxy_scheme(scheme: str) -> str:
    return {"ws": "http", "wss": "https"}.get(scheme, scheme)


_SCHEME_PREFIXES: Final = {
    "^http://": ("web", "^http://"),
    "^https://": ("web", "^https://"),
    "^https?://": ("web", "^https?://"),
    "^ws://": ("ws", "^http://"),
    "^wss://": ("ws", "^https://"),
    "^wss?://": ("ws", "^https?://"),
}


def _regex_scheme_kind(regex: str) -> tuple[str | None, str]:
    """A regexFilter that starts with a literal scheme matches either only http(s) or
    only WebSocket requests in the browser; for the latter the proxy sees http(s)."""
    for prefix, (kind, replacement) in _SCHEME_PREFIXES.items():
        if regex.lower().startswith(prefix):
            if _top_level_branch(regex):
                return None, regex
            return kind, replacement + regex[len(prefix) :]
    return None, regex


def _python_regex(regex: str, case_sensitive: bool) -> str:
    """A DNR regexFilter as a rule regex (both are RE2), or _LeftOut when RE2 refuses it."""
    text = regex
    if not case_sensitive:
        flags = re.match(r"\(\?([a-zA-Z]+)\)", text)
        if flags:
            text = f"(?i{flags.group(1).replace('i', '')})" + text[flags.end() :]
        else:
            text = "(?i)" + text
    problem = regex_problem(text)
    if problem is not None:
        raise _LeftOut(f"regexFilter is not a regex RE2 runs: {problem}")
    return text
