"""The seed's benchmark workloads, measured from Python, every variant side by side.

    python3 -m entity_db.bench [--n 1000] [--runs 3] [--dir PATH] [--json PATH]

Variants:

- ``sqlite3_sync``: the standard library's blocking ``sqlite3`` with entity_db's default
  settings; the floor every other variant is compared with.
- ``aiosqlite``: bare aiosqlite, one connection, the same settings (skipped when it is not
  importable).
- ``entity_db_sync``: entity_db's ``*_sync`` calls.
- ``entity_db_async``: entity_db's awaitable calls, all on one asyncio event loop.

Every run of a workload happens on a fresh database file; the reported figure is the median of
the runs. The goals at the end are evaluated and printed, never asserted: the exit status is
non-zero only when a workload failed to run or returned wrong data.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import traceback

try:
    import aiosqlite
except ImportError:  # the variant is skipped, with a note
    aiosqlite = None

# ---- the workloads ------------------------------------------------------------------------

WORKLOADS = (
    "memory_store",          # N stores, one awaited after the other
    "memory_load",           # N loads of stored keys
    "memory_batch_store",    # N items in one batch_store
    "memory_batch_load",     # N keys in one batch_load
    "db_insert",             # N rows, one INSERT statement each
    "db_insert_many",        # N rows in one execute_many
    "db_select",             # N point selects by primary key
    "stores_20_concurrent",  # 20 stores gathered at once, N/20 times (sync: 20 in a row)
    "stores_20_sequential",  # 20 stores one after the other, N/20 times
)
GROUP = 20

DESCRIPTIONS = {
    "memory_store": "N stores, each awaited before the next",
    "memory_load": "N loads of existing keys",
    "memory_batch_store": "one batch_store of N items (per item)",
    "memory_batch_load": "one batch_load of N keys (per key)",
    "db_insert": "N single-row INSERT statements",
    "db_insert_many": "one execute_many of N rows (per row)",
    "db_select": "N point SELECTs by primary key",
    "stores_20_concurrent": "20 stores started together (asyncio.gather), N/20 times; "
    "sync variants: 20 sequential stores",
    "stores_20_sequential": "20 stores awaited one after the other, N/20 times",
}

FLOOR = "sqlite3_sync"

CREATE_MEMORY = "CREATE TABLE IF NOT EXISTS memory (key TEXT PRIMARY KEY, value TEXT)"
UPSERT = "INSERT OR REPLACE INTO memory (key, value) VALUES (?, ?)"
LOAD = "SELECT value FROM memory WHERE key = ?"
CREATE_BENCH = (
    "CREATE TABLE IF NOT EXISTS bench_table "
    "(id INTEGER PRIMARY KEY, name TEXT, value REAL, data TEXT)"
)
INSERT = "INSERT INTO bench_table (id, name, value, data) VALUES (?, ?, ?, ?)"
SELECT = "SELECT id, name, value, data FROM bench_table WHERE id = ?"

# Keys per statement of a batch load, as entity_db's; a short last chunk repeats its last key so
# that every chunk uses one statement.
LOAD_CHUNK = 500
LOAD_IN = (
    "SELECT key, value FROM memory WHERE key IN (" + ",".join("?" * LOAD_CHUNK) + ")"
)

# entity_db's default SQLite settings.
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA mmap_size=268435456",
    "PRAGMA busy_timeout=5000",
)
BUSY_TIMEOUT_S = 5.0


def key_of(i):
    return "key_" + str(i)


def value_of(i):
    return {"id": i, "data": "test_value_" + str(i), "nested": {"count": i}}


def row_of(i):
    return (i, "name_" + str(i), i * 1.5, "data_" + str(i))


def dumps(value):
    return json.dumps(value, separators=(",", ":"))


def chunks(keys):
    for start in range(0, len(keys), LOAD_CHUNK):
        part = keys[start:start + LOAD_CHUNK]
        yield part + [part[-1]] * (LOAD_CHUNK - len(part))


class WrongResult(Exception):
    """A workload ran but the database did not hold or return what it should."""


def expect(what, got, want):
    if got != want:
        raise WrongResult(f"{what}: expected {want!r}, got {got!r}")


class Plan:
    """The inputs of every workload, built once, outside the timed sections."""

    def __init__(self, n):
        self.n = n
        self.keys = [key_of(i) for i in range(n)]
        self.values = [value_of(i) for i in range(n)]
        self.items = list(zip(self.keys, self.values))
        self.texts = [(k, dumps(v)) for k, v in self.items]
        self.rows = [row_of(i) for i in range(n)]
        self.select_ids = [i * 7919 % n for i in range(n)]
        rounds = n // GROUP
        self.groups = [self.items[r * GROUP:(r + 1) * GROUP] for r in range(rounds)]
        self.group_texts = [self.texts[r * GROUP:(r + 1) * GROUP] for r in range(rounds)]
        self.grouped = rounds * GROUP


class Timer:
    """Times one section with the collector paused, as timeit does."""

    def __enter__(self):
        gc.collect()
        self.was_enabled = gc.isenabled()
        gc.disable()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        if self.was_enabled:
            gc.enable()
        return False


# ---- variants -----------------------------------------------------------------------------
#
# run(workload, path, plan) -> (seconds, operations): sets the database up at `path` (a file
# that does not exist yet), times the workload, checks what it left or returned, and closes.


class Sqlite3Sync:
    name = "sqlite3_sync"

    def connect(self, path):
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        for pragma in PRAGMAS:
            conn.execute(pragma).fetchall()
        conn.execute(CREATE_MEMORY)
        conn.execute(CREATE_BENCH)
        return conn

    def batch_store(self, conn, texts):
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(UPSERT, texts)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def batch_load(self, conn, keys):
        out = {}
        for part in chunks(keys):
            for k, v in conn.execute(LOAD_IN, part):
                out[k] = json.loads(v)
        return out

    def insert_many(self, conn, rows):
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(INSERT, rows)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def count(conn, table):
        return conn.execute("SELECT count(*) FROM " + table).fetchone()[0]

    def run(self, workload, path, plan):
        conn = self.connect(path)
        try:
            return self._run(conn, workload, plan)
        finally:
            conn.close()

    def _run(self, conn, w, p):
        n = p.n
        if w == "memory_store":
            with Timer() as t:
                for k, v in p.items:
                    conn.execute(UPSERT, (k, dumps(v)))
            expect("rows stored", self.count(conn, "memory"), n)
            return t.seconds, n
        if w == "memory_load":
            self.batch_store(conn, p.texts)
            found = 0
            with Timer() as t:
                for k in p.keys:
                    row = conn.execute(LOAD, (k,)).fetchone()
                    value = json.loads(row[0]) if row is not None else None
                    found += value is not None
            expect("keys found", found, n)
            expect("the last value", value, p.values[-1])
            return t.seconds, n
        if w == "memory_batch_store":
            with Timer() as t:
                self.batch_store(conn, [(k, dumps(v)) for k, v in p.items])
            expect("rows stored", self.count(conn, "memory"), n)
            return t.seconds, n
        if w == "memory_batch_load":
            self.batch_store(conn, p.texts)
            with Timer() as t:
                out = self.batch_load(conn, p.keys)
            expect("keys found", len(out), n)
            expect("the last value", out.get(p.keys[-1]), p.values[-1])
            return t.seconds, n
        if w == "db_insert":
            with Timer() as t:
                for row in p.rows:
                    conn.execute(INSERT, row)
            expect("rows inserted", self.count(conn, "bench_table"), n)
            return t.seconds, n
        if w == "db_insert_many":
            with Timer() as t:
                self.insert_many(conn, p.rows)
            expect("rows inserted", self.count(conn, "bench_table"), n)
            return t.seconds, n
        if w == "db_select":
            self.insert_many(conn, p.rows)
            found = 0
            with Timer() as t:
                for i in p.select_ids:
                    row = conn.execute(SELECT, (i,)).fetchone()
                    found += row is not None
            expect("rows found", found, n)
            return t.seconds, n
        if w in ("stores_20_concurrent", "stores_20_sequential"):
            with Timer() as t:
                for group in p.groups:
                    for k, v in group:
                        conn.execute(UPSERT, (k, dumps(v)))
            expect("rows stored", self.count(conn, "memory"), p.grouped)
            return t.seconds, p.grouped
        raise ValueError("unknown workload: " + w)


class _AsyncVariant:
    """A variant whose workloads run on one event loop, kept for the whole benchmark."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()

    def run(self, workload, path, plan):
        return self.loop.run_until_complete(self._run(workload, path, plan))

    def close(self):
        try:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()


class Aiosqlite(_AsyncVariant):
    name = "aiosqlite"

    async def connect(self, path):
        conn = await aiosqlite.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        for pragma in PRAGMAS:
            await conn.execute_fetchall(pragma)
        await conn.execute(CREATE_MEMORY)
        await conn.execute(CREATE_BENCH)
        return conn

    async def in_transaction(self, conn, sql, rows):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            await conn.executemany(sql, rows)
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")

    async def batch_load(self, conn, keys):
        out = {}
        for part in chunks(keys):
            for k, v in await conn.execute_fetchall(LOAD_IN, part):
                out[k] = json.loads(v)
        return out

    @staticmethod
    async def count(conn, table):
        return (await conn.execute_fetchall("SELECT count(*) FROM " + table))[0][0]

    async def _run(self, workload, path, plan):
        conn = await self.connect(path)
        try:
            return await self._work(conn, workload, plan)
        finally:
            await conn.close()

    async def _work(self, conn, w, p):
        n = p.n
        if w == "memory_store":
            with Timer() as t:
                for k, v in p.items:
                    await conn.execute(UPSERT, (k, dumps(v)))
            expect("rows stored", await self.count(conn, "memory"), n)
            return t.seconds, n
        if w == "memory_load":
            await self.in_transaction(conn, UPSERT, p.texts)
            found = 0
            with Timer() as t:
                for k in p.keys:
                    rows = await conn.execute_fetchall(LOAD, (k,))
                    value = json.loads(rows[0][0]) if rows else None
                    found += value is not None
            expect("keys found", found, n)
            expect("the last value", value, p.values[-1])
            return t.seconds, n
        if w == "memory_batch_store":
            with Timer() as t:
                await self.in_transaction(conn, UPSERT, [(k, dumps(v)) for k, v in p.items])
            expect("rows stored", await self.count(conn, "memory"), n)
            return t.seconds, n
        if w == "memory_batch_load":
            await self.in_transaction(conn, UPSERT, p.texts)
            with Timer() as t:
                out = await self.batch_load(conn, p.keys)
            expect("keys found", len(out), n)
            expect("the last value", out.get(p.keys[-1]), p.values[-1])
            return t.seconds, n
        if w == "db_insert":
            with Timer() as t:
                for row in p.rows:
                    await conn.execute(INSERT, row)
            expect("rows inserted", await self.count(conn, "bench_table"), n)
            return t.seconds, n
        if w == "db_insert_many":
            with Timer() as t:
                await self.in_transaction(conn, INSERT, p.rows)
            expect("rows inserted", await self.count(conn, "bench_table"), n)
            return t.seconds, n
        if w == "db_select":
            await self.in_transaction(conn, INSERT, p.rows)
            found = 0
            with Timer() as t:
                for i in p.select_ids:
                    rows = await conn.execute_fetchall(SELECT, (i,))
                    found += bool(rows)
            expect("rows found", found, n)
            return t.seconds, n
        if w == "stores_20_concurrent":
            with Timer() as t:
                for group in p.groups:
                    await asyncio.gather(
                        *(conn.execute(UPSERT, (k, dumps(v))) for k, v in group))
            expect("rows stored", await self.count(conn, "memory"), p.grouped)
            return t.seconds, p.grouped
        if w == "stores_20_sequential":
            with Timer() as t:
                for group in p.groups:
                    for k, v in group:
                        await conn.execute(UPSERT, (k, dumps(v)))
            expect("rows stored", await self.count(conn, "memory"), p.grouped)
            return t.seconds, p.grouped
        raise ValueError("unknown workload: " + w)


class EntityDbSync:
    name = "entity_db_sync"

    def __init__(self, entity_db):
        self.edb = entity_db

    def run(self, workload, path, plan):
        db = self.edb.open(path)
        try:
            db.execute_script_sync(CREATE_MEMORY + "; " + CREATE_BENCH)
            mem = db.memory()
            mem.exists_sync(key_of(-1))  # the memory's first use, outside the timed section
            return self._run(db, mem, workload, plan)
        finally:
            db.close_sync()

    @staticmethod
    def count(db, table):
        return db.fetch_one_sync("SELECT count(*) FROM " + table)[0]

    def _run(self, db, mem, w, p):
        n = p.n
        if w == "memory_store":
            with Timer() as t:
                for k, v in p.items:
                    mem.store_sync(k, v)
            expect("rows stored", self.count(db, "memory"), n)
            return t.seconds, n
        if w == "memory_load":
            mem.batch_store_sync(p.items)
            found = 0
            with Timer() as t:
                for k in p.keys:
                    value = mem.load_sync(k)
                    found += value is not None
            expect("keys found", found, n)
            expect("the last value", value, p.values[-1])
            return t.seconds, n
        if w == "memory_batch_store":
            with Timer() as t:
                mem.batch_store_sync(p.items)
            expect("rows stored", self.count(db, "memory"), n)
            return t.seconds, n
        if w == "memory_batch_load":
            mem.batch_store_sync(p.items)
            with Timer() as t:
                out = mem.batch_load_sync(p.keys)
            expect("keys found", len(out), n)
            expect("the last value", out.get(p.keys[-1]), p.values[-1])
            return t.seconds, n
        if w == "db_insert":
            with Timer() as t:
                for row in p.rows:
                    db.execute_sync(INSERT, row)
            expect("rows inserted", self.count(db, "bench_table"), n)
            return t.seconds, n
        if w == "db_insert_many":
            with Timer() as t:
                db.execute_many_sync(INSERT, p.rows)
            expect("rows inserted", self.count(db, "bench_table"), n)
            return t.seconds, n
        if w == "db_select":
            db.execute_many_sync(INSERT, p.rows)
            found = 0
            with Timer() as t:
                for i in p.select_ids:
                    row = db.fetch_one_sync(SELECT, (i,))
                    found += row is not None
            expect("rows found", found, n)
            return t.seconds, n
        if w in ("stores_20_concurrent", "stores_20_sequential"):
            with Timer() as t:
                for group in p.groups:
                    for k, v in group:
                        mem.store_sync(k, v)
            expect("rows stored", self.count(db, "memory"), p.grouped)
            return t.seconds, p.grouped
        raise ValueError("unknown workload: " + w)


class EntityDbAsync(_AsyncVariant):
    name = "entity_db_async"

    def __init__(self, entity_db):
        super().__init__()
        self.edb = entity_db

    async def _run(self, workload, path, plan):
        db = self.edb.open(path)
        try:
            await db.execute_script(CREATE_MEMORY + "; " + CREATE_BENCH)
            mem = db.memory()
            await mem.exists(key_of(-1))  # the memory's first use, outside the timed section
            return await self._work(db, mem, workload, plan)
        finally:
            await db.close()

    @staticmethod
    async def count(db, table):
        return (await db.fetch_one("SELECT count(*) FROM " + table))[0]

    async def _work(self, db, mem, w, p):
        n = p.n
        if w == "memory_store":
            with Timer() as t:
                for k, v in p.items:
                    await mem.store(k, v)
            expect("rows stored", await self.count(db, "memory"), n)
            return t.seconds, n
        if w == "memory_load":
            await mem.batch_store(p.items)
            found = 0
            with Timer() as t:
                for k in p.keys:
                    value = await mem.load(k)
                    found += value is not None
            expect("keys found", found, n)
            expect("the last value", value, p.values[-1])
            return t.seconds, n
        if w == "memory_batch_store":
            with Timer() as t:
                await mem.batch_store(p.items)
            expect("rows stored", await self.count(db, "memory"), n)
            return t.seconds, n
        if w == "memory_batch_load":
            await mem.batch_store(p.items)
            with Timer() as t:
                out = await mem.batch_load(p.keys)
            expect("keys found", len(out), n)
            expect("the last value", out.get(p.keys[-1]), p.values[-1])
            return t.seconds, n
        if w == "db_insert":
            with Timer() as t:
                for row in p.rows:
                    await db.execute(INSERT, row)
            expect("rows inserted", await self.count(db, "bench_table"), n)
            return t.seconds, n
        if w == "db_insert_many":
            with Timer() as t:
                await db.execute_many(INSERT, p.rows)
            expect("rows inserted", await self.count(db, "bench_table"), n)
            return t.seconds, n
        if w == "db_select":
            await db.execute_many(INSERT, p.rows)
            found = 0
            with Timer() as t:
                for i in p.select_ids:
                    row = await db.fetch_one(SELECT, (i,))
                    found += row is not None
            expect("rows found", found, n)
            return t.seconds, n
        if w == "stores_20_concurrent":
            with Timer() as t:
                for group in p.groups:
                    await asyncio.gather(*(mem.store(k, v) for k, v in group))
            expect("rows stored", await self.count(db, "memory"), p.grouped)
            return t.seconds, p.grouped
        if w == "stores_20_sequential":
            with Timer() as t:
                for group in p.groups:
                    for k, v in group:
                        await mem.store(k, v)
            expect("rows stored", await self.count(db, "memory"), p.grouped)
            return t.seconds, p.grouped
        raise ValueError("unknown workload: " + w)


# ---- running ------------------------------------------------------------------------------


def remove_db(path):
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass


def make_variants(notes):
    variants = [Sqlite3Sync()]
    if aiosqlite is not None:
        variants.append(Aiosqlite())
    else:
        notes.append("aiosqlite is not importable: the aiosqlite variant was skipped")
    try:
        import entity_db
        entity_db.open  # noqa: B018 - the package must expose the API, not only import
    except Exception as e:  # ImportError, or a package without its extension
        notes.append(f"entity_db is not importable ({type(e).__name__}: {e}): "
                     "the entity_db variants were skipped")
    else:
        variants.append(EntityDbSync(entity_db))
        variants.append(EntityDbAsync(entity_db))
    return variants


def progress(text):
    print(text, file=sys.stderr, flush=True)


def run_all(n, runs, folder, notes):
    """Runs every workload in every variant `runs` times, interleaved (run by run, workload by
    workload, variant by variant) so that a slow moment of the machine weighs on every variant
    alike. Returns {(workload, variant): [us per op, ...]} and the failures."""
    plan = Plan(n)
    variants = make_variants(notes)
    samples = {}
    failures = []
    failed = set()
    total = runs * len(WORKLOADS) * len(variants)
    done = 0
    try:
        for r in range(runs):
            for w in WORKLOADS:
                for v in variants:
                    done += 1
                    if (w, v.name) in failed:
                        continue
                    path = os.path.join(folder, f"{w}-{v.name}-{r}.db")
                    remove_db(path)
                    try:
                        seconds, ops = v.run(w, path, plan)
                    except Exception as e:
                        failed.add((w, v.name))
                        failures.append({
                            "workload": w, "variant": v.name, "run": r + 1,
                            "error": f"{type(e).__name__}: {e}",
                            "traceback": traceback.format_exc(),
                        })
                        progress(f"[{done}/{total}] run {r + 1}/{runs} {w:<21} {v.name:<16} "
                                 f"FAILED: {type(e).__name__}: {e}")
                        continue
                    finally:
                        remove_db(path)
                    us = seconds * 1e6 / ops
                    samples.setdefault((w, v.name), []).append(us)
                    progress(f"[{done}/{total}] run {r + 1}/{runs} {w:<21} {v.name:<16} "
                             f"{us:10.2f} us/op")
    finally:
        for v in variants:
            if hasattr(v, "close"):
                v.close()
    for key in failed:
        samples.pop(key, None)
    return [v.name for v in variants], samples, failures


def summarize(variant_names, samples):
    results = []
    medians = {key: statistics.median(values) for key, values in samples.items()}
    for w in WORKLOADS:
        floor = medians.get((w, FLOOR))
        for v in variant_names:
            us = medians.get((w, v))
            if us is None:
                continue
            results.append({
                "workload": w,
                "variant": v,
                "median_us_per_op": us,
                "ops_per_s": 1e6 / us if us > 0 else float("inf"),
                "ratio_to_floor": us / floor if floor else None,
                "runs_us_per_op": samples[(w, v)],
            })
    return results


PER_OPERATION = ("memory_store", "memory_load", "db_insert", "db_select",
                 "stores_20_concurrent", "stores_20_sequential")


def evaluate_goals(results):
    us = {(r["workload"], r["variant"]): r["median_us_per_op"] for r in results}
    goals = []

    def goal(text, measured, passed, missing):
        status = "SKIP" if missing else ("PASS" if passed else "FAIL")
        goals.append({"goal": text, "measured": measured, "status": status,
                      "pass": None if missing else bool(passed)})

    A = "entity_db_async"
    for w, limit in (("memory_store", 1.2), ("memory_load", 1.5),
                     ("memory_batch_store", 1.0), ("memory_batch_load", 1.0)):
        a, f = us.get((w, A)), us.get((w, FLOOR))
        ratio = a / f if a is not None and f else None
        goal(f"{A} {w} <= {limit:.1f}x {FLOOR}", ratio,
             ratio is not None and ratio <= limit, ratio is None)

    c, s = us.get(("stores_20_concurrent", A)), us.get(("stores_20_sequential", A))
    speedup = s / c if c and s is not None else None
    goal(f"{A} 20 concurrent stores >= 3x faster than 20 sequential stores", speedup,
         speedup is not None and speedup >= 3.0, speedup is None)

    for w in PER_OPERATION:
        a, b = us.get((w, A)), us.get((w, "aiosqlite"))
        speedup = b / a if a and b is not None else None
        goal(f"{A} {w} >= 4x faster than aiosqlite", speedup,
             speedup is not None and speedup >= 4.0, speedup is None)
    return goals


# ---- reporting ----------------------------------------------------------------------------


def fmt_us(us):
    if us >= 1000:
        return f"{us:,.0f}"
    if us >= 10:
        return f"{us:.1f}"
    return f"{us:.2f}"


def table(results, variant_names, n, runs):
    by = {(r["workload"], r["variant"]): r for r in results}
    lines = []
    width = 22
    col = 22

    def cell(r, what):
        if r is None:
            return "-"
        if what == "us":
            ratio = r["ratio_to_floor"]
            return fmt_us(r["median_us_per_op"]) + (f" ({ratio:.2f}x)" if ratio else "")
        return f"{r['ops_per_s']:,.0f}"

    header = "workload".ljust(width) + "".join(v.rjust(col) for v in variant_names)
    lines.append(f"median of {runs} run(s), N={n}: microseconds per operation "
                 f"(x {FLOOR})")
    lines.append(header)
    lines.append("-" * len(header))
    for w in WORKLOADS:
        lines.append(w.ljust(width) + "".join(cell(by.get((w, v)), "us").rjust(col)
                                              for v in variant_names))
    lines.append("")
    lines.append("operations per second")
    lines.append(header)
    lines.append("-" * len(header))
    for w in WORKLOADS:
        lines.append(w.ljust(width) + "".join(cell(by.get((w, v)), "ops").rjust(col)
                                              for v in variant_names))
    return "\n".join(lines)


def goals_text(goals):
    lines = ["goals"]
    for g in goals:
        m = g["measured"]
        shown = "n/a" if m is None else f"{m:.2f}x"
        lines.append(f"  {g['status']:<4}  {g['goal']:<75} measured {shown}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python3 -m entity_db.bench",
        description="entity_db's benchmark workloads against sqlite3 and aiosqlite")
    ap.add_argument("--n", type=int, default=1000, help="operations per workload (default 1000)")
    ap.add_argument("--runs", type=int, default=3,
                    help="runs per workload and variant; the median is reported (default 3)")
    ap.add_argument("--dir", help="the folder for the database files (default: a temporary one)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    args = ap.parse_args(argv)
    if args.n < GROUP:
        ap.error(f"--n must be at least {GROUP}")
    if args.runs < 1:
        ap.error("--runs must be at least 1")

    notes = []
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
        folder, temporary = args.dir, False
    else:
        folder, temporary = tempfile.mkdtemp(prefix="entity-db-bench-"), True
    try:
        variant_names, samples, failures = run_all(args.n, args.runs, folder, notes)
    finally:
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)

    results = summarize(variant_names, samples)
    goals = evaluate_goals(results)

    print(f"entity_db bench: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} CPU(s)")
    print(table(results, variant_names, args.n, args.runs))
    print()
    print(goals_text(goals))
    if notes or failures:
        print()
    for note in notes:
        print("note: " + note)
    for f in failures:
        print(f"FAILED: {f['workload']} / {f['variant']} (run {f['run']}): {f['error']}")

    if args.json:
        report = {
            "n": args.n,
            "runs": args.runs,
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "cpus": os.cpu_count(),
            "variants": variant_names,
            "workloads": list(WORKLOADS),
            "descriptions": DESCRIPTIONS,
            "results": results,
            "goals": goals,
            "notes": notes,
            "failures": failures,
        }
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
            out.write("\n")
    sys.stdout.flush()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
