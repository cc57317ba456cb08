"""SQLAlchemy's lazy loads named by the capture: relation, peers and fix, with real sessions."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import ForeignKey, String, create_engine, delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    joinedload,
    mapped_column,
    relationship,
    selectinload,
)

from devformance_nb.core import events as ev
from devformance_nb.core.contract import ChildOptions
from devformance_nb.core.eventlog import EventWriter, read_events
from devformance_nb.plugin import TestContext
from devformance_nb.plugin.capture import Capture, sqlaloads, start_capture

REPO = Path(__file__).resolve().parent.parent
HERE = "tests/test_sqlaloads.py"
BOOKS = ("Writer.books", ".options(selectinload(Writer.books))")
WRITER = ("Volume.writer", ".options(joinedload(Volume.writer))")


class Base(AsyncAttrs, DeclarativeBase):
    pass


class Writer(Base):
    __tablename__ = "writers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))
    books: Mapped[list[Volume]] = relationship(back_populates="writer", order_by="Volume.id")


class Volume(Base):
    __tablename__ = "volumes"
    id: Mapped[int] = mapped_column(primary_key=True)
    writer_id: Mapped[int] = mapped_column(ForeignKey("writers.id"))
    writer: Mapped[Writer] = relationship(back_populates="books")
    notes: Mapped[list[Note]] = relationship(order_by="Note.id")


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    volume_id: Mapped[int] = mapped_column(ForeignKey("volumes.id"))


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    made = create_engine(f"sqlite:///{tmp_path_factory.mktemp('loads') / 'loads.db'}")
    Base.metadata.create_all(made)
    with Session(made) as session:
        session.add_all(Writer(name=f"w{i}", books=[Volume(), Volume()]) for i in range(3))
        session.commit()
    yield made
    made.dispose()


class Loads:
    """A capture in this process; ``marks()`` stops it and returns the SELECTs' marks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer = EventWriter(path, "run-1", HERE)
        context = TestContext()
        context.nodeid, context.phase = f"{HERE}::case", "call"
        self.capture: Capture = start_capture(self.writer, context, ChildOptions(root=str(REPO)))

    def selects(self) -> list[ev.Query]:
        self.capture.stop()
        self.writer.close()
        return [
            q
            for q in read_events(self.path)
            if isinstance(q, ev.Query) and q.sql.startswith("SELECT")
        ]

    def marks(self) -> list[tuple[str, int, str]]:
        return [(q.relation, q.peers, q.fix) for q in self.selects()]


@pytest.fixture
def loads(tmp_path: Path) -> Iterator[Loads]:
    made = Loads(tmp_path / "events.jsonl")
    yield made
    made.capture.stop()
    made.writer.close()


def test_a_collection_loaded_per_parent_names_the_relation(engine: Engine, loads: Loads) -> None:
    with Session(engine) as session:
        writers = session.scalars(select(Writer).order_by(Writer.id)).all()
        assert [len(w.books) for w in writers] == [2, 2, 2]
    assert loads.marks() == [("", 0, ""), *[(*BOOKS[:1], 3, BOOKS[1])] * 3]


def test_a_large_identity_map_is_not_scanned_for_peers(
    engine: Engine, loads: Loads, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlaloads, "MAX_SCANNED", 2)  # three writers in the session
    with Session(engine) as session:
        writers = session.scalars(select(Writer).order_by(Writer.id)).all()
        assert [len(w.books) for w in writers] == [2, 2, 2]
    # still named, but with no peers the ORM's rule leaves it to the repetition rule
    assert loads.marks()[1:4] == [(BOOKS[0], 0, BOOKS[1])] * 3


def test_a_many_to_one_counts_its_parents_of_one_class(engine: Engine, loads: Loads) -> None:
    with Session(engine) as session:
        # six volumes of three writers: the identity map answers every second volume
        volumes = session.scalars(select(Volume).order_by(Volume.id)).all()
        assert {v.writer.name for v in volumes} == {"w0", "w1", "w2"}
    assert loads.marks() == [("", 0, ""), *[(WRITER[0], 6, WRITER[1])] * 3]


def test_a_relation_of_lazily_loaded_rows_gets_the_whole_chain(
    engine: Engine, loads: Loads
) -> None:
    with Session(engine) as session:
        writers = session.scalars(select(Writer).order_by(Writer.id)).all()
        assert [len(v.notes) for w in writers for v in w.books] == [0] * 6
    chain = ".options(selectinload(Writer.books).selectinload(Volume.notes))"
    # per writer: its books (one of three writers), then each book's notes (one of two books)
    per_writer = [(*BOOKS[:1], 3, BOOKS[1]), *[("Volume.notes", 2, chain)] * 2]
    assert loads.marks() == [("", 0, ""), *per_writer * 3]


def test_a_loop_keeps_one_stack_when_some_targets_are_refreshed(
    engine: Engine, loads: Loads
) -> None:
    with Session(engine) as session:
        volumes = session.scalars(select(Volume).order_by(Volume.id)).all()
        session.expire(session.get(Writer, 2))  # expired in the identity map, the others absent
        names = [v.writer.name for v in volumes]  # a lazy load or a refresh per writer
        assert names == ["w0", "w0", "w1", "w1", "w2", "w2"]
    *_, first, second, third = loads.selects()
    # the three statements of the loop: one stack, whichever way each writer was loaded
    assert len({first.stack_hash, second.stack_hash, third.stack_hash}) == 1
    assert {q.relation for q in (first, second, third)} == {"Volume.writer"}


def test_an_instance_fetched_alone_has_no_peers(engine: Engine, loads: Loads) -> None:
    with Session(engine) as session:
        writer = session.get(Writer, 2)
        assert writer is not None and len(writer.books) == 2
        one = session.scalars(select(Writer).where(Writer.name == "w2")).one()
        assert len(one.books) == 2
    assert loads.marks() == [("", 0, ""), (BOOKS[0], 1, BOOKS[1])] * 2


def test_eager_loads_are_not_lazy_loads(engine: Engine, loads: Loads) -> None:
    with Session(engine) as session:
        query = select(Writer).options(selectinload(Writer.books)).order_by(Writer.id)
        assert [len(w.books) for w in session.scalars(query)] == [2, 2, 2]
        joined = select(Volume).options(joinedload(Volume.writer))
        assert len({v.writer.id for v in session.scalars(joined)}) == 3
    assert loads.marks() == [("", 0, "")] * 3


def test_orm_statements_other_than_selects_run_untouched(engine: Engine, loads: Loads) -> None:
    with Session(engine) as session:
        session.execute(insert(Writer).values(name="new"))
        session.execute(update(Writer).where(Writer.name == "new").values(name="newer"))
        session.execute(delete(Writer).where(Writer.name == "newer"))
        session.rollback()
        assert session.scalars(select(Writer.name).order_by(Writer.id)).all() == ["w0", "w1", "w2"]
    assert loads.marks() == [("", 0, "")]


def test_async_lazy_loads_on_a_driver_thread_are_marked_and_only_theirs(
    engine: Engine, loads: Loads
) -> None:
    # SQLAlchemy's asyncio API runs each task's ORM work in a greenlet, aiosqlite each statement
    # in a thread of its own: the load's statements carry the mark across, while another task's
    # statement sent during the load does not
    import asyncio

    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    url = engine.url.set(drivername="sqlite+aiosqlite")

    async def read() -> tuple[list[int], int]:
        made = create_async_engine(url)
        async with AsyncSession(made) as session, AsyncSession(made) as other:
            writers = (await session.scalars(select(Writer).order_by(Writer.id))).all()

            async def books() -> list[int]:
                return [len(await w.awaitable_attrs.books) for w in writers]

            async def names() -> int:
                return len((await other.scalars(select(Writer.name))).all())

            counts, named = await asyncio.gather(books(), names())
        await made.dispose()
        return counts, named

    assert asyncio.run(read()) == ([2, 2, 2], 3)
    selects = loads.selects()
    assert sorted(q.relation for q in selects) == ["", "", *["Writer.books"] * 3]
    assert {(q.peers, q.fix) for q in selects if q.relation} == {(3, BOOKS[1])}
    assert {q.sql.split("FROM")[0].strip() for q in selects if not q.relation} == {
        "SELECT writers.id, writers.name",
        "SELECT writers.name",
    }


def test_mappers_configured_after_the_capture_started_are_marked_too(
    tmp_path: Path, loads: Loads
) -> None:
    class Late(DeclarativeBase):
        pass

    class Shelf(Late):
        __tablename__ = "shelves"
        id: Mapped[int] = mapped_column(primary_key=True)
        slots: Mapped[list[Slot]] = relationship()

    class Slot(Late):
        __tablename__ = "slots"
        id: Mapped[int] = mapped_column(primary_key=True)
        shelf_id: Mapped[int] = mapped_column(ForeignKey("shelves.id"))

    made = create_engine(f"sqlite:///{tmp_path / 'late.db'}")
    Late.metadata.create_all(made)
    with Session(made) as session:
        session.add_all([Shelf(slots=[Slot()]), Shelf(slots=[Slot()])])
        session.commit()
        assert [len(s.slots) for s in session.scalars(select(Shelf)).all()] == [1, 1]
    made.dispose()
    marked = [m for m in loads.marks() if m[0]]
    assert marked == [("Shelf.slots", 2, ".options(selectinload(Shelf.slots))")] * 2


def test_stopping_puts_the_lazy_loader_back(engine: Engine, loads: Loads) -> None:
    impl = Writer.books.impl  # type: ignore[attr-defined]
    wrapped = impl.callable_
    assert wrapped.__func__.__module__ == "devformance_nb.plugin.capture.sqlaloads"
    loads.capture.stop()
    assert impl.callable_.__func__.__module__ == "sqlalchemy.orm.strategies"
    assert impl.callable_.__self__ is wrapped.__self__
    with Session(engine) as session:
        assert len(session.get(Writer, 1).books) == 2  # type: ignore[union-attr]


def test_a_lazy_load_names_the_line_that_ran_its_parents_query(
    engine: Engine, loads: Loads
) -> None:
    with Session(engine) as session:
        writers = session.scalars(select(Writer).order_by(Writer.id)).all()
        here = sys._getframe()
        ran_at = f"{HERE}:{here.f_lineno - 2} {here.f_code.co_name}"
        volumes = [volume for writer in writers for volume in writer.books]
        assert sum(len(volume.notes) for volume in volumes) == 0
    built = {(q.relation, q.query_at) for q in loads.selects() if q.relation}
    # the volumes came from lazy loads of Writer.books: the fix of Volume.notes is a chain on
    # the writers' query too, so both name it
    assert built == {("Writer.books", ran_at), ("Volume.notes", ran_at)}
