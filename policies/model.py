"""The rule model (docs/rules.md): events, actions, conditions, defaults, the rule set.

These pydantic models are the single definition of what a valid rule is; the rules file,
import/export and the screen's "remember" dialog all build :class:`Rule` values and get
the same errors. A :class:`Rule` holds secret *names* only, never a secret value.

``status`` has two meanings, chosen by the event:

- ``event = "request"``: ``status`` is what a ``respond`` action answers with (default
  200). It is an action parameter, so it is only allowed with ``respond``.
- ``event = "response"``, ``"redirect"`` or ``"auth"``: ``status`` is a *condition*, an
  integer or a list of integers the upstream status must be one of. The status a
  response-event ``respond`` answers with is ``respond_status`` (default 200).

``fingerprint`` is a condition of certificate rules: ``"sha256:AA:BB:…"``, compared
after :func:`normalize_fingerprint` (case and colons do not matter).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .match_pattern import ALL_URLS, MatchPatternError, compile_pattern
from .regex import RegexError, compile_regex
from .urls import url_error

__all__ = [
    "ACTIONS_BY_EVENT",
    "ALL_ACTIONS",
    "DEFAULT_ACTIONS",
    "DEFAULT_CHOICES",
    "EVENTS",
    "PARAM_ACTIONS",
    "RESOURCE_TYPES",
    "Defaults",
    "Problem",
    "Rule",
    "RuleError",
    "RuleSetModel",
    "compile_regex",
    "normalize_fingerprint",
    "problems_from_validation_error",
    "validate_rule",
]

Event = Literal["request", "response", "redirect", "auth", "certificate", "cookies"]

EVENTS: Final = ("request", "response", "redirect", "auth", "certificate", "cookies")

ACTIONS_BY_EVENT: Final[dict[str, tuple[str, ...]]] = {
    "request": ("continue", "cancel", "redirect", "rewrite", "respond", "ask"),
    "response": ("continue", "cancel", "respond", "ask"),
    "redirect": ("follow", "rewrite", "cancel", "ask"),
    "auth": ("credentials", "cancel", "ask"),
    "certificate": ("allow", "reject", "ask"),
    "cookies": ("allow", "strip"),
}
ALL_ACTIONS: Final = frozenset(a for actions in ACTIONS_BY_EVENT.values() for a in actions)

DEFAULT_ACTIONS: Final[dict[str, str]] = {
    "request": "continue",
    "response": "continue",
    "redirect": "follow",
    "auth": "ask",
    "certificate": "ask",
    "cookies": "allow",
}
"""What happens to an event no rule matches, unless ``[defaults]`` says otherwise."""

PARAM_ACTIONS: Final = frozenset({"redirect", "rewrite", "respond", "credentials"})
"""Actions that need parameters, hence cannot be a ``[defaults]`` outcome."""

DEFAULT_CHOICES: Final[dict[str, tuple[str, ...]]] = {
    event: tuple(a for a in actions if a not in PARAM_ACTIONS)
    for event, actions in ACTIONS_BY_EVENT.items()
}

ResourceType = Literal[
    "main_frame",
    "sub_frame",
    "stylesheet",
    "script",
    "image",
    "font",
    "object",
    "xmlhttprequest",
    "ping",
    "media",
    "websocket",
    "other",
]
RESOURCE_TYPES: Final = get_args(ResourceType)

_URL_ACTIONS: Final = {("request", "redirect"), ("request", "rewrite"), ("redirect", "rewrite")}
_STATUS_CONDITION_EVENTS: Final = frozenset({"response", "redirect", "auth"})
_ID = re.compile(r"^[^\s\x00-\x1f\x7f]+$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_BACKREF = re.compile(r"\\(\d)")
_HEX = re.compile(r"^[0-9a-f]{64}$")

Problem = tuple[tuple[str | int, ...], str]
"""Where (a key path such as ``("urls", 1)``) and what is wrong."""


class RuleError(ValueError):
    """Cross-field problems of one rule, each tied to the field it concerns."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in problems))


def normalize_fingerprint(value: str) -> str:
    """``"sha256:AA:bb:…"`` or bare hex → lower-case hex without separators.

    Raises ValueError when it is not a SHA-256 fingerprint (64 hex digits).
    """
    text = value.strip().lower()
    if text.startswith("sha256:"):
        text = text[len("sha256:") :]
    elif text.startswith("sha256/"):
        text = text[len("sha256/") :]
    text = text.replace(":", "").replace(" ", "")
    if not _HEX.match(text):
        raise ValueError(
            f"not a SHA-256 fingerprint: {value!r} (expected 'sha256:' and 64 hex digits)"
        )
    return text


def _check_filter(expr: str) -> None:
    from mitmproxy import flowfilter  # only rules with `filter` need mitmproxy

    try:
        parsed = flowfilter.parse(expr)
    except ValueError as exc:
        raise ValueError(f"invalid mitmproxy filter expression {expr!r}: {exc}") from None
    if parsed is None:
        raise ValueError(f"invalid mitmproxy filter expression {expr!r}")


StrTuple = tuple[StrictStr, ...]


class Rule(BaseModel):
    """One ``[[rule]]`` of the rules file. Immutable; make a changed copy with ``replace``.

    Field order is the order in which waylay writes a rule's keys.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: StrictStr
    """Unique within the file; shown in traces, ``rules list`` and headless output."""
    event: Event = "request"
    # conditions
    urls: StrTuple = (ALL_URLS,)
    """WebExtension match patterns; the URL must match one of them."""
    exclude_urls: StrTuple = ()
    """Match patterns; a URL matching any of them does not match the rule."""
    regex: StrictStr | None = None
    """RE2 (see :mod:`policies.regex`) searched in the full URL; its groups feed
    ``\\1``..``\\9`` in ``url``."""
    filter: StrictStr | None = None
    """A mitmproxy filter expression; never matches an event without a flow."""
    methods: StrTuple | None = None
    types: tuple[ResourceType, ...] | None = None
    status: int | tuple[int, ...] | None = None
    """Respond status (request events) or a status condition (response/redirect/auth)."""
    realm: StrictStr | None = None
    """auth: the challenge's realm must equal this."""
    proxy: StrictBool | None = None
    """auth: True only for 407 from an upstream proxy, False only for 401; absent: both."""
    fingerprint: StrictStr | None = None
    """certificate: the SHA-256 fingerprint the certificate must have."""
    # the decision
    action: StrictStr
    url: StrictStr | None = None
    """redirect/rewrite target; with ``regex``, ``\\0``..``\\9`` make it a substitution."""
    respond_status: StrictInt | None = None
    """The status a response-event ``respond`` sends (default 200)."""
    headers: dict[StrictStr, StrictStr] | None = None
    body: StrictStr | None = None
    body_file: StrictStr | None = None
    """Path of the response body, relative to the rules file's folder."""
    username: StrictStr | None = None
    secret: StrictStr | None = None
    """The NAME of a secret in the secrets store, never the value."""
    # bookkeeping
    priority: StrictInt = 1
    enabled: StrictBool = True
    times: Annotated[StrictInt, Field(ge=1)] | None = None
    """Applies this many more times, then disables itself."""
    note: StrictStr | None = None

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("must be non-empty, without spaces or control characters")
        return value

    @field_validator("urls", "exclude_urls")
    @classmethod
    def _check_patterns(cls, value: tuple[str, ...], info: Any) -> tuple[str, ...]:
        if info.field_name == "urls" and not value:
            raise ValueError("must not be empty (leave it out to match every URL)")
        for pattern in value:
            try:
                compile_pattern(pattern)
            except MatchPatternError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("regex")
    @classmethod
    def _check_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compile_regex(value)
            except RegexError as exc:
                raise ValueError(
                    f"invalid regular expression {_short(value)} (RE2): {exc}"
                ) from None
        return value

    @field_validator("filter")
    @classmethod
    def _check_filter(cls, value: str | None) -> str | None:
        if value is not None:
            _check_filter(value)
        return value

    @field_validator("methods")
    @classmethod
    def _check_methods(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must not be empty (leave it out to match every method)")
        for method in value:
            if not _TOKEN.match(method):
                raise ValueError(f"invalid HTTP method {method!r}")
        return tuple(m.upper() for m in value)

    @field_validator("types")
    @classmethod
    def _check_types(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("must not be empty (leave it out to match every type)")
        return value

    @field_validator("status", mode="before")
    @classmethod
    def _coerce_status(cls, value: Any) -> Any:
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, list | tuple) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            return tuple(value)
        raise ValueError(f"must be an integer or a list of integers, got {_short(value)}")

    @field_validator("status", "respond_status")
    @classmethod
    def _check_status(cls, value: int | tuple[int, ...] | None) -> int | tuple[int, ...] | None:
        codes = value if isinstance(value, tuple) else () if value is None else (value,)
        if isinstance(value, tuple) and not value:
            raise ValueError("must not be empty")
        for code in codes:
            if not 100 <= code <= 599:
                raise ValueError(f"{code} is not an HTTP status (100-599)")
        return value

    @field_validator("fingerprint")
    @classmethod
    def _check_fingerprint(cls, value: str | None) -> str | None:
        if value is not None:
            normalize_fingerprint(value)
        return value

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name, text in (value or {}).items():
            if not _TOKEN.match(name):
                raise ValueError(f"invalid header name {name!r}")
            if "\r" in text or "\n" in text or "\x00" in text:
                raise ValueError(f"header {name!r}: value contains a line break")
        return value

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: str | None) -> str | None:
        if value is not None and not _SECRET_NAME.match(value):
            raise ValueError("must be a secret NAME (letters, digits, '-' and '_'), not a password")
        return value

    @field_validator("body_file", "username", "url")
    @classmethod
    def _check_non_empty(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _check_combination(self) -> Rule:
        problems = self._combination_problems()
        if problems:
            raise RuleError(problems)
        return self

    def _combination_problems(self) -> list[Problem]:
        event, action = self.event, self.action
        problems: list[Problem] = []

        def bad(field: str, message: str) -> None:
            problems.append(((field,), message))

        allowed = ACTIONS_BY_EVENT[event]
        if action not in allowed:
            what = "unknown action" if action not in ALL_ACTIONS else "not an action of"
            if action in ALL_ACTIONS:
                bad(
                    "action",
                    f"{action!r} is {what} {event} events; use one of: {', '.join(allowed)}",
                )
            else:
                bad("action", f"{what} {action!r}; {event} events accept: {', '.join(allowed)}")
            return problems

        if (event, action) in _URL_ACTIONS:
            if self.url is None:
                bad("action", f"{action} needs a `url`")
            else:
                problems.extend(self._url_problems())
        elif self.url is not None:
            bad("url", "only redirect and rewrite actions take a `url`")

        if event == "request":
            if self.status is not None:
                if action != "respond":
                    bad(
                        "status",
                        "on request events `status` is the respond status; only `respond` takes it",
                    )
                elif isinstance(self.status, tuple):
                    bad("status", "the respond status must be a single integer")
        elif event in _STATUS_CONDITION_EVENTS:
            pass
        elif self.status is not None:
            bad("status", f"{event} events have no status to match")

        if self.respond_status is not None and (event, action) != ("response", "respond"):
            hint = " (request events use `status`)" if event == "request" else ""
            bad("respond_status", f"only a response-event `respond` takes it{hint}")

        if action != "respond":
            for field in ("headers", "body", "body_file"):
                if getattr(self, field) is not None:
                    bad(field, f"only `respond` takes `{field}`")
        elif self.body is not None and self.body_file is not None:
            bad("body_file", "give `body` or `body_file`, not both")

        if action == "credentials":
            for field in ("username", "secret"):
                if getattr(self, field) is None:
                    bad("action", f"credentials needs `{field}`")
        else:
            for field in ("username", "secret"):
                if getattr(self, field) is not None:
                    bad(field, f"only `credentials` takes `{field}`")

        if event != "auth":
            for field in ("realm", "proxy"):
                if getattr(self, field) is not None:
                    bad(field, f"`{field}` is a condition of auth events only")
        if event != "certificate" and self.fingerprint is not None:
            bad("fingerprint", "`fingerprint` is a condition of certificate events only")
        if event == "certificate":
            for field in ("methods", "types"):
                if getattr(self, field) is not None:
                    bad(field, f"certificate events have no request, hence no `{field}`")
        return problems

    def _url_problems(self) -> list[Problem]:
        url = self.url or ""
        refs = [int(n) for n in _BACKREF.findall(url)]
        if refs:
            if self.regex is None:
                return [(("url",), f"uses \\{refs[0]} but the rule has no `regex`")]
            groups = compile_regex(self.regex).groups
            too_high = [n for n in refs if n > groups]
            if too_high:
                return [
                    (
                        ("url",),
                        f"uses \\{too_high[0]} but `regex` has {groups} group{'s' if groups != 1 else ''}",
                    )
                ]
            return []
        if url_error(url, ("http", "https", "ws", "wss")) is not None:
            return [(("url",), f"{url!r} is not an absolute http(s) URL")]
        return []

    # -- convenience ----------------------------------------------------------------

    @property
    def url_is_substitution(self) -> bool:
        """Whether ``url`` is a regex substitution (has ``\\0``..``\\9`` and a ``regex``)."""
        return self.regex is not None and self.url is not None and bool(_BACKREF.search(self.url))

    @property
    def status_condition(self) -> frozenset[int] | None:
        """The statuses this rule requires, or None (any), for response/redirect/auth."""
        if self.event not in _STATUS_CONDITION_EVENTS or self.status is None:
            return None
        return frozenset(self.status if isinstance(self.status, tuple) else (self.status,))

    @property
    def respond_code(self) -> int | None:
        """The status a ``respond`` action answers with, or None for other actions."""
        if self.action != "respond":
            return None
        if self.event == "request":
            return self.status if isinstance(self.status, int) else 200
        return self.respond_status or 200

    def warnings(self) -> list[str]:
        """Things that are valid but probably not what the user wants."""
        found = []
        if self.event == "certificate" and self.action == "allow" and self.fingerprint is None:
            found.append(
                "allows ANY certificate for its URLs, even a forged one: add a `fingerprint`"
            )
        if self.regex is not None and re.search(r"(?<!\\)\{,\d*\}", self.regex):
            found.append("`regex` has {,n}, which RE2 reads as literal text: write {0,n}")
        if self.regex is not None and re.search(r"(?<!\\)\{\d{10,}", self.regex):
            found.append(
                "`regex` has a repeat count RE2 reads as literal text (counts go up to 1000)"
            )
        return found

    def replace(self, **fields: Any) -> Rule:
        """A validated copy with ``fields`` changed; a field set to None is removed."""
        data = self.to_dict()
        for key, value in fields.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        return Rule.model_validate(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, dicts) with only the keys that differ from the defaults.

        ``id``, ``event`` and ``action`` are always present; key order is field order.
        This is what the rules file writes and what JSON export emits.
        """
        data = self.model_dump(mode="json", exclude_defaults=True)
        out: dict[str, Any] = {"id": self.id, "event": self.event}
        for key, value in data.items():
            if key not in out:
                out[key] = value
        out["action"] = self.action
        ordered = {k: out[k] for k in type(self).model_fields if k in out}
        return ordered


class Defaults(BaseModel):
    """``[defaults]``: the outcome of an event that no rule matches (docs/rules.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request: Literal["continue", "cancel", "ask"] = "continue"
    response: Literal["continue", "cancel", "ask"] = "continue"
    redirect: Literal["follow", "cancel", "ask"] = "follow"
    auth: Literal["cancel", "ask"] = "ask"
    certificate: Literal["allow", "reject", "ask"] = "ask"
    cookies: Literal["allow", "strip"] = "allow"

    def action_for(self, event: str) -> str:
        return getattr(self, event)

    def warnings(self) -> list[str]:
        if self.certificate == "allow":
            return ["[defaults] certificate = 'allow' lets every bad certificate through"]
        return []


class RuleSetModel(BaseModel):
    """A whole rules file as data: ``version``, ``[defaults]`` and the ``[[rule]]`` list.

    The TOML key of the list is ``rule`` (one ``[[rule]]`` per rule); the attribute is
    ``rules``. JSON export uses the same schema (``model_dump(by_alias=True)``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    version: Literal[1] = 1
    defaults: Defaults = Field(default_factory=Defaults)
    rules: tuple[Rule, ...] = Field(default=(), alias="rule")

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSetModel:
        seen: dict[str, int] = {}
        problems: list[Problem] = []
        for index, rule in enumerate(self.rules):
            if rule.id in seen:
                problems.append(
                    (
                        ("rule", index, "id"),
                        f"duplicate id {rule.id!r} (first used by rule {seen[rule.id] + 1})",
                    )
                )
            else:
                seen[rule.id] = index
        if problems:
            raise RuleError(problems)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain data in the file's schema, rules without default-valued keys."""
        data: dict[str, Any] = {"version": self.version}
        defaults = self.defaults.model_dump(exclude_defaults=True)
        if defaults:
            data["defaults"] = defaults
        data["rule"] = [rule.to_dict() for rule in self.rules]
        return data


def problems_from_validation_error(exc: ValidationError) -> list[Problem]:
    """Turn pydantic's errors into ``(key path, message)`` pairs a person can read."""
    problems: list[Problem] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, RuleError):
            problems.extend((loc + sub, msg) for sub, msg in cause.problems)
            continue
        kind = err["type"]
        names = [str(p) for p in loc if isinstance(p, str)]
        field = names[-1] if names else "rule"
        if kind == "extra_forbidden":
            message = f"unknown field {field!r}"
            if field == "rules":
                message += " (write each rule as a [[rule]] table)"
        elif kind == "missing":
            message = f"`{field}` is required"
        elif kind == "value_error":
            message = f"{field}: {err['msg'].removeprefix('Value error, ')}"
        elif kind == "literal_error" and loc == ("version",):
            message = f"unsupported version {_short(err['input'])} (this waylay reads version 1)"
        elif kind == "literal_error":
            expected = (err.get("ctx") or {}).get("expected", "")
            message = f"{field}: {_short(err['input'])} is not one of {expected}"
        elif kind in _TYPE_MESSAGES:
            message = f"{field}: must be {_TYPE_MESSAGES[kind]}, got {_short(err.get('input'))}"
        else:
            message = (
                f"{field}: {err['msg'][:1].lower()}{err['msg'][1:]}, got {_short(err.get('input'))}"
            )
        problems.append((loc, message))
    return problems


_TYPE_MESSAGES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "greater_than_equal": "at least 1",
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_rule(data: Mapping[str, Any]) -> tuple[Rule | None, list[Problem]]:
    """Validate one rule's data: the rule, or None and every problem found."""
    try:
        return Rule.model_validate(dict(data)), []
    except ValidationError as exc:
        return None, problems_from_validation_error(exc)
