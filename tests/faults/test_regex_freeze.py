"""Issue 15.5: a rule regex can never freeze the proxy, and patterns RE2 cannot run are
refused at load time with one ``PATH:LINE:COL: message`` line.

Before: an imported DNR ``regexFilter`` was matched with Python's backtracking ``re``; a
catastrophic pattern held the proxy's event loop (and every other client) for as long as
the backtracking took.
"""

from __future__ import annotations

import io
import json
import re

import httpx
import pytest

from monitor.session import Session
from policies import cli as pcli
from policies import exchange
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

# (a+)+$ on "aaaa…b": exponential for a backtracking matcher (about a minute for Python's re
# with 32 a's), linear for RE2.
CATASTROPHIC = "(a+)+$"
EVIL_PATH = "/" + "a" * 32 + "b"


def test_a_catastrophic_regex_imported_from_dnr_does_not_hold_other_clients(
    settings, upstream, tmp_path, pool
):
    dnr_file = tmp_path / "rules.json"
    dnr_file.write_text(
        json.dumps(
            [
                {
                    "id": 1,
                    "priority": 1,
                    "action": {"type": "block"},
                    "condition": {"regexFilter": CATASTROPHIC, "isUrlFilterCaseSensitive": True},
                }
            ]
        )
    )
    out, err = io.StringIO(), io.StringIO()
    assert (
        exchange.import_command(dnr_file, "dnr", into=settings.rules, stdout=out, stderr=err) == 0
    ), err.getvalue()
    assert CATASTROPHIC in settings.rules.read_text()

    session = Session(settings)
    _, port = session.start()
    try:
        proxy = f"http://127.0.0.1:{port}"
        with (
            httpx.Client(proxy=proxy, timeout=30) as first,
            httpx.Client(proxy=proxy, timeout=30) as second,
        ):
            evil = pool.submit(first.get, upstream.url(EVIL_PATH))
            # the proxy has the evil request and is deciding it (or has decided it)
            wait_for(
                lambda: any(
                    f.request.path == EVIL_PATH for f in list(session.recorder.flows.values())
                ),
                what="the proxy to receive the evil request",
            )
            # a second client, sent while the evil URL is being matched, is served
            served = second.get(upstream.url("/free"))
            assert served.status_code == 200
            # the evil request itself was decided too: no match ("…b"), so it went on
            assert evil.result(30).status_code == 200
            # and the imported rule still blocks what it matches
            with pytest.raises(httpx.RemoteProtocolError):
                second.get(upstream.url("/aaaa"))
        paths = [r["path"] for r in upstream.requests]
        assert "/free" in paths and EVIL_PATH in paths and "/aaaa" not in paths
    finally:
        session.stop()


@pytest.mark.parametrize(
    ("regex", "says"),
    [
        (r"^https://a\.example/(?=admin)", "lookahead"),
        (r"^https://a\.example/(?<!x)y", "lookbehind"),
        (r"^https://(a)\.example/\1", "backreference"),
        (r"a++", "possessive"),
        (r"(?>a)", "atomic"),
        (r"/x\Z", r"\z"),
    ],
)
def test_patterns_re2_cannot_run_are_refused_at_load_with_one_line(tmp_path, regex, says):
    path = tmp_path / "rules.toml"
    path.write_text(f'version = 1\n\n[[rule]]\nid = "r"\nregex = \'{regex}\'\naction = "cancel"\n')
    out, err = io.StringIO(), io.StringIO()
    assert pcli.check(path, stdout=out, stderr=err) == 1
    lines = err.getvalue().splitlines()
    assert len(lines) == 2, lines  # the error, then the count
    assert re.match(rf"^{re.escape(str(path))}:5:1: rule 'r': regex: ", lines[0]), lines[0]
    assert "RE2" in lines[0] and says in lines[0]
    assert lines[1] == f"{path}: 1 error"
