"""SQLAlchemy eager loads never read, found by the capture with real sessions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import ForeignKey, String, create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    joinedload,
    mapped_column,
    relationship,
    selectinload,
    subqueryload,
)
from sqlalchemy.orm.attributes import InstrumentedAttribute

from devformance_nb.core import events as ev
from devformance_nb.core.contract import ChildOptions
from devformance_nb.core.eventlog import EventWriter, read_events
from devformance_nb.plugin import TestContext
from devformance_nb.plugin.capture import Capture, start_capture

REPO = Path(__file__).resolve().parent.parent
HERE = "tests/test_sqlaeager.py"


class Base(DeclarativeBase):
    pass


class Shelf(Base):
    __tablename__ = "shelves"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))
    items: Mapped[list[Item]] = relationship(back_populates="shelf", order_by="Item.id")
    # eager by its mapping: not a test's choice, never reported
    labels: Mapped[list[Label]] = relationship(lazy="selectin")


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    shelf_id: Mapped[int] = mapped_column(ForeignKey("shelves.id"))
    shelf: Mapped[Shelf] = relationship(back_populates="items")


class Label(Base):
    __tablename__ = "labels"
    id: Mapped[int] = mapped_column(primary_key=True)
    shelf_id: Mapped[int] = mapped_column(ForeignKey("shelves.id"))


class Corner(Shelf):
    """A subclass (single-table): a read on its rows uses a load of the parent class's rows."""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    made = create_engine(f"sqlite:///{tmp_path_factory.mktemp('eager') / 'eager.db'}")
    Base.metadata.create_all(made)
    with Session(made) as session:
        session.add_all(Shelf(name=f"s{i}", items=[Item(), Item()]) for i in range(3))
        session.commit()
    yield made
    made.dispose()


class Eager:
    """A capture in this process; ``unused()`` ends the test and returns what it reported."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer = EventWriter(path, "run-1", HERE)
        self.context = TestContext()
        self.context.nodeid, self.context.phase = f"{HERE}::case", "call"
        self.capture: Capture = start_capture(
            self.writer, self.context, ChildOptions(root=str(REPO))
        )

    def unused(self) -> list[tuple[str, str, int, str]]:
        self.capture.test_ended()
        self.capture.stop()
        self.writer.close()
        return [
            (e.relation, e.option, e.count, e.caller.split(" ")[-1])
            for e in read_events(self.path)
            if isinstance(e, ev.EagerUnused)
        ]


@pytest.fixture
def eager(tmp_path: Path) -> Iterator[Eager]:
    made = Eager(tmp_path / "events.jsonl")
    yield made
    made.capture.stop()
    made.writer.close()


def shelves(session: Session, *options: object) -> list[Shelf]:
    return list(session.scalars(select(Shelf).options(*options).order_by(Shelf.id)).unique())


def test_a_selectinload_never_read_is_reported_at_its_query(engine: Engine, eager: Eager) -> None:
    with Session(engine) as session:
        found = shelves(session, selectinload(Shelf.items))
        assert [s.name for s in found] == ["s0", "s1", "s2"]
    assert eager.unused() == [
        ("Shelf.items", "selectinload(Shelf.items)", 1, "shelves"),
    ]


def test_a_load_read_on_one_row_is_used(engine: Engine, eager: Eager) -> None:
    with Session(engine) as session:
        found = shelves(session, selectinload(Shelf.items), joinedload(Shelf.labels))
        assert len(found[1].items) == 2
        assert found[0].labels == []
    assert eager.unused() == []


def test_each_kind_of_option_is_named(engine: Engine, eager: Eager) -> None:
    with Session(engine) as session:
        shelves(session, subqueryload(Shelf.items))
        items = session.scalars(select(Item).options(joinedload(Item.shelf))).all()
        assert len(items) == 6
    assert sorted(eager.unused()) == [
        ("Item.shelf", "joinedload(Item.shelf)", 1, "test_each_kind_of_option_is_named"),
        ("Shelf.items", "subqueryload(Shelf.items)", 1, "shelves"),
    ]


def test_the_same_query_in_a_loop_is_one_finding_with_its_count(
    engine: Engine, eager: Eager
) -> None:
    with Session(engine) as session:
        for _ in range(3):
            session.expire_all()
            shelves(session, selectinload(Shelf.items))
    assert eager.unused() == [("Shelf.items", "selectinload(Shelf.items)", 3, "shelves")]


def test_a_read_before_the_load_does_not_count(engine: Engine, eager: Eager) -> None:
    with Session(engine) as session:
        first = session.get(Shelf, 1)
        assert first is not None and len(first.items) == 2  # a lazy load, read
        session.expunge_all()
        shelves(session, selectinload(Shelf.items))
    assert [u[0] for u in eager.unused()] == ["Shelf.items"]


def test_a_read_on_a_subclass_row_uses_the_load(engine: Engine, eager: Eager) -> None:
    with Session(engine) as session:
        found = shelves(session, selectinload(Shelf.items))
        corner = Corner(name="c", items=[])
        assert found and corner.items == []
    assert eager.unused() == []


def test_eager_by_mapping_and_lazy_loads_are_never_reported(engine: Engine, eager: Eager) -> None:
    with Session(engine) as session:
        found = shelves(session)  # Shelf.labels loads by its mapping's selectin
        assert len(found) == 3
    assert eager.unused() == []


def test_a_later_test_starts_with_nothing_pending(engine: Engine, eager: Eager) -> None:
    with Session(engine) as session:
        shelves(session, selectinload(Shelf.items))
    eager.capture.test_ended()
    eager.context.nodeid = f"{HERE}::next"
    with Session(engine) as session:
        assert len(shelves(session, selectinload(Shelf.items))[0].items) == 2
    reported = eager.unused()
    assert reported == [("Shelf.items", "selectinload(Shelf.items)", 1, "shelves")]
    nodeids = [e.nodeid for e in read_events(eager.path) if isinstance(e, ev.EagerUnused)]
    assert nodeids == [f"{HERE}::case"]


def test_uninstall_puts_the_attribute_classes_back(engine: Engine, eager: Eager) -> None:
    with Session(engine) as session:
        shelves(session, selectinload(Shelf.items))
    assert type(Shelf.__dict__["items"]) is not InstrumentedAttribute
    eager.capture.stop()
    assert type(Shelf.__dict__["items"]) is InstrumentedAttribute
    assert type(Corner.__dict__["items"]) is InstrumentedAttribute


def test_a_query_that_returned_no_row_loaded_nothing(engine: Engine, eager: Eager) -> None:
    with Session(engine) as session:
        for option in (
            selectinload(Shelf.items),
            joinedload(Shelf.items),
            subqueryload(Shelf.items),
        ):
            query = select(Shelf).options(option).where(Shelf.name == "none")
            assert session.scalars(query).unique().all() == []
    assert eager.unused() == []
