"""The seed framework's async database classes, on entity_db.

Code written against the Entity framework's

    entity.infrastructure.async_duckdb_infra.AsyncDuckDBInfrastructure
    entity.resources.async_database.AsyncDatabaseResource
    entity.resources.async_memory.AsyncMemory
    entity.resources.vector_store.VectorStoreResource
    entity.resources.exceptions.ResourceInitializationError

runs unchanged with its imports changed to ``entity_db.compat``::

    from entity_db.compat import AsyncDuckDBInfrastructure, AsyncDatabaseResource, AsyncMemory
    from entity_db.compat import VectorStoreResource

    infra = AsyncDuckDBInfrastructure("agent.db")
    await infra.startup()
    memory = AsyncMemory(AsyncDatabaseResource(infra), VectorStoreResource(infra))
    await memory.store("key", {"data": "value"})

The names, arguments, return shapes and exception types are the seed's:

- ``execute_async`` returns a cursor without fetch flags (``rowcount``, ``lastrowid``,
  ``description``, awaitable ``fetchone`` / ``fetchmany`` / ``fetchall``, ``async for``), a row
  (a ``tuple``) or ``None`` with ``fetch_one=True``, a list of rows with ``fetch_all=True``.
- A query past ``query_timeout`` raises ``asyncio.TimeoutError`` (``TimeoutError``); the
  statement is interrupted inside the engine, not abandoned while it keeps running. Setting
  ``query_timeout`` on a started instance applies to the next query.
- SQL errors raise exceptions that are both the engine's (``entity_db.SQLSyntaxError``,
  ``entity_db.ConstraintError``, ...) and the ``sqlite3`` class the seed's backend raised
  (``sqlite3.OperationalError``, ``sqlite3.IntegrityError``, ``sqlite3.ProgrammingError``, ...).
- Use before ``startup()`` (or after ``shutdown()``) raises ``RuntimeError("Infrastructure not
  started. Call startup() first.")``.
- ``AsyncMemory`` keeps its values as JSON text in the seed's table
  ``memory(key TEXT PRIMARY KEY, value TEXT)``, so a file written by either opens in the other.
  A value ``json`` cannot encode raises ``TypeError`` (as ``json.dumps`` does) and writes nothing.

Where the seed's code broke its own promise, the promise is kept: ``execute_many`` and
``batch_store`` are one transaction (all or nothing), concurrent writers never fail with a lock
error, ``execute_fetch_all`` returns the rows, ``health_check_sync`` checks the engine, and
``VectorStoreResource`` stores its vectors in entity_db's vector store.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import uuid
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Iterable, Iterator, Optional

import entity_db

__all__ = [
    "AsyncDuckDBInfrastructure",
    "AsyncDatabaseResource",
    "AsyncMemory",
    "VectorStoreResource",
    "ResourceInitializationError",
    "Connection",
    "Cursor",
    "SyncCursor",
]

NOT_STARTED_MESSAGE = "Infrastructure not started. Call startup() first."

# A timeout of None (no limit, as asyncio.wait_for has it) becomes this many seconds.
_UNLIMITED = 10 * 365 * 86400.0

# Timeout views of one engine kept at once (one per distinct query_timeout value in use).
_MAX_VIEWS = 16


class ResourceInitializationError(Exception):
    """Raised when a canonical resource is missing required dependencies."""


# ---- errors -----------------------------------------------------------------------------------

# The sqlite3 class the seed's backend raised for each of the engine's portable conditions.
# The engine's own class is kept as the first base, so either kind of `except` catches it.
# Timeouts, an exhausted pool and use before startup or after shutdown are not translated:
# they already are TimeoutError / RuntimeError, which is what the seed raised for them.
_KEPT = tuple(
    getattr(entity_db, name)
    for name in ("QueryTimeoutError", "PoolExhaustedError", "NotStartedError", "ShutDownError",
                 "DatabaseConnectionError")
    if hasattr(entity_db, name)
)
_SQLITE_CLASSES = [
    (getattr(entity_db, name), sqlite_class)
    for name, sqlite_class in (
        ("ConstraintError", sqlite3.IntegrityError),
        ("SQLSyntaxError", sqlite3.OperationalError),
        ("BusyError", sqlite3.OperationalError),
        ("StorageError", sqlite3.OperationalError),
        ("DecodeError", sqlite3.DatabaseError),
        ("InvalidArgumentError", sqlite3.ProgrammingError),
    )
    if hasattr(entity_db, name)
]

# Names of SQLite's (extended) result codes, for the `sqlite_errorname` sqlite3 errors carry.
_SQLITE_NAMES = {
    1: "SQLITE_ERROR", 5: "SQLITE_BUSY", 6: "SQLITE_LOCKED", 8: "SQLITE_READONLY",
    9: "SQLITE_INTERRUPT", 10: "SQLITE_IOERR", 11: "SQLITE_CORRUPT", 13: "SQLITE_FULL",
    14: "SQLITE_CANTOPEN", 19: "SQLITE_CONSTRAINT", 20: "SQLITE_MISMATCH", 25: "SQLITE_RANGE",
    26: "SQLITE_NOTADB", 275: "SQLITE_CONSTRAINT_CHECK", 787: "SQLITE_CONSTRAINT_FOREIGNKEY",
    1299: "SQLITE_CONSTRAINT_NOTNULL", 1555: "SQLITE_CONSTRAINT_PRIMARYKEY",
    2067: "SQLITE_CONSTRAINT_UNIQUE", 3091: "SQLITE_CONSTRAINT_DATATYPE",
}

_flavours: dict = {}


def _flavour(engine_class: type, other: type) -> type:
    """The class that is both `engine_class` and `other` (made once per pair)."""
    key = (engine_class, other)
    cls = _flavours.get(key)
    if cls is None:
        cls = type(engine_class.__name__, (engine_class, other), {"__module__": __name__})
        _flavours[key] = cls
    return cls


def _recast(exc: BaseException, cls: type) -> BaseException:
    """A copy of `exc` (its arguments, attributes and traceback) of class `cls`."""
    new = cls.__new__(cls, *exc.args)
    new.args = exc.args
    new.__dict__.update(getattr(exc, "__dict__", {}))
    new.__traceback__ = exc.__traceback__
    return new


def _sql_error(exc: BaseException) -> BaseException:
    """`exc` as the seed's callers expect it from a statement: also a sqlite3 error."""
    if not isinstance(exc, entity_db.Error) or isinstance(exc, (_KEPT, sqlite3.Error)):
        return exc
    other = sqlite3.DatabaseError
    for engine_class, sqlite_class in _SQLITE_CLASSES:
        if isinstance(exc, engine_class):
            other = sqlite_class
            break
    try:
        new = _recast(exc, _flavour(type(exc), other))
    except Exception:  # a class that cannot be combined: the engine's exception as it is
        return exc
    code = getattr(exc, "code", "")
    if isinstance(code, str) and code.startswith("sqlite:"):
        try:
            number = int(code[len("sqlite:"):])
        except ValueError:
            number = None
        if number is not None:
            new.sqlite_errorcode = number
            new.sqlite_errorname = _SQLITE_NAMES.get(
                number, _SQLITE_NAMES.get(number & 0xFF, "SQLITE_ERROR"))
    return new


def _value_error(exc: BaseException, values: Iterable[Any]) -> BaseException:
    """What a rejected memory value raises: TypeError (as json.dumps) for an object json
    cannot encode, the engine's InvalidArgumentError (a ValueError) for NaN, infinity and the
    like."""
    for value in values:
        try:
            json.dumps(value)
        except TypeError as err:
            try:
                new = _recast(exc, _flavour(type(exc), TypeError))
            except Exception:
                return exc
            new.args = (str(err),)
            return new
        except (ValueError, RecursionError):
            continue
    return exc


def _decode_error(exc: BaseException) -> BaseException:
    """A stored value that is not JSON: also a json.JSONDecodeError, as the seed's json.loads
    raised."""
    if not isinstance(exc, getattr(entity_db, "DecodeError", ())):
        return exc
    try:
        new = _recast(exc, _flavour(type(exc), json.JSONDecodeError))
    except Exception:
        return exc
    new.msg = str(getattr(exc, "message", "") or exc)
    new.doc, new.pos, new.lineno, new.colno = "", 0, 1, 1
    return new


def _not_started() -> RuntimeError:
    cls = getattr(entity_db, "NotStartedError", None)
    if cls is not None:
        try:
            exc = cls(NOT_STARTED_MESSAGE)
            exc.code, exc.message, exc.sql = "not_started", NOT_STARTED_MESSAGE, ""
            if isinstance(exc, RuntimeError):
                return exc
        except Exception:
            pass
    return RuntimeError(NOT_STARTED_MESSAGE)


def _refuse_in_loop(message: str) -> None:
    """The seed's blocking wrappers refused to run inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(message)


# ---- cursors ----------------------------------------------------------------------------------

def _leading_keyword(sql: str) -> str:
    """The first keyword of `sql`, upper case, past blanks and comments."""
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c.isspace() or c == ";":
            i += 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            break
    j = i
    while j < n and sql[j].isalpha():
        j += 1
    return sql[i:j].upper()


# The statements whose rowcount sqlite3 reports (every other statement has rowcount -1).
_DML = frozenset(("INSERT", "UPDATE", "DELETE", "REPLACE"))


def _params(parameters: Any) -> Any:
    return () if parameters is None else parameters


def _description(rows: list) -> Optional[tuple]:
    if not rows:
        return None
    keys = getattr(rows[0], "keys", None)
    if keys is None:
        return None
    return tuple((name, None, None, None, None, None, None) for name in keys())


class _CursorState:
    """What a statement left: its rows and counters, read the way sqlite3's cursor is."""

    arraysize = 1

    def __init__(self) -> None:
        self._rows: list = []
        self._next = 0
        self.rowcount = -1
        self.lastrowid: Optional[int] = None
        self.description: Optional[tuple] = None

    def _take(self, result: Any, sql: str, many: bool = False) -> None:
        rows = list(getattr(result, "rows", ()) or ())
        self._rows, self._next = rows, 0
        self.description = _description(rows)
        dml = _leading_keyword(sql) in _DML
        self.rowcount = int(getattr(result, "rows_affected", 0) or 0) if dml else -1
        if many:
            self.lastrowid = None
        else:
            last = getattr(result, "last_insert_id", None)
            self.lastrowid = int(last) if last is not None else 0

    def _clear(self, sql: str = "") -> None:
        self._rows, self._next = [], 0
        self.description = None
        self.rowcount = -1
        self.lastrowid = None

    def _one(self):
        if self._next >= len(self._rows):
            return None
        row = self._rows[self._next]
        self._next += 1
        return row

    def _many(self, size: Optional[int]) -> list:
        size = self.arraysize if size is None else size
        out = self._rows[self._next:self._next + max(size, 0)]
        self._next += len(out)
        return out

    def _all(self) -> list:
        out = self._rows[self._next:]
        self._next = len(self._rows)
        return out


class Cursor(_CursorState):
    """The result of a statement, read as aiosqlite's cursor is (awaitable fetches)."""

    def __init__(self, infrastructure: "AsyncDuckDBInfrastructure",
                 connection: Optional["Connection"] = None) -> None:
        super().__init__()
        self._infrastructure = infrastructure
        self.connection = connection

    async def execute(self, sql: str, parameters: Any = None) -> "Cursor":
        result = await self._infrastructure._result(sql, _params(parameters))
        self._take(result, sql)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> "Cursor":
        result = await self._infrastructure._result_many(sql, parameters)
        self._take(result, sql, many=True)
        return self

    async def executescript(self, sql_script: str) -> "Cursor":
        await self._infrastructure.execute_script(sql_script)
        self._clear()
        return self

    async def fetchone(self):
        return self._one()

    async def fetchmany(self, size: Optional[int] = None) -> list:
        return self._many(size)

    async def fetchall(self) -> list:
        return self._all()

    async def close(self) -> None:
        self._rows, self._next = [], 0

    def __aiter__(self) -> AsyncIterator:
        return self._iterate()

    async def _iterate(self):
        while True:
            row = self._one()
            if row is None:
                return
            yield row

    async def __aenter__(self) -> "Cursor":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


class SyncCursor(_CursorState):
    """The result of a statement run by a blocking call, read as sqlite3's cursor is."""

    def __init__(self, infrastructure: "AsyncDuckDBInfrastructure") -> None:
        super().__init__()
        self._infrastructure = infrastructure

    def execute(self, sql: str, parameters: Any = None) -> "SyncCursor":
        self._take(self._infrastructure._result_sync(sql, _params(parameters)), sql)
        return self

    def fetchone(self):
        return self._one()

    def fetchmany(self, size: Optional[int] = None) -> list:
        return self._many(size)

    def fetchall(self) -> list:
        return self._all()

    def close(self) -> None:
        self._rows, self._next = [], 0

    def __iter__(self) -> Iterator:
        while True:
            row = self._one()
            if row is None:
                return
            yield row

    def __enter__(self) -> "SyncCursor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Pending:
    """An operation that is awaited for its cursor or entered with `async with` (as aiosqlite's
    `conn.execute(...)` is)."""

    __slots__ = ("_coro", "_cursor")

    def __init__(self, coro) -> None:
        self._coro = coro
        self._cursor = None

    def __await__(self):
        return self._coro.__await__()

    async def __aenter__(self):
        self._cursor = await self._coro
        return self._cursor

    async def __aexit__(self, *exc: Any) -> None:
        if self._cursor is not None:
            await self._cursor.close()


class Connection:
    """What `AsyncDuckDBInfrastructure.connect()` yields: the seed's autocommit connection.

    Every statement commits by itself, as on the seed's connection (``isolation_level=None``);
    ``commit()`` and ``rollback()`` have nothing to do. Statements run on the engine's pool, so a
    transaction spanning several calls is written as one script ending with COMMIT
    (``executescript``), as one ``executemany``, or with ``entity_db.Database.transaction``; a
    lone ``BEGIN`` is reported as an error and rolled back.
    """

    isolation_level = None
    in_transaction = False

    def __init__(self, infrastructure: "AsyncDuckDBInfrastructure") -> None:
        self._infrastructure = infrastructure
        self.row_factory = None

    def cursor(self) -> _Pending:
        async def make() -> Cursor:
            return Cursor(self._infrastructure, self)
        return _Pending(make())

    def execute(self, sql: str, parameters: Any = None) -> _Pending:
        return _Pending(Cursor(self._infrastructure, self).execute(sql, parameters))

    def executemany(self, sql: str, parameters: Iterable[Any]) -> _Pending:
        return _Pending(Cursor(self._infrastructure, self).executemany(sql, parameters))

    def executescript(self, sql_script: str) -> _Pending:
        return _Pending(Cursor(self._infrastructure, self).executescript(sql_script))

    async def execute_fetchall(self, sql: str, parameters: Any = None) -> list:
        cursor = await self.execute(sql, parameters)
        return await cursor.fetchall()

    async def execute_insert(self, sql: str, parameters: Any = None) -> Optional[tuple]:
        cursor = await self.execute(sql, parameters)
        return (cursor.lastrowid,) if cursor.lastrowid is not None else None

    async def commit(self) -> None:
        return None

    async def rollback(self) -> None:
        return None

    async def close(self) -> None:
        return None


class _SyncConnection:
    """What `AsyncDatabaseResource.connect()` returns: a blocking connection for code without
    an event loop."""

    def __init__(self, infrastructure: "AsyncDuckDBInfrastructure") -> None:
        self.infrastructure = infrastructure
        self._conn = None

    def __enter__(self) -> "_SyncConnection":
        _refuse_in_loop(
            "Synchronous database connection used in async context. "
            "Use 'async with infrastructure.connect()' instead.")
        self.infrastructure._database()
        self._conn = True
        return self

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        self._conn = None

    def execute(self, query: str, params: Any = None) -> SyncCursor:
        if not self._conn:
            raise RuntimeError("Connection not established")
        return SyncCursor(self.infrastructure).execute(query, params or ())


# ---- layer 1: the infrastructure ---------------------------------------------------------------

def _seconds(timeout: Optional[float]) -> float:
    return _UNLIMITED if timeout is None else float(timeout)


class AsyncDuckDBInfrastructure:
    """The seed's async database infrastructure: an entity_db engine (SQLite) with a pool of
    `pool_size` connections and a per-query timeout.

    `file_path` is a SQLite file (missing folders are created) or ``":memory:"`` (one database
    shared by the pool; `pool_size` reads 1 for it, as in the seed).
    """

    version = "0.1"

    def __init__(self, file_path: str, pool_size: int = 5, query_timeout: float = 30.0,
                 version: str | None = None) -> None:
        self.version = version or self.version
        self.logger = logging.getLogger(self.__class__.__name__)
        self.file_path = file_path
        self.pool_size = pool_size if file_path != ":memory:" else 1
        self.query_timeout = query_timeout
        self._is_started = False
        self._db: Optional[entity_db.Database] = None
        self._opened_timeout: Optional[float] = None
        self._views: dict = {}
        self._memories: dict = {}
        self._vectors = None

    # -- lifecycle --

    async def startup(self) -> None:
        """Open the engine and its pool."""
        self.logger.debug("Starting %s version %s", self.__class__.__name__, self.version)
        if self._db is not None and not self._db.closed:
            self._is_started = True
            return
        timeout = _seconds(self.query_timeout)
        settings = {
            "pool_size": self.pool_size,
            "min_connections": min(2, self.pool_size),
            "query_timeout": timeout,
        }
        target = str(self.file_path)
        self._db = await asyncio.to_thread(entity_db.open, target, **settings)
        self._opened_timeout = timeout
        self._views.clear()
        self._memories.clear()
        self._vectors = None
        self._is_started = True
        self.logger.info(
            "Async database infrastructure ready: %s (pool_size=%d, timeout=%.1fs)",
            self.file_path, self.pool_size, timeout)

    async def shutdown(self) -> None:
        """Close the engine; operations in flight complete or fail first."""
        self.logger.debug("Shutting down %s", self.__class__.__name__)
        self._is_started = False
        db, self._db = self._db, None
        self._views.clear()
        self._memories.clear()
        self._vectors = None
        if db is not None:
            await db.close()
        self.logger.info("Async database infrastructure shut down")

    # -- the engine behind it --

    def _database(self) -> entity_db.Database:
        db = self._db
        if not self._is_started or db is None:
            raise _not_started()
        return db

    def _view(self, timeout: Any = "current") -> entity_db.Database:
        """The engine with `timeout` (by default the current query_timeout) for its queries."""
        db = self._database()
        seconds = _seconds(self.query_timeout if timeout == "current" else timeout)
        if seconds == self._opened_timeout:
            return db
        view = self._views.get(seconds)
        if view is None:
            if len(self._views) >= _MAX_VIEWS:
                self._views.clear()
                self._memories.clear()
            view = self._views[seconds] = db.with_timeout(seconds)
        return view

    def _memory(self) -> "entity_db.Memory":
        """The engine's memory, with the current query_timeout."""
        view = self._view()
        memory = self._memories.get(id(view))
        if memory is None or memory[0] is not view:
            memory = self._memories[id(view)] = (view, view.memory())
        return memory[1]

    def _vector_store(self) -> "entity_db.VectorStore":
        db = self._database()
        if self._vectors is None or self._vectors[0] is not db:
            self._vectors = (db, db.vector_store())
        return self._vectors[1]

    def _failed(self, exc: BaseException, query: str, what: str = "Query") -> BaseException:
        if isinstance(exc, TimeoutError):
            self.logger.error("%s timeout after %.1fs: %s", what,
                              _seconds(self.query_timeout), query[:100])
        else:
            self.logger.error("%s execution error: %s - Query: %s", what, exc, query[:100])
        return _sql_error(exc)

    async def _result(self, query: str, parameters: Any):
        db = self._view()
        try:
            return await db.execute(query, parameters)
        except entity_db.Error as exc:
            raise self._failed(exc, query) from None

    async def _result_many(self, query: str, parameters_list: Iterable[Any]):
        batch = list(parameters_list)
        timeout = _seconds(self.query_timeout)
        db = self._view(max(timeout, timeout * len(batch) / 100))  # scales with the batch
        try:
            return await db.execute_many(query, batch)
        except entity_db.Error as exc:
            raise self._failed(exc, query, "Batch") from None

    def _result_sync(self, query: str, parameters: Any):
        db = self._view()
        try:
            return db.execute_sync(query, parameters)
        except entity_db.Error as exc:
            raise self._failed(exc, query) from None

    # -- the seed's API --

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Connection]:
        """Async context manager that yields a connection (see `Connection`).

        Raises RuntimeError when the infrastructure is not started.
        """
        self._database()
        yield Connection(self)

    async def execute_async(self, query: str, parameters: Any = (), fetch_one: bool = False,
                            fetch_all: bool = False, *, params: Any = None) -> Any:
        """Run `query` with `parameters` (a tuple; ``params`` is accepted as its other name).

        Returns the first row (a tuple) or None with `fetch_one`, the list of rows with
        `fetch_all`, and otherwise a `Cursor` holding the statement's outcome.
        """
        if params is not None:
            parameters = params
        parameters = _params(parameters)
        if not (fetch_one or fetch_all):
            return await Cursor(self).execute(query, parameters)
        db = self._view()
        try:
            if fetch_one:
                return await db.fetch_one(query, parameters)
            return await db.fetch_all(query, parameters)
        except entity_db.Error as exc:
            raise self._failed(exc, query) from None

    async def execute_script(self, script: str) -> None:
        """Run several ';'-separated statements (twice query_timeout for the whole script)."""
        db = self._view(_seconds(self.query_timeout) * 2)
        try:
            await db.execute_script(script)
        except entity_db.Error as exc:
            raise self._failed(exc, script, "Script") from None

    async def execute_many(self, query: str, parameters_list: Iterable[Any]) -> None:
        """Run `query` once per parameter tuple, all in one transaction: all or nothing."""
        await self._result_many(query, parameters_list)

    async def health_check(self) -> bool:
        """True when the engine is started and answers a trivial query."""
        try:
            db = self._database()
            healthy = bool(await db.health_check())
        except Exception as exc:
            self.logger.warning("Health check failed for %s: %s", self.file_path, exc)
            return False
        if not healthy:
            self.logger.warning("Health check failed for %s", self.file_path)
        return healthy

    def health_check_sync(self) -> bool:
        """The blocking twin of `health_check` (any thread, with or without an event loop)."""
        try:
            return bool(self._database().health_check_sync())
        except Exception as exc:
            self.logger.warning("Health check failed for %s: %s", self.file_path, exc)
            return False

    async def get_connection_stats(self) -> dict[str, Any]:
        """Pool statistics, with the seed's keys; ``engine`` holds the engine's own counters."""
        db = self._db if self._is_started else None
        engine = dict(db.stats()) if db is not None else {}
        busy = int(engine.get("busy_connections", 0))
        return {
            "pool_size": self.pool_size,
            "active_connections": int(engine.get("open_connections", 0)),
            "available_permits": max(0, self.pool_size - busy) if db is not None else 0,
            "file_path": self.file_path,
            "query_timeout": self.query_timeout,
            "is_started": self._is_started,
            "engine": engine,
        }


# ---- layer 2: the database resource ------------------------------------------------------------

class AsyncDatabaseResource:
    """The seed's async database resource over an `AsyncDuckDBInfrastructure`."""

    def __init__(self, infrastructure: AsyncDuckDBInfrastructure | None) -> None:
        if infrastructure is None:
            raise ResourceInitializationError("AsyncDuckDBInfrastructure is required")
        self.infrastructure = infrastructure

    async def health_check(self) -> bool:
        return await self.infrastructure.health_check()

    def health_check_sync(self) -> bool:
        return self.infrastructure.health_check_sync()

    async def execute(self, query: str, *params: object) -> Any:
        """Run `query` with the positional `params`; returns a `Cursor`."""
        return await self.infrastructure.execute_async(query, params)

    async def execute_fetch_one(self, query: str, *params: object) -> Any:
        """The first row (a tuple), or None."""
        return await self.infrastructure.execute_async(query, params, fetch_one=True)

    async def execute_fetch_all(self, query: str, *params: object) -> list[Any]:
        """Every row, a list of tuples."""
        return await self.infrastructure.execute_async(query, params, fetch_all=True)

    async def execute_script(self, script: str) -> None:
        await self.infrastructure.execute_script(script)

    async def execute_many(self, query: str, parameters_list: list[tuple]) -> None:
        await self.infrastructure.execute_many(query, parameters_list)

    async def get_connection_stats(self) -> dict[str, Any]:
        return await self.infrastructure.get_connection_stats()

    def execute_sync(self, query: str, *params: object) -> Any:
        """Blocking `execute` for code without an event loop; returns a `SyncCursor`.

        Raises RuntimeError inside a running event loop (use `execute` there).
        """
        _refuse_in_loop("execute_sync() called from async context. Use execute() instead.")
        return SyncCursor(self.infrastructure).execute(query, params)

    def connect(self) -> _SyncConnection:
        """A blocking connection context manager for code without an event loop."""
        return _SyncConnection(self.infrastructure)


# ---- vector store -------------------------------------------------------------------------------

def _infrastructure_of(resource: Any) -> AsyncDuckDBInfrastructure:
    while not isinstance(resource, AsyncDuckDBInfrastructure):
        inner = getattr(resource, "infrastructure", None)
        if inner is None or inner is resource:
            raise TypeError(
                f"expected an AsyncDuckDBInfrastructure, not {type(resource).__name__}")
        resource = inner
    return resource


class VectorStoreResource:
    """The seed's vector store resource, over entity_db's vector store.

    `add_vector(table, vector)` adds `vector` to the collection `table` (created by its first
    vector, with that vector's dimension and L2 distance), under a fresh id; `search` and
    `count` read the collection back; `query(sql)` runs SQL on the database.
    """

    def __init__(self, infrastructure: Any) -> None:
        if infrastructure is None:
            raise ResourceInitializationError("VectorStoreInfrastructure is required")
        self.infrastructure = infrastructure

    def _store(self) -> "entity_db.VectorStore":
        return _infrastructure_of(self.infrastructure)._vector_store()

    async def health_check(self) -> bool:
        return await self.infrastructure.health_check()

    def health_check_sync(self) -> bool:
        return self.infrastructure.health_check_sync()

    def add_vector(self, table: str, vector: object) -> None:
        """Add `vector` (a sequence of numbers or a float32 buffer) to the collection `table`."""
        if not isinstance(table, str) or not table.isidentifier():
            raise ValueError(f"Invalid table name: {table}")
        store = self._store()
        item_id = uuid.uuid4().hex
        try:
            store.upsert_sync(table, item_id, vector)
        except entity_db.NotFoundError:
            store.create_collection_sync(table, len(vector), "l2")
            store.upsert_sync(table, item_id, vector)

    def search(self, table: str, vector: object, k: int = 10) -> list:
        """The `k` vectors of `table` nearest to `vector`: ``Match(id, distance, metadata)``."""
        return self._store().search_sync(table, vector, k)

    def count(self, table: str) -> int:
        """How many vectors `table` holds (0 for a table never written)."""
        try:
            return self._store().count_sync(table)
        except entity_db.NotFoundError:
            return 0

    def query(self, query: str) -> object:
        """Run SQL `query` on the database; returns a `SyncCursor`."""
        infrastructure = _infrastructure_of(self.infrastructure)
        return SyncCursor(infrastructure).execute(query, ())


# ---- layer 3: the memory ------------------------------------------------------------------------

def _key(key: Any) -> Any:
    # The seed's TEXT column stored an integer key as its decimal text.
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    return key


class AsyncMemory:
    """The seed's persistent memory: JSON values under string keys, in the seed's table
    ``memory(key TEXT PRIMARY KEY, value TEXT)`` of the database resource's infrastructure."""

    def __init__(self, database: AsyncDatabaseResource | None,
                 vector_store: VectorStoreResource | None) -> None:
        if database is None or vector_store is None:
            raise ResourceInitializationError(
                "AsyncDatabaseResource and VectorStoreResource are required")
        if isinstance(database, AsyncDuckDBInfrastructure):
            database = AsyncDatabaseResource(database)
        self.database = database
        self.vector_store = vector_store
        # Cross-process exclusion is SQLite's own file locking: there is no lock file.
        self._process_lock = None
        self._table_ready = False

    def _memory(self) -> "entity_db.Memory":
        return _infrastructure_of(self.database)._memory()

    # -- health and raw access, as the seed has them --

    def health_check(self) -> bool:
        return self.database.health_check_sync() and self.vector_store.health_check_sync()

    async def health_check_async(self) -> bool:
        db_healthy, vector_healthy = await asyncio.gather(
            self.database.health_check(),
            asyncio.to_thread(self.vector_store.health_check_sync),
            return_exceptions=True,
        )
        return db_healthy is True and vector_healthy is True

    def health_check_sync(self) -> bool:
        return self.health_check()

    def execute(self, query: str, *params: object) -> object:
        return self.database.execute_sync(query, *params)

    async def execute_async(self, query: str, *params: object) -> Any:
        return await self.database.execute(query, *params)

    def add_vector(self, table: str, vector: object) -> None:
        self.vector_store.add_vector(table, vector)

    def query(self, query: str) -> object:
        return self.vector_store.query(query)

    # -- key-value storage --

    async def _run(self, operation, *args):
        try:
            result = await operation(*args)
        except entity_db.DecodeError as exc:
            raise _decode_error(exc) from None
        except entity_db.Error as exc:
            raise _sql_error(exc) from None
        self._table_ready = True
        return result

    async def store(self, key: str, value: Any) -> None:
        """Persist `value` (anything json can encode) under `key`."""
        memory = self._memory()
        try:
            await memory.store(_key(key), value)
        except entity_db.InvalidArgumentError as exc:
            raise _value_error(exc, (value,)) from None
        except entity_db.Error as exc:
            raise _sql_error(exc) from None
        self._table_ready = True

    async def load(self, key: str, default: Any | None = None) -> Any:
        """The value stored under `key`, or `default`."""
        return await self._run(self._memory().load, _key(key), default)

    async def delete(self, key: str) -> bool:
        """Remove `key`; True when it existed."""
        return bool(await self._run(self._memory().delete, _key(key)))

    async def exists(self, key: str) -> bool:
        return bool(await self._run(self._memory().exists, _key(key)))

    async def keys(self, pattern: str | None = None) -> list[str]:
        """Every key, or those matching a SQL LIKE `pattern`."""
        return list(await self._run(self._memory().keys, "%" if pattern is None else pattern))

    async def clear(self, pattern: str | None = None) -> int:
        """Remove every key, or those matching a SQL LIKE `pattern`; returns how many."""
        return int(await self._run(self._memory().clear, "%" if pattern is None else pattern))

    async def size(self) -> int:
        return int(await self._run(self._memory().size))

    async def get_stats(self) -> dict[str, Any]:
        key_count = await self.size()
        db_stats = await self.database.get_connection_stats()
        health_status = await self.health_check_async()
        return {
            "key_count": key_count,
            "table_ready": self._table_ready,
            "has_process_lock": self._process_lock is not None,
            "health_status": health_status,
            "db_stats": db_stats,
        }

    async def batch_store(self, items: dict[str, Any]) -> None:
        """Store every item in one transaction: all of them or, on any failure, none."""
        if not items:
            return
        pairs = items.items() if hasattr(items, "items") else items
        pairs = [(_key(k), v) for k, v in pairs]
        memory = self._memory()
        try:
            await memory.batch_store(pairs)
        except entity_db.InvalidArgumentError as exc:
            raise _value_error(exc, (v for _, v in pairs)) from None
        except entity_db.Error as exc:
            raise _sql_error(exc) from None
        self._table_ready = True

    async def batch_load(self, keys: list[str]) -> dict[str, Any]:
        """The values of the keys that exist (missing keys are omitted)."""
        if not keys:
            return {}
        return dict(await self._run(self._memory().batch_load, [_key(k) for k in keys]))
