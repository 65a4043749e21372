"""The ``certificate`` event: decide on upstream certificates that fail verification.

mitmproxy verifies upstream certificates (certifi, or ``ssl_verify_upstream_trusted_ca``)
and on failure answers the client with a 502; its only other choice, ``ssl_insecure``, trusts
everything everywhere. waylay decides per connection instead, and never touches the shared,
cached ``SSL.Context``:

1. ``tls_start_server`` runs after mitmproxy's ``TlsConfig`` has built ``data.ssl_conn``
   (verification on; the host name or IP set on that connection's ``X509_VERIFY_PARAM``).
   We put a verify callback on *that* ``SSL.Connection`` (``Connection.set_verify``, same
   mode). OpenSSL calls it for every problem it finds: expiry, an unknown issuer, a name
   that does not match (``X509_V_ERR_HOSTNAME_MISMATCH`` / ``IP_ADDRESS_MISMATCH``)...
2. At the first problem the callback decides what can be decided at once: an answer
   already given for this certificate on this client connection, the rules (event
   ``certificate``, URL ``https://HOST:PORT/``, the leaf's SHA-256 fingerprint: the peer
   chain is available during verification), headless mode (nobody to ask: reject).
   Reject fails the callback, so the handshake fails as with mitmproxy's own verification
   and the server connection is closed; allow lets the handshake complete.
3. "ask" cannot wait inside OpenSSL, and should not wait in ``tls_established_server``
   either: that hook is blocking, but in TLS 1.3 our client ``Finished`` is still unsent
   while it runs, so the upstream's handshake (and its handshake timeout) would hang on
   the person. So the handshake completes, and the *first request* on the connection
   waits in ``requestheaders`` (blocking in mitmproxy 11 and 12; nothing goes upstream
   before it returns). That request is the flow shown paused; further requests on the
   same connection (HTTP/2 streams, keep-alive) and connections bringing the same
   certificate while the question is open wait for the same answer: one question.
4. Rejected: the server connection's ``error`` names the problem. mitmproxy answers every
   request that wants that connection with a 502 whose body is that text
   (``HttpLayer.get_connection`` checks ``connection.error``); after a failed handshake
   we replace mitmproxy's own text with ours in ``tls_failed_server``. (A connection a
   person rejects after its handshake stays open, unused, until its client leaves.)

A connection opened for a request that already waits on it (``HttpClient`` in the layer
stack: absolute-form ``https://`` requests without CONNECT, the lazy connection strategy,
a reconnect inside a tunnel after the server closed an idle connection) is used as soon
as it is open: its request has passed ``requestheaders`` already. There only the
immediate decisions of step 2 apply (a reconnect finds the answer given on its client
connection); a certificate that would need a question is rejected. Raw TCP inside TLS
(no request to hold) is treated the same way.

Every flow that used such a connection gets a note, the deciding rule and the
certificate (``record_of(flow).certificate``, shown in the detail pane).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import weakref
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from mitmproxy import connection, http, tcp, tls
from mitmproxy.flow import Error
from mitmproxy.proxy.layers.http import HttpClient
from OpenSSL import SSL

from monitor.pauses import Ended, Pauses
from monitor.record import record_of
from monitor.recorder import Recorder
from policies import Decision, EventDetails, RulesFile
from widgets.model import Answer, CertificateInfo

log = logging.getLogger("waylay.certificates")

# X509_V_ERR_* codes (stable across OpenSSL 1.1, 3 and 4) → the reason a person reads.
_REASONS = {
    2: "untrusted issuer",  # UNABLE_TO_GET_ISSUER_CERT
    9: "not yet valid",  # CERT_NOT_YET_VALID
    10: "expired",  # CERT_HAS_EXPIRED
    18: "self-signed",  # DEPTH_ZERO_SELF_SIGNED_CERT
    19: "untrusted issuer",  # SELF_SIGNED_CERT_IN_CHAIN: a root nobody trusts
    20: "untrusted issuer",  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: "untrusted issuer",  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
    23: "revoked",  # CERT_REVOKED
    24: "untrusted issuer",  # INVALID_CA
    27: "untrusted issuer",  # CERT_UNTRUSTED
    28: "untrusted issuer",  # CERT_REJECTED
    62: "hostname mismatch",  # HOSTNAME_MISMATCH
    63: "hostname mismatch",  # EMAIL_MISMATCH
    64: "hostname mismatch",  # IP_ADDRESS_MISMATCH
}


def reason_of(errno: int) -> str:
    return _REASONS.get(errno, "other")


def openssl_text(errno: int) -> str:
    """OpenSSL's own words for a verification error (as mitmproxy's TLS layer gets them)."""
    try:
        lib: Any = SSL._lib
        return SSL._ffi.string(lib.X509_verify_cert_error_string(errno)).decode()
    except Exception:  # noqa: BLE001 - a private binding that may move
        return f"X509 verification error {errno}"


def fingerprint_of(cert: x509.Certificate) -> str:
    """``sha256:AA:BB:…`` (docs/rules.md), the form rules pin."""
    return "sha256:" + cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _when(cert: x509.Certificate, attr: str) -> str:
    try:
        return getattr(cert, attr).strftime("%Y-%m-%d %H:%M:%S UTC")
    except Exception:  # noqa: BLE001 - a malformed date must not hide the rest
        return "?"


def _sans(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except Exception:  # noqa: BLE001 - no SAN extension, or one that does not parse
        return ()
    names = []
    for name in ext:
        value = name.value
        names.append(value.rfc4514_string() if isinstance(value, x509.Name) else str(value))
    return tuple(names)


def _name(name_of) -> str:
    try:
        return name_of().rfc4514_string() or "(empty)"
    except Exception:  # noqa: BLE001
        return "?"


def certificate_info(
    host: str, port: int, reason: str, chain: list[x509.Certificate]
) -> CertificateInfo:
    """What the dialog and the detail pane show: the leaf, its validity and the chain."""
    leaf = chain[0]
    return CertificateInfo(
        host=host,
        port=port,
        reason=reason,
        subject=_name(lambda: leaf.subject),
        issuer=_name(lambda: leaf.issuer),
        sans=_sans(leaf),
        not_before=_when(leaf, "not_valid_before_utc"),
        not_after=_when(leaf, "not_valid_after_utc"),
        fingerprint=fingerprint_of(leaf),
        chain=tuple(_name(lambda c=c: c.subject) for c in chain),
    )


def event_url(host: str, port: int) -> str:
    """The URL of a certificate event: ``https://HOST:PORT/`` (docs/rules.md)."""
    shown = f"[{host}]" if ":" in host else host
    return f"https://{shown}:{port}/"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A decision on one certificate: ``allow`` or ``reject``, who made it, and the rule
    that decided or that the answer was remembered as."""

    action: str
    why: str  # "by rule dev-box", "by you (once)", "(no answer within 30 s)", ...
    rule_id: str | None = None
    decision: Decision | None = None  # for the flows' trace
    gone: bool = False  # the person's client left before an answer: ask again


_serials = itertools.count(1)


@dataclasses.dataclass(eq=False)
class _Check:
    """One upstream TLS connection under verification."""

    host: str
    port: int
    client: connection.Client
    waiting_request: bool  # a request already waits on this connection (see module doc)
    problems: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # errno, depth
    chain: list[x509.Certificate] = dataclasses.field(default_factory=list)
    fingerprint: str | None = None
    verdict: Verdict | None = None
    pending: bool = False  # needs a person: asked on the connection's first request
    asked_by: Decision | None = None  # the rules' Decision that said "ask" (for the trace)
    deciding: asyncio.Future | None = None  # set while the first request asks
    logged: bool = False
    info: CertificateInfo | None = None
    serial: int = dataclasses.field(default_factory=lambda: next(_serials))

    @property
    def reason(self) -> str:
        return ", ".join(dict.fromkeys(reason_of(e) for e, _ in self.problems)) or "other"

    @property
    def openssl(self) -> str:
        parts = []
        for errno, depth in self.problems:
            text = openssl_text(errno)
            parts.append(f"{text} (depth {depth})" if depth else text)
        return "; ".join(dict.fromkeys(parts))

    def certificate(self) -> CertificateInfo | None:
        if self.info is None and self.chain:
            self.info = certificate_info(self.host, self.port, self.reason, self.chain)
        return self.info

    def rejection(self) -> str:
        """The text of the 502 and of the flows' error."""
        assert self.verdict is not None
        fp = f" [{self.fingerprint}]" if self.fingerprint else ""
        return (
            f"waylay: the TLS certificate of {self.host}:{self.port} failed verification: "
            f"{self.reason} ({self.openssl}){fp}; rejected {self.verdict.why}"
        )

    def summary(self) -> str:
        """The note on every flow that used this connection."""
        assert self.verdict is not None
        done = "allowed" if self.verdict.action == "allow" else "rejected"
        return (
            f"certificate of {self.host}:{self.port} failed verification ({self.reason}): "
            f"{done} {self.verdict.why}"
        )


class CertificateGuard:
    """The addon (placed before the decider and the recorder). Its collaborators: the
    rules, the pauses and the flow store; ``rule_fields`` is handed to the controller."""

    def __init__(self, rules: RulesFile, pauses: Pauses, recorder: Recorder) -> None:
        self.rules = rules
        self.pauses = pauses
        self.recorder = recorder
        self._checks: weakref.WeakKeyDictionary[connection.Server, _Check] = (
            weakref.WeakKeyDictionary()
        )
        # One open question per certificate: (host, port, fingerprint) -> (flow id, outcome).
        self._questions: dict[tuple[str, int, str], tuple[str, asyncio.Future]] = {}
        self._waiting: dict[str, int] = {}  # flow id of a question -> connections waiting
        # Answers given once, for the client connection that got them: reconnects inside
        # the same tunnel reuse them. (client id, host, port, fingerprint) -> Verdict.
        self._answered: dict[tuple[str, str, int, str], Verdict] = {}
        # The latest connection opened for a waiting request, per (client id, host, port):
        # the flow only learns of it when it ends.
        self._opened_for_request: dict[tuple[str, str, int], _Check] = {}

    # -- wiring ----------------------------------------------------------------------

    def rule_fields(self, flow_id: str, answer: Answer) -> dict:
        """Remember "always for this certificate": its host and port, pinned to its
        fingerprint."""
        info = self.pauses.info(flow_id)
        cert = info.certificate if info is not None else None
        if cert is None:
            raise KeyError(f"no certificate is paused on flow {flow_id}")
        fields: dict = {"fingerprint": cert.fingerprint}
        if answer.remember == "url":
            fields["urls"] = [event_url(cert.host, cert.port) + "*"]
        return fields

    def questions(self) -> dict[str, int]:
        """Open questions: the flow id each is shown on -> how many requests wait for its
        answer (that one included; on its connection or on others with that certificate)."""
        return dict(self._waiting)

    # -- mitmproxy hooks -------------------------------------------------------------

    def tls_start_server(self, data: tls.TlsData) -> None:
        ssl_conn = data.ssl_conn
        server = data.conn
        if ssl_conn is None or not isinstance(server, connection.Server) or not server.address:
            return
        mode = ssl_conn.get_verify_mode()
        if mode == SSL.VERIFY_NONE:  # ssl_insecure: mitmproxy verifies nothing, nor do we
            return
        check = _Check(
            host=str(server.address[0]),
            port=int(server.address[1]),
            client=data.context.client,
            waiting_request=any(isinstance(layer, HttpClient) for layer in data.context.layers),
        )
        self._checks[server] = check
        if check.waiting_request:
            self._opened_for_request[(check.client.id, check.host, check.port)] = check

        def verify(conn: SSL.Connection, cert, errno: int, depth: int, ok: int) -> bool:
            if ok:
                return True
            try:
                return self._on_problem(check, conn, errno, depth)
            except Exception:  # an exception here would fail the handshake obscurely
                log.exception("certificate check failed")
                check.problems.append((errno, depth))
                check.verdict = Verdict("reject", "(waylay could not check it: internal error)")
                return False

        ssl_conn.set_verify(mode, verify)

    def tls_established_server(self, data: tls.TlsData) -> None:
        server = data.conn
        check = self._checks.get(server) if isinstance(server, connection.Server) else None
        if check is not None and check.verdict is not None:
            self._applied(check, server)  # type: ignore[arg-type]

    def tls_failed_server(self, data: tls.TlsData) -> None:
        server = data.conn
        check = self._checks.get(server) if isinstance(server, connection.Server) else None
        if check is not None and check.verdict is not None and check.verdict.action == "reject":
            self._applied(check, server)  # type: ignore[arg-type]

    def requestheaders(self, flow: http.HTTPFlow):
        """Only a request on a connection with a bad certificate has anything to wait
        for: the others cost no coroutine (mitmproxy awaits whatever a hook returns)."""
        check = self._checks.get(flow.server_conn)
        if check is None or not check.problems:
            return None
        return self._hold(flow, check)

    async def _hold(self, flow: http.HTTPFlow, check: _Check) -> None:
        if check.verdict is None and flow.live and not flow.error and not flow.response:
            self.recorder.track(flow)  # shown (paused or waiting) before it goes on
            await self._decided(check, flow)
        if check.verdict is None:
            return
        self._annotate(flow, check)
        if check.verdict.action == "reject" and flow.error is None:
            # mitmproxy answers 502 with the connection's error; marking the flow now
            # keeps the other events (a request breakpoint...) from pausing it first.
            flow.error = Error(check.rejection())

    def response(self, flow: http.HTTPFlow) -> None:
        self._ended(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._ended(flow)

    def _ended(self, flow: http.HTTPFlow) -> None:
        """A flow whose request waited for a new connection learns of its check here."""
        check = self._checks.get(flow.server_conn)
        late = self._opened_for_request.get(
            (flow.client_conn.id, flow.request.host, flow.request.port)
        )
        if late is not None and (check is None or late.serial > check.serial):
            check = late
        if check is None or check.verdict is None:
            return
        self._annotate(flow, check)
        if check.verdict.action == "reject" and flow.response is None:
            flow.error = Error(check.rejection())

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        check = self._checks.get(flow.server_conn)
        if check is not None and check.verdict is None and check.problems:
            check.verdict = Verdict(
                "reject", "(raw TCP, no request to hold while asking; a rule would allow it)"
            )
            self._applied(check, flow.server_conn)

    def tcp_message(self, flow: tcp.TCPFlow) -> None:
        check = self._checks.get(flow.server_conn)
        if check is not None and check.verdict is not None and check.verdict.action == "reject":
            flow.messages[-1].content = b""  # nothing crosses a rejected connection

    def client_disconnected(self, client: connection.Client) -> None:
        for answered in [k for k in self._answered if k[0] == client.id]:
            del self._answered[answered]
        for opened in [k for k in self._opened_for_request if k[0] == client.id]:
            del self._opened_for_request[opened]

    # -- deciding at once (inside OpenSSL's verification) ------------------------------

    def _on_problem(self, check: _Check, conn: SSL.Connection, errno: int, depth: int) -> bool:
        """OpenSSL found a problem: True lets the handshake go on, False fails it."""
        check.problems.append((errno, depth))
        if check.verdict is None and not check.pending:
            self._first_problem(check, conn)
        if check.verdict is not None:
            return check.verdict.action == "allow"
        return True  # a person decides, on the first request

    def _first_problem(self, check: _Check, conn: SSL.Connection) -> None:
        # pyOpenSSL before 24.3 (allowed by mitmproxy 11) has no as_cryptography.
        check.chain = [c.to_cryptography() for c in conn.get_peer_cert_chain() or []]
        if not check.chain:
            check.verdict = Verdict("reject", "(the server sent no certificate)")
            return
        fp = check.fingerprint = fingerprint_of(check.chain[0])
        earlier = self._answered.get((check.client.id, check.host, check.port, fp))
        if earlier is not None:
            check.verdict = dataclasses.replace(
                earlier, why=f"{earlier.why}, earlier on this connection"
            )
            return
        decision = self.rules.decide(
            EventDetails(
                event="certificate",
                url=event_url(check.host, check.port),
                method="CONNECT",
                fingerprint=fp,
            )
        )
        rule = decision.rule
        if decision.action in ("allow", "reject"):
            why = f"by rule {rule.id}" if rule is not None else "by the rules file's [defaults]"
            check.verdict = Verdict(decision.action, why, rule.id if rule else None, decision)
        elif self.pauses.headless:
            check.verdict = Verdict(
                "reject",
                "(headless: nobody to ask, and no rule allows this certificate)",
                decision=decision,
            )
        elif check.waiting_request:
            check.verdict = Verdict(
                "reject",
                "(a request was already on its way over this new connection, so there was "
                "no time to ask; a rule with this fingerprint would allow it)",
                decision=decision,
            )
        else:
            check.pending = True
            check.asked_by = decision

    # -- asking (on the connection's first request) -------------------------------------

    async def _decided(self, check: _Check, flow: http.HTTPFlow) -> None:
        """Wait until the connection's certificate is decided; the first request asks."""
        if check.deciding is None:
            check.deciding = asyncio.get_running_loop().create_future()
            try:
                verdict = await self._ask(check, flow)
            except BaseException:
                verdict = Verdict("reject", "(the question ended unexpectedly)")
                raise
            finally:
                check.verdict = check.verdict or verdict
                check.deciding.set_result(None)
                self._applied(check, flow.server_conn)
        else:
            self._waiting_on(check, +1)
            try:
                await asyncio.shield(check.deciding)
            finally:
                self._waiting_on(check, -1)

    def _waiting_on(self, check: _Check, delta: int) -> None:
        key = (check.host, check.port, check.fingerprint or "")
        if key in self._questions:
            flow_id = self._questions[key][0]
            if flow_id in self._waiting:
                self._waiting[flow_id] += delta

    async def _ask(self, check: _Check, flow: http.HTTPFlow) -> Verdict:
        """One question per certificate at a time; the other connections wait for it."""
        assert check.fingerprint is not None
        key = (check.host, check.port, check.fingerprint)
        while key in self._questions:
            flow_id, shared = self._questions[key]
            self._waiting[flow_id] += 1
            try:
                verdict = await asyncio.shield(shared)
            finally:
                if flow_id in self._waiting:
                    self._waiting[flow_id] -= 1
            if not verdict.gone:
                self._remember_once(check, verdict)
                return verdict
            if not check.client.connected:
                return Verdict("reject", "(the client disconnected)")
        outcome: asyncio.Future = asyncio.get_running_loop().create_future()
        self._questions[key] = (flow.id, outcome)
        self._waiting[flow.id] = 1
        verdict = Verdict("reject", "(waylay shut down)")
        try:
            record_of(flow).certificate = check.certificate()
            answer = await self.pauses.ask(
                flow.id,
                "certificate",
                url=event_url(check.host, check.port),
                method=flow.request.method,
                details=(
                    ("problem", check.reason),
                    ("OpenSSL", check.openssl),
                    ("fingerprint", check.fingerprint),
                ),
                certificate=check.certificate(),
                asked_by=check.asked_by.rule_id if check.asked_by is not None else None,
                client=check.client,
            )
            verdict = self._verdict_of(answer)
        finally:
            del self._questions[key]
            self._waiting.pop(flow.id, None)
            outcome.set_result(verdict)
        self._remember_once(check, verdict)
        return verdict

    def _verdict_of(self, answer: Answer | Ended) -> Verdict:
        if isinstance(answer, Ended):
            if answer is Ended.TIMEOUT:
                why = f"(no answer within {self.pauses.timeout:g} s)"
            elif answer is Ended.GONE:
                return Verdict("reject", "(the client disconnected)", gone=True)
            else:
                why = f"({answer.value})"
            return Verdict("reject", why)
        action = answer.action if answer.action in ("allow", "reject") else "reject"
        rule_id = answer.params.get("remembered_as")
        why = "by you" + (f", remembered as rule {rule_id}" if rule_id else " (once)")
        return Verdict(action, why, rule_id)

    def _remember_once(self, check: _Check, verdict: Verdict) -> None:
        if check.fingerprint and not verdict.gone and check.client.connected:
            self._answered[(check.client.id, check.host, check.port, check.fingerprint)] = verdict

    # -- applying --------------------------------------------------------------------

    def _applied(self, check: _Check, server: connection.Server) -> None:
        verdict = check.verdict
        assert verdict is not None
        if check.logged:
            return
        check.logged = True
        check.certificate()
        if verdict.action == "reject":
            server.error = check.rejection()
        log.info("%s", check.summary())

    def _annotate(self, flow: http.HTTPFlow, check: _Check) -> None:
        """Note the decision on a flow once: the note, the rule, the certificate."""
        rec = record_of(flow)
        if rec.certificate_check == check.serial:
            return
        rec.certificate_check = check.serial
        info = check.certificate()
        if info is not None:
            rec.certificate = info
        assert check.verdict is not None
        rec.note(check.summary())
        decision = check.verdict.decision or check.asked_by
        if decision is not None:
            rec.decided(decision)
        if check.verdict.rule_id:
            rec.rule_id = check.verdict.rule_id
        self.recorder.touch(flow)
