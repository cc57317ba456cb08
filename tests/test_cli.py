"""The devformance command, run as a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import MakeProject

from devformance_nb.store.schema import SCHEMA_VERSION

PASS = "def test_ok():\n    pass\n"
FAIL = "def test_bad():\n    assert 0\n"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devformance_nb.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_run_twice_then_runs_lists_both(make_project: MakeProject) -> None:
    root = make_project({"tests/test_a.py": PASS, "tests/test_b.py": PASS})
    first = cli("run", "tests", "--workers", "2", cwd=root)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "PASSED   tests/test_a.py" in first.stdout and "stored as run" in first.stdout
    assert cli("run", "tests", "--workers", "2", cwd=root).returncode == 0
    listing = cli("runs", cwd=root)
    lines = [line for line in listing.stdout.splitlines()[1:] if " passed " in line]
    assert listing.returncode == 0 and len(lines) == 2


def test_exit_codes_follow_pytest(make_project: MakeProject) -> None:
    root = make_project({"tests/test_a.py": PASS, "tests/test_b.py": FAIL, "docs/x.txt": ""})
    failed = cli("run", "-n", "2", cwd=root)
    assert failed.returncode == 1 and "FAILED   tests/test_b.py" in failed.stdout
    missing = cli("run", "nope", cwd=root)
    assert missing.returncode == 4 and "'nope' does not exist" in missing.stderr
    empty = cli("run", "docs", cwd=root)
    assert empty.returncode == 5 and "no test files found" in empty.stderr
    assert cli("run", "--workers", "x", cwd=root).returncode == 2  # argparse usage error


def test_pytest_arguments_after_double_dash(make_project: MakeProject) -> None:
    root = make_project({"tests/test_a.py": PASS + FAIL})
    out = cli("run", "--", "-k", "ok", cwd=root)
    assert out.returncode == 0, out.stdout  # the failing test was deselected in the child


HELPER_APP = {
    "app/__init__.py": "",
    "app/db.py": (
        "import sqlite3\n"
        "\n"
        "def connect():\n"
        "    con = sqlite3.connect(':memory:')\n"
        "    con.execute('CREATE TABLE books (id INTEGER, author INTEGER)')\n"
        "    return con\n"
        "\n"
        "def fetch(con, sql, params):\n"
        "    return con.execute(sql, params).fetchall()\n"
    ),
    "app/views.py": (
        "from app.db import fetch\n"
        "\n"
        "def shelves(con):\n"
        "    out = []\n"
        "    for author in (1, 2, 3):\n"
        "        out.append(fetch(con, 'SELECT id FROM books WHERE author = ?', (author,)))\n"
        "    return out\n"
    ),
    "tests/test_views.py": (
        "from app.db import connect\n"
        "from app.views import shelves\n"
        "\n"
        "def test_shelves():\n"
        "    assert shelves(connect()) == [[], [], []]\n"
    ),
}


def test_nplus1_names_the_loop_the_sending_helper_and_the_stack(
    make_project: MakeProject,
) -> None:
    root = make_project(HELPER_APP)
    assert cli("run", cwd=root).returncode == 0
    out = cli("nplus1", cwd=root)
    assert out.returncode == 0, out.stderr
    lines = [line.strip() for line in out.stdout.splitlines()]
    assert "1 N+1 findings" in lines[0]
    assert lines[1].startswith("x3") and "app/views.py:6 shelves" in lines[1]
    assert lines[2] == "sent by: app/db.py:9 fetch"
    assert lines[3:6] == [
        "tests/test_views.py:5 test_shelves",
        "> app/views.py:6 shelves",
        "app/db.py:9 fetch",
    ]


def test_ingest_and_schema(make_project: MakeProject, tmp_path: Path) -> None:
    root = make_project({"tests/test_a.py": PASS})
    assert cli("run", cwd=root).returncode == 0
    (run_dir,) = (root / ".devformance" / "runs").iterdir()
    other = tmp_path / "copy.duckdb"
    ingested = cli("ingest", str(run_dir), "--db", str(other), cwd=root)
    assert ingested.returncode == 0 and f"ingested run {run_dir.name}" in ingested.stdout
    schema = cli("schema", "--db", str(other), cwd=root)
    assert f"schema version: {SCHEMA_VERSION} (this devformance_nb: {SCHEMA_VERSION})" in (
        schema.stdout
    )
    assert "test_files" in schema.stdout and "n_plus_one" in schema.stdout
    bad = cli("ingest", str(tmp_path), cwd=root)
    assert bad.returncode == 4 and "not a devformance run directory" in bad.stderr


def test_runs_on_an_empty_project_says_how_to_start(make_project: MakeProject) -> None:
    root = make_project({})
    out = cli("runs", cwd=root)
    assert out.returncode == 3 and "devformance run" in out.stderr


def test_output_into_a_closed_pipe_ends_quietly(make_project: MakeProject) -> None:
    root = make_project({"tests/test_a.py": "def test_a():\n    pass\n"})
    assert cli("run", "--workers", "1", cwd=root).returncode == 0
    # the reader is gone before the first line is written (as `| head -1` on long output)
    shell = f"{sys.executable} -m devformance_nb.cli schema | true; exit ${{PIPESTATUS[0]}}"
    proc = subprocess.run(
        ["bash", "-c", shell], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def test_report_without_the_notebook_extra_names_the_fix(tmp_path: Path) -> None:
    # altair and pandas absent, as after a bare `pip install devformance_nb`
    code = (
        "import sys; sys.modules['altair'] = None; sys.modules['pandas'] = None\n"
        "from devformance_nb.cli.main import main\n"
        f"sys.exit(main(['report', '--html', {str(tmp_path / 'r.html')!r}]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 4, proc.stderr
    assert "pip install 'devformance_nb[notebook]'" in proc.stderr
    assert "Traceback" not in proc.stderr


EAGER_APP = {
    "app/__init__.py": "",
    "app/models.py": (
        "from sqlalchemy import ForeignKey, create_engine\n"
        "from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship\n"
        "\n"
        "class Base(DeclarativeBase):\n"
        "    pass\n"
        "\n"
        "class Author(Base):\n"
        "    __tablename__ = 'authors'\n"
        "    id: Mapped[int] = mapped_column(primary_key=True)\n"
        "    books: Mapped[list['Book']] = relationship()\n"
        "\n"
        "class Book(Base):\n"
        "    __tablename__ = 'books'\n"
        "    id: Mapped[int] = mapped_column(primary_key=True)\n"
        "    author_id: Mapped[int] = mapped_column(ForeignKey('authors.id'))\n"
        "\n"
        "def session():\n"
        "    engine = create_engine('sqlite://')\n"
        "    Base.metadata.create_all(engine)\n"
        "    made = Session(engine)\n"
        "    made.add_all([Author(id=1, books=[Book(id=1)]), Author(id=2)])\n"
        "    made.commit()\n"
        "    return made\n"
    ),
    "tests/test_names.py": (
        "from sqlalchemy import select\n"
        "from sqlalchemy.orm import selectinload\n"
        "from app.models import Author, session\n"
        "\n"
        "def test_names():\n"
        "    query = select(Author).options(selectinload(Author.books))\n"
        "    assert [a.id for a in session().scalars(query)] == [1, 2]\n"
    ),
}


def test_eager_lists_the_loads_a_test_never_read(make_project: MakeProject) -> None:
    root = make_project(EAGER_APP)
    assert cli("run", "--no-coverage", cwd=root).returncode == 0
    out = cli("eager", cwd=root)
    assert out.returncode == 0, out.stderr
    lines = [line.strip() for line in out.stdout.splitlines()]
    assert "1 unused eager loads" in lines[0]
    assert lines[1].startswith("Author.books  tests/test_names.py:7 test_names")
    assert "drop the option" in lines[2]
