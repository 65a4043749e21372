"""Exports that cannot loop: does a redirecting rule match what it redirects to?

waylay's ``rewrite`` happens once, inside the proxy. A browser's declarativeNetRequest
``redirect`` is a new request that the rules see again, and so is the ``307`` a client
follows (waylay's ``redirect``, mitmproxy's ``block_list`` + ``Location``): a rule that
matches its own target redirects again and again (Chromium followed one such rule 268
times in 6 seconds and never loaded the script). Exporters ask ``loop_example`` and then
narrow the rule (``narrowing_host``: exclude the target's host, when the rule still
covers other hosts) or leave it out.

A fixed target is checked exactly. For a ``regex`` substitution the check is by
examples: URLs built from the regex itself (each alternative, each repetition taken the
fewest and one more time), substituted, and matched again; a rule some example loops for
is reported with that example.
"""

from __future__ import annotations

import re

from .engine import substitute
from .match_pattern import compile_pattern, split_url
from .model import Rule
from .regex_parser import sre_constants as _sre
from .regex_parser import sre_parse as _sre_parse

__all__ = ["loop_example", "narrowing_host", "url_matches"]


def url_matches(rule: Rule, url: str, excluded_hosts: tuple[str, ...] = ()) -> bool:
    """Whether ``rule``'s URL conditions (urls, exclude_urls, regex) match ``url``;
    ``excluded_hosts`` as DNR's ``excludedRequestDomains`` (the host and its subdomains)."""
    parts = split_url(url)
    if parts is None:
        return False
    host = parts.host
    if any(host == h or host.endswith("." + h) for h in excluded_hosts):
        return False
    patterns = [compile_pattern(p) for p in rule.urls]
    if not any(p.matches_split(parts) for p in patterns):
        return False
    if any(compile_pattern(p).matches_split(parts) for p in rule.exclude_urls):
        return False
    if rule.regex is not None and re.search(rule.regex, url) is None:
        return False
    return True


def loop_example(rule: Rule, excluded_hosts: tuple[str, ...] = ()) -> tuple[str, str] | None:
    """(a request URL, where the rule sends it) when the rule matches that target again;
    None when no redirect loop was found. Only for ``redirect`` and ``rewrite`` rules."""
    if rule.action not in ("redirect", "rewrite") or rule.url is None:
        return None
    if not rule.url_is_substitution:
        if url_matches(rule, rule.url, excluded_hosts):
            return rule.url, rule.url
        return None
    if rule.regex is None:
        return None
    compiled = re.compile(rule.regex)
    for url in examples(rule.regex):
        found = compiled.search(url)
        if found is None or not url_matches(rule, url, excluded_hosts):
            continue
        target = substitute(url, found, rule.url)
        if url_matches(rule, target, excluded_hosts):
            return url, target
    return None


def narrowing_host(rule: Rule, target: str, excluded_hosts: tuple[str, ...] = ()) -> str | None:
    """The host to exclude so that the rule no longer matches ``target`` yet still
    covers other hosts; None when excluding it would leave nothing (leave the rule out)."""
    parts = split_url(target)
    if parts is None or not re.fullmatch(r"[a-z0-9._-]+", parts.host or ""):
        return None
    host = parts.host

    def under(h: str) -> bool:
        return h == host or h.endswith("." + host)

    if rule.url_is_substitution and rule.regex is not None:
        covers_other = any(
            (p := split_url(u)) is not None and not under(p.host) for u in examples(rule.regex)
        )
    else:
        covers_other = False
        for text in rule.urls:
            pat = compile_pattern(text)
            if pat.all_urls or pat.host == "*":
                covers_other = True
            elif pat.host_suffix is not None:
                covers_other = covers_other or not under(pat.host_suffix)
            else:
                covers_other = covers_other or not under(pat.host)
    if not covers_other:
        return None
    if loop_example(rule, (*excluded_hosts, host)) is not None:
        return None
    return host


# -- examples of what a regex matches --------------------------------------------------


def examples(regex: str, limit: int = 64) -> list[str]:
    """Strings ``regex`` matches: each alternative, each repetition at its least and one
    more time. Bounded; an unparsable regex gives none."""
    try:
        parsed = _sre_parse.parse(regex)
    except Exception:  # noqa: BLE001 - a regex Python cannot parse: no examples
        return []
    out: list[str] = []
    for choice in range(limit):
        for extra in (0, 1):
            text = _build(list(parsed), choice, extra, {})
            if text is not None and text not in out and re.search(regex, text):
                out.append(text)
        if len(out) >= limit:
            break
    return out


def _pick(items, choice: int):
    return items[choice % len(items)]


def _char_in(members, choice: int) -> str | None:
    negate = any(op == _sre.NEGATE for op, _ in members)
    chars: list[str] = []
    for op, arg in members:
        if op == _sre.LITERAL:
            chars.append(chr(arg))
        elif op == _sre.RANGE:
            chars.append(chr(arg[0]))
        elif op == _sre.CATEGORY:
            chars.append({"CATEGORY_DIGIT": "0", "CATEGORY_SPACE": " "}.get(str(arg), "a"))
    if not negate:
        return _pick(chars, choice) if chars else None
    for candidate in "axq0_-/":
        if candidate not in chars:
            return candidate
    return None


def _build(items, choice: int, extra: int, groups: dict[int, str]) -> str | None:
    out: list[str] = []
    for op, arg in items:
        if op == _sre.LITERAL:
            out.append(chr(arg))
        elif op == _sre.NOT_LITERAL:
            out.append("a" if chr(arg) != "a" else "b")
        elif op == _sre.ANY:
            out.append("a")
        elif op == _sre.IN:
            c = _char_in(arg, choice)
            if c is None:
                return None
            out.append(c)
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, getattr(_sre, "POSSESSIVE_REPEAT", None)):
            low, high, sub = arg
            count = low + extra if high is _sre.MAXREPEAT or low + extra <= high else low
            count = min(count, 3)
            for _ in range(count):
                piece = _build(list(sub), choice, extra, groups)
                if piece is None:
                    return None
                out.append(piece)
        elif op == _sre.SUBPATTERN:
            group, _add, _del, sub = arg
            piece = _build(list(sub), choice, extra, groups)
            if piece is None:
                return None
            if group is not None:
                groups[group] = piece
            out.append(piece)
        elif op == _sre.BRANCH:
            _none, alternatives = arg
            piece = _build(
                list(_pick(alternatives, choice)), choice // len(alternatives), extra, groups
            )
            if piece is None:
                return None
            out.append(piece)
        elif op == _sre.GROUPREF:
            out.append(groups.get(arg, ""))
        elif op in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT):
            continue
        else:
            return None
    return "".join(out)
