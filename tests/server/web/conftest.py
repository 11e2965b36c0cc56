"""The browser every Chromium test of a module shares."""

from __future__ import annotations

import pytest

from tests.utils.serve import chromium


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched
