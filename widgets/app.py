"""The waylay screen: header, live flow list, detail pane, footer.

The proxy side creates `WaylayApp(controller, ...)` and feeds it from its own thread with
`push_flows()`; everything the screen asks of the proxy goes through the `Controller`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import contains
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from widgets import keys
from widgets.detail import FlowDetail
from widgets.dialogs import DecisionDialog, dialog_for
from widgets.export_menu import ExportMenu
from widgets.flow_table import FlowTable
from widgets.footer import KeyFooter
from widgets.header import WaylayHeader
from widgets.help import HelpScreen
from widgets.model import Answer, Controller, FilterMatch, FlowView, OlderFlows
from widgets.prompts import ConfirmPrompt, InputPrompt
from widgets.queue import PausedQueue
from widgets.rules_screen import RulesScreen

CONTINUE_ACTIONS = {"request": "continue", "response": "continue", "redirect": "follow"}
"""What `a`/`A` answer per event. auth and certificate are not here on purpose: a person
decides those in their dialog, and a bad certificate is never allowed by a stray key."""

CANCEL_ACTIONS = {"certificate": "reject"}
"""What `X` answers when it is not `cancel`."""

_EVENTS = ("request", "response", "redirect", "auth", "certificate", "cookies")

FlowFilter = Callable[[FlowView], bool]

FILTER_SLICE = 0.02
"""Seconds of filtering between two breaths of the screen (keys, repaints, batches)."""

TEXT_AT_ONCE = 2_000_000
"""Up to this many flows a plain-text filter is one scan in C (~50 ms for a million:
slicing it would cost more than it saves, in copies the garbage collector then walks)."""
TEXT_CHUNK = 32_768
"""Beyond that, rows matched between two looks at the clock (~1-2 ms of work)."""


@dataclass
class FlowsUpdated(Message):
    """A batch from the proxy: new or changed flows, and ids of flows that are gone."""

    views: tuple[FlowView, ...]
    removed: tuple[str, ...] = ()


OLDER_PROGRESS_AFTER = 0.1
"""Seconds before a filter over the session file shows its progress (most take less)."""
OLDER_PROGRESS_EVERY = 0.25


def search_text(view: FlowView) -> str:
    """What plain text is looked for in: the URL, method and state label (which holds
    the status), lower-cased; kept per flow so a filter over a million flows is a scan
    of strings in C, not a Python call per flow."""
    return f"{view.url}\n{view.method}\n{view.state_label}".lower()


@dataclass(frozen=True, slots=True)
class TextFilter:
    """Case-insensitive substring of the URL, method, status or state label."""

    needle: str

    def __call__(self, view: FlowView) -> bool:
        return self.needle in search_text(view)


def plain_text_filter(text: str) -> TextFilter:
    return TextFilter(text.lower())


def _event_of(view: FlowView) -> str:
    """The event a paused flow waits at ("" when it is not paused)."""
    return view.paused.event if view.paused is not None else ""


class WaylayApp(App[None]):
    """The interactive monitor. Everything it asks of the proxy goes through the
    `Controller`; everything it knows of traffic comes as `FlowView` snapshots."""

    CSS_PATH = Path(__file__).with_name("waylay.tcss")
    """Absolute, so that subclasses defined elsewhere find it too."""
    TITLE = "waylay"

    BINDINGS: ClassVar[list[BindingType]] = keys.bindings(keys.APP)

    def __init__(
        self,
        controller: Controller,
        *,
        rules_source: Any = None,
        title_info: Mapping[str, object] | None = None,
        clock: Callable[[], float] = time.time,
        ask_timeout: float | None = 120,
        on_close: Callable[[], None] | None = None,
        auto_advance: bool = True,
        auto_open: bool = False,
        follow: bool = False,
    ) -> None:
        """`on_close` runs when the app unmounts (e.g. stops the proxy it shows)."""
        super().__init__()
        self.on_close = on_close
        self.controller = controller
        self.rules_source = rules_source
        """Anything with `.path` and a `.state` string (`3 rules`, `error: …`), or None."""
        self.title_info = dict(title_info or {})
        self.clock = clock
        self.ask_timeout = ask_timeout
        self.flows: dict[str, FlowView] = {}
        """Every flow the screen holds, by id, in arrival order."""
        self._search: dict[str, str] = {}
        """`search_text` of every flow in `flows`, in the same order (kept in step)."""
        self.filter_text = ""
        """The flow list's filter as typed, "" for none."""
        self.breakpoint = ""
        """The request breakpoint last set with `i`, "" for none."""
        self.breakpoints_on = True
        self._visible: FlowFilter | None = None
        self._proxy_filter = False
        """The list's filter is an expression the proxy side evaluates."""
        self._verdicts_under = -1
        """The generation of the last expression filter some snapshot here carries a
        verdict under (see `FilterMatch`)."""
        self._paused_ids: set[str] = set()
        self._decision: tuple[str, float, DecisionDialog] | None = None
        self._reask: tuple[str, float] | None = None
        """A flow whose dialog just answered it: if it pauses again, its dialog reopens."""
        self.auto_advance = auto_advance
        """After a decision in a dialog, the next paused flow's dialog opens."""
        self.auto_open = auto_open
        """A dialog opens by itself when something pauses (`O`), never over a form."""
        self._follow_at_start = follow
        self.marked_only = False
        """The list shows marked flows only (`M`)."""
        self._text_visible: FlowFilter | None = None
        """The filter typed with `f`; `_visible` adds `marked_only` to it."""
        self._filter_job = 0
        self._filter_changed: set[str] = set()
        """Flows that changed while a filter was being applied (rechecked at its end)."""
        self._answered: dict[str, float] = {}
        """Flow id -> the `since` of the pause answered here and not yet seen as over."""
        self._older_all = 0
        """Flows of the session file no longer held in memory (shown above the list)."""
        self._older_running = 0
        """Counts of older flows being asked for (a tick does not ask again meanwhile)."""
        self._older_error: str | None = None
        self._older_watch: tuple[int, str] | None = None
        """(filter job, expression) while the session file is being filtered."""
        self._older_fetchers: dict[str, Callable[[int, int], list[FlowView]]] = {}

    # ------------------------------------------------------------ feeding (any thread)

    def push_flows(self, views: Sequence[FlowView], removed: Sequence[str] = ()) -> None:
        """Hand the screen one batch. Thread-safe: posts one `FlowsUpdated` message."""
        self.post_message(FlowsUpdated(tuple(views), tuple(removed)))

    def notify_error(self, message: str) -> None:
        """A toast for an error; thread-safe like `notify`. The message is not markup."""
        self.notify(message, title="waylay", severity="error", timeout=8, markup=False)

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        # Kept as attributes: App.query_one searches the *active* screen, which is a
        # dialog or prompt whenever one is open, and timers and proxy batches keep coming.
        self._header = WaylayHeader(id="header")
        self._table = FlowTable(clock=self.clock, id="flows")
        self._detail = FlowDetail(
            render_body=lambda *args: self.controller.render_body(*args), id="detail"
        )
        self._main = Vertical(id="main", classes="-empty")
        self._empty = Static(id="empty", markup=False)
        self._queue = PausedQueue(id="queue")
        yield self._header
        with self._main:
            yield self._queue
            yield self._table
            yield self._empty
            yield self._detail
        yield KeyFooter()

    @property
    def table(self) -> FlowTable:
        return self._table

    @property
    def header(self) -> WaylayHeader:
        return self._header

    @property
    def detail(self) -> FlowDetail:
        return self._detail

    @property
    def queue(self) -> PausedQueue:
        return self._queue

    @property
    def selected_flow(self) -> FlowView | None:
        """The flow under the list's cursor."""
        flow_id = self.table.selected_id
        if flow_id is None:
            return None
        return self.flows.get(flow_id) or self.table.older_view(flow_id)

    @property
    def paused_flows(self) -> list[FlowView]:
        """Flows waiting for a decision, oldest first."""
        return sorted(
            (self.flows[flow_id] for flow_id in self._paused_ids), key=lambda view: view.seq
        )

    @property
    def waiting_flows(self) -> list[FlowView]:
        """Paused flows nobody has answered here yet, the longest waiting first (the
        queue: the first one is the first to time out)."""
        answered = self._answered
        waiting = [
            view
            for view in self.paused_flows
            if view.paused is not None and answered.get(view.id) != view.paused.since
        ]
        waiting.sort(key=lambda view: view.paused.since if view.paused else 0.0)
        return waiting

    def on_mount(self) -> None:
        header = self.header
        header.address = self.controller.address
        header.mode = self.controller.mode
        header.info = tuple((str(key), str(value)) for key, value in self.title_info.items())
        header.breakpoints_on = self.breakpoints_on
        header.auto_open = self.auto_open
        if self._follow_at_start:
            self.table.set_follow(True)
        self._read_rules_state()
        self.table.focus()
        self._refresh_counts()
        self.set_interval(1.0, self._tick, name="waylay-tick")
        self.refresh_older()

    def _tick(self) -> None:
        """Once a second: paused rows count their seconds; the rules file may have changed."""
        self.table.refresh_paused()
        self._refresh_queue()
        self._read_rules_state()
        self.refresh_older()
        detail = self.detail
        if detail.has_class("-open") and detail.flow_id in self._paused_ids:
            self._show_detail_of(detail.flow_id)

    def rules_changed(self, error: str | None = None) -> None:
        """The rules file was (re)loaded: show its state now rather than within a second,
        and its error, if it has one, as a toast."""
        if error:
            self.notify_error(f"rules file: {error}")
        self._read_rules_state()

    def on_unmount(self) -> None:
        if self.on_close is not None:
            self.on_close()

    def _read_rules_state(self) -> None:
        source = self.rules_source
        header = self.header
        if source is None:
            header.rules_path, header.rules_state = "", ""
            return
        header.rules_path = str(getattr(source, "path", "") or "")
        header.rules_state = str(getattr(source, "state", "") or "")

    # ------------------------------------------------------------ batches

    def on_flows_updated(self, message: FlowsUpdated) -> None:
        flows = self.flows
        paused = self._paused_ids
        answered = self._answered
        search = self._search
        newly_paused = False
        for view in message.views:
            old = flows.get(view.id)
            flows[view.id] = view
            search[view.id] = search_text(view)
            if view.filter_match is not None:
                self._verdicts_under = max(self._verdicts_under, view.filter_match[0])
            if view.paused is not None:
                paused.add(view.id)
                if old is None or old.paused is None or old.paused.since != view.paused.since:
                    newly_paused = True
            else:
                paused.discard(view.id)
            if view.id in answered and (
                view.paused is None or view.paused.since != answered[view.id]
            ):
                del answered[view.id]
        if self.header.filter_progress:
            self._filter_changed.update(view.id for view in message.views)
            self._filter_changed.update(message.removed)
        marked = self.table.marked
        for flow_id in message.removed:
            flows.pop(flow_id, None)
            search.pop(flow_id, None)
            paused.discard(flow_id)
            answered.pop(flow_id, None)
            marked.discard(flow_id)
        self.table.apply(message.views, message.removed, visible=self._visible)
        self._refresh_counts()
        if newly_paused and self.auto_open:
            self._open_next_by_itself()
        changed = {view.id for view in message.views}
        changed.update(message.removed)
        self._follow_detail(changed)
        if self._decision is not None and self._decision[0] in changed:
            self._decision_flow_changed()
        self._reopen_paused_again(changed)

    # ------------------------------------------------------------ older flows

    def refresh_older(self, *, reset: bool = False) -> None:
        """Ask (in a thread) how many flows the proxy keeps only in its session file,
        under the list's filter, and show them above the list (read as they come into
        view). Once a second, and at once when the filter changes (`reset`)."""
        source = self._older_source
        if source is None:
            return
        if self._older_running and not reset:
            return
        self._older_running += 1
        expr = "" if self.marked_only else self.filter_text
        job = self._filter_job

        def count() -> None:
            try:
                total = source.older_flows("", 0, 0)[0]
                shown = total if not expr else source.older_flows(expr, 0, 0)[0]
            except Exception as e:  # noqa: BLE001 - the list goes on without them
                self.call_from_thread(self._older_counted, job, expr, 0, 0, reset, str(e))
                return
            self.call_from_thread(self._older_counted, job, expr, total, shown, reset, None)

        self.run_worker(count, thread=True, group="older", exit_on_error=False)
        if reset and expr:
            self._older_watch = (job, expr)
            self.set_timer(OLDER_PROGRESS_AFTER, self._older_progress)

    def _older_progress(self) -> None:
        """While the session file is being filtered: its progress in the header."""
        watch = self._older_watch
        source = self._older_source
        if watch is None or source is None or watch[0] != self._filter_job:
            return

        def ask() -> None:
            try:
                got = source.older_progress(watch[1])
            except Exception:  # noqa: BLE001 - progress only
                got = None
            self.call_from_thread(self._show_older_progress, watch, got)

        self.run_worker(ask, thread=True, group="older-progress", exit_on_error=False)

    def _show_older_progress(self, watch: tuple[int, str], got: tuple[int, int] | None) -> None:
        if watch is not self._older_watch:
            return
        if got is not None and got[1]:
            self.header.filter_progress = f"session file {got[0] * 100 // got[1]}%"
        elif not self.header.filter_progress:
            self.header.filter_progress = "session file"
        self.set_timer(OLDER_PROGRESS_EVERY, self._older_progress)

    def _older_counted(
        self, job: int, expr: str, total: int, shown: int, reset: bool, error: str | None
    ) -> None:
        self._older_running -= 1
        if self._older_watch is not None and self._older_watch[0] == job:
            self._older_watch = None
            if self.header.filter_progress.startswith("session file"):
                self.header.filter_progress = ""
        if error is not None and error != self._older_error:  # once, not every second
            self.notify_error(f"older flows of the session file: {error}")
        self._older_error = error
        source = self._older_source
        if job != self._filter_job:  # the filter changed meanwhile
            watch = self._older_watch
            if watch is None or watch[0] != self._filter_job:  # not being counted yet
                self.refresh_older(reset=True)
            return
        if self.marked_only:
            shown = 0
        fetch = self._older_fetchers.get(expr)
        if fetch is None and source is not None:

            def fetch(start: int, count: int) -> list[FlowView]:
                assert source is not None
                return source.older_flows(expr, start, count)[1]

            self._older_fetchers = {expr: fetch}
        self._older_all = total
        self.table.set_older(shown, fetch, reset=reset)
        self._refresh_counts()

    @property
    def _older_source(self) -> OlderFlows | None:
        controller = self.controller
        return controller if isinstance(controller, OlderFlows) else None

    def _refresh_counts(self) -> None:
        header = self.header
        header.flow_count = len(self.flows) + self._older_all
        header.paused_count = len(self._paused_ids)
        rows = self.table.row_count
        header.shown_count = rows if self._visible is not None else None
        self._refresh_queue()
        main = self._main
        empty = rows == 0 and not self._older_all
        main.set_class(empty, "-empty")
        if empty:
            if self.flows:
                hint = f"No flow matches the filter {self.filter_text!r}. f changes it; an empty filter shows every flow."
            else:
                hint = (
                    f"Waiting for traffic. Point a client at the proxy, "
                    f"e.g. curl -x {self.controller.address} http://example.com/"
                )
            self._empty.update(hint)

    # ------------------------------------------------------------ detail pane

    def on_flow_table_highlighted(self, event: FlowTable.Highlighted) -> None:
        self._refresh_queue()
        if event.table is self.table and self.detail.has_class("-open"):
            self._show_detail_of(self.table.selected_id)

    def on_flow_table_selected(self, event: FlowTable.Selected) -> None:
        """A click on the highlighted row does what `enter` does."""
        if event.table is self.table:
            self.action_open_selected()

    def on_flow_table_follow_changed(self, event: FlowTable.FollowChanged) -> None:
        self.header.follow = event.follow

    def on_flow_table_sort_changed(self, event: FlowTable.SortChanged) -> None:
        arrow = " ▼" if event.reverse else ""
        self.header.sort_label = f"{event.key}{arrow}" if event.key else ""

    def _follow_detail(self, changed: set[str]) -> None:
        detail = self.detail
        if not detail.has_class("-open"):
            return
        selected = self.table.selected_id
        if selected != detail.flow_id or selected in changed:
            self._show_detail_of(selected)

    def _show_detail_of(self, flow_id: str | None) -> None:
        view = None if flow_id is None else self.flows.get(flow_id)
        if view is None and flow_id is not None:
            view = self._stored_view(flow_id)
        self.detail.show_flow(view, self.clock())

    def _stored_view(self, flow_id: str) -> FlowView | None:
        """An older flow shown above the list, in full from the session file."""
        row = self.table.older_view(flow_id)
        if row is None:
            return None
        source = self._older_source
        full = source.stored_flow(flow_id) if source is not None else None
        return full or row

    def show_detail(self, *, focus: bool = True) -> None:
        """Open the detail pane on the selected flow."""
        detail = self.detail
        detail.add_class("-open")
        self._show_detail_of(self.table.selected_id)
        if focus:
            detail.focus()

    def action_close_detail(self) -> None:
        """Close the detail pane and go back to the list."""
        self.detail.remove_class("-open")
        self.table.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "close_detail":
            return self.detail.has_class("-open")
        if action == "save_flows":  # the flow list's key, not the dialogs' (`w` rewrites)
            return len(self.screen_stack) <= 1
        return True

    # ------------------------------------------------------------ keys on the flow list

    def action_open_selected(self) -> None:
        """`enter`: the dialog of a paused flow, else the details."""
        view = self.selected_flow
        if view is None:
            return
        if view.paused is not None:
            self.open_decision(view)
        else:
            self.show_detail()

    def action_continue_selected(self) -> None:
        """`a`: continue the selected paused flow; auth and certificate go to their dialog.
        With marked paused flows, continue those instead."""
        if self._marked_paused():
            self._act_on_marked(CONTINUE_ACTIONS, "Continued")
            return
        view = self._selected_paused()
        if view is None:
            return
        action = CONTINUE_ACTIONS.get(_event_of(view))
        if action is None:
            self.open_decision(view)
            return
        self._answer(view, Answer(action))

    def action_continue_all(self) -> None:
        """`A`: continue every paused request, response and redirect."""
        continued = 0
        left: list[FlowView] = []
        for view in self.paused_flows:
            action = CONTINUE_ACTIONS.get(_event_of(view))
            if action is None:
                left.append(view)
            elif self._answer(view, Answer(action)):
                continued += 1
        if not continued and not left:
            self.notify("No flow is paused.", severity="warning")
            return
        message = f"Continued {continued} flow{'' if continued == 1 else 's'}."
        if left:
            events = ", ".join(sorted({_event_of(view) for view in left}))
            message += f" {len(left)} ({events}) need a decision in their dialog (enter)."
        self.notify(message, severity="warning" if left else "information")

    def action_cancel_selected(self) -> None:
        """`X`: cancel the selected paused flow (reject a certificate); with marked paused
        flows, cancel those instead (auth included: cancelling needs no credentials)."""
        if self._marked_paused():
            cancel = {event: CANCEL_ACTIONS.get(event, "cancel") for event in _EVENTS}
            self._act_on_marked(cancel, "Cancelled")
            return
        view = self._selected_paused()
        if view is None:
            return
        self._answer(view, Answer(CANCEL_ACTIONS.get(_event_of(view), "cancel")))

    def _selected_paused(self) -> FlowView | None:
        """The selected flow if it is paused (its ``paused`` is set), else None and a toast."""
        view = self.selected_flow
        if view is None or view.paused is None:
            self.notify("The selected flow is not paused.", severity="warning")
            return None
        return view

    def _answer(self, view: FlowView, answer: Answer) -> bool:
        assert view.paused is not None
        error = self.controller.answer(view.id, view.paused.event, answer)
        if error:
            self.notify_error(f"{view.method} {view.url}: {error}")
            return False
        self._answered[view.id] = view.paused.since
        self._refresh_queue()
        return True

    def _marked_paused(self) -> list[FlowView]:
        """Marked flows still waiting for a decision, oldest first."""
        marked = self.table.marked
        if not marked:
            return []
        return [view for view in self.waiting_flows if view.id in marked]

    def _act_on_marked(self, actions: Mapping[str, str], verb: str) -> None:
        done = 0
        left: list[FlowView] = []
        for view in self._marked_paused():
            assert view.paused is not None
            action = actions.get(view.paused.event)
            if action is None:
                left.append(view)
            elif self._answer(view, Answer(action)):
                done += 1
                self.table.set_mark(view.id, False)
        message = f"{verb} {done} marked flow{'' if done == 1 else 's'}."
        if left:
            events = ", ".join(sorted({view.paused.event for view in left if view.paused}))
            message += f" {len(left)} ({events}) need a decision in their dialog (enter)."
        self.notify(message, severity="warning" if left else "information")

    # ------------------------------------------------------------ the breakpoint queue

    def _refresh_queue(self) -> None:
        queue = getattr(self, "_queue", None)
        if queue is None:
            return
        queue.show(
            self.waiting_flows,
            self.clock(),
            marked=self.table.marked,
            selected=self.table.selected_id,
        )

    def action_next_paused(self) -> None:
        """`p`: the next paused flow, oldest first (after the selected one if it is paused).
        A paused flow the filter hides gets its dialog at once."""
        waiting = self.waiting_flows
        if not waiting:
            self.notify("No flow is paused.", severity="warning")
            return
        ids = [view.id for view in waiting]
        selected = self.table.selected_id
        index = (ids.index(selected) + 1) % len(ids) if selected in ids else 0
        view = waiting[index]
        if self.table.select_flow(view.id):
            self.table.set_follow(False)
            self._refresh_queue()
            return
        self.notify("That paused flow is hidden by the filter; here is its dialog.")
        self.open_decision(view)

    def action_toggle_auto_open(self) -> None:
        """`O`: dialogs open by themselves when something pauses (never over a form)."""
        self.auto_open = not self.auto_open
        self.header.auto_open = self.auto_open
        self.notify(
            "Dialogs open by themselves when a flow pauses."
            if self.auto_open
            else "Dialogs open only with enter."
        )
        if self.auto_open:
            self._open_next_by_itself()

    def action_toggle_auto_advance(self) -> None:
        """After a decision, the next paused flow's dialog opens (on by default)."""
        self.auto_advance = not self.auto_advance
        self.notify(f"Auto-advance {'on' if self.auto_advance else 'off'}.")

    def can_open_by_itself(self) -> bool:
        """Nothing is open over the flow list: no dialog, prompt, form or other screen."""
        return self._decision is None and len(self.screen_stack) == 1

    def _open_next_by_itself(self) -> bool:
        """Open the oldest waiting flow's dialog if nothing else is open; True if it did."""
        if not self.can_open_by_itself():
            return False
        for view in self.waiting_flows:
            assert view.paused is not None
            if view.paused.event not in _EVENTS:
                continue
            self.table.select_flow(view.id)
            self.open_decision(view)
            return True
        return False

    def action_toggle_mark(self) -> None:
        """`m`: mark or unmark the selected flow."""
        flow_id = self.table.selected_id
        if flow_id is None:
            return
        self.table.set_mark(flow_id, flow_id not in self.table.marked)
        self._refresh_queue()
        if self.marked_only and flow_id not in self.table.marked:
            self._apply_visibility()

    def action_marked_only(self) -> None:
        """`M`: show marked flows only, or every flow (the filter still applies)."""
        self.marked_only = not self.marked_only
        self.header.marked_only = self.marked_only
        self._apply_visibility()

    def _apply_visibility(self) -> None:
        text_visible = self._text_visible
        if self.marked_only:
            marked = self.table.marked
            if text_visible is None:
                visible: FlowFilter | None = lambda view: view.id in marked  # noqa: E731
            else:
                visible = lambda view: view.id in marked and text_visible(view)  # noqa: E731
        else:
            visible = text_visible
        self._visible = visible
        self._filter_job += 1
        self._filter_changed = set()
        if visible is None:
            self.header.filter_progress = ""
            self.table.filter_to(None)
            self._filtered()
            return
        ids = self._matching_ids(text_visible)
        if ids is not None:
            self._filter_done(visible, ids)
            return
        search = self._search
        if isinstance(text_visible, TextFilter) and len(search) == len(self.flows):
            self._text_step(
                self._filter_job,
                visible,
                text_visible.needle,
                list(search),
                list(search.values()),
                0,
                [],
            )
            return
        views = list(self.flows.values())
        self._filter_step(self._filter_job, visible, views, 0, [])

    def _matching_ids(self, text_visible: FlowFilter | None) -> Iterable[str] | None:
        """The ids of the flows `text_visible` keeps, in arrival order, found in one pass
        in C (no Python call per flow) as the list takes them; None when that cannot be
        done at once (the filter then goes in slices)."""
        flows = self.flows
        if text_visible is None:  # marked only: `_filter_done` keeps the marked ones
            return iter(flows)
        if isinstance(text_visible, TextFilter):
            search = self._search
            if len(search) != len(flows) or len(search) > TEXT_AT_ONCE:
                return None
            hits = map(contains, search.values(), repeat(text_visible.needle))
            return compress(search, hits)
        if (
            isinstance(text_visible, FilterMatch)
            and text_visible.generation != self._verdicts_under
            and len(flows) <= TEXT_AT_ONCE
        ):
            # No snapshot here carries a verdict under this filter yet: the proxy's
            # matches when it was set are every verdict.
            return compress(flows, map(text_visible.matching.__contains__, flows))
        return None

    def _text_step(
        self,
        job: int,
        visible: FlowFilter,
        needle: str,
        ids: list[str],
        texts: list[str],
        start: int,
        shown_ids: list[str],
    ) -> None:
        """`_filter_step` for plain text: the kept search texts (`ids` and `texts` are the
        same flows in the same order) are matched in chunks, in C, for at most
        `FILTER_SLICE` seconds at a time; marked-only is applied to the matches."""
        if job != self._filter_job:
            return
        deadline = time.perf_counter() + FILTER_SLICE
        total = len(ids)
        index = start
        while index < total:
            end = min(index + TEXT_CHUNK, total)
            hits = map(contains, texts[index:end], repeat(needle))
            shown_ids += compress(ids[index:end], hits)
            index = end
            if time.perf_counter() > deadline:
                break
        if index < total:
            self.header.filter_progress = f"{index * 100 // total}%"
            self.set_timer(
                0.001,
                lambda: self._text_step(job, visible, needle, ids, texts, index, shown_ids),
            )
            return
        self._filter_done(visible, shown_ids)

    def _filter_done(self, visible: FlowFilter, shown_ids: Iterable[str]) -> None:
        """Show `shown_ids` (matches of the filter, in arrival order), less the unmarked
        ones in marked-only mode, with the flows that changed meanwhile checked again.
        `shown_ids` may be an iterator: the common case makes no list of its own (see
        `FlowTable.filter_to`)."""
        if self.marked_only:
            shown_ids = filter(self.table.marked.__contains__, shown_ids)
        changed = self._filter_changed
        if changed:  # batches, deletes that came in meanwhile: their flows again
            flows = self.flows
            shown_ids = [flow_id for flow_id in shown_ids if flow_id not in changed]
            for flow_id in changed:
                view = flows.get(flow_id)
                if view is not None and visible(view):
                    shown_ids.append(flow_id)
            shown_ids.sort(key=lambda flow_id: flows[flow_id].seq)
        self._filter_changed = set()
        self.header.filter_progress = ""
        self.table.filter_to(shown_ids)
        self._filtered()

    def _filter_step(
        self,
        job: int,
        visible: FlowFilter,
        views: list[FlowView],
        start: int,
        matches: list[str],
    ) -> None:
        """Filter `views[start:]` for at most `FILTER_SLICE` seconds, then let the screen
        breathe (keys, repaints, proxy batches) and go on; a newer filter stops this one."""
        if job != self._filter_job:
            return
        deadline = time.perf_counter() + FILTER_SLICE
        total = len(views)
        index = start
        while index < total:
            end = min(index + 500, total)
            matches.extend(view.id for view in views[index:end] if visible(view))
            index = end
            if time.perf_counter() > deadline:
                break
        if index < total:
            self.header.filter_progress = f"{index * 100 // total}%"
            self.set_timer(0.001, lambda: self._filter_step(job, visible, views, index, matches))
            return
        flows = self.flows
        self._filter_changed.update(flow_id for flow_id in matches if flow_id not in flows)
        self._filter_done(visible, matches)

    def _filtered(self) -> None:
        self._refresh_counts()
        self._follow_detail(set())
        self.refresh_older(reset=True)

    @property
    def filtering(self) -> bool:
        """A filter is being applied (in slices: the screen stays responsive)."""
        return bool(self.header.filter_progress)

    def action_set_breakpoint(self) -> None:
        """`i`: a breakpoint spec; the controller's error keeps the prompt open."""

        def submit(spec: str) -> str | None:
            return self.controller.set_breakpoint(spec.strip())

        def done(spec: str | None) -> None:
            if spec is None:
                return
            self.breakpoint = spec.strip()
            if self.breakpoint:
                self.breakpoints_on = True  # a new breakpoint is on, whatever it was before
            self.header.breakpoint = self.breakpoint
            self.header.breakpoints_on = self.breakpoints_on
            self.notify(
                f"Breakpoint: {self.breakpoint}" if self.breakpoint else "Breakpoint cleared.",
                markup=False,
            )

        self.push_screen(
            InputPrompt(
                "Breakpoint: requests that match pause",
                value=self.breakpoint,
                placeholder="*://api.example.com/*   or   ~d example.com & ~m POST",
                help="A match pattern or a mitmproxy filter expression. Empty clears it.",
                submit_check=submit,
                id="breakpoint-prompt",
            ),
            done,
        )

    def action_toggle_breakpoints(self) -> None:
        """`I`: breakpoints on/off."""
        self.breakpoints_on = bool(self.controller.toggle_breakpoints())
        self.header.breakpoints_on = self.breakpoints_on
        self.notify(f"Breakpoints {'on' if self.breakpoints_on else 'off'}.")

    def action_filter(self) -> None:
        """`f`: filter the list by a mitmproxy filter expression or plain text."""

        def done(text: str | None) -> None:
            # Applied once the prompt is gone: the list rebuilt under a modal screen is
            # drawn through its dimmed background, which cost more than the filter.
            if text is None:
                return
            self.table.focus()
            if error := self.set_filter(text):
                self.notify_error(error)

        self.push_screen(
            InputPrompt(
                "Filter the flow list",
                value=self.filter_text,
                placeholder="~d example.com & ~m POST   or   plain text",
                help=(
                    "A mitmproxy filter expression (it has a ~), or plain text found in "
                    "the URL, method or status. Empty shows every flow."
                ),
                submit_check=self.filter_error,
                live_check=self.filter_error,
                id="filter-prompt",
            ),
            done,
        )

    def filter_error(self, text: str) -> str | None:
        """Why `text` cannot filter the list, or None; changes nothing."""
        text = text.strip()
        if "~" not in text:
            return None
        return self.controller.check_filter(text)

    def set_filter(self, text: str) -> str | None:
        """Filter the list; returns an error message and changes nothing if it is bad.
        A filter expression is evaluated by the proxy side (it needs the live flows) and
        its verdicts travel in the snapshots; plain text is matched here, against the
        snapshots. Either way the list is rebuilt in slices (`_apply_visibility`)."""
        text = text.strip()
        visible: FlowFilter | None = None
        if "~" in text:
            found, error = self.controller.apply_filter(text)
            if found is None:
                return error or "not a filter expression"
            visible = found
        else:
            if self._proxy_filter:
                self.controller.apply_filter("")
            if text:
                visible = plain_text_filter(text)
        self._proxy_filter = "~" in text
        self.filter_text = text
        self._text_visible = visible
        self.header.filter_text = self.filter_text
        self._apply_visibility()
        return None

    def action_save_flows(self) -> None:
        """`w`: save all or the listed flows in mitmproxy's flow format."""
        from widgets.save_menu import SaveFlowsMenu

        if not self.flows and not self._older_all:
            self.notify("No flows to save.", severity="warning")
            return
        self.push_screen(
            SaveFlowsMenu(
                self.controller,
                total=len(self.flows),
                listed=self.table.flow_ids(),
                filter_text=self.filter_text,
                older=self._older_counts,
                id="save-flows",
            )
        )

    @property
    def _older_counts(self) -> tuple[int, int]:
        """Flows kept only in the session file (above the list): (in all, listed now)."""
        return self._older_all, self.table.older_count

    def action_delete_selected(self) -> None:
        """`d`: delete the selected finished flow, here and in the proxy's store."""
        view = self.selected_flow
        if view is None:
            return
        if not view.finished:
            self.notify("Only a finished flow can be deleted.", severity="warning")
            return
        error = self.controller.delete_flow(view.id)
        if error:
            self.notify_error(f"{view.method} {view.url}: {error}")
            return
        self.flows.pop(view.id, None)
        self._search.pop(view.id, None)
        if self.filtering:
            self._filter_changed.add(view.id)
        self._answered.pop(view.id, None)
        self.table.marked.discard(view.id)
        self.table.remove_flows([view.id])
        self._refresh_counts()
        self._follow_detail({view.id})

    def action_replay(self) -> None:
        """`r`: the selected flow's request again through the proxy; a new row."""
        view = self.selected_flow
        if view is None:
            return
        error = self.controller.replay(view.id)
        if error:
            self.notify_error(f"Replay of {view.method} {view.url}: {error}")
            return
        self.notify(f"Replaying #{view.seq}: a new row follows.", markup=False)

    def action_duplicate(self) -> None:
        """`D`: a copy of the selected flow's request in the edit form; sending makes a
        new flow."""
        view = self.selected_flow
        if view is None:
            return
        if view.paused is not None or not view.finished:
            self.notify(
                "Duplicate a finished flow (a paused one is edited in its dialog: e).",
                severity="warning",
            )
            return
        from widgets.request_editor import RequestEditor

        def sent(original: str | None) -> None:
            if original is not None:
                self.notify(f"Sent an edited copy of #{view.seq}: a new row follows.")

        self.push_screen(RequestEditor(self.full_view(view), self.controller), sent)

    def full_view(self, view: FlowView) -> FlowView:
        """`view` with its headers and bodies (a screen in another process fetches them)."""
        if view.id not in self.flows:
            return self._stored_view(view.id) or view
        return view

    def action_event_log(self) -> None:
        """`l`: the event log (proxy errors, rules reloads, timeouts, TLS failures)."""
        from widgets.event_log import EventLogScreen

        if isinstance(self.screen, EventLogScreen):
            self.screen.dismiss(None)
            return
        self.push_screen(EventLogScreen(self.controller))

    def action_rules(self) -> None:
        self.open_rules()

    def action_export(self) -> None:
        self.open_export()

    def action_clear_finished(self) -> None:
        """`z`: drop finished flows, here and in the proxy's store."""
        self.controller.clear_finished()
        finished = [flow_id for flow_id, view in self.flows.items() if view.finished]
        for flow_id in finished:
            del self.flows[flow_id]
            del self._search[flow_id]
        if self.filtering:
            self._filter_changed.update(finished)
        self.table.remove_flows(finished)
        self._refresh_counts()
        self._follow_detail(set(finished))
        self.notify(f"Cleared {len(finished)} finished flow{'' if len(finished) == 1 else 's'}.")

    async def action_quit(self) -> None:
        """`q`: quit; while flows are paused, ask first (a second ctrl+q forces it)."""
        paused = len(self._paused_ids)
        asking = isinstance(self.screen, ConfirmPrompt) and self.screen.id == "quit"
        if not paused or asking:
            self.exit()
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(
            ConfirmPrompt(
                f"{paused} flow{' is' if paused == 1 else 's are'} paused; "
                "they get their timeout outcome. Quit?",
                yes="Quit",
                no="Stay",
                id="quit",
            ),
            done,
        )

    def action_help(self) -> None:
        """`?`: every key; `?` again closes it."""
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
        else:
            self.push_screen(HelpScreen(ask_timeout=self.ask_timeout))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key in (*keys.APP, *keys.FLOW_LIST):
            if key.palette:
                name = key.action.removeprefix("app.")
                yield SystemCommand(
                    key.palette, f"{key.words} ({key.key_text})", getattr(self, f"action_{name}")
                )
        yield SystemCommand(
            "Toggle auto-advance",
            "After a decision, the next paused flow's dialog opens",
            self.action_toggle_auto_advance,
        )

    # ------------------------------------------------------------ dialogs and screens

    def open_decision(self, view: FlowView) -> None:
        """Push the dialog for `view`'s paused event. The dialog gets every new snapshot of
        its flow (`flow_updated`) and closes itself when the pause ends; the app closes it
        when the flow is removed. A flow that pauses again right after its dialog answered
        it (refused credentials: "attempt 2 of 3", or its next event) gets its dialog again."""
        if view.paused is None:
            return
        try:
            screen = dialog_for(view, self.controller, clock=self.clock)
        except ValueError as exc:  # an event without a dialog
            self.notify_error(str(exc))
            return
        self._decision = (view.id, view.paused.since, screen)
        since = view.paused.since

        def closed(result: object) -> None:
            if self._decision is not None and self._decision[2] is screen:
                self._decision = None
            if result is not None:
                self._reask = (view.id, since)
                self._answered[view.id] = since
                self._refresh_queue()
                if self.auto_advance:
                    self.call_later(self._open_next_by_itself)

        self.push_screen(screen, closed)

    def _reopen_paused_again(self, changed: set[str]) -> None:
        if self._reask is None or self._reask[0] not in changed:
            return
        flow_id, since = self._reask
        view = self.flows.get(flow_id)
        if view is None or view.paused is None:
            if view is None or view.finished:
                self._reask = None
            return
        self._reask = None
        if view.paused.since > since and self._decision is None:
            self.open_decision(view)

    def _decision_flow_changed(self) -> None:
        assert self._decision is not None
        flow_id, _, screen = self._decision
        view = self.flows.get(flow_id)
        if view is not None:
            screen.flow_updated(view)
            return
        self._decision = None
        if screen not in self.screen_stack:
            return
        if self.screen is not screen:
            screen.pop_until_active()
        screen.dismiss(None)
        self.notify("That flow is gone.", severity="warning", markup=False)

    def open_rules(self) -> None:
        """The rules screen on the rules file."""
        if self.rules_source is None:
            self.notify("No rules file.", severity="warning")
            return
        self.push_screen(RulesScreen(self.rules_source))

    def open_export(self) -> None:
        """The export menu for the selected and the listed flows."""
        self.push_screen(
            ExportMenu(
                self.controller,
                self.table.selected_id,
                self.table.flow_ids(),
                rules_source=self.rules_source,
                older=self._older_counts,
                filter_text=self.filter_text,
            )
        )
