"""Python's own regex parser (``re._parser``, private but stable since 3.11), in one place:
the engine reads the literal host of an anchored regex from its tree, and the DNR and
mitmproxy exports check which constructs a regex uses."""

from __future__ import annotations

from re import _constants as sre_constants  # type: ignore[attr-defined]  # noqa: F401
from re import _parser as sre_parse  # type: ignore[attr-defined]  # noqa: F401
