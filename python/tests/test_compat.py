"""entity_db.compat: the seed framework's async database classes, as its callers use them.

The infrastructure (AsyncDuckDBInfrastructure), the database resource (AsyncDatabaseResource),
the memory (AsyncMemory) and the vector store resource (VectorStoreResource): their names,
arguments, return shapes and exception types, the promises they make (a timeout stops the
query, batches are one transaction, concurrent writers all land), and programs written the way
the seed's users write them, with only their imports changed.
"""

import asyncio
import json
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import pytest_asyncio

import entity_db
from entity_db.compat import (
    AsyncDatabaseResource,
    AsyncDuckDBInfrastructure,
    AsyncMemory,
    ResourceInitializationError,
    VectorStoreResource,
)

# A query that never ends on its own: only its timeout stops it.
RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def child_env():
    """The environment of a child interpreter that imports this same entity_db."""
    env = dict(os.environ)
    here = str(Path(entity_db.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


# ---- fixtures ----------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def memory_infra():
    infra = AsyncDuckDBInfrastructure(":memory:")
    await infra.startup()
    yield infra
    await infra.shutdown()


@pytest_asyncio.fixture
async def file_infra(tmp_path):
    infra = AsyncDuckDBInfrastructure(str(tmp_path / "test.db"), pool_size=3)
    await infra.startup()
    yield infra
    await infra.shutdown()


@pytest_asyncio.fixture
async def memory(file_infra):
    yield AsyncMemory(AsyncDatabaseResource(file_infra), VectorStoreResource(file_infra))


# ---- AsyncDuckDBInfrastructure: lifecycle ------------------------------------------------------


@pytest.mark.asyncio
async def test_startup_and_shutdown(tmp_path):
    infra = AsyncDuckDBInfrastructure(str(tmp_path / "life.db"))
    assert not infra._is_started
    assert infra.pool_size == 5
    assert infra.query_timeout == 30.0
    assert infra.version == "0.1"

    await infra.startup()
    assert infra._is_started
    assert await infra.health_check() is True

    await infra.shutdown()
    assert not infra._is_started
    assert await infra.health_check() is False
    await infra.shutdown()  # a second shutdown is harmless

    # Started again, it serves the same file.
    await infra.startup()
    try:
        row = await infra.execute_async("SELECT 41 + 1", fetch_one=True)
        assert row == (42,)
    finally:
        await infra.shutdown()


@pytest.mark.asyncio
async def test_constructor_arguments_as_the_seed_names_them(tmp_path):
    infra = AsyncDuckDBInfrastructure(
        file_path=str(tmp_path / "named.db"), pool_size=10, query_timeout=12.5, version="2")
    assert infra.file_path == str(tmp_path / "named.db")
    assert infra.pool_size == 10
    assert infra.query_timeout == 12.5
    assert infra.version == "2"
    # ":memory:" is one database: the seed's pool holds one connection for it.
    assert AsyncDuckDBInfrastructure(":memory:", pool_size=8).pool_size == 1


@pytest.mark.asyncio
async def test_use_before_startup_raises_runtime_error_saying_not_started():
    infra = AsyncDuckDBInfrastructure(":memory:")
    with pytest.raises(RuntimeError, match="Infrastructure not started"):
        async with infra.connect():
            pass
    with pytest.raises(RuntimeError, match="not started"):
        await infra.execute_async("SELECT 1")
    with pytest.raises(RuntimeError, match="not started"):
        await infra.execute_async("SELECT 1", fetch_one=True)
    with pytest.raises(RuntimeError, match="not started"):
        await infra.execute_script("CREATE TABLE t (x)")
    with pytest.raises(RuntimeError, match="not started"):
        await infra.execute_many("INSERT INTO t VALUES (?)", [(1,)])
    assert await infra.health_check() is False
    assert infra.health_check_sync() is False
    stats = await infra.get_connection_stats()
    assert stats["is_started"] is False
    assert stats["active_connections"] == 0

    db = AsyncDatabaseResource(infra)
    with pytest.raises(RuntimeError, match="not started"):
        await db.execute("SELECT 1")
    mem = AsyncMemory(db, VectorStoreResource(infra))
    with pytest.raises(RuntimeError, match="not started"):
        await mem.store("k", 1)
    with pytest.raises(RuntimeError, match="not started"):
        await mem.load("k")


@pytest.mark.asyncio
async def test_use_after_shutdown_raises_runtime_error_saying_not_started(tmp_path):
    infra = AsyncDuckDBInfrastructure(str(tmp_path / "closed.db"))
    await infra.startup()
    await infra.shutdown()
    with pytest.raises(RuntimeError, match="Infrastructure not started"):
        await infra.execute_async("SELECT 1")
    with pytest.raises(RuntimeError, match="Infrastructure not started"):
        async with infra.connect():
            pass


# ---- AsyncDuckDBInfrastructure: statements -----------------------------------------------------


@pytest.mark.asyncio
async def test_memory_database_crud_with_fetch_one_and_all(memory_infra):
    await memory_infra.execute_async("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)")
    await memory_infra.execute_async("INSERT INTO people (id, name) VALUES (?, ?)", (1, "Alice"))
    await memory_infra.execute_async("INSERT INTO people (id, name) VALUES (?, ?)", [2, "Bob"])

    row = await memory_infra.execute_async(
        "SELECT * FROM people WHERE id = ?", (1,), fetch_one=True)
    assert row == (1, "Alice")
    assert isinstance(row, tuple)

    rows = await memory_infra.execute_async("SELECT * FROM people ORDER BY id", fetch_all=True)
    assert rows == [(1, "Alice"), (2, "Bob")]
    assert isinstance(rows, list) and all(isinstance(r, tuple) for r in rows)

    missing = await memory_infra.execute_async(
        "SELECT * FROM people WHERE id = ?", (99,), fetch_one=True)
    assert missing is None
    assert await memory_infra.execute_async(
        "SELECT * FROM people WHERE id > ?", (99,), fetch_all=True) == []

    await memory_infra.execute_async("UPDATE people SET name = ? WHERE id = ?", ("Ada", 1))
    await memory_infra.execute_async("DELETE FROM people WHERE id = ?", (2,))
    assert await memory_infra.execute_async("SELECT * FROM people", fetch_all=True) == [
        (1, "Ada")]


@pytest.mark.asyncio
async def test_execute_async_without_fetch_flags_returns_a_cursor(memory_infra):
    cursor = await memory_infra.execute_async("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    assert cursor.rowcount == -1  # not an INSERT, UPDATE, DELETE or REPLACE

    cursor = await memory_infra.execute_async("INSERT INTO t (v) VALUES (?)", ("a",))
    assert cursor.rowcount == 1
    assert cursor.lastrowid == 1
    cursor = await memory_infra.execute_async("INSERT INTO t (v) VALUES (?), (?)", ("b", "c"))
    assert cursor.rowcount == 2
    assert cursor.lastrowid == 3

    cursor = await memory_infra.execute_async("SELECT id, v FROM t ORDER BY id")
    assert cursor.rowcount == -1
    assert [d[0] for d in cursor.description] == ["id", "v"]
    assert await cursor.fetchone() == (1, "a")
    assert await cursor.fetchmany(1) == [(2, "b")]
    assert await cursor.fetchall() == [(3, "c")]
    assert await cursor.fetchone() is None

    cursor = await memory_infra.execute_async("SELECT v FROM t ORDER BY id")
    assert [row[0] async for row in cursor] == ["a", "b", "c"]

    cursor = await memory_infra.execute_async("DELETE FROM t WHERE id > ?", (1,))
    assert cursor.rowcount == 2
    cursor = await memory_infra.execute_async("DELETE FROM t WHERE id > ?", (1,))
    assert cursor.rowcount == 0


@pytest.mark.asyncio
async def test_parameters_under_either_name(memory_infra):
    row = await memory_infra.execute_async("SELECT ?, ?", parameters=(1, "x"), fetch_one=True)
    assert row == (1, "x")
    row = await memory_infra.execute_async("SELECT ?", params=(2,), fetch_one=True)
    assert row == (2,)
    row = await memory_infra.execute_async("SELECT 3", None, fetch_one=True)
    assert row == (3,)


@pytest.mark.asyncio
async def test_file_database_keeps_its_rows(tmp_path):
    path = str(tmp_path / "persist.db")
    infra = AsyncDuckDBInfrastructure(path, pool_size=3)
    await infra.startup()
    try:
        assert infra.file_path == path
        await infra.execute_async("CREATE TABLE persistent_test (id INTEGER, data TEXT)")
        await infra.execute_async("INSERT INTO persistent_test VALUES (1, 'test_data')")
        row = await infra.execute_async(
            "SELECT * FROM persistent_test WHERE id = 1", fetch_one=True)
        assert row == (1, "test_data")
    finally:
        await infra.shutdown()
    assert os.path.exists(path)

    # Another instance (and plain sqlite3) sees the rows.
    again = AsyncDuckDBInfrastructure(path)
    await again.startup()
    try:
        assert await again.execute_async(
            "SELECT data FROM persistent_test", fetch_all=True) == [("test_data",)]
    finally:
        await again.shutdown()
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT data FROM persistent_test").fetchall() == [("test_data",)]


@pytest.mark.asyncio
async def test_missing_folders_are_created(tmp_path):
    db_path = tmp_path / "subdir" / "deeper" / "test.db"
    assert not db_path.parent.exists()
    infra = AsyncDuckDBInfrastructure(str(db_path))
    await infra.startup()
    try:
        await infra.execute_async("CREATE TABLE test (id INTEGER)")
        assert db_path.parent.exists()
        assert db_path.exists()
    finally:
        await infra.shutdown()


@pytest.mark.asyncio
async def test_execute_script(memory_infra):
    script = """
        CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER, title TEXT);
        INSERT INTO users (name) VALUES ('Alice'), ('Bob');
        INSERT INTO posts (user_id, title) VALUES (1, 'First'), (2, 'Second'), (2, 'Third');
    """
    assert await memory_infra.execute_script(script) is None
    users = await memory_infra.execute_async("SELECT * FROM users", fetch_all=True)
    posts = await memory_infra.execute_async("SELECT * FROM posts", fetch_all=True)
    assert len(users) == 2
    assert len(posts) == 3


@pytest.mark.asyncio
async def test_execute_many(memory_infra):
    await memory_infra.execute_async("CREATE TABLE batch_test (id INTEGER, name TEXT)")
    batch = [(i, f"name_{i}") for i in range(10)]
    assert await memory_infra.execute_many(
        "INSERT INTO batch_test (id, name) VALUES (?, ?)", batch) is None
    row = await memory_infra.execute_async("SELECT COUNT(*) FROM batch_test", fetch_one=True)
    assert row[0] == 10
    assert await memory_infra.execute_async(
        "SELECT name FROM batch_test WHERE id = 7", fetch_one=True) == ("name_7",)


@pytest.mark.asyncio
async def test_execute_many_is_all_or_nothing(file_infra):
    await file_infra.execute_async("CREATE TABLE uniq (id INTEGER PRIMARY KEY, v TEXT)")
    batch = [(1, "a"), (2, "b"), (2, "duplicate"), (3, "c")]
    with pytest.raises(sqlite3.IntegrityError):
        await file_infra.execute_many("INSERT INTO uniq VALUES (?, ?)", batch)
    row = await file_infra.execute_async("SELECT COUNT(*) FROM uniq", fetch_one=True)
    assert row == (0,)


@pytest.mark.asyncio
async def test_health_checks(memory_infra):
    assert await memory_infra.health_check() is True
    assert memory_infra.health_check_sync() is True
    # The blocking one also answers from another thread.
    answers = []
    t = threading.Thread(target=lambda: answers.append(memory_infra.health_check_sync()))
    t.start()
    t.join()
    assert answers == [True]


@pytest.mark.asyncio
async def test_invalid_sql_and_bad_parameters_raise(memory_infra):
    with pytest.raises(Exception):
        await memory_infra.execute_async("INVALID SQL STATEMENT")
    with pytest.raises(Exception):
        await memory_infra.execute_async("SELECT ? FROM nonexistent_table", ("param",))

    # The exception types: the engine's, and the sqlite3 class the seed's backend raised.
    with pytest.raises(sqlite3.OperationalError) as info:
        await memory_infra.execute_async("INVALID SQL STATEMENT")
    assert isinstance(info.value, entity_db.SQLSyntaxError)
    assert info.value.code.startswith("sqlite:")
    assert "INVALID" in info.value.sql

    with pytest.raises(sqlite3.OperationalError):
        await memory_infra.execute_async("SELECT * FROM nonexistent_table", fetch_all=True)

    # Too many or too few parameters, and a value that cannot be bound.
    with pytest.raises(sqlite3.ProgrammingError) as info:
        await memory_infra.execute_async("SELECT ?", (1, 2), fetch_one=True)
    assert isinstance(info.value, entity_db.InvalidArgumentError)
    with pytest.raises(sqlite3.Error):
        await memory_infra.execute_async("SELECT ?, ?", (1,), fetch_one=True)
    with pytest.raises(sqlite3.ProgrammingError):
        await memory_infra.execute_async("SELECT ?", ([1, 2],), fetch_one=True)
    with pytest.raises(sqlite3.ProgrammingError):
        await memory_infra.execute_async("SELECT ?", {"named": 1}, fetch_one=True)

    # A broken constraint.
    await memory_infra.execute_async("CREATE TABLE k (id INTEGER PRIMARY KEY)")
    await memory_infra.execute_async("INSERT INTO k VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError) as info:
        await memory_infra.execute_async("INSERT INTO k VALUES (1)")
    assert isinstance(info.value, entity_db.ConstraintError)
    assert info.value.sqlite_errorcode == 1555  # SQLITE_CONSTRAINT_PRIMARYKEY

    # Nothing of that broke the infrastructure.
    assert await memory_infra.execute_async("SELECT COUNT(*) FROM k", fetch_one=True) == (1,)


@pytest.mark.asyncio
async def test_script_errors_raise(memory_infra):
    with pytest.raises(sqlite3.OperationalError):
        await memory_infra.execute_script("CREATE TABLE a (x); NOT SQL AT ALL;")


# ---- AsyncDuckDBInfrastructure: pool and concurrency -------------------------------------------


@pytest.mark.asyncio
async def test_connection_stats_keys_and_values(file_infra, tmp_path):
    stats = await file_infra.get_connection_stats()
    for key in ("pool_size", "active_connections", "available_permits", "file_path",
                "query_timeout", "is_started"):
        assert key in stats
    assert stats["pool_size"] == 3
    assert stats["is_started"] is True
    assert stats["query_timeout"] == 30.0
    assert stats["file_path"] == str(tmp_path / "test.db")
    assert isinstance(stats["active_connections"], int) and stats["active_connections"] >= 1
    assert isinstance(stats["available_permits"], int)
    assert 0 <= stats["available_permits"] <= 3
    assert isinstance(stats["engine"], dict) and "open_connections" in stats["engine"]

    file_infra.query_timeout = 7.0
    assert (await file_infra.get_connection_stats())["query_timeout"] == 7.0


@pytest.mark.asyncio
async def test_memory_infra_stats(memory_infra):
    stats = await memory_infra.get_connection_stats()
    assert stats["pool_size"] == 1
    assert stats["file_path"] == ":memory:"
    assert stats["is_started"] is True


@pytest.mark.asyncio
async def test_five_concurrent_queries(file_infra):
    async def concurrent_query(query_id):
        result = await file_infra.execute_async(
            "SELECT ? as query_id", (query_id,), fetch_one=True)
        return result[0]

    results = await asyncio.gather(*[concurrent_query(i) for i in range(5)])
    assert results == list(range(5))


@pytest.mark.asyncio
async def test_memory_database_is_one_database_for_concurrent_queries(memory_infra):
    await memory_infra.execute_async("CREATE TABLE shared (x INTEGER)")
    await asyncio.gather(*[
        memory_infra.execute_async("INSERT INTO shared VALUES (?)", (i,)) for i in range(20)])
    rows = await asyncio.gather(*[
        memory_infra.execute_async("SELECT COUNT(*) FROM shared", fetch_one=True)
        for _ in range(5)])
    assert rows == [(20,)] * 5


@pytest.mark.asyncio
async def test_five_concurrent_writers_of_ten_inserts_all_land(file_infra):
    await file_infra.execute_async(
        "CREATE TABLE concurrent_test (id INTEGER, thread_id INTEGER)")

    async def worker(worker_id, count):
        for i in range(count):
            await file_infra.execute_async(
                "INSERT INTO concurrent_test (id, thread_id) VALUES (?, ?)", (i, worker_id))

    await asyncio.gather(*[worker(w, 10) for w in range(5)])
    total = await file_infra.execute_async(
        "SELECT COUNT(*) FROM concurrent_test", fetch_one=True)
    assert total[0] == 50
    per_worker = await file_infra.execute_async(
        "SELECT thread_id, COUNT(*) FROM concurrent_test GROUP BY thread_id ORDER BY thread_id",
        fetch_all=True)
    assert per_worker == [(w, 10) for w in range(5)]


@pytest.mark.asyncio
async def test_concurrent_inserts_land_exactly_once(tmp_path):
    infra = AsyncDuckDBInfrastructure(str(tmp_path / "once.db"), pool_size=10)
    await infra.startup()
    try:
        await infra.execute_async(
            "CREATE TABLE once (id INTEGER PRIMARY KEY, worker INTEGER, op INTEGER)")

        async def worker(w, rounds):
            for i in range(rounds):
                await infra.execute_async(
                    "INSERT INTO once (worker, op) VALUES (?, ?)", (w, i))
                await infra.execute_async(
                    "SELECT * FROM once WHERE worker = ? LIMIT 10", (w,), fetch_all=True)

        for _ in range(5):
            await asyncio.gather(*[worker(w, 10) for w in range(20)])
        twice = await infra.execute_async(
            "SELECT worker, op, COUNT(*) FROM once GROUP BY worker, op HAVING COUNT(*) <> 5",
            fetch_all=True)
        assert twice == [], f"inserts that did not land exactly once per round: {twice}"
        total = await infra.execute_async("SELECT COUNT(*) FROM once", fetch_one=True)
        assert total == (5 * 20 * 10,)
    finally:
        await infra.shutdown()


# ---- AsyncDuckDBInfrastructure: timeouts -------------------------------------------------------


@pytest.mark.asyncio
async def test_timeout_stops_a_runaway_query(memory_infra):
    original = memory_infra.query_timeout
    memory_infra.query_timeout = 0.2
    try:
        t0 = time.monotonic()
        with pytest.raises(asyncio.TimeoutError) as info:
            await memory_infra.execute_async(RUNAWAY)
        elapsed = time.monotonic() - t0
        assert isinstance(info.value, TimeoutError)
        assert isinstance(info.value, entity_db.QueryTimeoutError)
        assert elapsed < 5.0, f"the runaway query ran {elapsed:.1f} s past a 0.2 s timeout"

        with pytest.raises(TimeoutError):
            await memory_infra.execute_async(RUNAWAY, fetch_one=True)
        with pytest.raises(TimeoutError):
            await memory_infra.execute_async(RUNAWAY, fetch_all=True)
    finally:
        memory_infra.query_timeout = original

    # The query was stopped, not left running: the one connection of ":memory:" answers now.
    t0 = time.monotonic()
    assert await memory_infra.execute_async("SELECT 1", fetch_one=True) == (1,)
    assert time.monotonic() - t0 < 2.0
    stats = await memory_infra.get_connection_stats()
    assert stats["engine"]["timeouts"] >= 3


@pytest.mark.asyncio
async def test_timeout_of_the_seed_test_with_one_millisecond(memory_infra):
    memory_infra.query_timeout = 0.001
    try:
        with pytest.raises(asyncio.TimeoutError):
            await memory_infra.execute_async(
                "WITH RECURSIVE slow(x) AS (SELECT 0 UNION ALL SELECT x+1 FROM slow "
                "WHERE x < 10000000) SELECT COUNT(*) FROM slow")
    finally:
        memory_infra.query_timeout = 30.0
    assert await memory_infra.health_check() is True


@pytest.mark.asyncio
async def test_changed_timeout_applies_to_the_next_query(file_infra):
    file_infra.query_timeout = 0.1
    with pytest.raises(TimeoutError):
        await file_infra.execute_async(RUNAWAY, fetch_one=True)
    # Raised again: it is now long enough for a short query, not for a runaway one.
    file_infra.query_timeout = 5.0
    assert await file_infra.execute_async("SELECT 2", fetch_one=True) == (2,)
    file_infra.query_timeout = 0.3
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        await file_infra.execute_async(RUNAWAY)
    assert time.monotonic() - t0 >= 0.2
    # The memory follows the infrastructure's timeout too.
    memory = AsyncMemory(AsyncDatabaseResource(file_infra), VectorStoreResource(file_infra))
    await memory.store("k", "v")
    assert await memory.load("k") == "v"


@pytest.mark.asyncio
async def test_timeout_applies_to_scripts_and_batches(memory_infra):
    memory_infra.query_timeout = 0.1
    with pytest.raises(TimeoutError):
        await memory_infra.execute_script(f"CREATE TABLE z (x); {RUNAWAY};")
    memory_infra.query_timeout = 30.0
    assert await memory_infra.health_check() is True


# ---- AsyncDuckDBInfrastructure: connect() ------------------------------------------------------


@pytest.mark.asyncio
async def test_connect_yields_its_connection(memory_infra):
    async with memory_infra.connect() as conn:
        cursor = await conn.execute("SELECT 1 as test")
        row = await cursor.fetchone()
        assert row[0] == 1

        await conn.execute("CREATE TABLE c (id INTEGER PRIMARY KEY, v TEXT)")
        cursor = await conn.execute("INSERT INTO c (v) VALUES (?)", ("x",))
        assert cursor.rowcount == 1 and cursor.lastrowid == 1
        await conn.executemany("INSERT INTO c (v) VALUES (?)", [("y",), ("z",)])
        await conn.commit()  # autocommit, as the seed's connection: nothing to do

        async with conn.execute("SELECT v FROM c ORDER BY id") as cursor:
            assert await cursor.fetchall() == [("x",), ("y",), ("z",)]
        assert await conn.execute_fetchall("SELECT COUNT(*) FROM c") == [(3,)]
        assert await conn.execute_insert("INSERT INTO c (v) VALUES ('w')") == (4,)

        cursor = await conn.cursor()
        await cursor.execute("SELECT v FROM c WHERE id = ?", (2,))
        assert await cursor.fetchone() == ("y",)

        await conn.executescript("CREATE TABLE d (x); INSERT INTO d VALUES (1);")

    # What the connection wrote is visible to everything else.
    assert await memory_infra.execute_async("SELECT x FROM d", fetch_all=True) == [(1,)]
    assert await memory_infra.execute_async("SELECT COUNT(*) FROM c", fetch_one=True) == (4,)


@pytest.mark.asyncio
async def test_connection_errors_are_the_seed_types(memory_infra):
    async with memory_infra.connect() as conn:
        with pytest.raises(sqlite3.OperationalError):
            await conn.execute("SELECT * FROM nowhere")


# ---- AsyncDatabaseResource ---------------------------------------------------------------------


def test_database_resource_requires_infrastructure():
    with pytest.raises(ResourceInitializationError):
        AsyncDatabaseResource(None)


@pytest.mark.asyncio
async def test_database_resource_verbs(file_infra):
    db = AsyncDatabaseResource(file_infra)
    assert db.infrastructure is file_infra
    assert await db.health_check() is True
    assert db.health_check_sync() is True

    await db.execute_script("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, age INT);")
    cursor = await db.execute("INSERT INTO users (name, age) VALUES (?, ?)", "Alice", 30)
    assert cursor.rowcount == 1
    await db.execute_many("INSERT INTO users (name, age) VALUES (?, ?)",
                          [("Bob", 25), ("Charlie", 35)])

    user = await db.execute_fetch_one("SELECT * FROM users WHERE id = ?", 1)
    assert user == (1, "Alice", 30)
    assert user[1] == "Alice"
    assert await db.execute_fetch_one("SELECT * FROM users WHERE id = ?", 42) is None
    users = await db.execute_fetch_all("SELECT name FROM users ORDER BY id")
    assert users == [("Alice",), ("Bob",), ("Charlie",)]
    cursor = await db.execute("SELECT name FROM users WHERE age > ?", 26)
    assert sorted(r[0] for r in await cursor.fetchall()) == ["Alice", "Charlie"]

    stats = await db.get_connection_stats()
    assert stats["pool_size"] == 3 and stats["is_started"] is True

    # The blocking wrappers refuse to run inside an event loop, as the seed's do.
    with pytest.raises(RuntimeError):
        db.execute_sync("SELECT 1")
    with pytest.raises(RuntimeError):
        with db.connect():
            pass


def test_database_resource_blocking_wrappers_without_a_loop(tmp_path):
    infra = AsyncDuckDBInfrastructure(str(tmp_path / "sync.db"))
    asyncio.run(infra.startup())
    try:
        db = AsyncDatabaseResource(infra)
        db.execute_sync("CREATE TABLE s (x INTEGER)")
        cursor = db.execute_sync("INSERT INTO s VALUES (?)", 5)
        assert cursor.rowcount == 1
        assert db.execute_sync("SELECT x FROM s").fetchall() == [(5,)]
        with db.connect() as conn:
            assert conn.execute("SELECT x * ? FROM s", (2,)).fetchone() == (10,)
        assert db.health_check_sync() is True
        memory = AsyncMemory(db, VectorStoreResource(infra))
        assert memory.execute("SELECT COUNT(*) FROM s").fetchone() == (1,)
        assert memory.health_check() is True
    finally:
        asyncio.run(infra.shutdown())


# ---- AsyncMemory -------------------------------------------------------------------------------


def test_memory_requires_both_resources(tmp_path):
    infra = AsyncDuckDBInfrastructure(str(tmp_path / "x.db"))
    with pytest.raises(ResourceInitializationError):
        AsyncMemory(None, VectorStoreResource(infra))
    with pytest.raises(ResourceInitializationError):
        AsyncMemory(AsyncDatabaseResource(infra), None)
    with pytest.raises(ResourceInitializationError):
        VectorStoreResource(None)


@pytest.mark.asyncio
async def test_memory_holds_the_resources_it_was_given(file_infra):
    db = AsyncDatabaseResource(file_infra)
    vs = VectorStoreResource(file_infra)
    memory = AsyncMemory(db, vs)
    assert memory.database is db
    assert memory.vector_store is vs
    assert memory.database.infrastructure is file_infra


@pytest.mark.asyncio
async def test_memory_every_verb(memory):
    value = {"name": "Ada", "tags": ["math", "engines"], "age": 36, "ok": True, "none": None}
    assert await memory.store("user:1", value) is None
    assert await memory.load("user:1") == value
    await memory.store("user:2", [1, 2.5, "three"])
    await memory.store("config", "dark")
    await memory.store("count", 7)

    assert await memory.load("missing") is None
    assert await memory.load("missing", {}) == {}
    assert await memory.load("missing", default="fallback") == "fallback"

    assert await memory.exists("user:1") is True
    assert await memory.exists("missing") is False

    assert sorted(await memory.keys()) == ["config", "count", "user:1", "user:2"]
    assert sorted(await memory.keys("user:%")) == ["user:1", "user:2"]
    assert await memory.keys("nobody%") == []
    assert await memory.size() == 4

    # Replacing a value keeps one key.
    await memory.store("count", 8)
    assert await memory.load("count") == 8
    assert await memory.size() == 4

    assert await memory.delete("config") is True
    assert await memory.delete("config") is False
    assert await memory.exists("config") is False

    assert await memory.clear("user:%") == 2
    assert await memory.keys() == ["count"]
    assert await memory.clear() == 1
    assert await memory.size() == 0
    assert await memory.clear() == 0


@pytest.mark.asyncio
async def test_memory_values_round_trip_as_json_does(memory):
    # What json.dumps / json.loads make of a value is what comes back.
    value = {"t": (1, 2), 3: "int key", "nested": {"deep": [{"x": 1.5}]}, "u": "ü€😀"}
    await memory.store("v", value)
    assert await memory.load("v") == json.loads(json.dumps(value))
    for plain in (None, True, False, 0, -1, 2**62, 3.25, "", "text", [], {}):
        await memory.store("p", plain)
        assert await memory.load("p", "absent") == plain


@pytest.mark.asyncio
async def test_memory_uses_the_seed_table(memory, file_infra):
    await memory.store("seed:key", {"a": 1})
    row = await file_infra.execute_async(
        "SELECT value FROM memory WHERE key = ?", ("seed:key",), fetch_one=True)
    assert json.loads(row[0]) == {"a": 1}
    # A row the seed wrote (JSON text in the same table) loads.
    await file_infra.execute_async(
        "INSERT OR REPLACE INTO memory (key, value) VALUES (?, ?)",
        ("old", json.dumps({"from": "seed"})))
    assert await memory.load("old") == {"from": "seed"}


@pytest.mark.asyncio
async def test_memory_value_that_json_cannot_encode_raises_type_error(memory):
    with pytest.raises(TypeError):
        await memory.store("bad", object())
    with pytest.raises(TypeError):
        await memory.store("bad", {"inner": {1, 2}})
    assert await memory.exists("bad") is False
    # NaN and infinity are not JSON: refused (a ValueError), nothing written.
    with pytest.raises(ValueError):
        await memory.store("nan", math.nan)
    with pytest.raises(ValueError):
        await memory.store("inf", [math.inf])
    assert await memory.size() == 0


@pytest.mark.asyncio
async def test_memory_batch_store_and_batch_load(memory):
    items = {
        "user_1": {"name": "Alice", "age": 30},
        "user_2": {"name": "Bob", "age": 25},
        "config": {"version": "1.0", "debug": True},
    }
    assert await memory.batch_store(items) is None
    assert await memory.batch_store({}) is None
    loaded = await memory.batch_load(["user_1", "user_2", "config", "missing"])
    assert loaded == items
    assert await memory.batch_load([]) == {}
    assert await memory.load("user_2") == {"name": "Bob", "age": 25}
    assert await memory.size() == 3

    many = {f"key_{i}": {"id": i, "nested": {"count": i}} for i in range(1200)}
    await memory.batch_store(many)
    back = await memory.batch_load(list(many))
    assert back == many


@pytest.mark.asyncio
async def test_memory_batch_store_is_all_or_nothing(memory):
    await memory.store("b", "before")
    batch = {"a": 1, "b": "after", "bad": object(), "c": 3}
    with pytest.raises(TypeError):
        await memory.batch_store(batch)
    assert await memory.keys() == ["b"]
    assert await memory.load("b") == "before"

    with pytest.raises(ValueError):
        await memory.batch_store({"x": 1, "y": math.nan, "z": 2})
    assert await memory.keys() == ["b"]


@pytest.mark.asyncio
async def test_memory_twenty_concurrent_stores_all_land(memory):
    await asyncio.gather(*[memory.store(f"k{i}", {"i": i}) for i in range(20)])
    assert await memory.size() == 20
    loaded = await memory.batch_load([f"k{i}" for i in range(20)])
    assert loaded == {f"k{i}": {"i": i} for i in range(20)}

    # Two memories over one infrastructure, writing at once.
    other = AsyncMemory(memory.database, memory.vector_store)
    await asyncio.gather(*[
        (memory if i % 2 else other).store(f"m{i}", i) for i in range(40)])
    assert len(await memory.keys("m%")) == 40


@pytest.mark.asyncio
async def test_memory_stats(memory):
    await memory.batch_store({"a": 1, "b": 2})
    stats = await memory.get_stats()
    assert stats["key_count"] == 2
    assert stats["table_ready"] is True
    assert stats["health_status"] is True
    assert stats["has_process_lock"] is False
    assert stats["db_stats"]["pool_size"] == 3
    assert stats["db_stats"]["is_started"] is True
    assert "active_connections" in stats["db_stats"]


@pytest.mark.asyncio
async def test_memory_health_and_raw_queries(memory):
    assert memory.health_check() is True
    assert memory.health_check_sync() is True
    assert await memory.health_check_async() is True
    await memory.store("x", 1)
    cursor = await memory.execute_async("SELECT key FROM memory WHERE key = ?", "x")
    assert await cursor.fetchall() == [("x",)]
    with pytest.raises(RuntimeError):
        memory.execute("SELECT 1")  # blocking, inside a loop: refused as the seed's


@pytest.mark.asyncio
async def test_memory_on_a_memory_database(memory_infra):
    memory = AsyncMemory(AsyncDatabaseResource(memory_infra), VectorStoreResource(memory_infra))
    await asyncio.gather(*[memory.store(f"k{i}", i) for i in range(20)])
    assert await memory.size() == 20
    assert await memory.batch_load(["k3", "k19"]) == {"k3": 3, "k19": 19}


@pytest.mark.asyncio
async def test_memory_stored_text_that_is_not_json_raises_json_decode_error(memory, file_infra):
    await memory.store("good", 1)
    await file_infra.execute_async(
        "INSERT OR REPLACE INTO memory (key, value) VALUES ('bad', '{not json')")
    with pytest.raises(json.JSONDecodeError) as info:
        await memory.load("bad")
    assert isinstance(info.value, entity_db.DecodeError)
    assert "bad" in str(info.value)
    with pytest.raises(ValueError):
        await memory.batch_load(["good", "bad"])
    assert await memory.load("good") == 1


@pytest.mark.asyncio
async def test_memory_after_shutdown_raises_runtime_error(tmp_path):
    infra = AsyncDuckDBInfrastructure(str(tmp_path / "m.db"))
    await infra.startup()
    memory = AsyncMemory(AsyncDatabaseResource(infra), VectorStoreResource(infra))
    await memory.store("k", "v")
    await infra.shutdown()
    with pytest.raises(RuntimeError, match="Infrastructure not started"):
        await memory.load("k")
    # Started again, the memory carries on with what the file holds.
    await infra.startup()
    try:
        assert await memory.load("k") == "v"
    finally:
        await infra.shutdown()


@pytest.mark.asyncio
async def test_memory_integer_keys_are_their_text(memory):
    await memory.store(7, "seven")
    assert await memory.load("7") == "seven"
    assert await memory.load(7) == "seven"
    assert await memory.keys() == ["7"]


# ---- VectorStoreResource -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_vector_store_basic_use(file_infra):
    vectors = VectorStoreResource(file_infra)
    assert vectors.infrastructure is file_infra
    assert await vectors.health_check() is True
    assert vectors.health_check_sync() is True

    assert vectors.count("embeddings") == 0
    assert vectors.add_vector("embeddings", [1.0, 0.0, 0.0]) is None
    vectors.add_vector("embeddings", [0.0, 1.0, 0.0])
    vectors.add_vector("embeddings", (0.0, 0.0, 1.0))
    assert vectors.count("embeddings") == 3

    nearest = vectors.search("embeddings", [0.9, 0.1, 0.0], k=2)
    assert len(nearest) == 2
    assert nearest[0].distance <= nearest[1].distance

    with pytest.raises(ValueError, match="Invalid table name"):
        vectors.add_vector("not a table; DROP", [1.0])
    with pytest.raises(ValueError):
        vectors.add_vector("embeddings", [1.0, 2.0])  # another dimension

    # query runs SQL on the database.
    cursor = vectors.query("SELECT 1 + 1")
    assert cursor.fetchall() == [(2,)]

    # Through the memory, as the seed's AsyncMemory forwards them.
    memory = AsyncMemory(AsyncDatabaseResource(file_infra), vectors)
    memory.add_vector("embeddings", [0.5, 0.5, 0.0])
    assert vectors.count("embeddings") == 4
    assert memory.query("SELECT 3").fetchone() == (3,)


@pytest.mark.asyncio
async def test_vector_store_over_the_database_resource(memory_infra):
    vectors = VectorStoreResource(AsyncDatabaseResource(memory_infra))
    vectors.add_vector("vecs", [0.25, 0.75])
    assert vectors.count("vecs") == 1
    assert await vectors.health_check() is True


def test_vector_store_before_startup_raises_runtime_error():
    vectors = VectorStoreResource(AsyncDuckDBInfrastructure(":memory:"))
    with pytest.raises(RuntimeError, match="not started"):
        vectors.add_vector("v", [1.0])
    assert vectors.health_check_sync() is False


# ---- programs written for the seed -------------------------------------------------------------


async def seed_program(folder):
    """Written the way the seed's own documentation and benchmark use its classes."""
    from entity_db.compat import AsyncDuckDBInfrastructure as Infra
    from entity_db.compat import AsyncDatabaseResource as DatabaseResource
    from entity_db.compat import AsyncMemory as Memory
    from entity_db.compat import VectorStoreResource as Vectors

    async_infra = Infra(file_path=str(Path(folder) / "data" / "agent.db"), pool_size=10,
                        query_timeout=30.0)
    await async_infra.startup()

    async_db = DatabaseResource(async_infra)
    vector_store = Vectors(async_infra)
    async_memory = Memory(async_db, vector_store)

    await async_memory.store("key", {"data": "value"})
    value = await async_memory.load("key")
    await async_memory.batch_store({"key1": "val1", "key2": "val2"})
    values = await async_memory.batch_load(["key1", "key2"])

    await async_db.execute(
        """
        CREATE TABLE IF NOT EXISTS test_table (
            id INTEGER PRIMARY KEY,
            name TEXT,
            value REAL,
            data TEXT
        )
        """
    )
    records = [(i, f"name_{i}", i * 1.5, f"data_string_{i}") for i in range(50)]
    for record in records[:25]:
        await async_db.execute(
            "INSERT INTO test_table (id, name, value, data) VALUES (?, ?, ?, ?)", *record)
    await async_db.execute_many(
        "INSERT INTO test_table (id, name, value, data) VALUES (?, ?, ?, ?)", records[25:])
    found = [await async_db.execute_fetch_one("SELECT * FROM test_table WHERE id = ?", i)
             for i in range(0, 50, 10)]

    async def worker_task(worker_id, operations):
        for i in range(operations):
            await async_db.execute(
                "INSERT INTO test_table (name, data) VALUES (?, ?)",
                f"worker_{worker_id}", f"op_{i}")
            await async_db.execute_fetch_all(
                "SELECT * FROM test_table WHERE name = ? LIMIT 10", f"worker_{worker_id}")

    await asyncio.gather(*[worker_task(w, 10) for w in range(20)])
    total = await async_db.execute_fetch_one("SELECT COUNT(*) FROM test_table")

    stats = await async_db.get_connection_stats()
    summary = (f"Pool Size: {stats['pool_size']} Active Connections: "
               f"{stats['active_connections']} Query Timeout: {stats['query_timeout']}s")
    memory_stats = await async_memory.get_stats()

    await async_memory.database.infrastructure.shutdown()
    return value, values, found, total, summary, memory_stats


@pytest.mark.asyncio
async def test_seed_program_runs(tmp_path):
    value, values, found, total, summary, memory_stats = await seed_program(tmp_path)
    assert value == {"data": "value"}
    assert values == {"key1": "val1", "key2": "val2"}
    assert found == [(i, f"name_{i}", i * 1.5, f"data_string_{i}") for i in range(0, 50, 10)]
    assert total == (50 + 200,)
    assert summary.startswith("Pool Size: 10 Active Connections: ")
    assert summary.endswith("Query Timeout: 30.0s")
    assert memory_stats["key_count"] == 3


def test_seed_program_runs_under_asyncio_run(tmp_path):
    value, values, *_ = asyncio.run(seed_program(tmp_path))
    assert value == {"data": "value"} and values == {"key1": "val1", "key2": "val2"}


# A test module in the seed's style (a test class, plain @pytest.fixture async fixtures, run
# with pytest-asyncio's auto mode as the seed's suite ran), with its import pointing here.
SEED_STYLE_SUITE = '''
import asyncio
import tempfile
from pathlib import Path

import pytest

from entity_db.compat import AsyncDuckDBInfrastructure


class TestSeedStyle:
    @pytest.fixture
    async def temp_db_path(self):
        with tempfile.TemporaryDirectory() as temp_dir:
            yield str(Path(temp_dir) / "nested" / "seed.db")

    @pytest.fixture
    async def memory_infra(self):
        infra = AsyncDuckDBInfrastructure(":memory:")
        await infra.startup()
        yield infra
        await infra.shutdown()

    @pytest.fixture
    async def file_infra(self, temp_db_path):
        infra = AsyncDuckDBInfrastructure(temp_db_path, pool_size=4)
        await infra.startup()
        yield infra
        await infra.shutdown()

    @pytest.mark.asyncio
    async def test_lifecycle(self, temp_db_path):
        infra = AsyncDuckDBInfrastructure(temp_db_path)
        assert not infra._is_started
        await infra.startup()
        assert infra._is_started
        await infra.shutdown()
        assert not infra._is_started

    @pytest.mark.asyncio
    async def test_rows(self, memory_infra):
        await memory_infra.execute_async("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        await memory_infra.execute_async("INSERT INTO notes (id, body) VALUES (?, ?)", (5, "hi"))
        assert await memory_infra.execute_async(
            "SELECT * FROM notes WHERE id = ?", (5,), fetch_one=True) == (5, "hi")
        rows = await memory_infra.execute_async("SELECT * FROM notes", fetch_all=True)
        assert rows[0] == (5, "hi")

    @pytest.mark.asyncio
    async def test_pool(self, file_infra):
        stats = await file_infra.get_connection_stats()
        assert stats["pool_size"] == 4
        assert stats["is_started"] is True

        async def ask(n):
            row = await file_infra.execute_async("SELECT ? * 2", (n,), fetch_one=True)
            return row[0]

        assert await asyncio.gather(*[ask(n) for n in range(8)]) == [n * 2 for n in range(8)]

    @pytest.mark.asyncio
    async def test_timeout(self, memory_infra):
        memory_infra.query_timeout = 0.05
        try:
            with pytest.raises(asyncio.TimeoutError):
                await memory_infra.execute_async(
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "
                    "SELECT count(*) FROM c")
        finally:
            memory_infra.query_timeout = 30.0

    @pytest.mark.asyncio
    async def test_health(self, memory_infra):
        assert await memory_infra.health_check() is True
        assert memory_infra.health_check_sync() is True

    @pytest.mark.asyncio
    async def test_errors(self, memory_infra):
        with pytest.raises(Exception):
            await memory_infra.execute_async("NOT A STATEMENT")

    @pytest.mark.asyncio
    async def test_not_started(self):
        infra = AsyncDuckDBInfrastructure(":memory:")
        with pytest.raises(RuntimeError, match="Infrastructure not started"):
            async with infra.connect():
                pass

    @pytest.mark.asyncio
    async def test_connection(self, memory_infra):
        async with memory_infra.connect() as conn:
            cursor = await conn.execute("SELECT 7 as seven")
            row = await cursor.fetchone()
            assert row[0] == 7
'''


def test_seed_style_test_module_passes(tmp_path):
    suite = tmp_path / "test_seed_style.py"
    suite.write_text(textwrap.dedent(SEED_STYLE_SUITE))
    done = subprocess.run(
        [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--asyncio-mode=auto",
         "--rootdir", str(tmp_path), str(suite)],
        cwd=str(tmp_path), env=child_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert "8 passed" in done.stdout
