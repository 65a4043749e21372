"""The project documents itself: the examples in docs/rules.md are valid rules files, and
nothing in the project sends readers to a document outside it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from policies.model import ACTIONS_BY_EVENT, RuleSetModel

ROOT = Path(__file__).resolve().parents[1]
RULES_DOC = (ROOT / "docs" / "rules.md").read_text()


def toml_blocks(text: str) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", text, re.S)


SETTINGS_MARK = "# settings.toml"
"""The first line of an example of the settings file (the other examples are rules files)."""

ALL_BLOCKS = (
    toml_blocks(RULES_DOC)
    + toml_blocks((ROOT / "README.md").read_text())
    + toml_blocks((ROOT / "docs" / "keys.md").read_text())
)


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if not b.startswith(SETTINGS_MARK)])
def test_every_example_rules_file_validates(block):
    data = tomllib.loads(block)
    model = RuleSetModel.model_validate(data)
    assert model.rules


@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.startswith(SETTINGS_MARK)])
def test_every_example_settings_file_validates(block):
    from monitor.user_settings import UserSettings

    UserSettings.model_validate(tomllib.loads(block))


def test_the_reference_names_every_event_and_action():
    for event, actions in ACTIONS_BY_EVENT.items():
        assert f"| `{event}` |" in RULES_DOC, event
        for action in actions:
            assert f"`{action}`" in RULES_DOC, (event, action)


def test_nothing_points_to_a_spec_outside_the_project():
    found = []
    for path in [ROOT / "README.md", *ROOT.glob("docs/*.md")] + [
        p for d in ("monitor", "widgets", "policies", "tests") for p in (ROOT / d).rglob("*.py")
    ]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if path.name != "test_docs.py" and re.search(r"SPEC(\.md| ?§)|shared/", line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert found == []
