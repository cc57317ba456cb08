"""What a child read (plugin/reads.py): data files opened under the root, modules imported,
recorded beside its events file, in real children of both executors."""

from __future__ import annotations

from pathlib import Path

from conftest import MakeProject

from devformance_nb.api.facade import run_tests
from devformance_nb.core.rundir import RunDir
from devformance_nb.plugin.reads import read_reads


def test_a_child_records_the_project_files_it_read(
    make_project: MakeProject, executor: str
) -> None:
    root = make_project(
        {
            "app/__init__.py": "",
            "app/prices.py": "PRICE = 3\n",
            "data/prices.csv": "a,3\n",
            "tests/test_read.py": """\
                import os
                from pathlib import Path
                from app.prices import PRICE

                HERE = Path(__file__).parent

                def test_read(tmp_path):
                    assert (HERE.parent / "data" / "prices.csv").read_text() == "a,3\\n"
                    with open(os.path.join(str(HERE.parent), "data", "prices.csv"), "rb"):
                        pass
                    (HERE.parent / "out.txt").write_text("written")  # written: not a read
                    (tmp_path / "x.txt").write_text("elsewhere")
                    # folders, one named relative to a dir_fd (as shutil.rmtree does)
                    (tmp_path / "old" / "inner").mkdir(parents=True)
                    top = os.open(str(tmp_path / "old"), os.O_RDONLY)
                    os.close(os.open("inner", os.O_RDONLY, dir_fd=top))
                    os.close(top)
                    os.close(os.open(str(HERE.parent / "data"), os.O_RDONLY))
                    assert PRICE == 3
                """,
        }
    )
    run = run_tests(root=root, executor=executor, store=False)
    assert run.status == "passed"
    record = read_reads(str(RunDir(run.run_dir).reads_path("tests/test_read.py")))
    assert record is not None
    opened, imported = record
    assert "data/prices.csv" in opened
    assert "out.txt" not in opened
    assert "inner" not in opened and "data" not in opened  # folders are not data files
    assert not any(p.startswith(".devformance/") for p in opened | imported)
    assert all(p.startswith(("app/", "tests/", "conftest")) for p in imported), imported
    assert {"app/prices.py", "tests/test_read.py"} <= imported


def test_no_record_reads_as_none(tmp_path: Path) -> None:
    assert read_reads(str(tmp_path / "missing.reads.txt")) is None
