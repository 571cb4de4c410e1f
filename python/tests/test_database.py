"""Database: statements, parameters, rows, results, scripts, batches, transactions, lifecycle."""

import asyncio

import pytest

import entity_db

pytestmark = pytest.mark.asyncio

STATS_KEYS = {
    "pool_size",
    "open_connections",
    "idle_connections",
    "busy_connections",
    "queued_operations",
    "operations",
    "errors",
    "timeouts",
    "group_commits",
    "grouped_operations",
    "mean_group_size",
    "pipeline_batches",
    "inline_operations",
    "statement_cache_hits",
    "statement_cache_misses",
    "p50_latency_us",
    "p99_latency_us",
}


async def make_values_table(call, db, t):
    await call(
        db,
        "execute",
        f"CREATE TABLE vals (id {t.int_type} PRIMARY KEY, n {t.int_type}, f {t.real_type}, "
        f"s TEXT, b {t.blob_type})",
    )


async def count(call, db, table):
    row = await call(db, "fetch_one", f"SELECT count(*) FROM {table}")
    return row[0]


# ---- opening ----------------------------------------------------------------------------------


async def test_backend_and_closed_attributes(any_target, call):
    db = any_target.open()
    assert isinstance(db, entity_db.Database)
    assert isinstance(db.memory(), entity_db.Memory)
    assert isinstance(db.vector_store(), entity_db.VectorStore)
    assert db.backend == any_target.backend
    assert db.closed is False
    assert await call(db, "health_check") is True
    await call(db, "close")
    assert db.closed is True


async def test_open_default_target_is_in_memory(call, event_loop):
    db = entity_db.open()
    try:
        assert db.backend == "sqlite"
        await call(db, "execute", "CREATE TABLE t (x INTEGER)")
        await call(db, "execute", "INSERT INTO t VALUES (?)", (5,))
        assert (await call(db, "fetch_one", "SELECT x FROM t"))[0] == 5
    finally:
        db.close_sync()


async def test_missing_folders_are_created(tmp_path, call, event_loop):
    path = tmp_path / "a" / "b" / "c" / "test.db"
    db = entity_db.open(str(path))
    try:
        await call(db, "execute", "CREATE TABLE t (x INTEGER)")
    finally:
        db.close_sync()
    assert path.exists()


async def test_sqlite_settings_are_accepted(sqlite_target, call):
    db = sqlite_target.open(
        pool_size=3,
        min_connections=1,
        query_timeout=10,
        acquire_timeout=2.0,
        busy_timeout=1.5,
        journal_mode="delete",
        synchronous="full",
        durable=True,
        temp_store="file",
        mmap_size=0,
        statement_cache_size=16,
        max_group_size=32,
        inline_budget=0.001,
    )
    assert db.stats()["pool_size"] == 4  # 3 readers and the writer
    row = await call(db, "fetch_one", "PRAGMA journal_mode")
    assert row[0].lower() == "delete"
    await call(db, "execute", "CREATE TABLE t (x INTEGER)")
    await call(db, "execute", "INSERT INTO t VALUES (1)")
    assert await count(call, db, "t") == 1


async def test_engine_settings_are_accepted(target, call):
    if not target.is_pg:
        db = target.open(pool_size=2, min_connections=1, query_timeout=5.0, acquire_timeout=1.0)
    else:
        db = target.open(
            pool_size=3,
            min_connections=1,
            query_timeout=10.0,
            acquire_timeout=2.0,
            connect_timeout=5.0,
            pipeline_chunk=100,
        )
    assert await call(db, "health_check") is True
    assert (await call(db, "fetch_one", "SELECT 1 + 1"))[0] == 2


async def test_sqlite_defaults_and_durable(sqlite_target, call):
    db = sqlite_target.open()
    assert (await call(db, "fetch_one", "PRAGMA journal_mode"))[0].lower() == "wal"
    assert (await call(db, "fetch_one", "PRAGMA synchronous"))[0] == 1  # NORMAL
    assert (await call(db, "fetch_one", "PRAGMA temp_store"))[0] == 2  # MEMORY
    await call(db, "close")
    db = sqlite_target.open(durable=True)
    assert (await call(db, "fetch_one", "PRAGMA synchronous"))[0] == 2  # FULL


async def test_postgres_url_schemes(pg_target, call):
    url = pg_target.location
    assert url.startswith("postgresql://")
    db = entity_db.open("postgres://" + url[len("postgresql://"):])
    try:
        assert db.backend == "postgres"
        assert (await call(db, "fetch_one", "SELECT current_schema()"))[0] == pg_target.schema
    finally:
        db.close_sync()


async def test_postgres_execute_many_is_pipelined(pg_target, call):
    db = pg_target.open(pipeline_chunk=50)
    await call(db, "execute", "CREATE TABLE t (id BIGINT PRIMARY KEY)")
    before = db.stats()["pipeline_batches"]
    r = await call(db, "execute_many", "INSERT INTO t VALUES (?)", [(i,) for i in range(200)])
    assert r.rows_affected == 200
    assert db.stats()["pipeline_batches"] > before


async def test_postgres_statement_cache(pg_target, call):
    db = pg_target.open(pool_size=1)
    await call(db, "execute", "CREATE TABLE t (id BIGINT PRIMARY KEY)")
    await call(db, "execute", "INSERT INTO t VALUES (1)")
    before = db.stats()
    for _ in range(5):
        assert (await call(db, "fetch_one", "SELECT id FROM t WHERE id = ?", (1,)))[0] == 1
    after = db.stats()
    assert after["statement_cache_misses"] - before["statement_cache_misses"] == 1
    assert after["statement_cache_hits"] - before["statement_cache_hits"] == 4

    off = pg_target.open(pool_size=1, statement_cache_size=0)
    for _ in range(3):
        assert (await call(off, "fetch_one", "SELECT id FROM t WHERE id = ?", (1,)))[0] == 1
    assert (await call(off, "fetch_one", "SELECT count(*) FROM pg_prepared_statements"))[0] == 0
    assert off.stats()["statement_cache_hits"] == 0
    assert off.stats()["statement_cache_misses"] == 0


async def test_postgres_tests_run_in_their_own_schema(pg_target, call):
    db = pg_target.open()
    row = await call(db, "fetch_one", "SELECT current_schema()")
    assert row[0] == pg_target.schema


# ---- parameters and values --------------------------------------------------------------------


VALUES = [
    # (n, f, s, b)
    (None, None, None, None),
    (0, 0.0, "", b""),
    (2**63 - 1, 3.141592653589793, "plain", b"\x00\x01\x02\xff"),
    (-(2**63), -1.5e300, "ünïcödé ✓ 日本語 🐍 \"quotes\" 'single' \\ \n\t", bytes(range(256))),
    (-1, 1e-300, "x" * 10_000, b"\xab" * 100_000),
    (42, -0.25, "a\u00e9\u4e2d\U0001f600", bytearray(b"from a bytearray")),
    (7, 2.5, "view", memoryview(b"from a memoryview")),
]


async def test_every_parameter_type_round_trips(any_target, call):
    db = any_target.open()
    await make_values_table(call, db, any_target)
    for i, (n, f, s, b) in enumerate(VALUES):
        r = await call(db, "execute", "INSERT INTO vals (id, n, f, s, b) VALUES (?, ?, ?, ?, ?)",
                       (i, n, f, s, b))
        assert r.rows_affected == 1
    rows = await call(db, "fetch_all", "SELECT id, n, f, s, b FROM vals ORDER BY id")
    assert len(rows) == len(VALUES)
    for row, (n, f, s, b) in zip(rows, VALUES):
        assert row[1] == n and (n is None or type(row[1]) is int)
        assert row[2] == f and (f is None or type(row[2]) is float)
        assert row[3] == s and (s is None or type(row[3]) is str)
        if b is None:
            assert row[4] is None
        else:
            assert type(row[4]) is bytes
            assert row[4] == bytes(b)


async def test_bool_binds_as_integer(any_target, call):
    db = any_target.open()
    await make_values_table(call, db, any_target)
    await call(db, "execute", "INSERT INTO vals (id, n) VALUES (?, ?)", (1, True))
    await call(db, "execute", "INSERT INTO vals (id, n) VALUES (?, ?)", (2, False))
    rows = await call(db, "fetch_all", "SELECT n FROM vals ORDER BY id")
    assert [r[0] for r in rows] == [1, 0]
    row = await call(db, "fetch_one", "SELECT count(*) FROM vals WHERE n = ?", (True,))
    assert row[0] == 1


async def test_parameters_filter_and_params_may_be_a_list(any_target, call):
    db = any_target.open()
    await make_values_table(call, db, any_target)
    await call(db, "execute_many", "INSERT INTO vals (id, s) VALUES (?, ?)",
               [(i, f"s{i}") for i in range(5)])
    row = await call(db, "fetch_one", "SELECT s FROM vals WHERE id = ? AND s = ?", [3, "s3"])
    assert row[0] == "s3"
    assert await call(db, "fetch_one", "SELECT s FROM vals WHERE id = ?", (99,)) is None


# ---- rows and results -------------------------------------------------------------------------


async def test_row_is_a_tuple_that_indexes_by_name(any_target, call):
    db = any_target.open()
    await call(db, "execute", "CREATE TABLE people (id INTEGER, name TEXT, age INTEGER)")
    await call(db, "execute", "INSERT INTO people VALUES (?, ?, ?)", (1, "Ada", 36))
    row = await call(db, "fetch_one", "SELECT id, name, age FROM people")
    assert isinstance(row, tuple)
    assert row == (1, "Ada", 36)
    assert len(row) == 3
    assert row[1] == "Ada" and row[-1] == 36
    assert row["id"] == 1 and row["name"] == "Ada" and row["age"] == 36
    assert list(row.keys()) == ["id", "name", "age"]
    assert row.as_dict() == {"id": 1, "name": "Ada", "age": 36}
    a, b, c = row
    assert (a, b, c) == (1, "Ada", 36)
    rows = await call(db, "fetch_all", "SELECT name AS who, age * 2 AS twice FROM people")
    assert isinstance(rows, list) and len(rows) == 1
    assert isinstance(row, entity_db.Row) and isinstance(rows[0], entity_db.Row)
    assert rows[0]["who"] == "Ada" and rows[0]["twice"] == 72
    assert rows[0].as_dict() == {"who": "Ada", "twice": 72}


async def test_result_rows_affected_len_and_iteration(any_target, call):
    db = any_target.open()
    await call(db, "execute", "CREATE TABLE t (id INTEGER, v TEXT)")
    await call(db, "execute_many", "INSERT INTO t VALUES (?, ?)", [(i, "a") for i in range(6)])
    r = await call(db, "execute", "UPDATE t SET v = ? WHERE id < ?", ("b", 4))
    assert r.rows_affected == 4
    r = await call(db, "execute", "DELETE FROM t WHERE id >= ?", (5,))
    assert r.rows_affected == 1
    r = await call(db, "execute", "SELECT id, v FROM t ORDER BY id")
    assert isinstance(r.rows, list)
    assert len(r) == 5 == len(r.rows)
    assert [tuple(x) for x in r] == [(0, "b"), (1, "b"), (2, "b"), (3, "b"), (4, "a")]
    assert r.rows[4]["v"] == "a"


async def test_last_insert_id(any_target, call):
    db = any_target.open()
    await call(db, "execute", f"CREATE TABLE t (id {any_target.auto_key}, v TEXT)")
    if any_target.is_pg:
        # PostgreSQL has no last insert id: RETURNING gives the key.
        r = await call(db, "execute", "INSERT INTO t (v) VALUES (?) RETURNING id", ("a",))
        assert r.rows[0]["id"] == 1
        assert isinstance(r.last_insert_id, int)
        return
    r1 = await call(db, "execute", "INSERT INTO t (v) VALUES (?)", ("a",))
    r2 = await call(db, "execute", "INSERT INTO t (v) VALUES (?)", ("b",))
    assert r1.last_insert_id == 1 and r2.last_insert_id == 2
    assert r2.rows_affected == 1
    row = await call(db, "fetch_one", "SELECT v FROM t WHERE id = ?", (r2.last_insert_id,))
    assert row[0] == "b"


# ---- scripts and batches ----------------------------------------------------------------------


async def test_execute_script(any_target, call):
    db = any_target.open()
    result = await call(
        db,
        "execute_script",
        "CREATE TABLE a (x INTEGER); CREATE TABLE b (y TEXT);\n"
        "INSERT INTO a VALUES (1); INSERT INTO a VALUES (2); INSERT INTO b VALUES ('z');",
    )
    assert result is None
    assert await count(call, db, "a") == 2
    assert (await call(db, "fetch_one", "SELECT y FROM b"))[0] == "z"


async def test_execute_many_totals_rows_affected(any_target, call):
    db = any_target.open()
    await call(db, "execute", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    r = await call(db, "execute_many", "INSERT INTO t VALUES (?, ?)",
                   [(i, f"v{i}") for i in range(10)])
    assert r.rows_affected == 10
    assert await count(call, db, "t") == 10
    r = await call(db, "execute_many", "UPDATE t SET v = ? WHERE id = ?",
                   [("w", 1), ("w", 2), ("w", 1000)])
    assert r.rows_affected == 2


async def test_execute_many_accepts_a_generator(any_target, call):
    db = any_target.open()
    await call(db, "execute", "CREATE TABLE t (id INTEGER PRIMARY KEY)")
    await call(db, "execute_many", "INSERT INTO t VALUES (?)", ((i,) for i in range(7)))
    assert await count(call, db, "t") == 7


async def test_execute_many_is_all_or_nothing(any_target, call):
    db = any_target.open()
    await call(db, "execute", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
    batch = [(i, f"n{i}") for i in range(10)]
    batch[6] = (6, "n2")  # row 7 of 10 repeats row 3's unique name
    with pytest.raises(entity_db.ConstraintError):
        await call(db, "execute_many", "INSERT INTO t VALUES (?, ?)", batch)
    assert await count(call, db, "t") == 0
    # A bad parameter in the middle of a batch writes nothing either.
    batch = [(i, f"n{i}") for i in range(10)]
    batch[6] = (6, object())
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(db, "execute_many", "INSERT INTO t VALUES (?, ?)", batch)
    assert await count(call, db, "t") == 0
    # And the table still takes writes.
    await call(db, "execute_many", "INSERT INTO t VALUES (?, ?)", [(1, "a"), (2, "b")])
    assert await count(call, db, "t") == 2


# ---- transactions -----------------------------------------------------------------------------


async def test_transaction_commits_and_returns_the_value(any_target, call):
    db = any_target.open()
    await call(db, "execute", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")

    def body(tx):
        assert isinstance(tx, entity_db.Transaction)
        tx.execute("INSERT INTO t VALUES (?, ?)", (1, "a"))
        tx.execute("INSERT INTO t VALUES (?, ?)", (2, "b"))
        one = tx.fetch_one("SELECT count(*) AS n FROM t")
        rows = tx.fetch_all("SELECT v FROM t ORDER BY id")
        assert isinstance(one, entity_db.Row) and one["n"] == one[0]
        assert tx.fetch_one("SELECT v FROM t WHERE id = ?", (99,)) is None
        return {"count": one[0], "values": [r["v"] for r in rows]}

    assert await call(db, "transaction", body) == {"count": 2, "values": ["a", "b"]}
    assert await count(call, db, "t") == 2


async def test_transaction_rolls_back_when_the_body_raises(any_target, call):
    db = any_target.open()
    await call(db, "execute", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    await call(db, "execute", "INSERT INTO t VALUES (?, ?)", (100, "before"))

    class Boom(Exception):
        pass

    raised = Boom("boom")

    def body(tx):
        tx.execute("INSERT INTO t VALUES (?, ?)", (1, "a"))
        tx.execute("UPDATE t SET v = ? WHERE id = ?", ("changed", 100))
        raise raised

    with pytest.raises(Boom) as info:
        await call(db, "transaction", body)
    assert info.value is raised
    assert await count(call, db, "t") == 1
    assert (await call(db, "fetch_one", "SELECT v FROM t WHERE id = 100"))[0] == "before"

    # An engine error inside the body propagates and rolls back too.
    def failing(tx):
        tx.execute("INSERT INTO t VALUES (?, ?)", (2, "b"))
        tx.execute("INSERT INTO t VALUES (?, ?)", (100, "duplicate"))
        tx.fetch_one("SELECT 1")

    with pytest.raises(entity_db.ConstraintError):
        await call(db, "transaction", failing)
    assert await count(call, db, "t") == 1

    # The database takes the next transaction.
    def good(tx):
        tx.execute("INSERT INTO t VALUES (?, ?)", (3, "c"))
        return "done"

    assert await call(db, "transaction", good) == "done"
    assert await count(call, db, "t") == 2


# ---- health, stats, timeouts ------------------------------------------------------------------


async def test_health_check_and_stats(any_target, call):
    db = any_target.open()
    assert await call(db, "health_check") is True
    await call(db, "fetch_one", "SELECT 1")
    stats = db.stats()
    assert isinstance(stats, dict)
    missing = STATS_KEYS - set(stats)
    assert not missing, f"stats() lacks {sorted(missing)}"
    for k in STATS_KEYS:
        assert isinstance(stats[k], (int, float)) and not isinstance(stats[k], bool), k
    # SQLite counts its writer beside the 5 readers; PostgreSQL's 5 connections do both.
    assert stats["pool_size"] == (5 if any_target.is_pg else 6)
    assert stats["operations"] >= 1


async def test_with_timeout_shares_the_engine(any_target, call):
    db = any_target.open()
    await call(db, "execute", "CREATE TABLE t (x INTEGER)")
    short = db.with_timeout(0.2)
    assert isinstance(short, entity_db.Database)
    assert short.backend == db.backend
    await call(short, "execute", "INSERT INTO t VALUES (1)")
    assert await count(call, db, "t") == 1
    with pytest.raises(entity_db.QueryTimeoutError):
        await call(short, "fetch_one", any_target.runaway)
    # The engine's own timeout is untouched: a short query on db still runs.
    assert (await call(db, "fetch_one", "SELECT count(*) FROM t"))[0] == 1
    assert (await call(short, "fetch_one", "SELECT count(*) FROM t"))[0] == 1
    # The handles share one engine: closing it closes both.
    await call(db, "close")
    with pytest.raises(entity_db.ShutDownError):
        await call(short, "fetch_one", "SELECT 1")


# ---- lifecycle --------------------------------------------------------------------------------


async def test_close_is_idempotent_and_use_after_close_raises(any_target, call):
    db = any_target.open()
    await call(db, "execute", "CREATE TABLE t (x INTEGER)")
    mem = db.memory()
    vs = db.vector_store()
    await call(db, "close")
    await call(db, "close")
    db.close_sync()
    await db.close()
    assert db.closed
    attempts = [
        (db, "execute", ("INSERT INTO t VALUES (1)",)),
        (db, "fetch_one", ("SELECT 1",)),
        (db, "fetch_all", ("SELECT 1",)),
        (db, "execute_script", ("SELECT 1",)),
        (db, "execute_many", ("INSERT INTO t VALUES (?)", [(1,)])),
        (db, "transaction", (lambda tx: None,)),
        (mem, "store", ("k", 1)),
        (mem, "load", ("k",)),
        (vs, "list_collections", ()),
    ]
    for obj, verb, args in attempts:
        with pytest.raises(entity_db.ShutDownError) as info:
            await call(obj, verb, *args)
        assert isinstance(info.value, RuntimeError)
        assert isinstance(info.value, entity_db.Error)


async def test_with_statement_closes(any_target, call):
    with any_target.open() as db:
        assert (await call(db, "fetch_one", "SELECT 1"))[0] == 1
    assert db.closed
    with pytest.raises(entity_db.ShutDownError):
        await call(db, "fetch_one", "SELECT 1")


async def test_async_with_statement_closes(any_target):
    async with any_target.open() as db:
        assert (await db.fetch_one("SELECT 1"))[0] == 1
    assert db.closed
    with pytest.raises(entity_db.ShutDownError):
        await db.fetch_one("SELECT 1")


async def test_with_statement_closes_when_the_block_raises(any_target):
    with pytest.raises(KeyError):
        async with any_target.open() as db:
            raise KeyError("x")
    assert db.closed


async def test_a_database_keeps_its_data(target, call):
    db = target.open()
    await call(db, "execute", "CREATE TABLE t (x TEXT)")
    await call(db, "execute", "INSERT INTO t VALUES (?)", ("kept",))
    await call(db, "close")
    db = target.open()
    assert (await call(db, "fetch_one", "SELECT x FROM t"))[0] == "kept"


async def test_concurrent_statements_on_one_database(any_target):
    db = any_target.open()
    await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    await asyncio.gather(*[db.execute("INSERT INTO t VALUES (?)", (i,)) for i in range(100)])
    rows = await asyncio.gather(*[db.fetch_one("SELECT ? + 1", (i,)) if not any_target.is_pg
                                  else db.fetch_one("SELECT CAST(? AS BIGINT) + 1", (i,))
                                  for i in range(50)])
    assert [r[0] for r in rows] == [i + 1 for i in range(50)]
    assert (await db.fetch_one("SELECT count(*) FROM t"))[0] == 100


async def test_health_check_is_false_after_close(any_target, call):
    db = any_target.open()
    assert await call(db, "health_check") is True
    await call(db, "close")
    assert await call(db, "health_check") is False


async def test_bad_handle_settings(any_target):
    db = any_target.open()
    for make in (lambda: db.memory(no_such_setting=1),
                 lambda: db.vector_store(no_such_setting=1),
                 lambda: db.vector_store(hnsw_m=-3),
                 lambda: db.with_timeout(0),
                 lambda: db.with_timeout(-1.0)):
        with pytest.raises(entity_db.InvalidArgumentError):
            make()
    assert (await db.fetch_one("SELECT 1"))[0] == 1

