"""Authentication challenges without any proxy machinery: parsing ``WWW-Authenticate`` /
``Proxy-Authenticate`` (RFC 9110 §11.6.1), signing answers (Basic, RFC 7617; Digest,
RFC 7616 through httpx's ``DigestAuth``), and the in-memory cache of accepted credentials.

Nothing here knows about flows or hooks; ``monitor.auth`` is the addon that uses it.

Digest (MD5, SHA-256, ``-sess``, qop ``auth``)
    The header is built by httpx's ``DigestAuth`` (a well-kept implementation) through its
    private ``_build_auth_header`` / ``_DigestAuthChallenge``, isolated in ``Signer``. The
    signer keeps the nonce count, so a cached signer keeps counting per server and realm.

The auth cache
    Accepted credentials per server (or upstream proxy), realm and scheme, with the path
    prefixes they were accepted under, as a browser's cache is keyed. Credentials accepted
    for Basic are never a verdict on a Digest challenge (or the other way round): a server
    that changes its scheme asks again, it does not "reject" what was cached.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace

from httpx._auth import DigestAuth, _DigestAuthChallenge  # private: see the docstring

# -- challenges ---------------------------------------------------------------------------

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


@dataclass(frozen=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` / ``Proxy-Authenticate`` header."""

    scheme: str  # as sent: "Basic", "Digest", "Bearer"...
    params: dict[str, str] = field(default_factory=dict)  # names lower-cased
    token68: str | None = None

    @property
    def kind(self) -> str:
        return self.scheme.lower()

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def label(self) -> str:
        """ "Basic" or "Digest" as the dialog shows it."""
        return {"basic": "Basic", "digest": "Digest"}.get(self.kind, self.scheme)

    @property
    def algorithm(self) -> str:
        return self.params.get("algorithm", "MD5").upper()

    @property
    def stale(self) -> bool:
        return self.params.get("stale", "").lower() == "true"


def _skip(s: str, pos: int, chars: str) -> int:
    while pos < len(s) and s[pos] in chars:
        pos += 1
    return pos


def _quoted(s: str, pos: int) -> tuple[str, int]:
    """The quoted-string starting at ``s[pos] == '"'``, unescaped, and the position after it."""
    out = []
    pos += 1
    while pos < len(s):
        c = s[pos]
        if c == "\\" and pos + 1 < len(s):
            out.append(s[pos + 1])
            pos += 2
            continue
        if c == '"':
            return "".join(out), pos + 1
        out.append(c)
        pos += 1
    return "".join(out), pos


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """Every challenge in the given header values (RFC 9110 §11.6.1): several challenges
    may share one header, separated by commas like their parameters."""
    found: list[Challenge] = []
    for value in values:
        s = value
        pos = 0
        current: Challenge | None = None
        while pos < len(s):
            pos = _skip(s, pos, " \t,")
            m = _TOKEN.match(s, pos)
            if m is None:
                break  # malformed: keep what was understood
            name = m.group()
            after = _skip(s, m.end(), " \t")
            if current is not None and after < len(s) and s[after] == "=":
                pos = _skip(s, after + 1, " \t")
                if pos < len(s) and s[pos] == '"':
                    val, pos = _quoted(s, pos)
                else:
                    mv = _TOKEN.match(s, pos)
                    val, pos = (mv.group(), mv.end()) if mv else ("", pos)
                current.params.setdefault(name.lower(), val)
                continue
            current = Challenge(scheme=name)
            found.append(current)
            pos = after
            t = _TOKEN68.match(s, pos)
            if t is not None:
                rest = _skip(s, t.end(), " \t")
                if rest >= len(s) or s[rest] == ",":
                    current = Challenge(scheme=name, token68=t.group())
                    found[-1] = current
                    pos = rest
    return found


_DIGEST_STRENGTH = {
    "MD5": 1,
    "MD5-SESS": 1,
    "SHA": 2,
    "SHA-SESS": 2,
    "SHA-256": 3,
    "SHA-256-SESS": 3,
    "SHA-512": 4,
    "SHA-512-SESS": 4,
}


def unsupported(c: Challenge) -> str | None:
    """Why waylay cannot answer this Basic/Digest challenge, or None."""
    if c.kind == "basic":
        return None
    if c.kind != "digest":
        return f"{c.scheme} is not Basic or Digest"
    if "nonce" not in c.params:
        return "the Digest challenge has no nonce"
    if c.algorithm not in _DIGEST_STRENGTH:
        return f"Digest algorithm {c.algorithm} is not supported"
    qop = c.params.get("qop")
    if qop is not None and "auth" not in [q.strip().lower() for q in qop.split(",")]:
        return f"Digest qop {qop!r} is not supported (only auth)"
    return None


def is_auth_challenge(challenges: Iterable[Challenge]) -> bool:
    """True when a Basic or Digest challenge is among them (Bearer alone is not an event)."""
    return any(c.kind in ("basic", "digest") for c in challenges)


def pick(challenges: Iterable[Challenge]) -> Challenge | None:
    """The strongest challenge waylay can answer: Digest (strongest algorithm) over Basic."""
    best: tuple[int, Challenge] | None = None
    for c in challenges:
        if unsupported(c) is not None:
            continue
        rank = _DIGEST_STRENGTH[c.algorithm] if c.kind == "digest" else 0
        if best is None or rank > best[0]:
            best = (rank, c)
    return best[1] if best else None


# -- signing ------------------------------------------------------------------------------


class SigningError(ValueError):
    pass


class Signer:
    """Builds the Authorization value for one user and one protection space; for Digest it
    keeps the nonce and its count, so every header it makes is fresh."""

    def __init__(self, challenge: Challenge, username: str, password: str) -> None:
        self.username = username
        self._password = password
        self.scheme = challenge.label
        self.realm = challenge.realm
        self._digest: DigestAuth | None = None
        self._challenge: _DigestAuthChallenge | None = None
        if challenge.kind == "digest":
            self.update(challenge)

    def __repr__(self) -> str:  # never the password
        return f"Signer({self.scheme}, {self.username!r}, realm={self.realm!r})"

    @property
    def credentials(self) -> tuple[str, str]:
        return self.username, self._password

    def update(self, challenge: Challenge) -> None:
        """A new Digest challenge (new nonce, e.g. after ``stale=true``): the count restarts."""
        p = challenge.params
        self._challenge = _DigestAuthChallenge(
            realm=challenge.realm.encode(),
            nonce=p["nonce"].encode(),
            algorithm=p.get("algorithm", "MD5"),
            opaque=p["opaque"].encode() if "opaque" in p else None,
            qop=p["qop"].encode() if "qop" in p else None,
        )
        if self._digest is None:
            self._digest = DigestAuth(self.username, self._password)
        self._digest._nonce_count = 1

    def header(self, method: str, target: str) -> str:
        """The header value for a request of ``method`` to request-target ``target``."""
        if self._digest is None or self._challenge is None:
            token = base64.b64encode(f"{self.username}:{self._password}".encode()).decode()
            return f"Basic {token}"
        request = SimpleNamespace(method=method, url=SimpleNamespace(raw_path=target.encode()))
        try:
            return self._digest._build_auth_header(request, self._challenge)  # type: ignore[arg-type]
        except Exception as e:  # unknown algorithm, qop auth-int only...
            raise SigningError(f"cannot answer this Digest challenge: {e}") from None


# -- the auth cache -----------------------------------------------------------------------


@dataclass
class CacheEntry:
    signer: Signer
    prefixes: set[str]

    @property
    def space(self) -> tuple[str, str]:
        """(realm, scheme): one protection space of a server, as the cache keys it."""
        return self.signer.realm, self.signer.scheme


class AuthCache:
    """Accepted credentials per server (scheme, host, port) or upstream proxy, per realm and
    authentication scheme."""

    def __init__(self) -> None:
        self._entries: dict[tuple, dict[tuple[str, str], CacheEntry]] = {}

    def find(self, key: tuple, path: str) -> CacheEntry | None:
        """The entry with the longest prefix of ``path``; on a tie the latest stored."""
        best: tuple[int, CacheEntry] | None = None
        for entry in self._entries.get(key, {}).values():
            for prefix in entry.prefixes:
                if path.startswith(prefix) and (best is None or len(prefix) >= best[0]):
                    best = (len(prefix), entry)
        return best[1] if best else None

    def store(self, key: tuple, signer: Signer, prefix: str) -> None:
        spaces = self._entries.setdefault(key, {})
        space = (signer.realm, signer.scheme)
        entry = spaces.pop(space, None)  # re-inserted last: the latest wins ties in find()
        prefixes = {prefix}
        if entry is not None and entry.signer.credentials == signer.credentials:
            prefixes |= entry.prefixes
        spaces[space] = CacheEntry(signer, prefixes)

    def clear(self, key: tuple) -> None:
        self._entries.pop(key, None)

    def drop(self, key: tuple, entry: CacheEntry) -> None:
        spaces = self._entries.get(key, {})
        if spaces.get(entry.space) is entry:
            del spaces[entry.space]


def protected_prefix(path: str) -> str:
    """The paths the same credentials are sent to up front: the challenged path's folder
    and below (RFC 7617 §2.2)."""
    path = path.split("?", 1)[0] or "/"
    return path[: path.rfind("/") + 1] or "/"
