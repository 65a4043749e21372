"""Issue 16, "Files": a symlinked rules file or secrets.toml stays a link, an in-place
save never empties the active rules, a ``times`` countdown never stalls the proxy, and a
broken rules edit at runtime is said on stderr in headless mode."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
import time

import httpx
import pytest

from monitor.session import Session
from policies import RulesFile
from policies import rules_file as rules_file_module
from policies.engine import EventDetails
from policies.exchange import import_command
from policies.model import Rule
from policies.secrets import SecretStore
from tests.bench.bench_rules import mixed_rules, toml_text
from tests.helpers import WAYLAY, wait_for

CANCEL = (
    'version = 1\n\n[[rule]]\nid = "block"\nurls = ["*://blocked.example/*"]\naction = "cancel"\n'
)
BLOCKED = EventDetails("request", "https://blocked.example/x")


# -- symlinks -------------------------------------------------------------------------------


@pytest.fixture
def linked(tmp_path):
    """``config/rules.toml`` -> ``dotfiles/waylay/rules.toml`` (a dotfiles repository)."""
    target = tmp_path / "dotfiles" / "waylay" / "rules.toml"
    target.parent.mkdir(parents=True)
    target.write_text(CANCEL + "times = 3\n")
    link = tmp_path / "config" / "rules.toml"
    link.parent.mkdir()
    link.symlink_to(target)
    return link, target


def test_a_symlinked_rules_file_is_written_through_and_stays_a_link(linked, tmp_path):
    link, target = linked
    rules_file = RulesFile(link)
    assert rules_file.load()
    rules_file.add(Rule(id="added", urls=["*://added.example/*"], action="cancel"))
    assert link.is_symlink(), "the first save replaced the link with a plain copy"
    assert 'id = "added"' in target.read_text()
    assert not link.with_name("rules.toml.bak").is_symlink()
    assert rules_file.decide(BLOCKED).action == "cancel"  # a countdown: 3 -> 2
    rules_file.flush()
    incoming = tmp_path / "more.toml"
    incoming.write_text('[[rule]]\nid = "imported"\naction = "ask"\n')
    assert import_command(incoming, "toml", into=link) == 0
    assert link.is_symlink() and os.path.realpath(link) == str(target)
    text = target.read_text()
    assert 'id = "added"' in text and "times = 2" in text and 'id = "imported"' in text
    bak = link.with_name("rules.toml.bak")
    assert bak.is_file() and not bak.is_symlink()
    assert 'id = "added"' in bak.read_text()  # the version before the import
    assert not [p for p in target.parent.iterdir() if p.name != "rules.toml"]  # repo clean
    rules_file.close()


def test_a_symlinked_secrets_file_is_written_through_and_stays_a_link(tmp_path):
    target = tmp_path / "dotfiles" / "secrets.toml"
    target.parent.mkdir()
    target.write_text('# mine\nold = "one"\n')
    target.chmod(0o600)
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "secrets.toml").symlink_to(target)
    store = SecretStore(folder)
    store.set("intranet", "s3cret")
    assert (folder / "secrets.toml").is_symlink()
    assert target.read_text() == '# mine\nold = "one"\nintranet = "s3cret"\n'
    assert target.stat().st_mode & 0o777 == 0o600
    assert store.get("intranet") == "s3cret" and store.get("old") == "one"


# -- in-place saves ---------------------------------------------------------------------------


def test_an_in_place_save_never_empties_the_active_rules(tmp_path):
    """An editor that truncates, then writes: the watcher may see an empty (valid) file."""
    path = tmp_path / "rules.toml"
    path.write_text(CANCEL)
    rules_file = RulesFile(path)
    assert rules_file.load()
    rules_file.start_watching(interval=0.02)
    done = threading.Event()

    def editor() -> None:
        for n in range(3):
            with open(path, "w") as handle:  # truncated now...
                handle.flush()
                time.sleep(0.3)  # ...the person's editor is slow to write
                handle.write(CANCEL.replace("action", f"# save {n}\naction"))
            time.sleep(0.1)
        done.set()

    thread = threading.Thread(target=editor)
    thread.start()
    try:
        decisions = set()
        while not done.is_set():
            decisions.add(rules_file.decide(BLOCKED).action)
            time.sleep(0.005)
        thread.join()
        wait_for(lambda: "# save 2" in (rules_file._text or ""), what="the last save")
        assert decisions == {"cancel"}, "an emptied file became the active rules"
        assert rules_file.get("block") is not None and not rules_file.broken
    finally:
        rules_file.stop_watching()


# -- a countdown under traffic, with 10,000 rules ----------------------------------------------


@pytest.mark.e2e
def test_a_countdown_does_not_stall_the_proxy_with_10000_rules(settings, upstream, monkeypatch):
    """Before, every counted request rewrote and re-checked the whole file on the proxy's
    loop (0.4-1.3 s each with 10,000 rules). Now the count is kept in memory and written
    off the loop: with the file's writer held up, counted requests still go through."""
    counted = {"id": "counted", "urls": ["*://127.0.0.1/counted*"], "action": "respond"}
    counted.update(status=418, body="counted", times=1000)
    settings.rules.parent.mkdir(parents=True, exist_ok=True)
    settings.rules.write_text(toml_text([counted, *mixed_rules(9999)]))
    writing, release = threading.Event(), threading.Event()
    real_write = rules_file_module.write_checked

    def held_up_write(*args, **kwargs):
        writing.set()
        assert release.wait(120), "the writer was never released"
        return real_write(*args, **kwargs)

    monkeypatch.setattr(rules_file_module, "write_checked", held_up_write)
    session = Session(settings)
    _, port = session.start()
    try:
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=60) as client:
            assert client.get(upstream.url("/counted")).status_code == 418
            assert writing.wait(60), "the count was never written"
            for _ in range(30):  # the writer is stuck in its write all along
                assert client.get(upstream.url("/counted")).status_code == 418
            assert not release.is_set() and settings.rules.read_text().count("times = 1000\n")
        release.set()
        wait_for(lambda: "times = 969\n" in settings.rules.read_text(), what="the count on disk")
    finally:
        release.set()
        session.stop()
    assert RulesFile(settings.rules).load()


# -- headless says a broken edit ---------------------------------------------------------------


@pytest.mark.e2e
def test_headless_says_a_broken_rules_edit_and_its_fix_on_stderr(settings):
    path = settings.rules
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CANCEL)
    proc = subprocess.Popen(
        [
            *WAYLAY,
            "--headless",
            "--listen-port",
            "0",
            "--confdir",
            str(settings.confdir),
            "--rules",
            str(path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()

    def next_line(pattern: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no stderr line like {pattern!r}")

    try:
        next_line(r"waylay: listening on")
        path.write_text(CANCEL + 'priority = "high"\n')
        line = next_line(r"rules file:")
        assert f"{path}:7:1: rule 'block': priority: must be an integer" in line
        assert "keeping the last good rules" in line
        path.write_text(CANCEL)
        assert "loads again: 1 rule" in next_line(r"rules file")
    finally:
        proc.terminate()
        proc.wait(15)
