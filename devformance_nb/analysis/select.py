"""Run selectors and read-only query helpers shared by the analysis functions.

A selector names runs the way a person would:

- ``"latest"``, ``"previous"`` (the run before the latest), ``"latest~N"`` (N runs before it)
- ``"last:N"`` or ``"last N"``: the N most recent runs
- ``"all"``: every run
- ``"branch:NAME"``: every run on git branch NAME; ``"branch:NAME:N"`` (or
  ``"branch:NAME:last:N"``): its N most recent
- anything else: a run id, or a prefix that matches exactly one run

A list of selectors selects the union. Runs come back oldest first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Union

import duckdb
import pandas as pd

from devformance_nb.core.errors import RunNotFoundError
from devformance_nb.store.database import Store

#: a store, or the path of its DuckDB file
StoreLike = Union[Store, str, "os.PathLike[str]"]
#: one selector string, or several (their union)
Runs = Union[str, Sequence[str]]  # noqa: UP007 (a runtime alias on Python 3.10)

_LAST = re.compile(r"^last[: ]\s*(\d+)$")
_BACK = re.compile(r"^latest~(\d+)$")
#: the SQL filter of the selected runs; the run ids are its one parameter
IN_RUNS = "run_id IN (SELECT unnest(?::VARCHAR[]))"
#: a row of ``tests`` or ``test_files`` its run measured (not a --changed run's carried copy)
MEASURED = "carried_from IS NULL"
#: one statement type per fingerprint hash, to join statements on for the slow-query rule
#: (``logic.slow.slow_sql``); grouped so a hash stored twice cannot count a statement twice
STATEMENT_TYPES = (
    "(SELECT fingerprint_hash, any_value(statement_type) AS statement_type "
    "FROM fingerprints GROUP BY fingerprint_hash)"
)


def as_store(store: StoreLike) -> Store:
    """``store`` itself, or the store at that path."""
    return store if isinstance(store, Store) else Store(store)


@contextmanager
def reading(store: StoreLike) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to ``store`` (closed on exit)."""
    with as_store(store).reading() as con:
        yield con


def _ids(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[str]:
    return [str(row[0]) for row in con.execute(sql, params).fetchall()]


def _latest(con: duckdb.DuckDBPyConnection, n: int, where: str = "", params: Any = ()) -> list[str]:
    sql = f"SELECT run_id FROM runs {where} ORDER BY started DESC, run_id DESC LIMIT ?"
    return _ids(con, sql, [*params, n])


def _one(con: duckdb.DuckDBPyConnection, selector: str, path: object) -> list[str]:
    """The runs of one selector string (any order)."""
    text = selector.strip()
    if text == "all":
        return _ids(con, "SELECT run_id FROM runs", [])
    if text in ("latest", "previous") or _BACK.match(text):
        back = 0 if text == "latest" else 1 if text == "previous" else int(text.split("~")[1])
        found = _latest(con, back + 1)
        if len(found) <= back:
            raise RunNotFoundError(_too_few(text, back + 1, len(found), path))
        return [found[back]]
    last = _LAST.match(text)
    if last:
        return _latest(con, int(last.group(1)))
    if text.startswith("branch:"):
        name, _, count = text.removeprefix("branch:").partition(":")
        count = count.removeprefix("last:")  # branch:main:last:5 reads as branch:main:5
        limit = int(count) if count.isdigit() else 1 << 62
        found = _latest(con, limit, "WHERE git_branch = ?", [name])
        if not found:
            raise RunNotFoundError(f"no runs on branch {name!r} in {path}")
        return found
    found = _ids(con, "SELECT run_id FROM runs WHERE starts_with(run_id, ?)", [text])
    exact = [run_id for run_id in found if run_id == text]
    if len(exact) == 1 or len(found) == 1:
        return exact or found
    many = "no run" if not found else f"{len(found)} runs"
    raise RunNotFoundError(
        f"{many} matching {selector!r} in {path}; list them with devformance runs "
        "(selectors: latest, previous, latest~N, last:N, all, branch:NAME[:last:N], a run id)"
    )


def _too_few(selector: str, needed: int, recorded: int, path: object) -> str:
    runs = "no runs" if recorded == 0 else "1 run" if recorded == 1 else f"{recorded} runs"
    return (
        f"no run {selector!r} in {path}: it needs {needed} runs, {runs} recorded so far; "
        "each `devformance run` (or `devformance demo`) records one more"
    )


def select_in(con: duckdb.DuckDBPyConnection, runs: Runs, path: object = "the store") -> list[str]:
    """The run ids ``runs`` selects, oldest first (on an open connection)."""
    selectors = [runs] if isinstance(runs, str) else list(runs)
    # run ids (as a report passes its selection on) resolve in one query
    chosen = set(_ids(con, f"SELECT run_id FROM runs WHERE {IN_RUNS}", [selectors]))
    for selector in selectors:
        if selector not in chosen:
            chosen.update(_one(con, selector, path))
    if not chosen:
        return []
    return _ids(
        con, f"SELECT run_id FROM runs WHERE {IN_RUNS} ORDER BY started, run_id", [sorted(chosen)]
    )


def big_table_filter(
    con: duckdb.DuckDBPyConnection, ids: list[str], column: str = "run_id"
) -> tuple[str, list[Any]]:
    """A WHERE condition (and its parameters) picking ``ids`` out of a big table.

    Every run: no condition at all. Otherwise a range on the run id, which
    DuckDB checks against each row group's min/max (rows are stored run by run,
    so most groups are skipped), before the exact list.
    """
    if not ids:
        return "FALSE", []
    row = con.execute("SELECT count(*) FROM runs").fetchone()
    if row is not None and len(ids) >= int(row[0]):
        return "TRUE", []
    exact = f"{column} IN (SELECT unnest(?::VARCHAR[]))"
    return f"{column} BETWEEN ? AND ? AND {exact}", [min(ids), max(ids), ids]


def select_runs(store: StoreLike, runs: Runs = "last:20") -> list[str]:
    """The run ids a selector (or a list of them) picks, oldest first."""
    the_store = as_store(store)
    with the_store.reading() as con:
        return select_in(con, runs, the_store.path)


def select_one(con: duckdb.DuckDBPyConnection, run: str, path: object = "the store") -> str:
    """The one run ``run`` names (the newest, if the selector names several)."""
    ids = select_in(con, run, path)
    if not ids:
        raise RunNotFoundError(f"no run matching {run!r} in {path}")
    return ids[-1]


def frame(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: list[Any],
    lists: Sequence[str] = (),
) -> pd.DataFrame:
    """A query's result as a DataFrame; ``lists`` columns hold Python lists (not arrays)."""
    df = con.execute(sql, params).df()
    for column in lists:
        df[column] = [_as_list(v) for v in df[column]]
    return df


def runs_frame(store: StoreLike, runs: Runs, sql: str, lists: Sequence[str] = ()) -> pd.DataFrame:
    """``sql`` run with the ids that ``runs`` selects as its one parameter, as a DataFrame."""
    s = as_store(store)
    with s.reading() as con:
        return frame(con, sql, [select_in(con, runs, s.path)], lists=lists)


def _as_list(value: Any) -> list[Any]:
    if hasattr(value, "tolist"):
        return list(value.tolist())
    return list(value) if isinstance(value, (list, tuple)) else []
