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
    if any(isinstance(node, pytest.Module) for node in result):
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(os.fspath(file_path) + "\n")
    return []
