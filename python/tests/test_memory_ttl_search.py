"""Memory: time to live, item times, sweeps, scope listing, and text and hybrid search."""

import asyncio
import math
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

import entity_db

pytestmark = pytest.mark.asyncio

# How long a test waits for an item to expire, or for a background sweep, before it fails.
PATIENCE = 5.0


async def eventually(check, what, patience=PATIENCE):
    """Awaits `check()` (a coroutine function) every 50 ms until it is true; fails after
    `patience` seconds."""
    deadline = time.monotonic() + patience
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: still not so after {patience} s")
        await asyncio.sleep(0.05)


async def bounded(awaitable):
    """Awaits `awaitable` for at most PATIENCE seconds: an operation that never completes fails
    the test instead of hanging the run."""
    return await asyncio.wait_for(awaitable, PATIENCE)


def now():
    return datetime.now(timezone.utc)


def is_utc(t):
    return isinstance(t, datetime) and t.utcoffset() == timedelta(0)


async def rows_in_table(db):
    return (await db.fetch_one("SELECT count(*) AS n FROM memory"))["n"]


# ---- time to live ---------------------------------------------------------------------------


async def test_an_item_stored_with_a_ttl_expires_for_every_read(any_target, call):
    mem = any_target.open().memory(sweep_interval=0)
    await call(mem, "store", "short", {"note": "soon gone"}, ttl=0.3)
    await call(mem, "store", "long", {"note": "stays"}, ttl=timedelta(hours=1))
    await call(mem, "store", "forever", {"note": "stays too"})
    item = await call(mem, "load_item", "short")
    assert item.value == {"note": "soon gone"}
    assert is_utc(item.expires)
    assert timedelta(milliseconds=250) <= item.expires - item.updated <= timedelta(milliseconds=350)

    async def gone():
        return await call(mem, "load", "short") is None

    await eventually(gone, "an item stored with ttl=0.3 is still loaded")
    assert await call(mem, "exists", "short") is False
    assert await call(mem, "load_item", "short") is None
    assert await call(mem, "batch_load", ["short", "long"]) == {"long": {"note": "stays"}}
    assert await call(mem, "keys") == ["forever", "long"]
    assert [h.key for h in await call(mem, "search")] == ["forever", "long"]
    assert [h.key for h in await call(mem, "search", text="soon")] == []
    assert await call(mem, "size") == 2
    long_item = await call(mem, "load_item", "long")
    assert timedelta(minutes=59) < long_item.expires - now() <= timedelta(hours=1)
    assert (await call(mem, "load_item", "forever")).expires is None


async def test_default_ttl_batch_ttl_and_a_ttl_that_never_expires(any_target, call):
    db = any_target.open()
    mem = db.memory(default_ttl=0.3, sweep_interval=0)
    await call(mem, "store", "default", 1)
    await call(mem, "store", "never", 2, ttl=math.inf)
    await call(mem, "batch_store", {"b1": 3, "b2": 4}, ttl=timedelta(hours=2))
    await call(mem, "batch_store", [("d1", 5)])
    assert (await call(mem, "load_item", "never")).expires is None
    for key in ("b1", "b2"):
        item = await call(mem, "load_item", key)
        assert timedelta(minutes=119) < item.expires - item.updated <= timedelta(hours=2)
    default = await call(mem, "load_item", "default")
    assert timedelta(milliseconds=250) <= default.expires - default.updated <= \
        timedelta(milliseconds=350)

    async def defaults_gone():
        return await call(mem, "keys") == ["b1", "b2", "never"]

    await eventually(defaults_gone, "items stored under default_ttl=0.3 are still listed")
    # Storing a key again replaces its time to live.
    await call(mem, "store", "never", 2)
    assert (await call(mem, "load_item", "never")).expires is not None
    # A memory without default_ttl sees the same table: its items never expire there.
    plain = db.memory(sweep_interval=0)
    await call(plain, "store", "plain", 6)
    assert (await call(plain, "load_item", "plain")).expires is None


async def test_an_embedded_store_takes_a_ttl(any_target, call):
    mem = any_target.open().memory(sweep_interval=0)
    await call(mem, "store", "v", {"n": 1}, [1.0, 0.0], ttl=0.3)
    await call(mem, "store", "w", {"n": 2}, embedding=np.array([0.0, 1.0], np.float32))
    assert [r.key for r in await call(mem, "recall", [1.0, 0.0], 2)] == ["v", "w"]

    async def gone():
        return [r.key for r in await call(mem, "recall", [1.0, 0.0], 2)] == ["w"]

    await eventually(gone, "an embedded item stored with ttl=0.3 is still recalled")
    assert await call(mem, "load", "v") is None


async def test_refresh_on_read_keeps_an_item_that_is_read(any_target, call):
    db = any_target.open()
    mem = db.memory(refresh_on_read=True, sweep_interval=0)
    await bounded(call(mem, "store", "hot", "read often", ttl=0.6))
    await bounded(call(mem, "store", "cold", "never read", ttl=0.6))
    first = (await bounded(call(mem, "load_item", "hot"))).expires
    # Reads more often than the ttl for well over one ttl: each read starts it again.
    until = time.monotonic() + 1.5
    while time.monotonic() < until:
        assert await bounded(call(mem, "load", "hot")) == "read often"
        await asyncio.sleep(0.1)
    later = (await bounded(call(mem, "load_item", "hot"))).expires
    assert later - first >= timedelta(seconds=1)
    assert await bounded(call(db.memory(sweep_interval=0), "exists", "cold")) is False

    async def hot_gone():
        return await bounded(call(db.memory(sweep_interval=0), "exists", "hot")) is False

    await eventually(hot_gone, "an item nobody reads any more is still there")

    # Without refresh_on_read a read leaves the expiry as it was.
    plain = db.memory(sweep_interval=0)
    await bounded(call(plain, "store", "k", 1, ttl=60))
    before = (await bounded(call(plain, "load_item", "k"))).expires
    await asyncio.sleep(0.05)
    assert await bounded(call(plain, "load", "k")) == 1
    assert (await bounded(call(plain, "load_item", "k"))).expires == before


# ---- item times -------------------------------------------------------------------------------


async def test_load_item_times_are_plausible_utc_datetimes(any_target, call):
    db = any_target.open()
    mem = db.memory()
    start = now() - timedelta(seconds=1)
    await call(mem, "store", "user:1", {"name": "Ada"})
    item = await call(mem, "load_item", "user:1")
    assert isinstance(item, entity_db.Item)
    assert item.key == "user:1" and item.value == {"name": "Ada"}
    assert is_utc(item.created) and is_utc(item.updated)
    assert start <= item.created <= item.updated <= now() + timedelta(seconds=1)
    assert item.expires is None
    await asyncio.sleep(0.05)
    await call(mem, "store", "user:1", {"name": "Ada", "v": 2})
    again = await call(mem, "load_item", "user:1")
    assert again.created == item.created
    assert again.updated >= item.updated + timedelta(milliseconds=40)
    assert again.value == {"name": "Ada", "v": 2}
    # Through a scope: the key relative to it.
    scoped = await call(mem.scope("user"), "load_item", "1")
    assert scoped.key == "1" and scoped.created == item.created
    assert await call(mem, "load_item", "missing") is None
    # An item written by a program that records no times has none.
    await db.execute("INSERT INTO memory (key, value) VALUES (?, ?)", ("raw", '{"old": true}'))
    raw = await call(mem, "load_item", "raw")
    assert raw == entity_db.Item("raw", {"old": True}, None, None, None)


async def test_restore_gives_back_items_with_their_times(any_target, call):
    mem = any_target.open().memory()
    await call(mem, "store", "kept", {"a": 1})
    await call(mem, "store", "short", "milk", ttl=timedelta(hours=1))
    backup = [await call(mem, "load_item", k) for k in ("kept", "short")]
    assert backup[0].ttl is None
    assert backup[1].ttl == timedelta(hours=1)
    assert await call(mem, "clear") == 2
    await asyncio.sleep(0.05)
    assert await call(mem, "restore", backup) is None
    for was in backup:
        item = await call(mem, "load_item", was.key)
        assert item == was  # the same value and times
        assert item.ttl == was.ttl
    # Tuples too, with the times not given taken as a store would give them.
    created = datetime(2020, 1, 2, 3, 4, 5, 6000, tzinfo=timezone.utc)
    await call(mem, "restore", [("old", [1, 2], created), ("new", None)])
    old = await call(mem, "load_item", "old")
    assert old.created == created and old.value == [1, 2]
    assert old.updated >= now() - timedelta(seconds=5) and old.expires is None
    assert (await call(mem, "load_item", "new")).value is None


async def test_restore_refuses_bad_items_and_writes_nothing(any_target, call):
    mem = any_target.open().memory()
    naive = datetime(2020, 1, 1)
    with_bad_ttl = entity_db.Item("b", 2, None, None, None, ttl=timedelta(0))
    for bad in ([("a", 1), "not a tuple"], [("a", 1), (1, 2)], [("a", 1), ("b", 2, naive)],
                [("a", 1), with_bad_ttl], [("a", 1), ("b", math.nan)], [("a",)]):
        with pytest.raises(entity_db.InvalidArgumentError):
            await call(mem, "restore", bad)
    assert await call(mem, "size") == 0


async def test_keys_and_search_in_a_time_window(any_target, call):
    db = any_target.open()
    mem = db.memory()
    await call(mem, "store", "early", {"n": 1})
    await asyncio.sleep(0.03)
    middle = now()
    await asyncio.sleep(0.03)
    await call(mem, "store", "late", {"n": 2})
    await db.execute("INSERT INTO memory (key, value) VALUES (?, ?)", ("raw", '{"n": 3}'))
    assert await call(mem, "keys", created_after=middle) == ["late"]
    assert await call(mem, "keys", created_before=middle) == ["early"]
    assert await call(mem, "keys", "%", created_before=now() + timedelta(seconds=1)) == \
        ["early", "late"]
    assert await call(mem, "keys") == ["early", "late", "raw"]
    await call(mem, "store", "early", {"n": 4})
    assert await call(mem, "keys", updated_after=middle) == ["early", "late"]
    assert await call(mem, "keys", created_after=middle) == ["late"]
    assert await call(mem, "keys", updated_before=middle) == []
    # Any timezone names the same instant.
    east = middle.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert await call(mem, "keys", created_after=east) == ["late"]
    hits = await call(mem, "search", {"n": {"$gte": 2}}, created_after=middle)
    assert [h.key for h in hits] == ["late"]
    hits = await call(mem, "search", updated_after=middle, updated_before=now() + timedelta(1))
    assert [(h.key, h.value) for h in hits] == [("early", {"n": 4}), ("late", {"n": 2})]


# ---- sweeps -----------------------------------------------------------------------------------


async def test_sweep_deletes_expired_items_and_returns_how_many(any_target, call):
    db = any_target.open()
    mem = db.memory(sweep_interval=0, sweep_batch=2)
    await call(mem, "batch_store", {f"t{i}": i for i in range(5)}, ttl=0.2)
    await call(mem.scope("s"), "batch_store", {"a": 1, "b": 2}, ttl=0.2)
    await call(mem, "batch_store", {"keep1": 1, "keep2": 2})
    await call(mem.scope("s"), "store", "keep", 3)
    assert await rows_in_table(db) == 10

    async def expired():
        return await call(mem, "keys") == ["keep1", "keep2", "s:keep"]

    await eventually(expired, "items stored with ttl=0.2 are still listed")
    assert await rows_in_table(db) == 10  # sweep_interval=0: nothing deletes them but sweep()
    assert await call(mem.scope("s"), "sweep") == 2
    assert await rows_in_table(db) == 8
    assert await call(mem, "sweep") == 5
    assert await call(mem, "sweep") == 0
    assert await rows_in_table(db) == 3
    assert await call(mem, "keys") == ["keep1", "keep2", "s:keep"]


async def test_a_background_sweep_deletes_expired_items(any_target, call):
    db = any_target.open()
    mem = db.memory(sweep_interval=0.1)
    await call(mem, "batch_store", {"a": 1, "b": 2, "c": 3}, ttl=0.2)
    await call(mem, "store", "keep", 4)

    async def swept():
        await call(mem, "size")  # an operation of the memory, which starts the sweep when due
        return await rows_in_table(db) == 1

    await eventually(swept, "no background sweep deleted the expired items")
    assert await call(mem, "keys") == ["keep"]
    assert await call(mem, "sweep") == 0


# ---- scopes -------------------------------------------------------------------------------------


async def test_scopes_lists_the_scopes_that_hold_items(any_target, call):
    mem = any_target.open().memory()
    await call(mem, "batch_store", {
        "top": 0,
        "a:b:note": 1,
        "a:b:d:deep": 2,
        "a:c:x": 3,
        "user-42:s1:k": 4,
        "user-42:s2:k": 5,
        "user-4:k": 6,
    })
    assert await call(mem, "scopes") == ["a:b", "a:b:d", "a:c", "user-4", "user-42:s1",
                                         "user-42:s2"]
    assert await call(mem, "scopes", max_depth=1) == ["a", "user-4", "user-42"]
    assert await call(mem, "scopes", "", 2) == ["a:b", "a:c", "user-4", "user-42:s1",
                                                "user-42:s2"]
    assert await call(mem, "scopes", "user-4") == ["user-4"]
    assert await call(mem, "scopes", "user-42") == ["user-42:s1", "user-42:s2"]
    assert await call(mem, "scopes", "a:b") == ["a:b", "a:b:d"]
    assert await call(mem, "scopes", "nobody") == []
    assert await call(mem.scope("a"), "scopes") == ["b", "b:d", "c"]
    assert await call(mem.scope("a").scope("b"), "scopes") == ["d"]
    assert await call(mem.scope("top"), "scopes") == []
    with pytest.raises(entity_db.InvalidArgumentError, match="max_depth"):
        await call(mem, "scopes", max_depth=0)
    with pytest.raises(entity_db.InvalidArgumentError, match="max_depth"):
        await call(mem, "scopes", max_depth=-1)


# ---- text and hybrid search ----------------------------------------------------------------------


NOTES = {
    "n1": {"kind": "fruit", "title": "Red apple", "body": "A red apple, crisp: red apple pie"},
    "n2": {"kind": "fruit", "title": "Green pear", "body": "soft and sweet"},
    "n3": {"kind": "car", "title": "Red car", "body": "fast"},
    "n4": {"kind": "fruit", "title": "Banana", "body": "yellow, not red at all"},
    "n5": "a plain string about an APPLE",
}


async def test_search_by_text_finds_the_words_best_first(any_target, call):
    mem = any_target.open().memory()
    await call(mem, "batch_store", NOTES)
    hits = await call(mem, "search", text="apple")
    assert sorted(h.key for h in hits) == ["n1", "n5"]
    assert hits[0].key == "n1"  # the word three times, against once
    assert all(h.matched_text and not h.matched_vector for h in hits)
    assert all(h.score > 0 for h in hits) and hits[0].score >= hits[1].score
    assert all(is_utc(h.created) and is_utc(h.updated) for h in hits)
    # Any of the words; without ASCII case; punctuation separates words.
    assert sorted(h.key for h in await call(mem, "search", text="PEAR, banana!")) == ["n2", "n4"]
    assert [h.key for h in await call(mem, "search", text="red apple")][0] == "n1"
    assert await call(mem, "search", text="zeppelin") == []
    # A filter and text together: only the filter's items, by the text's rank.
    hits = await call(mem, "search", {"kind": "fruit"}, text="red")
    assert [h.key for h in hits][0] == "n1" and sorted(h.key for h in hits) == ["n1", "n4"]
    hits = await call(mem, "search", {"kind": {"$ne": "fruit"}}, text="red apple")
    assert sorted(h.key for h in hits) == ["n3", "n5"]
    # Paged.
    page = await call(mem, "search", text="red", limit=2)
    rest = await call(mem, "search", text="red", limit=2, offset=2)
    assert len(page) == 2 and len(rest) == 1
    assert sorted(h.key for h in page + rest) == ["n1", "n3", "n4"]
    # Writes after the first text search are indexed with them.
    await call(mem, "store", "n6", {"title": "zeppelin"})
    assert [h.key for h in await call(mem, "search", text="zeppelin")] == ["n6"]
    await call(mem, "delete", "n6")
    assert await call(mem, "search", text="zeppelin") == []
    # In a scope: its own items, keys relative to it.
    await call(mem.scope("s"), "store", "n1", {"title": "apple in a scope"})
    assert [h.key for h in await call(mem.scope("s"), "search", text="apple")] == ["n1"]


async def test_text_fields_limit_the_indexed_text(any_target, call):
    mem = any_target.open().memory(text_fields=["title", "meta.tag"])
    await call(mem, "batch_store", {
        "a": {"title": "Lisbon", "body": "Oslo", "meta": {"tag": "harbour"}},
        "b": {"title": "Oslo", "body": "Lisbon"},
    })
    assert [h.key for h in await call(mem, "search", text="oslo")] == ["b"]
    assert [h.key for h in await call(mem, "search", text="lisbon")] == ["a"]
    assert [h.key for h in await call(mem, "search", text="harbour")] == ["a"]


async def test_hybrid_search_ranks_an_item_both_signals_find_first(any_target, call):
    mem = any_target.open().memory()
    # The words twice in a short text: first by text relevance on either backend, against
    # longer texts holding them once (and items holding neither, so that the words are rare).
    await call(mem, "store", "both", {"note": "red apple, a red apple"}, [1.0, 0.0, 0.0])
    await call(mem, "store", "text_only",
               {"note": "a red apple among the many other fruits of a long autumn harvest"},
               [0.0, 0.0, 1.0])
    await call(mem, "store", "vector_only", {"note": "blue car"}, [0.95, 0.05, 0.0])
    await call(mem, "store", "neither", {"note": "green tree"}, [0.0, 1.0, 0.0])
    await call(mem, "store", "no_embedding",
               {"note": "an old red apple tree stands at the far end of the orchard"})
    await call(mem, "batch_store", {f"filler{i}": {"note": f"nothing to see {i}"}
                                    for i in range(6)})
    query = np.array([1.0, 0.0, 0.0], np.float32)

    hits = await call(mem, "search", text="red apple", vector=query)
    by_key = {h.key: h for h in hits}
    assert hits[0].key == "both"
    assert hits[0].matched_text and hits[0].matched_vector
    assert hits[0].score == pytest.approx(2 / 61)  # first in either signal: 1/(60+1), twice
    assert by_key["text_only"].matched_text
    assert by_key["vector_only"].matched_vector and not by_key["vector_only"].matched_text
    assert by_key["no_embedding"].matched_text and not by_key["no_embedding"].matched_vector
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    # The vector alone: cosine similarity, nearest first.
    hits = await call(mem, "search", vector=[1.0, 0.0, 0.0], limit=2)
    assert [h.key for h in hits] == ["both", "vector_only"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert all(h.matched_vector and not h.matched_text for h in hits)
    assert hits[1].score == pytest.approx(0.95 / math.hypot(0.95, 0.05), abs=1e-5)
    # With a filter: only the items it matches count.
    hits = await call(mem, "search", {"note": {"$contains": "car"}}, vector=[1.0, 0.0, 0.0])
    assert [h.key for h in hits] == ["vector_only"]

    # A filter alone: key order, score 0, no signal.
    hits = await call(mem, "search", {"note": {"$contains": "apple"}})
    assert [h.key for h in hits] == ["both", "no_embedding", "text_only"]
    assert all(h.score == 0 and not h.matched_text and not h.matched_vector for h in hits)

    with pytest.raises(entity_db.DimensionMismatchError):
        await call(mem, "search", vector=[1.0, 0.0])
    with pytest.raises(entity_db.InvalidArgumentError, match="vector"):
        await call(mem, "search", vector="not a vector")


async def test_search_hits_keep_the_shape_of_a_key_value_pair(any_target, call):
    mem = any_target.open().memory()
    await call(mem, "store", "k", {"word": "hello"})
    (hit,) = await call(mem, "search", text="hello")
    key, value = hit
    assert (key, value) == ("k", {"word": "hello"}) == (hit[0], hit[1]) == (hit.key, hit.value)
    assert hit == entity_db.SearchHit("k", {"word": "hello"}) and len(hit) == 2
    assert "score=" in repr(hit) and "matched_text=True" in repr(hit)


async def test_a_vector_search_without_embeddings_finds_nothing(any_target, call):
    mem = any_target.open().memory()
    await call(mem, "store", "k", {"word": "hello"})
    assert await call(mem, "search", vector=[1.0, 2.0]) == []


# ---- bad arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [0, 0.0, -1, -0.5, timedelta(0), timedelta(seconds=-3)])
async def test_a_ttl_of_zero_or_less_is_refused_and_writes_nothing(any_target, call, ttl):
    mem = any_target.open().memory()
    with pytest.raises(entity_db.InvalidArgumentError) as raised:
        await call(mem, "store", "k", 1, ttl=ttl)
    assert isinstance(raised.value, ValueError)
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(mem, "batch_store", {"a": 1, "b": 2}, ttl=ttl)
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(mem, "store", "e", 1, [1.0, 0.0], ttl=ttl)
    assert await call(mem, "size") == 0


@pytest.mark.parametrize("ttl", ["soon", math.nan, True, [1], 1e300])
async def test_a_ttl_that_is_not_a_duration_is_refused(any_target, call, ttl):
    mem = any_target.open().memory()
    with pytest.raises(entity_db.InvalidArgumentError, match="ttl"):
        await call(mem, "store", "k", 1, ttl=ttl)
    assert await call(mem, "exists", "k") is False


async def test_a_sub_millisecond_ttl_is_one_millisecond(any_target, call):
    mem = any_target.open().memory(sweep_interval=0)
    await call(mem, "store", "k", 1, ttl=1e-6)

    async def gone():
        return await call(mem, "exists", "k") is False

    await eventually(gone, "an item stored with ttl=1 µs is still there")


async def test_bad_search_and_keys_arguments(any_target, call):
    mem = any_target.open().memory()
    await call(mem, "store", "k", {"a": 1})
    with pytest.raises(entity_db.InvalidArgumentError, match="limit"):
        await call(mem, "search", text="a", limit=0)
    with pytest.raises(entity_db.InvalidArgumentError, match="limit"):
        await call(mem, "search", limit=10_001)
    with pytest.raises(entity_db.InvalidArgumentError, match="offset"):
        await call(mem, "search", offset=-1)
    with pytest.raises(entity_db.InvalidArgumentError, match=r"\$regex"):
        await call(mem, "search", {"a": {"$regex": "x"}}, text="a")
    with pytest.raises(entity_db.InvalidArgumentError, match="text"):
        await call(mem, "search", text=5)
    with pytest.raises(entity_db.InvalidArgumentError, match="no words"):
        await call(mem, "search", text="?! ...")
    naive = datetime.now()
    with pytest.raises(entity_db.InvalidArgumentError, match="created_after.*naive"):
        await call(mem, "keys", created_after=naive)
    with pytest.raises(entity_db.InvalidArgumentError, match="updated_before"):
        await call(mem, "search", updated_before="yesterday")
    with pytest.raises(TypeError):
        await call(mem, "search", {}, 10, 0, "positional text")  # text is keyword-only
    with pytest.raises(TypeError):
        await call(mem, "store", "k", 1, None, 5)  # so is ttl
    assert await call(mem, "load", "k") == {"a": 1}


@pytest.mark.parametrize("settings, named", [
    ({"default_ttl": 0}, "default_ttl"),
    ({"default_ttl": -1}, "default_ttl"),
    ({"default_ttl": "1h"}, "default_ttl"),
    ({"default_ttl": 1e300}, "default_ttl"),
    ({"refresh_on_read": 1}, "refresh_on_read"),
    ({"sweep_interval": -1}, "sweep_interval"),
    ({"sweep_interval": math.nan}, "sweep_interval"),
    ({"sweep_batch": 0}, "sweep_batch"),
    ({"sweep_batch": 1.5}, "sweep_batch"),
    ({"text_fields": "title"}, "text_fields"),
    ({"text_fields": ["title", 3]}, "text_fields"),
    ({"default_tll": 5}, "default_tll"),
])
async def test_bad_memory_settings(any_target, settings, named):
    db = any_target.open()
    with pytest.raises(entity_db.InvalidArgumentError, match=named):
        db.memory(**settings)


async def test_memory_settings_take_timedeltas_and_none(any_target, call):
    db = any_target.open()
    mem = db.memory(default_ttl=timedelta(minutes=5), sweep_interval=timedelta(seconds=30),
                    sweep_batch=10, refresh_on_read=False, text_fields=("title",),
                    hnsw_threshold=50)
    await call(mem, "store", "k", {"title": "x"})
    item = await call(mem, "load_item", "k")
    assert timedelta(minutes=4) < item.expires - item.updated <= timedelta(minutes=5)
    never = db.memory(default_ttl=None)
    await call(never, "store", "n", 1)
    assert (await call(never, "load_item", "n")).expires is None
