"""Issue 15.1, lost updates: waylay never writes over a version of the rules file it has
not read.

A person's program edits ``rules.toml`` twenty times — half by writing a temp file and
renaming it over (as most editors save), half in place (truncate, then write) — while two
``times`` rules count down under real traffic through the embedded proxy. Every edit
survives, and each countdown is exact: no request is decided by a used-up rule, and the
file ends with the count the traffic left. (Before: 9 of 20 edits were lost.)
"""

from __future__ import annotations

import os
import random
import re
import threading
import time

import httpx
import pytest

from monitor.session import Session
from policies import RulesFile, files
from tests.bench.bench_rules import mixed_rules, toml_text
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

EDITS = 20
COUNT_A = 100_000  # never used up here: the file must end with COUNT_A - (418s seen)
COUNT_B = 30  # used up while the edits go on: exactly 30 requests get the 418


def _rules_text() -> str:
    counted = [
        {"id": "count-a", "urls": ["*://127.0.0.1/a*"], "action": "respond", "times": COUNT_A},
        {"id": "count-b", "urls": ["*://127.0.0.1/b*"], "action": "respond", "times": COUNT_B},
    ]
    for rule in counted:
        rule.update(status=418, body=rule["id"])
    # a file of some size: with it, each save took long enough for edits to fall inside
    return toml_text([*counted, *mixed_rules(2000)])


def _edit(path, k: int) -> None:
    """The person's program: read the file, add one rule, save it (renamed or in place)."""
    text = path.read_text()
    new = (
        text.rstrip("\n")
        + f'\n\n[[rule]]\nid = "user-{k}"\nurls = ["*://user-{k}.example/*"]\naction = "cancel"\n'
    )
    if k % 2 == 0:
        tmp = path.with_name(f".edit-{k}.tmp")
        tmp.write_text(new)
        os.replace(tmp, path)
    else:
        with open(path, "w") as handle:  # truncates: a moment with a partial file
            half = len(new) // 2
            handle.write(new[:half])
            handle.flush()
            time.sleep(0.002)
            handle.write(new[half:])


@pytest.mark.parametrize("swap", ["exchange", "rename"])
def test_no_edit_is_lost_while_times_rules_count_down_under_traffic(
    settings, upstream, monkeypatch, swap
):
    if swap == "rename":  # systems without an atomic exchange (not Linux): check, then rename
        monkeypatch.setattr(files, "_exchange_works", False)
    path = settings.rules
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_rules_text())
    session = Session(settings)
    _, port = session.start()
    stop = threading.Event()
    answered = {"a": 0, "b": 0, "b_after": 0}
    errors: list[BaseException] = []

    def traffic(name: str) -> None:
        try:
            with httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=30) as client:
                while not stop.is_set():
                    response = client.get(upstream.url(f"/{name}"))
                    if response.status_code == 418:
                        assert response.text == f"count-{name}"
                        answered[name] += 1
                    else:
                        assert response.status_code == 200, response.status_code
                        if name == "b":
                            answered["b_after"] += 1
                    time.sleep(0.003)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    clients = [threading.Thread(target=traffic, args=(n,), daemon=True) for n in "ab"]
    try:
        for thread in clients:
            thread.start()
        wait_for(lambda: answered["a"] >= 5, what="traffic decided by count-a")
        rng = random.Random(15)
        for k in range(EDITS):
            _edit(path, k)
            time.sleep(rng.uniform(0.03, 0.09))
        # go on counting for a while after the last edit, then stop
        seen = answered["a"]
        wait_for(lambda: answered["a"] >= seen + 5, timeout=60, what="more traffic")
        stop.set()
        for thread in clients:
            thread.join(30)
        assert not errors, errors
        left_a = COUNT_A - answered["a"]

        def settled_on_disk() -> bool:
            text = path.read_text()
            return f"times = {left_a}\n" in text and all(
                f'id = "user-{k}"' in text for k in range(EDITS)
            )

        deadline = time.monotonic() + 15
        while not settled_on_disk() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        session.stop()
    text = path.read_text()
    lost = [k for k in range(EDITS) if f'id = "user-{k}"' not in text]
    assert lost == [], f"{len(lost)} of {EDITS} edits lost: {lost}"
    assert answered["b"] == COUNT_B and answered["b_after"] > 0
    on_disk = RulesFile(path)
    assert on_disk.load(), on_disk.errors
    assert on_disk.get("count-a").times == left_a
    assert on_disk.get("count-b").enabled is False and on_disk.get("count-b").times is None
    assert len(re.findall(r"^\[\[rule\]\]", text, re.M)) == 2 + 2000 + EDITS
    assert session.rules.notice is None
