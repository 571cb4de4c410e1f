"""entity-db for Python: an agent's memory on SQLite or PostgreSQL, for asyncio and for plain code.

    import entity_db

    db = entity_db.open("agent.db")
    mem = db.memory()
    await mem.store("user:42", {"name": "Ada"})
    await mem.load("user:42")          # {'name': 'Ada'}
    mem.store_sync("k", [1, 2, 3])     # every operation also has a blocking twin
    await db.close()

Every operation exists as ``await obj.verb(...)`` (started on the running event loop) and as
``obj.verb_sync(...)`` (blocking; the GIL is released while the engine works). See the package's
README for the settings, the classes and the errors.
"""

from __future__ import annotations

import asyncio as _asyncio
import atexit as _atexit
import builtins as _builtins
from collections import namedtuple as _namedtuple
from typing import Any, Iterator, Sequence

__all__ = [
    "open", "Database", "Memory", "VectorStore", "Transaction", "Row", "Result", "Recalled", "SearchHit",
    "Item", "Match", "VectorItem", "CollectionInfo", "Error", "QueryTimeoutError",
    "PoolExhaustedError", "BusyError", "ConstraintError", "SQLSyntaxError", "NotStartedError",
    "ShutDownError", "InvalidArgumentError", "DimensionMismatchError", "DecodeError",
    "NotFoundError", "StorageError", "DatabaseConnectionError", "MAX_JSON_DEPTH",
]


# ---- errors -------------------------------------------------------------------------------

class Error(Exception):
    """An error the engine reported.

    ``code`` names it (``"query_timeout"``, ``"sqlite:2067"``, ``"postgres:23505"``), ``message``
    is the backend's own message and ``sql`` the start of the statement that failed ("" when
    none was involved). ``str(error)`` reads "<what failed>: <message> (sql: ...)".
    """

    code: str = ""
    message: str = ""
    sql: str = ""


class QueryTimeoutError(Error, _builtins.TimeoutError):
    """The operation ran past its timeout; the statement was stopped inside the engine."""


class PoolExhaustedError(Error, _builtins.TimeoutError):
    """No connection became free within ``acquire_timeout``."""


class BusyError(Error):
    """Another connection or process holds the database's lock."""


class ConstraintError(Error):
    """A UNIQUE, NOT NULL, CHECK or FOREIGN KEY constraint failed."""


class SQLSyntaxError(Error):
    """The SQL does not parse, or names a table or column that does not exist."""


class NotStartedError(Error, RuntimeError):
    """The database was used before it was started."""


class ShutDownError(Error, RuntimeError):
    """The database was used after ``close()`` (or the operation was cut short by it)."""


class InvalidArgumentError(Error, ValueError):
    """Bad input from the caller: nothing was written."""


class DimensionMismatchError(InvalidArgumentError):
    """A vector whose dimension is not its collection's."""


class DecodeError(Error):
    """Stored data could not be decoded (JSON text, a vector)."""


class NotFoundError(Error, LookupError):
    """A named thing (a vector collection) does not exist."""


class StorageError(Error, OSError):
    """The storage failed: the file cannot be opened, disk full, read-only, I/O error, corruption."""


class DatabaseConnectionError(Error, _builtins.ConnectionError):
    """The connection to the server broke or could not be made."""


# ---- records ------------------------------------------------------------------------------

class Row(tuple):
    """One result row: a tuple that also indexes by column name (``row["name"]``)."""

    __slots__ = ()
    _fields: tuple = ()
    _index: dict = {}

    @classmethod
    def _subclass(cls, names: tuple) -> type:
        index = {}
        for i, n in enumerate(names):
            index.setdefault(n, i)  # the first of two columns of one name wins, as in sqlite3
        return type("Row", (cls,), {"__slots__": (), "_fields": names, "_index": index})

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            try:
                key = self._index[key]
            except KeyError:
                raise KeyError(f"no column named {key!r} (columns: {', '.join(self._fields)})") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list:
        """The column names, in order."""
        return list(self._fields)

    def as_dict(self) -> dict:
        """The row as {column: value}."""
        return dict(zip(self._fields, self))

    def __repr__(self) -> str:
        return "Row(" + ", ".join(f"{n}={v!r}" for n, v in zip(self._fields, self)) + ")"


class Result:
    """What a statement produced: its rows, the rows it changed and the last rowid inserted."""

    __slots__ = ("rows", "rows_affected", "last_insert_id")

    def __init__(self, rows: list, rows_affected: int, last_insert_id: int) -> None:
        self.rows = rows
        self.rows_affected = rows_affected
        self.last_insert_id = last_insert_id

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def __repr__(self) -> str:
        return (f"Result(rows={len(self.rows)}, rows_affected={self.rows_affected}, "
                f"last_insert_id={self.last_insert_id})")


Recalled = _namedtuple("Recalled", "key value distance")


class SearchHit(_namedtuple("SearchHit", "key value")):
    """One result of ``Memory.search``: the pair ``(key, value)`` (it unpacks, indexes and
    compares as that pair), with how it ranked and its times as attributes.

    ``score``: higher is better (0 for a filter alone; the text relevance, the cosine similarity,
    or the reciprocal rank fusion of both). ``matched_text`` / ``matched_vector``: which signal
    found it. ``created`` / ``updated``: UTC datetimes, or None for an item written by a program
    that records no times.
    """

    def __new__(cls, key, value, score=0.0, matched_text=False, matched_vector=False,
                created=None, updated=None):
        self = super().__new__(cls, key, value)
        self.score = score
        self.matched_text = matched_text
        self.matched_vector = matched_vector
        self.created = created
        self.updated = updated
        return self

    def __repr__(self) -> str:
        return (f"SearchHit(key={self.key!r}, value={self.value!r}, score={self.score!r}, "
                f"matched_text={self.matched_text!r}, matched_vector={self.matched_vector!r}, "
                f"created={self.created!r}, updated={self.updated!r})")


class Item(_namedtuple("Item", "key value created updated expires")):
    """An item with its times (``Memory.load_item``, ``Memory.restore``): UTC datetimes;
    ``created`` and ``updated`` are None for an item written by a program that records no times,
    ``expires`` for one that never expires. The attribute ``ttl`` (a timedelta, or None) is the
    time to live it was stored with, which ``refresh_on_read`` starts again.
    """

    def __new__(cls, key, value, created=None, updated=None, expires=None, ttl=None):
        self = super().__new__(cls, key, value, created, updated, expires)
        self.ttl = ttl
        return self

    def __repr__(self) -> str:
        return (f"Item(key={self.key!r}, value={self.value!r}, created={self.created!r}, "
                f"updated={self.updated!r}, expires={self.expires!r}, ttl={self.ttl!r})")


Match = _namedtuple("Match", "id distance metadata")
VectorItem = _namedtuple("VectorItem", "id vector metadata")
CollectionInfo = _namedtuple("CollectionInfo", "name dim metric count indexed")

class _GroupedFuture(_asyncio.Future):
    """The future of a write. The engine's work for it runs when it is first awaited (or on the
    loop's next turn), not when it is started: writes started together (``asyncio.gather``)
    are all queued by then and commit as one group. Cancelling it cancels the write."""

    __slots__ = ("_op",)

    def __await__(self):
        if not self.done():
            self._op.awaited()
        return _future_await(self)

    __iter__ = __await__

    def cancel(self, msg=None):
        if not _future_cancel(self, msg):
            return False
        self._op.cancel()
        return True


_future_await = _asyncio.Future.__await__
_future_cancel = _asyncio.Future.cancel

from . import _core  # noqa: E402  (the classes above are handed to it)

_core._register(globals())

Database = _core.Database
Memory = _core.Memory
VectorStore = _core.VectorStore
Transaction = _core.Transaction
MAX_JSON_DEPTH: int = _core.MAX_JSON_DEPTH


def open(target: str = ":memory:", **settings: Any) -> Database:  # noqa: A001 (the package's verb)
    """Opens and starts a database.

    ``target``: a SQLite file path (missing folders are created), ``":memory:"``, or a
    ``postgresql://`` / ``postgres://`` URL. ``settings``: see the README (pool_size,
    query_timeout, ...); an unknown one raises InvalidArgumentError.
    """
    return _core.open(str(target), settings)


# ---- what reads better written in Python ---------------------------------------------------

async def _health_check(self: Database) -> bool:
    """True when the engine runs and answers a trivial query."""
    try:
        await self._health()
    except Error:
        return False
    return True


def _enter(self):
    return self


def _exit_sync(self, *exc) -> None:
    self.close_sync()


async def _aenter(self):
    return self


async def _aexit(self, *exc) -> None:
    await self.close()


def _repr_db(self) -> str:
    state = "closed" if self.closed else "open"
    return f"<entity_db.Database {self.backend} {self.target!r} {state}>"


def _repr_mem(self) -> str:
    return f"<entity_db.Memory prefix={self.prefix!r}>"


Database.health_check = _health_check
Database.__enter__ = _enter
Database.__exit__ = _exit_sync
Database.__aenter__ = _aenter
Database.__aexit__ = _aexit
Database.__repr__ = _repr_db
Memory.__repr__ = _repr_mem
Memory.erase = Memory.delete
Memory.erase_sync = Memory.delete_sync
VectorStore.erase = VectorStore.delete
VectorStore.erase_sync = VectorStore.delete_sync

_atexit.register(_core._at_exit)
