"""Django's lazy loads named by the capture, in a real pytest child with a real Django app.

The child configures Django itself (one SQLite database, a small app, no pytest-django), so
Django is never configured in this process. Each test of the child loads one kind of relation
lazily (or does not); the events it writes must name the relation, the size of the result the
instance came from and the exact fix, and nothing else may be marked.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from devformance_nb.core import events as ev
from devformance_nb.core.contract import ChildOptions
from devformance_nb.core.eventlog import read_events
from devformance_nb.plugin.capture.djangoloads import PEERS, mark_peers, peers_of

pytest_plugins = ["pytester"]

MODELS = """
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=40)
    bio = models.TextField(default="")

    class Meta:
        app_label = "shelf"


class Profile(models.Model):
    author = models.OneToOneField(Author, on_delete=models.CASCADE, related_name="profile")
    site = models.CharField(max_length=40)

    class Meta:
        app_label = "shelf"


class Tag(models.Model):
    label = models.CharField(max_length=20)

    class Meta:
        app_label = "shelf"


class Note(models.Model):
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.PositiveIntegerField()
    target = GenericForeignKey("content_type", "object_id")

    class Meta:
        app_label = "shelf"


class Book(models.Model):
    title = models.CharField(max_length=40)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    tags = models.ManyToManyField(Tag, related_name="books")

    class Meta:
        app_label = "shelf"
"""

CONFTEST = """
import os

import django
from django.conf import settings

settings.configure(
    DATABASES={"default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(os.environ["DB_DIR"], "shelf.db"),
    }},
    INSTALLED_APPS=["django.contrib.contenttypes", "shelf"],
    USE_TZ=True,
)
django.setup()

import pytest
from django.db import connection


@pytest.fixture(scope="session", autouse=True)
def seeded():
    from django.contrib.contenttypes.models import ContentType
    from shelf.models import Author, Book, Note, Profile, Tag

    with connection.schema_editor() as editor:
        for model in (ContentType, Author, Profile, Tag, Book, Note):
            editor.create_model(model)
    tags = [Tag.objects.create(label=f"t{i}") for i in range(2)]
    for i in range(3):
        author = Author.objects.create(name=f"a{i}")
        Profile.objects.create(author=author, site=f"s{i}")
        for j in range(2):
            book = Book.objects.create(title=f"b{i}{j}", author=author)
            book.tags.set(tags)
        Note.objects.create(target=author)
"""

SUITE = """
from django.db.models import Prefetch

from shelf.models import Author, Book


def test_forward_foreign_key():
    assert [book.author.name for book in Book.objects.order_by("id")][0] == "a0"


def test_reverse_foreign_key():
    assert [len(a.books.order_by("title")) for a in Author.objects.order_by("id")] == [2, 2, 2]


def test_many_to_many():
    assert [len(list(b.tags.all())) for b in Book.objects.order_by("id")[:3]] == [2, 2, 2]


def test_reverse_one_to_one():
    assert [a.profile.site for a in Author.objects.order_by("id")] == ["s0", "s1", "s2"]


def test_deferred_field():
    assert [a.bio for a in Author.objects.defer("bio").order_by("id")] == ["", "", ""]


def test_loaded_with_the_parents():
    authors = Author.objects.select_related("profile").prefetch_related("books__tags")
    assert [len(a.books.all()) for a in authors] == [2, 2, 2]
    assert [a.profile.site for a in authors] == ["s0", "s1", "s2"]
    books = Book.objects.select_related("author").prefetch_related(Prefetch("tags"))
    assert {b.author.name for b in books} == {"a0", "a1", "a2"}


def test_generic_foreign_key():
    from shelf.models import Note

    assert [note.target.name for note in Note.objects.order_by("id")] == ["a0", "a1", "a2"]


def test_eager_loads_never_read():
    assert [b.title for b in Book.objects.select_related("author").order_by("id")][0] == "b00"
    assert len(list(Author.objects.prefetch_related("books__tags"))) == 3


PREFETCHED = Author.objects.prefetch_related("books")


def test_an_eager_load_built_in_one_place_and_run_in_another():
    assert len(list(PREFETCHED.order_by("id"))) == 3


def test_eager_loads_not_tracked():
    # every foreign key (no names), and a Prefetch read as a plain attribute
    assert len(list(Book.objects.select_related())) == 6
    authors = Author.objects.prefetch_related(Prefetch("books", to_attr="listed"))
    assert len(list(authors)) == 3


BOOKS = Book.objects.all()


def titles_by(books):
    return [book.author.name for book in books.order_by("id")]


def test_built_in_one_place_run_in_another():
    assert titles_by(BOOKS)[0] == "a0"


def test_querysets_still_pickle():
    import pickle

    # two querysets built in one function: the second line is stamped in the capture's
    # cheapest form, which must still be a plain text
    authors = Author.objects.order_by("id")
    backwards = Author.objects.order_by("-id")
    for query in (authors, backwards):
        assert str(pickle.loads(pickle.dumps(query.query))) == str(query.query)
    assert [a.name for a in pickle.loads(pickle.dumps(backwards))] == ["a2", "a1", "a0"]


def test_one_author_alone():
    author = Author.objects.get(name="a1")
    assert [b.title for b in author.books.all()] == ["b10", "b11"]
"""


def run_child(pytester: pytest.Pytester, tmp_path: Path) -> dict[str, list[ev.Event]]:
    """Run the suite with the plugin in a child; its SELECTs (and eager loads never read) by
    test name."""
    pytester.mkpydir("shelf")
    pytester.path.joinpath("shelf", "models.py").write_text(MODELS)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_loads=SUITE)
    events_path = tmp_path / "events.jsonl"
    env = {
        "DEVFORMANCE_EVENTS": str(events_path),
        "DEVFORMANCE_RUN_ID": "run-1",
        "DEVFORMANCE_FILE": "test_loads.py",
        "DEVFORMANCE_OPTIONS": ChildOptions(root=str(pytester.path)).to_env(),
        "DB_DIR": str(tmp_path),
    }
    for name, value in env.items():
        pytester._monkeypatch.setenv(name, value)
    result = pytester.runpytest_subprocess("-p", "devformance_nb.plugin", "-p", "no:django")
    assert result.ret == 0, result.stdout.str()
    by_test: dict[str, list[ev.Event]] = {}
    for event in read_events(events_path):
        if isinstance(event, ev.EagerUnused) or (
            isinstance(event, ev.Query) and event.phase == "call" and event.sql.startswith("SELECT")
        ):
            by_test.setdefault(event.nodeid.partition("::")[2], []).append(event)
    return by_test


def line_of(text: str) -> int:
    """The line of the child's test file that holds ``text``."""
    lines = SUITE.lstrip("\n").splitlines()  # as pytester writes it
    return next(n for n, line in enumerate(lines, start=1) if text in line)


def marks(events: list[ev.Event]) -> list[tuple[str, int, str]]:
    return [(q.relation, q.peers, q.fix) for q in events if isinstance(q, ev.Query)]


def unused(events: list[ev.Event]) -> list[tuple[str, str, str, int]]:
    """(relation, option, call site's function, count) of the eager loads never read."""
    return [
        (e.relation, e.option, e.caller.rpartition(" ")[2], e.count)
        for e in events
        if isinstance(e, ev.EagerUnused)
    ]


def test_each_kind_of_lazy_load_is_named_with_its_fix_and_eager_loads_are_not(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    by_test = run_child(pytester, tmp_path)
    # the parents' own query is not a lazy load; each load after it names the relation
    parents, *loads = by_test["test_forward_foreign_key"]
    assert marks([parents]) == [("", 0, "")]
    assert marks(loads) == [("Book.author", 6, '.select_related("author")')] * 6
    # the line to change: where the parents' queryset was built (its clones keep it)
    built = [q.query_at for q in loads if isinstance(q, ev.Query)]
    assert (
        built == [f"test_loads.py:{line_of('Book.objects.order_by')} test_forward_foreign_key"] * 6
    )
    _, *loads = by_test["test_reverse_foreign_key"]
    assert marks(loads) == [("Author.books", 3, '.prefetch_related("books")')] * 3
    built = [q.query_at for q in loads if isinstance(q, ev.Query)]
    assert (
        built
        == [f"test_loads.py:{line_of('Author.objects.order_by')} test_reverse_foreign_key"] * 3
    )
    _, *loads = by_test["test_many_to_many"]
    assert marks(loads) == [("Book.tags", 3, '.prefetch_related("tags")')] * 3
    _, *loads = by_test["test_reverse_one_to_one"]
    assert marks(loads) == [("Author.profile", 3, '.select_related("profile")')] * 3
    _, *loads = by_test["test_generic_foreign_key"]
    assert marks(loads) == [("Note.target", 3, '.prefetch_related("target")')] * 3
    _, *loads = by_test["test_deferred_field"]
    deferred = 'load "bio" with the rows: drop it from .defer(...) or add it to .only(...)'
    assert marks(loads) == [("Author.bio", 3, deferred)] * 3
    # select_related and prefetch_related (nested too, and through Prefetch): no lazy load
    eager = [q for q in by_test["test_loaded_with_the_parents"] if isinstance(q, ev.Query)]
    assert len(eager) == 5 and {q.relation for q in eager} == {""}
    # one author fetched alone: its books load lazily, for a result of one row
    _, *loads = by_test["test_built_in_one_place_run_in_another"]
    built = {q.query_at for q in loads if isinstance(q, ev.Query)}
    assert built == {f"test_loads.py:{line_of('BOOKS = ')} <module>"}
    alone, books = by_test["test_one_author_alone"]
    assert marks([alone, books]) == [("", 0, ""), ("Author.books", 1, '.prefetch_related("books")')]


def test_eager_loads_never_read_are_reported_at_their_queryset(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    by_test = run_child(pytester, tmp_path)
    # read: the profile, the books and the author; never read: the books' tags
    assert unused(by_test["test_loaded_with_the_parents"]) == [
        ("Book.tags", '.prefetch_related("tags")', "test_loaded_with_the_parents", 1)
    ]
    assert unused(by_test["test_eager_loads_never_read"]) == [
        ("Book.author", '.select_related("author")', "test_eager_loads_never_read", 1),
        ("Author.books", '.prefetch_related("books__tags")', "test_eager_loads_never_read", 1),
    ]
    # the option to drop is where the queryset was built
    assert unused(by_test["test_an_eager_load_built_in_one_place_and_run_in_another"]) == [
        ("Author.books", '.prefetch_related("books")', "<module>", 1)
    ]
    assert unused(by_test["test_eager_loads_not_tracked"]) == []
    for name in ("test_forward_foreign_key", "test_reverse_foreign_key", "test_one_author_alone"):
        assert unused(by_test[name]) == []


def test_peers_are_marked_on_multi_row_results_only() -> None:
    rows = [SimpleNamespace(_state=SimpleNamespace()) for _ in range(3)]
    mark_peers(rows)
    assert [peers_of(row) for row in rows] == [3, 3, 3]
    alone = [SimpleNamespace(_state=SimpleNamespace())]
    mark_peers(alone)
    assert not hasattr(alone[0]._state, PEERS) and peers_of(alone[0]) == 1
    mark_peers([{"id": 1}, {"id": 2}])  # values(): dictionaries, never marked
    assert peers_of({"id": 1}) == 1
