"""Faster equivalents of mitmproxy functions on every request's path, in the proxy process.

``Headers.get_all`` is behind every header read (``headers["x"]``, ``.get``, ``in``):
mitmproxy's own, through ``MultiDict.get_all``, makes two Python calls for each header of
the message (lowering the name through ``_kconv``, decoding the value through
``_native``) for every lookup, and mitmproxy itself reads several headers a few times per
request (the body size of each message, ``Host``, ``Connection``...): about a tenth of the
proxy's time per request. The one here lowers and compares in one comprehension and
returns the same list (tests/fuzz/test_fuzz_speedups.py checks it against mitmproxy's on
random headers). Installed once, by ``EmbeddedProxy``; ``uninstall`` restores mitmproxy's.

``MessageData.__post_init__`` type-checks the ten fields of every request's and every
response's data (mitmproxy runs it unless Python runs with ``-O``) through
``check_option_type``, which formats a TypeError's message before it checks anything:
about 30 µs a request, 4% of the proxy's time at concurrency 1. The one here checks each
field with one ``isinstance`` against the classes ``check_option_type`` accepts for its
type, worked out once per class, and asks ``check_option_type`` only when that fails
(for its error) or for a type it cannot reduce to classes. ``_Option.current`` (every
``ctx.options.x``; mitmproxy's HTTP layer reads four options a message) deep-copies the
value twice when it is the default; the one here hands immutable values back as they
are, which is what ``deepcopy`` gives for them, and deep-copies the rest once.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing

from mitmproxy import http, optmanager
from mitmproxy.utils import typecheck

_GET_ALL = http.Headers.get_all
_POST_INIT: typing.Callable[[http.MessageData], None] | None = http.MessageData.__dict__.get(
    "__post_init__"
)  # (none under -O)
_CURRENT = optmanager._Option.current
_always_bytes = http._always_bytes


def headers_get_all(self: http.Headers, name: str | bytes) -> list[str]:
    """``Headers.get_all``: the values of every header called ``name`` (any case), in order."""
    key = _always_bytes(name).lower()
    return [v.decode("utf-8", "surrogateescape") for k, v in self.fields if k.lower() == key]


headers_get_all.__doc__ = _GET_ALL.__doc__


def accepted_classes(typeinfo: typing.Any) -> tuple[type, ...] | None:
    """The classes ``check_option_type`` accepts a value of for ``typeinfo``, when that
    is a class or a union of classes (a float field takes an int too); None otherwise."""
    origin = typing.get_origin(typeinfo)
    if origin is typing.Union or origin is types.UnionType:
        found: list[type] = []
        for each in typing.get_args(typeinfo):
            classes = accepted_classes(each)
            if classes is None:
                return None
            found += classes
        return tuple(found)
    if origin is not None or typeinfo is typing.Any or not isinstance(typeinfo, type):
        return None
    if typeinfo in (typing.TextIO, typing.BinaryIO):  # (checked by a read method)
        return None
    return (float, int) if typeinfo is float else (typeinfo,)


_CHECKS: dict[type, tuple[tuple[str, tuple[type, ...] | None, typing.Any], ...]] = {}


def message_data_post_init(self: http.MessageData) -> None:
    """``MessageData.__post_init__``: every field of the type its annotation says."""
    checks = _CHECKS.get(type(self))
    if checks is None:
        checks = _CHECKS[type(self)] = tuple(
            (f.name, accepted_classes(f.type), f.type) for f in dataclasses.fields(self)
        )
    for name, classes, typeinfo in checks:
        value = getattr(self, name)
        if classes is None or not isinstance(value, classes):
            typecheck.check_option_type(name, value, typeinfo)  # raises what mitmproxy's does


_IMMUTABLE = frozenset({type(None), bool, int, float, str, bytes})


def option_current(self: optmanager._Option) -> typing.Any:
    """``_Option.current``: the option's value (or default), as a copy."""
    value = self._default if self.value is optmanager.unset else self.value
    if type(value) in _IMMUTABLE:
        return value
    return copy.deepcopy(value)


option_current.__doc__ = _CURRENT.__doc__


def install() -> None:
    """Use the faster functions (idempotent)."""
    setattr(http.Headers, "get_all", headers_get_all)  # noqa: B010 (a method replaced)
    if _POST_INIT is not None:  # (not there to speed up under -O)
        setattr(http.MessageData, "__post_init__", message_data_post_init)  # noqa: B010
    setattr(optmanager._Option, "current", option_current)  # noqa: B010


def uninstall() -> None:
    setattr(http.Headers, "get_all", _GET_ALL)  # noqa: B010
    if _POST_INIT is not None:
        setattr(http.MessageData, "__post_init__", _POST_INIT)  # noqa: B010
    setattr(optmanager._Option, "current", _CURRENT)  # noqa: B010


def original_headers_get_all(headers: http.Headers, name: str | bytes) -> list[str]:
    """mitmproxy's own ``Headers.get_all``, whichever is installed (for the tests)."""
    return _GET_ALL(headers, name)


def original_message_data_post_init(data: http.MessageData) -> None:
    """mitmproxy's own ``MessageData.__post_init__`` (for the tests)."""
    assert _POST_INIT is not None
    _POST_INIT(data)


def original_option_current(option: optmanager._Option) -> typing.Any:
    """mitmproxy's own ``_Option.current`` (for the tests)."""
    return _CURRENT(option)
