"""A filter changes which rows the list shows, never which flows it holds: flows that
arrive, change, are evicted or removed while a filter is on are all where they belong
once it changes or is cleared, sorted or not, and the cursor keeps its flow."""

from __future__ import annotations

import dataclasses
import random

import pytest
from screen_fakes import Clock, FakeController, make_view, many_views, wait_until

from widgets.app import WaylayApp
from widgets.flow_table import COLUMN_KEYS, sort_value

pytestmark = pytest.mark.usefixtures("utc")

SIZE = (140, 36)
PATH = COLUMN_KEYS.index("path")


def make_app(controller: FakeController) -> WaylayApp:
    return WaylayApp(controller, clock=Clock())


async def filter_to(app: WaylayApp, pilot, text: str) -> None:
    assert app.set_filter(text) is None
    await wait_until(pilot, lambda: not app.filtering, f"filter {text!r}")
    await pilot.pause()


def rows_of(app: WaylayApp) -> list[str]:
    """The rows as the list draws them (`_view_at`), checked against `flow_ids` and
    `index_of`, so the id lists and the row index cannot disagree unnoticed."""
    table = app.table
    ids = table.flow_ids()
    assert table.row_count == len(ids)
    drawn = [table._view_at(index).id for index in range(len(ids))]
    assert drawn == ids
    for index in sorted({0, len(ids) // 2, len(ids) - 1}):
        if ids:
            assert table.index_of(ids[index]) == index
    # the ids kept aside for when the filter is cleared, if kept, are every flow's
    every = table._every
    assert every is None or every == list(table._views) == list(app.flows)
    return ids


async def test_flows_that_arrive_change_and_go_while_filtered_are_right_when_cleared():
    views = many_views(70)  # page=N for flow N: 1 in 7 on page 3
    app = make_app(FakeController())
    async with app.run_test(size=SIZE) as pilot:
        app.push_flows(views)
        await wait_until(pilot, lambda: app.table.row_count == 70, "70 rows")
        await filter_to(app, pilot, "page=3")
        assert rows_of(app) == [f"f{n}" for n in range(3, 71, 7)]
        # while filtered: new flows (one matching, one not), a hidden flow that changes
        # but still does not match, a shown one that stops matching, a hidden one that
        # starts, and a full store evicting its three oldest (one of them shown: f3)
        hidden_change = dataclasses.replace(views[4], path="/items/5?changed", status=201)
        stops = dataclasses.replace(views[9], path="/items/10?page=x")  # f10 was page=3
        starts = dataclasses.replace(views[10], path="/items/11?page=3")
        new = [
            dataclasses.replace(views[0], id="f71", seq=71, path="/items/71?page=3"),
            dataclasses.replace(views[0], id="f72", seq=72, path="/items/72?page=4"),
        ]
        for view in (hidden_change, stops, starts, *new):  # the filter reads the URL
            object.__setattr__(view, "url", f"https://api.example.com{view.path}")
        app.push_flows([hidden_change, stops, starts, *new], ["f1", "f2", "f3"])
        await pilot.pause()
        assert rows_of(app) == [
            *(f"f{n}" for n in range(17, 71, 7)),
            "f11",  # started matching: at the end
            "f71",
        ]
        assert app.table._every is not None  # kept up to date: the clear reuses it
        assert not app.table.has_flow("f10") and app.table.view_of("f10") is None
        with pytest.raises(KeyError):
            app.table.get_row("f5")
        # cleared: every flow held, in arrival order, with its latest snapshot
        await filter_to(app, pilot, "")
        expected = [f"f{n}" for n in range(4, 73)]
        assert rows_of(app) == expected
        assert app.table.get_row("f5")[PATH] == "/items/5?changed"
        assert app.table.get_row("f10")[PATH] == "/items/10?page=x"
        assert app.header.flow_count == len(expected) == app.table.row_count
        # a removal from the middle while filtered, then cleared again
        await filter_to(app, pilot, "page=3")
        app.push_flows([], ["f30", "f31"])  # f31 is shown, f30 is not
        await pilot.pause()
        assert "f31" not in rows_of(app)
        await filter_to(app, pilot, "")
        assert rows_of(app) == [flow_id for flow_id in expected if flow_id not in ("f30", "f31")]


async def test_the_cursor_keeps_its_flow_across_a_filter_and_its_clear():
    app = make_app(FakeController())
    async with app.run_test(size=SIZE) as pilot:
        app.push_flows(many_views(700))
        await wait_until(pilot, lambda: app.table.row_count == 700, "700 rows")
        assert app.table.select_flow("f500")  # page 3 (500 = 7 * 71 + 3)
        await filter_to(app, pilot, "page=3")
        assert app.table.selected_id == "f500"
        assert app.table.cursor_row == app.table.index_of("f500") == 71
        await filter_to(app, pilot, "")
        assert app.table.selected_id == "f500" and app.table.cursor_row == 499
        # the selected flow filtered out: the cursor goes to the first row
        assert app.table.select_flow("f501")
        await filter_to(app, pilot, "page=3")
        assert app.table.cursor_row == 0 and app.table.selected_id == "f3"


@pytest.mark.parametrize("reverse", [False, True])
async def test_a_filter_then_a_sort_then_its_clear_sorts_every_flow(reverse):
    views = [dataclasses.replace(view, size=(view.seq * 37) % 101) for view in many_views(140)]
    app = make_app(FakeController())
    async with app.run_test(size=SIZE) as pilot:
        app.push_flows(views)
        await wait_until(pilot, lambda: app.table.row_count == 140, "140 rows")
        await filter_to(app, pilot, "page=3")
        app.table.sort_by("size", reverse)
        await pilot.pause()

        def by_size(chosen):
            return [
                v.id for v in sorted(chosen, key=lambda v: sort_value(v, "size"), reverse=reverse)
            ]

        assert rows_of(app) == by_size(v for v in views if v.seq % 7 == 3)
        # a new flow while sorted and filtered goes to its place
        new = dataclasses.replace(
            views[2], id="f141", seq=141, started=views[-1].started + 1, size=50
        )
        app.push_flows([new])
        await pilot.pause()
        assert rows_of(app) == by_size([*(v for v in views if v.seq % 7 == 3), new])
        await filter_to(app, pilot, "")
        assert rows_of(app) == by_size([*views, new])
        app.table.sort_by("")
        await pilot.pause()
        assert rows_of(app) == [*(v.id for v in views), "f141"]


async def test_an_expression_filter_over_many_flows_matches_as_its_verdicts_say():
    """The proxy's matches when an expression is set are taken in one pass; once
    snapshots carry verdicts under it, those count (marked-only recomputes the list)."""
    controller = FakeController()
    views = many_views(5_000)
    controller.filters["~u page=3"] = {v.id for v in views if v.seq % 7 == 3}
    app = make_app(controller)
    async with app.run_test(size=SIZE) as pilot:
        app.push_flows(views)
        await wait_until(pilot, lambda: app.table.row_count == 5_000, "5,000 rows")
        await filter_to(app, pilot, "~u page=3")
        assert rows_of(app) == [v.id for v in views if v.seq % 7 == 3]
        generation = controller.filter_generation
        # f1 starts matching and f3 stops, by the proxy's verdict
        app.push_flows(
            [
                dataclasses.replace(views[0], filter_match=(generation, True)),
                dataclasses.replace(views[2], filter_match=(generation, False)),
            ]
        )
        await pilot.pause()
        for flow_id in ("f1", "f10", "f3"):
            app.table.set_mark(flow_id, True)
        await pilot.press("M")
        await wait_until(pilot, lambda: not app.filtering, "marked only")
        assert rows_of(app) == ["f1", "f10"]
        await pilot.press("M")
        await wait_until(pilot, lambda: not app.filtering, "every match")
        expected = [v.id for v in views if v.seq % 7 == 3 and v.id != "f3"]
        assert rows_of(app) == ["f1", *expected]
        await filter_to(app, pilot, "")
        assert rows_of(app) == [v.id for v in views]


@pytest.mark.parametrize("seed", range(6))
async def test_random_batches_filters_and_sorts_agree_with_the_flows_held(seed):
    """Random batches (new flows, changes, evictions of the oldest, removals from the
    middle), filters, sorts and clears: whenever a filter is set or cleared the rows are
    exactly the flows that match, in arrival order or sorted; between, the same set."""
    rng = random.Random(seed)
    template = make_view(0)
    held: dict[str, object] = {}
    next_seq = 1

    def flow(seq: int, page: int, size: int):
        return dataclasses.replace(
            template,
            id=f"f{seq}",
            seq=seq,
            started=template.started + seq,
            path=f"/items/{seq}?page={page}",
            url=f"https://api.example.com/items/{seq}?page={page}",
            size=size,
        )

    text = ""
    sort = ("", False)
    app = make_app(FakeController())
    async with app.run_test(size=SIZE) as pilot:

        def expected(ordered: bool) -> list[str]:
            chosen = [v for v in held.values() if text in v.url]
            if sort[0] or sort[1]:
                chosen.sort(key=lambda v: sort_value(v, sort[0]), reverse=sort[1])
            ids = [v.id for v in chosen]
            return ids if ordered else sorted(ids)

        for _ in range(60):
            step = rng.random()
            if step < 0.45:  # a batch
                views, removed = [], []
                for _ in range(rng.randint(0, 30)):
                    views.append(flow(next_seq, rng.randint(0, 4), rng.randint(0, 999)))
                    next_seq += 1
                for flow_id in rng.sample(list(held), min(len(held), rng.randint(0, 8))):
                    old = held[flow_id]
                    views.append(flow(old.seq, rng.randint(0, 4), rng.randint(0, 999)))
                if held and rng.random() < 0.4:  # a full store: the oldest go
                    removed += list(held)[: rng.randint(1, 10)]
                if held and rng.random() < 0.3:
                    removed.append(rng.choice(list(held)))
                for view in views:
                    held[view.id] = view
                for flow_id in removed:
                    held.pop(flow_id, None)
                app.push_flows(views, removed)
                await pilot.pause()
                ids = rows_of(app)
                if sort[0] or sort[1] or not text:
                    assert ids == expected(True)
                else:
                    assert sorted(ids) == expected(False)
            elif step < 0.8:
                text = rng.choice(["", "", "page=1", "page=2", "page=", "items/1"])
                await filter_to(app, pilot, text)
                assert rows_of(app) == expected(True)
            else:
                sort = (rng.choice(["", "size", "path"]), rng.random() < 0.3)
                app.table.sort_by(*sort)
                await pilot.pause()
                assert rows_of(app) == expected(True)
            assert app.header.flow_count == len(held)
        text = ""
        await filter_to(app, pilot, text)
        assert rows_of(app) == expected(True)
