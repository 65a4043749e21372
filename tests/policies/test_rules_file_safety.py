"""Writing the rules file safely (issues 15, 16, 17): compare-and-swap saves, another
program writing in the very instant of a save, countdowns kept in memory with a notice,
old copies of the file, hit counts kept across restarts."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest

from policies import files
from policies.engine import Engine, EventDetails
from policies.exchange import import_command
from policies.model import Rule
from policies.rules_file import RulesFile, RulesFileError, _RuleBlocks, hits_path_for
from tests.bench.bench_rules import decision_stream, mixed_rules, toml_text

BASE = (
    "# my rules\nversion = 1\n\n"
    '[[rule]]\nid = "first"\nurls = ["*://one.example/*"]\naction = "cancel"\ntimes = 5\n\n'
    "# the second one\n"
    '[[rule]]\nid = "second"\nurls = ["*://two.example/*"]\naction = "cancel"\n'
)
ONE = EventDetails("request", "https://one.example/x")


def wait_for(condition, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def path(tmp_path) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(BASE)
    return path


def loaded(path) -> RulesFile:
    rules_file = RulesFile(path)
    assert rules_file.load(), rules_file.errors
    return rules_file


def with_rule(text: str, rule_id: str) -> str:
    return text + f'\n[[rule]]\nid = "{rule_id}"\naction = "ask"\n'


# -- compare and swap ---------------------------------------------------------------------


def test_a_save_over_a_version_not_read_is_refused(path):
    _, version = files.read_version(path)
    path.write_text(with_rule(BASE, "theirs"))
    with pytest.raises(files.WriteConflict) as caught:
        files.write_checked(path, "version = 1\n", version)
    assert caught.value.theirs is None
    assert 'id = "theirs"' in path.read_text()
    with pytest.raises(files.WriteConflict):
        files.write_checked(path, "version = 1\n", files.NO_FILE)  # "there is no file"


@pytest.mark.parametrize("how", ["renamed", "in place"])
def test_a_write_in_the_instant_of_a_save_is_kept_and_the_edit_made_again(path, monkeypatch, how):
    """Another program saves between waylay's last look and its swap: the exchange hands
    its version back, and waylay's edit is made again on it."""
    rules_file = loaded(path)
    real = files._exchange
    injected = []

    def racing(a, b):
        if not injected:
            injected.append(how)
            theirs = with_rule(path.read_text(), "theirs")
            if how == "renamed":
                tmp = path.with_name("editor.tmp")
                tmp.write_text(theirs)
                os.replace(tmp, path)
            else:
                with open(path, "w") as handle:
                    handle.write(theirs)
        return real(a, b)

    monkeypatch.setattr(files, "_exchange", racing)
    rules_file.set_enabled("second", False)
    text = path.read_text()
    assert 'id = "theirs"' in text and "enabled = false" in text and "# the second one" in text
    assert rules_file.get("theirs") is not None and rules_file.get("second").enabled is False


def test_an_edit_that_no_longer_applies_puts_their_version_back(path, monkeypatch):
    rules_file = loaded(path)
    real = files._exchange
    theirs = BASE.split("# the second one")[0]  # they removed rule "second"

    def racing(a, b):
        if path.read_text() != theirs:
            path.write_text(theirs)
        return real(a, b)

    monkeypatch.setattr(files, "_exchange", racing)
    with pytest.raises(KeyError):
        rules_file.set_enabled("second", False)
    assert path.read_text() == theirs
    assert rules_file.get("second") is None


def test_an_edit_is_made_by_rule_id_on_the_version_on_disk(path):
    rules_file = loaded(path)
    # another program puts a rule first, before waylay's watcher has seen it
    path.write_text(BASE.replace("[[rule]]", '[[rule]]\nid = "top"\naction = "ask"\n\n[[rule]]', 1))
    rules_file.set_enabled("second", False)
    on_disk = loaded(path)
    assert [r.id for r in on_disk.rules] == ["top", "first", "second"]
    assert on_disk.get("second").enabled is False and on_disk.get("top").enabled


def test_an_import_while_a_countdown_is_written_loses_neither(path, tmp_path, monkeypatch):
    rules_file = loaded(path)
    assert rules_file.decide(ONE).rule_id == "first"
    incoming = tmp_path / "in.toml"
    incoming.write_text('[[rule]]\nid = "imported"\naction = "ask"\n')
    real = files._exchange
    raced = []

    def racing(a, b):
        if not raced and Path(b) == path:
            raced.append(True)
            rules_file.flush()  # waylay's writer saves the countdown in that instant
        return real(a, b)

    monkeypatch.setattr(files, "_exchange", racing)
    assert import_command(incoming, "toml", into=path) == 0
    text = path.read_text()
    assert 'id = "imported"' in text and "times = 4" in text


def test_secrets_written_meanwhile_by_another_program_are_kept(tmp_path, monkeypatch):
    from policies.secrets import SecretStore

    store = SecretStore(tmp_path)
    store.set("one", "1")
    real = files._exchange
    raced = []

    def racing(a, b):
        if not raced:
            raced.append(True)
            (tmp_path / "secrets.toml").write_text('one = "1"\nother = "2"\n')
        return real(a, b)

    monkeypatch.setattr(files, "_exchange", racing)
    store.set("three", "3")
    assert (store.get("one"), store.get("other"), store.get("three")) == ("1", "2", "3")
    assert (tmp_path / "secrets.toml").stat().st_mode & 0o777 == 0o600


# -- countdowns ---------------------------------------------------------------------------


def test_a_countdown_that_cannot_be_saved_goes_on_in_memory_and_says_so(path):
    rules_file = loaded(path)
    notices = []
    rules_file.start_watching(lambda rf: notices.append(rf.notice), interval=0.02)
    try:
        path.write_text(BASE + "oops =\n")
        wait_for(lambda: rules_file.broken, what="the broken file")
        for _ in range(5):
            assert rules_file.decide(ONE).action == "cancel"
        assert rules_file.decide(ONE).action == "continue"  # used up, in memory
        assert rules_file.flush() is False
        assert "counting in memory" in rules_file.state
        assert path.read_text() == BASE + "oops =\n"  # the person's file is left alone
        path.write_text(BASE)
        wait_for(lambda: rules_file.notice is None, what="the count saved once it loads")
        assert loaded(path).get("first").enabled is False
        # the screen and headless were told, both times
        wait_for(lambda: notices[-1] is None, what="the all-clear")
        told = [n for n in notices if n is not None]
        assert told and "counting in memory" in told[0]
    finally:
        rules_file.close()


def test_an_old_copy_saved_over_a_countdown_does_not_undo_it(path):
    rules_file = loaded(path)
    for _ in range(3):
        rules_file.decide(ONE)
    rules_file.flush()
    assert "times = 2" in path.read_text()
    path.write_text(BASE.replace("# my rules", "# my rules, edited"))  # from an old buffer
    assert rules_file.load()
    assert rules_file.times_left("first") == 2
    rules_file.flush()
    assert "times = 2" in path.read_text() and "edited" in path.read_text()
    # a value the file never held during this countdown is the person's: it restarts
    path.write_text(BASE.replace("times = 5", "times = 9"))
    assert rules_file.load() and rules_file.times_left("first") == 9
    # so does one set through waylay
    rules_file.update("first", times=5)
    assert rules_file.times_left("first") == 5


def test_many_decisions_make_few_writes(path, monkeypatch):
    rules_file = loaded(path)
    rules_file.update("first", times=100_000)
    saves = []
    real = files.write_checked
    monkeypatch.setattr(
        "policies.rules_file.write_checked",
        lambda *a, **k: saves.append(a[0]) or real(*a, **k),
    )
    count = 20_000
    for _ in range(count):
        rules_file.decide(ONE)
    rules_file.close()
    # coalesced: writes follow time (about one per 0.2 s), not decisions
    assert 1 <= len(saves) <= count // 100
    assert f"times = {100_000 - count}\n" in path.read_text()


# -- watching -----------------------------------------------------------------------------


def test_a_file_emptied_on_purpose_is_taken_once_it_stays_empty(path):
    rules_file = loaded(path)
    rules_file.start_watching(interval=0.02)
    try:
        path.write_text("version = 1\n")
        started = time.monotonic()
        wait_for(lambda: rules_file.get("first") is None, what="the emptied file")
        assert time.monotonic() - started >= rules_file.empty_age * 0.9
        assert rules_file.decide(ONE).action == "continue"
    finally:
        rules_file.stop_watching()


# -- hit counts ---------------------------------------------------------------------------


def test_hit_counts_survive_a_restart_and_never_touch_the_rules_file(path, _policies_home):
    rules_file = loaded(path)
    for _ in range(3):
        rules_file.decide(ONE)
    rules_file.decide(EventDetails("request", "https://two.example/"))
    rules_file.close()
    before = path.read_text()
    hits = hits_path_for(path)
    assert hits.is_relative_to(_policies_home / ".local" / "state" / "waylay")
    assert json.loads(hits.read_text())["hits"] == {"first": 3, "second": 1}
    again = loaded(path)
    assert again.hits == {"first": 3, "second": 1}
    again.decide(ONE)
    again.remove("second")
    again.close()
    assert json.loads(hits.read_text())["hits"] == {"first": 4}
    assert "hits" not in path.read_text() and before.count("[[rule]]") == 2


def test_a_damaged_hits_file_starts_from_zero(path):
    hits = hits_path_for(path)
    hits.parent.mkdir(parents=True)
    hits.write_text("{not json")
    rules_file = loaded(path)
    assert rules_file.hits == {}
    rules_file.decide(ONE)
    rules_file.close()
    assert json.loads(hits.read_text())["hits"] == {"first": 1}


# -- the pieces: block edits and engine replacement -----------------------------------------


def test_editing_several_blocks_gives_the_blocks_a_scan_would():
    rules = mixed_rules(300)
    for n, rule in enumerate(rules):
        if n % 7 == 0:
            rule["times"] = 10 + n
    text = toml_text(rules)
    blocks = _RuleBlocks.of(text)
    rng = random.Random(3)
    picks = rng.sample([n for n, r in enumerate(rules) if "times" in r], 12)

    def drop_times(table):
        del table["times"]
        table["enabled"] = False

    def lower(table):
        table["times"] = 1

    edits = {n: (drop_times if k % 2 else lower) for k, n in enumerate(picks)}
    new_text, new_blocks = blocks.edit_many(edits)
    scanned = _RuleBlocks.of(new_text)
    assert (new_blocks.starts, new_blocks.ends) == (scanned.starts, scanned.ends)
    assert new_blocks.lines == scanned.lines and new_blocks.tables == scanned.tables


def test_a_replaced_engine_decides_as_a_new_one():
    data = mixed_rules(500)
    rules = [Rule.model_validate(d) for d in data]
    engine = Engine(rules)
    rng = random.Random(5)
    changed = {}
    for index in rng.sample(range(len(rules)), 40):
        rule = rules[index]
        changed[rule.id] = rule.replace(enabled=not rule.enabled, times=3)
    replaced = engine.replaced(changed)
    fresh = Engine([changed.get(r.id, r) for r in rules])
    for details in decision_stream(data, 3000):
        a, b = replaced.decide(details), fresh.decide(details)
        assert (a.rule_id, a.matched, a.action) == (b.rule_id, b.matched, b.action)
    assert replaced.ordered() == fresh.ordered()
    assert engine.decide(details).rule_id == Engine(rules).decide(details).rule_id


def test_a_used_up_rule_is_skipped_at_once_then_disabled_in_the_file(path):
    rules_file = loaded(path)
    rules_file.update("first", times=1)
    assert rules_file.decide(ONE).rule_id == "first"
    assert rules_file.decide(ONE).rule_id is None  # before anything is written
    assert rules_file.times_left("first") == 0
    rules_file.flush()
    assert rules_file.get("first").enabled is False
    assert loaded(path).get("first").enabled is False


def test_a_broken_file_is_not_written_by_a_countdown_either(path):
    rules_file = loaded(path)
    path.write_text("nope = \n")
    rules_file.decide(ONE)
    with pytest.raises(RulesFileError):
        rules_file.set_enabled("first", False)
    rules_file.close()
    assert path.read_text() == "nope = \n"
