"""Set-up code of the library app: engines that check the database when they connect."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event

from app.db import Database


def check_schema(dbapi_connection: Any, record: Any) -> None:
    """A connect listener: the seed is there (once per new connection of the engine)."""
    cur = dbapi_connection.cursor()
    cur.execute("SELECT count(*) FROM authors")
    cur.fetchone()
    cur.close()


def engines_with_a_connect_check(db: Database, count: int) -> list[Engine]:
    """``count`` engines, each connected once, each running ``check_schema`` on connect."""
    made = []
    for _ in range(count):
        engine = db.engine()
        event.listen(engine, "connect", check_schema)
        with engine.connect():
            pass
        made.append(engine)
    return made
