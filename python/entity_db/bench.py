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
# A variant is its primitives (store, load, batch_store, batch_load, insert, insert_many,
# select, count), plain functions for a blocking variant and coroutines for an asynchronous
# one. The workloads are written once for each of the two kinds (time_sync / time_async); what
# a workload must have left or returned is checked once, by check().


class Sqlite3Sync:
    name = "sqlite3_sync"

    def open(self, path):
        self.conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        for pragma in PRAGMAS:
            self.conn.execute(pragma).fetchall()
        self.conn.execute(CREATE_MEMORY)
        self.conn.execute(CREATE_BENCH)

    def close_db(self):
        self.conn.close()

    def in_transaction(self, sql, rows):
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.executemany(sql, rows)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def store(self, k, v):
        self.conn.execute(UPSERT, (k, dumps(v)))

    def load(self, k):
        row = self.conn.execute(LOAD, (k,)).fetchone()
        return json.loads(row[0]) if row is not None else None

    def batch_store(self, items):
        self.in_transaction(UPSERT, [(k, dumps(v)) for k, v in items])

    def batch_load(self, keys):
        out = {}
        for part in chunks(keys):
            for k, v in self.conn.execute(LOAD_IN, part):
                out[k] = json.loads(v)
        return out

    def insert(self, row):
        self.conn.execute(INSERT, row)

    def insert_many(self, rows):
        self.in_transaction(INSERT, rows)

    def select(self, i):
        return self.conn.execute(SELECT, (i,)).fetchone()

    def count(self, table):
        return self.conn.execute("SELECT count(*) FROM " + table).fetchone()[0]

    def run(self, workload, path, plan):
        self.open(path)
        try:
            return time_sync(self, workload, plan)
        finally:
            self.close_db()


class EntityDbSync:
    name = "entity_db_sync"

    def __init__(self, entity_db):
        self.edb = entity_db

    def store(self, k, v):
        self.mem.store_sync(k, v)

    def load(self, k):
        return self.mem.load_sync(k)

    def batch_store(self, items):
        self.mem.batch_store_sync(items)

    def batch_load(self, keys):
        return self.mem.batch_load_sync(keys)

    def insert(self, row):
        self.db.execute_sync(INSERT, row)

    def insert_many(self, rows):
        self.db.execute_many_sync(INSERT, rows)

    def select(self, i):
        return self.db.fetch_one_sync(SELECT, (i,))

    def count(self, table):
        return self.db.fetch_one_sync("SELECT count(*) FROM " + table)[0]

    def run(self, workload, path, plan):
        self.db = self.edb.open(path)
        try:
            self.db.execute_script_sync(CREATE_MEMORY + "; " + CREATE_BENCH)
            self.mem = self.db.memory()
            self.mem.exists_sync(key_of(-1))  # the memory's first use, outside the timed section
            return time_sync(self, workload, plan)
        finally:
            self.db.close_sync()


class _AsyncVariant:
    """A variant whose workloads run on one event loop, kept for the whole benchmark."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()

    def run(self, workload, path, plan):
        return self.loop.run_until_complete(self._run(workload, path, plan))

    async def _run(self, workload, path, plan):
        await self.open(path)
        try:
            return await time_async(self, workload, plan)
        finally:
            await self.close_db()

    def close(self):
        try:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        finally:
            self.loop.close()


class Aiosqlite(_AsyncVariant):
    name = "aiosqlite"

    async def open(self, path):
        self.conn = await aiosqlite.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        for pragma in PRAGMAS:
            await self.conn.execute_fetchall(pragma)
        await self.conn.execute(CREATE_MEMORY)
        await self.conn.execute(CREATE_BENCH)

    async def close_db(self):
        await self.conn.close()

    async def in_transaction(self, sql, rows):
        await self.conn.execute("BEGIN IMMEDIATE")
        try:
            await self.conn.executemany(sql, rows)
        except BaseException:
            await self.conn.execute("ROLLBACK")
            raise
        await self.conn.execute("COMMIT")

    def store(self, k, v):
        return self.conn.execute(UPSERT, (k, dumps(v)))

    async def load(self, k):
        rows = await self.conn.execute_fetchall(LOAD, (k,))
        return json.loads(rows[0][0]) if rows else None

    async def batch_store(self, items):
        await self.in_transaction(UPSERT, [(k, dumps(v)) for k, v in items])

    async def batch_load(self, keys):
        out = {}
        for part in chunks(keys):
            for k, v in await self.conn.execute_fetchall(LOAD_IN, part):
                out[k] = json.loads(v)
        return out

    def insert(self, row):
        return self.conn.execute(INSERT, row)

    async def insert_many(self, rows):
        await self.in_transaction(INSERT, rows)

    async def select(self, i):
        rows = await self.conn.execute_fetchall(SELECT, (i,))
        return rows[0] if rows else None

    async def count(self, table):
        return (await self.conn.execute_fetchall("SELECT count(*) FROM " + table))[0][0]


class EntityDbAsync(_AsyncVariant):
    name = "entity_db_async"

    def __init__(self, entity_db):
        super().__init__()
        self.edb = entity_db

    async def open(self, path):
        self.db = self.edb.open(path)
        await self.db.execute_script(CREATE_MEMORY + "; " + CREATE_BENCH)
        self.mem = self.db.memory()
        await self.mem.exists(key_of(-1))  # the memory's first use, outside the timed section

    async def close_db(self):
        await self.db.close()

    def store(self, k, v):
        return self.mem.store(k, v)

    def load(self, k):
        return self.mem.load(k)

    def batch_store(self, items):
        return self.mem.batch_store(items)

    def batch_load(self, keys):
        return self.mem.batch_load(keys)

    def insert(self, row):
        return self.db.execute(INSERT, row)

    def insert_many(self, rows):
        return self.db.execute_many(INSERT, rows)

    def select(self, i):
        return self.db.fetch_one(SELECT, (i,))

    async def count(self, table):
        return (await self.db.fetch_one("SELECT count(*) FROM " + table))[0]


# ---- the workloads, once per kind of variant ---------------------------------------------------
# Each returns (seconds, operations, what the workload returned, rows left in its table).

TABLE_OF = {"db_insert": "bench_table", "db_insert_many": "bench_table", "db_select": None,
            "memory_load": None, "memory_batch_load": None}


def time_sync(v, w, p):
    if w in ("memory_load", "memory_batch_load"):
        v.batch_store(p.items)
    elif w == "db_select":
        v.insert_many(p.rows)
    out, ops = None, p.n
    with Timer() as t:
        if w == "memory_store":
            for k, x in p.items:
                v.store(k, x)
        elif w == "memory_load":
            out = [v.load(k) for k in p.keys]
        elif w == "memory_batch_store":
            v.batch_store(p.items)
        elif w == "memory_batch_load":
            out = v.batch_load(p.keys)
        elif w == "db_insert":
            for row in p.rows:
                v.insert(row)
        elif w == "db_insert_many":
            v.insert_many(p.rows)
        elif w == "db_select":
            out = [v.select(i) for i in p.select_ids]
        elif w in ("stores_20_concurrent", "stores_20_sequential"):
            # A blocking caller has nothing to run concurrently: both are 20 in a row.
            ops = p.grouped
            for group in p.groups:
                for k, x in group:
                    v.store(k, x)
        else:
            raise ValueError("unknown workload: " + w)
    table = TABLE_OF.get(w, "memory")
    return t.seconds, ops, out, v.count(table) if table else None


async def time_async(v, w, p):
    if w in ("memory_load", "memory_batch_load"):
        await v.batch_store(p.items)
    elif w == "db_select":
        await v.insert_many(p.rows)
    out, ops = None, p.n
    with Timer() as t:
        if w == "memory_store":
            for k, x in p.items:
                await v.store(k, x)
        elif w == "memory_load":
            out = [await v.load(k) for k in p.keys]
        elif w == "memory_batch_store":
            await v.batch_store(p.items)
        elif w == "memory_batch_load":
            out = await v.batch_load(p.keys)
        elif w == "db_insert":
            for row in p.rows:
                await v.insert(row)
        elif w == "db_insert_many":
            await v.insert_many(p.rows)
        elif w == "db_select":
            out = [await v.select(i) for i in p.select_ids]
        elif w == "stores_20_concurrent":
            ops = p.grouped
            for group in p.groups:
                await asyncio.gather(*(v.store(k, x) for k, x in group))
        elif w == "stores_20_sequential":
            ops = p.grouped
            for group in p.groups:
                for k, x in group:
                    await v.store(k, x)
        else:
            raise ValueError("unknown workload: " + w)
    table = TABLE_OF.get(w, "memory")
    return t.seconds, ops, out, await v.count(table) if table else None


def check(w, p, ops, out, rows):
    """Raises WrongResult when the workload did not leave or return what it should."""
    if w == "memory_load":
        expect("keys found", sum(x is not None for x in out), p.n)
        expect("the last value", out[-1], p.values[-1])
    elif w == "memory_batch_load":
        expect("keys found", len(out), p.n)
        expect("the last value", out.get(p.keys[-1]), p.values[-1])
    elif w == "db_select":
        expect("rows found", sum(r is not None for r in out), p.n)
    else:
        expect("rows stored", rows, ops)


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
                        seconds, ops, out, rows = v.run(w, path, plan)
                        check(w, plan, ops, out, rows)
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
