"""Text from the network or a file, made safe to print on a terminal.

A URL, a header or a rule can carry control characters: ESC sequences that move the
cursor, retitle the window or rewrite what is already on screen, a carriage return that
hides the start of a line, bidi overrides that reorder it. Every line waylay prints and
every text the screen shows passes through ``printable``: such characters become
visible escapes (``\\x1b``, ``\\u202e``); everything else, non-ASCII included, is kept.
"""

from __future__ import annotations

import re

__all__ = ["printable", "printable_text"]

# C0 controls and DEL, C1 controls, bidi embeddings/overrides/isolates, line and
# paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` with every control character shown as an escape; one line always."""
    s = text if isinstance(text, str) else str(text)
    return _UNSAFE.sub(_escape, s) if _UNSAFE.search(s) else s


_UNSAFE_IN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable_text(text: str) -> str:
    """Like ``printable`` for text of several lines (a body): newlines (CRLF too) and
    tabs are kept, a lone carriage return and every other control character become
    escapes."""
    if not _UNSAFE_IN_TEXT.search(text):
        return text
    return _UNSAFE_IN_TEXT.sub(_escape, text.replace("\r\n", "\n"))
