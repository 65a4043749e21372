"""A test site that loads one of each kind of subresource, for a real browser.

``Site`` is a ``tests.servers.Upstream`` whose handler serves the page ``/`` (and the
resources under ``/r/``) and records every request (method, path, headers, body). The page
loads each resource once and finally requests ``/r/done``. ``EXPECTED`` is the
declarativeNetRequest resource type Chrome gives each path; ``SECURE_ONLY`` are the
paths a non-secure (plain HTTP, non-loopback) origin never loads.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from tests.servers import Upstream

EXPECTED = {
    "/": "main_frame",
    "/r/style.css": "stylesheet",
    "/r/script.js": "script",
    "/r/img.png": "image",
    "/r/font.woff2": "font",
    "/r/frame.html": "sub_frame",
    "/r/doc.xml": "sub_frame",
    "/r/sheet.xsl": "stylesheet",
    "/r/pinged.html": "sub_frame",
    "/r/a-ping": "ping",
    "/r/xhr": "xmlhttprequest",
    "/r/xhr-json": "xmlhttprequest",
    "/r/fetch-get": "xmlhttprequest",
    "/r/fetch-post": "xmlhttprequest",
    "/r/fetch-form": "xmlhttprequest",
    "/r/keepalive": "xmlhttprequest",
    "/r/events": "xmlhttprequest",
    "/r/beacon": "ping",
    "/r/beacon-form": "ping",
    "/r/csp-report": "ping",
    "/r/audio.wav": "media",
    "/r/track.vtt": "media",
    "/r/video.webm": "media",
    "/r/object.png": "object",
    "/r/embed.png": "object",
    "/r/object.html": "object",
    "/r/worker.js": "script",
    "/r/module.mjs": "script",
    "/r/data.json": "script",
    "/r/prefetch.bin": "other",
    "/r/frame-img.gif": "image",
    "/r/frame-style.css": "stylesheet",
    "/r/nested.html": "sub_frame",
    "/r/img-noext": "image",
    "/r/script-noext": "script",
    "/r/style-noext": "stylesheet",
    "/r/ws": "websocket",
    "/sw.js": "script",
    "/r/sw-fetch": "xmlhttprequest",
    "/r/done": "xmlhttprequest",
}
SECURE_ONLY = {"/sw.js", "/r/sw-fetch"}

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63f8ffff3f0005fe02fea7d6a4b80000000049454e44ae426082"
)
GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>waylay test site</title>
<link rel="stylesheet" href="/r/style.css">
<link rel="stylesheet" href="/r/style-noext">
<link rel="prefetch" href="/r/prefetch.bin">
<script src="/r/script.js"></script>
<script src="/r/script-noext"></script>
</head><body>
<img src="/r/img.png"><img src="/r/img-noext">
<iframe src="/r/frame.html"></iframe>
<iframe src="/r/doc.xml"></iframe>
<iframe name="sink"></iframe>
<a id="pinger" href="/r/pinged.html" ping="/r/a-ping" target="sink">ping</a>
<audio src="/r/audio.wav" preload="auto"></audio>
<video src="/r/video.webm" preload="auto"><track default kind="captions" srclang="en" src="/r/track.vtt"></video>
<object data="/r/object.png" type="image/png"></object>
<embed src="/r/embed.png" type="image/png">
<object data="/r/object.html" type="text/html"></object>
<script type="module" src="/r/module.mjs"></script>
<script>
const WS = %(ws)s;
function settle(p) { return Promise.race([p.then(() => 0, () => 0), new Promise(r => setTimeout(r, 3000))]); }
async function main() {
  const waits = [];
  waits.push(settle(new FontFace("f", "url(/r/font.woff2)").load()));
  waits.push(settle(new Promise(r => { const x = new XMLHttpRequest(); x.open("GET", "/r/xhr"); x.onloadend = r; x.send(); })));
  waits.push(settle(new Promise(r => { const x = new XMLHttpRequest(); x.open("POST", "/r/xhr-json"); x.setRequestHeader("Content-Type", "application/json"); x.onloadend = r; x.send('{"a":1}'); })));
  waits.push(settle(fetch("/r/fetch-get")));
  waits.push(settle(fetch("/r/fetch-post", {method: "POST", headers: {"Content-Type": "application/json"}, body: '{"a": 1}'})));
  waits.push(settle(fetch("/r/fetch-form", {method: "POST", body: new URLSearchParams({a: "1"})})));
  waits.push(settle(fetch("/r/keepalive", {method: "POST", keepalive: true, body: "k"})));
  waits.push(settle(new Promise(r => { const e = new EventSource("/r/events"); e.onmessage = () => { e.close(); r(); }; e.onerror = () => { e.close(); r(); }; })));
  if (WS) waits.push(settle(new Promise(r => { const s = new WebSocket(WS); s.onopen = () => { s.close(); r(); }; s.onerror = r; })));
  navigator.sendBeacon("/r/beacon", "beacon text");
  navigator.sendBeacon("/r/beacon-form", new URLSearchParams({b: "1"}));
  document.getElementById("pinger").click();
  waits.push(settle(new Promise(r => { const w = new Worker("/r/worker.js"); w.onmessage = r; w.onerror = r; })));
  waits.push(settle(import("/r/data.json", {with: {type: "json"}})));
  if (window.isSecureContext && navigator.serviceWorker) {
    waits.push(settle(navigator.serviceWorker.register("/sw.js").then(reg => new Promise(r => {
      const sw = reg.installing || reg.waiting || reg.active;
      if (!sw) return r();
      if (sw.state === "activated") return r();
      sw.addEventListener("statechange", () => { if (sw.state === "activated") r(); });
    }))));
  }
  await Promise.all(waits);
  await new Promise(r => setTimeout(r, 300));
  await fetch("/r/done");
}
main();
</script>
</body></html>
"""

FRAME = """<!doctype html><html><head><link rel="stylesheet" href="/r/frame-style.css"></head>
<body><img src="/r/frame-img.gif"><iframe src="/r/nested.html"></iframe></body></html>"""

XML = """<?xml version="1.0"?>
<?xml-stylesheet type="text/xsl" href="/r/sheet.xsl"?>
<root><item>one</item></root>"""

XSL = """<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
<xsl:template match="/"><html><body><p><xsl:value-of select="root/item"/></p></body></html></xsl:template>
</xsl:stylesheet>"""

CANCEL_PAGE = """<!doctype html><html><body><script>
async function attempt(name, run) {
  try { await run(); return "loaded"; } catch (e) { return "failed"; }
}
async function main() {
  const out = {};
  await fetch("/r/warm");  // the keep-alive connection the next requests reuse
  out.get = await attempt("get", async () => { await (await fetch("/r/blocked-get")).text(); });
  await fetch("/r/warm2");
  out.post = await attempt("post", async () => {
    await (await fetch("/r/blocked-post", {method: "POST", body: "secret=1"})).text();
  });
  await fetch("/r/warm3");
  out.img = await new Promise(r => {
    const i = new Image(); i.onload = () => r("loaded"); i.onerror = () => r("failed");
    i.src = "/r/blocked.png";
  });
  await fetch("/r/result?" + new URLSearchParams(out));
}
main();
</script></body></html>"""

SW = """self.addEventListener("install", e => e.waitUntil(fetch("/r/sw-fetch").then(() => self.skipWaiting())));
self.addEventListener("activate", e => e.waitUntil(self.clients.claim()));"""

BODIES: dict[str, tuple[str, bytes]] = {
    "/r/style.css": ("text/css", b"body { color: black }"),
    "/r/style-noext": ("text/css", b"p { color: black }"),
    "/r/frame-style.css": ("text/css", b"p { color: black }"),
    "/r/script.js": ("text/javascript", b"window.loaded = 1;"),
    "/r/script-noext": ("text/javascript", b"window.loaded2 = 1;"),
    "/r/module.mjs": ("text/javascript", b"export const m = 1;"),
    "/r/worker.js": ("text/javascript", b"postMessage('up');"),
    "/sw.js": ("text/javascript", SW.encode()),
    "/r/img.png": ("image/png", PNG),
    "/r/img-noext": ("image/png", PNG),
    "/r/object.png": ("image/png", PNG),
    "/r/embed.png": ("image/png", PNG),
    "/r/frame-img.gif": ("image/gif", GIF),
    "/r/font.woff2": ("font/woff2", b"not really a font"),
    "/r/frame.html": ("text/html", FRAME.encode()),
    "/r/nested.html": ("text/html", b"<!doctype html><p>nested</p>"),
    "/r/pinged.html": ("text/html", b"<!doctype html><p>pinged</p>"),
    "/r/object.html": ("text/html", b"<!doctype html><p>object</p>"),
    "/r/doc.xml": ("text/xml", XML.encode()),
    "/r/sheet.xsl": ("text/xsl", XSL.encode()),
    "/r/data.json": ("application/json", b'{"a": 1}'),
    "/r/events": ("text/event-stream", b"data: hello\n\n"),
    "/r/track.vtt": ("text/vtt", b"WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n"),
    "/r/audio.wav": ("audio/wav", b"RIFF\x24\x00\x00\x00WAVEfmt "),
    "/r/video.webm": ("video/webm", b"\x1a\x45\xdf\xa3"),
    "/r/prefetch.bin": ("application/octet-stream", b"prefetched"),
    "/cancel.html": ("text/html", CANCEL_PAGE.encode()),
    "/r/blocked.png": ("image/png", PNG),
}


class _SiteHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def _handle(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        parts = urlsplit(self.path)
        path = parts.path
        self.server.upstream.requests.append(
            {
                "method": self.command,
                "path": path,
                "query": parts.query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            }
        )
        site = self.server.upstream
        extra: list[tuple[str, str]] = []
        if path == "/":
            ctype, payload = "text/html", (PAGE % {"ws": site.ws_js}).encode()
            extra.append(
                ("Content-Security-Policy-Report-Only", "img-src 'none'; report-uri /r/csp-report")
            )
        elif path in BODIES:
            ctype, payload = BODIES[path]
        else:
            ctype, payload = "text/plain", b"ok"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_HEAD = do_OPTIONS = _handle


class Site(Upstream):
    def __init__(self, name: str = "site", ssl_context=None, ws_url: str | None = None) -> None:
        super().__init__(name, ssl_context=ssl_context, handler=_SiteHandler)
        self.ws_js = f'"{ws_url}"' if ws_url else "null"

    def paths(self) -> set[str]:
        return {r["path"] for r in self.requests}
