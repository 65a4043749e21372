"""The one atomic file writer: the rules file, secrets, exports and HAR go through it, so
a crash or a full disk never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str, *, backup: bool = True, mode: int | None = None) -> None:
    """Temp file in the same folder, write, flush, fsync, keep ``.bak`` (unless
    ``backup=False``), rename, fsync the folder. The file keeps its permissions (a new
    one gets 0644) unless ``mode`` is given. waylay's one atomic writer: the rules file,
    secrets, exports and HAR all go through it."""
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        if mode is None:
            try:
                mode = path.stat().st_mode & 0o777
            except FileNotFoundError:
                mode = 0o644
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if backup and path.exists():
            _backup(path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)
    for stale in folder.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()


def _backup(path: Path) -> None:
    """``<name>.bak`` becomes the current version, atomically (a hard link if possible)."""
    bak = path.with_name(path.name + ".bak")
    tmp = path.with_name(f".{path.name}.bak.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copy2(path, tmp)
    os.replace(tmp, bak)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
