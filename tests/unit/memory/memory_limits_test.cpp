// Layer 3: what the memory refuses to write and what it refuses to read back, on every backend.
// Values nested deeper than entity::max_json_depth, NaN and infinity, and keys and scope names
// that are not UTF-8 are refused with invalid_argument before anything is written (never
// stored as something else, never a crash); a stored value too deep to decode, written by
// another program, is a decode_error naming its key.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "backends.hpp"
#include "entity/entity.hpp"
#include "library_support.hpp"

namespace {

using entity::json;
using entity::memory;
using entity::test::error_of;
using entity::test::nested_arrays;
using entity::test::nested_text;

class MemoryLimits : public entity::test::backend_test {
 protected:
  struct fixture {
    entity::database db;
    memory mem;
  };
  fixture make() {
    auto db = open();
    return {db, memory(db)};
  }
};
ENTITY_INSTANTIATE_ON_EVERY_BACKEND(MemoryLimits);

// Stores a value behind the memory's back, as raw SQL text: how another program's value gets in.
void store_raw(const entity::database& db, const std::string& key, const std::string& text) {
  db.execute(
      "INSERT INTO memory (key, value) VALUES (?, ?) "
      "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      {key, text});
}

bool says(const entity::error& e, const std::string& text) {
  return std::string(e.what()).find(text) != std::string::npos;
}

// ---- depth ------------------------------------------------------------------------------

TEST_P(MemoryLimits, AValueAtTheDepthLimitRoundTrips) {
  auto f = make();
  json deepest = nested_arrays(entity::max_json_depth);
  f.mem.store("deep", deepest);
  EXPECT_EQ(f.mem.load("deep"), deepest);
  EXPECT_EQ(f.mem.batch_load({"deep"}).at("deep"), deepest);
}

TEST_P(MemoryLimits, StoreOfAValueNestedPastTheLimitIsRefusedNamingIt) {
  auto f = make();
  for (std::size_t levels : {entity::max_json_depth + 1, std::size_t{70'000}}) {
    auto e = error_of([&] { f.mem.store("deep", nested_arrays(levels)); });
    EXPECT_EQ(e.code(), entity::errc::invalid_argument) << levels;
    EXPECT_TRUE(says(e, "512")) << e.what();
    EXPECT_TRUE(says(e, "'deep'")) << e.what();
  }
  EXPECT_FALSE(f.mem.exists("deep"));
}

TEST_P(MemoryLimits, BatchStoreOfAValueNestedPastTheLimitWritesNothing) {
  auto f = make();
  // Built by moves: an initializer list would copy the deep value, and copying one is itself
  // recursive (in the caller's code, before the library is reached).
  memory::items items;
  items.reserve(3);
  items.emplace_back("a", 1);
  items.emplace_back("deep", nested_arrays(100'000));
  items.emplace_back("b", 2);
  auto e = error_of([&] { f.mem.batch_store(std::move(items)); });
  EXPECT_EQ(e.code(), entity::errc::invalid_argument);
  EXPECT_TRUE(says(e, "'deep'")) << e.what();
  EXPECT_EQ(f.mem.size(), 0);
}

TEST_P(MemoryLimits, AStoredValueTooDeepToDecodeIsADecodeErrorNamingTheKey) {
  auto f = make();
  f.mem.store("fine", 1);
  store_raw(f.db, "deep-513", nested_text(entity::max_json_depth + 1));
  store_raw(f.db, "deep-200000", nested_text(200'000));
  for (const std::string key : {"deep-513", "deep-200000"}) {
    auto e = error_of([&] { f.mem.load(key); });
    EXPECT_EQ(e.code(), entity::errc::decode_error) << key;
    EXPECT_TRUE(says(e, "'" + key + "'")) << e.what();
    EXPECT_TRUE(says(e, "512")) << e.what();
    auto batch = error_of([&] { f.mem.batch_load({"fine", key}); });
    EXPECT_EQ(batch.code(), entity::errc::decode_error) << key;
    EXPECT_TRUE(says(batch, "'" + key + "'")) << batch.what();
  }
  // A value at the limit, written by another program, decodes.
  store_raw(f.db, "deep-512", nested_text(entity::max_json_depth));
  EXPECT_EQ(f.mem.load("deep-512"), nested_arrays(entity::max_json_depth));
  EXPECT_EQ(f.mem.load("fine"), json(1));
}

// ---- numbers JSON has no text for -------------------------------------------------------

TEST_P(MemoryLimits, NaNAndInfinityAreRefusedNotStoredAsNull) {
  auto f = make();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (const json& bad : {json(nan), json(-inf), json{{"a", {1, 2, inf}}}, json::array({nan})}) {
    auto e = error_of([&] { f.mem.store("k", bad); });
    EXPECT_EQ(e.code(), entity::errc::invalid_argument) << bad;
    EXPECT_TRUE(says(e, "'k'")) << e.what();
    auto batch = error_of([&] { f.mem.batch_store({{"ok", 1}, {"k", bad}}); });
    EXPECT_EQ(batch.code(), entity::errc::invalid_argument) << bad;
    auto embedded = error_of([&] { f.mem.store("k", bad, std::vector<float>{1, 0, 0}); });
    EXPECT_EQ(embedded.code(), entity::errc::invalid_argument) << bad;
  }
  auto e = error_of([&] { f.mem.store("where", json{{"a", {1, 2, inf}}}); });
  EXPECT_TRUE(says(e, "/a/2")) << e.what();
  EXPECT_EQ(f.mem.size(), 0);
}

// ---- keys and scopes that are not UTF-8 --------------------------------------------------

TEST_P(MemoryLimits, KeysThatAreNotUtf8AreRefusedOnEveryWrite) {
  auto f = make();
  const std::string bad = "k\xff";
  for (const std::string& key : {bad, std::string("\xc0\xaf"), std::string("a\xed\xa0\x80")}) {
    auto e = error_of([&] { f.mem.store(key, 1); });
    EXPECT_EQ(e.code(), entity::errc::invalid_argument);
    EXPECT_TRUE(says(e, "UTF-8")) << e.what();
    EXPECT_EQ(error_of([&] {
                f.mem.batch_store({{"ok", 1}, {key, 2}});
              }).code(),
              entity::errc::invalid_argument);
    EXPECT_EQ(error_of([&] {
                f.mem.store(key, 1, std::vector<float>{1, 0});
              }).code(),
              entity::errc::invalid_argument);
  }
  // The message shows the key escaped.
  EXPECT_TRUE(says(error_of([&] { f.mem.store(bad, 1); }), "'k\\xff'"));
  EXPECT_EQ(f.mem.size(), 0);
  // UTF-8 keys are fine.
  f.mem.store("ключ ✓", 1);
  EXPECT_EQ(f.mem.load("ключ ✓"), json(1));
}

TEST_P(MemoryLimits, ScopeNamesThatAreNotUtf8AreRefused) {
  auto f = make();
  auto e = error_of([&] { (void)f.mem.scope("user\xff"); });
  EXPECT_EQ(e.code(), entity::errc::invalid_argument);
  EXPECT_TRUE(says(e, "UTF-8")) << e.what();
  EXPECT_EQ(error_of([&] { (void)f.mem.scope("ok").scope("\x80"); }).code(),
            entity::errc::invalid_argument);
  f.mem.scope("ok").store("k", 1);
  EXPECT_EQ(f.mem.keys(), std::vector<std::string>{"ok:k"});
}

// ---- embeddings without a direction -------------------------------------------------------

TEST_P(MemoryLimits, AnEmbeddingWhoseNormUnderflowsIsRefusedLikeAZeroOne) {
  auto f = make();
  f.mem.store("real", 1, std::vector<float>{1, 0, 0});
  const float tiny = std::numeric_limits<float>::denorm_min();
  for (const std::vector<float>& v :
       {std::vector<float>{tiny, 0, 0}, std::vector<float>{1e-30f, 1e-30f, 0},
        std::vector<float>{3e38f, 3e38f, 0}}) {
    auto e = error_of([&] { f.mem.store("tiny", 2, v); });
    EXPECT_EQ(e.code(), entity::errc::invalid_argument) << v[0];
    auto r = error_of([&] { (void)f.mem.recall(v, 1); });
    EXPECT_EQ(r.code(), entity::errc::invalid_argument) << v[0];
  }
  EXPECT_FALSE(f.mem.exists("tiny"));
}

}  // namespace
