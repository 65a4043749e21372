"""The user's settings file: theme, keymap and default options that stick across runs.

``settings.toml`` lives in waylay's config folder (beside the default rules file;
``$WAYLAY_SETTINGS`` names another file). It is small and optional::

    theme = "textual-dark"

    [keymap]                 # binding id = keys, as Textual's App.set_keymap takes them
    "flows.filter" = "slash"

    [options]                # defaults for command-line options; the command line wins
    ask_timeout = 300
    max_flows = 20000

Precedence, lowest first: built-in default, this file, the environment
(``$WAYLAY_RULES``), the command line. ``waylay --print-settings`` shows the effective
value of each option and where it came from. A file that does not parse or validate is
one clear error (exit 2); nothing is ever written over a file that did not load.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import tomlkit
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.settings import SettingsError
from policies import config_dir
from policies.files import write_atomic


def settings_path() -> Path:
    env = os.environ.get("WAYLAY_SETTINGS")
    if env:
        return Path(env).expanduser()
    return config_dir() / "settings.toml"


class FileOptions(BaseModel):
    """Defaults for command-line options (names as the options, ``-`` written as ``_``)."""

    model_config = ConfigDict(extra="forbid")

    # Types here say what TOML value is accepted; the value is then checked by the same
    # function as the command-line option (ranges, sizes, "none").
    listen_host: str | None = None
    listen_port: int | None = Field(default=None, ge=0, le=65535)
    mode: str | None = None
    rules: Path | None = None
    confdir: Path | None = None
    ask_timeout: float | Literal["none"] | None = None
    ask_default: Literal["continue", "cancel"] | None = None
    max_flows: int | None = Field(default=None, ge=1)
    max_body_memory: str | int | None = None
    upstream_ca: Path | None = None
    max_header_size: str | int | None = None
    idle_timeout: float | None = None
    connect_timeout: float | None = None
    read_timeout: float | None = None


class UserSettings(BaseModel):
    """The whole settings file."""

    model_config = ConfigDict(extra="forbid")

    theme: str | None = None
    """A Textual theme name; the palette's "Change theme" writes it back here."""
    keymap: dict[str, str] = Field(default_factory=dict)
    """Binding id -> keys (comma-separated), handed to ``App.set_keymap``."""
    follow: bool | None = None
    """Whether the flow list starts following new flows."""
    options: FileOptions = Field(default_factory=FileOptions)

    def option_defaults(self) -> dict[str, Any]:
        """The options this file sets, for ``argparse``'s ``set_defaults``."""
        return {k: v for k, v in self.options.model_dump().items() if v is not None}


def _where(path: Path, loc: tuple) -> str:
    return f"{path}: " + (".".join(str(p) for p in loc) + ": " if loc else "")


def _toml_error(path: Path, raw: bytes, message: str) -> str:
    """tomllib's "msg (at line L, column C)" as ``PATH:L:C: msg``."""
    m = re.match(r"(.*) \(at (?:line (\d+), column (\d+)|end of document)\)$", message)
    if not m:
        return f"{path}: {message}"
    if m.group(2):
        return f"{path}:{m.group(2)}:{m.group(3)}: {m.group(1)}"
    lines = raw.decode("utf-8", "replace").split("\n")
    return f"{path}:{len(lines)}:{len(lines[-1]) + 1}: {m.group(1)} (at end of file)"


def load_user_settings(path: Path | None = None) -> UserSettings:
    """Read and validate the settings file; a missing file is an empty one."""
    path = path or settings_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return UserSettings()
    except OSError as e:
        raise SettingsError(f"{path}: cannot read settings: {e.strerror or e}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(_toml_error(path, raw, str(e))) from None
    try:
        return UserSettings.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        msg = first["msg"]
        if first["type"] == "extra_forbidden":
            msg = "unknown setting"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise SettingsError(f"{_where(path, tuple(first['loc']))}{msg}{more}") from None


def save_setting(key: str, value: Any, path: Path | None = None) -> None:
    """Set one top-level key in the settings file, keeping the rest of it (comments too).

    Refuses to write over a file that does not load (SettingsError)."""
    path = path or settings_path()
    load_user_settings(path)  # never write over a broken file
    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        doc = tomlkit.document()
    doc[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, tomlkit.dumps(doc), backup=False)


def apply_user_settings(app: Any, path: Path | None = None) -> UserSettings | None:
    """Give a mounted screen the user's theme, keymap and follow mode, and keep the theme
    chosen in the palette for the next run. A bad file is a notice on the screen, not a crash."""
    path = path or settings_path()
    try:
        user = load_user_settings(path)
    except SettingsError as e:
        app.notify_error(str(e))
        return None
    if user.theme:
        if user.theme in app.available_themes:
            app.theme = user.theme
        else:
            app.notify_error(f"{path}: theme {user.theme!r} is not a theme of this version")
    if user.keymap:
        app.set_keymap(user.keymap)
    if user.follow is not None:
        app.table.set_follow(user.follow)
    wanted = {"theme": app.theme}

    def remember(theme: Any) -> None:
        if theme.name == wanted["theme"]:
            return
        wanted["theme"] = theme.name
        try:
            save_setting("theme", theme.name, path)
        except (SettingsError, OSError) as e:
            app.notify_error(f"theme not saved: {e}")

    app.theme_changed_signal.subscribe(app, remember)
    return user
