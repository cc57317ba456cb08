"""Which query budget applies to a test: its marker, else the first matching glob, else none."""

from __future__ import annotations

import pytest

from devformance_nb.logic.budgets import budget_for

pytestmark = pytest.mark.quick

PATTERNS = {
    "tests/api/test_users.py::*": 5,
    "tests/api/*": 12,
    "tests/test_reports.py::*": 40,
}


def test_the_marker_wins_over_every_pattern() -> None:
    assert budget_for("tests/api/test_users.py::test_list", 3, PATTERNS) == 3


def test_a_zero_marker_is_a_budget_not_a_missing_one() -> None:
    assert budget_for("tests/api/test_users.py::test_list", 0, PATTERNS) == 0


def test_the_first_matching_pattern_in_table_order_wins() -> None:
    assert budget_for("tests/api/test_users.py::test_list", None, PATTERNS) == 5
    reordered = dict(reversed(list(PATTERNS.items())))
    assert budget_for("tests/api/test_users.py::test_list", None, reordered) == 12


def test_a_glob_spans_folders_classes_and_parameters() -> None:
    nodeid = "tests/api/v2/test_orders.py::TestOrders::test_list[sqlite-10]"
    assert budget_for(nodeid, None, PATTERNS) == 12


def test_no_marker_and_no_match_means_no_budget() -> None:
    assert budget_for("tests/test_models.py::test_save", None, PATTERNS) is None
    assert budget_for("tests/test_models.py::test_save", None, {}) is None


def test_matching_is_case_sensitive_as_node_ids_are() -> None:
    assert budget_for("tests/API/test_users.py::test_list", None, {"tests/api/*": 1}) is None


def test_brackets_in_a_pattern_are_glob_classes() -> None:
    # fnmatch's meaning, documented for users who budget one parameter set
    assert budget_for("tests/test_a.py::test_x[1]", None, {"tests/test_a.py::test_x[[]1]": 2}) == 2
