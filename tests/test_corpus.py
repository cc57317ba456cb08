"""The labelled N+1 corpus (tests/corpus), run for real and checked finding by finding.

Every scenario of the corpus is a test function labelled with the N+1 findings it must
produce, or with none (``@label(...)`` in ``tests/corpus/tests/test_*.py``). The corpus is
copied into a temporary project and run by ``run_tests`` (real children, the default
executor, and spawned children on SQLite too), on SQLite and on PostgreSQL (psycopg 3, the
``pg_dsn`` server). The store's ``n_plus_one`` rows and the run state must equal the labels
exactly: the same call site (``path:line function``), phase, count, table and lazily loaded
relation, nothing missing and nothing else.
The corpus also proves the default ``n_plus_one_min`` of 2: it holds N+1s of exactly two
statements and scenarios that run a statement once per phase or per test; and the ORM-level
rule: a lazy load for an instance of a multi-row result is a finding at any count, one on a
row fetched alone is not.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from devformance_nb.api import facade as api
from devformance_nb.core import events as ev
from devformance_nb.core.config import Config
from devformance_nb.core.eventlog import read_events
from devformance_nb.logic.detection import find_n_plus_one

CORPUS = Path(__file__).resolve().parent / "corpus"
SCENARIO_FILES = sorted((CORPUS / "tests").glob("test_*.py"))
#: ``# site: NAME``, or ``# site: NAME (in listcomp)`` when the statement is sent from inside a
#: comprehension's element
SITE = re.compile(r"# site: ([a-z_]+)(?: \(in (listcomp|setcomp|dictcomp|genexpr)\))?$")
URL_ENV = "CORPUS_DB_URL"  # app/db.py reads it in the children
#: (database, executor): the fork server preloads the conftest (SQLAlchemy imported before
#: capture starts), spawned children import it after (SQLAlchemy hooked lazily)
RUNS = [
    ("sqlite", "forkserver"),
    ("sqlite", "spawn"),
    ("postgresql", "forkserver"),
    ("postgresql", "spawn"),
]


@dataclass(frozen=True, order=True)
class Unread:
    """One unused eager load, as labelled (a site name) or as stored (a call site)."""

    site: str
    relation: str
    phase: str
    count: int


@dataclass(frozen=True, order=True)
class Finding:
    """One N+1 finding as the store keeps it (the fields the labels fix)."""

    nodeid: str
    phase: str
    caller: str
    count: int
    table: str
    relation: str


#: the exact fix each lazily loaded relation of the corpus gets in its finding's hint
FIXES = {
    "Author.books": ".options(selectinload(Author.books))",
    "Book.author": ".options(joinedload(Book.author))",
    "Book.reviews": ".options(selectinload(Book.reviews))",
}


def qualname_at(tree: ast.Module, line: int) -> str:
    """The ``co_qualname`` of the innermost function holding ``line`` (``<module>`` if none)."""
    best: list[str] = []

    def visit(node: ast.AST, names: list[str]) -> None:
        nonlocal best
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = [*names, child.name]
                if isinstance(child, ast.ClassDef):
                    visit(child, inner)
                    continue
                end = child.end_lineno or child.lineno
                if child.lineno <= line <= end and len(inner) > len(best):
                    best = inner
                visit(child, [*inner, "<locals>"])
            else:
                visit(child, names)

    visit(tree, [])
    return ".".join(best) if best else "<module>"


#: a comprehension's code object name; before Python 3.12 (PEP 709) list, set and dict
#: comprehensions run in a function of their own (generator expressions still do)
_COMPREHENSIONS = {"listcomp", "setcomp", "dictcomp"}


def in_comprehension(kind: str) -> str:
    """The qualname suffix of a site marked ``(in KIND)``: the statement is sent from inside
    the comprehension's element, which is a function of its own in this Python, or not."""
    if kind == "genexpr" or (kind in _COMPREHENSIONS and sys.version_info < (3, 12)):
        return f".<locals>.<{kind}>"
    return ""


def call_sites() -> dict[str, str]:
    """``# site: NAME`` markers of the corpus -> ``path:line function`` (project-relative)."""
    found: dict[str, str] = {}
    for path in sorted(CORPUS.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source)
        for number, text in enumerate(source.splitlines(), start=1):
            match = SITE.search(text)
            if match:
                name = match.group(1)
                assert name not in found, f"site {name} marked twice"
                rel = path.relative_to(CORPUS).as_posix()
                suffix = in_comprehension(match.group(2) or "")
                found[name] = f"{rel}:{number} {qualname_at(tree, number)}{suffix}"
    return found


@dataclass(frozen=True)
class Scenario:
    """One labelled test function: its file key, name and expected findings (as labelled)."""

    file: str
    name: str
    findings: tuple[tuple[str, int, str, str, str], ...]  # (site, count, table, phase, relation)
    #: the unused eager loads it must report
    unread: tuple[Unread, ...] = ()

    def owns(self, nodeid: str) -> bool:
        """Whether ``nodeid`` is this function (or one of its parametrized tests)."""
        own = f"{self.file}::{self.name}"
        return nodeid == own or nodeid.startswith(own + "[")


#: a label's arguments in order, with their defaults, by the label function's name
LABEL_ARGS = {
    "n_plus_one": (
        ("site", None),
        ("count", None),
        ("table", None),
        ("phase", "call"),
        ("relation", ""),
    ),
    "unused_eager": (("site", None), ("relation", None), ("phase", "call"), ("count", 1)),
}


def _label_args(call: ast.Call) -> tuple[str, dict[str, object]]:
    """The label function ``call`` names and its arguments by name, defaults filled in."""
    kind = getattr(call.func, "id", "")
    assert kind in LABEL_ARGS, f"unknown label {kind}"
    names = LABEL_ARGS[kind]
    given = {name: ast.literal_eval(a) for (name, _), a in zip(names, call.args, strict=False)}
    given |= {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
    return kind, {name: given.get(name, default) for name, default in names}


def _label_of(
    func: ast.FunctionDef,
) -> tuple[tuple[tuple[str, int, str, str, str], ...], tuple[Unread, ...]] | None:
    for decorator in func.decorator_list:
        if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") == "label":
            findings, unread = [], []
            for arg in decorator.args:
                assert isinstance(arg, ast.Call)
                kind, a = _label_args(arg)
                if kind == "n_plus_one":
                    findings.append((a["site"], a["count"], a["table"], a["phase"], a["relation"]))
                else:
                    unread.append(Unread(a["site"], a["relation"], a["phase"], a["count"]))
            return tuple(findings), tuple(unread)  # type: ignore[arg-type]
    return None


def scenarios() -> list[Scenario]:
    """Every test function of the corpus with its label (a missing label fails here)."""
    found = []
    for path in SCENARIO_FILES:
        key = f"tests/{path.name}"
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            # test functions, and test methods of test classes (named Class::method)
            members = [("", node)]
            if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                members = [(f"{node.name}::", member) for member in node.body]
            for prefix, member in members:
                if isinstance(member, ast.FunctionDef) and member.name.startswith("test_"):
                    name = prefix + member.name
                    labelled = _label_of(member)
                    assert labelled is not None, f"{key}::{name} has no @label"
                    found.append(Scenario(key, name, *labelled))
    return found


def expected_findings(nodeids: list[str]) -> set[Finding]:
    """The labels as findings, one set of them per collected test of each scenario."""
    sites = call_sites()
    expected = set()
    for scenario in scenarios():
        for nodeid in (n for n in nodeids if scenario.owns(n)):
            for site, count, table, phase, relation in scenario.findings:
                expected.add(Finding(nodeid, phase, sites[site], count, table, relation))
    return expected


def expected_unread(nodeids: list[str]) -> set[tuple[str, Unread]]:
    """The labelled unused eager loads, per collected test: (nodeid, load at its call site)."""
    sites = call_sites()
    return {
        (nodeid, Unread(sites[u.site], u.relation, u.phase, u.count))
        for scenario in scenarios()
        for nodeid in nodeids
        if scenario.owns(nodeid)
        for u in scenario.unread
    }


def database_url(name: str, request: pytest.FixtureRequest) -> str:
    """The corpus's ``CORPUS_DB_URL`` for a database name ('' is SQLite, the corpus default)."""
    if name == "sqlite":
        return ""
    dsn: str = request.getfixturevalue("pg_dsn")
    return "postgresql+psycopg://" + dsn.split("://", 1)[1]


@dataclass
class CorpusRun:
    """A finished corpus run: the run, its store and the collected test ids."""

    run: api.Run
    database: str
    nodeids: list[str]

    def stored(self, db: Path | None = None) -> set[Finding]:
        """The ``n_plus_one`` rows of the store (``db``: another store, e.g. an ingest's)."""
        rows = api.open_store(db or self.run.db).query(
            "SELECT nodeid, phase, caller, count, table_name, relation FROM n_plus_one"
            " WHERE run_id = ?",
            [self.run.id],
        )
        return {
            Finding(
                r["nodeid"], r["phase"], r["caller"], r["count"], r["table_name"], r["relation"]
            )
            for r in rows
        }

    def unread(self) -> set[tuple[str, Unread]]:
        """The ``unused_eager_loads`` rows of the store."""
        rows = api.open_store(self.run.db).query(
            "SELECT nodeid, caller, relation, phase, count FROM unused_eager_loads"
            " WHERE run_id = ?",
            [self.run.id],
        )
        return {
            (r["nodeid"], Unread(r["caller"], r["relation"], r["phase"], r["count"])) for r in rows
        }


@pytest.fixture(scope="module", params=RUNS, ids=["-".join(r) for r in RUNS])
def corpus(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> CorpusRun:
    database, executor = request.param
    root = tmp_path_factory.mktemp(f"corpus-{database}-{executor}") / "project"
    ignore = shutil.ignore_patterns("__pycache__", ".devformance", ".ruff_cache")
    shutil.copytree(CORPUS, root, ignore=ignore)
    url = database_url(database, request)
    saved = os.environ.get(URL_ENV)
    os.environ[URL_ENV] = url
    try:
        run = api.run_tests(root=root, workers=2, executor=executor)
    finally:
        if saved is None:
            del os.environ[URL_ENV]
        else:
            os.environ[URL_ENV] = saved
    nodeids = [r["nodeid"] for r in api.open_store(run.db).query("SELECT nodeid FROM tests")]
    return CorpusRun(run, database, nodeids)


def test_every_scenario_is_labelled_and_the_corpus_covers_the_cases() -> None:
    found = scenarios()
    assert len(found) >= 25
    assert {s.file for s in found} == {
        "tests/test_orm.py",
        "tests/test_raw.py",
        "tests/test_phases.py",
        "tests/test_boundaries.py",
        "tests/test_repeats.py",
    }
    findings = [f for s in found for f in s.findings]
    assert sum(1 for s in found if s.findings) >= 10  # N+1 scenarios
    assert sum(1 for s in found if not s.findings) >= 10  # scenarios that are not N+1
    assert {f[3] for f in findings} == {"setup", "call", "teardown"}
    # the default minimum is exercised at its edge; the ORM's rule below it
    assert min(f[1] for f in findings if not f[4]) == 2
    assert min(f[1] for f in findings if f[4]) == 1
    assert {f[4] for f in findings} - {""} == set(FIXES)
    unread = [u for s in found for u in s.unread]
    assert {u.relation for u in unread} == {"Author.books", "Book.author"}
    # every marked site is used
    assert set(call_sites()) == {f[0] for f in findings} | {u.site for u in unread}


def test_every_scenario_ran_and_passed(corpus: CorpusRun) -> None:
    assert corpus.run.status == "passed", corpus.run.summary()
    assert len(corpus.nodeids) == sum(
        1 for n in corpus.nodeids if any(s.owns(n) for s in scenarios())
    )
    assert len(corpus.nodeids) >= len(scenarios())


def test_the_stored_findings_are_exactly_the_labelled_ones(corpus: CorpusRun) -> None:
    expected = expected_findings(corpus.nodeids)
    stored = corpus.stored()
    assert sorted(stored - expected) == [], "false positives"
    assert sorted(expected - stored) == [], "false negatives"


def test_the_unused_eager_loads_are_exactly_the_labelled_ones(corpus: CorpusRun) -> None:
    expected = expected_unread(corpus.nodeids)
    assert expected and sorted(corpus.unread()) == sorted(expected)
    in_state = {
        (u.nodeid, Unread(u.caller, u.relation, u.phase, u.count))
        for fs in corpus.run.state.files.values()
        for u in fs.unused_eager
    }
    assert in_state == expected


def test_the_run_state_has_the_same_findings(corpus: CorpusRun) -> None:
    in_state = {
        Finding(f.nodeid, f.phase, f.caller, f.count, f.table, f.relation)
        for fs in corpus.run.state.files.values()
        for f in fs.n_plus_one
    }
    assert in_state == expected_findings(corpus.nodeids)
    counted = {fs.key: len(fs.n_plus_one) for fs in corpus.run.state.files.values()}
    rows = api.open_store(corpus.run.db).query(
        "SELECT file, n_plus_one FROM test_files WHERE run_id = ?", [corpus.run.id]
    )
    assert {r["file"]: r["n_plus_one"] for r in rows} == counted


def test_the_default_minimum_of_two_is_the_one_that_finds_everything(corpus: CorpusRun) -> None:
    assert Config().n_plus_one_min == 2
    queries = [
        event
        for path in sorted(corpus.run.run_dir.glob("*.events.jsonl"))
        for event in read_events(path)
        if isinstance(event, ev.Query)
    ]
    expected = expected_findings(corpus.nodeids)

    def found(min_count: int) -> set[Finding]:
        return {
            Finding(f.nodeid, f.phase, f.caller, f.count, f.table, f.relation)
            for f in find_n_plus_one(queries, min_count=min_count)
        }

    assert found(2) == expected
    # a minimum of 3 misses real N+1s of two statements, except lazy loads the ORM reported
    missed = expected - found(3)
    assert missed and missed == {f for f in expected if f.count == 2 and not f.relation}
    assert {f for f in expected if f.count == 2 and f.relation} <= found(3)


def test_lazy_load_findings_name_the_exact_fix(corpus: CorpusRun) -> None:
    rows = api.open_store(corpus.run.db).query(
        "SELECT relation, hint FROM n_plus_one WHERE run_id = ? AND relation <> ''",
        [corpus.run.id],
    )
    assert {r["relation"] for r in rows} == set(FIXES)
    for row in rows:
        assert FIXES[row["relation"]] in row["hint"], row


def test_ingest_rebuilds_the_same_findings(corpus: CorpusRun, tmp_path: Path) -> None:
    other = tmp_path / "ingested.duckdb"
    state = api.ingest(corpus.run.run_dir, other)
    assert corpus.stored(other) == corpus.stored()
    counts = "SELECT count(*) AS n FROM queries WHERE run_id = ?"
    (original,) = api.open_store(corpus.run.db).query(counts, [corpus.run.id])
    (copy,) = api.open_store(other).query(counts, [corpus.run.id])
    assert copy == original and original["n"] > 100
    assert sum(len(fs.n_plus_one) for fs in state.files.values()) == len(corpus.stored())
