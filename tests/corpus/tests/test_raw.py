"""Raw DB-API scenarios (sqlite3, or psycopg on a server), each labelled with its findings."""

from __future__ import annotations

from typing import Any

from app import rawsql
from app.db import Database, books_of
from app.labels import label, n_plus_one


@label(n_plus_one("raw_books", 4, "books"))
def test_a_query_per_row(db: Database, con: Any) -> None:
    assert rawsql.titles_per_author(db, con)[2] == ["Book 3", "Book 4"]


@label()
def test_the_same_rows_with_a_join(con: Any) -> None:
    assert rawsql.titles_per_author_joined(con)[4] == ["Book 7", "Book 8"]


@label()
def test_the_same_rows_with_an_in_list(db: Database, con: Any) -> None:
    assert rawsql.titles_in_list(db, con, [1, 2, 3, 4])[-1] == "Book 8"


@label(n_plus_one("raw_inlined", 4, "books"))
def test_literals_inlined_per_row_are_one_shape(con: Any) -> None:
    assert rawsql.titles_inlined(con) == {1: 2, 2: 2, 3: 2, 4: 2}


@label()
def test_a_loop_over_tables_is_a_different_query_each_time(con: Any) -> None:
    assert rawsql.row_counts(con) == {"authors": 4, "books": 8, "reviews": 7}


@label()
def test_the_same_query_from_two_calls_on_one_line(db: Database, con: Any) -> None:
    assert (rawsql.author_name(db, con, 1), rawsql.author_name(db, con, 2)) == ("Ann", "Bob")


@label()
def test_a_select_of_no_table_per_row(db: Database, con: Any) -> None:
    assert rawsql.shouted_names(db, con) == ["ANN", "BOB", "CID", "DEE"]


@label(n_plus_one("helper_loop", 4, "authors"))
def test_a_loop_through_a_database_helper_names_the_loop(db: Database, con: Any) -> None:
    assert rawsql.country_of_each_book(rawsql.Gateway(db, con)) == {
        1: "FR",
        2: "FR",
        3: "FR",
        4: "FR",
    }


@label()
def test_the_same_query_from_two_call_sites(db: Database, con: Any) -> None:
    first = rawsql.author_name(db, con, 1)
    cur = con.cursor()
    cur.execute(db.sql("SELECT name FROM authors WHERE id = ?"), (2,))
    assert (first, cur.fetchone()[0]) == ("Ann", "Bob")


@label()
def test_a_single_query(db: Database, con: Any) -> None:
    assert rawsql.author_name(db, con, 4) == "Dee"


@label(n_plus_one("raw_stars", 4, "reviews"))
def test_a_per_row_helper_two_calls_deep(db: Database, con: Any) -> None:
    assert rawsql.average_stars(db, con) == {1: 4.0, 2: 5.0, 3: 3.0, 5: 1.0}


@label()
def test_pagination_with_limit_and_offset(db: Database, con: Any) -> None:
    assert [len(page) for page in rawsql.pages(db, con, 3)] == [3, 3, 2]


@label()
def test_executemany_is_one_statement(db: Database, con: Any) -> None:
    assert rawsql.add_tags(db, con, ["a", "b", "c", "d", "e"]) == 5


@label()
def test_updates_in_a_loop_are_writes(db: Database, con: Any) -> None:
    reviewed = books_of(1) + books_of(2)
    rawsql.shift_stars(db, con, reviewed, 1)
    rawsql.shift_stars(db, con, reviewed, -1)
    assert rawsql.review_stars(db, con, 1) == [5, 4, 3]


@label()
def test_catalog_lookups_in_a_loop(db: Database, con: Any) -> None:
    assert sorted(rawsql.tables_present(db, con)) == ["authors", "books", "reviews"]


@label(n_plus_one("raw_name", 4, "authors"))
def test_threads_each_with_a_connection(db: Database) -> None:
    assert rawsql.names_in_threads(db, [4, 3, 2, 1]) == ["Dee", "Cid", "Bob", "Ann"]
