"""A pytest plugin that lists the test modules pytest would collect, without importing them.

Discovery runs ``pytest --collect-only -p devformance_nb.plugin.collector`` in a child,
so pytest itself applies ``testpaths``, ``python_files``, ``norecursedirs``,
``--ignore``, ``collect_ignore`` in conftest files and rootdir rules. Each
module pytest would collect is written to the file named by
``DEVFORMANCE_COLLECT_OUT`` and then dropped, so no test module is imported
(a file with a syntax error is still listed; its own run reports the error).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest

ENV_OUT = "DEVFORMANCE_COLLECT_OUT"


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(
    file_path: Path, parent: pytest.Collector
) -> Generator[None, list[pytest.Collector], list[pytest.Collector]]:
    """Record python test modules; hand pytest nothing to import."""
    result = yield
    out = os.environ.get(ENV_OUT)
    if out is None:  # loaded by hand without the launcher: stay out of the way
        return result
    if any(_is_test_module(node) for node in result):
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(os.fspath(file_path) + "\n")
    return []


def _is_test_module(node: pytest.Collector) -> bool:
    """A test module, not a package: pytest 7's ``Package`` (a package's ``__init__.py``) is
    a ``Module`` too, and running it as a file would run the whole package again."""
    package = getattr(pytest, "Package", None)
    return isinstance(node, pytest.Module) and not (package and isinstance(node, package))
