"""Rules acting on live traffic (the request event) through `waylay --headless`,
checked with curl and httpx against real local upstreams."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.helpers import common, curl, headless, wait_for

pytestmark = pytest.mark.e2e


def write_rules(settings, text: str) -> None:
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text("version = 1\n" + text)


@pytest.fixture
def run(settings):
    def start(rules: str):
        write_rules(settings, rules)
        return headless(*common(settings))

    return start


def test_cancel_ends_the_client_request_at_once_without_a_response(run, upstream):
    with run('[[rule]]\nid = "block-x"\nurls = ["*://127.0.0.1/x*"]\naction = "cancel"\n') as w:
        t0 = time.monotonic()
        r = curl(w.port, upstream.url("/x1"))
        assert time.monotonic() - t0 < 1.0
        assert r.returncode == 52, r  # curl: empty reply from server
        with httpx.Client(proxy=f"http://127.0.0.1:{w.port}", timeout=5) as c:
            t0 = time.monotonic()
            with pytest.raises(httpx.RemoteProtocolError):
                c.get(upstream.url("/x2"))
            assert time.monotonic() - t0 < 1.0
            assert c.get(upstream.url("/other")).status_code == 200
        lines = w.wait_lines(3)
        assert lines[0].endswith("/x1 cancelled rule=block-x")
        assert lines[2].endswith("/other 200")
    assert [r["path"] for r in upstream.requests] == ["/other"]


def test_redirect_answers_307_with_location(run, upstream):
    with run(
        '[[rule]]\nid = "go"\nurls = ["*://127.0.0.1/old"]\naction = "redirect"\n'
        'url = "http://127.0.0.1:1/new"\n'
    ) as w:
        with httpx.Client(proxy=f"http://127.0.0.1:{w.port}") as c:
            r = c.get(upstream.url("/old"))
        assert r.status_code == 307
        assert r.headers["location"] == "http://127.0.0.1:1/new"
        assert w.wait_lines(1)[0].endswith("/old 307 rule=go")
    assert upstream.requests == []


def test_rewrite_goes_to_the_other_upstream_transparently(run, upstream, other_upstream):
    rules = (
        f"[[rule]]\nid = \"to-other\"\nregex = '^http://127\\.0\\.0\\.1:{upstream.port}/api/(.*)$'\n"
        f"action = \"rewrite\"\nurl = '{other_upstream.base}/echo/\\1'\n"
    )
    with run(rules) as w:
        with httpx.Client(proxy=f"http://127.0.0.1:{w.port}") as c:
            r = c.post(upstream.url("/api/items?q=1"), content=b"payload")
        assert r.status_code == 200
        body = r.json()
        assert body["server"] == "other"
        assert body["path"] == "/echo/items?q=1"
        assert body["body"] == "payload"
        assert body["headers"]["host"] == f"127.0.0.1:{other_upstream.port}"
    assert upstream.requests == []


def test_respond_with_body_and_with_body_file(run, upstream, settings):
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    (settings.rules.parent / "canned.json").write_text('{"canned": true}')
    rules = (
        '[[rule]]\nid = "inline"\nurls = ["*://127.0.0.1/inline"]\naction = "respond"\n'
        'status = 418\nbody = "short and stout"\nheaders = { "x-waylay" = "yes" }\n'
        '[[rule]]\nid = "file"\nurls = ["*://127.0.0.1/file"]\naction = "respond"\n'
        'body_file = "canned.json"\nheaders = { "content-type" = "application/json" }\n'
    )
    with run(rules) as w:
        r = curl(w.port, upstream.url("/inline"))
        assert r.stdout == "short and stout\n418"
        with httpx.Client(proxy=f"http://127.0.0.1:{w.port}") as c:
            r2 = c.get(upstream.url("/file"))
            r1 = c.get(upstream.url("/inline"))
        assert r1.headers["x-waylay"] == "yes"
        assert r2.status_code == 200 and r2.json() == {"canned": True}
    assert upstream.requests == []


def test_body_file_with_home_relative_and_absolute_paths(
    run, upstream, settings, tmp_path, monkeypatch
):
    """The live proxy reads ``body_file`` exactly as ``rules check`` resolves it: ``~`` is
    the user's home, a relative path is relative to the rules file's folder."""
    home = tmp_path / "home-for-body-file"
    (home / "bodies").mkdir(parents=True)
    (home / "bodies" / "tilde.txt").write_text("from the home folder")
    monkeypatch.setenv("HOME", str(home))
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    (settings.rules.parent / "sub").mkdir()
    (settings.rules.parent / "sub" / "relative.txt").write_text("beside the rules file")
    absolute = tmp_path / "elsewhere" / "absolute.txt"
    absolute.parent.mkdir()
    absolute.write_text("from an absolute path")
    rules = (
        '[[rule]]\nid = "tilde"\nurls = ["*://127.0.0.1/tilde"]\naction = "respond"\n'
        'body_file = "~/bodies/tilde.txt"\n'
        '[[rule]]\nid = "relative"\nurls = ["*://127.0.0.1/relative"]\naction = "respond"\n'
        'body_file = "sub/relative.txt"\n'
        '[[rule]]\nid = "absolute"\nurls = ["*://127.0.0.1/absolute"]\naction = "respond"\n'
        f"body_file = '{absolute}'\nstatus = 203\n"
    )
    with run(rules) as w:
        assert "rules file" not in w.stderr_head  # the file loaded: every body_file exists
        with httpx.Client(proxy=f"http://127.0.0.1:{w.port}") as c:
            tilde = c.get(upstream.url("/tilde"))
            relative = c.get(upstream.url("/relative"))
            absolute_r = c.get(upstream.url("/absolute"))
        assert (tilde.status_code, tilde.text) == (200, "from the home folder")
        assert (relative.status_code, relative.text) == (200, "beside the rules file")
        assert (absolute_r.status_code, absolute_r.text) == (203, "from an absolute path")
        lines = w.wait_lines(3)
        assert lines[0].endswith("/tilde 200 rule=tilde")
        assert lines[1].endswith("/relative 200 rule=relative")
        assert lines[2].endswith("/absolute 203 rule=absolute")
    assert upstream.requests == []


def test_continue_rule_wins_by_priority_and_methods_filter(run, upstream):
    rules = (
        '[[rule]]\nid = "block-all"\naction = "cancel"\n'
        '[[rule]]\nid = "but-get"\nmethods = ["GET"]\naction = "continue"\npriority = 2\n'
    )
    with run(rules) as w:
        assert curl(w.port, upstream.url("/g")).stdout.endswith("\n200")
        r = curl(w.port, upstream.url("/p"), "-X", "POST", "-d", "x")
        assert r.returncode == 52
        lines = w.wait_lines(2)
        assert lines[0].endswith("/g 200 rule=but-get")
        assert lines[1].endswith("/p cancelled rule=block-all")


def test_times_disables_the_rule_after_n_hits(run, upstream, settings):
    with run('[[rule]]\nid = "twice"\naction = "cancel"\ntimes = 2\n') as w:
        codes = [curl(w.port, upstream.url(f"/{i}")).returncode for i in range(3)]
        assert codes == [52, 52, 0]  # used up at once; written to the file a moment later
        wait_for(lambda: "enabled = false" in settings.rules.read_text(), what="the file")


def test_broken_rules_file_starts_with_a_clear_error_and_is_not_overwritten(
    run, upstream, settings
):
    broken = 'version = 1\n[[rule]]\nid = "x"\naction = "explode"\n'
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text(broken)
    with headless(*common(settings)) as w:
        assert "rules.toml:" in w.stderr_head and "explode" in w.stderr_head
        assert curl(w.port, upstream.url("/")).stdout.endswith("\n200")
    assert settings.rules.read_text() == broken


def test_https_rewrite_and_cancel(run, tls_upstream, waylay_ca):
    with run(
        '[[rule]]\nid = "no-secret"\nurls = ["https://127.0.0.1/secret"]\naction = "cancel"\n'
    ) as w:
        r = curl(w.port, tls_upstream.url("/secret"), cacert=waylay_ca)
        assert r.returncode == 52
        r = curl(w.port, tls_upstream.url("/echo"), cacert=waylay_ca)
        assert json.loads(r.stdout.rsplit("\n", 1)[0])["server"] == "tls"


def test_cookies_strip_both_ways(run, upstream):
    rules = (
        '[[rule]]\nid = "no-cookies"\nevent = "cookies"\nurls = ["*://127.0.0.1/*"]\n'
        'action = "strip"\n'
    )
    with run(rules) as w:
        with httpx.Client(proxy=f"http://127.0.0.1:{w.port}") as c:
            r = c.get(upstream.url("/echo"), headers={"Cookie": "session=abc"})
            assert "cookie" not in r.json()["headers"]
            r = c.get(upstream.url("/set-cookie"))
            assert "set-cookie" not in r.headers
            assert r.text == "cookies\n"


def test_cookies_default_strip_without_any_rule(run, upstream):
    with run('[defaults]\ncookies = "strip"\n') as w:
        with httpx.Client(proxy=f"http://127.0.0.1:{w.port}") as c:
            assert (
                "cookie"
                not in c.get(upstream.url("/echo"), headers={"Cookie": "a=1"}).json()["headers"]
            )
            assert "set-cookie" not in c.get(upstream.url("/set-cookie")).headers


def test_cookies_pass_by_default(run, upstream):
    with run("") as w:
        with httpx.Client(proxy=f"http://127.0.0.1:{w.port}") as c:
            assert (
                c.get(upstream.url("/echo"), headers={"Cookie": "a=1"}).json()["headers"]["cookie"]
                == "a=1"
            )
            assert c.get(upstream.url("/set-cookie")).headers.get_list("set-cookie") == [
                "a=1; Path=/",
                "b=2",
            ]


def test_response_event_respond_and_cancel_by_status(run, upstream):
    rules = (
        '[[rule]]\nid = "hide-404"\nevent = "response"\nstatus = 404\naction = "respond"\n'
        'respond_status = 200\nbody = "nothing to see"\n'
        '[[rule]]\nid = "drop-5xx"\nevent = "response"\nstatus = [500, 503]\naction = "cancel"\n'
    )
    with run(rules) as w:
        with httpx.Client(proxy=f"http://127.0.0.1:{w.port}") as c:
            r = c.get(upstream.url("/status/404"))
            assert (r.status_code, r.text) == (200, "nothing to see")
            with pytest.raises(httpx.RemoteProtocolError):
                c.get(upstream.url("/status/503"))
            assert c.get(upstream.url("/status/201")).status_code == 201
        lines = w.wait_lines(3)
        assert lines[0].endswith("/status/404 200 rule=hide-404")
        assert lines[1].endswith("/status/503 cancelled rule=drop-5xx")


def test_redirect_event_rewrite_location_and_cancel(run, upstream, other_upstream):
    rules = (
        f'[[rule]]\nid = "bounce"\nevent = "redirect"\nurls = ["*://127.0.0.1/redirect*"]\n'
        f'action = "rewrite"\nurl = "{other_upstream.url("/echo/moved")}"\n'
        '[[rule]]\nid = "no-3xx"\nevent = "redirect"\nstatus = 301\naction = "cancel"\npriority = 5\n'
    )
    with run(rules) as w:
        with httpx.Client(proxy=f"http://127.0.0.1:{w.port}", follow_redirects=True) as c:
            r = c.get(upstream.url("/redirect?to=/echo"))
            assert r.json()["server"] == "other" and r.json()["path"] == "/echo/moved"
            with pytest.raises(httpx.RemoteProtocolError):
                c.get(upstream.url("/redirect?to=/echo&code=301"))


def test_an_edit_to_the_rules_file_applies_to_the_next_request(run, upstream, settings):
    from tests.helpers import wait_for

    with run("") as w:
        assert curl(w.port, upstream.url("/live")).stdout.endswith("\n200")
        write_rules(
            settings,
            '[[rule]]\nid = "now-blocked"\nurls = ["*://127.0.0.1/live*"]\naction = "cancel"\n',
        )
        wait_for(
            lambda: curl(w.port, upstream.url("/live")).returncode == 52,
            timeout=10,
            what="the edited rule to apply",
        )


def test_a_broken_edit_keeps_the_last_good_rules(settings, upstream):
    from monitor.session import Session
    from tests.helpers import wait_for

    write_rules(
        settings, '[[rule]]\nid = "blocked"\nurls = ["*://127.0.0.1/live*"]\naction = "cancel"\n'
    )
    s = Session(settings)
    _, port = s.start()
    try:
        broken = "version = 1\n[[rule]]\nid = \n"
        settings.rules.write_text(broken)
        wait_for(lambda: s.rules.error, what="the watcher to see the broken file")
        assert "rules.toml:3" in s.rules.error
        assert curl(port, upstream.url("/live")).returncode == 52  # still the old rule
        assert settings.rules.read_text() == broken  # never overwritten
    finally:
        s.stop()
    assert settings.rules.read_text() == broken


def test_large_bodies_are_streamed_not_kept(settings, upstream):
    from monitor.session import Session

    s = Session(settings)
    _, port = s.start()
    try:
        with httpx.Client(proxy=f"http://127.0.0.1:{port}") as c:
            r = c.get(upstream.url(f"/bytes/{5 * 1024 * 1024}"))
        assert r.status_code == 200 and len(r.content) == 5 * 1024 * 1024
        [flow] = list(s.recorder.flows.values())
        assert flow.response.raw_content is None  # streamed through, not kept
    finally:
        s.stop()
