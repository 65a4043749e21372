"""One settings object for the whole monitor, built by the CLI and by the tests."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path


class SettingsError(ValueError):
    """A setting that cannot work; the CLI prints it and exits 2."""


def default_confdir() -> Path:
    """mitmproxy's own CA folder, so an already-trusted mitmproxy CA keeps working."""
    return Path("~/.mitmproxy").expanduser()


def default_rules_path() -> Path:
    env = os.environ.get("WAYLAY_RULES")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(base) / "waylay" / "rules.toml"


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Settings:
    listen_host: str = "127.0.0.1"
    """Interface the proxy listens on. Non-loopback needs --proxy-auth or --allow-remote."""
    listen_port: int = 8080
    """0 picks a free port; the bound one is reported once the socket accepts."""
    mode: str = "regular"
    """mitmproxy mode spec: regular, upstream:URL, reverse:URL, socks5."""
    rules: Path = field(default_factory=default_rules_path)
    """The rules file (SPEC §5)."""
    confdir: Path = field(default_factory=default_confdir)
    """Where mitmproxy's CA lives."""
    ask_timeout: float = 120.0
    """Seconds a paused event waits for a person before it gets its default outcome."""
    ask_default: str = "continue"
    """continue|cancel: the timeout outcome of request, response and redirect events."""
    max_flows: int = 50_000
    """Flows kept in memory; the oldest finished ones go first."""
    har: Path | None = None
    """Write the session as HAR 1.2 here on exit."""
    headless: bool = False
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
    save: Path | None = None
    """Stream every finished flow to this file in mitmproxy's flow format (``--save``)."""
    session: Path | None = None
    """The disk-backed session store (SQLite) every finished flow goes to (``--session``)."""

    def validate(self) -> None:
        if not (0 <= self.listen_port <= 65535):
            raise SettingsError(f"--listen-port {self.listen_port} is not a port (0-65535)")
        if self.ask_default not in ("continue", "cancel"):
            raise SettingsError(
                f"--ask-default must be continue or cancel, not {self.ask_default!r}"
            )
        if self.ask_timeout <= 0:
            raise SettingsError("--ask-timeout must be a positive number of seconds")
        if self.max_flows < 1:
            raise SettingsError("--max-flows must be at least 1")
        if self.proxy_auth is not None and ":" not in self.proxy_auth:
            raise SettingsError("--proxy-auth takes USER:PASS")
        if not is_loopback(self.listen_host) and not (self.proxy_auth or self.allow_remote):
            raise SettingsError(
                f"refusing to listen on {self.listen_host}: that would be an open proxy. "
                "Add --proxy-auth USER:PASS, or --allow-remote if you really mean it."
            )
        if self.save is not None:
            save = Path(self.save).expanduser()
            if save.is_dir():
                raise SettingsError(f"--save {self.save}: is a folder, not a file")
            if not save.parent.is_dir():
                raise SettingsError(f"--save {self.save}: the folder {save.parent} does not exist")
        if self.session is not None and Path(self.session).expanduser().is_dir():
            raise SettingsError(f"--session {self.session}: is a folder, not a file")
        kind = self.mode.split(":", 1)[0]
        if kind not in ("regular", "upstream", "reverse", "socks5"):
            raise SettingsError(
                f"--mode {self.mode!r}: expected regular, upstream:URL, reverse:URL or socks5"
            )
        if kind in ("upstream", "reverse") and ":" not in self.mode:
            raise SettingsError(f"--mode {kind} needs a URL, e.g. {kind}:http://127.0.0.1:3128")
