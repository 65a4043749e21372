"""The layering (README "How it is built"), checked in fresh interpreters: widgets never import
mitmproxy, policies never imports textual."""

from __future__ import annotations

import subprocess
import sys

import pytest

WIDGETS = [
    "widgets.app",
    "widgets.dialogs",
    "widgets.rules_screen",
    "widgets.export_menu",
    "widgets.flow_table",
    "widgets.detail",
    "widgets.model",
]
POLICIES = [
    "policies",
    "policies.cli",
    "policies.exchange",
    "policies.dnr",
    "policies.mitm_options",
    "policies.rules_file",
    "policies.engine",
]


@pytest.mark.parametrize(("modules", "forbidden"), [(WIDGETS, "mitmproxy"), (POLICIES, "textual")])
def test_layers(modules, forbidden):
    code = (
        "import sys\n"
        f"for m in {modules!r}: __import__(m)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules if m.split('.')[0] == {forbidden!r}}}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"{forbidden} imported by {modules}"
