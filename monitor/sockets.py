"""Where control sockets live, who may connect to them, and which proxies are running.

Used by the proxy process (to bind) and by ``waylay attach`` (to find one). Imports
neither mitmproxy nor textual.

Each running proxy has, in a per-user folder of mode 0700, a socket ``proxy-PID.sock``
(mode 0600) and a discovery file ``proxy-PID.json`` (port, mode, rules file, started,
pid). A file whose socket no longer accepts is stale (its proxy died without cleaning
up) and is removed by whoever finds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import struct
import sys
from dataclasses import asdict, dataclass
from pathlib import Path


class SocketDirError(Exception):
    """The control folder is unsafe or cannot be made; the message is for people."""


def runtime_dir() -> Path:
    """``$XDG_RUNTIME_DIR/waylay``, else waylay's platformdirs state folder."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base:
        return Path(base) / "waylay"
    import platformdirs

    return Path(platformdirs.user_state_dir("waylay")) / "run"


def ensure_private_dir(folder: Path) -> Path:
    """Create ``folder`` with mode 0700, or check that an existing one is ours and private."""
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = folder.lstat()
    except FileExistsError:
        raise SocketDirError(f"{folder} is not a folder") from None
    except OSError as e:
        raise SocketDirError(f"cannot make {folder}: {e.strerror or e}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise SocketDirError(f"{folder} is not a folder")
    if st.st_uid != os.getuid():
        raise SocketDirError(f"{folder} belongs to uid {st.st_uid}, not to you (uid {os.getuid()})")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(folder, 0o700)
    return folder


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a connected Unix socket, or None when
    the platform cannot tell."""
    if hasattr(socket, "SO_PEERCRED"):  # Linux
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return uid
    local_peercred = getattr(socket, "LOCAL_PEERCRED", 0x001 if sys.platform == "darwin" else None)
    if local_peercred is not None:  # macOS, FreeBSD: struct xucred {u_int version; uid_t uid; ...}
        with contextlib.suppress(OSError):
            creds = sock.getsockopt(0, local_peercred, 76)
            _version, uid = struct.unpack_from("Ii", creds)
            return uid
    return None


def refusal(sock: socket.socket, uid: int | None = None) -> str | None:
    """Why the peer of ``sock`` may not control this proxy, or None if it may: only the
    user the proxy runs as (root included: no exception for anyone)."""
    own = os.getuid() if uid is None else uid
    peer = peer_uid(sock)
    if peer is None:
        return "cannot tell who is connecting (no SO_PEERCRED on this system)"
    if peer != own:
        return f"this proxy belongs to uid {own}; uid {peer} may not attach to it"
    return None


@dataclass
class ProxyInfo:
    """A discovery file: what ``waylay attach --list`` shows without connecting."""

    pid: int
    socket: str
    port: int
    address: str
    mode: str
    rules: str
    started: float
    hold: bool = False

    @property
    def json_path(self) -> Path:
        return Path(self.socket).with_suffix(".json")


def socket_path(folder: Path, pid: int | None = None) -> Path:
    return folder / f"proxy-{os.getpid() if pid is None else pid}.sock"


def write_discovery(info: ProxyInfo) -> None:
    path = info.json_path
    tmp = path.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(info), f)
    os.replace(tmp, path)


def remove_files(sock_path: Path) -> None:
    for p in (sock_path, sock_path.with_suffix(".json")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def is_alive(sock_path: Path, timeout: float = 1.0) -> bool:
    """True when something accepts connections on ``sock_path``."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(sock_path))
    except (FileNotFoundError, ConnectionRefusedError):
        return False
    except OSError:  # EACCES, timeout: someone is there (or it is not ours); not stale
        return True
    finally:
        s.close()
    return True


def clear_stale(sock_path: Path) -> bool:
    """Remove the socket and discovery file of a proxy that died; True if it was stale."""
    if sock_path.exists() and not is_alive(sock_path):
        remove_files(sock_path)
        return True
    return False


def running_proxies(folder: Path | None = None) -> list[ProxyInfo]:
    """The proxies of this user that accept connections, oldest first; stale files of
    dead ones are removed on the way."""
    folder = runtime_dir() if folder is None else folder
    found: list[ProxyInfo] = []
    if not folder.is_dir():
        return found
    for sock_path in sorted(folder.glob("proxy-*.sock")):
        if clear_stale(sock_path):
            continue
        json_path = sock_path.with_suffix(".json")
        try:
            data = json.loads(json_path.read_text())
            info = ProxyInfo(**data)
        except (OSError, ValueError, TypeError):
            continue  # starting up (no discovery file yet) or not ours
        found.append(info)
    for json_path in folder.glob("proxy-*.json"):  # a discovery file without its socket
        if not json_path.with_suffix(".sock").exists():
            with contextlib.suppress(FileNotFoundError):
                json_path.unlink()
    found.sort(key=lambda i: i.started)
    return found
