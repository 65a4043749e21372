"""waylay rules → mitmproxy options (config.yaml).

- ``~u`` regexes match exactly the URLs waylay's match patterns match, also after
  mitmproxy 11's block_list lower-cases them.
- The exported file loads with mitmproxy's own option loader, and mitmproxy's own
  block_list / map_remote / map_local / modify_headers addons, run on a few thousand
  flows, do what waylay's engine decides for each.
- End to end: a real ``mitmdump`` with the file as ``config.yaml`` in its confdir blocks,
  redirects, rewrites and answers the same real requests as waylay decides.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from mitmproxy import flowfilter, optmanager
from mitmproxy.addons import blocklist, maplocal, mapremote, modifyheaders
from mitmproxy.test import taddons, tflow

from policies import mitm_options
from policies.engine import Engine, EventDetails
from policies.match_pattern import compile_pattern
from policies.model import Rule
from tests.exchange.test_dnr_export import PATTERNS
from tests.helpers import wait_for

KILLED = "Connection killed."


# -- URL regexes ---------------------------------------------------------------------------

WEIRD_PATTERNS = [p for p, _ in PATTERNS] + [
    "ws://*/*",
    "file:///*",
    "*://*:443/*",
    "https://*.Example.com:443/x?y",
    "*://*.example.com:80/A/*",
    "*://a.b/",
]
URL_PARTS = {
    "scheme": ["http", "https", "HTTPS", "ws", "ftp", "file"],
    "user": ["", "u:p@", "a@b@"],
    "host": [
        "example.com",
        "EXAMPLE.com",
        "sub.example.com",
        "example.com.evil",
        "notexample.com",
        "[::1]",
        "[::1",
        "127.0.0.1",
        "",
    ],
    "port": ["", ":", ":80", ":443", ":8080", ":0443", ":x"],
    "path": ["", "/", "/a", "/A/b", "/a/b", "/x?y", "/a?x=1#f", "#frag", "?q", "/foo/bar", "/ab"],
}
URLS = ["{}://{}{}{}{}".format(*parts) for parts in itertools.product(*URL_PARTS.values())]


@pytest.mark.parametrize("pattern", WEIRD_PATTERNS)
def test_url_regex_matches_exactly_what_the_pattern_matches(pattern):
    matcher = compile_pattern(pattern)
    regex = mitm_options.pattern_regex(pattern)
    flowfilter_regex = re.compile(regex, re.IGNORECASE)  # how ~u compiles it
    lowered = re.compile(regex.lower(), re.IGNORECASE)  # after mitmproxy 11's block_list
    wrong = [
        url
        for url in URLS
        if not matcher.matches(url)
        == bool(flowfilter_regex.search(url))
        == bool(lowered.search(url))
    ]
    assert not wrong, wrong[:10]


@pytest.mark.parametrize(
    "regex", [r'a\.b"c\\d', r"^https?://(?P<h>[^/]+)/(\d+)$", "x y", "(?i)é\\t"]
)
def test_filter_quote_round_trips_through_the_filter_parser(regex):
    parsed = flowfilter.parse("~u " + mitm_options.filter_quote(regex))
    assert parsed.expr == regex


# -- in-process: mitmproxy's own addons against waylay's engine ----------------------------


def rules_for(tmp: Path) -> list[Rule]:
    (tmp / "body.txt").write_text("local body\n")
    return [
        Rule(id="kill-trackers", urls=["*://*.tracker.example/*"], action="cancel"),
        Rule(id="allow-ok", urls=["*://*.ok.tracker.example/*"], action="continue", priority=2),
        Rule(
            id="moved",
            urls=["https://example.com/old*"],
            action="redirect",
            url="https://example.com/new",
        ),
        Rule(
            id="api",
            regex=r"(?i)^https?://API\.example\.com/(v\d)/(.*)$",
            action="rewrite",
            url=r"https://staging.example.com/\2?ver=\1&all=\0&bs=\\",
        ),
        Rule(
            id="fixed", urls=["http://old.example/*"], action="rewrite", url="http://new.example/x"
        ),
        Rule(id="local", urls=["*://example.com/local/*"], action="respond", body_file="body.txt"),
        Rule(
            id="teapot",
            urls=["*://example.com/tea*"],
            methods=["POST", "put"],
            action="respond",
            status=418,
            headers={"X-Waylay": "Yes", "Content-Type": "text/plain"},
        ),
        Rule(id="posts", filter="~m post & ~hq x-block", action="cancel", priority=3),
        Rule(id="case", urls=["https://example.com/CaseSensitive/*"], action="cancel"),
        Rule(id="regex-block", regex=r"/Admin/\d+$", action="cancel"),
        Rule(
            id="excl",
            urls=["*://*.example.org/*"],
            exclude_urls=["*://*.public.example.org/*"],
            action="cancel",
        ),
        Rule(id="ported", urls=["http://example.net:8080/*"], action="cancel"),
        Rule(id="strip", event="cookies", urls=["*://*.example.com/*"], action="strip"),
        Rule(
            id="keep-cookies",
            event="cookies",
            urls=["*://keep.example.com/*"],
            action="allow",
            priority=2,
        ),
        # left out
        Rule(id="typed", urls=["*://*/*.js"], types=["script"], action="cancel"),
        Rule(id="asker", urls=["*://ask.example/*"], action="ask"),
        Rule(id="response", event="response", action="cancel"),
        Rule(id="upper-filter", filter="~hq X-Upper", action="cancel"),
        Rule(id="inline", urls=["*://inline.example/*"], action="respond", body="hi"),
        Rule(id="countdown", urls=["*://count.example/*"], action="cancel", times=2),
    ]


LEFT_OUT = ["typed", "asker", "response", "upper-filter", "inline", "countdown"]


def test_left_out_rules_are_named_with_a_reason(tmp_path):
    export = mitm_options.export_options(rules_for(tmp_path), tmp_path)
    assert [line.split(":")[0] for line in export.left_out] == LEFT_OUT
    reasons = dict(line.split(": left out: ") for line in export.left_out)
    assert "types" in reasons["typed"]
    assert "pause" in reasons["asker"]
    assert "response events" in reasons["response"]
    assert "lower-cases" in reasons["upper-filter"]
    assert "inline `body`" in reasons["inline"]
    assert "times" in reasons["countdown"]


def write_config(tmp_path: Path, rules: list[Rule]) -> tuple[Path, mitm_options.MitmExport]:
    export = mitm_options.export_options(rules, tmp_path)
    confdir = tmp_path / "confdir"
    confdir.mkdir(exist_ok=True)
    (confdir / "config.yaml").write_text(export.text("rules.toml"))
    return confdir, export


def test_the_file_loads_with_mitmproxys_option_loader(tmp_path):
    confdir, export = write_config(tmp_path, rules_for(tmp_path))
    addons = [
        blocklist.BlockList(),
        mapremote.MapRemote(),
        maplocal.MapLocal(),
        modifyheaders.ModifyHeaders(),
    ]
    with taddons.context(*addons) as tctx:
        optmanager.load_paths(tctx.options, confdir / "config.yaml")
        assert len(tctx.options.block_list) == len(export.options["block_list"]) == 8
        assert len(tctx.options.map_remote) == 2
        assert len(tctx.options.map_local) == 1
        assert len(tctx.options.modify_headers) == 5
        assert len(addons[0].items) == 8 and len(addons[1].replacements) == 2


def make_flow(url: str, method: str, headers: dict[str, str]):
    """A flow as a client sends it through a proxy: absolute URL plus a Host header."""
    flow = tflow.tflow()
    flow.request.url = url
    flow.request.method = method
    flow.request.headers.clear()
    flow.request.headers["host"] = url.split("://", 1)[1].split("/", 1)[0]
    for name, value in headers.items():
        flow.request.headers[name] = value
    return flow


HOSTS = [
    "tracker.example",
    "a.tracker.example",
    "ok.tracker.example",
    "x.ok.tracker.example",
    "example.com",
    "API.example.com",
    "api.example.com",
    "keep.example.com",
    "old.example",
    "example.org",
    "public.example.org",
    "a.public.example.org",
    "example.net",
    "other.test",
]
PATHS = [
    "/",
    "/old",
    "/old/x",
    "/v1/users",
    "/V2/x?y=1",
    "/local/a",
    "/tea",
    "/teapot",
    "/CaseSensitive/x",
    "/casesensitive/x",
    "/Admin/12",
    "/admin/12",
]


def test_mitmproxys_addons_decide_as_waylay_does(tmp_path):
    rules = rules_for(tmp_path)
    confdir, export = write_config(tmp_path, rules)
    kept = [r for r in rules if r.id not in LEFT_OUT]
    engine = Engine(kept, base_dir=tmp_path)
    bl, mr, ml, mh = (
        blocklist.BlockList(),
        mapremote.MapRemote(),
        maplocal.MapLocal(),
        modifyheaders.ModifyHeaders(),
    )
    checked = 0
    with taddons.context(bl, mr, ml, mh) as tctx:
        optmanager.load_paths(tctx.options, confdir / "config.yaml")
        for scheme, host, port, path, method in itertools.product(
            ("http", "https"), HOSTS, ("", ":8080"), PATHS, ("GET", "POST")
        ):
            for extra in ({}, {"x-block": "1"}) if method == "POST" else ({},):
                flow = make_flow(
                    f"{scheme}://{host}{port}{path}", method, {"cookie": "a=1", **extra}
                )
                url = flow.request.pretty_url  # what waylay and mitmproxy look at
                before = flow.copy()
                request = engine.decide(EventDetails("request", url, method, flow=before))
                cookies = engine.decide(EventDetails("cookies", url, method, flow=before))

                mh.requestheaders(flow)
                for addon in (bl, mr, ml):  # mitmproxy's addon order
                    addon.request(flow)
                if flow.response is not None:
                    mh.responseheaders(flow)
                assert_outcome(flow, request, url)
                assert ("cookie" in flow.request.headers) == (cookies.action != "strip"), url
                checked += 1
    assert checked > 1000


def assert_outcome(flow, decision, url: str) -> None:
    where = f"{flow.request.method} {url}: waylay says {decision!r}"
    action = decision.action
    killed = flow.error is not None and flow.error.msg == KILLED
    assert killed == (action == "cancel"), where
    if action == "cancel":
        return
    if action == "continue":
        assert flow.response is None and flow.request.pretty_url == url, where
    elif action == "rewrite":
        assert flow.response is None and flow.request.pretty_url == decision.url, where
    elif action == "redirect":
        assert flow.response.status_code == 307, where
        assert flow.response.headers["location"] == decision.url, where
    elif action == "respond":
        assert flow.response.status_code == decision.status, where
        assert flow.response.content == decision.read_body(), where
        for name, value in decision.headers.items():
            assert flow.response.headers[name] == value, where
    else:  # pragma: no cover
        raise AssertionError(where)


def test_a_map_local_a_rewrite_can_reach_is_left_out(tmp_path):
    (tmp_path / "b.txt").write_text("b")
    rules = [
        Rule(id="to-local", urls=["*://a.example/*"], action="rewrite", url="https://b.example/x"),
        Rule(id="local", urls=["https://b.example/*"], action="respond", body_file="b.txt"),
        Rule(id="other", urls=["https://c.example/*"], action="respond", body_file="b.txt"),
    ]
    export = mitm_options.export_options(rules, tmp_path)
    assert [line.split(":")[0] for line in export.left_out] == ["local"]
    assert "map_local runs after map_remote" in export.left_out[0]
    assert [rule_id for rule_id, _ in export.options["map_local"]] == ["other"]


# -- end to end: a real mitmdump -----------------------------------------------------------

MITMDUMP = Path(sys.executable).with_name("mitmdump")


class Mitmdump:
    def __init__(self, confdir: Path) -> None:
        self.proc = subprocess.Popen(
            [
                str(MITMDUMP),
                "--set",
                f"confdir={confdir}",
                "--listen-host",
                "127.0.0.1",
                "--listen-port",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        line = wait_for(self._listening, 30, "mitmdump to listen")
        self.port = int(re.search(r":(\d+)\.?\s*$", line).group(1))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _listening(self) -> str | None:
        if self.proc.poll() is not None:
            raise AssertionError("mitmdump exited:\n" + "\n".join(self.lines))
        return next((line for line in self.lines if "listening at" in line), None)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)


@pytest.fixture
def e2e_rules(tmp_path, upstream, other_upstream):
    (tmp_path / "local.json").write_text('{"from": "a local file"}')
    here, there = upstream.port, other_upstream.port
    return [
        Rule(id="block", urls=["http://127.0.0.1/echo/blocked*"], action="cancel"),
        Rule(
            id="but-this",
            urls=["http://127.0.0.1/echo/blocked/allowed"],
            action="continue",
            priority=2,
        ),
        Rule(
            id="moved",
            urls=[f"http://127.0.0.1:{here}/echo/old"],
            action="redirect",
            url=f"http://127.0.0.1:{here}/echo/new",
        ),
        Rule(
            id="api",
            regex=rf"^http://127\.0\.0\.1:{here}/echo/api/(\w+)$",
            action="rewrite",
            url=rf"http://127.0.0.1:{there}/echo/v2/\1",
        ),
        Rule(
            id="local", urls=["*://127.0.0.1/echo/local"], action="respond", body_file="local.json"
        ),
        Rule(
            id="empty",
            urls=["*://127.0.0.1/echo/empty"],
            methods=["POST"],
            action="respond",
            status=204,
            headers={"X-Answered-By": "waylay"},
        ),
    ]


def test_mitmdump_blocks_and_maps_the_same_requests_as_waylay(
    tmp_path, confdir, upstream, other_upstream, e2e_rules
):
    dump_confdir, export = write_config(tmp_path, e2e_rules)
    assert export.left_out == []
    for ca in confdir.glob("mitmproxy-ca*"):
        shutil.copy(ca, dump_confdir / ca.name)
    engine = Engine(e2e_rules, base_dir=tmp_path)
    requests = [
        ("GET", "/echo/plain"),
        ("GET", "/echo/blocked"),
        ("POST", "/echo/blocked/more"),
        ("GET", "/echo/blocked/allowed"),
        ("GET", "/echo/old"),
        ("GET", "/echo/api/users"),
        ("GET", "/echo/api/users/x"),
        ("GET", "/echo/local"),
        ("POST", "/echo/empty"),
        ("GET", "/echo/empty"),
    ]
    dump = Mitmdump(dump_confdir)
    try:
        proxy = f"http://127.0.0.1:{dump.port}"
        with httpx.Client(proxy=proxy, timeout=10, follow_redirects=False) as client:
            for method, path in requests:
                url = upstream.url(path)
                decision = engine.decide(EventDetails("request", url, method))
                seen_before = len(upstream.requests) + len(other_upstream.requests)
                try:
                    response = client.request(
                        method, url, content=b"x" if method == "POST" else None
                    )
                except httpx.HTTPError:
                    response = None
                where = f"{method} {path}: waylay says {decision!r}"
                seen = len(upstream.requests) + len(other_upstream.requests) - seen_before
                if decision.action == "cancel":
                    assert response is None and seen == 0, where
                elif decision.action == "continue":
                    assert response.status_code == 200, where
                    assert response.json()["path"] == path and response.json()["server"] == "plain"
                elif decision.action == "redirect":
                    assert response.status_code == 307 and seen == 0, where
                    assert response.headers["location"] == decision.url, where
                elif decision.action == "rewrite":
                    body = response.json()
                    assert f"http://127.0.0.1:{other_upstream.port}{body['path']}" == decision.url
                    assert body["server"] == "other", where
                else:
                    assert decision.action == "respond", where
                    assert response.status_code == decision.status and seen == 0, where
                    assert response.content == decision.read_body(), where
                    for name, value in decision.headers.items():
                        assert response.headers[name] == value, where
    finally:
        dump.stop()
    outcomes = {
        engine.decide(EventDetails("request", upstream.url(p), m)).action for m, p in requests
    }
    assert outcomes == {"cancel", "continue", "redirect", "rewrite", "respond"}
