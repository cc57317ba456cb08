"""Scenarios whose statements run in another thread or in a greenlet, labelled."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from app import boundaries
from app.boundaries import Client
from app.db import Database
from app.labels import label, n_plus_one


@pytest.fixture
def client(db: Database) -> Iterator[Client]:
    """A test client whose requests run in worker threads."""
    made = Client(db)
    yield made
    made.close()


@label()
def test_requests_from_three_lines_of_a_test(client: Client) -> None:
    assert client.get("/authors/1") == "Ann"
    assert client.get("/authors/2") == "Bob"
    assert client.get("/authors/3") == "Cid"


@label(n_plus_one("endpoint_reviews", 2, "reviews"))
def test_an_endpoint_with_a_query_per_row(client: Client) -> None:
    assert client.get("/review_counts/1") == {1: 3, 2: 1}


@label(n_plus_one("async_name", 3, "authors"))
def test_awaited_queries_in_a_loop(db: Database) -> None:
    assert asyncio.run(boundaries.author_names(db, [1, 2, 3])) == ["Ann", "Bob", "Cid"]


@label()
def test_the_same_statement_awaited_on_two_lines(db: Database) -> None:
    assert asyncio.run(boundaries.two_awaited_lookups(db)) == ("Ann", "Bob")


@label(n_plus_one("task_name", 3, "authors"))
def test_tasks_gathered_on_one_line(db: Database) -> None:
    assert asyncio.run(boundaries.names_gathered(db, [1, 2, 3])) == ["Ann", "Bob", "Cid"]


@label()
def test_tasks_awaited_on_two_lines(db: Database) -> None:
    assert asyncio.run(boundaries.two_gathers(db)) == ("Ann", "Bob")


@label()
def test_one_awaited_statement(db: Database) -> None:
    assert asyncio.run(boundaries.titles_selectin(db)) == 8
