"""The rules file: errors with their lines, edits that keep the user's text, atomic saves
that survive a crash, broken files left alone, times, transient rules and the watcher."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from policies import files
from policies.engine import EventDetails
from policies.model import Rule
from policies.rules_file import RulesFile, RulesFileError, check_text, default_rules_path

REPO = Path(__file__).resolve().parents[2]

EXAMPLE = """\
version = 1

[defaults]              # optional; what happens when no rule matches
certificate = "ask"

# ---- blocking ----
[[rule]]
id = "no-trackers"                      # unique; generated when a decision is remembered
event = "request"                       # default "request"
urls = ["*://*.tracker.example/*"]      # WebExtension match patterns; default ["<all_urls>"]
types = ["script", "image"]             # webRequest resource types; default any
methods = ["GET"]                       # default any
action = "cancel"

[[rule]]
id = "api-to-staging"
regex = '^https://api\\.example\\.com/(.*)$'
action = "rewrite"
url = 'https://staging.example.com/\\1'  # \\1..\\9 from `regex`, as in declarativeNetRequest
priority = 2

# people log in here
[[rule]]
id = "intranet-login"
event = "auth"
urls = ["https://intranet.example/*"]
realm = "Staff"                         # optional
action = "credentials"
username = "alice"
secret = "intranet-login"               # the password lives in the secrets store, never here

[[rule]]
id = "dev-box-cert"
event = "certificate"
urls = ["https://dev.internal:8443/*"]
fingerprint = "sha256:3f:a1:3f:a1:3f:a1:3f:a1:3f:a1:3f:a1:3f:a1:3f:a1:3f:a1:3f:a1:3f:a1:3f:a1:3f:a1:3f:a1:3f:a1:3f:a1"
action = "allow"
"""


def wait_for(condition, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def spec_file(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("WAYLAY_SECRET_INTRANET_LOGIN", "hunter2")
    path = tmp_path / "rules.toml"
    path.write_text(EXAMPLE)
    return path


def loaded(path) -> RulesFile:
    rules_file = RulesFile(path)
    assert rules_file.load(), rules_file.errors
    return rules_file


# -- loading -------------------------------------------------------------------------------


def test_loads_the_spec_example(spec_file):
    rules_file = loaded(spec_file)
    assert [r.id for r in rules_file.rules] == [
        "no-trackers",
        "api-to-staging",
        "intranet-login",
        "dev-box-cert",
    ]
    assert [r.id for r in rules_file.ordered()] == [
        "api-to-staging",
        "no-trackers",
        "intranet-login",
        "dev-box-cert",
    ]
    assert rules_file.state == "4 rules"
    assert rules_file.defaults.certificate == "ask"
    assert rules_file.get("intranet-login").secret == "intranet-login"
    decision = rules_file.decide(EventDetails("request", "https://api.example.com/v1/x"))
    assert decision.url == "https://staging.example.com/v1/x"
    assert rules_file.hits == {"api-to-staging": 1}


def test_missing_file_is_an_empty_new_file_created_on_first_save(tmp_path):
    path = tmp_path / "deep" / "er" / "rules.toml"
    rules_file = loaded(path)
    assert rules_file.state == "new file" and rules_file.rules == ()
    assert rules_file.decide(EventDetails("request", "https://x/")).action == "continue"
    rules_file.add(Rule(id="block", urls=["*://ads.example/*"], action="cancel"))
    text = path.read_text()
    assert text.splitlines()[1] == "version = 1"
    assert "[[rule]]" in text and rules_file.state == "1 rule"
    assert loaded(path).rules == rules_file.rules
    assert not path.with_name("rules.toml.bak").exists()


BAD_FILES = [
    pytest.param(
        'version = 1\n\n[[rule]]\nid = "a"\naction = \n',
        5,
        "TOML syntax error",
        id="toml-syntax",
    ),
    pytest.param(
        'version = 1\n\n[[rule]]\nid = "a"\naction = "cancel"\n  colour = "red"\n',
        6,
        "rule 'a': unknown field 'colour'",
        id="unknown-field",
    ),
    pytest.param(
        'version = 1\n[[rule]]\nid = "a"\nevent = "auth"\n\naction = "redirect"\nurl = "https://x/"\n',
        6,
        "rule 'a': 'redirect' is not an action of auth events; use one of: credentials, cancel, ask",
        id="wrong-action-for-event",
    ),
    pytest.param(
        '[[rule]]\nid = "a"\naction = "cancel"\n\n[[rule]]\nid = "b"\nurls = ["*://*zilla.org/"]\naction = "cancel"\n',
        7,
        "rule 'b': urls: invalid match pattern '*://*zilla.org/': '*' in the host must be the only character or be followed by '.'",
        id="bad-pattern",
    ),
    pytest.param(
        '[[rule]]\nid = "a"\naction = "cancel"\n\n[[rule]]\n# again\nid = "a"\naction = "ask"\n',
        7,
        "duplicate id 'a' (first used on line 2)",
        id="duplicate-id",
    ),
    pytest.param(
        '[[rule]]\nid = "a"\naction = "cancel"\npriority = "high"\n',
        4,
        "rule 'a': priority: must be an integer, got 'high'",
        id="bad-priority",
    ),
    pytest.param("version = 2\n", 1, "unsupported version 2", id="version"),
    pytest.param(
        'version = 1\n\n[[rules]]\nid = "a"\n',
        3,
        "unknown top-level key 'rules' (each rule is a [[rule]] table)",
        id="rules-typo",
    ),
    pytest.param(
        '[defaults]\ncertificate = "yes"\n',
        2,
        "[defaults] certificate: 'yes' is not one of",
        id="bad-default",
    ),
    pytest.param(
        '\n[[rule]]\nid = "a"\n', 2, "rule 'a': `action` is required", id="missing-action"
    ),
    pytest.param(
        '[[rule]]\nid = "a"\nevent = "auth"\naction = "credentials"\nusername = "u"\nsecret = "nope"\n',
        6,
        "secret 'nope' not found: set $WAYLAY_SECRET_NOPE",
        id="missing-secret",
    ),
    pytest.param(
        '[[rule]]\nid = "a"\naction = "respond"\nbody_file = "missing.json"\n',
        4,
        "missing.json",
        id="missing-body-file",
    ),
    pytest.param(
        '[[rule]]\nid = "a"\naction = "respond"\n[rule.headers]\n"Bad Header" = "x"\n',
        4,
        "invalid header name",
        id="sub-table",
    ),
    pytest.param(
        '[[rule]]\nid = "a"\nnote = """\n[[rule]]\nid = 3\n"""\naction = "cancel"\ntimes = 0\n',
        8,
        "times: must be at least 1, got 0",
        id="after-multiline-string",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD_FILES)
def test_bad_files_report_line_and_message(tmp_path, text, line, message):
    path = tmp_path / "rules.toml"
    path.write_text(text)
    rules_file = RulesFile(path)
    assert rules_file.load() is False
    assert rules_file.broken
    first = rules_file.error
    assert first.startswith(f"{path}:{line}:"), rules_file.errors
    assert message in first, first
    assert rules_file.state.startswith("error: ")


def test_every_error_is_reported_with_its_own_line(tmp_path):
    text = (
        '[[rule]]\nid = "a"\naction = "nope"\n\n[[rule]]\nid = "b"\naction = "cancel"\nextra = 1\n'
    )
    result = check_text(text, tmp_path / "r.toml")
    assert [e.split(": ", 1)[0] for e in result.errors] == [
        f"{tmp_path / 'r.toml'}:3:1",
        f"{tmp_path / 'r.toml'}:8:1",
    ]


def test_columns_point_at_the_key(tmp_path):
    result = check_text('[[rule]]\n  id = "a"\n  action = "nope"\n', tmp_path / "r.toml")
    assert result.errors[0].startswith(f"{tmp_path / 'r.toml'}:3:3: ")


def test_a_syntax_error_column_comes_from_the_parser(tmp_path):
    result = check_text('version = 1\nid = "a" "b"\n', tmp_path / "r.toml")
    assert result.errors[0].startswith(f"{tmp_path / 'r.toml'}:2:10: TOML syntax error")


def test_warnings_do_not_fail_the_load(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nid = "any-cert"\nevent = "certificate"\naction = "allow"\n')
    rules_file = loaded(path)
    assert len(rules_file.warnings) == 1
    assert rules_file.warnings[0].startswith(
        f"{path}:4:1: warning: rule 'any-cert': allows ANY certificate"
    )


# -- editing -------------------------------------------------------------------------------


def test_edits_keep_comments_order_and_formatting(spec_file):
    rules_file = loaded(spec_file)
    rules_file.set_enabled("no-trackers", False)
    rules_file.update("api-to-staging", priority=3, note="moved to staging in May")
    rules_file.add(Rule(id="mock", action="respond", status=404, body="gone\n"), position=1)
    expected = EXAMPLE.replace(
        'action = "cancel"\n',
        'action = "cancel"\nenabled = false\n\n'
        '[[rule]]\nid = "mock"\nevent = "request"\nstatus = 404\naction = "respond"\nbody = "gone\\n"\n',
        1,
    ).replace("priority = 2\n", 'priority = 3\nnote = "moved to staging in May"\n')
    assert spec_file.read_text() == expected
    assert [r.id for r in loaded(spec_file).rules] == [
        "no-trackers",
        "mock",
        "api-to-staging",
        "intranet-login",
        "dev-box-cert",
    ]
    # and turning it back on restores the file byte for byte
    before = spec_file.read_text()
    rules_file.set_enabled("no-trackers", True)
    rules_file.set_enabled("no-trackers", False)
    assert spec_file.read_text() == before


def test_update_back_to_default_removes_the_key(spec_file):
    rules_file = loaded(spec_file)
    rules_file.set_enabled("no-trackers", False)
    rules_file.set_enabled("no-trackers", True)
    rules_file.update("api-to-staging", priority=1)
    assert spec_file.read_text() == EXAMPLE.replace("priority = 2\n", "")
    rules_file.update("api-to-staging", priority=2)
    assert spec_file.read_text() == EXAMPLE.replace(
        "priority = 2\n\n# people", "priority = 2\n\n# people"
    )


def test_move_and_remove_carry_the_comment_above_a_rule(spec_file):
    rules_file = loaded(spec_file)
    assert rules_file.move("intranet-login", -2) == 0
    text = spec_file.read_text()
    assert (
        text.index("# people log in here")
        < text.index('id = "intranet-login"')
        < text.index('id = "no-trackers"')
    )
    assert [r.id for r in rules_file.rules] == [
        "intranet-login",
        "no-trackers",
        "api-to-staging",
        "dev-box-cert",
    ]
    assert rules_file.move("intranet-login", +10) == 3
    assert [r.id for r in loaded(spec_file).rules] == [
        "no-trackers",
        "api-to-staging",
        "dev-box-cert",
        "intranet-login",
    ]
    assert rules_file.move("no-trackers", -1) == 0  # already first: nothing to do
    rules_file.remove("intranet-login")
    text = spec_file.read_text()
    assert "people log in here" not in text and "intranet" not in text
    assert "# ---- blocking ----" in text
    rules_file.remove("no-trackers")
    assert "# ---- blocking ----" not in spec_file.read_text()
    assert [r.id for r in loaded(spec_file).rules] == ["api-to-staging", "dev-box-cert"]


def test_rules_written_as_an_inline_array_can_be_edited_too(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(
        'version = 1\nrule = [\n  {id = "a", action = "cancel"},\n  {id = "b", action = "ask"},\n]\n'
    )
    rules_file = loaded(path)
    rules_file.add(Rule(id="c", action="continue"), position=0)
    rules_file.move("a", 1)
    rules_file.remove("b")
    rules_file.set_enabled("c", False)
    assert [(r.id, r.enabled) for r in loaded(path).rules] == [("c", False), ("a", True)]


def test_invalid_edits_are_refused_and_nothing_is_written(spec_file):
    rules_file = loaded(spec_file)
    with pytest.raises(ValueError):
        rules_file.update("no-trackers", action="follow")
    with pytest.raises(RulesFileError, match="duplicate id"):
        rules_file.add(Rule(id="no-trackers", action="ask"))
    with pytest.raises(RulesFileError, match="secret 'missing' not found"):
        rules_file.add(
            Rule(id="x", event="auth", action="credentials", username="u", secret="missing")
        )
    with pytest.raises(KeyError):
        rules_file.remove("nope")
    assert spec_file.read_text() == EXAMPLE
    rules_file.set_enabled("no-trackers", False)  # the cached document was not left half changed
    assert spec_file.read_text() == EXAMPLE.replace(
        'action = "cancel"\n', 'action = "cancel"\nenabled = false\n', 1
    )


def test_set_defaults(spec_file, tmp_path):
    rules_file = loaded(spec_file)
    rules_file.set_defaults(auth="cancel")
    assert 'certificate = "ask"\nauth = "cancel"\n' in spec_file.read_text()
    assert rules_file.defaults.auth == "cancel"
    fresh = loaded(tmp_path / "other.toml")
    fresh.add(Rule(id="a", action="cancel"))
    fresh.set_defaults(certificate="reject")
    text = (tmp_path / "other.toml").read_text()
    assert text.index("[defaults]") < text.index("[[rule]]")
    assert loaded(tmp_path / "other.toml").defaults.certificate == "reject"


def test_new_id(spec_file):
    rules_file = loaded(spec_file)
    assert rules_file.new_id("No Trackers!") == "no-trackers-2"
    assert rules_file.new_id("api.example.com") == "api-example-com"
    assert rules_file.new_id("") == "rule"


def test_each_save_keeps_the_previous_version_as_bak(spec_file):
    rules_file = loaded(spec_file)
    rules_file.set_enabled("no-trackers", False)
    bak = spec_file.with_name("rules.toml.bak")
    assert bak.read_text() == EXAMPLE
    first_edit = spec_file.read_text()
    rules_file.update("no-trackers", note="x")
    assert bak.read_text() == first_edit
    assert sorted(p.name for p in spec_file.parent.iterdir()) == [
        "home",
        "rules.toml",
        "rules.toml.bak",
    ]


def test_an_external_edit_is_built_on_not_clobbered(spec_file):
    rules_file = loaded(spec_file)
    spec_file.write_text(EXAMPLE + '\n[[rule]]\nid = "by-hand"\naction = "ask"\n')
    rules_file.set_enabled("no-trackers", False)
    assert [r.id for r in loaded(spec_file).rules][-1] == "by-hand"


# -- never losing a rule -------------------------------------------------------------------


def test_a_crash_between_write_and_rename_leaves_the_old_file(spec_file, monkeypatch):
    rules_file = loaded(spec_file)
    real_replace, real_exchange = os.replace, files._exchange

    def crash(swap):
        def swapped(src, dst):
            if Path(dst) == spec_file:
                raise OSError(28, "No space left on device")
            return swap(src, dst)

        return swapped

    # the new version goes in by an atomic exchange, or a rename where there is none
    monkeypatch.setattr(os, "replace", crash(real_replace))
    monkeypatch.setattr(files, "_exchange", crash(real_exchange))
    with pytest.raises(OSError):
        rules_file.set_enabled("no-trackers", False)
    monkeypatch.setattr(os, "replace", real_replace)
    monkeypatch.setattr(files, "_exchange", real_exchange)
    assert spec_file.read_text() == EXAMPLE
    assert not [p for p in spec_file.parent.iterdir() if p.name.endswith(".tmp")]
    assert rules_file.get("no-trackers").enabled  # memory matches the disk
    rules_file.set_enabled("no-trackers", False)  # and the next save works
    assert loaded(spec_file).get("no-trackers").enabled is False


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from policies import files
from policies.rules_file import RulesFile

path = Path(sys.argv[1])
def killing(swap):
    def swapped(src, dst):
        if Path(dst) == path:
            os.kill(os.getpid(), signal.SIGKILL)  # the power goes out between write and swap
        return swap(src, dst)
    return swapped
os.replace = killing(os.replace)
files._exchange = killing(files._exchange)
rules_file = RulesFile(path)
assert rules_file.load(), rules_file.errors
rules_file.remove("no-trackers")
"""


def test_a_writer_killed_between_write_and_rename_leaves_the_old_file(spec_file):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(spec_file)],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == -9, result.stderr.decode()
    assert spec_file.read_text() == EXAMPLE
    leftovers = [p for p in spec_file.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers, "the killed writer should have left its temp file behind"
    rules_file = loaded(spec_file)
    assert rules_file.get("no-trackers") is not None
    rules_file.remove("no-trackers")
    assert leftovers[0].exists()  # it could be another writer's, in the middle of a save
    old = time.time() - 120
    os.utime(leftovers[0], (old, old))  # a killed writer's, from minutes ago
    rules_file.add(Rule(id="again", action="cancel"))
    assert not [p for p in spec_file.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_broken_file_is_never_overwritten(spec_file):
    rules_file = loaded(spec_file)
    broken = EXAMPLE.replace('action = "cancel"', 'action = "cancel"\ncolour = "red"')
    spec_file.write_text(broken)
    assert rules_file.load() is False
    assert "unknown field 'colour'" in rules_file.error
    # the last good rules stay active
    assert (
        rules_file.decide(
            EventDetails("request", "https://a.tracker.example/x", type="script")
        ).action
        == "cancel"
    )
    for edit in (
        lambda: rules_file.add(Rule(id="n", action="ask")),
        lambda: rules_file.set_enabled("no-trackers", False),
        lambda: rules_file.remove("no-trackers"),
        lambda: rules_file.move("no-trackers", 1),
        lambda: rules_file.set_defaults(auth="cancel"),
    ):
        with pytest.raises(RulesFileError, match="will not write to it until it is fixed"):
            edit()
    assert spec_file.read_text() == broken
    assert not spec_file.with_name("rules.toml.bak").exists()
    spec_file.write_text(EXAMPLE)
    assert rules_file.load() and not rules_file.broken
    rules_file.set_enabled("no-trackers", False)


def test_a_file_broken_at_first_load_has_no_rules_and_is_protected(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text("this is not toml\n")
    rules_file = RulesFile(path)
    assert not rules_file.load()
    assert rules_file.rules == () and rules_file.state.startswith("error: 1:")
    with pytest.raises(RulesFileError):
        rules_file.add(Rule(id="a", action="cancel"))
    assert path.read_text() == "this is not toml\n"


# -- times, hits, transient rules ------------------------------------------------------------


def test_times_counts_down_in_the_file_then_disables(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(
        'version = 1\n\n[[rule]]\nid = "next-two"\naction = "cancel"\ntimes = 2  # then stop\n'
    )
    rules_file = loaded(path)
    hit = EventDetails("request", "https://x/")
    assert rules_file.times_left("next-two") == 2
    assert rules_file.decide(hit).action == "cancel"
    assert rules_file.times_left("next-two") == 1  # counted at once, written a moment later
    wait_for(lambda: "times = 1  # then stop" in path.read_text(), what="the writer")
    assert rules_file.decide(hit).action == "cancel"
    assert rules_file.decide(hit).action == "continue"  # used up at once
    rules_file.flush()
    assert (
        path.read_text()
        == 'version = 1\n\n[[rule]]\nid = "next-two"\naction = "cancel"\nenabled = false\n'
    )
    assert rules_file.hits == {"next-two": 2}
    assert rules_file.get("next-two").enabled is False and rules_file.times_left("next-two") is None


def test_times_in_memory_when_the_file_cannot_be_written(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nid = "once"\naction = "cancel"\ntimes = 1\n')
    rules_file = loaded(path)
    path.write_text("broken = \n")
    assert not rules_file.load()
    hit = EventDetails("request", "https://x/")
    assert rules_file.decide(hit).action == "cancel"
    assert rules_file.decide(hit).action == "continue"
    assert path.read_text() == "broken = \n"


def test_times_is_exact_under_concurrent_decisions(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nid = "five"\naction = "cancel"\ntimes = 5\n')
    rules_file = loaded(path)
    results = []
    lock = threading.Lock()

    def worker():
        for _ in range(20):
            decision = rules_file.decide(EventDetails("request", "https://x/"))
            with lock:
                results.append(decision.rule_id)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("five") == 5 and len(results) == 120
    assert rules_file.hits == {"five": 5}
    rules_file.flush()
    assert loaded(path).get("five").enabled is False


def test_transient_rules_decide_but_are_never_written(spec_file):
    rules_file = loaded(spec_file)
    breakpoint_rule = Rule(id="bp-1", urls=["*://*.tracker.example/*"], action="ask", times=1)
    rules_file.set_transient([breakpoint_rule])
    assert rules_file.is_transient("bp-1") and not rules_file.is_transient("no-trackers")
    assert [r.id for r in rules_file.ordered()][:3] == ["api-to-staging", "bp-1", "no-trackers"]
    hit = EventDetails("request", "https://a.tracker.example/t.js", type="script")
    decision = rules_file.decide(hit)
    assert decision.rule_id == "bp-1" and decision.matched == (
        "bp-1",
        "no-trackers",
    )  # wins the tie
    assert rules_file.decide(hit).rule_id == "no-trackers"  # used up
    rules_file.flush()
    assert rules_file.transient == ()
    rules_file.set_transient([Rule(id="bp-2", action="ask", priority=10)])
    assert rules_file.ordered()[0].id == "bp-2"
    rules_file.set_enabled("no-trackers", False)
    assert "bp-2" not in spec_file.read_text()
    with pytest.raises(ValueError, match="already used"):
        rules_file.set_transient([Rule(id="no-trackers", action="ask")])
    rules_file.persist_transient("bp-2")
    assert not rules_file.is_transient("bp-2")
    assert loaded(spec_file).get("bp-2").priority == 10


# -- watching ------------------------------------------------------------------------------


def test_the_watcher_picks_up_external_edits(spec_file):
    rules_file = loaded(spec_file)
    changes = []
    rules_file.start_watching(changes.append, interval=0.02)
    try:
        spec_file.write_text(EXAMPLE + '\n[[rule]]\nid = "by-hand"\naction = "ask"\n')
        wait_for(lambda: rules_file.get("by-hand") is not None, what="the external edit")
        assert changes and changes[-1] is rules_file
        # a broken edit keeps the last good rules and reports the error
        spec_file.write_text(
            EXAMPLE + '\n[[rule]]\nid = "by-hand"\naction = "ask"\npriority = "x"\n'
        )
        wait_for(lambda: rules_file.error is not None, what="the error")
        line = EXAMPLE.count("\n") + 5
        assert (
            f"rules.toml:{line}:1: rule 'by-hand': priority: must be an integer" in rules_file.error
        )
        assert rules_file.get("by-hand") is not None
        # fixing it takes effect, and a same-size rewrite right after it is noticed too
        by_hand = EXAMPLE + '\n[[rule]]\nid = "by-hand"\naction = "ask"\npriority = {}\n'
        spec_file.write_text(by_hand.format(7))
        wait_for(
            lambda: rules_file.error is None and rules_file.get("by-hand").priority == 7, what="7"
        )
        spec_file.write_text(by_hand.format(8))
        wait_for(lambda: rules_file.get("by-hand").priority == 8, what="priority 8")
        spec_file.write_text(EXAMPLE)
        wait_for(
            lambda: rules_file.error is None and rules_file.get("by-hand") is None, what="the fix"
        )
        # waylay's own saves are not reported as changes
        seen = len(changes)
        polls = rules_file.watch_polls
        rules_file.set_enabled("no-trackers", False)
        wait_for(lambda: rules_file.watch_polls >= polls + 3, what="a few polls")
        assert len(changes) == seen
    finally:
        rules_file.stop_watching()


def test_default_rules_path(monkeypatch, tmp_path, _policies_home):
    assert default_rules_path() == _policies_home / ".config" / "waylay" / "rules.toml"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert default_rules_path() == _policies_home / ".config" / "waylay" / "rules.toml"
    monkeypatch.setenv("WAYLAY_RULES", str(tmp_path / "mine.toml"))
    assert default_rules_path() == tmp_path / "mine.toml"
