"""Real servers that demand credentials: Basic (RFC 7617) and Digest (RFC 7616).

Standard library only, and deliberately independent of the client side (waylay signs Digest
with httpx): the Digest server checks everything a strict server checks — the nonce is one it
issued, the nonce count was never used before with that nonce (replays are refused), the
uri is the request-target, realm/opaque/algorithm/qop match the challenge, and the response
hash — so a wrong implementation on either side fails the tests.

``AuthUpstream(scheme="basic" | "digest", ...)`` behaves like ``tests.servers.Upstream``
(same routes, same ``requests`` record) once a request is authorised; ``/bearer`` always
answers 401 with a Bearer challenge, ``/public`` needs no credentials. ``attempts`` lists
every request with the Authorization it carried and whether it was accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass, field

from tests.servers import Upstream, _Handler

HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


@dataclass
class Attempt:
    method: str
    path: str
    authorization: str | None
    accepted: bool
    why: str = ""


@dataclass
class _Nonce:
    seen_nc: set[int] = field(default_factory=set)
    uses: int = 0


def parse_digest(value: str) -> dict[str, str]:
    """The parameters of an ``Authorization: Digest ...`` header (quoted or token)."""
    params = {}
    for m in re.finditer(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))', value):
        params[m.group(1).lower()] = (
            re.sub(r"\\(.)", r"\1", m.group(2)) if m.group(2) is not None else m.group(3)
        )
    return params


class _AuthHandler(_Handler):
    server: object

    def _body(self) -> bytes:
        if not hasattr(self, "_stashed"):
            n = int(self.headers.get("content-length") or 0)
            self._stashed = self.rfile.read(n) if n else b""
        return self._stashed

    def _handle(self) -> None:
        if hasattr(self, "_stashed"):
            del self._stashed
        up: AuthUpstream = self.server.upstream  # type: ignore[attr-defined]
        self._body()  # read before answering, whatever the answer: the connection stays usable
        if self.path.startswith("/public"):
            super()._handle()
            return
        if self.path.startswith("/bearer"):
            up._record(Attempt(self.command, self.path, self.headers.get(up.auth_header), False))
            self._send(401, b"bearer only\n", [(up.challenge_header, 'Bearer realm="api"')])
            return
        ok, why, stale = up.check(self.command, self.path, self.headers.get(up.auth_header))
        up._record(Attempt(self.command, self.path, self.headers.get(up.auth_header), ok, why))
        if ok and up.drop_authorized:
            self.close_connection = True  # hang up without an answer
            return
        if ok:
            super()._handle()
            return
        status = 407 if up.proxy_style else 401
        self._send(
            status,
            f"authentication required ({why})\n".encode(),
            [(up.challenge_header, c) for c in up.challenges(stale=stale)],
        )

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


class AuthUpstream(Upstream):
    """An upstream that wants ``users`` to log in with ``scheme`` in ``realm``."""

    def __init__(
        self,
        scheme: str = "basic",
        *,
        users: dict[str, str] | None = None,
        realm: str = "Staff",
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        also_offer: tuple[str, ...] = (),
        one_header: bool = False,
        nonce_uses: int | None = None,
        ssl_context=None,
        name: str | None = None,
    ) -> None:
        """``algorithms``: Digest challenges offered, one per algorithm (RFC 7616 §3.7).
        ``also_offer``: extra challenges (e.g. Basic, Bearer) sent with them; ``one_header``
        puts all challenges in one comma-separated header. ``nonce_uses``: after that many
        requests a nonce is stale (401 with ``stale=true``)."""
        super().__init__(name or scheme, ssl_context=ssl_context, handler=_AuthHandler)
        self.scheme = scheme
        self.users = users if users is not None else {"alice": "wonder-land-7"}
        self.realm = realm
        self.algorithms = algorithms
        self.also_offer = also_offer
        self.one_header = one_header
        self.nonce_uses = nonce_uses
        self.opaque = secrets.token_hex(8)
        self.proxy_style = False
        self.drop_authorized = False
        self.auth_header = "Authorization"
        self.challenge_header = "WWW-Authenticate"
        self.attempts: list[Attempt] = []
        self._nonces: dict[str, _Nonce] = {}
        self._lock = threading.Lock()

    def _record(self, attempt: Attempt) -> None:
        with self._lock:
            self.attempts.append(attempt)

    @property
    def accepted(self) -> list[Attempt]:
        return [a for a in self.attempts if a.accepted]

    # -- challenges ---------------------------------------------------------------------

    def challenges(self, *, stale: bool = False) -> list[str]:
        if self.scheme == "basic":
            found = [f'Basic realm="{self.realm}", charset="UTF-8"']
        else:
            found = []
            for algorithm in self.algorithms:
                nonce = secrets.token_hex(16)
                with self._lock:
                    self._nonces[nonce] = _Nonce()
                found.append(
                    f'Digest realm="{self.realm}", qop="auth", algorithm={algorithm}, '
                    f'nonce="{nonce}", opaque="{self.opaque}"' + (", stale=true" if stale else "")
                )
        found += list(self.also_offer)
        return [", ".join(found)] if self.one_header else found

    # -- checking -----------------------------------------------------------------------

    def check(self, method: str, target: str, value: str | None) -> tuple[bool, str, bool]:
        """(accepted, why not, stale)."""
        if not value:
            return False, "no credentials", False
        scheme, _, rest = value.partition(" ")
        if self.scheme == "basic":
            if scheme.lower() != "basic":
                return False, f"{scheme} is not Basic", False
            try:
                user, _, password = base64.b64decode(rest.strip()).decode().partition(":")
            except ValueError:
                return False, "bad base64", False
            if user in self.users and hmac.compare_digest(self.users[user], password):
                return True, "", False
            return False, "wrong username or password", False
        if scheme.lower() != "digest":
            return False, f"{scheme} is not Digest", False
        return self._check_digest(method, target, parse_digest(rest))

    def _check_digest(self, method: str, target: str, p: dict) -> tuple[bool, str, bool]:
        for name in ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce"):
            if name not in p:
                return False, f"no {name}", False
        algorithm = p.get("algorithm", "MD5").upper()
        if algorithm not in self.algorithms or algorithm not in HASHES:
            return False, f"algorithm {algorithm} not offered", False
        if p["realm"] != self.realm:
            return False, "wrong realm", False
        if p.get("opaque") != self.opaque:
            return False, "wrong opaque", False
        if p["qop"] != "auth":
            return False, "qop must be auth", False
        if p["uri"] != target:
            return False, f"uri {p['uri']!r} is not the request-target {target!r}", False
        try:
            nc = int(p["nc"], 16)
        except ValueError:
            return False, "bad nc", False
        password = self.users.get(p["username"])
        if password is None:
            return False, "unknown user", False

        def h(data: str) -> str:
            return HASHES[algorithm](data.encode()).hexdigest()

        ha1 = h(f"{p['username']}:{self.realm}:{password}")
        ha2 = h(f"{method}:{p['uri']}")
        expected = h(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:auth:{ha2}")
        with self._lock:
            state = self._nonces.get(p["nonce"])
            if state is None:
                return False, "a nonce this server never issued", False
            if not hmac.compare_digest(expected, p["response"]):
                return False, "wrong response hash (wrong password?)", False
            if nc in state.seen_nc:
                return False, f"nonce count {nc} replayed", False
            if self.nonce_uses is not None and state.uses >= self.nonce_uses:
                return False, "stale nonce", True
            state.seen_nc.add(nc)
            state.uses += 1
        return True, "", False
