"""Installed libraries a project imports, found statically (what a fork server may preload)."""

from __future__ import annotations

from conftest import MakeProject

from devformance_nb.logic.importscan import installed_imports


def test_only_installed_libraries_of_non_test_code(make_project: MakeProject) -> None:
    root = make_project(
        {
            "app/__init__.py": "import json\nfrom . import models\n",
            "app/models.py": "from sqlalchemy.orm import Session\nimport app.helpers\n",
            "app/helpers.py": "import sqlparse, not_installed_anywhere\n",
            "app/broken.py": "def oops(:\n",
            "tests/conftest.py": "import pytest\n",
            "tests/test_app.py": "import duckdb\n",
            "tests/app_test.py": "import pandas\n",
            ".venv/pyvenv.cfg": "home = /usr\n",
            ".venv/lib/thing.py": "import altair\n",
            "env2/pyvenv.cfg": "home = /usr\n",
            "env2/x.py": "import ipywidgets\n",
        }
    )
    # stdlib, the project's own modules, test modules, virtualenvs and broken files: left out
    assert installed_imports(root) == ["pytest", "sqlalchemy.orm", "sqlparse"]
