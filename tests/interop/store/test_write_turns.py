"""SQLite's writers in one process take turns: a second writer begins only once the first has
committed, rather than polling SQLite's lock (interop.store.database._write_turn)."""

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, text

from interop.store.database import make_engine, unit_of_work
from interop.store.migrate import upgrade


def test_a_second_writer_begins_once_the_first_has_committed(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'turns.sqlite3'}")
    upgrade(engine)
    with engine.connect(), engine.connect():
        pass  # two connections ready in the pool: neither writer waits to connect
    begun: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def beginning(*arguments: Any) -> None:  # just before SQLite is asked for its write lock
        if arguments[2] == "BEGIN IMMEDIATE":
            begun.append(threading.current_thread().name)

    first_holds, first_may_commit = threading.Event(), threading.Event()

    def first() -> None:
        with unit_of_work(engine) as session:
            session.execute(text("UPDATE change_counter SET n = n + 1"))
            first_holds.set()
            first_may_commit.wait(timeout=30)

    def second() -> None:
        with unit_of_work(engine) as session:
            session.execute(text("UPDATE change_counter SET n = n + 1"))

    one = threading.Thread(target=first, name="first")
    two = threading.Thread(target=second, name="second")
    one.start()
    assert first_holds.wait(timeout=30)
    two.start()
    two.join(timeout=0.3)  # long enough for the second to reach BEGIN, were it let through
    waiting = list(begun)
    first_may_commit.set()
    one.join(timeout=30)
    two.join(timeout=30)
    engine.dispose()
    assert waiting == ["first"]
    assert begun == ["first", "second"]


def test_readers_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'turns.sqlite3'}")
    upgrade(engine)
    read: list[int] = []
    with unit_of_work(engine) as writing:
        writing.execute(text("UPDATE change_counter SET n = n + 1"))

        def reader() -> None:
            with unit_of_work(engine, writes=False) as session:
                connection: Connection = session.connection()
                read.append(len(connection.execute(text("SELECT * FROM change_counter")).all()))

        thread = threading.Thread(target=reader)
        thread.start()
        thread.join(timeout=30)
        assert not thread.is_alive()
    engine.dispose()
    assert len(read) == 1
