"""VectorStore: collections, writes, reads, exact and approximate search, bad input."""

import array
import math
import random

import numpy as np
import pytest

import entity_db

pytestmark = pytest.mark.asyncio


def approx_vector(got, want, tol=1e-6):
    assert isinstance(got, list)
    assert all(isinstance(x, float) for x in got)
    assert got == pytest.approx([float(x) for x in want], abs=tol)


async def test_create_drop_and_list_collections(any_target, call):
    vs = any_target.open().vector_store()
    assert await call(vs, "list_collections") == []
    assert await call(vs, "create_collection", "docs", 3) is True
    assert await call(vs, "create_collection", "docs", 3) is False
    assert await call(vs, "create_collection", "euclid", 2, "l2") is True
    assert await call(vs, "create_collection", "dots", 4, metric="inner_product") is True
    assert await call(vs, "create_collection", "ip_short", 4, metric="ip") is True
    await call(vs, "upsert", "docs", "a", [1.0, 0.0, 0.0])
    infos = await call(vs, "list_collections")
    assert [i.name for i in infos] == ["docs", "dots", "euclid", "ip_short"]
    by_name = {i.name: i for i in infos}
    assert isinstance(infos[0], entity_db.CollectionInfo)
    assert (by_name["docs"].dim, by_name["docs"].metric, by_name["docs"].count) == (3, "cosine", 1)
    assert (by_name["euclid"].dim, by_name["euclid"].metric, by_name["euclid"].count) == (2, "l2", 0)
    assert by_name["dots"].metric == "inner_product"
    assert by_name["ip_short"].metric == "inner_product"
    assert by_name["docs"].indexed is False
    # Another dimension or metric under an existing name is an error.
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(vs, "create_collection", "docs", 4)
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(vs, "create_collection", "docs", 3, "l2")
    assert await call(vs, "drop_collection", "docs") is True
    assert await call(vs, "drop_collection", "docs") is False
    assert [i.name for i in await call(vs, "list_collections")] == ["dots", "euclid", "ip_short"]
    # A collection made anew under a dropped name starts empty.
    assert await call(vs, "create_collection", "docs", 5) is True
    assert await call(vs, "count", "docs") == 0


BAD_NAMES = ["", "1abc", "a-b", "a b", "a" * 64, "naïve", "x;DROP TABLE memory", "a.b", "'q'"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: repr(n)[:12])
async def test_bad_collection_names(target, call, name):
    db = target.open()
    vs = db.vector_store()
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(vs, "create_collection", name, 3)
    assert await call(vs, "list_collections") == []
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(vs, "upsert", name, "id", [1.0, 2.0, 3.0])
    assert await call(vs, "list_collections") == []


async def test_good_collection_names(target, call):
    vs = target.open().vector_store()
    for name in ["a", "_", "A_b_9", "x" * 63]:
        assert await call(vs, "create_collection", name, 2) is True
    assert len(await call(vs, "list_collections")) == 4


async def test_bad_collection_settings(target, call):
    vs = target.open().vector_store()
    for dim in (0, 65537):
        with pytest.raises(entity_db.InvalidArgumentError):
            await call(vs, "create_collection", "c", dim)
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(vs, "create_collection", "c", 3, "manhattan")
    assert await call(vs, "list_collections") == []


async def test_negative_dimension_is_invalid(target, call):
    vs = target.open().vector_store()
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(vs, "create_collection", "c", -1)
    assert await call(vs, "list_collections") == []


async def test_upsert_get_delete_count(any_target, call):
    vs = any_target.open().vector_store()
    await call(vs, "create_collection", "c", 3)
    assert await call(vs, "upsert", "c", "list", [1.0, 2.0, 3.0], {"kind": "list"}) is None
    await call(vs, "upsert", "c", "tuple", (0.5, -1, 2))
    await call(vs, "upsert", "c", "f32", np.array([0.25, 0.5, 0.75], dtype=np.float32),
               metadata={"kind": "numpy", "n": 1})
    await call(vs, "upsert", "c", "f64", np.array([1.1, 2.2, 3.3], dtype=np.float64))
    strided = np.arange(6, dtype=np.float32)[::2] + 1  # a view with a stride
    await call(vs, "upsert", "c", "strided", strided)
    assert await call(vs, "count", "c") == 5

    item = await call(vs, "get", "c", "list")
    assert isinstance(item, entity_db.VectorItem)
    assert item.id == "list"
    approx_vector(item.vector, [1, 2, 3])
    assert item.metadata == {"kind": "list"}
    item = await call(vs, "get", "c", "tuple")
    approx_vector(item.vector, [0.5, -1, 2])
    assert item.metadata == {}
    item = await call(vs, "get", "c", "f32")
    approx_vector(item.vector, [0.25, 0.5, 0.75])
    assert item.metadata == {"kind": "numpy", "n": 1}
    item = await call(vs, "get", "c", "f64")
    # float64 becomes float32: equal to the float32 rounding of each number.
    approx_vector(item.vector, np.array([1.1, 2.2, 3.3], dtype=np.float32).tolist(), tol=0)
    approx_vector((await call(vs, "get", "c", "strided")).vector, [1, 3, 5])
    assert await call(vs, "get", "c", "missing") is None

    # An upsert replaces the vector and the metadata.
    await call(vs, "upsert", "c", "list", [3.0, 2.0, 1.0])
    item = await call(vs, "get", "c", "list")
    approx_vector(item.vector, [3, 2, 1])
    assert item.metadata == {}
    assert await call(vs, "count", "c") == 5

    assert await call(vs, "delete", "c", "list") is True
    assert await call(vs, "delete", "c", "list") is False
    assert await call(vs, "erase", "c", "tuple") is True
    assert await call(vs, "erase", "c", "tuple") is False
    assert await call(vs, "count", "c") == 3
    assert await call(vs, "get", "c", "list") is None


BUFFERS = {
    "array_f": lambda: array.array("f", [1, 2, 3]),
    "array_d": lambda: array.array("d", [1, 2, 3]),
    "array_q": lambda: array.array("q", [1, 2, 3]),
    "memoryview_f32": lambda: memoryview(np.array([1, 2, 3], dtype=np.float32)),
    **{f"numpy_{dt}": (lambda dt=dt: np.array([1, 2, 3], dtype=dt))
       for dt in ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                  "uint16", "uint32", "uint64"]},
}


async def test_any_buffer_of_numbers_is_a_vector(target, call):
    vs = target.open().vector_store()
    await call(vs, "create_collection", "c", 3, "l2")
    refused = {}
    for name, make in BUFFERS.items():
        try:
            await call(vs, "upsert", "c", name, make())
            approx_vector((await call(vs, "get", "c", name)).vector, [1, 2, 3])
            got = await call(vs, "search", "c", make(), 1)
            assert got[0].distance == pytest.approx(0.0)
        except entity_db.Error as e:
            refused[name] = str(e)
    assert refused == {}, f"buffers refused as vectors: {sorted(refused)}"


async def test_upsert_batch_of_tuples_and_dicts(any_target, call):
    vs = any_target.open().vector_store()
    await call(vs, "create_collection", "c", 2, "l2")
    assert await call(vs, "upsert_batch", "c", [
        ("a", [1.0, 0.0]),
        ("b", [0.0, 1.0], {"tag": "b"}),
        ("c", np.array([2.0, 2.0], dtype=np.float32), None),
    ]) is None
    await call(vs, "upsert_batch", "c", [
        {"id": "d", "vector": [3.0, 3.0]},
        {"id": "e", "vector": np.array([4.0, 4.0]), "metadata": {"tag": "e"}},
    ])
    await call(vs, "upsert_batch", "c", [])
    assert await call(vs, "count", "c") == 5
    assert (await call(vs, "get", "c", "b")).metadata == {"tag": "b"}
    assert (await call(vs, "get", "c", "c")).metadata == {}
    approx_vector((await call(vs, "get", "c", "e")).vector, [4, 4])
    # An id given twice keeps its last vector.
    await call(vs, "upsert_batch", "c", [("a", [9.0, 9.0]), ("a", [8.0, 8.0])])
    approx_vector((await call(vs, "get", "c", "a")).vector, [8, 8])
    assert await call(vs, "count", "c") == 5


async def test_search_exact_by_metric(any_target, call):
    vs = any_target.open().vector_store()
    points = {"o": [0.0, 0.0], "x": [1.0, 0.0], "y": [0.0, 2.0], "xy": [3.0, 3.0]}
    await call(vs, "create_collection", "l2c", 2, "l2")
    await call(vs, "upsert_batch", "l2c", [(k, v, {"name": k}) for k, v in points.items()])
    got = await call(vs, "search", "l2c", [1.0, 0.5], k=3, exact=True)
    assert [m.id for m in got] == ["x", "o", "y"]
    assert isinstance(got[0], entity_db.Match)
    assert got[0].distance == pytest.approx(0.25)  # the squared distance
    assert got[1].distance == pytest.approx(1.25)
    assert got[2].distance == pytest.approx(3.25)
    assert got[0].metadata == {"name": "x"}

    await call(vs, "create_collection", "ipc", 2, "ip")
    await call(vs, "upsert_batch", "ipc", [(k, v) for k, v in points.items()])
    got = await call(vs, "search", "ipc", [1.0, 1.0], 2, exact=True)
    assert [m.id for m in got] == ["xy", "y"]
    assert got[0].distance == pytest.approx(-6.0)

    await call(vs, "create_collection", "cos", 2)
    await call(vs, "upsert_batch", "cos", [("x", [1.0, 0.0]), ("y", [0.0, 1.0]),
                                           ("d", [1.0, 1.0])])
    got = await call(vs, "search", "cos", np.array([2.0, 0.0], dtype=np.float32), 10)
    assert [m.id for m in got] == ["x", "d", "y"]
    assert got[0].distance == pytest.approx(0.0, abs=1e-6)
    assert got[1].distance == pytest.approx(1 - math.sqrt(0.5), abs=1e-5)
    assert got[2].distance == pytest.approx(1.0, abs=1e-6)
    assert len(await call(vs, "search", "cos", [1.0, 0.0])) == 3  # k defaults to 10


async def test_search_with_filter(any_target, call):
    vs = any_target.open().vector_store()
    await call(vs, "create_collection", "c", 2, "l2")
    await call(vs, "upsert_batch", "c", [
        (f"p{i}", [float(i), 0.0], {"even": i % 2 == 0, "group": "g" + str(i % 3)})
        for i in range(30)
    ])
    got = await call(vs, "search", "c", [10.2, 0.0], 4, filter={"even": False}, exact=True)
    assert [m.id for m in got] == ["p11", "p9", "p13", "p7"]
    got = await call(vs, "search", "c", [10.2, 0.0], 3, filter={"even": True, "group": "g1"})
    assert [m.id for m in got] == ["p10", "p16", "p4"]
    assert all(m.metadata["group"] == "g1" and m.metadata["even"] for m in got)
    assert await call(vs, "search", "c", [0.0, 0.0], 5, filter={"group": "none"}) == []
    assert len(await call(vs, "search", "c", [0.0, 0.0], 5, filter={})) == 5
    assert len(await call(vs, "search", "c", [0.0, 0.0], 5, filter=None)) == 5


async def test_search_approximate_with_filter(target, call):
    db = target.open()
    vs = db.vector_store(hnsw_threshold=100, hnsw_build_in_background=False, hnsw_m=8,
                         hnsw_ef_construction=64, hnsw_ef=64)
    dim, n = 8, 600
    rng = random.Random(7)
    vectors = [[rng.uniform(-1, 1) for _ in range(dim)] for _ in range(n)]
    await call(vs, "create_collection", "big", dim, "l2")
    await call(vs, "upsert_batch", "big", [
        {"id": f"v{i:03d}", "vector": v, "metadata": {"group": i % 4}}
        for i, v in enumerate(vectors)
    ])
    assert await call(vs, "count", "big") == n
    query = vectors[42]  # group 2
    exact = await call(vs, "search", "big", query, 10, filter={"group": 2}, exact=True)
    approx = await call(vs, "search", "big", query, 10, filter={"group": 2})
    assert len(approx) == 10
    assert all(m.metadata == {"group": 2} for m in approx)
    assert approx[0].id == "v042" and approx[0].distance == pytest.approx(0.0, abs=1e-5)
    distances = [m.distance for m in approx]
    assert distances == sorted(distances)
    overlap = len({m.id for m in exact} & {m.id for m in approx})
    assert overlap >= 8, f"approximate search found {overlap} of the 10 nearest"
    unfiltered = await call(vs, "search", "big", np.array(query, dtype=np.float32), 5)
    assert unfiltered[0].id == "v042"
    info = {i.name: i for i in await call(vs, "list_collections")}["big"]
    assert info.count == n
    assert info.indexed is True


async def test_bad_vectors_write_nothing(any_target, call):
    vs = any_target.open().vector_store()
    await call(vs, "create_collection", "c", 3)
    await call(vs, "upsert", "c", "keep", [1.0, 1.0, 1.0], {"v": 1})
    cases = [
        (entity_db.DimensionMismatchError, [1.0, 2.0]),
        (entity_db.DimensionMismatchError, [1.0, 2.0, 3.0, 4.0]),
        (entity_db.DimensionMismatchError, np.ones(4, dtype=np.float32)),
        (entity_db.InvalidArgumentError, [1.0, math.nan, 3.0]),
        (entity_db.InvalidArgumentError, np.array([1.0, 2.0, np.nan], dtype=np.float32)),
        (entity_db.InvalidArgumentError, [math.inf, 1.0, 1.0]),
        (entity_db.InvalidArgumentError, [0.0, 0.0, 0.0]),  # no direction for cosine
    ]
    for error, vector in cases:
        with pytest.raises(error):
            await call(vs, "upsert", "c", "new", vector)
        with pytest.raises(error):
            await call(vs, "upsert", "c", "keep", vector)
        assert await call(vs, "get", "c", "new") is None
        approx_vector((await call(vs, "get", "c", "keep")).vector, [1, 1, 1])
    for bad_meta in ([1, 2], "text", 5):
        with pytest.raises(entity_db.InvalidArgumentError):
            await call(vs, "upsert", "c", "new", [1.0, 2.0, 3.0], bad_meta)
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(vs, "upsert", "c", "", [1.0, 2.0, 3.0])
    # A batch with one bad item in the middle writes nothing.
    for bad in (("b2", [1.0, 2.0]), ("b2", [1.0, math.nan, 1.0]), ("b2", [0.0, 0.0, 0.0])):
        batch = [("b0", [1.0, 0.0, 0.0]), ("b1", [0.0, 1.0, 0.0]), bad, ("b3", [0.0, 0.0, 1.0])]
        with pytest.raises(entity_db.InvalidArgumentError):
            await call(vs, "upsert_batch", "c", batch)
        assert await call(vs, "count", "c") == 1
    assert await call(vs, "count", "c") == 1
    assert (await call(vs, "get", "c", "keep")).metadata == {"v": 1}


async def test_bad_searches(any_target, call):
    vs = any_target.open().vector_store()
    await call(vs, "create_collection", "c", 3)
    await call(vs, "upsert", "c", "a", [1.0, 0.0, 0.0])
    with pytest.raises(entity_db.DimensionMismatchError):
        await call(vs, "search", "c", [1.0, 0.0], 3)
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(vs, "search", "c", [1.0, math.nan, 0.0], 3)
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(vs, "search", "c", [1.0, 0.0, 0.0], 0)
    assert [m.id for m in await call(vs, "search", "c", [1.0, 0.0, 0.0], 3)] == ["a"]


async def test_missing_collection(any_target, call):
    vs = any_target.open().vector_store()
    await call(vs, "create_collection", "exists_", 2)
    for verb, args in [
        ("upsert", ("nope", "a", [1.0, 0.0])),
        ("upsert_batch", ("nope", [("a", [1.0, 0.0])])),
        ("search", ("nope", [1.0, 0.0], 3)),
        ("count", ("nope",)),
    ]:
        with pytest.raises(entity_db.NotFoundError) as info:
            await call(vs, verb, *args)
        assert isinstance(info.value, LookupError), verb
    assert [i.name for i in await call(vs, "list_collections")] == ["exists_"]


async def test_vectors_persist_and_are_seen_by_another_store(target, call):
    db = target.open()
    vs = db.vector_store()
    await call(vs, "create_collection", "c", 2, "l2")
    await call(vs, "upsert", "c", "a", [1.0, 2.0], {"m": "a"})
    other = db.vector_store()
    assert [m.id for m in await call(other, "search", "c", [1.0, 2.0], 1)] == ["a"]
    await call(db, "close")
    db = target.open()
    vs = db.vector_store()
    item = await call(vs, "get", "c", "a")
    approx_vector(item.vector, [1, 2])
    assert item.metadata == {"m": "a"}
    assert await call(vs, "count", "c") == 1


async def test_cosine_vectors_whose_norm_float32_cannot_hold_are_refused(any_target, call):
    # Not zero, but their norm underflows (a denormal) or overflows in float32: no direction a
    # cosine distance can use, refused as a zero vector is; nothing written.
    vs = any_target.open().vector_store()
    await call(vs, "create_collection", "c", 3)
    await call(vs, "upsert", "c", "keep", [1.0, 0.0, 0.0])
    for vector in ([1e-45, 0.0, 0.0], np.array([1e-30, 1e-30, 0.0], dtype=np.float32),
                   [3e38, 3e38, 0.0]):
        with pytest.raises(entity_db.InvalidArgumentError, match="direction"):
            await call(vs, "upsert", "c", "tiny", vector)
        with pytest.raises(entity_db.InvalidArgumentError, match="direction"):
            await call(vs, "search", "c", vector, 1)
    assert await call(vs, "count", "c") == 1
    # Metadata with a NaN is refused too (JSON has no NaN), not written as null.
    with pytest.raises(entity_db.InvalidArgumentError):
        await call(vs, "upsert", "c", "nan", [0.0, 1.0, 0.0], {"score": math.nan})
    assert await call(vs, "count", "c") == 1
