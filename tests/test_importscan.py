"""Installed libraries a project imports, found statically (what a fork server may preload)."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import MakeProject

from devformance_nb.logic.importscan import installed_imports, module_file, server_imports

pytestmark = pytest.mark.quick


def test_only_installed_libraries_of_non_test_code(make_project: MakeProject) -> None:
    root = make_project(
        {
            "app/__init__.py": "import json\nfrom . import models\n",
            "app/models.py": "from sqlalchemy.orm import Session\nimport app.helpers\n",
            "app/helpers.py": "import sqlparse, not_installed_anywhere\n",
            "app/optional.py": "import importlib\npd = importlib.import_module('pandas')\n",
            "app/broken.py": "def oops(:\n",
            "tests/conftest.py": "import pytest\n",
            "tests/test_app.py": "import duckdb\n",
            "tests/app_test.py": "import vl_convert\n",
            ".venv/pyvenv.cfg": "home = /usr\n",
            ".venv/lib/thing.py": "import altair\n",
            "env2/pyvenv.cfg": "home = /usr\n",
            "env2/x.py": "import ipywidgets\n",
        }
    )
    # stdlib, the project's own modules, test modules, virtualenvs and broken files: left out
    assert installed_imports(root) == ["pandas", "pytest", "sqlalchemy.orm", "sqlparse"]


def _installed_library(site: Path, files: dict[str, str]) -> None:
    for rel, source in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")


def test_test_infrastructure_and_its_package_are_left_to_the_children(
    make_project: MakeProject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "lib" / "site-packages"
    _installed_library(
        site,
        {
            "fakeorm/__init__.py": "",
            "fakeorm/engine.py": "ENGINE = 1\n",
            "fakeorm/testing/__init__.py": "from . import config\n",
            "fakeorm/testing/config.py": "options = []\n",
            "fakeorm/testing/assertions.py": "def eq_(a, b):\n    assert a == b\n",
            "fakeorm/testing/plugin/__init__.py": "",
            "fakeorm/testing/plugin/pytestplugin.py": """
                def pytest_configure(config):
                    pass
            """,
            "fakeplug.py": "import pytest\n",
            "fakeplug_helpers/__init__.py": "",
            "fakeplug_helpers/tools.py": "TOOLS = 1\n",
        },
    )
    monkeypatch.syspath_prepend(os.fspath(site))
    root = make_project(
        {
            "app/models.py": "import fakeorm.engine\n",
            "tests/conftest.py": """
                import pytest
                pytest.register_assert_rewrite("fakeorm.testing.assertions")
                from fakeorm.testing.plugin.pytestplugin import *
                import fakeorm.testing.config
                import fakeplug
                import fakeplug_helpers.tools
            """,
        }
    )
    imported, left_out = server_imports(root)
    # a plugin (hooks or `import pytest`) and a module pytest is asked to rewrite fence off
    # the package they sit in; the library itself and unrelated helpers stay warm
    assert imported == ["fakeorm.engine", "fakeplug_helpers.tools", "pytest"]
    assert left_out == [
        "fakeorm.testing.config",
        "fakeorm.testing.plugin.pytestplugin",
        "fakeplug",
    ]


def test_module_file_never_imports_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site-packages"
    _installed_library(
        site,
        {
            "noisy/__init__.py": "raise RuntimeError('imported')\n",
            "noisy/sub/__init__.py": "",
            "noisy/sub/mod.py": "",
        },
    )
    monkeypatch.syspath_prepend(os.fspath(site))
    assert module_file("noisy.sub.mod") == site / "noisy" / "sub" / "mod.py"
    assert module_file("noisy.sub") == site / "noisy" / "sub" / "__init__.py"
    assert module_file("noisy.missing") is None
    assert "noisy" not in sys.modules
