"""Rule regexes are RE2: linear-time matching, whatever the pattern or the URL.

A ``regex`` in a rule is RE2 syntax (the dialect of Chrome's declarativeNetRequest
``regexFilter``): no backreferences, no lookaround, no possessive or atomic groups, and
matching time grows with the length of the URL only, so no rule, imported or typed, can
hold the proxy up with catastrophic backtracking. A pattern RE2 cannot run is refused when
the rules are loaded, with a message that says why (:class:`RegexError`).

:func:`compile_regex` returns a :class:`Regex`: ``search(url)`` gives a :class:`RegexMatch`
with ``start()``, ``end()``, ``group(n)`` and ``re.groups`` (what ``\\1``..``\\9``
substitution needs). Matching goes straight to the RE2 object (no per-call Python layer);
for text that is not ASCII, UTF-8 byte offsets are mapped back to characters.

:func:`to_python` turns an RE2 pattern into Python ``re`` syntax with the same meaning on
URLs, for exports whose consumer (mitmproxy) uses Python's ``re``.
"""

from __future__ import annotations

import re
import warnings
from bisect import bisect_right
from functools import lru_cache
from itertools import accumulate
from typing import Any, Final

import re2

__all__ = [
    "MAX_PATTERN_CHARS",
    "Regex",
    "RegexError",
    "RegexMatch",
    "compile_regex",
    "regex_problem",
    "to_python",
    "top_level_alternation",
]

MAX_PATTERN_CHARS: Final = 100_000
"""Longer patterns are refused before RE2 sees them (a rules file is written by a person)."""

_re2 = re2._re2
_UNANCHORED = _re2.RE2.Anchor.UNANCHORED
_NULL: Final = (-1, -1)


class RegexError(ValueError):
    """A pattern RE2 cannot run; the message says what and, where it can, what instead."""


def _options(*, capture: bool = True, case_sensitive: bool = True, max_mem: int = 0) -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would print its own line on stderr, under the screen
    options.never_capture = not capture
    options.case_sensitive = case_sensitive
    if max_mem:
        options.max_mem = max_mem
    return options


_CAPTURE = _options(capture=True)
_FIND = _options(capture=False)

_HINTS: Final = (
    ("invalid perl operator: (?=", "lookahead (?=…) is not RE2"),
    ("invalid perl operator: (?!", "lookahead (?!…) is not RE2"),
    ("invalid perl operator: (?<=", "lookbehind (?<=…) is not RE2"),
    ("invalid perl operator: (?<!", "lookbehind (?<!…) is not RE2"),
    ("invalid perl operator: (?>", "atomic groups (?>…) are not RE2"),
    ("invalid perl operator: (?#", "comment groups (?#…) are not RE2"),
    ("invalid perl operator: (?x", "verbose mode (?x) is not RE2"),
    ("invalid escape sequence: \\Z", "RE2 writes the end of text as \\z"),
    ("invalid escape sequence: \\u", "RE2 writes a code point as \\x{hhhh}"),
    ("bad repetition operator: ++", "possessive quantifiers are not RE2"),
    ("bad repetition operator: *+", "possessive quantifiers are not RE2"),
    ("bad repetition operator: ?+", "possessive quantifiers are not RE2"),
    ("invalid repetition size", "RE2 allows at most 1000 repetitions"),
    ("pattern too large", "the pattern needs too much memory"),
)


def _explain(pattern: str, reason: str) -> str:
    if re.search(r"invalid escape sequence: \\[1-9]", reason):
        return f"{reason} (backreferences are not RE2)"
    for needle, hint in _HINTS:
        if needle in reason:
            return f"{reason} ({hint})"
    return reason


def _compiled(
    pattern: str, *, case_sensitive: bool = True, capture: bool = True, max_mem: int = 0
) -> Any:
    """The raw RE2 object for ``pattern`` (str), or :class:`RegexError` saying why not."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise RegexError(f"longer than {MAX_PATTERN_CHARS:,} characters")
    if "\x00" in pattern:
        raise RegexError("contains a NUL character")
    try:
        data = pattern.encode("utf-8")
    except UnicodeEncodeError:
        raise RegexError("not valid Unicode text (a lone surrogate)") from None
    if capture and not max_mem:
        options = _CAPTURE if case_sensitive else _options(case_sensitive=False)
    elif not capture and not max_mem and case_sensitive:
        options = _FIND
    else:
        options = _options(capture=capture, case_sensitive=case_sensitive, max_mem=max_mem)
    compiled = _re2.RE2(data, options)
    if not compiled.ok():
        reason = compiled.error()
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        # RE2 quotes the pattern: keep the message on one line, control characters escaped
        reason = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(reason))
        raise RegexError(_explain(pattern, reason))
    return compiled


def regex_problem(
    pattern: str, *, case_sensitive: bool = True, capture: bool = True, max_mem: int = 0
) -> str | None:
    """Why RE2 cannot compile ``pattern`` with these options, or None."""
    try:
        _compiled(pattern, case_sensitive=case_sensitive, capture=capture, max_mem=max_mem)
    except RegexError as exc:
        return str(exc)
    return None


class RegexMatch:
    """The first match of a :class:`Regex` in a text (the part ``re.Match`` waylay uses)."""

    __slots__ = ("re", "string", "_spans")

    def __init__(self, regex: Regex, string: str, spans: list[tuple[int, int]]) -> None:
        self.re = regex
        self.string = string
        self._spans = spans

    def start(self, group: int = 0) -> int:
        return self._spans[group][0]

    def end(self, group: int = 0) -> int:
        return self._spans[group][1]

    def span(self, group: int = 0) -> tuple[int, int]:
        return self._spans[group]

    def group(self, group: int = 0) -> str | None:
        start, end = self._spans[group]
        return None if start < 0 else self.string[start:end]

    def __repr__(self) -> str:
        return f"<RegexMatch span={self._spans[0]} match={self.group()!r}>"


class Regex:
    """A compiled RE2 rule regex. ``pattern`` is the text, ``groups`` its capture groups.

    Whether a rule matches needs no submatches: that is RE2's DFA alone (fast even for a
    pattern of thousands of nested groups). The capturing program (for substitution) is
    compiled too, at once, so that a pattern either fully works or is refused at load.
    """

    __slots__ = ("pattern", "_find", "_full")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._find = _compiled(pattern, capture=False).Match
        self._full = _compiled(pattern, capture=True)

    def _spans_program(self) -> Any:
        return self._full

    @property
    def groups(self) -> int:
        return self._spans_program().NumberOfCapturingGroups()

    def search(self, text: str) -> RegexMatch | None:
        """The first match (with every group's span) in ``text``, or None."""
        ascii = text.isascii()
        data = text.encode("ascii") if ascii else text.encode("utf-8", "surrogatepass")
        if self._find(_UNANCHORED, data, 0, len(data))[0] == _NULL:
            return None
        spans = list(self._spans_program().Match(_UNANCHORED, data, 0, len(data)))
        if not ascii:  # UTF-8 byte offsets → character offsets
            bounds = list(
                accumulate((len(ch.encode("utf-8", "surrogatepass")) for ch in text), initial=0)
            )

            def char(offset: int) -> int:
                return -1 if offset < 0 else bisect_right(bounds, offset) - 1

            spans = [(char(start), char(end)) for start, end in spans]
        return RegexMatch(self, text, spans)

    def matches(self, text: str) -> bool:
        """Whether the pattern occurs in ``text`` (cheaper than :meth:`search`)."""
        data = text.encode("utf-8", "surrogatepass")  # (mitmproxy keeps bad bytes as surrogates)
        return self._find(_UNANCHORED, data, 0, len(data))[0] != _NULL

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"


@lru_cache(maxsize=65536)
def compile_regex(pattern: str) -> Regex:
    """:class:`Regex` (raises :class:`RegexError`), cached so that a load compiles each
    pattern once for validation and the engine."""
    return Regex(pattern)


# -- structure --------------------------------------------------------------------------------


def top_level_alternation(pattern: str) -> bool:
    """Whether ``pattern`` has a ``|`` outside every group and class (RE2 syntax)."""
    depth = 0
    in_class = False
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if pattern.startswith("\\Q", i):
                end = pattern.find("\\E", i + 2)
                i = n if end < 0 else end + 2
                continue
            i += 2
            continue
        if in_class:
            if pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                if end >= 0:
                    i = end + 2
                    continue
            if ch == "]":
                in_class = False
            i += 1
            continue
        if ch == "[":
            in_class = True
            i += 1
            if pattern.startswith("^", i):
                i += 1
            if pattern.startswith("]", i):  # a leading ] is a literal
                i += 1
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == "|" and depth == 0:
            return True
        i += 1
    return False


# -- RE2 → Python re -----------------------------------------------------------------------------


def to_python(pattern: str) -> str:
    """The same pattern in Python ``re`` syntax (for URLs: ASCII text), or ValueError with
    the construct Python's ``re`` lacks."""
    for marker, what in (
        ("\\p", "Unicode classes \\p{…}"),
        ("\\P", "Unicode classes \\P{…}"),
        ("\\C", "\\C"),
        ("\\Q", "\\Q…\\E quoting"),
        ("[[:", "POSIX classes [[:…:]]"),
        ("\\x{", "\\x{…} code points"),
    ):
        if marker in pattern:
            raise ValueError(f"uses {what}, which Python's re lacks")
    text = pattern.replace("(?<", "(?P<").replace("(?P<=", "(?<=").replace("(?P<!", "(?<!")
    text = re.sub(r"(?<!\\)((?:\\\\)*)\\z", r"\1\\Z", text)
    if re.search(r"\(\?[a-zA-Z]*U", text):
        raise ValueError("uses the ungreedy flag (?U), which Python's re lacks")
    if re.search(r"\{,", text):
        raise ValueError("uses {,n}, which Python's re reads as a repeat")
    try:
        with warnings.catch_warnings():  # e.g. "possible nested set": never on the screen
            warnings.simplefilter("ignore")
            re.compile(text)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ValueError(f"does not compile as a Python regex ({exc})") from None
    return text
