"""Where passwords live: ``$WAYLAY_SECRET_<NAME>`` first, then ``secrets.toml`` beside
the rules file (mode 0600). Rules name a secret; only this module ever sees its value,
and no value ever appears in a repr, an error message, a warning or a log line.

``secrets.toml`` is a flat table of ``name = "value"`` (comments are kept on write). A
write never overwrites a version waylay has not read, and a symlinked ``secrets.toml`` is
written through to its target (which gets mode 0600); the link stays.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import tomllib
from pathlib import Path

import tomlkit

from .files import WriteConflict, read_version, write_checked

__all__ = ["SECRETS_FILE", "SecretStore", "SecretsError", "env_name"]

SECRETS_FILE = "secrets.toml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_TOML_POSITION = re.compile(r"\s*\((at line \d+, column \d+|at end of document)\)\s*$")


class SecretsError(Exception):
    """The secrets file cannot be read or written. Never contains a secret value."""


def env_name(name: str) -> str:
    """The environment variable of a secret: ``intranet-login`` → ``WAYLAY_SECRET_INTRANET_LOGIN``."""
    return "WAYLAY_SECRET_" + name.upper().replace("-", "_")


class SecretStore:
    """The secrets for the rules file in ``folder``. Thread-safe."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.path = self.folder / SECRETS_FILE
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int], dict[str, str]] | None = None
        self.error: str | None = None

    def __repr__(self) -> str:
        return f"SecretStore({str(self.folder)!r})"

    __str__ = __repr__

    def get(self, name: str) -> str | None:
        """The secret's value, or None when neither the environment nor the file has it."""
        value = os.environ.get(env_name(name))
        if value is not None:
            return value
        return self._read().get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def source(self, name: str) -> str | None:
        """Where the secret comes from ("$WAYLAY_SECRET_X" or the file's path), or None."""
        if env_name(name) in os.environ:
            return "$" + env_name(name)
        if name in self._read():
            return str(self.path)
        return None

    def names(self) -> list[str]:
        """Names stored in the file (environment secrets are not listed)."""
        return sorted(self._read())

    def set(self, name: str, value: str) -> None:
        """Store ``name`` in ``secrets.toml`` (atomically; a new file gets mode 0600)."""
        self._check_name(name)
        if not isinstance(value, str):
            raise SecretsError(f"secret {name!r}: the value must be a string")
        self._modify(lambda doc: doc.__setitem__(name, value))

    def delete(self, name: str) -> None:
        self._check_name(name)

        def remove(doc: tomlkit.TOMLDocument) -> None:
            if name in doc:
                del doc[name]

        self._modify(remove)

    @property
    def warnings(self) -> list[str]:
        """Problems worth telling the user: a file others can read, a file that is broken."""
        found: list[str] = []
        try:
            mode = self.path.stat().st_mode
        except OSError:
            return found
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            found.append(
                f"{self.path} can be read by other users (mode {stat.S_IMODE(mode):04o}); "
                f"run: chmod 600 {self.path}"
            )
        self._read()
        if self.error:
            found.append(self.error)
        return found

    @staticmethod
    def _check_name(name: str) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise SecretsError(
                "a secret name is letters, digits, '-' and '_', starting with a letter or digit"
            )

    def _read(self) -> dict[str, str]:
        with self._lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                self._cache = None
                self.error = None
                return {}
            except OSError as exc:
                self.error = f"{self.path}: cannot read: {exc.strerror}"
                return {}
            signature = (st.st_mtime_ns, st.st_size, st.st_ino)
            if self._cache is not None and self._cache[0] == signature:
                return self._cache[1]
            try:
                data = tomllib.loads(self.path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                # tomllib's messages name positions, never the text around them
                self.error = f"{self.path}: not valid TOML: {_TOML_POSITION.sub('', str(exc))} {_position(exc)}".rstrip()
                return {}
            except (OSError, UnicodeDecodeError) as exc:
                self.error = f"{self.path}: cannot read: {type(exc).__name__}"
                return {}
            values = {k: v for k, v in data.items() if isinstance(v, str)}
            self.error = None
            self._cache = (signature, values)
            return values

    def _modify(self, change) -> None:
        """Apply ``change`` to the file's current version and save it, only if the file
        still is that version (else read it again and redo the change): a secret written by
        another program meanwhile is never lost. A symlinked file is written through."""
        with self._lock:
            for _ in range(8):
                try:
                    data, version = read_version(self.path)
                except OSError as exc:
                    raise SecretsError(f"{self.path}: cannot read: {exc.strerror}") from None
                if data is not None:
                    try:
                        doc = tomlkit.parse(data.decode("utf-8"))
                    except Exception as exc:
                        raise SecretsError(
                            f"{self.path} is not valid TOML ({type(exc).__name__}); fix it "
                            "first, waylay does not overwrite it"
                        ) from None
                else:
                    doc = tomlkit.document()
                    doc.add(
                        tomlkit.comment('waylay secrets: name = "value". Keep this file private.')
                    )
                change(doc)
                try:
                    write_checked(self.path, doc.as_string(), version, backup=False, mode=0o600)
                except WriteConflict as conflict:
                    if conflict.theirs is not None and conflict.on_disk is not None:
                        # theirs was replaced in the instant of the save: put it back, redo
                        try:
                            write_checked(
                                self.path, conflict.theirs, conflict.on_disk, backup=False
                            )
                        except WriteConflict:
                            pass
                    continue
                finally:
                    self._cache = None
                return
            raise SecretsError(f"{self.path} kept changing while waylay saved it; try again")


def _position(exc: tomllib.TOMLDecodeError) -> str:
    found = _TOML_POSITION.search(str(exc))
    return f"({found.group(1)})" if found else ""
