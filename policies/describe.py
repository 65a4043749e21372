"""A rule in a few words: its conditions and its action on one line each, as
``waylay rules list`` and the rules screen show them (secrets by name only)."""

from __future__ import annotations

from .match_pattern import ALL_URLS
from .model import Rule


def condition_parts(rule: Rule) -> list[str]:
    """The rule's conditions, one short phrase each."""
    parts: list[str] = []
    urls = [u for u in rule.urls if u != ALL_URLS]
    if urls:
        parts.append(" ".join(urls))
    if rule.exclude_urls:
        parts.append("not " + " ".join(rule.exclude_urls))
    if rule.regex is not None:
        parts.append(f"regex {rule.regex}")
    if rule.filter is not None:
        parts.append(f"filter {rule.filter}")
    if rule.methods:
        parts.append(",".join(rule.methods))
    if rule.types:
        parts.append("types " + ",".join(rule.types))
    if rule.status_condition:
        parts.append("status " + ",".join(str(s) for s in sorted(rule.status_condition)))
    if rule.realm is not None:
        parts.append(f"realm {rule.realm!r}")
    if rule.proxy is not None:
        parts.append("proxy 407" if rule.proxy else "server 401")
    if rule.fingerprint is not None:
        parts.append(
            f"fingerprint {rule.fingerprint[:23]}…"
            if len(rule.fingerprint) > 24
            else f"fingerprint {rule.fingerprint}"
        )
    return parts


def conditions_summary(rule: Rule, sep: str = "; ") -> str:
    """The rule's conditions in one compact line (``any`` when it has none)."""
    return sep.join(condition_parts(rule)) or "any"


def action_summary(rule: Rule) -> str:
    """The action with its parameters (secrets by name only)."""
    action = rule.action
    if rule.url is not None:
        return f"{action} → {rule.url}"
    if action == "respond":
        body = ""
        if rule.body_file is not None:
            body = f" file {rule.body_file}"
        elif rule.body is not None:
            body = f" {len(rule.body.encode())} bytes"
        return f"respond {rule.respond_code}{body}"
    if action == "credentials":
        return f"credentials {rule.username} (secret {rule.secret})"
    return action
