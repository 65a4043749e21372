"""One settings object for the whole monitor, built by the CLI and by the tests."""

from __future__ import annotations

import ipaddress
import math
import socket
from dataclasses import dataclass, field
from pathlib import Path

from policies import default_rules_path


class SettingsError(ValueError):
    """A setting that cannot work; the CLI prints it and exits 2."""


def default_confdir() -> Path:
    """mitmproxy's own CA folder, so an already-trusted mitmproxy CA keeps working."""
    return Path("~/.mitmproxy").expanduser()


def is_loopback(host: str) -> bool:
    """True when every address ``host`` stands for is a loopback one. The empty host and
    ``::``/``0.0.0.0`` are every interface; a name counts by what it resolves to (a name
    that does not resolve is not loopback: the bind would fail or reach the network)."""
    host = host.strip("[]")
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    addrs = {str(info[4][0]) for info in infos}
    try:
        return bool(addrs) and all(
            ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in addrs
        )
    except ValueError:
        return False


def listen_addresses(settings: Settings) -> list[tuple[str, str]]:
    """(mode spec, host) for every server mitmproxy would start: a mode's own ``@host:port``
    wins over ``--listen-host``, exactly as mitmproxy decides. Raises SettingsError for a
    mode spec mitmproxy cannot parse (``upstream:`` without a URL...)."""
    from mitmproxy.proxy.mode_specs import ProxyMode

    out = []
    for spec in settings.modes:
        try:
            mode = ProxyMode.parse(spec)
        except ValueError as e:
            raise SettingsError(f"--mode {spec!r}: {e}") from None
        out.append((spec, mode.listen_host(settings.listen_host)))
    return out


@dataclass
class Settings:
    listen_host: str = "127.0.0.1"
    """Interface the proxy listens on. Non-loopback needs --proxy-auth or --allow-remote."""
    listen_port: int = 8080
    """0 picks a free port; the bound one is reported once the socket accepts."""
    mode: str = "regular"
    """mitmproxy mode spec: regular, upstream:URL, reverse:URL, socks5."""
    extra_modes: tuple[str, ...] = ()
    """More mode specs (``--mode`` given several times), each its own server."""
    rules: Path = field(default_factory=default_rules_path)
    """The rules file (docs/rules.md)."""
    confdir: Path = field(default_factory=default_confdir)
    """Where mitmproxy's CA lives."""
    ask_timeout: float | None = 120.0
    """Seconds a paused event waits for a person before it gets its default outcome;
    None waits for ever (``--ask-timeout none``)."""
    ask_default: str = "continue"
    """continue|cancel: the timeout outcome of request, response and redirect events."""
    max_flows: int = 50_000
    """Flows kept in memory; the oldest finished ones go first."""
    har: Path | None = None
    """Write the session as HAR 1.2 here on exit."""
    headless: bool = False
    hold: bool = False
    """With no screen attached, ``ask`` waits up to ``ask_timeout`` for one (instead of
    getting its headless outcome at once)."""
    proxy_auth: str | None = None
    """USER:PASS that clients must send to the proxy."""
    allow_remote: bool = False
    upstream_ca: Path | None = None
    """Extra CA (PEM) trusted for upstream certificates, besides certifi's
    (mitmproxy's ssl_verify_upstream_trusted_ca)."""
    max_body_memory: int = 256 * 1024 * 1024
    """Bytes of request/response bodies kept across all flows; past it the oldest flows'
    bodies are dropped (the flows stay)."""
    stream_large_bodies: str = "2m"
    """Bodies larger than this are streamed through, not kept (bounded memory)."""
    batch_interval: float = 0.2
    """Seconds between snapshot batches sent to the screen."""
    max_header_size: int = 64 * 1024
    """Largest request/response head in bytes (monitor/limits.py): 431 past it."""
    idle_timeout: float = 300.0
    """Seconds without traffic before a connection is closed (paused flows excepted)."""
    connect_timeout: float = 10.0
    """Seconds to connect to an upstream before the client gets 504."""
    read_timeout: float = 60.0
    """Seconds from the request to the upstream's response headers before 504."""

    save: Path | None = None
    """Stream every finished flow to this file in mitmproxy's flow format (``--save``)."""
    session: Path | None = None
    """The disk-backed session store (SQLite) every finished flow goes to (``--session``)."""

    @property
    def modes(self) -> list[str]:
        return [self.mode, *self.extra_modes]

    def validate(self) -> None:
        if not (0 <= self.listen_port <= 65535):
            raise SettingsError(f"--listen-port {self.listen_port} is not a port (0-65535)")
        if self.ask_default not in ("continue", "cancel"):
            raise SettingsError(
                f"--ask-default must be continue or cancel, not {self.ask_default!r}"
            )
        if self.ask_timeout is not None and not (
            math.isfinite(self.ask_timeout) and 0 < self.ask_timeout <= MAX_ASK_TIMEOUT
        ):
            raise SettingsError(
                f"--ask-timeout {self.ask_timeout}: expected seconds in (0, {MAX_ASK_TIMEOUT}],"
                " or none to wait for ever"
            )
        if self.max_flows < 1:
            raise SettingsError("--max-flows must be at least 1")
        if self.max_body_memory < 0:
            raise SettingsError("--max-body-memory must not be negative")
        if self.proxy_auth is not None:
            user, sep, password = self.proxy_auth.partition(":")
            if not sep or not user or not password:
                raise SettingsError("--proxy-auth takes USER:PASS, both non-empty")
        for spec in self.modes:
            kind, _, rest = spec.rpartition("@")[0 if "@" in spec else 2].partition(":")
            if kind not in ("regular", "upstream", "reverse", "socks5"):
                raise SettingsError(
                    f"--mode {spec!r}: expected regular, upstream:URL, reverse:URL or socks5"
                )
            if kind in ("upstream", "reverse") and not rest.strip():
                raise SettingsError(
                    f"--mode {spec!r}: {kind} needs a URL, e.g. {kind}:http://127.0.0.1:3128"
                )
        for spec, host in listen_addresses(self):
            if is_loopback(host) or self.proxy_auth or self.allow_remote:
                continue
            where = "--listen-host" if host == self.listen_host else f"--mode {spec!r}"
            raise SettingsError(
                f"refusing to listen on {host or 'every interface'} ({where}): that would be an"
                " open proxy. Add --proxy-auth USER:PASS, or --allow-remote if you really mean it."
            )


MAX_ASK_TIMEOUT = 7 * 24 * 3600
"""A week: longer is not a timeout (use ``--ask-timeout none``)."""
