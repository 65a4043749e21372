"""The proxy's batches to attached screens are made in slices (``Recorder.flush_in_slices``):
traffic is served between slices, and what the screen gets is the same as one flush makes,
never a row older than one it already has."""

from __future__ import annotations

import asyncio

from mitmproxy.test import tflow

from monitor.pauses import Pauses
from monitor.recorder import Recorder


def recorder(n: int) -> tuple[Recorder, list, list]:
    """A recorder holding ``n`` flows, all changed since the last batch; the batches it
    hands over are collected as (ids of the rows, removed ids)."""
    sent: list[tuple[list[str], list[str]]] = []
    r = Recorder(max_flows=10_000, pauses=Pauses(timeout=60, headless=True))
    r.row_maker = lambda f, seq, paused, flt: (f.id, seq, f.request.path)
    r.sink = lambda rows, removed: sent.append(([row[0] for row in rows], list(removed)))
    flows = []
    for i in range(n):
        f = tflow.tflow()
        f.request.path = f"/{i}"
        r.track(f)
        flows.append(f)
    return r, flows, sent


async def test_a_batch_of_many_rows_lets_the_loop_serve_between_slices():
    r, flows, sent = recorder(200)
    turns = 0

    async def traffic() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(traffic())
    await asyncio.sleep(0)
    before = turns
    await r.flush_in_slices(rows=64)
    during = turns - before
    other.cancel()
    assert sent == [([f.id for f in flows], [])]  # one batch, oldest first, as flush()
    assert during >= 3  # 200 rows in slices of 64: the loop ran between them


async def test_what_changes_or_goes_while_a_batch_is_made_is_in_the_next():
    r, flows, sent = recorder(130)
    task = asyncio.create_task(r.flush_in_slices(rows=64))
    await asyncio.sleep(0)  # the first slice is made
    r.touch(flows[0])  # its row is made already: it changed after
    r.forget(flows[100].id)  # not made yet: left out now, its removal next
    await task
    assert sent[0][0] == [f.id for i, f in enumerate(flows) if i != 100]
    assert sent[0][1] == []
    await r.flush_in_slices(rows=64)
    assert sent[1] == ([flows[0].id], [flows[100].id])


async def test_a_flush_meanwhile_sends_the_batch_being_made_first():
    """At shutdown ``flush()`` runs while a batch may be half made: that batch goes out
    first and only once, then what changed since, so no older row follows a newer."""
    r, flows, sent = recorder(130)
    task = asyncio.create_task(r.flush_in_slices(rows=64))
    await asyncio.sleep(0)
    r.touch(flows[5])
    r.flush()
    await task
    assert sent == [([f.id for f in flows], []), ([flows[5].id], [])]


async def test_a_batch_is_not_sent_when_the_last_screen_went_meanwhile():
    r, flows, sent = recorder(130)
    task = asyncio.create_task(r.flush_in_slices(rows=64))
    await asyncio.sleep(0)
    r.sink = None  # the control server's _deactivate: the next screen gets a full state
    await task
    assert sent == []
