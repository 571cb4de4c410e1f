"""Memory: JSON values under string keys, scopes, batches, embeddings and recall."""

import json
import math

import numpy as np
import pytest

import entity_db

pytestmark = pytest.mark.asyncio

JSON_VALUES = {
    "null": None,
    "true": True,
    "false": False,
    "zero": 0,
    "int": 42,
    "negative": -17,
    "int64_max": 2**63 - 1,
    "int64_min": -(2**63),
    "float": 3.25,
    "float_one": 1.0,
    "tenth": 0.1,
    "tiny": 1e-300,
    "huge": -1.5e300,
    "empty_str": "",
    "str": "hello",
    "unicode": "ünïcödé ✓ 日本語 🐍 \"q\" \\ \n\t \u0000 end",
    "empty_list": [],
    "empty_dict": {},
    "list": [1, "two", 3.5, None, True, False],
    "dict": {"name": "Ada", "tags": ["math"], "age": 36},
    "nested": {
        "a": [{"b": [1, [2, [3, {"c": None}]]]}, {"d": {"e": {"f": "deep ✓"}}}],
        "ключ": {"日本": [True, {"x": -0.5}]},
    },
}


def same_json(a, b):
    """Equal, and of the same JSON types all the way down (True is not 1, 1.0 is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    return a == b


async def test_every_json_type_round_trips(any_target, call):
    db = any_target.open()
    mem = db.memory()
    for key, value in JSON_VALUES.items():
        assert await call(mem, "store", key, value) is None
    for key, value in JSON_VALUES.items():
        got = await call(mem, "load", key)
        assert same_json(got, value), f"{key}: stored {value!r}, loaded {got!r}"
    assert await call(mem, "size") == len(JSON_VALUES)
    # The same values read back by another handle on the same database.
    other = db.memory()
    loaded = await call(other, "batch_load", list(JSON_VALUES))
    assert loaded.keys() == JSON_VALUES.keys()
    for key, value in JSON_VALUES.items():
        assert same_json(loaded[key], value), key


async def test_unicode_keys(any_target, call):
    mem = any_target.open().memory()
    keys = ["ключ", "日本語:キー", "emoji 🐍", "with space", "a'b\"c"]
    for i, k in enumerate(keys):
        await call(mem, "store", k, i)
    for i, k in enumerate(keys):
        assert await call(mem, "load", k) == i
    assert await call(mem, "keys") == sorted(keys, key=lambda s: s.encode())


async def test_store_replaces(any_target, call):
    mem = any_target.open().memory()
    await call(mem, "store", "k", {"v": 1})
    await call(mem, "store", "k", [2])
    assert await call(mem, "load", "k") == [2]
    assert await call(mem, "size") == 1


async def test_load_default_exists_delete(any_target, call):
    mem = any_target.open().memory()
    assert await call(mem, "load", "missing") is None
    assert await call(mem, "load", "missing", "fallback") == "fallback"
    assert await call(mem, "load", "missing", default={"d": 1}) == {"d": 1}
    assert await call(mem, "exists", "missing") is False
    await call(mem, "store", "k", None)
    assert await call(mem, "exists", "k") is True
    assert await call(mem, "load", "k", "fallback") is None  # a stored null is a value
    await call(mem, "store", "j", 5)
    assert await call(mem, "load", "j", "fallback") == 5
    assert await call(mem, "delete", "k") is True
    assert await call(mem, "delete", "k") is False
    assert await call(mem, "exists", "k") is False
    assert await call(mem, "erase", "j") is True
    assert await call(mem, "erase", "j") is False
    assert await call(mem, "size") == 0


async def test_keys_and_clear_with_patterns(any_target, call):
    mem = any_target.open().memory()
    await call(mem, "batch_store", {
        "user:1": 1, "user:2": 2, "user:10": 10, "task:1": "t", "userx": 0, "u_er": 5,
    })
    assert await call(mem, "keys") == sorted(["user:1", "user:2", "user:10", "task:1", "userx",
                                              "u_er"])
    assert await call(mem, "keys", "user:%") == ["user:1", "user:10", "user:2"]
    assert await call(mem, "keys", "user:_") == ["user:1", "user:2"]
    assert await call(mem, "keys", pattern="task%") == ["task:1"]
    assert await call(mem, "keys", "nothing%") == []
    assert await call(mem, "clear", "user:%") == 3
    assert await call(mem, "keys") == ["task:1", "u_er", "userx"]
    assert await call(mem, "clear", "nothing%") == 0
    assert await call(mem, "clear") == 3
    assert await call(mem, "size") == 0
    assert await call(mem, "keys") == []


async def test_size_and_stats(any_target, call):
    db = any_target.open()
    mem = db.memory()
    stats = await call(mem, "stats")
    assert stats["keys"] == 0
    await call(mem, "store", "a", {"x": [1, 2, 3]})
    await call(mem, "store", "b", "ünïcödé")
    assert await call(mem, "size") == 2
    stats = await call(mem, "stats")
    assert stats["keys"] == 2
    octets = "octet_length(value)" if any_target.is_pg else "length(CAST(value AS BLOB))"
    total = (await call(db, "fetch_one", f"SELECT sum({octets}) FROM memory"))[0]
    assert stats["value_bytes"] == total
    assert isinstance(stats["engine"], dict)
    assert "operations" in stats["engine"] and "pool_size" in stats["engine"]


async def test_batch_store_from_dict_and_pairs(any_target, call):
    mem = any_target.open().memory()
    assert await call(mem, "batch_store", {"a": 1, "b": [2], "c": {"three": 3}}) is None
    await call(mem, "batch_store", [("d", "four"), ("e", None)])
    await call(mem, "batch_store", ((f"g{i}", i) for i in range(3)))
    await call(mem, "batch_store", {})
    await call(mem, "batch_store", [])
    assert await call(mem, "size") == 8
    loaded = await call(mem, "batch_load", ["a", "b", "c", "d", "e", "g2", "missing"])
    assert loaded == {"a": 1, "b": [2], "c": {"three": 3}, "d": "four", "e": None, "g2": 2}
    assert await call(mem, "batch_load", []) == {}


async def test_batch_load_many_keys(any_target, call):
    mem = any_target.open().memory()
    items = {f"k{i:05d}": {"i": i} for i in range(1500)}
    await call(mem, "batch_store", items)
    wanted = list(items) + [f"missing{i}" for i in range(100)]
    loaded = await call(mem, "batch_load", wanted)
    assert loaded == items


NOT_JSON = {
    "set": {1, 2},
    "object": object(),
    "nan": float("nan"),
    "inf": float("inf"),
    "minus_inf": float("-inf"),
    "nested_nan": {"a": [1, 2, float("nan")]},
    "nested_object": [1, {"b": object()}],
    "bytes": b"raw",
}


@pytest.mark.parametrize("name", list(NOT_JSON))
async def test_values_json_cannot_hold_write_nothing(any_target, call, name):
    mem = any_target.open().memory()
    value = NOT_JSON[name]
    with pytest.raises(entity_db.InvalidArgumentError) as info:
        await call(mem, "store", "k", value)
    assert isinstance(info.value, ValueError)
    assert await call(mem, "exists", "k") is False
    # A key that has a value keeps it.
    await call(mem, "store", "kept", "old")
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(mem, "store", "kept", value)
    assert await call(mem, "load", "kept") == "old"
    assert await call(mem, "size") == 1


async def test_batch_store_with_one_bad_value_writes_nothing(any_target, call):
    mem = any_target.open().memory()
    await call(mem, "store", "b", "old")
    items = {"a": 1, "b": 2, "bad": {1, 2}, "c": 3, "d": 4}
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(mem, "batch_store", items)
    assert await call(mem, "keys") == ["b"]
    assert await call(mem, "load", "b") == "old"
    pairs = [("a", 1), ("b", 2), ("nan", math.nan), ("c", 3)]
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(mem, "batch_store", pairs)
    assert await call(mem, "keys") == ["b"]
    assert await call(mem, "load", "b") == "old"


# ---- scopes -----------------------------------------------------------------------------------


async def test_scope_keys_live_under_the_prefix(any_target, call):
    mem = any_target.open().memory()
    assert mem.prefix == ""
    user = mem.scope("user")
    assert isinstance(user, entity_db.Memory)
    assert user.prefix == "user:"
    await call(user, "store", "name", "Ada")
    await call(mem, "store", "top", 1)
    assert await call(mem, "keys") == ["top", "user:name"]
    assert await call(user, "keys") == ["name"]
    assert await call(mem, "load", "user:name") == "Ada"
    assert await call(user, "load", "top") is None
    assert await call(user, "exists", "name") is True
    assert await call(user, "size") == 1
    assert (await call(user, "stats"))["keys"] == 1
    assert await call(user, "batch_load", ["name", "top"]) == {"name": "Ada"}
    assert await call(user, "delete", "name") is True
    assert await call(mem, "keys") == ["top"]


async def test_nested_scopes(any_target, call):
    mem = any_target.open().memory()
    a = mem.scope("a")
    ab = a.scope("b")
    assert ab.prefix == "a:b:"
    assert mem.scope("a:b").prefix == "a:b:"
    await call(ab, "store", "k", 1)
    await call(a, "store", "k", 2)
    assert await call(mem.scope("a:b"), "load", "k") == 1
    assert await call(a, "keys") == ["b:k", "k"]
    assert await call(ab, "keys") == ["k"]
    assert await call(mem, "keys") == ["a:b:k", "a:k"]
    assert await call(a, "size") == 2
    assert await call(ab, "size") == 1
    assert await call(a, "keys", "b:%") == ["b:k"]
    assert await call(ab, "clear") == 1
    assert await call(mem, "keys") == ["a:k"]


@pytest.mark.parametrize("name,neighbour", [
    ("a%", "ab"), ("a_", "ab"), ("%", "x"), ("_", "x"), ("a\\", "a"), ("a:b", "a%b"),
    ("User", "user"),
])
async def test_scopes_are_isolated(any_target, call, name, neighbour):
    mem = any_target.open().memory()
    s = mem.scope(name)
    other = mem.scope(neighbour)
    await call(other, "batch_store", {"k": "other", "k2": "other"})
    await call(mem, "store", "root", "root")
    assert await call(s, "keys") == []
    assert await call(s, "size") == 0
    assert await call(s, "load", "k") is None
    assert await call(s, "exists", "k") is False
    assert await call(s, "batch_load", ["k", "k2"]) == {}
    assert await call(s, "clear") == 0
    await call(s, "store", "k", "mine")
    assert await call(s, "keys") == ["k"]
    assert await call(s, "keys", "%") == ["k"]
    assert await call(s, "keys", "_") == ["k"]
    assert await call(other, "load", "k") == "other"
    assert await call(s, "load", "k") == "mine"
    assert await call(s, "clear") == 1
    assert await call(other, "keys") == ["k", "k2"]
    assert await call(mem, "load", "root") == "root"


async def test_empty_scope_name_is_invalid(sqlite_target):
    mem = sqlite_target.open().memory()
    with pytest.raises(entity_db.InvalidArgumentError):
        mem.scope("")


async def test_key_with_a_nul_byte_never_reaches_the_key_before_it(any_target, call):
    # SQLite keeps a NUL byte in a key; PostgreSQL text cannot hold one, so there the key is
    # refused (a ValueError) and nothing is written. Either way "victim" stays as it was.
    db = any_target.open()
    mem = db.memory()
    await call(mem, "store", "victim", "original")
    if any_target.is_pg:
        with pytest.raises(entity_db.InvalidArgumentError, match="NUL"):
            await call(mem, "store", "victim\0evil", "evil")
        with pytest.raises(entity_db.InvalidArgumentError, match="NUL"):
            await call(mem, "delete", "victim\0zzz")
        with pytest.raises(entity_db.InvalidArgumentError, match="NUL"):
            await call(mem.scope("victim\0"), "store", "x", "evil")
        with pytest.raises(entity_db.InvalidArgumentError, match="NUL"):
            await call(db, "fetch_one", "SELECT ?::text", ("ab\0cd",))
        assert await call(mem, "size") == 1
    else:
        await call(mem, "store", "victim\0evil", "evil")
        assert await call(mem, "delete", "victim\0zzz") is False
        assert await call(mem, "load", "victim\0evil") == "evil"
        assert await call(mem, "size") == 2
    assert await call(mem, "load", "victim") == "original"


# ---- embeddings and recall --------------------------------------------------------------------


async def test_recall_nearest_first(any_target, call):
    mem = any_target.open().memory()
    assert await call(mem, "recall", [1.0, 0.0, 0.0]) == []  # before any embedding
    await call(mem, "store", "x", {"axis": "x"}, embedding=[1.0, 0.0, 0.0])
    await call(mem, "store", "y", {"axis": "y"}, embedding=[0.0, 1.0, 0.0])
    await call(mem, "store", "xy", "mostly x", embedding=[0.9, 0.1, 0.0])
    await call(mem, "store", "plain", "no embedding")
    got = await call(mem, "recall", [1.0, 0.0, 0.0], k=2)
    assert [r.key for r in got] == ["x", "xy"]
    assert got[0].value == {"axis": "x"}
    assert got[1].value == "mostly x"
    assert isinstance(got[0], entity_db.Recalled)
    assert got[0].distance == pytest.approx(0.0, abs=1e-5)
    cos = 0.9 / math.sqrt(0.81 + 0.01)
    assert got[1].distance == pytest.approx(1 - cos, abs=1e-4)
    everything = await call(mem, "recall", [0.0, 1.0, 0.0], 10)
    assert [r.key for r in everything] == ["y", "xy", "x"]
    assert everything[2].distance == pytest.approx(1.0, abs=1e-5)
    for i in range(4):
        await call(mem, "store", f"more{i}", i, embedding=[0.1 * (i + 1), 0.0, 1.0])
    default_k = await call(mem, "recall", [0.0, 1.0, 0.0])
    assert len(default_k) == 5  # k defaults to 5
    assert await call(mem, "load", "x") == {"axis": "x"}


async def test_numpy_embeddings_and_queries(target, call):
    mem = target.open().memory()
    await call(mem, "store", "a", "A", embedding=np.array([1, 0, 0], dtype=np.float32))
    await call(mem, "store", "b", "B", embedding=np.array([0, 1, 0], dtype=np.float64))
    got = await call(mem, "recall", np.array([1.0, 0.1, 0.0], dtype=np.float32), 2)
    assert [(r.key, r.value) for r in got] == [("a", "A"), ("b", "B")]
    with pytest.raises(entity_db.DimensionMismatchError):
        await call(mem, "store", "c", "C", embedding=np.ones(4, dtype=np.float32))
    assert await call(mem, "exists", "c") is False


async def test_recall_follows_replacement_and_deletion(any_target, call):
    mem = any_target.open().memory()
    await call(mem, "store", "a", 1, embedding=[1.0, 0.0])
    await call(mem, "store", "b", 2, embedding=[0.0, 1.0])
    await call(mem, "store", "a", "replaced without an embedding")
    assert [r.key for r in await call(mem, "recall", [1.0, 0.0], 5)] == ["b"]
    await call(mem, "store", "a", "again", embedding=[1.0, 0.1])
    assert [r.key for r in await call(mem, "recall", [1.0, 0.0], 5)] == ["a", "b"]
    await call(mem, "delete", "b")
    got = await call(mem, "recall", [1.0, 0.0], 5)
    assert [(r.key, r.value) for r in got] == [("a", "again")]
    await call(mem, "clear")
    assert await call(mem, "recall", [1.0, 0.0], 5) == []


async def test_recall_in_a_scope(any_target, call):
    mem = any_target.open().memory()
    s = mem.scope("s")
    await call(s, "store", "in", "scoped", embedding=[1.0, 0.0])
    await call(mem, "store", "out", "root", embedding=[1.0, 0.0])
    got = await call(s, "recall", [1.0, 0.0], 5)
    assert [(r.key, r.value) for r in got] == [("in", "scoped")]
    assert sorted(r.key for r in await call(mem, "recall", [1.0, 0.0], 5)) == ["out", "s:in"]
    assert await call(mem.scope("other"), "recall", [1.0, 0.0], 5) == []


async def test_recall_with_recall_settings(any_target, call):
    db = any_target.open()
    mem = db.memory(hnsw_threshold=20, hnsw_build_in_background=False, hnsw_m=8,
                    hnsw_ef_construction=50, hnsw_ef=50)
    for i in range(60):
        angle = i * math.pi / 120
        await call(mem, "store", f"m{i:02d}", i, embedding=[math.cos(angle), math.sin(angle)])
    got = await call(mem, "recall", [1.0, 0.0], 3)
    assert [r.key for r in got] == ["m00", "m01", "m02"]
    assert [r.value for r in got] == [0, 1, 2]


async def test_embedding_errors_write_nothing(any_target, call):
    mem = any_target.open().memory()
    await call(mem, "store", "first", 1, embedding=[1.0, 0.0, 0.0])
    with pytest.raises(entity_db.DimensionMismatchError) as info:
        await call(mem, "store", "short", 2, embedding=[1.0, 0.0])
    assert isinstance(info.value, entity_db.InvalidArgumentError)
    assert await call(mem, "exists", "short") is False
    for bad in ([1.0, math.nan, 0.0], [math.inf, 0.0, 0.0], [0.0, 0.0, 0.0], []):
        with pytest.raises(entity_db.InvalidArgumentError):
            await call(mem, "store", "bad", 3, embedding=bad)
        assert await call(mem, "exists", "bad") is False
    # A key that had a value keeps it, and its embedding.
    with pytest.raises(entity_db.DimensionMismatchError):
        await call(mem, "store", "first", "new", embedding=[1.0, 0.0, 0.0, 0.0])
    assert await call(mem, "load", "first") == 1
    assert [r.key for r in await call(mem, "recall", [1.0, 0.0, 0.0], 5)] == ["first"]
    # A bad value with a good embedding writes nothing either.
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(mem, "store", "badvalue", {1}, embedding=[1.0, 0.0, 0.0])
    assert await call(mem, "exists", "badvalue") is False
    with pytest.raises(entity_db.DimensionMismatchError):
        await call(mem, "recall", [1.0, 0.0], 5)
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(mem, "recall", [math.nan, 0.0, 0.0], 5)
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(mem, "recall", [1.0, 0.0, 0.0], 0)
    assert await call(mem, "size") == 1


async def test_memory_works_after_errors(any_target, call):
    mem = any_target.open().memory()
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(mem, "store", "k", object())
    await call(mem, "store", "k", "v")
    assert await call(mem, "load", "k") == "v"


async def test_memory_file_table_holds_json_text(sqlite_target, call):
    db = sqlite_target.open()
    mem = db.memory()
    await call(mem, "store", "k", {"a": [1, 2]})
    row = await call(db, "fetch_one", "SELECT value, typeof(value) FROM memory WHERE key = 'k'")
    assert json.loads(row[0]) == {"a": [1, 2]}
    assert row[1] == "text"


# ---- limits ---------------------------------------------------------------------------------


def nested_lists(levels):
    value = []
    for _ in range(levels - 1):
        value = [value]
    return value


async def test_the_depth_limit_is_the_engines(any_target, call):
    assert entity_db.MAX_JSON_DEPTH == 512
    mem = any_target.open().memory()
    await call(mem, "store", "deepest", nested_lists(entity_db.MAX_JSON_DEPTH))
    assert await call(mem, "load", "deepest") == nested_lists(entity_db.MAX_JSON_DEPTH)
    with pytest.raises(entity_db.InvalidArgumentError, match="512"):
        await call(mem, "store", "deeper", nested_lists(entity_db.MAX_JSON_DEPTH + 1))
    assert await call(mem, "exists", "deeper") is False


async def test_a_stored_value_nested_past_the_limit_is_a_decode_error_naming_the_key(
        any_target, call):
    # Written by another program, deeper than MAX_JSON_DEPTH: a DecodeError, never a crash.
    db = any_target.open()
    mem = db.memory()
    await call(mem, "store", "fine", 1)
    for levels in (entity_db.MAX_JSON_DEPTH + 1, 100_000):
        await call(db, "execute", "DELETE FROM memory WHERE key = 'deep'")
        await call(db, "execute", "INSERT INTO memory (key, value) VALUES ('deep', ?)",
                   ("[" * levels + "]" * levels,))
        with pytest.raises(entity_db.DecodeError, match="'deep'"):
            await call(mem, "load", "deep")
        with pytest.raises(entity_db.DecodeError, match="512"):
            await call(mem, "batch_load", ["fine", "deep"])
    assert await call(mem, "load", "fine") == 1


async def test_embeddings_whose_norm_float32_cannot_hold_are_refused(any_target, call):
    mem = any_target.open().memory()
    await call(mem, "store", "first", 1, embedding=[1.0, 0.0, 0.0])
    for bad in ([1e-45, 0.0, 0.0], [3e38, 3e38, 0.0]):
        with pytest.raises(entity_db.InvalidArgumentError):
            await call(mem, "store", "tiny", 2, embedding=bad)
        with pytest.raises(entity_db.InvalidArgumentError):
            await call(mem, "recall", bad, 1)
    assert await call(mem, "exists", "tiny") is False


async def test_search_filters_values_in_key_order_one_page_at_a_time(any_target, call):
    mem = any_target.open().memory()
    await call(mem, "batch_store", {
        "ada": {"name": "Ada", "age": 36, "city": "London", "tags": ["math", "code"]},
        "bob": {"name": "Bob", "age": 17, "city": "Oslo", "tags": ["ski"]},
        "cy": {"name": "Cy", "age": 52, "city": "Oslo"},
        "eve": "just a string",
    })
    await call(mem.scope("other"), "store", "ada", {"city": "Oslo"})

    hits = await call(mem, "search", {"city": "Oslo"})
    assert [h.key for h in hits] == ["bob", "cy", "other:ada"]
    assert hits[0].value == {"name": "Bob", "age": 17, "city": "Oslo", "tags": ["ski"]}
    assert hits[0] == entity_db.SearchHit(hits[0].key, hits[0].value)
    assert [h.key for h in await call(mem, "search", {"age": {"$gte": 18, "$lt": 60}})] == \
        ["ada", "cy"]
    assert [h.key for h in await call(mem, "search", {"tags": {"$contains": "code"}})] == ["ada"]
    assert [h.key for h in await call(mem.scope("other"), "search", {"city": "Oslo"})] == ["ada"]
    assert [h.key for h in await call(mem, "search")] == ["ada", "bob", "cy", "eve", "other:ada"]
    assert [h.key for h in await call(mem, "search", None, limit=2, offset=1)] == ["bob", "cy"]
    assert await call(mem, "search", {"city": "Paris"}) == []

    with pytest.raises(entity_db.InvalidArgumentError, match=r"\$regex"):
        await call(mem, "search", {"name": {"$regex": "A.*"}})
    with pytest.raises(entity_db.InvalidArgumentError, match="limit"):
        await call(mem, "search", {}, limit=0)
    with pytest.raises(entity_db.InvalidArgumentError, match="path"):
        await call(mem, "search", {"a'); DROP TABLE memory; --": 1})
    assert await call(mem, "size") == 5
