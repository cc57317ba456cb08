"""Pure rules of change-based selection (logic/selection.py): blocks, changes, decisions."""

from __future__ import annotations

import textwrap

import pytest

from devformance_nb.logic.selection import (
    MODULE,
    PACKAGES,
    PYTHON,
    Baseline,
    FileChange,
    block_changes,
    blocks_of,
    decide,
    executed_blocks,
    is_global,
    ranges,
)

pytestmark = pytest.mark.quick

SOURCE = textwrap.dedent(
    """\
    RATE = 2


    def total(n):
        return n * RATE


    class Cart:
        size = 3

        def add(self, item):
            def check(x):
                return x
            return check(item)
    """
)


def names(source: str) -> dict[str, tuple[int, int]]:
    blocks = blocks_of(source)
    assert blocks is not None
    return {b.name: (b.start, b.end) for b in blocks}


def test_blocks_are_function_bodies_and_the_module() -> None:
    assert names(SOURCE) == {
        "total": (5, 5),
        "Cart.add": (12, 14),
        "Cart.add.check": (13, 13),
        MODULE: (1, 15),
    }


def test_moving_code_or_editing_comments_changes_no_block() -> None:
    moved = "\n\n# a comment\n" + SOURCE.replace("return n * RATE", "return n * RATE  # why")
    assert block_changes("m.py", blocks_of(SOURCE), blocks_of(moved)) is None


def test_a_function_change_names_that_function_with_its_old_lines() -> None:
    changed = block_changes("m.py", blocks_of(SOURCE), blocks_of(SOURCE.replace("n * RATE", "n")))
    assert changed == FileChange("m.py", {"total": (5, 5)})
    assert changed.describe(["total"]) == "m.py:5 changed"


def test_a_nested_change_changes_its_parents_too() -> None:
    changed = block_changes(
        "m.py", blocks_of(SOURCE), blocks_of(SOURCE.replace("return x", "return -x"))
    )
    assert changed is not None and changed.blocks is not None
    assert set(changed.blocks) == {"Cart.add", "Cart.add.check"}


@pytest.mark.parametrize(
    "edit",
    [
        ("RATE = 2", "RATE = 3"),  # a constant
        ("size = 3", "size = 4"),  # a class attribute
        ("def total(n):", "def total(n, m=1):"),  # a signature
    ],
)
def test_module_level_changes_change_the_module_block(edit: tuple[str, str]) -> None:
    changed = block_changes("m.py", blocks_of(SOURCE), blocks_of(SOURCE.replace(*edit)))
    assert changed is not None and changed.blocks is not None and MODULE in changed.blocks


def test_a_renamed_function_is_a_change_of_the_old_name() -> None:
    renamed = SOURCE.replace("def total(", "def grand_total(")
    changed = block_changes("m.py", blocks_of(SOURCE), blocks_of(renamed))
    assert changed is not None and changed.blocks is not None
    assert "total" in changed.blocks


def test_unparsable_python_is_a_whole_file_change() -> None:
    assert blocks_of("def (:") is None
    assert block_changes("m.py", blocks_of(SOURCE), None) == FileChange("m.py")


def test_executed_lines_map_to_blocks() -> None:
    blocks = blocks_of(SOURCE)
    assert blocks is not None
    assert executed_blocks(blocks, [1, 4]) == [MODULE]  # import time: the def line
    assert executed_blocks(blocks, [5]) == ["total"]
    assert executed_blocks(blocks, [13]) == ["Cart.add", "Cart.add.check"]


def test_every_line_maps_to_the_functions_that_hold_it() -> None:
    """Each line alone: the functions whose body holds it (nested ones too), else the module."""
    blocks = blocks_of(SOURCE)
    assert blocks is not None
    functions = [b for b in blocks if b.name != MODULE]
    for line in range(1, len(SOURCE.splitlines()) + 2):
        holding = sorted({b.name for b in functions if b.start <= line <= b.end})
        assert executed_blocks(blocks, [line]) == (holding or [MODULE]), line
    every = range(1, len(SOURCE.splitlines()) + 1)
    assert executed_blocks(blocks, every) == sorted({MODULE, *(b.name for b in functions)})


def test_ranges() -> None:
    assert ranges([7, 1, 2, 3, 3]) == [(1, 3), (7, 7)]
    assert ranges([]) == []


def test_global_paths() -> None:
    assert is_global("conftest.py") and is_global("tests/conftest.py")
    assert is_global("pyproject.toml") and is_global(PACKAGES)
    assert not is_global("sub/pyproject.toml") and not is_global("app/conf.py")


def base(status: str = "passed", **kw: object) -> Baseline:
    b = Baseline("R1", status)
    for k, v in kw.items():
        setattr(b, k, v)
    return b


def test_decide_each_rule() -> None:
    baselines = {
        "t_total.py": base(executed={"m.py": ["total", MODULE]}),
        "t_add.py": base(executed={"m.py": ["Cart.add", MODULE]}),
        "t_data.py": base(opened={"data/x.csv"}),
        "t_failed.py": base("failed"),
        "t_crashed.py": base("crashed"),
        "t_flaky.py": base(flaky=True),
        "t_self.py": base(),
        "t_helper.py": base(executed={"helper.py": None}),
    }
    changes = {
        "m.py": FileChange("m.py", {"total": (5, 6)}),
        "data/x.csv": FileChange("data/x.csv"),
        "t_self.py": FileChange("t_self.py"),
        "helper.py": FileChange("helper.py"),
    }
    files = [*baselines, "t_new.py"]
    got = {d.file: d for d in decide(files, baselines, changes)}
    assert got["t_total.py"].run
    assert got["t_total.py"].reason == "m.py:5-6 changed, executed by this file in run R1"
    assert not got["t_add.py"].run and got["t_add.py"].carried_from == "R1"
    assert got["t_data.py"].reason == "data/x.csv changed, opened by this file in run R1"
    assert got["t_failed.py"].reason == "failed in run R1"
    assert got["t_crashed.py"].run and got["t_flaky.py"].run
    assert got["t_self.py"].reason == "t_self.py changed (the test file itself)"
    assert got["t_helper.py"].reason == "helper.py changed, executed by this file in run R1"
    assert got["t_new.py"].run and got["t_new.py"].reason.startswith("new")


def test_decide_a_global_change_runs_everything() -> None:
    baselines = {"a.py": base(), "b.py": base()}
    got = decide(
        ["a.py", "b.py"], baselines, {"tests/conftest.py": FileChange("tests/conftest.py")}
    )
    assert all(d.run for d in got)
    assert got[0].reason == "tests/conftest.py changed (affects every file)"


def test_decide_nothing_changed_carries_everything() -> None:
    got = decide(["a.py"], {"a.py": base()}, {})
    assert got[0].run is False and got[0].carried_from == "R1"


def test_the_interpreter_and_packages_are_named_in_words() -> None:
    assert FileChange(PYTHON).describe() == "the Python version changed"
    assert FileChange(PACKAGES).describe() == "the installed packages changed"


PROPERTY = textwrap.dedent(
    """\
    class Field:
        @property
        def validators(self):
            return self._validators

        @validators.setter
        def validators(self, value):
            self._validators = value

    def other():
        return 1
    """
)


def test_a_name_defined_twice_keeps_two_blocks() -> None:
    # found on djangorestframework: a property's getter and setter under one name made every
    # edit elsewhere in the module report the getter changed (and run every file using it)
    blocks = blocks_of(PROPERTY)
    assert blocks is not None
    assert [b.name for b in blocks] == ["Field.validators", "Field.validators#2", "other", MODULE]
    edited = blocks_of(PROPERTY.replace("return 1", "return 2"))
    assert block_changes("f.py", blocks, edited) == FileChange("f.py", {"other": (11, 11)})
    setter = blocks_of(PROPERTY.replace("= value", "= list(value)"))
    assert block_changes("f.py", blocks, setter) == FileChange(
        "f.py", {"Field.validators#2": (8, 8)}
    )
