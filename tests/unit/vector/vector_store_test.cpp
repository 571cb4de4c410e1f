// Layer 2: the vector store. Exact search against a brute force computed here, HNSW recall
// against exact search, persistence across a reopen, metadata filters in both modes, erased ids
// that never come back, bad input that errs and writes nothing, concurrent writers and readers,
// and the async API from a coroutine.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "concurrency.hpp"
#include "entity/entity.hpp"
#include "library_support.hpp"
#include "test_support.hpp"

namespace {

namespace asio = boost::asio;
using entity::errc;
using entity::json;
using entity::metric;
using entity::search_mode;
using entity::vector_store;

// ThreadSanitizer runs a test many times slower: the largest data sets shrink under it.
#if defined(__SANITIZE_THREAD__)
constexpr std::size_t scale_down = 8;
#else
constexpr std::size_t scale_down = 1;
#endif

using entity::test::error_of;
using entity::test::random_vector;
using entity::test::run_coroutine;
using entity::test::started;

// A vector store over a fresh database file in its own temporary folder.
struct fixture : entity::test::sqlite_file {
  explicit fixture(entity::vector_store_params params = {})
      : sqlite_file("vectors.db"), store(entity::database(infra), params) {}
  vector_store store;
};

std::string id_of(std::size_t i) { return "v" + std::to_string(i); }

// Settings for a test about the graph itself: built past `threshold` vectors, with a lighter
// ef_construction than the default to keep the test quick, and built before the search that
// asks for it returns (not on a thread of its own).
entity::vector_store_params graph_params(std::size_t threshold, std::size_t ef_construction = 64) {
  entity::vector_store_params p;
  p.hnsw_threshold = threshold;
  p.hnsw_ef_construction = ef_construction;
  p.hnsw_build_in_background = false;
  return p;
}

// `n` random vectors with ids v0, v1, ... and metadata {"i": i, "group": i % groups}.
vector_store::items random_items(std::mt19937& rng, std::size_t n, std::size_t dim,
                                 std::size_t groups = 10) {
  vector_store::items items;
  items.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    items.push_back({id_of(i), random_vector(rng, dim), json{{"i", i}, {"group", i % groups}}});
  return items;
}

// The distance by the store's definitions, in double precision.
double reference_distance(metric m, const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0, l2 = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    dot += double(a[i]) * b[i];
    na += double(a[i]) * a[i];
    nb += double(b[i]) * b[i];
    l2 += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  }
  switch (m) {
    case metric::cosine:
      return 1.0 - dot / (std::sqrt(na) * std::sqrt(nb));
    case metric::l2:
      return l2;
    case metric::inner_product:
      return -dot;
  }
  return 0;
}

struct reference_match {
  double distance;
  std::string id;
};

// The k nearest of `items` matching `filter`, nearest first.
std::vector<reference_match> brute_force(metric m, const vector_store::items& items,
                                         const std::vector<float>& q, std::size_t k,
                                         const json& filter = json::object()) {
  std::vector<reference_match> all;
  for (const auto& item : items) {
    bool match = true;
    for (auto it = filter.begin(); it != filter.end(); ++it)
      match = match && item.metadata.contains(it.key()) && item.metadata[it.key()] == it.value();
    if (match) all.push_back({reference_distance(m, q, item.vector), item.id});
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.distance != b.distance ? a.distance < b.distance : a.id < b.id;
  });
  if (all.size() > k) all.resize(k);
  return all;
}

constexpr double tolerance = 1e-4;

// The store's answer equals the brute force: same ids in the same order (two ids may swap only
// when their distances tie within float precision) and the same distances.
void expect_same(const vector_store::matches& got, const std::vector<reference_match>& want,
                 const std::map<std::string, double>& distance_of) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i].distance, want[i].distance,
                tolerance * std::max(1.0, std::abs(want[i].distance)))
        << "rank " << i;
    if (got[i].id != want[i].id)
      EXPECT_NEAR(distance_of.at(got[i].id), want[i].distance, tolerance) << "rank " << i;
  }
}

std::map<std::string, double> distances_to(metric m, const vector_store::items& items,
                                           const std::vector<float>& q) {
  std::map<std::string, double> out;
  for (const auto& item : items) out[item.id] = reference_distance(m, q, item.vector);
  return out;
}

std::set<std::string> ids(const vector_store::matches& ms) {
  std::set<std::string> out;
  for (const auto& m : ms) out.insert(m.id);
  return out;
}

// ---- the basics ---------------------------------------------------------------------------------

TEST(VectorStore, DistancesFollowTheDocumentedDefinitions) {
  fixture f;
  f.store.create_collection("c", 2, metric::cosine);
  f.store.create_collection("e", 2, metric::l2);
  f.store.create_collection("p", 2, metric::inner_product);
  std::vector<float> a = {3, 4};
  for (const char* c : {"c", "e", "p"}) f.store.upsert(c, "a", a);
  std::vector<float> origin_ish = {1, 0};
  EXPECT_NEAR(f.store.search("c", origin_ish, 1, {}, search_mode::exact)[0].distance, 1 - 0.6,
              1e-6);
  EXPECT_NEAR(f.store.search("e", origin_ish, 1, {}, search_mode::exact)[0].distance, 4 + 16, 1e-5);
  EXPECT_NEAR(f.store.search("p", origin_ish, 1, {}, search_mode::exact)[0].distance, -3, 1e-6);
  // The same vector is at distance 0 by cosine and l2.
  EXPECT_NEAR(f.store.search("c", a, 1)[0].distance, 0, 1e-6);
  EXPECT_NEAR(f.store.search("e", a, 1)[0].distance, 0, 1e-6);
}

TEST(VectorStore, CreateListDropCollections) {
  fixture f;
  EXPECT_TRUE(f.store.list_collections().empty());
  EXPECT_TRUE(f.store.create_collection("docs", 4, metric::cosine));
  EXPECT_FALSE(f.store.create_collection("docs", 4, metric::cosine));  // already there, same shape
  EXPECT_TRUE(f.store.create_collection("images", 8, metric::l2));
  std::vector<float> v = {1, 2, 3, 4};
  f.store.upsert("docs", "a", v);
  f.store.upsert("docs", "b", v);

  auto list = f.store.list_collections();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "docs");
  EXPECT_EQ(list[0].dim, 4u);
  EXPECT_EQ(list[0].metric, metric::cosine);
  EXPECT_EQ(list[0].count, 2);
  EXPECT_EQ(list[1].name, "images");
  EXPECT_EQ(list[1].dim, 8u);
  EXPECT_EQ(list[1].metric, metric::l2);
  EXPECT_EQ(list[1].count, 0);

  EXPECT_TRUE(f.store.drop_collection("docs"));
  EXPECT_FALSE(f.store.drop_collection("docs"));
  EXPECT_EQ(f.store.list_collections().size(), 1u);
  EXPECT_EQ(error_of([&] { f.store.count("docs"); }).code(), errc::not_found);
  // A collection of the same name starts empty.
  EXPECT_TRUE(f.store.create_collection("docs", 4, metric::cosine));
  EXPECT_EQ(f.store.count("docs"), 0);
  EXPECT_TRUE(f.store.search("docs", v, 5).empty());
}

TEST(VectorStore, GetReturnsWhatWasStoredAndUpsertReplaces) {
  fixture f;
  f.store.create_collection("c", 3, metric::l2);
  std::vector<float> v = {0.5f, -1.25f, 3e-8f};
  f.store.upsert("c", "a", v, json{{"tag", "first"}});
  auto got = f.store.get("c", "a");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->id, "a");
  EXPECT_EQ(got->vector, v);  // bit for bit
  EXPECT_EQ(got->metadata, (json{{"tag", "first"}}));
  EXPECT_FALSE(f.store.get("c", "missing"));

  // Search loads the index; the replacement must reach it.
  std::vector<float> near_new = {9, 9, 9};
  EXPECT_EQ(f.store.search("c", near_new, 1, {}, search_mode::exact)[0].id, "a");
  std::vector<float> w = {9, 9, 9};
  f.store.upsert("c", "a", w);  // no metadata: {}
  f.store.upsert("c", "b", v);
  got = f.store.get("c", "a");
  EXPECT_EQ(got->vector, w);
  EXPECT_EQ(got->metadata, json::object());
  EXPECT_EQ(f.store.count("c"), 2);
  auto r = f.store.search("c", near_new, 2, {}, search_mode::exact);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].id, "a");
  EXPECT_NEAR(r[0].distance, 0, 1e-6);
  EXPECT_EQ(r[1].id, "b");
}

// ---- exact search -------------------------------------------------------------------------------

TEST(VectorStore, ExactSearchEqualsBruteForceForEveryMetric) {
  fixture f;
  std::mt19937 rng(7);
  const std::size_t dim = 19;  // not a multiple of the SIMD width: the tail loop counts too
  auto items = random_items(rng, 600, dim);
  for (metric m : {metric::cosine, metric::l2, metric::inner_product}) {
    SCOPED_TRACE(std::string(entity::to_string(m)));
    std::string name = "m_" + std::string(entity::to_string(m));
    f.store.create_collection(name, dim, m);
    f.store.upsert_batch(name, items);
    EXPECT_EQ(f.store.count(name), 600);
    for (int qi = 0; qi < 10; ++qi) {
      auto q = random_vector(rng, dim);
      for (std::size_t k : {1, 10, 50}) {
        auto got = f.store.search(name, q, static_cast<std::int64_t>(k), {}, search_mode::exact);
        expect_same(got, brute_force(m, items, q, k), distances_to(m, items, q));
      }
    }
    // k larger than the collection: everything, nearest first.
    auto q = random_vector(rng, dim);
    auto all = f.store.search(name, q, 1000, {}, search_mode::exact);
    expect_same(all, brute_force(m, items, q, 1000), distances_to(m, items, q));
  }
}

// ---- approximate search
// ---------------------------------------------------------------------------

TEST(VectorStore, ApproximateRecallAtTenOnTwentyThousandVectors) {
  // Search breadth (ef) is the default.
  auto params = graph_params(entity::vector_store_params{}.hnsw_threshold);
  fixture f(params);
  std::mt19937 rng(42);
  const std::size_t dim = 32, n = 20000 / scale_down;
  f.store.create_collection("big", dim, metric::l2);
  f.store.upsert_batch("big", random_items(rng, n, dim));
  ASSERT_EQ(f.store.count("big"), std::int64_t(n));

  std::size_t hits = 0, total = 0;
  for (int qi = 0; qi < 50; ++qi) {
    auto q = random_vector(rng, dim);
    auto exact = f.store.search("big", q, 10, {}, search_mode::exact);
    auto approx = f.store.search("big", q, 10, {}, search_mode::approximate);
    ASSERT_EQ(approx.size(), 10u);
    for (std::size_t i = 1; i < approx.size(); ++i)
      EXPECT_LE(approx[i - 1].distance, approx[i].distance);
    auto want = ids(exact);
    for (const auto& m : approx) hits += want.count(m.id);
    total += exact.size();
  }
  double recall = double(hits) / double(total);
  EXPECT_GE(recall, 0.9) << "recall@10 " << recall;
  auto listed = f.store.list_collections();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_TRUE(listed[0].indexed);  // the graph answered, not a scan
}

TEST(VectorStore, SmallCollectionsAreSearchedExactlyInEitherMode) {
  fixture f;  // threshold 1,000
  std::mt19937 rng(3);
  auto items = random_items(rng, 800, 8);
  f.store.create_collection("s", 8, metric::cosine);
  f.store.upsert_batch("s", items);
  for (int qi = 0; qi < 5; ++qi) {
    auto q = random_vector(rng, 8);
    auto a = f.store.search("s", q, 10, {}, search_mode::approximate);
    auto e = f.store.search("s", q, 10, {}, search_mode::exact);
    ASSERT_EQ(a.size(), e.size());
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].id, e[i].id);
  }
}

// ---- filters ------------------------------------------------------------------------------------

TEST(VectorStore, FiltersApplyInBothModes) {
  auto params = graph_params(200);
  fixture f(params);
  std::mt19937 rng(11);
  const std::size_t dim = 16, n = 3000 / scale_down;
  auto items = random_items(rng, n, dim, 50);  // each group holds 2% of the vectors
  for (std::size_t i = 0; i < n; ++i) {
    items[i].metadata["even"] = i % 2 == 0;
    items[i].metadata["kind"] = i < 5 ? "rare" : "common";  // 5 of them
  }
  f.store.create_collection("f", dim, metric::cosine);
  f.store.upsert_batch("f", items);

  json half = {{"even", true}};
  json two_percent = {{"group", 7}};
  json both = {{"group", 8}, {"even", true}};
  json rare = {{"kind", "rare"}};
  json nothing = {{"group", 7}, {"even", false}};  // group 7 holds odd i only
  json absent = {{"no_such_key", 1}};
  for (int qi = 0; qi < 5; ++qi) {
    auto q = random_vector(rng, dim);
    auto dist = distances_to(metric::cosine, items, q);
    for (const json& filter : {half, two_percent, both, rare, nothing, absent}) {
      SCOPED_TRACE(filter.dump());
      auto want = brute_force(metric::cosine, items, q, 10, filter);
      expect_same(f.store.search("f", q, 10, filter, search_mode::exact), want, dist);
      auto approx = f.store.search("f", q, 10, filter, search_mode::approximate);
      // Every match exists when k matches do, and every one matches.
      EXPECT_EQ(approx.size(), want.size());
      for (const auto& m : approx)
        for (auto it = filter.begin(); it != filter.end(); ++it)
          EXPECT_EQ(m.metadata.at(it.key()), it.value()) << m.id;
    }
  }
  // Metadata travels with the results.
  auto q = random_vector(rng, dim);
  for (const auto& m : f.store.search("f", q, 5, rare)) EXPECT_EQ(m.metadata.at("kind"), "rare");
  EXPECT_EQ(f.store.search("f", q, 100, rare).size(), 5u);
}

// ---- erase --------------------------------------------------------------------------------------

TEST(VectorStore, ErasedIdsNeverComeBack) {
  auto params = graph_params(100);
  fixture f(params);
  std::mt19937 rng(5);
  const std::size_t dim = 12;
  const std::size_t n = 1500 / scale_down;  // past the threshold of 100 either way
  auto items = random_items(rng, n, dim);
  f.store.create_collection("e", dim, metric::l2);
  f.store.upsert_batch("e", items);
  auto q = random_vector(rng, dim);
  // Both indexes exist before the erases, so the erases must reach them.
  auto before = f.store.search("e", q, 20, {}, search_mode::approximate);
  ASSERT_EQ(before.size(), 20u);
  f.store.search("e", q, 20, {}, search_mode::exact);

  std::set<std::string> erased;
  for (std::size_t i = 0; i < 10; ++i) {
    EXPECT_TRUE(f.store.erase("e", before[i].id));
    erased.insert(before[i].id);
  }
  EXPECT_FALSE(f.store.erase("e", before[0].id));  // already gone
  EXPECT_FALSE(f.store.get("e", before[0].id));
  EXPECT_EQ(f.store.count("e"), std::int64_t(n - 10));

  for (search_mode mode : {search_mode::exact, search_mode::approximate}) {
    for (std::int64_t k : {10, 20, 100}) {
      auto after = f.store.search("e", q, k, {}, mode);
      EXPECT_EQ(after.size(), std::size_t(k));
      for (const auto& m : after) EXPECT_FALSE(erased.contains(m.id)) << m.id;
    }
  }
  // The nearest survivors are what a brute force over the survivors gives.
  vector_store::items survivors;
  for (auto& item : items)
    if (!erased.contains(item.id)) survivors.push_back(item);
  expect_same(f.store.search("e", q, 10, {}, search_mode::exact),
              brute_force(metric::l2, survivors, q, 10), distances_to(metric::l2, survivors, q));

  // An erased id stored anew comes back with its new vector, in both modes.
  f.store.upsert("e", before[0].id, q);
  for (search_mode mode : {search_mode::exact, search_mode::approximate}) {
    auto r = f.store.search("e", q, 1, {}, mode);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].id, before[0].id);
    EXPECT_NEAR(r[0].distance, 0, 1e-6);
  }
}

// Replacing the vector of an id already in the graph relinks its node, the first node too: it
// sits alone on the graph's top levels, where its link lists are empty.
TEST(VectorStore, UpsertsOfIdsInTheGraphAreFoundByTheirNewVectors) {
  auto params = graph_params(100);
  fixture f(params);
  std::mt19937 rng(6);
  const std::size_t dim = 12, n = 300;
  f.store.create_collection("u", dim, metric::l2);
  f.store.upsert_batch("u", random_items(rng, n, dim));
  auto q = random_vector(rng, dim);
  ASSERT_EQ(f.store.search("u", q, 5, {}, search_mode::approximate).size(), 5u);  // the graph
  auto moved = random_items(rng, n, dim);
  for (const auto& item : moved) f.store.upsert("u", item.id, item.vector);
  for (std::size_t i : {std::size_t{0}, std::size_t{1}, n / 2, n - 1}) {
    auto r = f.store.search("u", moved[i].vector, 1, {}, search_mode::approximate);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].id, moved[i].id);
    EXPECT_NEAR(r[0].distance, 0, 1e-5);
  }
  EXPECT_EQ(f.store.count("u"), std::int64_t(n));
}

// ---- persistence --------------------------------------------------------------------------------

TEST(VectorStore, ReopeningTheFileGivesTheSameResults) {
  entity::test::temp_dir dir;
  std::string path = dir.file("reopen.db");
  auto params = graph_params(100);
  std::mt19937 rng(9);
  const std::size_t dim = 24, n = 1200 / scale_down;  // past the threshold either way
  std::vector<std::vector<float>> queries;
  for (int i = 0; i < 5; ++i) queries.push_back(random_vector(rng, dim));
  json filter = {{"group", 3}};

  std::vector<vector_store::matches> first;
  {
    auto infra = started(path);
    vector_store store(entity::database(infra), params);
    store.create_collection("p", dim, metric::inner_product);
    store.upsert_batch("p", random_items(rng, n, dim));
    store.erase("p", "v3");
    for (const auto& q : queries) {
      first.push_back(store.search("p", q, 10, {}, search_mode::exact));
      first.push_back(store.search("p", q, 10, filter, search_mode::exact));
    }
    infra->shutdown();
  }
  auto infra = started(path);
  vector_store store(entity::database(infra), params);
  EXPECT_EQ(store.count("p"), std::int64_t(n - 1));
  auto list = store.list_collections();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].metric, metric::inner_product);
  EXPECT_EQ(list[0].dim, dim);
  std::size_t i = 0;
  for (const auto& q : queries) {
    for (const json& fl : {json::object(), filter}) {
      auto again = store.search("p", q, 10, fl, search_mode::exact);
      const auto& before = first[i++];
      ASSERT_EQ(again.size(), before.size());
      for (std::size_t r = 0; r < again.size(); ++r) {
        EXPECT_EQ(again[r].id, before[r].id);
        EXPECT_EQ(again[r].distance, before[r].distance);
        EXPECT_EQ(again[r].metadata, before[r].metadata);
      }
      // The graph built from the reopened file finds the same nearest neighbour.
      EXPECT_EQ(store.search("p", q, 1, fl, search_mode::approximate).at(0).id, before.at(0).id);
    }
  }
}

// ---- bad input ----------------------------------------------------------------------------------

TEST(VectorStore, BadInputErrsAndWritesNothing) {
  fixture f;
  f.store.create_collection("c", 3, metric::cosine);
  std::vector<float> good = {1, 2, 3};
  f.store.upsert("c", "kept", good);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();

  auto expect_error = [&](errc code, auto&& call, const char* what) {
    SCOPED_TRACE(what);
    entity::error e = error_of(call);
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_FALSE(e.diag().message.empty());
    EXPECT_EQ(f.store.count("c"), 1);  // nothing was written
  };

  std::vector<float> short_v = {1, 2};
  std::vector<float> with_nan = {1, nan, 3};
  std::vector<float> with_inf = {1, 2, -inf};
  std::vector<float> zero = {0, 0, 0};
  std::vector<float> empty;
  expect_error(
      errc::dimension_mismatch, [&] { f.store.upsert("c", "x", short_v); }, "short vector");
  expect_error(
      errc::invalid_argument, [&] { f.store.upsert("c", "x", with_nan); }, "NaN");
  expect_error(
      errc::invalid_argument, [&] { f.store.upsert("c", "x", with_inf); }, "infinity");
  expect_error(
      errc::invalid_argument, [&] { f.store.upsert("c", "x", empty); }, "empty vector");
  expect_error(
      errc::invalid_argument, [&] { f.store.upsert("c", "x", zero); }, "zero cosine");
  expect_error(
      errc::invalid_argument, [&] { f.store.upsert("c", "", good); }, "empty id");
  expect_error(
      errc::invalid_argument, [&] { f.store.upsert("c", "x", good, json::array({1})); },
      "metadata not an object");
  expect_error(
      errc::not_found, [&] { f.store.upsert("nope", "x", good); }, "unknown collection");

  // One bad vector in a batch: none of the batch is written.
  vector_store::items batch = {{"a", good, {}}, {"b", good, {}}, {"c", with_nan, {}}};
  expect_error(
      errc::invalid_argument, [&] { f.store.upsert_batch("c", batch); }, "batch NaN");
  batch = {{"a", good, {}}, {"b", good, {}}, {"c", short_v, {}}};
  expect_error(
      errc::dimension_mismatch, [&] { f.store.upsert_batch("c", batch); }, "batch short");
  batch = {{"a", {1, 2, 3, 4}, {}}, {"b", {1, 2, 3, 4}, {}}};
  expect_error(
      errc::dimension_mismatch, [&] { f.store.upsert_batch("c", batch); }, "batch all long");
  EXPECT_FALSE(f.store.get("c", "a"));

  expect_error(
      errc::invalid_argument, [&] { f.store.search("c", good, 0); }, "k = 0");
  expect_error(
      errc::invalid_argument, [&] { f.store.search("c", good, -3); }, "k < 0");
  expect_error(
      errc::dimension_mismatch, [&] { f.store.search("c", short_v, 1); }, "query dim");
  expect_error(
      errc::invalid_argument, [&] { f.store.search("c", with_nan, 1); }, "query NaN");
  expect_error(
      errc::invalid_argument, [&] { f.store.search("c", zero, 1); }, "zero query");
  expect_error(
      errc::invalid_argument, [&] { f.store.search("c", good, 1, json::array()); },
      "filter not an object");
  expect_error(
      errc::not_found, [&] { f.store.search("nope", good, 1); }, "search unknown");
  expect_error(
      errc::not_found, [&] { f.store.count("nope"); }, "count unknown");
  expect_error(
      errc::not_found, [&] { f.store.get("nope", "x"); }, "get unknown");
  expect_error(
      errc::not_found, [&] { f.store.erase("nope", "x"); }, "erase unknown");

  // Names are checked before they come near SQL.
  std::vector<std::string> bad_names = {
      "", "1abc", "a-b", "a b", "x\"; DROP TABLE vec_c; --", "é", std::string(64, 'a')};
  for (const std::string& bad : bad_names) {
    SCOPED_TRACE(bad);
    expect_error(
        errc::invalid_argument, [&] { f.store.create_collection(bad, 3); }, "create");
    expect_error(
        errc::invalid_argument, [&] { f.store.upsert(bad, "x", good); }, "upsert");
    expect_error(
        errc::invalid_argument, [&] { f.store.search(bad, good, 1); }, "search");
    expect_error(
        errc::invalid_argument, [&] { f.store.drop_collection(bad); }, "drop");
  }
  EXPECT_TRUE(vector_store::valid_name(std::string(63, 'a')));
  EXPECT_TRUE(vector_store::valid_name("_x9"));

  expect_error(
      errc::invalid_argument, [&] { f.store.create_collection("d", 0); }, "dim 0");
  expect_error(
      errc::invalid_argument, [&] { f.store.create_collection("c", 4); }, "other dim");
  expect_error(
      errc::invalid_argument, [&] { f.store.create_collection("c", 3, metric::l2); },
      "other metric");
  expect_error(
      errc::invalid_argument, [&] { f.store.create_collection("C", 3); }, "case twin");
  EXPECT_EQ(f.store.list_collections().size(), 1u);

  // The messages say what and why.
  auto e = error_of([&] { f.store.upsert("c", "x", with_nan); });
  EXPECT_NE(std::string(e.what()).find("NaN at index 1"), std::string::npos) << e.what();
  e = error_of([&] { f.store.upsert("c", "x", short_v); });
  EXPECT_NE(std::string(e.what()).find("dimension 3"), std::string::npos) << e.what();
  e = error_of([&] { f.store.search("nope", good, 1); });
  EXPECT_NE(std::string(e.what()).find("'nope'"), std::string::npos) << e.what();
}

// ---- threads ------------------------------------------------------------------------------------

ENTITY_CONCURRENT_TEST(VectorStore, ConcurrentUpsertsAndSearches) {
  auto params = graph_params(150, 32);
  fixture f(params);
  const std::size_t dim = 8;
  f.store.create_collection("t", dim, metric::l2);
  {
    std::mt19937 rng(1);
    f.store.upsert_batch("t", random_items(rng, 200, dim));  // past the threshold: a graph
  }
  constexpr int writers = 3, per_writer = 150, readers = 2;
  std::atomic<int> writers_done{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([&, w] {
      std::mt19937 rng(100 + w);
      try {
        for (int i = 0; i < per_writer; ++i) {
          std::string id = "w" + std::to_string(w) + "_" + std::to_string(i);
          f.store.upsert("t", id, random_vector(rng, dim), json{{"w", w}});
          if (i % 10 == 9)
            f.store.erase("t", "w" + std::to_string(w) + "_" + std::to_string(i - 1));
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        ++failures;
      }
      ++writers_done;
    });
  for (int r = 0; r < readers; ++r)
    threads.emplace_back([&, r] {
      std::mt19937 rng(200 + r);
      int rounds = 0;
      try {
        while (writers_done.load() < writers || rounds < 5) {
          auto q = random_vector(rng, dim);
          auto mode = rounds % 2 ? search_mode::exact : search_mode::approximate;
          auto res = f.store.search("t", q, 10, {}, mode);
          if (res.size() != 10) ++failures;
          for (std::size_t i = 1; i < res.size(); ++i)
            if (res[i - 1].distance > res[i].distance) ++failures;
          f.store.count("t");
          ++rounds;
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        ++failures;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const int erased_each = per_writer / 10;
  EXPECT_EQ(f.store.count("t"), 200 + writers * (per_writer - erased_each));
  // The in-memory index agrees with a fresh store reading the file.
  vector_store fresh{entity::database(f.infra), params};
  std::mt19937 rng(9);
  for (int i = 0; i < 5; ++i) {
    auto q = random_vector(rng, dim);
    auto a = f.store.search("t", q, 10, {}, search_mode::exact);
    auto b = fresh.search("t", q, 10, {}, search_mode::exact);
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t j = 0; j < a.size(); ++j) EXPECT_EQ(a[j].id, b[j].id);
  }
}

// While the graph is built on its own thread, approximate searches scan and writes go on; the
// graph it adopts carries every one of those writes.
ENTITY_CONCURRENT_TEST(VectorStore, ConcurrentWritesWhileTheGraphIsBuiltInTheBackground) {
  entity::vector_store_params params;  // hnsw_build_in_background: the default
  params.hnsw_threshold = 100;
  params.hnsw_ef_construction = 64;
  fixture f(params);
  std::mt19937 rng(21);
  const std::size_t dim = 16, n = 4000 / scale_down;
  auto items = random_items(rng, n, dim);
  std::map<std::string, std::vector<float>> live;
  for (const auto& item : items) live[item.id] = item.vector;
  f.store.create_collection("bg", dim, metric::l2);
  f.store.upsert_batch("bg", items);

  // The first approximate search starts the build and is answered by a scan: exact.
  auto q = random_vector(rng, dim);
  auto first = f.store.search("bg", q, 10, {}, search_mode::approximate);
  expect_same(first, brute_force(metric::l2, items, q, 10), distances_to(metric::l2, items, q));

  // Writes of every kind until the graph is adopted (at least one round before it can be).
  std::set<std::string> erased;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  int round = 0;
  do {
    for (int i = 0; i < 5; ++i) {
      std::string fresh = "new" + std::to_string(round) + "_" + std::to_string(i);
      live[fresh] = random_vector(rng, dim);
      f.store.upsert("bg", fresh, live[fresh]);
      std::string replaced = id_of(rng() % n);
      if (!erased.contains(replaced)) {
        live[replaced] = random_vector(rng, dim);
        f.store.upsert("bg", replaced, live[replaced]);
      }
      std::string gone = id_of(rng() % n);
      if (!erased.contains(gone)) {
        EXPECT_TRUE(f.store.erase("bg", gone));
        erased.insert(gone);
        live.erase(gone);
      }
    }
    f.store.search("bg", random_vector(rng, dim), 10, {}, search_mode::approximate);
    ++round;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the graph was never adopted";
  } while (!f.store.list_collections().at(0).indexed);

  // Every live vector is found by the graph where it is now; no erased id comes back.
  EXPECT_EQ(f.store.count("bg"), std::int64_t(live.size()));
  std::size_t found = 0;
  for (const auto& [id, v] : live) {
    auto r = f.store.search("bg", v, 1, {}, search_mode::approximate);
    ASSERT_EQ(r.size(), 1u);
    if (r[0].id == id && r[0].distance < 1e-6f) ++found;
  }
  // A graph walk may miss a point now and then; a row left out of the graph, or left under its
  // old vector, would be missed every time.
  EXPECT_GE(double(found), 0.99 * double(live.size())) << found << " of " << live.size();
  for (const auto& m : f.store.search("bg", q, 100, {}, search_mode::approximate))
    EXPECT_FALSE(erased.contains(m.id)) << m.id;
  for (const auto& id : erased) {
    auto r = f.store.search("bg", items[std::stoul(id.substr(1))].vector, 1, {},
                            search_mode::approximate);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_NE(r[0].id, id);
  }
}

// ---- async --------------------------------------------------------------------------------------

ENTITY_CONCURRENT_TEST(VectorStore, AsyncApiThroughUseAwaitable) {
  fixture f;
  auto& store = f.store;
  run_coroutine([&]() -> asio::awaitable<void> {
    bool created = co_await store.async_create_collection("a", 3, metric::l2, asio::use_awaitable);
    EXPECT_TRUE(created);
    std::vector<float> v1 = {1, 0, 0};
    json meta = {{"n", 1}};
    co_await store.async_upsert("a", "one", v1, meta, asio::use_awaitable);
    vector_store::items batch;
    batch.push_back({"two", {0, 1, 0}, json{{"n", 2}}});
    batch.push_back({"three", {0, 0, 1}, json{{"n", 3}}});
    co_await store.async_upsert_batch("a", std::move(batch), asio::use_awaitable);
    std::int64_t n = co_await store.async_count("a", asio::use_awaitable);
    EXPECT_EQ(n, 3);

    std::vector<float> q = {0.9f, 0.1f, 0};
    auto found = co_await store.async_search("a", q, 2, asio::use_awaitable);
    EXPECT_EQ(found.size(), 2u);
    if (found.size() == 2) {
      EXPECT_EQ(found[0].id, "one");
      EXPECT_EQ(found[1].id, "two");
    }
    json filter = {{"n", 3}};
    auto filtered =
        co_await store.async_search("a", q, 2, filter, search_mode::exact, asio::use_awaitable);
    EXPECT_EQ(filtered.size(), 1u);

    auto got = co_await store.async_get("a", "two", asio::use_awaitable);
    EXPECT_TRUE(got && got->metadata == (json{{"n", 2}}));
    bool existed = co_await store.async_erase("a", "two", asio::use_awaitable);
    EXPECT_TRUE(existed);
    existed = co_await store.async_erase("a", "two", asio::use_awaitable);
    EXPECT_FALSE(existed);
    auto list = co_await store.async_list_collections(asio::use_awaitable);
    EXPECT_EQ(list.size(), 1u);

    // Errors: thrown by use_awaitable, or returned as values with as_tuple.
    std::vector<float> bad = {1, 2};
    auto [ec, none] = co_await store.async_search("a", bad, 1, asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(ec, errc::dimension_mismatch);
    EXPECT_TRUE(none.empty());
    auto [ec2] =
        co_await store.async_upsert("missing", "x", v1, asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(ec2, errc::not_found);
    bool threw = false;
    try {
      co_await store.async_count("missing", asio::use_awaitable);
    } catch (const boost::system::system_error& e) {
      threw = e.code() == errc::not_found;
    }
    EXPECT_TRUE(threw);
    bool dropped = co_await store.async_drop_collection("a", asio::use_awaitable);
    EXPECT_TRUE(dropped);
  });
  EXPECT_TRUE(f.store.list_collections().empty());
}

ENTITY_CONCURRENT_TEST(VectorStore, AsyncHandlersNeverRunInsideTheStartingCall) {
  fixture f;
  f.store.create_collection("c", 2, metric::l2);
  asio::io_context io;
  int completed = 0;
  bool started = false;
  std::vector<float> v = {1, 2};
  asio::post(io, [&] {
    auto check = [&](const char* what) {
      return [&, what](auto&&...) {
        EXPECT_TRUE(started) << what << " completed inside the call that started it";
        ++completed;
      };
    };
    f.store.async_search("c", v, 0, asio::bind_executor(io, check("search, k = 0")));
    f.store.async_search("1bad", v, 1, asio::bind_executor(io, check("search, bad name")));
    f.store.async_upsert_batch("c", {}, asio::bind_executor(io, check("empty batch")));
    f.store.async_upsert("c", "", v, asio::bind_executor(io, check("empty id")));
    f.store.async_count("c", asio::bind_executor(io, check("count")));
    started = true;
  });
  io.run();
  EXPECT_EQ(completed, 5);
}

ENTITY_CONCURRENT_TEST(VectorStore, AsyncDiagnosticsSayWhatFailed) {
  fixture f;
  f.store.create_collection("c", 3, metric::cosine);
  std::vector<float> nan_v = {1, std::numeric_limits<float>::quiet_NaN(), 3};
  std::vector<float> short_v = {1, 2};
  entity::diagnostics upsert_diag, search_diag, count_diag;
  auto up = f.store.async_upsert("c", "x", nan_v, json::object(), upsert_diag, asio::use_future);
  EXPECT_THROW(up.get(), boost::system::system_error);
  EXPECT_NE(upsert_diag.message.find("NaN at index 1"), std::string::npos) << upsert_diag.message;
  auto se = f.store.async_search("c", short_v, 1, json::object(), search_mode::exact, search_diag,
                                 asio::use_future);
  EXPECT_THROW(se.get(), boost::system::system_error);
  EXPECT_NE(search_diag.message.find("dimension 3"), std::string::npos) << search_diag.message;
  auto co = f.store.async_count("nope", count_diag, asio::use_future);
  EXPECT_THROW(co.get(), boost::system::system_error);
  EXPECT_NE(count_diag.message.find("'nope'"), std::string::npos) << count_diag.message;
  EXPECT_EQ(f.store.count("c"), 0);
}

ENTITY_CONCURRENT_TEST(VectorStore, AsyncWithPlainCallbacksAndFutures) {
  fixture f;
  std::mt19937 rng(21);
  const std::size_t dim = 16;
  f.store.create_collection("c", dim, metric::cosine);
  auto items = random_items(rng, 500, dim);
  f.store.upsert_batch("c", items);
  // Plain callbacks run on whichever engine thread finished the work, several at once.
  constexpr int searches = 20;
  std::vector<std::vector<float>> queries;
  for (int i = 0; i < searches; ++i) queries.push_back(random_vector(rng, dim));
  std::vector<vector_store::matches> results(searches);
  std::atomic<int> done{0}, errors{0};
  for (int i = 0; i < searches; ++i)
    f.store.async_search("c", queries[i], 5, json::object(), search_mode::exact,
                         [&, i](entity::error_code ec, vector_store::matches r) {
                           if (ec) ++errors;
                           results[i] = std::move(r);
                           done.fetch_add(1, std::memory_order_release);
                         });
  auto count = f.store.async_count("c", asio::use_future);
  EXPECT_EQ(count.get(), 500);
  for (int i = 0; i < 500 && done.load(std::memory_order_acquire) < searches; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(done.load(std::memory_order_acquire), searches);
  EXPECT_EQ(errors.load(), 0);
  for (int i = 0; i < searches; ++i)
    expect_same(results[i], brute_force(metric::cosine, items, queries[i], 5),
                distances_to(metric::cosine, items, queries[i]));
}

}  // namespace
