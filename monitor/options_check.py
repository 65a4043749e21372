"""Option values checked where they are parsed: a bad one is one line and exit 2.

The argparse ``type=`` functions here raise ``argparse.ArgumentTypeError`` (argparse
names the option); ``check_paths`` looks at the files and folders options point to
before anything starts, so nothing a session collected is lost at exit.
"""

from __future__ import annotations

import argparse
import math
import os
import stat
from pathlib import Path

from monitor.settings import MAX_ASK_TIMEOUT, Settings, SettingsError

PROXY_AUTH_ENV = "WAYLAY_PROXY_AUTH"


class OneLineParser(argparse.ArgumentParser):
    """A bad option is one line on stderr and exit 2 (not argparse's usage block)."""

    def error(self, message: str):
        from policies.printable import printable

        self.exit(2, f"{self.prog}: {printable(message)} (see {self.prog} --help)\n")


def port_arg(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0-65535)")
    return port


def positive_int_arg(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return n


def ask_timeout_arg(text: str) -> float | None:
    """Seconds in (0, a week], or ``none``: wait for ever."""
    if text.strip().lower() in ("none", "never", "forever"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= MAX_ASK_TIMEOUT):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected seconds in (0, {MAX_ASK_TIMEOUT}], or none to wait for ever"
        )
    return value


def parse_size(text: str) -> int | None:
    """``256m`` → bytes; None when it is not a size (negative sizes are not sizes)."""
    from mitmproxy.utils import human

    text = text.strip()
    if not text or text.startswith(("-", "+")):
        return None
    try:
        return human.parse_size(text)
    except ValueError:
        return None


def size_arg(text: str) -> int:
    size = parse_size(text)
    if size is None:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a size such as 256m (k/m/g)")
    return size


def proxy_auth(args: argparse.Namespace) -> str | None:
    """USER:PASS from --proxy-auth, else --proxy-auth-file, else $WAYLAY_PROXY_AUTH."""
    given = [x for x in (args.proxy_auth, args.proxy_auth_file) if x is not None]
    if len(given) > 1:
        raise SettingsError("give --proxy-auth or --proxy-auth-file, not both")
    if args.proxy_auth is not None:
        return args.proxy_auth
    if args.proxy_auth_file is not None:
        path = Path(args.proxy_auth_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            why = getattr(e, "strerror", None) or "not UTF-8 text"
            raise SettingsError(f"--proxy-auth-file {path}: cannot read: {why}") from None
        line = text.splitlines()[0].strip() if text.strip() else ""
        if not line:
            raise SettingsError(f"--proxy-auth-file {path}: empty, expected USER:PASS")
        return line
    env = os.environ.get(PROXY_AUTH_ENV)
    return env.strip() if env and env.strip() else None


def check_paths(settings: Settings) -> None:
    """The confdir, the upstream CA and the files waylay writes (HAR, --save, --session),
    checked before starting."""
    _check_confdir(Path(settings.confdir))
    if settings.upstream_ca is not None:
        _check_pem(Path(settings.upstream_ca))
    if settings.har is not None:
        check_output_path("--har", Path(settings.har))
    if settings.save is not None:
        check_output_path("--save", Path(settings.save))
    if settings.session is not None:
        # the session's folder is made when missing (``--session new``)
        check_output_path("--session", Path(settings.session), make_folder=True)


def _check_confdir(path: Path) -> None:
    if path.exists():
        if not path.is_dir():
            raise SettingsError(f"--confdir {path}: not a directory")
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise SettingsError(f"--confdir {path}: not readable and writable by you")
        return
    parent = _existing_parent(path)
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise SettingsError(f"--confdir {path}: cannot be created (in {parent})")


def _existing_parent(path: Path) -> Path:
    for parent in path.absolute().parents:
        if parent.exists():
            return parent
    return Path("/")


def _check_pem(path: Path) -> None:
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise SettingsError(f"--upstream-ca {path}: a directory, expected a PEM file") from None
    except OSError as e:
        raise SettingsError(f"--upstream-ca {path}: cannot read: {e.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise SettingsError(f"--upstream-ca {path}: no PEM certificate in it")
    from cryptography import x509

    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise SettingsError(f"--upstream-ca {path}: not a valid PEM certificate") from None


def check_output_path(option: str, path: Path, *, make_folder: bool = False) -> None:
    """A file waylay writes (the HAR at exit, the --save stream, the --session store): a
    destination that cannot work is refused now, before anything is collected."""
    if path.is_dir():
        raise SettingsError(f"{option} {path}: a directory, expected a file name")
    parent = path.absolute().parent
    if make_folder and not parent.exists():
        parent = _existing_parent(parent)
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise SettingsError(f"{option} {path}: its folder cannot be created (in {parent})")
        return
    if not parent.is_dir():
        raise SettingsError(f"{option} {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SettingsError(f"{option} {path}: cannot write in {parent}")
    if path.exists() and not os.access(path, os.W_OK):
        raise SettingsError(f"{option} {path}: not writable")


def secrets_file_warnings(rules_path: Path) -> list[str]:
    """What is wrong with ``secrets.toml`` beside the rules file: a symlink, another owner,
    read or write access for others. Only metadata is read, never the secrets."""
    path = Path(rules_path).parent / "secrets.toml"
    try:
        lst = path.lstat()
    except OSError:
        return []
    found = []
    if stat.S_ISLNK(lst.st_mode):
        found.append(f"{path} is a symbolic link: anyone who can change the link can swap it")
    try:
        st = path.stat()
    except OSError:
        return found
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        found.append(f"{path} is owned by another user (uid {st.st_uid})")
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        found.append(
            f"{path} can be read by other users (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run: chmod 600 {path}"
        )
    return found
