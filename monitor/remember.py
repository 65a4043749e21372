"""Turn a person's answer into a rule: "remember" in the decision dialogs (docs/keys.md)."""

from __future__ import annotations

from urllib.parse import urlsplit

import tomlkit

from policies import RulesFile
from policies.rules_file import toml_value
from widgets.model import Answer


class RememberError(ValueError):
    pass


def scope_pattern(url: str, scope: str, pattern: str | None) -> str:
    """The match pattern for a remember scope: this URL, this host, or the typed one."""
    parts = urlsplit(url)
    if scope == "url":
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{path}"
    if scope == "host":
        return (
            f"*://{parts.hostname}/*"
            if parts.scheme in ("http", "https")
            else (f"{parts.scheme}://{parts.hostname}/*")
        )
    if scope == "pattern":
        if not pattern:
            raise RememberError("type a match pattern to remember")
        return pattern
    raise RememberError(f"unknown scope {scope!r}")


def rule_fields(
    url: str,
    event: str,
    answer: Answer,
    *,
    realm: str | None = None,
    fingerprint: str | None = None,
    secret: str | None = None,
    proxy: bool | None = None,
    urls: list[str] | None = None,
) -> dict:
    """The fields of the rule an answer remembers (not yet validated, no id). ``urls``
    replaces the scope's pattern (auth for an upstream proxy: every URL)."""
    fields: dict = {"event": event}
    fields["urls"] = urls or [scope_pattern(url, answer.remember, answer.pattern)]
    fields["action"] = answer.action
    p = answer.params
    if answer.action in ("redirect", "rewrite"):
        fields["url"] = p["url"]
    elif answer.action == "respond":
        status = int(p.get("status") or 200)
        if event == "request":
            fields["status"] = status
        else:
            fields["respond_status"] = status
        headers = dict(p.get("headers") or {})
        if headers:
            fields["headers"] = headers
        body = p.get("body") or ""
        fields["body"] = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    elif answer.action == "credentials":
        fields["username"] = p["username"]
        fields["secret"] = secret
    if realm:
        fields["realm"] = realm
    if proxy is not None:
        fields["proxy"] = proxy
    if fingerprint:
        fields["fingerprint"] = fingerprint
    if answer.action == "continue" and event == "redirect":
        fields["action"] = "follow"
    return fields


def rule_toml(rule_id: str, fields: dict) -> str:
    doc = tomlkit.document()
    aot = tomlkit.aot()
    table = tomlkit.table()
    table.add("id", rule_id)
    for k, v in fields.items():
        table.add(k, toml_value(v))  # as RulesFile writes it (inline tables, literal strings)
    aot.append(table)
    doc.add("rule", aot)
    return tomlkit.dumps(doc)


def new_rule_id(rules: RulesFile, url: str, event: str) -> str:
    host = urlsplit(url).hostname or "rule"
    stem = f"{event}-{host}".replace(".", "-").replace(":", "-")
    return rules.new_id(stem)
