"""Fixtures of the browser tests: one Chromium per module, and a fresh page on the module's `stack`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import chromium, open_page
from tests.stack import Stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    opened = open_page(browser, stack)
    yield opened
    opened.context.close()
