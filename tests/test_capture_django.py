"""SQL capture of Django, wired into the real plugin in a real pytest child (pytester).

The child configures Django itself (two SQLite aliases, no pytest-django), so these tests
run in their own process and never configure Django in this one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devformance_nb.core import events as ev
from devformance_nb.core.contract import ChildOptions
from devformance_nb.core.eventlog import read_events

pytest_plugins = ["pytester"]

CONFTEST = """
import os

import django
from django.conf import settings

def sqlite(name):
    path = os.path.join(os.environ["DB_DIR"], name)
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": path}

settings.configure(
    DATABASES={"default": sqlite("a.db"), "other": sqlite("b.db")}, INSTALLED_APPS=[], USE_TZ=True
)
django.setup()
"""

SUITE = """
import threading

from django.db import connection, connections, transaction
from django.db.backends.signals import connection_created


def test_aliases_and_vendor():
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    with connections["other"].cursor() as cur:
        cur.execute("SELECT 2")


def test_a_wrapper_block_that_opens_the_connection_keeps_ours():
    other = connections["other"]
    other.close()
    seen = []

    def mine(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with other.execute_wrapper(mine):
        with other.cursor() as cur:  # connects inside the block: ours is added now
            cur.execute("SELECT 3")
    with other.cursor() as cur:
        cur.execute("SELECT 4")
    assert seen == ["SELECT 3"]


def test_connections_of_other_threads():
    def work():
        with connection.cursor() as cur:
            cur.execute("SELECT 5")
        connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()


def test_transactions_savepoints_and_executemany():
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE t (x int)")
    with transaction.atomic():
        with transaction.atomic():
            with connection.cursor() as cur:
                cur.executemany("INSERT INTO t VALUES (%s)", [(1,), (2,)])


def test_zz_stopping_takes_the_wrapper_out():
    from devformance_nb.plugin.capture import session

    assert any(type(w).__name__ == "ExecuteWrapper" for w in connection.execute_wrappers)
    session._active.stop()
    assert connection.execute_wrappers == []
    assert connections["other"].execute_wrappers == []
    assert not connection_created.has_listeners()
    with connection.cursor() as cur:
        cur.execute("SELECT 6")


def test_zz_a_new_capture_wraps_the_connections_already_open():
    import os

    from devformance_nb.plugin.capture import start_capture
    from devformance_nb.core.contract import ChildOptions
    from devformance_nb.core.eventlog import EventWriter
    from devformance_nb.plugin import TestContext

    assert connection.connection is not None  # open since the test before
    writer = EventWriter(os.environ["SECOND_EVENTS"], "run-2", "test_site.py")
    capture = start_capture(writer, TestContext(), ChildOptions(root=os.getcwd()))
    with connection.cursor() as cur:
        cur.execute("SELECT 7")
    capture.stop()
    writer.close()
"""


def child_queries(pytester: pytest.Pytester, tmp_path: Path, file: str) -> list[ev.Query]:
    """Run the child's test ``file`` (made already) with the plugin; its statements."""
    events_path = tmp_path / "events.jsonl"
    env = {
        "DEVFORMANCE_EVENTS": str(events_path),
        "DEVFORMANCE_RUN_ID": "run-1",
        "DEVFORMANCE_FILE": file,
        "DEVFORMANCE_OPTIONS": ChildOptions(root=str(pytester.path)).to_env(),
        "DB_DIR": str(tmp_path),
        "SECOND_EVENTS": str(tmp_path / "second.jsonl"),
    }
    for name, value in env.items():
        pytester._monkeypatch.setenv(name, value)
    result = pytester.runpytest_subprocess("-p", "devformance_nb.plugin", "-p", "no:django")
    assert result.ret == 0, result.stdout.str()
    return [e for e in read_events(events_path) if isinstance(e, ev.Query)]


def run_child(pytester: pytest.Pytester, tmp_path: Path) -> list[ev.Query]:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_site=SUITE)
    return child_queries(pytester, tmp_path, "test_site.py")


def test_django_statements_once_each_with_alias_vendor_and_orm(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    queries = run_child(pytester, tmp_path)
    by_test: dict[str, list[ev.Query]] = {}
    for q in queries:
        by_test.setdefault(q.nodeid.partition("::")[2], []).append(q)
    # every ORM statement once, tagged by Django, named by the Django alias
    selects = [(q.sql, q.alias, q.orm, q.vendor) for q in queries if q.sql.startswith("SELECT")]
    assert selects == [
        ("SELECT 1", "default", "django", "sqlite"),
        ("SELECT 2", "other", "django", "sqlite"),
        ("SELECT 3", "other", "django", "sqlite"),
        ("SELECT 4", "other", "django", "sqlite"),
        ("SELECT 5", "default", "django", "sqlite"),
    ]
    # a new thread opens its own connection: wrapped when Django creates it
    threaded = by_test["test_connections_of_other_threads"]
    assert [q.sql.split(" ")[0] for q in threaded] == ["select", "PRAGMA", "PRAGMA", "SELECT"]
    assert {q.caller.split(" ")[-1] for q in threaded} == {
        "test_connections_of_other_threads.<locals>.work"
    }
    transaction = by_test["test_transactions_savepoints_and_executemany"]
    kinds = [q.sql.split(" ")[0] for q in transaction]
    assert kinds == ["CREATE", "BEGIN", "SAVEPOINT", "INSERT", "RELEASE"]
    assert all(q.orm == "django" for q in transaction)
    insert = transaction[3]
    assert (insert.many, insert.rows) == (True, 2)
    # what Django runs on the driver's connection as it connects is recorded, untagged
    assert {q.sql.split(" ")[0] for q in queries if q.orm == ""} == {"select", "PRAGMA"}
    # after stop: nothing
    assert "test_zz_stopping_takes_the_wrapper_out" not in by_test
    # a capture started later wraps the connection that is open already
    (late,) = [e for e in read_events(tmp_path / "second.jsonl") if isinstance(e, ev.Query)]
    assert (late.sql, late.orm, late.alias) == ("SELECT 7", "django", "default")


def test_capture_imports_neither_django_nor_psycopg(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(
        test_plain="""
        import sys

        def test_untouched():
            assert not {"django", "psycopg", "psycopg2"} & set(sys.modules)
        """
    )
    events_path = tmp_path / "events.jsonl"
    pytester._monkeypatch.setenv("DEVFORMANCE_EVENTS", str(events_path))
    pytester._monkeypatch.setenv(
        "DEVFORMANCE_OPTIONS", ChildOptions(root=str(pytester.path)).to_env()
    )
    result = pytester.runpytest_subprocess("-p", "devformance_nb.plugin")
    assert result.ret == 0, result.stdout.str()
    assert any(isinstance(e, ev.FileDone) for e in read_events(events_path))


MIGRATING_CONFTEST = """
import os

import django
from django.conf import settings

settings.configure(
    DATABASES={"default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(os.environ["DB_DIR"], "migrated.db"),
    }},
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
    USE_TZ=True,
)
django.setup()

import pytest
from django.core.management import call_command
from django.db.models.signals import post_migrate

import hooks

post_migrate.connect(hooks.count_permissions)


@pytest.fixture(autouse=True, scope="session")
def migrated():
    call_command("migrate", verbosity=0)
"""

#: project code that queries once per permission: run by migrate's post_migrate signal (set-up
#: work, whatever project frames it has) and by a test (an N+1)
HOOKS = """
def count_permissions(**kwargs):
    from django.contrib.auth.models import Permission

    return [Permission.objects.filter(pk=p.pk).count() for p in Permission.objects.all()]
"""

MIGRATING_SUITE = """
import hooks


def test_the_same_loop_outside_migrate():
    assert sum(hooks.count_permissions()) > 2
"""


def test_statements_of_a_migration_are_set_up_work_even_from_project_code(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    from devformance_nb.logic.detection import find_n_plus_one

    pytester.makeconftest(MIGRATING_CONFTEST)
    pytester.makepyfile(hooks=HOOKS, test_migrating=MIGRATING_SUITE)
    queries = child_queries(pytester, tmp_path, "test_migrating.py")
    during = [q for q in queries if q.phase == "setup" and q.caller]
    # the post_migrate hook's statements (and the migrations', called from the conftest) have
    # the project's frame to change, but no stack: they ran under migrate, never grouped
    assert sum(1 for q in during if q.caller.startswith("hooks.py:")) > 4
    assert {q.stack_hash for q in during} == {""}
    found = find_n_plus_one(queries)
    loop = next(n for n, line in enumerate(HOOKS.lstrip("\n").splitlines(), 1) if "[" in line)
    assert [(f.phase, f.caller.split(" ")[0], f.table) for f in found] == [
        ("call", f"hooks.py:{loop}", "auth_permission")
    ]
