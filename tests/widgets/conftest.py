"""Fixtures for the screen's tests (the fakes themselves live in `screen_fakes`)."""

from __future__ import annotations

import time

import pytest
from screen_fakes import Clock, FakeController


@pytest.fixture
def utc(monkeypatch):
    """Local time is UTC, so the time column reads the same on every machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def controller() -> FakeController:
    return FakeController()


@pytest.fixture
def clock() -> Clock:
    return Clock()
