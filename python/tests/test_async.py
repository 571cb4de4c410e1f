"""Asynchrony: a responsive event loop, cancellation, many loops and threads, shutdown, exit."""

import asyncio
import json
import textwrap
import threading
import time

import pytest

import entity_db
from conftest import MAX_LOOP_GAP, RUNAWAY_POSTGRES, RUNAWAY_SQLITE, Ticker, long_query
from conftest import run_child

# ---- the loop stays responsive ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_loop_runs_other_tasks_during_a_long_query(target):
    db = target.open(query_timeout=60)
    sql = long_query(target, 2)
    await db.fetch_one("SELECT 1")  # connections are open before the measurement
    async with Ticker() as ticker:
        t0 = time.monotonic()
        row = await db.fetch_one(sql)
        elapsed = time.monotonic() - t0
    assert row is not None
    assert elapsed > 0.5, f"the long query took only {elapsed:.2f} s"
    gap = ticker.max_gap()
    assert gap < MAX_LOOP_GAP, (
        f"the loop was blocked for {gap * 1000:.0f} ms while a {elapsed:.1f} s query ran")


@pytest.mark.asyncio
async def test_loop_runs_other_tasks_during_many_short_loads(target):
    mem = target.open().memory()
    await mem.store("k", {"v": 1})
    async with Ticker() as ticker:
        t0 = time.monotonic()
        for _ in range(100_000):
            value = await mem.load("k")
        elapsed = time.monotonic() - t0
    assert value == {"v": 1}
    gap = ticker.max_gap()
    assert gap < MAX_LOOP_GAP, (
        f"the loop was blocked for {gap * 1000:.0f} ms during 100,000 loads ({elapsed:.1f} s)")
    assert len(ticker.ticks) > 3


@pytest.mark.asyncio
async def test_short_async_work_runs_inline_on_sqlite(sqlite_target):
    db = sqlite_target.open()
    mem = db.memory()
    await mem.store("k", 1)
    before = db.stats()["inline_operations"]
    for _ in range(200):
        assert await mem.load("k") == 1
    assert db.stats()["inline_operations"] > before


@pytest.mark.asyncio
async def test_loop_runs_other_tasks_during_concurrent_loads(target):
    mem = target.open().memory()
    await mem.store("k", 1)

    async def loads(n):
        for _ in range(n):
            assert await mem.load("k") == 1

    async with Ticker() as ticker:
        await asyncio.gather(*[loads(2_000) for _ in range(10)])
    assert ticker.max_gap() < MAX_LOOP_GAP


def test_sync_calls_release_the_gil(target):
    db = target.open(query_timeout=60)
    sql = long_query(target, 1)
    db.fetch_one_sync("SELECT 1")
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.002)

    th = threading.Thread(target=tick)
    th.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    db.fetch_one_sync(sql)
    elapsed = time.monotonic() - t0
    ticks.append(time.monotonic())
    stop.set()
    th.join()
    gap = max(b - a for a, b in zip(ticks, ticks[1:]))
    assert elapsed > 0.3, f"the long query took only {elapsed:.2f} s"
    assert gap < MAX_LOOP_GAP, (
        f"another thread was stopped for {gap * 1000:.0f} ms during a {elapsed:.1f} s query")


@pytest.mark.asyncio
async def test_loop_runs_other_tasks_during_a_transaction(target):
    db = target.open()
    await db.execute("CREATE TABLE t (x INTEGER)")

    def body(tx):
        tx.execute("INSERT INTO t VALUES (1)")
        time.sleep(0.5)
        return tx.fetch_one("SELECT count(*) FROM t")[0]

    async with Ticker() as ticker:
        assert await db.transaction(body) == 1
    assert ticker.max_gap() < MAX_LOOP_GAP


# ---- cancellation -----------------------------------------------------------------------------


async def assert_stopped(db, target, within=1.0):
    """The engine's connections are idle again: the cancelled statement no longer runs."""
    deadline = time.monotonic() + within
    while db.stats()["busy_connections"] != 0:
        assert time.monotonic() < deadline, "a cancelled statement still holds its connection"
        await asyncio.sleep(0.01)
    if target.is_pg:
        row = await db.fetch_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query = ? AND state = 'active'",
            (target.runaway,))
        assert row[0] == 0, "the cancelled statement still runs on the server"


@pytest.mark.asyncio
async def test_wait_for_interrupts_the_query(target):
    # One connection: the next query can only run once the runaway one has been stopped.
    db = target.open(pool_size=1, min_connections=1, query_timeout=30)
    for _ in range(3):
        t0 = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(db.fetch_one(target.runaway), 0.2)
        elapsed = time.monotonic() - t0
        assert elapsed < 2.0, f"wait_for(0.2) returned after {elapsed:.2f} s"
        await assert_stopped(db, target)
        t1 = time.monotonic()
        row = await asyncio.wait_for(db.fetch_one("SELECT 1"), 10)
        assert row[0] == 1
        assert time.monotonic() - t1 < 1.0, "the next query waited for the cancelled one"
    assert await db.health_check() is True


@pytest.mark.asyncio
async def test_task_cancel_interrupts_the_query(target):
    db = target.open(pool_size=1, min_connections=1, query_timeout=30)

    async def runaway():
        return await db.fetch_all(target.runaway)

    for _ in range(2):
        task = asyncio.get_running_loop().create_task(runaway())
        await asyncio.sleep(0.2)
        assert not task.done()
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        assert time.monotonic() - t0 < 2.0
        await assert_stopped(db, target)
        t1 = time.monotonic()
        assert (await asyncio.wait_for(db.fetch_one("SELECT 1"), 10))[0] == 1
        assert time.monotonic() - t1 < 1.0, "the next query waited for the cancelled one"


@pytest.mark.asyncio
async def test_cancelled_write_in_a_batch_leaves_others(target):
    db = target.open()
    mem = db.memory()
    async def store(i):
        await mem.store(f"k{i}", i)

    tasks = [asyncio.get_running_loop().create_task(store(i)) for i in range(20)]
    await asyncio.sleep(0)
    tasks[5].cancel()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    for i, r in enumerate(results):
        assert r is None or isinstance(r, asyncio.CancelledError), (i, r)
    for i, r in enumerate(results):
        if r is None:
            assert await mem.load(f"k{i}") == i
    assert (await db.fetch_one("SELECT 1"))[0] == 1


# ---- concurrency ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_fifty_concurrent_stores_all_land(any_target):
    mem = any_target.open().memory()
    await asyncio.gather(*[mem.store(f"k{i:02d}", {"i": i}) for i in range(50)])
    assert await mem.size() == 50
    loaded = await mem.batch_load([f"k{i:02d}" for i in range(50)])
    assert loaded == {f"k{i:02d}": {"i": i} for i in range(50)}
    values = await asyncio.gather(*[mem.load(f"k{i:02d}") for i in range(50)])
    assert values == [{"i": i} for i in range(50)]


@pytest.mark.asyncio
async def test_stores_started_together_commit_as_one_group(sqlite_target):
    db = sqlite_target.open()
    mem = db.memory()
    await mem.store("warm", 0)
    before = db.stats()
    await asyncio.gather(*[mem.store(f"k{i}", i) for i in range(20)])
    after = db.stats()
    assert after["group_commits"] - before["group_commits"] == 1
    assert after["grouped_operations"] - before["grouped_operations"] == 20
    assert await mem.size() == 21


@pytest.mark.asyncio
async def test_a_write_nobody_awaits_still_runs_on_the_next_turn(any_target):
    mem = any_target.open().memory()
    fut = mem.store("k", {"v": 1})  # never awaited
    for _ in range(200):
        if fut.done():
            break
        await asyncio.sleep(0.005)
    assert fut.done() and fut.exception() is None
    assert await mem.load("k") == {"v": 1}


@pytest.mark.asyncio
async def test_a_write_cancelled_before_it_runs_writes_nothing(sqlite_target):
    mem = sqlite_target.open().memory()
    await mem.store("warm", 0)
    fut = mem.store("k", 1)
    assert fut.cancel()
    with pytest.raises(asyncio.CancelledError):
        await fut
    await asyncio.sleep(0.05)
    assert await mem.exists("k") is False
    await mem.store("k", 2)  # the memory goes on as before
    assert await mem.load("k") == 2


@pytest.mark.asyncio
async def test_completions_from_the_engine_come_back_in_batches(sqlite_target):
    # With no inline budget every store runs on the engine's writer thread, which commits
    # them in groups: a group's completions reach the loop through one wake-up, not one each.
    mem = sqlite_target.open(inline_budget=0).memory()
    await mem.store("warm", 0)
    before = entity_db._core.loop_stats()
    n = 500
    await asyncio.gather(*[mem.store(f"k{i}", i) for i in range(n)])
    after = entity_db._core.loop_stats()
    completions = after["completions"] - before["completions"]
    wakeups = after["wakeups"] - before["wakeups"]
    assert completions == n
    assert 1 <= wakeups <= n // 5, f"{wakeups} wake-ups for {n} completions"
    assert await mem.size() == n + 1


MANY_LOOPS = """
import asyncio, json, sys, threading
import entity_db

db = entity_db.open(sys.argv[1], pool_size=4)
mem = db.memory()
errors = []
N = 500

def loop_thread(t):
    async def main():
        for i in range(N):
            await mem.store(f"loop{t}:{i:03d}", {"t": t, "i": i})
            got = await mem.load(f"loop{t}:{i:03d}")
            if got != {"t": t, "i": i}:
                raise AssertionError(f"loop {t} key {i}: {got!r}")
        # and a burst of concurrent ones
        await asyncio.gather(*[mem.store(f"burst{t}:{i:03d}", i) for i in range(50)])
    try:
        asyncio.run(main())
    except BaseException as e:
        errors.append(f"loop {t}: {e!r}")

def sync_thread(t):
    try:
        for i in range(N):
            mem.store_sync(f"sync{t}:{i:03d}", [t, i])
            got = mem.load_sync(f"sync{t}:{i:03d}")
            if got != [t, i]:
                raise AssertionError(f"sync {t} key {i}: {got!r}")
    except BaseException as e:
        errors.append(f"sync {t}: {e!r}")

threads = [threading.Thread(target=loop_thread, args=(t,)) for t in range(4)]
threads += [threading.Thread(target=sync_thread, args=(t,)) for t in range(2)]
for th in threads:
    th.start()
for th in threads:
    th.join(90)
report = {
    "alive": sum(th.is_alive() for th in threads),
    "errors": errors,
    "size": mem.size_sync(),
    "counts": {p: len(mem.keys_sync(p + "%"))
               for p in [f"loop{t}:" for t in range(4)] + [f"burst{t}:" for t in range(4)]
               + [f"sync{t}:" for t in range(2)]},
}
db.close_sync()
print(json.dumps(report))
"""


def test_many_loops_and_threads_share_one_database(any_target):
    # In a child interpreter: each asyncio.run closes its loop while the database stays open.
    proc = run_child(MANY_LOOPS, any_target.location, timeout=120)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["alive"] == 0, "a thread hangs"
    assert report["errors"] == []
    assert report["size"] == 4 * 500 + 4 * 50 + 2 * 500
    for prefix, n in report["counts"].items():
        assert n == (50 if prefix.startswith("burst") else 500), prefix


LOOP_CLOSES = """
import asyncio, sys
import entity_db

db = entity_db.open(sys.argv[1])
mem = db.memory()

async def work(tag):
    await mem.store(tag, {"tag": tag})
    assert await mem.load(tag) == {"tag": tag}
    assert (await db.fetch_one("SELECT 1"))[0] == 1

asyncio.run(work("first"))           # the loop is closed; the database stays open
assert mem.load_sync("first") == {"tag": "first"}
asyncio.run(work("second"))          # a new loop uses it again
loop = asyncio.new_event_loop()
loop.run_until_complete(work("third"))
loop.close()
assert sorted(mem.keys_sync()) == ["first", "second", "third"]
db.close_sync()
print("ok")
"""


def test_a_loop_may_close_while_the_database_stays_open(any_target):
    proc = run_child(LOOP_CLOSES, any_target.location, timeout=60)
    assert proc.stdout.strip().endswith("ok")
    if any_target.kind != "sqlite_memory":
        db = any_target.open()
        assert db.memory().keys_sync() == ["first", "second", "third"]


SQL_THREADS = """
import asyncio, json, sys, threading
import entity_db

db = entity_db.open(sys.argv[1], pool_size=4)
db.execute_sync("CREATE TABLE t (thread INTEGER, i INTEGER, PRIMARY KEY (thread, i))")
errors = []

def worker(t):
    try:
        if t % 2:
            async def main():
                for i in range(200):
                    await db.execute("INSERT INTO t VALUES (?, ?)", (t, i))
                rows = await db.fetch_all("SELECT i FROM t WHERE thread = ?", (t,))
                assert len(rows) == 200, len(rows)
            asyncio.run(main())
        else:
            for i in range(200):
                db.execute_sync("INSERT INTO t VALUES (?, ?)", (t, i))
    except BaseException as e:
        errors.append(repr(e))

threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
for th in threads:
    th.start()
for th in threads:
    th.join(60)
report = {"alive": sum(th.is_alive() for th in threads), "errors": errors,
          "rows": db.fetch_one_sync("SELECT count(*) FROM t")[0]}
db.close_sync()
print(json.dumps(report))
"""


def test_threads_and_sql_on_one_database(target):
    proc = run_child(SQL_THREADS, target.location, timeout=90)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"alive": 0, "errors": [], "rows": 1200}


@pytest.mark.asyncio
async def test_async_writes_while_other_threads_read(any_target):
    mem = any_target.open().memory()
    mem.store_sync("x", 0)
    errors = []

    def reader():
        try:
            for _ in range(3000):
                mem.load_sync("x")
        except BaseException as e:  # noqa: BLE001
            errors.append(repr(e))

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for th in readers:
        th.start()
    try:
        for i in range(1500):
            await mem.store(f"k{i}", i)
    finally:
        for th in readers:
            th.join(60)
    assert errors == []
    assert await mem.size() == 1501


# ---- closing with work in flight --------------------------------------------------------------


@pytest.mark.asyncio
async def test_close_with_operations_in_flight(any_target):
    db = any_target.open()
    mem = db.memory()
    await mem.store("seed", 1)
    await db.execute("CREATE TABLE t (x INTEGER)")

    async def op(i):
        kind = i % 4
        if kind == 0:
            await mem.store(f"k{i}", i)
        elif kind == 1:
            await mem.load("seed")
        elif kind == 2:
            await db.fetch_one("SELECT 1")
        else:
            await db.execute("INSERT INTO t VALUES (?)", (i,))

    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(op(i)) for i in range(400)]
    await asyncio.sleep(0)
    await asyncio.wait_for(db.close(), 20)
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 20)
    unexpected = [r for r in results
                  if r is not None and not isinstance(r, entity_db.ShutDownError)]
    assert unexpected == []
    assert db.closed
    with pytest.raises(entity_db.ShutDownError):
        await mem.load("seed")


@pytest.mark.asyncio
async def test_close_with_a_long_query_in_flight(target):
    db = target.open(query_timeout=1.5)

    async def runaway():
        return await db.fetch_one(target.runaway)

    task = asyncio.get_running_loop().create_task(runaway())
    await asyncio.sleep(0.3)
    t0 = time.monotonic()
    async with Ticker() as ticker:
        await asyncio.wait_for(db.close(), 15)
    results = await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 15)
    assert time.monotonic() - t0 < 15
    assert isinstance(results[0], entity_db.Error), results[0]
    assert ticker.max_gap() < MAX_LOOP_GAP, "the loop was blocked while close() waited"


def test_close_sync_with_threads_in_flight(any_target):
    db = any_target.open()
    mem = db.memory()
    mem.store_sync("seed", 1)
    outcomes = []
    stop = threading.Event()

    def worker(t):
        i = 0
        while not stop.is_set():
            try:
                if i % 2:
                    mem.store_sync(f"w{t}:{i}", i)
                else:
                    mem.load_sync("seed")
            except entity_db.ShutDownError:
                outcomes.append("shut down")
                return
            except BaseException as e:  # noqa: BLE001
                outcomes.append(repr(e))
                return
            i += 1
        outcomes.append("stopped")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    time.sleep(0.3)
    closer = threading.Thread(target=db.close_sync)
    closer.start()
    closer.join(20)
    assert not closer.is_alive(), "close_sync hangs"
    stop.set()
    for th in threads:
        th.join(20)
    assert not any(th.is_alive() for th in threads), "an operation hangs after close"
    assert len(outcomes) == 4
    assert all(o in ("shut down", "stopped") for o in outcomes), outcomes


# ---- interpreter exit -------------------------------------------------------------------------


PRELUDE = """
import asyncio, sys, threading, time
import entity_db
TARGET = sys.argv[1]
RUNAWAY = {runaway!r}
"""

EXIT_SCRIPTS = {
    "sync_threads_working": """
db = entity_db.open(TARGET)
mem = db.memory()
mem.store_sync("committed", {"ok": True})
def work(n):
    i = 0
    while True:
        try:
            mem.store_sync(f"w{n}:{i}", i)
            mem.load_sync(f"w{n}:{i}")
        except entity_db.ShutDownError:
            return
        i += 1
for n in range(2):
    threading.Thread(target=work, args=(n,), daemon=True).start()
time.sleep(0.3)
print("leaving", flush=True)
""",
    "async_tasks_pending": """
db = entity_db.open(TARGET)
mem = db.memory()
mem.store_sync("committed", {"ok": True})
loop = asyncio.new_event_loop()
async def work(n):
    for i in range(1000000):
        await mem.store(f"a{n}:{i}", i)
        await mem.load(f"a{n}:{i}")
for n in range(4):
    loop.create_task(work(n))
loop.run_until_complete(asyncio.sleep(0.3))
print("leaving", flush=True)
""",
    "async_query_running": """
db = entity_db.open(TARGET, query_timeout=120)
db.memory().store_sync("committed", {"ok": True})
loop = asyncio.new_event_loop()
async def runaway():
    await db.fetch_one(RUNAWAY)
task = loop.create_task(runaway())
loop.run_until_complete(asyncio.sleep(0.3))
assert not task.done()
print("leaving", flush=True)
""",
    "asyncio_run_cancels_a_running_query": """
async def main():
    db = entity_db.open(TARGET, query_timeout=120)
    await db.memory().store("committed", {"ok": True})
    async def runaway():
        await db.fetch_one(RUNAWAY)
    asyncio.get_running_loop().create_task(runaway())
    await asyncio.sleep(0.3)
    print("leaving", flush=True)
asyncio.run(main())
""",
    "sync_query_running_in_a_thread": """
db = entity_db.open(TARGET, query_timeout=120)
db.memory().store_sync("committed", {"ok": True})
def runaway():
    try:
        db.fetch_one_sync(RUNAWAY)
    except entity_db.Error:
        pass
threading.Thread(target=runaway, daemon=True).start()
time.sleep(0.3)
print("leaving", flush=True)
""",
}


@pytest.mark.parametrize("script", list(EXIT_SCRIPTS))
def test_interpreter_exit_with_an_open_database(target, script):
    runaway = RUNAWAY_POSTGRES.replace("30", "100") if target.is_pg else RUNAWAY_SQLITE
    source = textwrap.dedent(PRELUDE.format(runaway=runaway)) + EXIT_SCRIPTS[script]
    t0 = time.monotonic()
    proc = run_child(source, target.location, timeout=20)
    elapsed = time.monotonic() - t0
    assert "leaving" in proc.stdout, proc.stderr
    assert "Fatal Python error" not in proc.stderr, proc.stderr
    assert elapsed < 20, f"the interpreter took {elapsed:.1f} s to exit"
    # What was committed before the exit is there.
    db = target.open()
    assert db.memory().load_sync("committed") == {"ok": True}
