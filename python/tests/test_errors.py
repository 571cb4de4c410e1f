"""Errors: the hierarchy, what each carries, and that the database works on after each."""

import sqlite3
import threading
import time

import pytest

import entity_db

HIERARCHY = {
    # class name: the built-in exceptions it also is
    "QueryTimeoutError": (TimeoutError,),
    "PoolExhaustedError": (TimeoutError,),
    "BusyError": (),
    "ConstraintError": (),
    "SQLSyntaxError": (),
    "NotStartedError": (RuntimeError,),
    "ShutDownError": (RuntimeError,),
    "InvalidArgumentError": (ValueError,),
    "DimensionMismatchError": (ValueError,),
    "DecodeError": (),
    "NotFoundError": (LookupError,),
    "StorageError": (OSError,),
    "DatabaseConnectionError": (ConnectionError,),
}


def test_error_hierarchy():
    assert issubclass(entity_db.Error, Exception)
    for name, also in HIERARCHY.items():
        cls = getattr(entity_db, name)
        assert isinstance(cls, type), name
        assert issubclass(cls, entity_db.Error), name
        for base in also:
            assert issubclass(cls, base), f"{name} is not a {base.__name__}"
    assert issubclass(entity_db.DimensionMismatchError, entity_db.InvalidArgumentError)


async def assert_works(call, db):
    assert (await call(db, "fetch_one", "SELECT 1"))[0] == 1


@pytest.mark.asyncio
async def test_query_timeout(target, call):
    db = target.open(query_timeout=0.2)
    sql = "SELECT pg_sleep(5)" if target.is_pg else target.runaway
    t0 = time.monotonic()
    with pytest.raises(entity_db.QueryTimeoutError) as info:
        await call(db, "fetch_one", sql)
    elapsed = time.monotonic() - t0
    assert elapsed < 3.0, f"a 0.2 s timeout took {elapsed:.2f} s"
    e = info.value
    assert isinstance(e, TimeoutError) and isinstance(e, entity_db.Error)
    assert e.code == "query_timeout"
    assert isinstance(e.message, str)
    assert e.sql.startswith(sql[:30])
    await assert_works(call, db)
    assert db.stats()["timeouts"] >= 1


@pytest.mark.asyncio
async def test_query_timeout_of_execute_and_fetch_all(target, call):
    db = target.open(query_timeout=0.2)
    for verb in ("execute", "fetch_all"):
        with pytest.raises(entity_db.QueryTimeoutError):
            await call(db, verb, target.runaway)
        await assert_works(call, db)


@pytest.mark.asyncio
async def test_constraint_error_on_unique(target, call):
    db = target.open()
    await call(db, "execute", "CREATE TABLE u (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)")
    await call(db, "execute", "INSERT INTO u VALUES (?, ?)", (1, "ada"))
    sql = "INSERT INTO u VALUES (?, ?)"
    with pytest.raises(entity_db.ConstraintError) as info:
        await call(db, "execute", sql, (2, "ada"))
    e = info.value
    assert isinstance(e, entity_db.Error)
    if target.is_pg:
        assert e.code == "postgres:23505"
        assert "duplicate key" in e.message
    else:
        assert e.code == "sqlite:2067"
        assert "UNIQUE" in e.message
    assert e.sql.startswith("INSERT INTO u")
    assert e.message
    # NOT NULL is a constraint too.
    with pytest.raises(entity_db.ConstraintError):
        await call(db, "execute", sql, (3, None))
    assert (await call(db, "fetch_one", "SELECT count(*) FROM u"))[0] == 1
    await call(db, "execute", sql, (2, "bob"))
    assert (await call(db, "fetch_one", "SELECT count(*) FROM u"))[0] == 2


@pytest.mark.asyncio
async def test_syntax_error(target, call):
    db = target.open()
    sql = "SELEC 1 FROM nowhere"
    with pytest.raises(entity_db.SQLSyntaxError) as info:
        await call(db, "fetch_one", sql)
    e = info.value
    assert isinstance(e, entity_db.Error)
    assert "syntax error" in e.message
    assert "SELEC" in e.message
    assert e.sql.startswith("SELEC 1")
    assert e.code.startswith("postgres:" if target.is_pg else "sqlite:")
    await assert_works(call, db)


@pytest.mark.asyncio
async def test_missing_table_is_a_syntax_error(target, call):
    db = target.open()
    with pytest.raises(entity_db.SQLSyntaxError) as info:
        await call(db, "execute", "INSERT INTO no_such_table VALUES (1)")
    assert "no_such_table" in info.value.message
    assert info.value.sql.startswith("INSERT INTO no_such_table")
    await assert_works(call, db)


@pytest.mark.asyncio
async def test_sql_is_the_start_of_a_long_statement(target, call):
    db = target.open()
    sql = "SELECT no_such_column FROM " + "x" * 5000
    with pytest.raises(entity_db.SQLSyntaxError) as info:
        await call(db, "fetch_all", sql)
    got = info.value.sql
    assert got[:20] == sql[:20]
    assert len(got) < len(sql)


@pytest.mark.asyncio
async def test_script_error(target, call):
    db = target.open()
    with pytest.raises(entity_db.SQLSyntaxError) as info:
        await call(db, "execute_script", "CREATE TABLE a (x INTEGER); SELEC oops; SELECT 1")
    assert "SELEC" in info.value.message or info.value.sql.startswith("SELEC")
    await assert_works(call, db)


BAD_PARAMETERS = [object(), [1, 2], {"a": 1}, 1 + 2j, {1, 2}, (1, 2), 2**63, -(2**63) - 1]


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", BAD_PARAMETERS, ids=lambda v: type(v).__name__ + repr(v)[:10])
async def test_unsupported_parameter_type(target, call, bad):
    db = target.open()
    await call(db, "execute", "CREATE TABLE t (x TEXT)")
    with pytest.raises(entity_db.InvalidArgumentError) as info:
        await call(db, "execute", "INSERT INTO t VALUES (?)", (bad,))
    assert isinstance(info.value, ValueError)
    assert (await call(db, "fetch_one", "SELECT count(*) FROM t"))[0] == 0
    await call(db, "execute", "INSERT INTO t VALUES (?)", ("fine",))
    assert (await call(db, "fetch_one", "SELECT count(*) FROM t"))[0] == 1


@pytest.mark.asyncio
async def test_wrong_number_of_parameters(target, call):
    db = target.open()
    await call(db, "execute", "CREATE TABLE t (x TEXT, y TEXT)")
    for params in [("one",), ("a", "b", "c")]:
        with pytest.raises(entity_db.InvalidArgumentError):
            await call(db, "execute", "INSERT INTO t VALUES (?, ?)", params)
    assert (await call(db, "fetch_one", "SELECT count(*) FROM t"))[0] == 0


@pytest.mark.parametrize(
    "settings",
    [
        {"no_such_setting": 1},
        {"poolsize": 3},
        {"journal_mode": "sideways"},
        {"synchronous": "sometimes"},
        {"temp_store": "attic"},
        {"pool_size": -1},
        {"query_timeout": "soon"},
    ],
    ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()),
)
def test_bad_open_settings(tmp_path, settings):
    path = tmp_path / "bad.db"
    with pytest.raises(entity_db.InvalidArgumentError) as info:
        db = entity_db.open(str(path), **settings)
        db.close_sync()
    assert isinstance(info.value, ValueError)
    # A good open of the same file still works.
    db = entity_db.open(str(path))
    try:
        assert db.fetch_one_sync("SELECT 1")[0] == 1
    finally:
        db.close_sync()


@pytest.mark.parametrize("settings", [{"no_such_setting": 1}, {"pool_size": -1}],
                         ids=["unknown", "bad_value"])
def test_bad_open_settings_on_postgres(pg_target, settings):
    with pytest.raises(entity_db.InvalidArgumentError):
        db = pg_target.open(**settings)
        db.close_sync()
    db = pg_target.open()
    assert db.fetch_one_sync("SELECT 1")[0] == 1


@pytest.mark.asyncio
async def test_errors_in_a_row_leave_the_database_usable(target, call):
    db = target.open(query_timeout=0.3)
    await call(db, "execute", "CREATE TABLE u (name TEXT UNIQUE)")
    await call(db, "execute", "INSERT INTO u VALUES ('a')")
    for _ in range(3):
        with pytest.raises(entity_db.ConstraintError):
            await call(db, "execute", "INSERT INTO u VALUES ('a')")
        with pytest.raises(entity_db.SQLSyntaxError):
            await call(db, "execute", "NOT SQL AT ALL")
        with pytest.raises(entity_db.InvalidArgumentError):
            await call(db, "execute", "INSERT INTO u VALUES (?)", (object(),))
        with pytest.raises(entity_db.QueryTimeoutError):
            await call(db, "fetch_one", target.runaway)
        await assert_works(call, db)
    assert await call(db, "health_check") is True
    assert db.stats()["errors"] >= 1
    assert (await call(db, "fetch_one", "SELECT count(*) FROM u"))[0] == 1


def test_the_awaitable_form_needs_a_running_loop(sqlite_target):
    db = sqlite_target.open()
    with pytest.raises(RuntimeError):
        db.fetch_one("SELECT 1")
    with pytest.raises(RuntimeError):
        db.memory().load("k")
    assert db.fetch_one_sync("SELECT 1")[0] == 1


@pytest.mark.asyncio
async def test_busy_error_when_another_process_holds_the_lock(sqlite_target, call):
    db = sqlite_target.open(busy_timeout=0.1, query_timeout=0.5)
    await call(db, "execute", "CREATE TABLE t (x INTEGER)")
    other = sqlite3.connect(sqlite_target.location, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t VALUES (9)")
        t0 = time.monotonic()
        with pytest.raises(entity_db.BusyError) as info:
            await call(db, "execute", "INSERT INTO t VALUES (?)", (1,))
        assert time.monotonic() - t0 < 5
        assert info.value.sql.startswith("INSERT INTO t")
        other.execute("ROLLBACK")
    finally:
        other.close()
    await call(db, "execute", "INSERT INTO t VALUES (?)", (2,))
    assert (await call(db, "fetch_all", "SELECT x FROM t"))[0][0] == 2


@pytest.mark.asyncio
async def test_pool_exhausted(target, call):
    db = target.open(pool_size=1, min_connections=1, acquire_timeout=0.2, query_timeout=1.0)
    busy = threading.Thread(target=lambda: _swallow(db.fetch_one_sync, target.runaway))
    busy.start()
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        with pytest.raises(entity_db.PoolExhaustedError) as info:
            await call(db, "fetch_one", "SELECT 1")
        assert time.monotonic() - t0 < 2.5
        assert isinstance(info.value, TimeoutError)
    finally:
        busy.join(10)
    assert (await call(db, "fetch_one", "SELECT 1"))[0] == 1


def _swallow(fn, *args):
    try:
        fn(*args)
    except entity_db.Error:
        pass


def test_storage_error_for_what_is_not_a_database_file(tmp_path):
    with pytest.raises(entity_db.StorageError) as info:
        entity_db.open(str(tmp_path)).close_sync()  # a folder
    assert isinstance(info.value, OSError)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database file " * 200)
    with pytest.raises(entity_db.StorageError) as info:
        db = entity_db.open(str(garbage))
        try:
            db.fetch_one_sync("SELECT count(*) FROM sqlite_master")
        finally:
            db.close_sync()
    assert info.value.code.startswith("sqlite:")


def test_connection_error_when_no_server_listens():
    t0 = time.monotonic()
    with pytest.raises(entity_db.DatabaseConnectionError) as info:
        entity_db.open("postgresql://postgres@127.0.0.1:1/postgres", connect_timeout=2).close_sync()
    assert isinstance(info.value, ConnectionError)
    assert info.value.message
    assert time.monotonic() - t0 < 15
