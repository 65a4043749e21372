"""Reading and writing the user's files (the rules file, ``secrets.toml``) without ever
writing over a version waylay has not read.

- :func:`read_version` reads a file and what identifies that version: the SHA-256 of its
  bytes and its (mtime, size, inode).
- :func:`write_checked` saves new text *only if the file still is the version the edit
  was based on* (compare-and-swap on the digest), atomically: temp file in the same
  folder, fsync, then an atomic exchange with the file (Linux ``renameat2
  RENAME_EXCHANGE``; elsewhere a rename right after the check). After the exchange it
  looks at what it replaced: if another program wrote in between (a rename or an
  in-place write), that version is handed back in a :class:`WriteConflict` so the caller
  can re-apply its change on top of it (or put it back) — nothing the other program
  wrote is lost.
- A symlink is written *through*: its target is replaced, the link stays a link (resolved
  once per save). ``<name>.bak`` sits beside the name the user gave and is a plain file.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FileVersion",
    "WriteConflict",
    "read_version",
    "settled",
    "write_atomic",
    "write_checked",
    "write_target",
]

ABSENT_DIGEST = None


@dataclass(frozen=True)
class FileVersion:
    """One version of a file: its bytes' SHA-256 (None: no file) and (mtime_ns, size,
    inode) (None: no file)."""

    digest: bytes | None
    signature: tuple[int, int, int] | None

    @property
    def exists(self) -> bool:
        return self.digest is not None


NO_FILE = FileVersion(None, None)


class WriteConflict(Exception):
    """The file is not the version the edit was based on; nothing of the other version
    was overwritten.

    ``theirs`` is None when the change was noticed before saving (read the file again).
    When another program wrote in the instant of the save, waylay's text is on disk as
    ``on_disk`` and the other program's bytes are ``theirs``: the caller saves their
    version (with its own change re-applied, or as it is) over ``on_disk``.
    """

    def __init__(self, theirs: bytes | None = None, on_disk: FileVersion | None = None) -> None:
        super().__init__("the file changed since it was read")
        self.theirs = theirs
        self.on_disk = on_disk


def digest_of(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _sig(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def signature(path: Path) -> tuple[int, int, int] | None:
    try:
        return _sig(os.stat(path))
    except OSError:
        return None


def _read_fd(fd: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 20, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


def read_version(path: Path | str) -> tuple[bytes | None, FileVersion]:
    """The file's bytes and version (``(None, NO_FILE)`` when there is no file).

    The bytes and the signature belong together: if the file changes while it is read,
    it is read again (a few times).
    """
    data = b""
    st = None
    for _ in range(5):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None, NO_FILE
        try:
            before = os.fstat(fd)
            data = _read_fd(fd)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if _sig(before) == _sig(st) and len(data) == st.st_size:
            break
    assert st is not None
    return data, FileVersion(digest_of(data), _sig(st))


def settled(path: Path | str, quiet: float = 0.05, timeout: float = 2.0) -> bool:
    """Wait until the file's (mtime, size, inode) stays the same for ``quiet`` seconds (a
    program that truncates then writes is done); False if it never did within
    ``timeout``."""
    deadline = time.monotonic() + timeout
    last = signature(Path(path))
    while True:
        time.sleep(quiet)
        now = signature(Path(path))
        if now == last:
            return True
        if time.monotonic() > deadline:
            return False
        last = now


def write_target(path: Path | str) -> Path:
    """The file a save of ``path`` replaces: the final target of a symlink (resolved once
    per save), else ``path`` itself. A dangling link's target gets created."""
    path = Path(path)
    if path.is_symlink():
        return Path(os.path.realpath(path))
    return path


# -- the atomic exchange -------------------------------------------------------------------

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_renameat2 = None
_exchange_works = True


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the system cannot (then nothing changed)."""
    global _renameat2, _exchange_works
    if not _exchange_works:
        return False
    if _renameat2 is None:
        try:
            _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
        except (AttributeError, OSError):
            _exchange_works = False
            return False
    result = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM):
        _exchange_works = False  # the file system cannot: use a rename after the check
        return False
    raise OSError(code, os.strerror(code), str(b))


# -- saving --------------------------------------------------------------------------------


def write_checked(
    path: Path | str,
    text: str | bytes,
    expected: FileVersion,
    *,
    backup: bool = True,
    mode: int | None = None,
) -> FileVersion:
    """Save ``text`` if the file still is ``expected`` (its digest; ``NO_FILE``: there
    must be no file); raise :class:`WriteConflict` otherwise. Returns the new version.

    ``mode``: the new file's permission bits (default: the old file's, else 0644).
    ``backup``: keep the replaced version as ``<name>.bak`` beside ``path``.
    """
    link = Path(path)
    target = write_target(link)
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8") if isinstance(text, str) else text
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    tmp = Path(tmp_name)
    old_fd: int | None = None
    try:
        try:
            old_fd = os.open(target, os.O_RDONLY)
        except FileNotFoundError:
            old_fd = None
        if old_fd is not None:
            seen = os.fstat(old_fd)
            new_mode = stat_mode(seen) if mode is None else mode
        else:
            new_mode = 0o644 if mode is None else mode
        os.fchmod(fd, new_mode)
        with os.fdopen(fd, "wb") as handle:
            fd = -1
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if old_fd is None:
            if expected.exists:
                raise WriteConflict()
            _create(tmp, target)
        else:
            if digest_of(_read_fd(old_fd)) != expected.digest:
                raise WriteConflict()
            swapped = _exchange(tmp, target)
            if not swapped:  # a rename right after the check; the replaced version is gone
                if backup:
                    _backup_copy(target, link)
                os.replace(tmp, target)
            after = os.fstat(old_fd)
            if swapped:
                replaced = os.stat(tmp)
                if (
                    replaced.st_ino != seen.st_ino
                    or _sig(after) != _sig(seen)
                    # a same-size write within the clock's tick keeps the signature
                    or digest_of(_read_fd(old_fd)) != expected.digest
                ):
                    # another program wrote in the instant of the save: theirs is at tmp
                    theirs = _settled_bytes(tmp)
                    on_disk = FileVersion(digest_of(data), signature(target))
                    _keep_as_backup(tmp, link, theirs)
                    raise WriteConflict(theirs, on_disk)
                if backup:
                    _keep_as_backup(tmp, link, None)
            elif _sig(after) != _sig(seen):
                # an in-place write into the version just replaced: hand it back
                theirs = _settled_fd_bytes(old_fd)
                raise WriteConflict(theirs, FileVersion(digest_of(data), signature(target)))
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        if old_fd is not None:
            os.close(old_fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    _fsync_dir(folder)
    _remove_stale_temps(folder, target.name)
    return FileVersion(digest_of(data), signature(target))


_STALE_AFTER_S = 60


def _remove_stale_temps(folder: Path, name: str) -> None:
    """Temp files a killed writer left behind (old enough not to be another writer's)."""
    limit = time.time() - _STALE_AFTER_S
    for stale in folder.glob(f".{name}.*.tmp"):
        with contextlib.suppress(OSError):
            if stale.stat().st_mtime < limit:
                stale.unlink()


def stat_mode(st: os.stat_result) -> int:
    return st.st_mode & 0o777


def _create(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target`` only if there still is no ``target``."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise WriteConflict() from None
    except OSError:  # no hard links on this file system: a rename after a last look
        if target.exists():
            raise WriteConflict() from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def _settled_bytes(path: Path) -> bytes:
    settled(path)
    data, _ = read_version(path)
    return data or b""


def _settled_fd_bytes(fd: int) -> bytes:
    last = _sig(os.fstat(fd))
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = _sig(os.fstat(fd))
        if now == last:
            break
        last = now
    return _read_fd(fd)


def backup_path(path: Path | str) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".bak")


def _keep_as_backup(old: Path, link: Path, data: bytes | None) -> None:
    """``old`` (the replaced version, in the target's folder) becomes ``<link>.bak``;
    ``data``: keep these bytes instead of moving the file."""
    bak = backup_path(link)
    if data is None:
        try:
            os.replace(old, bak)
            return
        except OSError:  # another file system (a link into another disk): copy
            data = old.read_bytes()
    fd, tmp = tempfile.mkstemp(prefix=f".{bak.name}.", suffix=".tmp", dir=bak.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        with contextlib.suppress(OSError):
            shutil.copymode(link if link.exists() else old, tmp)
        os.replace(tmp, bak)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _backup_copy(target: Path, link: Path) -> None:
    """``<link>.bak`` becomes the current version of ``target``, atomically (a hard link
    when possible, else a copy)."""
    bak = backup_path(link)
    tmp = bak.with_name(f".{bak.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        os.link(target, tmp)
    except OSError:
        shutil.copy2(target, tmp)
    os.replace(tmp, bak)


def write_atomic(
    path: Path, text: str | bytes, *, backup: bool = True, mode: int | None = None
) -> None:
    """Save ``text`` whatever the file holds now (exports, HAR, settings: files waylay
    does not merge). Atomic, through symlinks, ``.bak`` kept unless ``backup=False``,
    ``mode`` as in :func:`write_checked`. waylay's one atomic writer, with
    :func:`write_checked` for the files it must never write over unread."""
    for _ in range(10):
        _, version = read_version(write_target(path))
        try:
            write_checked(path, text, version, backup=backup, mode=mode)
            return
        except WriteConflict:
            continue
    raise OSError(errno.EBUSY, "the file kept changing while it was saved", str(path))


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
