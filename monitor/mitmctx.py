"""Options lent to mitmproxy code that reads ``ctx.options`` outside a running proxy.

mitmproxy's contentviews (12 reads ``protobuf_definitions``) and its curl export
(``export_preserve_original_ip``) look their options up on the global ``ctx``. With no
proxy running (``waylay open``), or a master that lacks the option, they get an option set
that has it for the length of the call (the caller is the only thing running then).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from mitmproxy import ctx, optmanager


@contextlib.contextmanager
def lent_options(name: str, declare: Callable[[optmanager.OptManager], None]) -> Iterator[None]:
    """``ctx.options`` has ``name`` inside the block: the current options if they do,
    else a fresh set on which ``declare`` added it; the previous state comes back."""
    current = getattr(ctx, "options", None)
    if current is not None and name in current:
        yield
        return
    options = optmanager.OptManager()
    declare(options)
    ctx.options = options  # type: ignore[assignment]
    try:
        yield
    finally:
        if current is None:
            with contextlib.suppress(AttributeError):
                del ctx.options
        else:
            ctx.options = current
