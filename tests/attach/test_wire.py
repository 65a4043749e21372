"""The control socket's pieces on their own: frames, conversions, the peer check, the
private folder, and which side imports what."""

from __future__ import annotations

import dataclasses
import os
import socket
import stat
import subprocess
import sys

import msgspec
import pytest

from monitor import wire
from monitor.sockets import SocketDirError, ensure_private_dir, peer_uid, refusal
from widgets.model import Answer, CertificateInfo, FlowView, PausedEvent, TraceEntry

FULL = FlowView(
    id="f1",
    seq=3,
    started=1.5,
    method="POST",
    scheme="https",
    host="example.com",
    port=443,
    path="/a?b=1",
    url="https://example.com/a?b=1",
    state="paused",
    status=None,
    paused=PausedEvent("f1", "auth", 1.0, 2.0, "https://example.com/a", "POST", (("realm", "r"),)),
    certificate=CertificateInfo("h", 1, "expired", "s", "i", ("a",), "x", "y", "sha256:aa"),
    trace=(TraceEntry("request", "r1", "ask", True),),
    notes=("a note",),
    request_headers=(("Host", "example.com"),),
    request_body=b"\x00\xffbody",
    request_body_size=6,
    response_headers=(("A", "b"),),
    response_body=b"resp",
    response_content_type="text/plain",
    timing=(("request complete", 0.01),),
)


def roundtrip(message):
    payload = wire.frame(message)
    assert wire.frame_length(payload[: wire.HEADER_SIZE]) == len(payload) - wire.HEADER_SIZE
    return wire.decode_to_screen(payload[wire.HEADER_SIZE :])


def test_a_row_and_its_detail_make_the_whole_snapshot_again():
    batch = roundtrip(wire.Batch([wire.row_of(FULL)], ["gone"]))
    [view] = batch.rows  # decoded straight into a FlowView
    assert isinstance(view, FlowView) and batch.removed == ["gone"]
    assert view == wire.view_of(wire.row_of(FULL))
    assert view.request_headers == () and view.paused == FULL.paused
    assert wire.with_detail(view, wire.detail_of(FULL)) == FULL
    minimal = roundtrip(wire.Batch([wire.Row("x", 1, 0.0, "GET", "http", "h", 80, "/", "u")]))
    assert minimal.rows[0] == FlowView("x", 1, 0.0, "GET", "http", "h", 80, "/", "u")


def test_rows_have_the_names_and_defaults_of_flow_views():
    views = {f.name: f for f in dataclasses.fields(FlowView)}
    info = msgspec.structs.fields(wire.Row)
    for field in info:
        assert field.name in views, field.name
        if field.default is not msgspec.NODEFAULT:
            assert views[field.name].default == field.default, field.name


def test_rows_carry_no_bodies():
    assert b"body" not in wire.frame(wire.Batch([wire.row_of(FULL)]))


def test_answers_keep_their_parameters():
    a = Answer("respond", {"status": 418, "body": "x"}, remember="host")
    assert wire.answer_from(wire.answer_args(a)) == a
    with pytest.raises(ValueError):
        wire.answer_from({"action": "x", "params": ["not", "a", "map"]})


def test_garbage_and_oversized_frames_are_refused_with_a_message():
    with pytest.raises(wire.WireError, match="unreadable message"):
        wire.decode_to_proxy(b"\xc1garbage")
    with pytest.raises(wire.WireError, match="over the limit"):
        wire.frame_length((wire.MAX_CLIENT_FRAME + 1).to_bytes(4, "big"), wire.MAX_CLIENT_FRAME)
    assert wire.peek_protocol(wire.frame(wire.Hello(99, "x"))[4:]) == 99


def test_the_peer_check_reads_the_real_uid_of_the_other_end():
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        assert peer_uid(a) == os.getuid()
        assert refusal(a) is None
        other = os.getuid() + 1
        assert refusal(a, uid=other) == (
            f"this proxy belongs to uid {other}; uid {os.getuid()} may not attach to it"
        )


def test_the_socket_folder_is_made_private(tmp_path):
    folder = tmp_path / "run" / "waylay"
    ensure_private_dir(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    folder.chmod(0o755)
    ensure_private_dir(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(SocketDirError, match="is not a folder"):
        ensure_private_dir(f)


@pytest.mark.skipif(os.getuid() != 0, reason="chown needs root")
def test_a_socket_folder_of_another_user_is_refused(tmp_path):
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)
    with pytest.raises(SocketDirError, match="belongs to uid 65534"):
        ensure_private_dir(folder)


@pytest.mark.parametrize(
    ("modules", "forbidden"),
    [
        (["monitor.remote", "monitor.wire", "monitor.sockets", "monitor.attach"], "mitmproxy"),
        (["monitor.control", "monitor.headless", "monitor.wire"], "textual"),
    ],
)
def test_each_side_imports_only_its_own(modules, forbidden):
    code = (
        "import sys\n"
        f"for m in {modules!r}: __import__(m)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules if m.split('.')[0] == {forbidden!r}}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"{forbidden} imported by {modules}"
