"""Debian's headless Chromium as a test client: a fresh profile, a temporary HOME whose
NSS database trusts the given CAs (``certutil`` from libnss3-tools), optionally a proxy
(waylay) and unpacked extensions. Everything stays on loopback: the machine's network is
closed, and Chromium's own background traffic is switched off."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

# Debian's /usr/bin/chromium is a wrapper that adds /etc/chromium.d's flags (among them
# --disable-pings, which would switch off <a ping>): run the binary itself when it is there.
CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
        if path:
            return path
    return None


def missing() -> str | None:
    """Why the browser tests cannot run here, or None. `.ci/run` installs both packages."""
    if find_chromium() is None:
        return "chromium is not installed (apt-get install chromium; .ci/run does it)"
    if shutil.which("certutil") is None:
        return "certutil is not installed (apt-get install libnss3-tools; .ci/run does it)"
    return None


def nss_home(home: Path, cas: dict[str, Path]) -> Path:
    """A HOME whose NSS database (what Chromium and Firefox on Linux trust) holds ``cas``
    (nickname -> PEM file), trusted for TLS servers: the README's set-up, verbatim."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["certutil", "-d", f"sql:{db}", "-N", "--empty-password"],
        check=True,
        capture_output=True,
    )
    for nickname, pem in cas.items():
        subprocess.run(
            ["certutil", "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", nickname, "-i", str(pem)],
            check=True,
            capture_output=True,
        )
    return home


class Chromium:
    """One headless Chromium process; ``close()`` ends it and its children (its own
    process group)."""

    def __init__(
        self,
        url: str,
        *,
        home: Path,
        proxy_port: int | None = None,
        extensions: list[Path] = (),
        resolver_rules: str | None = None,
        extra: list[str] = (),
    ) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=home))
        args = [
            find_chromium() or "chromium",
            "--headless",
            "--no-sandbox",  # as root (CI containers); harmless otherwise
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-breakpad",
            "--disable-features=DisableLoadExtensionCommandLineSwitch,MediaRouter,OptimizationHints",
            "--autoplay-policy=no-user-gesture-required",
            f"--user-data-dir={self.profile}",
            *extra,
        ]
        if proxy_port is not None:
            args += [
                f"--proxy-server=http://127.0.0.1:{proxy_port}",
                # Chromium never proxies loopback addresses unless told so
                "--proxy-bypass-list=<-loopback>",
            ]
        if resolver_rules:
            args.append(f"--host-resolver-rules={resolver_rules}")
        if extensions:
            joined = ",".join(str(e) for e in extensions)
            args += [f"--load-extension={joined}", f"--disable-extensions-except={joined}"]
        else:
            args.append("--disable-extensions")
        args.append(url)
        env = {**os.environ, "HOME": str(home)}
        for key in (
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
        ):
            env.pop(key, None)
        self.log = open(self.profile / "chromium.log", "w+b")  # noqa: SIM115
        self.proc = subprocess.Popen(
            args,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            **self._popen_extra(),
        )

    def _popen_extra(self) -> dict:
        """More arguments for Popen (``DevToolsChromium`` hands the child its pipe)."""
        return {}

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-4000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        self.log.close()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
