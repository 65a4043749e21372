"""waylay's flow record in saved files: ``FlowRecord.to_dict`` is plain data that
mitmproxy's flow format and JSON hold, ``from_dict`` reads it back and keeps nothing it
cannot trust; flow files and session files are readable by their owner only."""

from __future__ import annotations

import json
import stat

from mitmproxy.io import FlowReader, tnetstring
from mitmproxy.test import tflow

from monitor.open import FileController
from monitor.record import FlowRecord, record_of
from monitor.save import FlowSaver, flow_state, write_flows
from monitor.store import SessionStore, flow_row
from monitor.store_writer import ROW
from widgets.model import CertificateInfo

CERT = CertificateInfo(
    host="127.0.0.1",
    port=8443,
    reason="self-signed",
    subject="CN=test",
    issuer="CN=test",
    sans=("localhost", "127.0.0.1"),
    not_before="2026-01-01",
    not_after="2027-01-01",
    fingerprint="sha256:aa:bb",
    chain=("CN=test",),
)


def full_record() -> FlowRecord:
    rec = FlowRecord(
        rule_id="no-ads",
        state="cancelled",
        type="xmlhttprequest",
        done=True,
        local_response=True,
        certificate=CERT,
        client_gone=True,
        retries=2,
        retry_of="abc",
    )
    rec.trace.append(("request", "no-ads", "cancel", True))
    rec.trace.append(("request", "other", "matched", False))
    rec.note("credentials supplied for alice (you)")
    rec.added("Authorization")
    rec.streamed["response"] = 3_000_000
    return rec


def test_a_record_round_trips_through_a_flow_file_and_json():
    rec = full_record()
    data = rec.to_dict()
    back_from_tnetstring = tnetstring.loads(tnetstring.dumps(data))
    back_from_json = json.loads(json.dumps(data))
    for back in (back_from_tnetstring, back_from_json):
        again = FlowRecord.from_dict(back)
        for name in ("trace", "notes", "rule_id", "state", "type", "done", "local_response"):
            assert getattr(again, name) == getattr(rec, name), name
        assert again.added_headers == ["Authorization"]
        assert again.certificate == CERT
        assert (again.client_gone, again.retries, again.retry_of) == (True, 2, "abc")
        assert again.streamed == {"response": 3_000_000}


def test_a_fresh_record_saves_as_nothing_and_live_only_state_is_not_saved():
    rec = FlowRecord()
    assert rec.to_dict() == {}
    rec.auth_sent = True
    rec.certificate_check = 7
    assert rec.to_dict() == {}


def test_from_dict_keeps_nothing_it_cannot_trust():
    for junk in (None, 7, "text", [1, 2], b"bytes"):
        assert FlowRecord.from_dict(junk) == FlowRecord()
    rec = FlowRecord.from_dict(
        {
            "trace": [["request", "r", "cancel"], "x", ["request", "ok", "cancel", 1]],
            "notes": ["fine", 3, None],
            "state": "exploded",
            "retries": -1,
            "done": "yes",
            "streamed": {"response": "big", "elsewhere": 3, "request": 10},
            "certificate": {"host": "h"},
            "unknown": "ignored",
        }
    )
    assert rec.trace == [("request", "ok", "cancel", True)]
    assert rec.notes == ["fine"]
    assert (rec.state, rec.retries, rec.done, rec.certificate) == (None, 0, False, None)
    assert rec.streamed == {"request": 10}


def test_saved_flows_carry_the_record_as_plain_data_and_hide_added_credentials(tmp_path):
    flow = tflow.tflow(resp=True)
    flow.request.headers["Authorization"] = "Basic c2VjcmV0"
    flow.metadata[""] = object()  # another addon's odd metadata: not worth losing the flow
    rec = record_of(flow)
    rec.added("Authorization")
    state = flow_state(flow)
    assert state["metadata"]["waylay"]["added_headers"] == ["Authorization"]
    tnetstring.dumps(state)  # plain data only
    path = tmp_path / "one.flows"
    assert write_flows([flow], path) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with open(path, "rb") as fo:
        (read,) = FlowReader(fo).stream()
    assert read.request.headers["Authorization"] == "(added by waylay; redacted)"
    opened = FileController(path, [read])
    (view,) = opened.views()
    assert dict(view.request_headers)["Authorization"] == "(added by waylay; redacted)"


def test_the_save_stream_and_a_new_session_file_are_owner_only(tmp_path):
    saver = FlowSaver(tmp_path / "stream.flows")
    saver.open()
    saver.close()
    store = SessionStore(tmp_path / "s.waylay-session")
    store.open()
    store.close()
    for name in ("stream.flows", "s.waylay-session"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_a_session_row_keeps_the_record():
    flow = tflow.tflow(resp=True)
    rec = record_of(flow)
    rec.rule_id = "r1"
    rec.note("a note")
    row = flow_row(flow)
    saved = json.loads(row[ROW.index("record") - 1])  # (flow_row: without the seq)
    assert FlowRecord.from_dict(saved).notes == ["a note"]
