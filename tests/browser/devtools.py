"""Chromium's DevTools protocol over ``--remote-debugging-pipe`` (JSON messages ended by
NUL on fds 3 and 4), and a HAR made from its Network events the way DevTools' "Save all
as HAR" makes one: request headers as sent (HTTP/2's pseudo-headers included), the
protocol as Chrome names it (``h2``, ``http/1.1``), bodies as text or base64, Chrome's
own ``_resourceType``/``_initiator``/``_priority`` fields, -1 for sizes it does not know.

Only what a test needs: one page, its requests, their bodies."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.browser.chromium import Chromium


class DevToolsChromium(Chromium):
    """A headless Chromium driven through its DevTools pipe (fds 3 and 4 of the child)."""

    def __init__(self, *, home: Path, proxy_port: int | None = None) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        self._child_fds = (to_chrome_r, from_chrome_w)
        super().__init__(
            "about:blank", home=home, proxy_port=proxy_port, extra=["--remote-debugging-pipe"]
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._ids = iter(range(1, 1 << 30))
        self._answers: dict[int, queue.SimpleQueue] = {}
        self._lock = threading.Lock()
        self.events: queue.SimpleQueue[dict] = queue.SimpleQueue()
        threading.Thread(target=self._read, daemon=True).start()

    def _popen_extra(self) -> dict[str, Any]:
        read_end, write_end = self._child_fds

        def to_3_and_4() -> None:  # in the child, before exec
            # out of the way first (either end may be fd 3 or 4 itself)
            r, w = (
                fcntl.fcntl(read_end, fcntl.F_DUPFD, 10),
                fcntl.fcntl(write_end, fcntl.F_DUPFD, 10),
            )
            os.dup2(r, 3)  # dup2 makes them inheritable; Python's other fds close on exec
            os.dup2(w, 4)

        return {"preexec_fn": to_3_and_4, "close_fds": False}

    def _read(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self._from_chrome, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                self.events.put({"method": "closed"})
                return
            pending += chunk
            *messages, pending = pending.split(b"\0")
            for raw in messages:
                message = json.loads(raw)
                if "id" in message:
                    with self._lock:
                        slot = self._answers.pop(message["id"], None)
                    if slot is not None:
                        slot.put(message)
                else:
                    self.events.put(message)

    def call(
        self, method: str, params: dict | None = None, session: str | None = None, timeout=30
    ) -> dict:
        """Send a command and wait for its answer; raises on a protocol error."""
        rid = next(self._ids)
        slot: queue.SimpleQueue = queue.SimpleQueue()
        with self._lock:
            self._answers[rid] = slot
        message: dict[str, Any] = {"id": rid, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        try:
            answer = slot.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no answer to {method} in {timeout}s:\n{self.output()}") from None
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def close(self) -> None:
        super().close()
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass


class NetworkLog:
    """The Network events of one page, by request id (DevTools' network panel)."""

    def __init__(self) -> None:
        self.requests: dict[str, dict] = {}

    def take(self, event: dict) -> None:
        method, params = event.get("method", ""), event.get("params", {})
        rid = params.get("requestId")
        if rid is None or not method.startswith("Network."):
            return
        entry = self.requests.setdefault(rid, {"id": rid})
        if method == "Network.requestWillBeSent":
            if "redirectResponse" in params:  # a redirect: the hop before keeps its id
                hop = dict(entry, response=params["redirectResponse"], finished=True)
                self.requests[f"{rid}:{len(self.requests)}"] = hop
                entry = self.requests[rid] = {"id": rid}
            entry.update(
                request=params["request"],
                wallTime=params["wallTime"],
                timestamp=params["timestamp"],
                type=params.get("type", "Other"),
                initiator=params.get("initiator", {}),
            )
        elif method == "Network.requestWillBeSentExtraInfo":
            entry["sentHeaders"] = params.get("headers", {})
        elif method == "Network.responseReceived":
            entry["response"] = params["response"]
        elif method == "Network.responseReceivedExtraInfo":
            entry["receivedHeaders"] = params.get("headers", {})
        elif method == "Network.loadingFinished":
            entry.update(finished=True, encodedDataLength=params.get("encodedDataLength", -1))
            entry["end"] = params["timestamp"]
        elif method == "Network.loadingFailed":
            entry.update(finished=True, failed=params.get("errorText", "failed"))
            entry["end"] = params["timestamp"]

    def done(self, path_end: str) -> bool:
        """Whether a request whose URL ends in ``path_end`` got its response (its loading
        finishes only once the page reads the body, which a bare ``fetch`` never does)."""
        return any(
            "response" in e and e.get("request", {}).get("url", "").split("?")[0].endswith(path_end)
            for e in self.requests.values()
        )


def _pairs(headers: dict[str, str]) -> list[dict[str, str]]:
    # DevTools joins repeated headers with newlines; HAR has one pair each
    return [
        {"name": name, "value": value}
        for name, joined in headers.items()
        for value in str(joined).split("\n")
    ]


def _protocol(response: dict | None) -> str:
    """The version DevTools writes: its ``filteredProtocolName`` ("h2" is "http/2.0")."""
    protocol = ((response or {}).get("protocol") or "http/1.1").lower()
    return "http/2.0" if protocol == "h2" else protocol


def har_of(log: NetworkLog, bodies: dict[str, tuple[str, bool]]) -> dict:
    """HAR 1.2 as DevTools writes it, from ``log`` and the bodies (text, base64?) that
    ``Network.getResponseBody`` gave, by request id."""
    entries = []
    for rid, e in log.requests.items():
        request, response = e.get("request"), e.get("response")
        if request is None or request["url"].startswith(("data:", "about:")):
            continue
        sent = e.get("sentHeaders") or request.get("headers", {})
        started = datetime.fromtimestamp(e["wallTime"], UTC)
        elapsed = max(0.0, (e.get("end", e["timestamp"]) - e["timestamp"]) * 1000)
        har_request: dict[str, Any] = {
            "method": request["method"],
            "url": request["url"] + request.get("urlFragment", ""),
            "httpVersion": _protocol(response) if response else "",
            "headers": _pairs(sent),
            "queryString": [],
            "cookies": [],
            "headersSize": -1,
            "bodySize": len(request.get("postData", "")),
        }
        if "postData" in request:
            har_request["postData"] = {
                "mimeType": sent.get("content-type") or sent.get("Content-Type") or "",
                "text": request["postData"],
            }
        content: dict[str, Any] = {"size": 0, "mimeType": "x-unknown"}
        har_response: dict[str, Any] = {
            "status": 0,
            "statusText": "",
            "httpVersion": "",
            "headers": [],
            "cookies": [],
            "content": content,
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "_transferSize": e.get("encodedDataLength", 0),
            "_error": e.get("failed"),
        }
        if response is not None:
            received = e.get("receivedHeaders") or response.get("headers", {})
            har_response.update(
                status=response["status"],
                statusText=response.get("statusText", ""),
                httpVersion=_protocol(response),
                headers=_pairs(received),
                redirectURL=received.get("location") or received.get("Location") or "",
            )
            content["mimeType"] = response.get("mimeType") or "x-unknown"
            text, encoded = bodies.get(rid, ("", False))
            if text:
                content["text"] = text
                content["size"] = len(base64.b64decode(text)) if encoded else len(text.encode())
                if encoded:
                    content["encoding"] = "base64"
        entries.append(
            {
                "_initiator": e.get("initiator", {}),
                "_priority": request.get("initialPriority", "High"),
                "_resourceType": e.get("type", "Other").lower(),
                "cache": {},
                "connection": "",
                "pageref": "page_1",
                "request": har_request,
                "response": har_response,
                "serverIPAddress": (response or {}).get("remoteIPAddress", ""),
                "startedDateTime": started.isoformat().replace("+00:00", "Z"),
                "time": elapsed,
                "timings": {
                    "blocked": -1,
                    "dns": -1,
                    "ssl": -1,
                    "connect": -1,
                    "send": 0,
                    "wait": elapsed,
                    "receive": 0,
                    "_blocked_queueing": -1,
                },
            }
        )
    entries.sort(key=lambda x: x["startedDateTime"])
    first = entries[0]["startedDateTime"] if entries else "1970-01-01T00:00:00Z"
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "WebInspector", "version": "537.36"},
            "pages": [
                {
                    "startedDateTime": first,
                    "id": "page_1",
                    "title": "waylay test site",
                    "pageTimings": {"onContentLoad": -1, "onLoad": -1},
                }
            ],
            "entries": entries,
        }
    }


def record_page(chrome: DevToolsChromium, url: str, until: str, timeout: float = 60) -> dict:
    """Load ``url`` in a new tab with the Network domain on, until the request ending in
    ``until`` has finished; then the HAR DevTools would save."""
    # the tab Chromium opened (a tab made by Target.createTarget stays in the background,
    # where the page's timers do not run)
    tabs = chrome.call("Target.getTargets")["targetInfos"]
    target = next(t["targetId"] for t in tabs if t["type"] == "page")
    session = chrome.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"
    ]
    chrome.call("Network.enable", {}, session)
    chrome.call("Page.enable", {}, session)
    log = NetworkLog()
    chrome.call("Page.navigate", {"url": url}, session)
    deadline = time.monotonic() + timeout
    while not log.done(until):
        left = deadline - time.monotonic()
        if left <= 0:
            seen = [
                (e.get("request", {}).get("url"), e.get("finished"), e.get("failed"))
                for e in log.requests.values()
            ]
            raise AssertionError(f"{url}: no {until} in {timeout}s; requests seen: {seen}")
        try:
            event = chrome.events.get(timeout=left)
        except queue.Empty:
            continue
        if event.get("method") == "closed":
            raise AssertionError(f"Chromium closed its pipe:\n{chrome.output()}")
        if event.get("sessionId") == session:
            log.take(event)
    bodies: dict[str, tuple[str, bool]] = {}
    for rid, e in log.requests.items():
        if e.get("response") and not e.get("failed") and ":" not in rid:
            try:
                got = chrome.call("Network.getResponseBody", {"requestId": rid}, session)
            except AssertionError:  # no body kept (a ping, a redirect, a stream)
                continue
            bodies[rid] = (got["body"], bool(got["base64Encoded"]))
    return har_of(log, bodies)
