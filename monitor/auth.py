"""The ``auth`` event: answering 401/407 challenges from rules or from the screen (docs/rules.md).

A server answers 401 with a Basic or Digest ``WWW-Authenticate`` challenge, or the upstream
proxy of ``--mode upstream:URL`` answers 407 with ``Proxy-Authenticate``: the rules decide
(``credentials``, ``cancel``, or ``ask``, the default), and for credentials the request is
re-sent upstream with ``Authorization`` / ``Proxy-Authorization``. The client only ever
sees the final response, as behind a browser's GetAuthCredentials / onAuthRequired.

How a retry reaches upstream
    Through mitmproxy's own connection machinery, not a second HTTP client: a copy of the
    request (method, headers, body) is played by a ``ReplayHandler`` (the engine of
    mitmproxy's client replay) on a fresh server connection. The retry therefore gets what
    every proxied request gets: the same upstream TLS verification (tlsconfig: certifi plus
    ``ssl_verify_upstream_trusted_ca``; the certificate event's hooks), the same upstream
    proxy (absolute-form requests or CONNECT in upstream mode), HTTP/2, reverse mode's
    target. Only the retry's connection-level hooks (server connect, TLS, upstream CONNECT)
    reach the addons; its request and response hooks do not, so a retry is neither a second
    flow in the list nor decided a second time. Its response replaces the 401/407 on the
    original flow before the decider and the recorder see it. The replay's copy of the
    client connection keeps the original's id, so what was decided for that client (a
    certificate allowed once) holds for its retry. An httpx client would have to replicate
    TLS verification, certificate decisions and upstream mode, and would disagree with
    mitmproxy on some of them sooner or later.

HTTPS through an upstream proxy
    The proxy's 407 to a CONNECT never becomes a response a hook could replace (mitmproxy
    fails the connection and the client gets a 502). So in ``http_connect_upstream`` the
    first CONNECT is probed with a CONNECT of our own; a 407 is an auth event on the CONNECT
    flow (shown in the list, so its dialog can be answered), credentials are checked with a
    second probe and then put on the real CONNECT. Later CONNECTs carry cached credentials;
    a proxy that wanted none is not probed again until a CONNECT is refused with 407.

Challenges, signing and the auth cache
    Parsing, Basic/Digest signing and the cache of accepted credentials (per server or
    upstream proxy, realm and scheme) are in ``monitor.challenges``; this module is the
    addon: the retry, the probe and the event.

No loops
    At most ``MAX_TRIES`` credentials per request. Credentials a rule supplies that are
    rejected end it (the 401 goes to the client); credentials a person typed that are
    rejected ask again. A Digest ``stale=true`` answer is a new nonce, not a rejection.

Auth cache
    Accepted credentials are kept in memory per server and realm (per upstream proxy for
    407) and per scheme, and later requests under the same path carry them up front, as a
    browser does. That is done by ``cache_hook``, which the session places after the
    decider, so a request that a rule rewrites to another host does not take this host's
    credentials along. Cached credentials refused with a challenge of another scheme (a
    server that moved from Basic to Digest) were not rejected: the rules or a person
    answer the new challenge. Credentials that worked also answer every other dialog open
    for the same server and realm.

Secrets
    A password lives in this process's memory and in ``secrets.toml`` when remembered;
    never in a rule, a note, a log line or a HAR export (the headers waylay adds are listed
    in the flow's ``added_headers`` and redacted there and on the screen).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from mitmproxy import flow as mflow
from mitmproxy import http, master
from mitmproxy.addons.clientplayback import ReplayHandler
from mitmproxy.net.http import http1
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers.http import (
    HttpErrorHook,
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from mitmproxy.proxy.mode_specs import ProxyMode, UpstreamMode

from monitor import limits
from monitor.challenges import (
    AuthCache,
    CacheEntry,
    Challenge,
    Signer,
    SigningError,
    is_auth_challenge,
    parse_challenges,
    pick,
    protected_prefix,
    unsupported,
)
from monitor.pauses import Ended, Pauses
from monitor.record import flow_type, record_of
from monitor.recorder import Recorder
from policies import EventDetails, RulesFile
from widgets.model import Answer, AuthFacts

log = logging.getLogger("waylay.auth")

MAX_TRIES = 3
"""Credentials tried per request, at most (rules, the dialog and stale nonces together)."""

_SHARED = "shared"  # answer param: credentials accepted on another request of the realm


def upstream_proxy(mode: str) -> tuple[str, int] | None:
    """The upstream proxy's address in ``--mode upstream:URL``, else None."""
    if not mode.startswith("upstream:"):
        return None
    spec = ProxyMode.parse(mode)
    assert isinstance(spec, UpstreamMode)
    return spec.address


# -- the retry ----------------------------------------------------------------------------

_SKIPPED_HOOKS = (HttpRequestHeadersHook, HttpRequestHook, HttpResponseHeadersHook)


class _Retry(ReplayHandler):
    """mitmproxy's replay of one request on a fresh server connection, whose flow hooks
    stay private: only connection-level hooks (TLS, server connect, upstream CONNECT) reach
    the addons."""

    def __init__(self, flow: http.HTTPFlow, master) -> None:
        super().__init__(flow, master.options)
        self._master = master
        # The replay works on a copy of the client connection; with the original's id it
        # stays the same client for the addons (e.g. a certificate allowed once for it).
        # Connections hash by id: re-key the layer's table.
        mock = self.layer.connections.pop(self.client)
        self.client.id = flow.client_conn.id
        self.layer.connections[self.client] = mock

    async def handle_hook(self, hook: commands.StartHook) -> None:
        if isinstance(hook, HttpResponseHook | HttpErrorHook):
            for io in self.transports.values():
                if io.handler:
                    io.handler.cancel()
            handlers = [io.handler for io in self.transports.values() if io.handler]
            if handlers:
                await asyncio.wait(handlers)
            self.done.set()
            return
        if isinstance(hook, _SKIPPED_HOOKS):
            return
        await self._master.addons.handle_lifecycle(hook)
        for data in hook.args():
            if isinstance(data, mflow.Flow):
                await data.wait_for_resume()


async def resend(master, flow: http.HTTPFlow, header: str, value: str) -> http.Response | str:
    """Send a copy of ``flow``'s request upstream with ``header: value``; the response, or
    why there is none."""
    retry = http.HTTPFlow(flow.client_conn, flow.server_conn.copy())
    retry.request = flow.request.copy()
    retry.request.headers[header] = value
    retry.is_replay = "request"
    try:
        handler = _Retry(retry, master)
        await handler.replay()
    except Exception as e:  # noqa: BLE001 - reported on the flow, the 401 goes through
        log.debug("retry failed", exc_info=True)
        return f"{type(e).__name__}: {e}"
    if retry.response is not None:
        return retry.response
    return retry.error.msg if retry.error is not None else "no response"


# -- the addon ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Asking:
    """What the dialog of a paused auth event is about, for the rule it may remember."""

    host: str
    port: int
    proxy: bool
    realm: str


@dataclass
class _Exchange:
    """One challenged request, as the event loop sees it: who asked, what to sign, and how
    to send it again with credentials."""

    proxy: bool
    host: str
    port: int
    url: str  # what rules match and the dialog shows
    method: str
    target: str  # the request-target Digest signs
    header: str  # Authorization or Proxy-Authorization
    send: Callable[[str], Awaitable[http.Response | str]]
    preempted: CacheEntry | None = None  # cached credentials it carried up front

    def passes(self, status: int) -> str:
        """What happens when nobody answers the challenge."""
        if self.method == "CONNECT":  # mitmproxy turns a refused CONNECT into a 502
            return "the CONNECT goes on without credentials (the client gets a 502)"
        return f"the {status} passes to the client"


def secret_name(host: str, realm: str, username: str) -> str:
    """The secrets-store name of remembered credentials: one per host, realm and user."""
    raw = f"auth-{host}-{realm}-{username}".lower()
    slug = re.sub(r"[^a-z0-9_]+", "-", raw).strip("-_")
    return (slug or "auth")[:80].rstrip("-_")


class _CacheHook:
    """The auth cache's request hook, placed after the decider (see the module docstring)."""

    def __init__(self, responder: AuthResponder) -> None:
        self.responder = responder

    def request(self, flow: http.HTTPFlow) -> None:
        self.responder.preempt(flow)


class AuthResponder:
    """The mitmproxy addon of the ``auth`` event.

    Its collaborators: the rules (decisions, secrets), the pauses (asking a person), the
    flow store (a CONNECT probed for proxy credentials becomes a row), and how to reach the
    upstream proxy (``mode``, ``upstream_ca``). mitmproxy's ``Master``, which replays the
    retries, arrives with the ``load`` hook. ``cache_hook`` is a second addon that the
    session places after the decider; ``rule_fields`` is handed to the controller."""

    def __init__(
        self,
        rules: RulesFile,
        pauses: Pauses,
        recorder: Recorder,
        *,
        mode: str = "regular",
        upstream_ca: Path | None = None,
    ) -> None:
        self.rules = rules
        self.pauses = pauses
        self.recorder = recorder
        self.mode = mode
        self.upstream_ca = upstream_ca
        self.master: master.Master | None = None
        self.cache = AuthCache()
        self.proxy_address = upstream_proxy(mode)
        self.cache_hook = _CacheHook(self)
        self._asking: dict[str, _Asking] = {}
        self._proxy_lock: asyncio.Lock | None = None
        self._proxy_open = False  # a CONNECT probe got through without credentials

    def load(self, loader) -> None:
        self.master = loader.master

    # -- remembering ----------------------------------------------------------------------

    def rule_fields(self, flow_id: str, answer: Answer) -> dict:
        """The auth-specific fields of a remembered rule. Called by the controller before it
        saves the rule: with the password in the answer, it goes to the secrets store now,
        so the rule never holds more than its name."""
        info = self.pauses.info(flow_id)  # an immutable PausedEvent: safe on any thread
        asking = info.auth if info is not None else None
        if asking is None:
            raise KeyError("this flow is not asking for credentials")
        fields: dict = {"realm": asking.realm or None}
        username = answer.params.get("username")
        if answer.action == "credentials" and username:
            name = secret_name(asking.host, asking.realm, username)
            password = answer.params.get("password")
            if password is not None:
                self.rules.secrets.set(name, password)
            fields["secret"] = name
        if asking.proxy:
            fields["proxy"] = True
            if answer.remember == "host":
                fields["urls"] = ["<all_urls>"]  # "this host" is the proxy: every URL
        return fields

    # -- the auth cache, up front ---------------------------------------------------------

    def preempt(self, flow: http.HTTPFlow) -> None:
        """Credentials from the auth cache, up front (after the decider's request hook)."""
        if flow.response is not None or flow.error is not None or not flow.live:
            return
        record_of(flow).auth_sent = True
        req = flow.request
        if self.proxy_address and req.scheme == "http" and "proxy-authorization" not in req.headers:
            self._attach(flow, "Proxy-Authorization", self._proxy_key(), "", req.url)
        if "authorization" not in req.headers:
            self._attach(flow, "Authorization", self._server_key(flow), req.path, req.path)

    def _attach(self, flow, header: str, key: tuple, path: str, target: str) -> None:
        entry = self.cache.find(key, path)
        if entry is None:
            return
        try:
            value = entry.signer.header(flow.request.method, target)
        except SigningError:
            return
        flow.request.headers[header] = value
        rec = record_of(flow)
        rec.added(header)
        rec.auth_preempted[header.lower()] = entry
        signer = entry.signer
        record_of(flow).note(
            f"auth: {header} for {signer.username} sent up front "
            f"({signer.scheme}, realm {signer.realm!r}, accepted earlier)",
        )

    # -- hooks ----------------------------------------------------------------------------

    def response(self, flow: http.HTTPFlow):
        """Only a 401 or 407 can be a challenge: other responses cost no coroutine
        (mitmproxy awaits whatever a hook returns)."""
        if flow.response is None or flow.response.status_code not in (401, 407):
            return None
        return self._response(flow)

    async def _response(self, flow: http.HTTPFlow) -> None:
        rec = record_of(flow)
        if (
            flow.response is None
            or flow.error is not None
            or not flow.live
            or rec.local_response
            or not rec.auth_sent
        ):
            return
        found = self._challenges(flow.response)
        if found is None:
            return
        if flow.response.stream:
            record_of(flow).note(
                "auth: the challenge was streamed to the client; it cannot be answered"
            )
            return
        proxy, challenges = found
        req = flow.request
        if proxy:
            assert self.proxy_address is not None
            host, port = self.proxy_address
            target = req.url
        else:
            # the destination, never the Host header: a request to B that says "Host: A"
            # must not get A's credentials (monitor/destination.py)
            host, port, target = req.host, req.port, req.path
        header = "Proxy-Authorization" if proxy else "Authorization"

        async def send(value: str) -> http.Response | str:
            assert self.master is not None
            return await resend(self.master, flow, header, value)

        ex = _Exchange(
            proxy=proxy,
            host=host,
            port=port,
            url=req.url,
            method=req.method,
            target=target,
            header=header,
            send=send,
            preempted=rec.auth_preempted.get(header.lower()),
        )
        if req.raw_content is None:
            record_of(flow).note(f"auth: {flow.response.status_code} challenge, but the request body was "
                 "streamed and cannot be re-sent; it passes to the client")  # fmt: skip
            return
        try:
            last, value = await self._event(flow, flow.response, challenges, ex)
            if last is not None:
                flow.response = last  # the authenticated response, or the latest challenge
            if value is not None:
                flow.request.headers[header] = value
                rec.added(header)
        finally:
            self.recorder.touch(flow)

    async def http_connect_upstream(self, flow: http.HTTPFlow) -> None:
        """HTTPS in upstream mode: the CONNECT to the upstream proxy carries its credentials.

        The proxy's 407 to a CONNECT is not a response a hook can replace (mitmproxy fails
        the connection), so the first CONNECT is probed: a CONNECT of our own tells whether
        the proxy wants credentials and checks the ones a rule or a person gives. Later
        CONNECTs carry the cached credentials without probing."""
        if self.proxy_address is None or "proxy-authorization" in flow.request.headers:
            return
        if self._proxy_lock is None:
            self._proxy_lock = asyncio.Lock()
        async with self._proxy_lock:  # one probe (and one dialog) at a time
            if self._sign_connect(flow) or self._proxy_open:
                return
            await self._probe_and_ask(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        """The upstream proxy refused a CONNECT with 407 (it started to want credentials, or
        the cached ones went bad): the next CONNECT probes and asks again."""
        if self.proxy_address is None or flow.error is None:
            return
        if "refused HTTP CONNECT request: 407" in flow.error.msg:
            self._proxy_open = False
            self.cache.clear(self._proxy_key())

    # -- the event ------------------------------------------------------------------------

    def _challenges(self, response: http.Response) -> tuple[bool, list[Challenge]] | None:
        """(proxy?, challenges) when ``response`` is an auth challenge waylay handles."""
        if response.status_code == 401:
            proxy, header = False, "www-authenticate"
        elif response.status_code == 407 and self.proxy_address is not None:
            proxy, header = True, "proxy-authenticate"
        else:
            return None
        challenges = parse_challenges(response.headers.get_all(header))
        if not is_auth_challenge(challenges):
            return None
        return proxy, challenges

    def _server_key(self, flow: http.HTTPFlow) -> tuple:
        req = flow.request
        return ("server", req.scheme, req.host.lower(), req.port)

    def _proxy_key(self) -> tuple:
        assert self.proxy_address is not None
        return ("proxy", *self.proxy_address)

    def _key(self, ex: _Exchange, flow: http.HTTPFlow) -> tuple[tuple, str]:
        if ex.proxy:
            return self._proxy_key(), ""
        return self._server_key(flow), protected_prefix(flow.request.path)

    async def _event(
        self,
        flow: http.HTTPFlow,
        response: http.Response,
        challenges: list[Challenge],
        ex: _Exchange,
    ) -> tuple[http.Response | None, str | None]:
        """Answer a challenge until it is met, passed on, or ``MAX_TRIES`` credentials were
        tried. Returns the last response upstream gave (None: nothing was re-sent) and the
        header value that was accepted (None: the challenge passes to the client)."""
        status = response.status_code
        key, prefix = self._key(ex, flow)
        challenge = pick(challenges)
        shown = challenge or next(c for c in challenges if c.kind in ("basic", "digest"))
        asker = f"the upstream proxy {ex.host}:{ex.port}" if ex.proxy else f"{ex.host}:{ex.port}"
        record_of(flow).note(f"auth: {status} from {asker}: {shown.label} realm {shown.realm!r}")
        if challenge is None:
            record_of(flow).note(f"auth: {unsupported(shown)}; {ex.passes(status)}")
            return None, None

        failed: list[tuple[str, str]] = []
        again: tuple[tuple[str, str], str] | None = None
        if ex.preempted is not None:
            used = ex.preempted
            self.cache.drop(key, used)
            if challenge.stale and challenge.kind == "digest" and used.signer.scheme == "Digest":
                record_of(flow).note("auth: the nonce was stale; trying again with the new one")
                again = (used.signer.credentials, "cache")
            elif used.space != (challenge.realm, challenge.label):
                # Another scheme or realm: the cached credentials answered a question that
                # is no longer asked here; they were not rejected, the new one is answered.
                record_of(flow).note(
                    f"auth: the cached {used.signer.scheme} credentials (realm "
                    f"{used.signer.realm!r}) do not answer this {challenge.label} challenge"
                )
            else:
                failed.append(used.signer.credentials)
                record_of(flow).note(
                    f"auth: the cached credentials for {used.signer.username} were rejected"
                )

        last: http.Response | None = None
        tries = 0
        while tries < MAX_TRIES:
            if again is not None:
                (credentials, origin), again = again, None
            else:
                got = await self._credentials(flow, ex, status, challenge, failed, tries)
                if got is None:
                    return last, None
                credentials, origin = got
            username, password = credentials
            signer = Signer(challenge, username, password)
            try:
                value = signer.header(ex.method, ex.target)
            except SigningError as e:
                record_of(flow).note(f"auth: {e}; {ex.passes(status)}")
                return last, None
            tries += 1
            result = await ex.send(value)
            if isinstance(result, str):
                record_of(flow).note(f"auth: the retry failed ({result}); {ex.passes(status)}")
                return last, None
            last = result
            found = self._challenges(result)
            if found is None or found[0] != ex.proxy:
                self.cache.store(key, signer, prefix)
                record_of(flow).note(
                    f"auth: {result.status_code} {result.reason} with credentials for {username}",
                )
                self._share(
                    flow.id, _Asking(ex.host, ex.port, ex.proxy, challenge.realm), credentials
                )
                return last, value
            status = result.status_code
            fresh = pick(found[1])
            if fresh is None:
                record_of(flow).note(
                    f"auth: credentials for {username} rejected; no challenge to answer"
                )
                return last, None
            if fresh.kind == "digest" and fresh.stale and challenge.kind == "digest":
                record_of(flow).note("auth: the nonce was stale; trying again with the new one")
                again = (credentials, origin)
            else:
                failed.append(credentials)
                record_of(flow).note(f"auth: credentials for {username} rejected ({status})")
                if origin not in ("you", "cache"):  # a rule would give the same again
                    record_of(flow).note(f"auth: {origin} gave them; {ex.passes(status)}")
                    return last, None
            challenge = fresh
        record_of(flow).note(f"auth: {MAX_TRIES} tries; {ex.passes(status)}")
        return last, None

    async def _credentials(
        self,
        flow: http.HTTPFlow,
        ex: _Exchange,
        status: int,
        challenge: Challenge,
        failed: list[tuple[str, str]],
        tries: int,
    ) -> tuple[tuple[str, str], str] | None:
        """Who answers the challenge: a rule, the defaults, or a person. None: it passes."""
        rules = self.rules
        decision = rules.decide(
            EventDetails(
                event="auth",
                url=ex.url,
                method=ex.method,
                type=flow_type(flow),
                status=status,
                realm=challenge.realm,
                proxy=ex.proxy,
                flow=flow,
            )
        )
        record_of(flow).decided(decision)
        who = f"rule {decision.rule.id}" if decision.rule is not None else "defaults"
        if decision.action == "credentials" and decision.rule is not None:
            rule = decision.rule
            password = rules.secrets.get(rule.secret) if rule.secret else None
            if rule.username is None or password is None:
                record_of(flow).note(
                    f"auth: {who}: secret {rule.secret!r} is not set; {ex.passes(status)}"
                )
                return None
            if (rule.username, password) in failed:
                record_of(flow).note(
                    f"auth: {who} gives the rejected credentials; {ex.passes(status)}"
                )
                return None
            record_of(flow).note(f"auth: credentials supplied for {rule.username} ({who})")
            return (rule.username, password), who
        if decision.action != "ask":
            record_of(flow).note(f"auth: cancelled ({who}); {ex.passes(status)}")
            return None

        details: tuple[tuple[str, str], ...] = (
            ("host", ex.host),
            ("port", str(ex.port)),
            ("proxy", "yes" if ex.proxy else "no"),
            ("realm", challenge.realm),
            ("scheme", challenge.label),
            ("url", ex.url),
        )
        if tries:
            details += (("attempt", f"{tries + 1} of {MAX_TRIES}"),)
        self._asking[flow.id] = _Asking(ex.host, ex.port, ex.proxy, challenge.realm)
        try:
            answer = await self.pauses.ask(
                flow.id,
                "auth",
                url=ex.url,
                method=ex.method,
                details=details,
                auth=AuthFacts(
                    host=ex.host,
                    port=ex.port,
                    proxy=ex.proxy,
                    realm=challenge.realm,
                    scheme=challenge.label,
                    attempt=tries + 1,
                    max_attempts=MAX_TRIES,
                ),
                asked_by=decision.rule_id,
                client=flow.client_conn,
            )
        finally:
            self._asking.pop(flow.id, None)
        if isinstance(answer, Ended):
            record_of(flow).note(f"auth: {answer.value}; {ex.passes(status)}")
            return None
        params = answer.params
        if rule_id := params.get("remembered_as"):
            record_of(flow).note(f"auth: remembered as rule {rule_id}")
        if answer.action != "credentials" or not params.get("username"):
            record_of(flow).note(f"auth: cancelled (you); {ex.passes(status)}")
            return None
        username = str(params["username"])
        if params.get(_SHARED):
            record_of(flow).note(
                f"auth: credentials for {username} accepted on another request; trying them"
            )
        else:
            record_of(flow).note(f"auth: credentials supplied for {username} (you)")
        return (username, str(params.get("password") or "")), "you"

    def _share(self, flow_id: str, asking: _Asking, credentials: tuple[str, str]) -> None:
        """Credentials that worked answer every other dialog open for the same server (or
        proxy) and realm: one question for a page's many requests, as in a browser."""
        username, password = credentials
        for other_id, other in list(self._asking.items()):
            if other_id != flow_id and other == asking:
                shared = Answer("credentials", {"username": username, "password": password})
                shared.params[_SHARED] = True
                self.pauses.answer(other_id, "auth", shared)

    # -- CONNECT through the upstream proxy -------------------------------------------------

    def _sign_connect(self, flow: http.HTTPFlow) -> bool:
        entry = self.cache.find(self._proxy_key(), "")
        if entry is None:
            return False
        try:
            value = entry.signer.header("CONNECT", flow.request.authority)
        except SigningError:
            return False
        flow.request.headers["Proxy-Authorization"] = value
        return True

    async def _probe_and_ask(self, flow: http.HTTPFlow) -> None:
        assert self.proxy_address is not None
        authority = flow.request.authority
        probe = await self._probe(authority, None)
        if isinstance(probe, str):
            log.info("probing the upstream proxy failed: %s", probe)
            return  # the real CONNECT will tell the client
        found = self._challenges(probe)
        if found is None or not found[0]:
            self._proxy_open = True
            return
        # An auth event on the CONNECT itself: show it, so that the dialog can be answered.
        recorder = self.recorder
        flow.response = probe
        recorder.track(flow)
        host, port = self.proxy_address

        async def send(value: str) -> http.Response | str:
            return await self._probe(authority, value)

        ex = _Exchange(
            proxy=True,
            host=host,
            port=port,
            url=f"https://{authority}/",
            method="CONNECT",
            target=authority,
            header="Proxy-Authorization",
            send=send,
        )
        try:
            last, value = await self._event(flow, probe, found[1], ex)
            if last is not None:
                flow.response = last
            if value is not None:
                self._sign_connect(flow)  # a fresh header: a Digest nonce count is single-use
        finally:
            recorder.response(flow)  # finished: the CONNECT itself goes on after this hook

    async def _probe(self, authority: str, value: str | None) -> http.Response | str:
        """A CONNECT of our own to the upstream proxy: its response head, or why none."""
        assert self.proxy_address is not None
        host, port = self.proxy_address
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if value is not None:
            lines.append(f"Proxy-Authorization: {value}")
        ssl_context = None
        if self.mode.split(":", 1)[1].startswith("https:"):
            ssl_context = _proxy_tls_context(self.upstream_ca)
        writer = None
        # The client's CONNECT waits for the probe: it is part of connecting to the proxy.
        timeout = min(PROBE_TIMEOUT, limits.CONFIG.connect_timeout)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=ssl_context), timeout
            )
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            response = http1.read_response_head(head.split(b"\r\n")[:-2])
            response.content = b""
            return response
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as e:
            return str(e) or type(e).__name__
        finally:
            if writer is not None:
                writer.close()


PROBE_TIMEOUT = 15.0


def _proxy_tls_context(extra_ca):
    import ssl

    import certifi

    context = ssl.create_default_context(cafile=certifi.where())
    if extra_ca is not None:
        context.load_verify_locations(cafile=str(extra_ca))
    return context
