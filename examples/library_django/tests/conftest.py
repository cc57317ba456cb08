"""Fixtures: seeded data."""

from __future__ import annotations

import pytest

from library import seed


@pytest.fixture
def small(db: None) -> seed.Size:
    """The small library (5 authors, 10 books, 4 members, 8 loans)."""
    seed.seed(seed.SMALL)
    return seed.SMALL


@pytest.fixture
def large(db: None) -> seed.Size:
    """The large library (1,000 books, 4,000 loans), for the reports."""
    seed.seed(seed.LARGE)
    return seed.LARGE
