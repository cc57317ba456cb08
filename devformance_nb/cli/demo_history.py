"""A store with a history: several real runs of the bookshop demo, code changing in between.

The analysis notebooks, the HTML report and ``devformance compare`` need more
than one run to show movement. ``build_history`` copies the bookshop demo into
a work folder, makes it a git repository, and runs its suite once per step of
``STEPS``, committing that step's code change first:

1. ``baseline``: the demo as shipped (five planted N+1s, two slow queries).
2. ``fix``: ``catalog.list_books`` loads authors with ``joinedload`` (one N+1
   fixed) and a new test file covers the out-of-stock answer (coverage up).
3. ``regress``: ``authors.author_pages_eager`` rewritten as a loop without
   ``selectinload`` (a new N+1), a new stock report with a slow query, and a
   test that depends on a file outside git.
4. ``flaky``: the same commit on branch ``feature`` with that file present:
   the test fails, so it is flaky (two outcomes on one commit).

Binder's ``postBuild`` runs ``python -m devformance_nb.cli.demo_history`` and the
tests build their store with the same function.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devformance_nb.api import facade as api

BOOKSHOP = Path(__file__).resolve().parents[2] / "examples" / "bookshop"
#: where ``devformance demo`` and the notebooks look for the demo's store by default
DEMO_DB = BOOKSHOP / ".devformance" / "devformance.duckdb"
#: a file outside git whose presence makes ``tests/test_housekeeping.py`` fail
FLAG = "maintenance.flag"
_GIT = ["git", "-c", "user.name=devformance demo", "-c", "user.email=demo@example.invalid"]
_GIT += ["-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]


@dataclass(frozen=True)
class Edit:
    """A change to one file of the demo: replace ``old`` (exactly once), append, or create."""

    path: str
    new: str
    old: str | None = None
    append: bool = False

    def apply(self, project: Path) -> None:
        """Apply the change under ``project``; a replace whose ``old`` is not there once fails."""
        target = project / self.path
        if self.old is None:
            target.parent.mkdir(parents=True, exist_ok=True)
            before = target.read_text(encoding="utf-8") if self.append else ""
            target.write_text(before + self.new, encoding="utf-8")
            return
        text = target.read_text(encoding="utf-8")
        if text.count(self.old) != 1:
            raise ValueError(f"{self.path}: expected the text to change exactly once")
        target.write_text(text.replace(self.old, self.new), encoding="utf-8")


@dataclass(frozen=True)
class Step:
    """One run of the history: the code change committed first, then the run."""

    name: str
    message: str
    edits: tuple[Edit, ...] = ()
    branch: str | None = None
    flag: bool = False


@dataclass(frozen=True)
class HistoryRun:
    """A run of the history: its step, run id, git commit and branch."""

    step: str
    run_id: str
    status: str
    git_commit: str | None
    git_branch: str | None


@dataclass
class History:
    """The runs ``build_history`` made, oldest first, and where."""

    db: Path
    project: Path
    runs: list[HistoryRun] = field(default_factory=list)

    def run_id(self, step: str) -> str:
        """The run id of the step named ``step``."""
        return next(r.run_id for r in self.runs if r.step == step)

    def to_dict(self) -> dict[str, Any]:
        """The history as JSON-ready data."""
        return {
            "db": os.fspath(self.db),
            "project": os.fspath(self.project),
            "runs": [asdict(r) for r in self.runs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """The history ``to_dict`` wrote."""
        runs = [HistoryRun(**r) for r in data["runs"]]
        return cls(Path(data["db"]), Path(data["project"]), runs)


_STOCK_TEST = '''"""POST /orders beyond the stock: the 409 answer (added by the `fix` step)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bookshop import api


def test_post_order_beyond_stock_is_409(session: Session) -> None:
    status, body = api.post_order(session, 1, {1: 10_000})
    assert status == 409
    assert body["available"] >= 0
'''

_AUTHORS_EAGER = (
    (
        "    stmt = select(Author).options(selectinload(Author.books))"
        ".order_by(Author.name, Author.id)\n"
    )
    + """    if country is not None:
        stmt = stmt.where(Author.country == country)
    return [_page(author, author.books) for author in session.scalars(stmt).all()]
"""
)
_AUTHORS_LOOP = """    stmt = select(Author).order_by(Author.name, Author.id)
    if country is not None:
        stmt = stmt.where(Author.country == country)
    pages = []
    for author in session.scalars(stmt).all():
        pages.append(_page(author, author.books))  # lazy again: one SELECT per author
    return pages
"""
_REORDER_REPORT = '''

STOCK_REORDER_SQL = """
SELECT b.id, b.title, b.stock,
       (SELECT sum(i.quantity) FROM order_items i WHERE i.book_id = b.id) AS sold,
       (SELECT count(*) FROM order_items i WHERE i.book_id = b.id) AS lines
FROM books b
ORDER BY sold DESC, b.id
LIMIT ?
"""


def stock_reorder_list(path: str | Path, limit: int = 10) -> list[tuple[int, str, int, int]]:
    """(id, title, stock, copies sold) of the best sellers: two correlated scans per book."""
    with connect(path) as conn:
        rows = conn.execute(STOCK_REORDER_SQL, (limit,)).fetchall()
    return [(book_id, title, stock, sold) for book_id, title, stock, sold, _ in rows]
'''
_REORDER_TEST = """

def test_stock_reorder_list(large_db_path: Path) -> None:
    rows = reports.stock_reorder_list(large_db_path, limit=5)
    assert len(rows) == 5
    assert [r[3] for r in rows] == sorted((r[3] for r in rows), reverse=True)
"""
_HOUSEKEEPING_TEST = f'''"""A test that depends on state outside the code (added by `regress`)."""

from __future__ import annotations

from pathlib import Path


def test_no_maintenance_flag() -> None:
    assert not (Path(__file__).resolve().parent.parent / "{FLAG}").exists()
'''

STEPS: tuple[Step, ...] = (
    Step("baseline", "The bookshop demo as shipped"),
    Step(
        "fix",
        "Load authors with the book listing; test the out-of-stock answer",
        (
            Edit(
                "bookshop/services/catalog.py",
                old="    stmt = select(Book).order_by(Book.title, Book.id).limit(limit)\n",
                new="    stmt = (\n        select(Book).options(joinedload(Book.author))"
                ".order_by(Book.title, Book.id).limit(limit)\n    )\n",
            ),
            Edit("tests/api/test_stock.py", new=_STOCK_TEST),
        ),
    ),
    Step(
        "regress",
        "Author pages as a loop; stock reorder report; housekeeping test",
        (
            Edit("bookshop/services/authors.py", old=_AUTHORS_EAGER, new=_AUTHORS_LOOP),
            Edit("bookshop/reports.py", _REORDER_REPORT, append=True),
            Edit("tests/test_reports.py", _REORDER_TEST, append=True),
            Edit("tests/test_housekeeping.py", new=_HOUSEKEEPING_TEST),
        ),
    ),
    Step("flaky", "Same commit on a feature branch, with a flag file", branch="feature", flag=True),
)


def _git(project: Path, *args: str) -> str | None:
    if shutil.which("git") is None:
        return None
    proc = subprocess.run(
        [*_GIT, *args], cwd=project, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def copy_demo(workdir: Path, source: Path = BOOKSHOP) -> Path:
    """A fresh copy of the demo under ``workdir``, as a git repository with one commit."""
    project = workdir / "bookshop"
    if project.exists():
        shutil.rmtree(project)
    ignore = shutil.ignore_patterns(".devformance", "__pycache__", ".ruff_cache", "*.sqlite3")
    shutil.copytree(source, project, ignore=ignore)
    (project / ".gitignore").write_text(
        f".devformance/\n__pycache__/\n.coverage*\n{FLAG}\n", encoding="utf-8"
    )
    if _git(project, "init", "-q") is not None:
        _git(project, "add", "-A")
        _git(project, "commit", "-q", "-m", STEPS[0].message)
    return project


def build_history(
    db: str | os.PathLike[str],
    workdir: str | os.PathLike[str] | None = None,
    *,
    workers: int = 2,
    steps: Sequence[Step] | None = None,
    **settings: Any,
) -> History:
    """Run the demo once per step into ``db`` (appending to it) and return the runs made.

    ``workdir`` holds the demo's copy (default: a temporary folder, removed at
    the end). ``settings`` go to ``run_tests`` (``executor``, ``timeout``...).
    """
    own_tmp = workdir is None
    base = Path(tempfile.mkdtemp(prefix="devformance-demo-")) if own_tmp else Path(workdir or "")
    base.mkdir(parents=True, exist_ok=True)
    try:
        project = copy_demo(base)
        history = History(Path(db).resolve(), project)
        for step in steps if steps is not None else STEPS:
            for edit in step.edits:
                edit.apply(project)
            if step.edits and _git(project, "add", "-A") is not None:
                _git(project, "commit", "-q", "-m", step.message)
            if step.branch:
                _git(project, "checkout", "-q", "-b", step.branch)
            (project / FLAG).unlink(missing_ok=True)
            if step.flag:
                (project / FLAG).write_text("down for maintenance\n", encoding="utf-8")
            run = api.run_tests(root=project, db=history.db, workers=workers, **settings)
            if run.store_error is not None:
                raise run.store_error
            meta = run.state.meta
            history.runs.append(
                HistoryRun(
                    step.name, run.id, run.status, meta.get("git_commit"), meta.get("git_branch")
                )
            )
        return history
    finally:
        if own_tmp:
            shutil.rmtree(base, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m devformance_nb.cli.demo_history [--db FILE] [--workdir DIR] [--workers N]
    [--manifest FILE] [--slow-query-ms MS]``."""
    parser = argparse.ArgumentParser(
        prog="python -m devformance_nb.cli.demo_history",
        description="Record several runs of the bookshop demo, with code changes in between.",
    )
    parser.add_argument("--db", default=os.environ.get("DEVFORMANCE_DB") or os.fspath(DEMO_DB))
    parser.add_argument("--workdir", help="where the demo's copy goes (default: a temp folder)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--manifest", help="write the runs made as JSON to this file")
    parser.add_argument(
        "--slow-query-ms",
        type=float,
        help="the runs' slow-query threshold (default: the demo's own, 100 ms)",
    )
    args = parser.parse_args(argv)
    settings: dict[str, Any] = {}
    if args.slow_query_ms is not None:
        settings["slow_query_ms"] = args.slow_query_ms
    history = build_history(args.db, args.workdir, workers=args.workers, **settings)
    if args.manifest:
        Path(args.manifest).write_text(json.dumps(history.to_dict(), indent=2), encoding="utf-8")
    for run in history.runs:
        commit = (run.git_commit or "-")[:10]
        print(f"{run.step:<9} {run.run_id}  {run.status:<7} {commit}  {run.git_branch or '-'}")
    print(f"store: {history.db}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
