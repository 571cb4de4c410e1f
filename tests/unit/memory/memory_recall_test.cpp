// Layer 3: semantic recall. Recall order against a brute force computed here, scopes, erase
// and clear that take embeddings with them, replaced values that never keep their old
// embedding, embeddings that survive a reopen, bad input that writes nothing, the async API
// from a coroutine, and the same on PostgreSQL.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backends.hpp"
#include "concurrency.hpp"
#include "entity/entity.hpp"
#include "library_support.hpp"
#include "test_support.hpp"

namespace {

namespace asio = boost::asio;
using entity::errc;
using entity::json;
using entity::memory;

using entity::test::run_coroutine;
using entity::test::started;

// A memory over a fresh database file in its own temporary folder.
struct fixture : entity::test::sqlite_file {
  explicit fixture(entity::vector_store_params recall = {})
      : sqlite_file("memory.db"), mem(db, recall) {}
  entity::database db{infra};
  memory mem;
};

std::vector<float> random_vector(std::mt19937& rng, std::size_t dim) {
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> v(dim);
  for (float& x : v) x = g(rng);
  return v;
}

float cosine_distance(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, na = 0, nb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    dot += double(a[i]) * b[i];
    na += double(a[i]) * a[i];
    nb += double(b[i]) * b[i];
  }
  return static_cast<float>(1.0 - dot / (std::sqrt(na) * std::sqrt(nb)));
}

// The k keys of `stored` nearest to `query`, nearest first (ties by key), with distances.
std::vector<std::pair<std::string, float>> brute_force(
    const std::map<std::string, std::vector<float>>& stored, const std::vector<float>& query,
    std::size_t k) {
  std::vector<std::pair<std::string, float>> all;
  for (const auto& [key, v] : stored) all.emplace_back(key, cosine_distance(query, v));
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    if (a.second != b.second) return a.second < b.second;
    return a.first < b.first;
  });
  if (all.size() > k) all.resize(k);
  return all;
}

// Recall and brute force agree: the same keys in the same order (distances within float
// rounding; keys whose distances tie that closely may swap).
void expect_same(const memory::recollection& got,
                 const std::vector<std::pair<std::string, float>>& want,
                 const std::map<std::string, json>& values) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_NEAR(got[i].distance, want[i].second, 1e-5) << "rank " << i;
    if (std::abs(got[i].distance - want[i].second) < 1e-5 && got[i].key != want[i].first) {
      bool tie = (i + 1 < want.size() && std::abs(want[i + 1].second - want[i].second) < 1e-5) ||
                 (i > 0 && std::abs(want[i - 1].second - want[i].second) < 1e-5);
      EXPECT_TRUE(tie) << "rank " << i << ": " << got[i].key << " vs " << want[i].first;
    }
    auto it = values.find(got[i].key);
    ASSERT_NE(it, values.end()) << got[i].key;
    EXPECT_EQ(got[i].value, it->second);
    if (i) EXPECT_LE(got[i - 1].distance, got[i].distance);
  }
}

std::int64_t embeddings_count(const memory& m) {
  return m.vectors().count(std::string(memory::embeddings_collection));
}

bool has_embedding(const memory& m, const std::string& full_key) {
  return m.vectors().get(std::string(memory::embeddings_collection), full_key).has_value();
}

using entity::test::keys_of;

constexpr std::size_t dim = 16;

TEST(MemoryRecall, NearestFirstAsBruteForce) {
  fixture f;
  std::mt19937 rng(7);
  std::map<std::string, std::vector<float>> stored;
  std::map<std::string, json> values;
  for (int i = 0; i < 300; ++i) {
    std::string key = "fact:" + std::to_string(i);
    auto v = random_vector(rng, dim);
    json value = {{"i", i}, {"text", "fact number " + std::to_string(i)}};
    f.mem.store(key, value, v);
    stored[key] = v;
    values[key] = value;
  }
  // Keys without embeddings are never recalled.
  f.mem.store("plain", json{{"no", "embedding"}});
  for (int q = 0; q < 20; ++q) {
    auto query = random_vector(rng, dim);
    for (std::int64_t k : {1, 10, 50}) {
      auto got = f.mem.recall(query, k);
      expect_same(got, brute_force(stored, query, static_cast<std::size_t>(k)), values);
    }
  }
  // A stored vector is its own nearest neighbour.
  auto self = f.mem.recall(stored["fact:123"], 1);
  ASSERT_EQ(self.size(), 1u);
  EXPECT_EQ(self[0].key, "fact:123");
  EXPECT_NEAR(self[0].distance, 0.0f, 1e-5);
  // k larger than the embeddings: all of them.
  EXPECT_EQ(f.mem.recall(random_vector(rng, dim), 1000).size(), 300u);
}

TEST(MemoryRecall, ApproximateRecallFindsTheNearest) {
  // Past the hnsw_threshold given to the memory, recall walks the HNSW graph (built by the
  // first recall, which waits for it).
  entity::vector_store_params recall;
  recall.hnsw_threshold = 500;
  recall.hnsw_build_in_background = false;
  fixture f(recall);
  std::mt19937 rng(11);
  std::map<std::string, std::vector<float>> stored;
  for (int i = 0; i < 1500; ++i) {
    std::string key = "k" + std::to_string(i);
    stored[key] = random_vector(rng, 8);
    f.mem.store(key, i, stored[key]);
  }
  std::size_t hits = 0, total = 0;
  for (int q = 0; q < 20; ++q) {
    auto query = random_vector(rng, 8);
    auto want = brute_force(stored, query, 10);
    auto got = keys_of(f.mem.recall(query, 10));
    for (const auto& [key, d] : want) hits += std::count(got.begin(), got.end(), key);
    total += want.size();
  }
  EXPECT_GE(static_cast<double>(hits) / static_cast<double>(total), 0.95);
  auto listed = f.mem.vectors().list_collections();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_TRUE(listed[0].indexed);  // the graph answered, not a scan
}

TEST(MemoryRecall, ScopesRecallOnlyTheirOwnKeys) {
  fixture f;
  std::mt19937 rng(3);
  auto alice = f.mem.scope("alice");
  auto bob = f.mem.scope("bob");
  auto alice_work = alice.scope("work");
  std::map<std::string, std::vector<float>> all, in_alice, in_alice_work;
  std::map<std::string, json> all_values, alice_values, work_values;
  std::size_t bob_count = 0;
  for (int i = 0; i < 40; ++i) {
    auto v = random_vector(rng, dim);
    std::string key = "m" + std::to_string(i);
    json value = i;
    if (i % 3 == 0) {
      alice.store(key, value, v);
      in_alice[key] = v;
      alice_values[key] = value;
      all["alice:" + key] = v;
      all_values["alice:" + key] = value;
    } else if (i % 3 == 1) {
      bob.store(key, value, v);
      ++bob_count;
      all["bob:" + key] = v;
      all_values["bob:" + key] = value;
    } else {
      alice_work.store(key, value, v);
      in_alice_work[key] = v;
      work_values[key] = value;
      in_alice["work:" + key] = v;  // scope("alice") sees it as "work:<key>"
      alice_values["work:" + key] = value;
      all["alice:work:" + key] = v;
      all_values["alice:work:" + key] = value;
    }
  }
  // A top-level key that merely starts like a scope name is not in it.
  auto v = random_vector(rng, dim);
  f.mem.store("alicex", 1, v);
  all["alicex"] = v;
  all_values["alicex"] = 1;

  for (int q = 0; q < 10; ++q) {
    auto query = random_vector(rng, dim);
    expect_same(alice.recall(query, 8), brute_force(in_alice, query, 8), alice_values);
    expect_same(alice_work.recall(query, 5), brute_force(in_alice_work, query, 5), work_values);
    expect_same(f.mem.recall(query, 12), brute_force(all, query, 12), all_values);
    for (const auto& r : bob.recall(query, 100)) EXPECT_EQ(all.count("bob:" + r.key), 1u);
  }
  EXPECT_EQ(bob.recall(random_vector(rng, dim), 100).size(), bob_count);
}

TEST(MemoryRecall, EraseAndClearRemoveEmbeddings) {
  fixture f;
  std::mt19937 rng(5);
  for (int i = 0; i < 10; ++i) f.mem.store("k" + std::to_string(i), i, random_vector(rng, dim));
  auto s = f.mem.scope("s");
  for (int i = 0; i < 5; ++i) s.store("x" + std::to_string(i), i, random_vector(rng, dim));
  EXPECT_EQ(embeddings_count(f.mem), 15);

  auto target = random_vector(rng, dim);
  f.mem.store("gone", "soon", target);
  ASSERT_EQ(f.mem.recall(target, 1).at(0).key, "gone");
  EXPECT_TRUE(f.mem.erase("gone"));
  EXPECT_FALSE(has_embedding(f.mem, "gone"));
  for (const auto& r : f.mem.recall(target, 100)) EXPECT_NE(r.key, "gone");
  EXPECT_EQ(embeddings_count(f.mem), 15);

  // clear(pattern) takes the matching keys' embeddings, and only theirs.
  EXPECT_EQ(f.mem.clear("k1%"), 1);
  EXPECT_FALSE(has_embedding(f.mem, "k1"));
  EXPECT_TRUE(has_embedding(f.mem, "k2"));
  EXPECT_EQ(embeddings_count(f.mem), 14);
  // A scope's clear takes the scope's embeddings.
  EXPECT_EQ(s.clear(), 5);
  EXPECT_EQ(embeddings_count(f.mem), 9);
  EXPECT_TRUE(s.recall(target, 10).empty());
  EXPECT_EQ(f.mem.recall(target, 100).size(), 9u);
  EXPECT_EQ(f.mem.clear(), 9);
  EXPECT_EQ(embeddings_count(f.mem), 0);
  EXPECT_TRUE(f.mem.recall(target, 10).empty());
}

TEST(MemoryRecall, ReplacingAValueReplacesOrRemovesItsEmbedding) {
  fixture f;
  std::mt19937 rng(9);
  auto a = random_vector(rng, dim);
  auto b = random_vector(rng, dim);
  for (int i = 0; i < 20; ++i) f.mem.store("other" + std::to_string(i), i, random_vector(rng, dim));

  // A new embedding replaces the old one.
  f.mem.store("k", "first", a);
  f.mem.store("k", "second", b);
  auto near_b = f.mem.recall(b, 1);
  ASSERT_EQ(near_b.size(), 1u);
  EXPECT_EQ(near_b[0].key, "k");
  EXPECT_EQ(near_b[0].value, "second");
  EXPECT_NEAR(near_b[0].distance, 0.0f, 1e-5);
  auto stored = f.mem.vectors().get(std::string(memory::embeddings_collection), "k");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->vector, b);

  // A value stored without an embedding removes the key's embedding.
  f.mem.store("k", "third");
  EXPECT_FALSE(has_embedding(f.mem, "k"));
  for (const auto& r : f.mem.recall(b, 100)) EXPECT_NE(r.key, "k");
  EXPECT_EQ(f.mem.load("k"), json("third"));

  // batch_store too.
  f.mem.store("m", 1, a);
  f.mem.batch_store({{"m", 2}, {"n", 3}});
  EXPECT_FALSE(has_embedding(f.mem, "m"));
  EXPECT_EQ(embeddings_count(f.mem), 20);
}

// A batch larger than the chunk of keys whose embeddings are removed at a time (1,024): every
// replaced key loses its embedding, and the keys outside the batch keep theirs.
TEST(MemoryRecall, ABigBatchStoreRemovesTheEmbeddingsOfEveryKeyItReplaces) {
  fixture f;
  std::mt19937 rng(21);
  constexpr int n = 2'600;
  for (int i = 0; i < n; ++i) f.mem.store("k" + std::to_string(i), i, random_vector(rng, dim));
  ASSERT_EQ(embeddings_count(f.mem), n);
  memory::items batch;
  for (int i = 0; i < n - 3; ++i) batch.emplace_back("k" + std::to_string(i), -i);
  batch.emplace_back("new", 0);
  f.mem.batch_store(std::move(batch));
  EXPECT_EQ(embeddings_count(f.mem), 3);
  EXPECT_FALSE(has_embedding(f.mem, "k0"));
  EXPECT_FALSE(has_embedding(f.mem, "k2000"));
  EXPECT_TRUE(has_embedding(f.mem, "k" + std::to_string(n - 1)));
  EXPECT_EQ(f.mem.load("k2000"), json(-2000));
  EXPECT_EQ(f.mem.recall(random_vector(rng, dim), 10).size(), 3u);
}

TEST(MemoryRecall, AnEmbeddingLeftBehindByAnotherHandleIsNeverRecalled) {
  fixture f;
  std::mt19937 rng(13);
  // `older` looked before any embedding existed: it writes values the fast way, without
  // touching embeddings.
  memory older(f.db);
  older.store("warmup", 0);
  auto near = random_vector(rng, dim);
  for (int i = 0; i < 6; ++i) {
    auto v = near;
    v[0] += 0.001f * static_cast<float>(i);
    f.mem.store("stale" + std::to_string(i), "with embedding", v);
  }
  for (int i = 0; i < 30; ++i) f.mem.store("fresh" + std::to_string(i), i, random_vector(rng, dim));
  for (int i = 0; i < 6; ++i) older.store("stale" + std::to_string(i), "replaced elsewhere");
  older.erase("stale5");
  // The six nearest embeddings are all stale: recall widens its search past them.
  for (std::int64_t k : {1, 3, 10}) {
    auto got = f.mem.recall(near, k);
    ASSERT_EQ(got.size(), static_cast<std::size_t>(k));
    for (const auto& r : got) EXPECT_EQ(r.key.rfind("fresh", 0), 0u) << r.key;
  }
}

TEST(MemoryRecall, EmbeddingsSurviveReopen) {
  entity::test::temp_dir dir;
  std::string path = dir.file("memory.db");
  std::mt19937 rng(17);
  std::map<std::string, std::vector<float>> stored;
  std::map<std::string, json> values;
  {
    auto infra = started(path);
    memory mem{entity::database(infra)};
    for (int i = 0; i < 50; ++i) {
      std::string key = "k" + std::to_string(i);
      stored[key] = random_vector(rng, dim);
      values[key] = i;
      mem.store(key, i, stored[key]);
    }
    infra->shutdown();
  }
  auto infra = started(path);
  memory mem{entity::database(infra)};
  auto query = random_vector(rng, dim);
  expect_same(mem.recall(query, 10), brute_force(stored, query, 10), values);
  // The reopened memory knows the embeddings exist: a plain store removes one.
  mem.store("k0", "plain");
  EXPECT_FALSE(has_embedding(mem, "k0"));
}

TEST(MemoryRecall, BadInputFailsAndWritesNothing) {
  fixture f;
  std::mt19937 rng(19);
  auto good = random_vector(rng, dim);
  f.mem.store("k", "original", good);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();

  auto expect_error = [](auto&& call, errc code) {
    try {
      call();
      ADD_FAILURE() << "no error";
    } catch (const entity::error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_FALSE(e.diag().message.empty());
    }
  };
  auto with_nan = good;
  with_nan[3] = nan;
  auto with_inf = good;
  with_inf[0] = inf;
  std::vector<float> zero(dim, 0.0f);
  std::vector<float> longer(dim + 1, 1.0f);

  expect_error([&] { f.mem.store("k", "changed", longer); }, errc::dimension_mismatch);
  expect_error([&] { f.mem.store("new", "value", longer); }, errc::dimension_mismatch);
  expect_error([&] { f.mem.store("k", "changed", with_nan); }, errc::invalid_argument);
  expect_error([&] { f.mem.store("new", "value", with_inf); }, errc::invalid_argument);
  expect_error([&] { f.mem.store("new", "value", zero); }, errc::invalid_argument);
  expect_error([&] { f.mem.store("new", "value", std::vector<float>{}); }, errc::invalid_argument);
  EXPECT_EQ(f.mem.load("k"), json("original"));
  EXPECT_FALSE(f.mem.exists("new"));
  EXPECT_EQ(embeddings_count(f.mem), 1);
  EXPECT_EQ(f.mem.vectors().get(std::string(memory::embeddings_collection), "k")->vector, good);

  expect_error([&] { f.mem.recall(good, 0); }, errc::invalid_argument);
  expect_error([&] { f.mem.recall(good, -3); }, errc::invalid_argument);
  expect_error([&] { f.mem.recall(with_nan, 1); }, errc::invalid_argument);
  expect_error([&] { f.mem.recall(longer, 1); }, errc::dimension_mismatch);
  expect_error([&] { f.mem.recall(zero, 1); }, errc::invalid_argument);
}

TEST(MemoryRecall, NothingToRecallBeforeTheFirstEmbedding) {
  fixture f;
  f.mem.store("a", 1);
  EXPECT_TRUE(f.mem.recall({1.0f, 2.0f}, 5).empty());
  EXPECT_TRUE(f.mem.scope("s").recall({1.0f}, 5).empty());
  // The first embedding fixes the dimension.
  f.mem.store("b", 2, {1.0f, 0.0f, 0.0f});
  EXPECT_EQ(f.mem.recall({0.0f, 1.0f, 0.0f}, 5).size(), 1u);
  EXPECT_THROW(f.mem.recall({1.0f, 2.0f}, 5), entity::error);
}

ENTITY_CONCURRENT_TEST(MemoryRecall, AsyncStoreRecallEraseAndClear) {
  fixture f;
  std::mt19937 rng(23);
  std::map<std::string, std::vector<float>> stored;
  std::map<std::string, json> values;
  for (int i = 0; i < 30; ++i) {
    std::string key = "k" + std::to_string(i);
    stored[key] = random_vector(rng, dim);
    values[key] = json{{"i", i}};
  }
  auto query = random_vector(rng, dim);
  run_coroutine([&]() -> asio::awaitable<void> {
    for (const auto& [key, v] : stored)
      co_await f.mem.async_store(key, values[key], v, asio::use_awaitable);
    auto got = co_await f.mem.async_recall(query, 5, asio::use_awaitable);
    expect_same(got, brute_force(stored, query, 5), values);

    // A plain store and an erase take their embeddings.
    const std::string first = got.at(0).key, second = got.at(1).key;
    const json plain = "plain";
    co_await f.mem.async_store(first, plain, asio::use_awaitable);
    bool erased = co_await f.mem.async_erase(second, asio::use_awaitable);
    EXPECT_TRUE(erased);
    stored.erase(first);
    stored.erase(second);
    got = co_await f.mem.async_recall(query, 5, asio::use_awaitable);
    expect_same(got, brute_force(stored, query, 5), values);

    // Errors as values, with diagnostics.
    entity::diagnostics diag;
    std::vector<float> longer(dim + 2, 1.0f);
    auto [ec, none] =
        co_await f.mem.async_recall(longer, 5, diag, asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(ec, errc::dimension_mismatch);
    EXPECT_TRUE(none.empty());
    EXPECT_FALSE(diag.message.empty());
    const std::string k1 = "k1";
    const json changed = "changed";
    auto [ec2] =
        co_await f.mem.async_store(k1, changed, longer, diag, asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(ec2, errc::dimension_mismatch);
    auto [ec3, none3] = co_await f.mem.async_recall(query, 0, asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(ec3, errc::invalid_argument);

    const std::string pattern = "k1%";
    auto before = co_await f.mem.async_keys(pattern, asio::use_awaitable);
    std::int64_t cleared = co_await f.mem.async_clear(pattern, asio::use_awaitable);
    EXPECT_EQ(cleared, static_cast<std::int64_t>(before.size()));
    co_return;
  });
  EXPECT_EQ(f.mem.load("k2"), values["k2"]);
  for (const auto& r : f.mem.recall(query, 100)) EXPECT_NE(r.key.rfind("k1", 0), 0u) << r.key;
  // The embeddings left: those not cleared and not taken above.
  std::int64_t expected = 0;
  for (const auto& [key, v] : stored)
    if (key.rfind("k1", 0) != 0) ++expected;
  EXPECT_EQ(embeddings_count(f.mem), expected);

  // A future, on a fresh memory whose table does not exist yet.
  fixture g;
  auto fut = g.mem.async_store("x", 1, std::vector<float>{1.0f, 2.0f}, asio::use_future);
  fut.get();
  auto fut2 = g.mem.async_recall({1.0f, 2.0f}, 3, asio::use_future);
  auto r = fut2.get();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].key, "x");
}

// ---- PostgreSQL --------------------------------------------------------------------------------

TEST(MemoryRecallPostgres, StoreRecallEraseClear) {
  if (entity::test::postgres_base_url().empty()) FAIL() << entity::test::missing_server_message;
  // A fresh schema of this test's own on the server (backends.hpp, as the shared suites use).
  std::string url = entity::test::postgres_schema_url(entity::test::schema_of_current_test());
  entity::postgres_params p;
  p.url = url;
  auto infra = std::make_shared<entity::postgres_infrastructure>(p);
  infra->startup();
  memory mem{entity::database(infra)};
  std::mt19937 rng(29);
  std::map<std::string, std::vector<float>> stored;
  std::map<std::string, json> values;
  auto s = mem.scope("u1");
  std::map<std::string, std::vector<float>> in_scope;
  std::map<std::string, json> scope_values;
  for (int i = 0; i < 40; ++i) {
    std::string key = "k" + std::to_string(i);
    auto v = random_vector(rng, dim);
    if (i % 2) {
      s.store(key, i, v);
      in_scope[key] = v;
      scope_values[key] = i;
      key = "u1:" + key;
    } else {
      mem.store(key, i, v);
    }
    stored[key] = v;
    values[key] = i;
  }
  auto query = random_vector(rng, dim);
  expect_same(mem.recall(query, 10), brute_force(stored, query, 10), values);
  expect_same(s.recall(query, 7), brute_force(in_scope, query, 7), scope_values);

  auto top = mem.recall(query, 1).at(0).key;
  mem.store(top, "plain");
  EXPECT_FALSE(has_embedding(mem, top));
  stored.erase(top);
  auto next = mem.recall(query, 1).at(0).key;
  EXPECT_TRUE(mem.erase(next));
  stored.erase(next);
  expect_same(mem.recall(query, 10), brute_force(stored, query, 10), values);
  EXPECT_THROW(mem.store("bad", 1, std::vector<float>(dim + 1, 1.0f)), entity::error);
  EXPECT_FALSE(mem.exists("bad"));

  std::int64_t in_u1 = 0;
  for (const auto& [key, v] : stored) in_u1 += key.rfind("u1:", 0) == 0;
  const std::int64_t keys_in_u1 = s.size();
  EXPECT_EQ(s.clear(), keys_in_u1);
  EXPECT_TRUE(s.recall(query, 5).empty());
  EXPECT_EQ(embeddings_count(mem), static_cast<std::int64_t>(stored.size()) - in_u1);
  infra->shutdown();
}

}  // namespace
