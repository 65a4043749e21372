"""One table per place is the only list of keys: the bindings, the hint lines, the help,
the palette and docs/keys.md all come from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from widgets import keys
from widgets.app import WaylayApp
from widgets.detail import FlowDetail
from widgets.dialogs import RequestDialog, ResponseDialog
from widgets.event_log import EventLogScreen
from widgets.flow_table import FlowTable
from widgets.request_editor import RequestEditor
from widgets.rules_screen import RulesScreen

DOC = Path(__file__).resolve().parents[2] / "docs" / "keys.md"
MARK = "<!-- generated from widgets/keys.py"


def test_docs_keys_md_is_the_tables():
    text = DOC.read_text()
    generated = text[text.index("\n", text.index(MARK)) + 1 :]
    assert generated == keys.keys_markdown(), "docs/keys.md is out of date with widgets/keys.py"


@pytest.mark.parametrize(
    ("owner", "table"),
    [
        (FlowTable, keys.FLOW_LIST),
        (WaylayApp, keys.APP),
        (FlowDetail, keys.DETAIL),
        (RequestDialog, keys.REQUEST_DIALOG),
        (ResponseDialog, keys.RESPONSE_DIALOG),
        (EventLogScreen, keys.EVENT_LOG),
        (RequestEditor, keys.REQUEST_EDITOR),
        (RulesScreen, keys.RULES_SCREEN),
    ],
)
def test_bindings_come_from_the_table(owner, table):
    bound = [(b.key, b.action, b.id) for b in owner.BINDINGS]
    assert bound == [(k.keys, k.action, k.id) for k in table]


def test_every_binding_has_a_unique_id_per_place():
    for _, table in keys.HELP_SECTIONS:
        ids = [k.id for k in table if k.id]
        assert len(ids) == len(set(ids))
    for table in (keys.FLOW_LIST, keys.APP, keys.DIALOG, keys.RULES_SCREEN):
        assert all(k.id for k in table)


def test_hint_lines_name_each_key_once():
    assert keys.hint(keys.RESPONSE_DIALOG, keys.STAYS_PAUSED) == (
        "c pass the response on · x cancel · m respond with something else · "
        "e edit upstream's response · escape closes, the flow stays paused"
    )
    assert RequestDialog.BINDINGS and ResponseDialog.BINDINGS
