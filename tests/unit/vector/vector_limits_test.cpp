// Layer 2: what the vector store refuses. A cosine vector whose norm cannot be computed in
// float32 (it underflows to 0, like a denormal's, or overflows) is refused like a zero vector;
// metadata holding a NaN or an infinity, or nested deeper than entity::max_json_depth, is
// refused rather than written as something else; stored metadata too deep to decode is a
// decode_error.
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "entity/entity.hpp"
#include "library_support.hpp"

namespace {

using entity::errc;
using entity::json;
using entity::metric;
using entity::vector_store;
using entity::test::error_of;

struct fixture : entity::test::sqlite_file {
  fixture() : sqlite_file("vectors.db"), db(infra), store(db) {}
  entity::database db;
  vector_store store;
};

const float tiny = std::numeric_limits<float>::denorm_min();

// Vectors that are not zero but whose float32 norm is 0 or infinite.
std::vector<std::vector<float>> without_direction() {
  return {{tiny, 0, 0}, {1e-45f, 0, 0}, {1e-30f, -1e-30f, 1e-25f}, {3e38f, 0, 3e38f}};
}

TEST(VectorLimits, ACosineVectorWhoseNormUnderflowsOrOverflowsIsRefusedLikeAZeroOne) {
  fixture f;
  f.store.create_collection("c", 3, metric::cosine);
  f.store.upsert("c", "real", {1, 0, 0});
  std::string zero_message = error_of([&] { f.store.upsert("c", "z", {0, 0, 0}); }).diag().message;
  for (const auto& v : without_direction()) {
    auto e = error_of([&] { f.store.upsert("c", "tiny", v); });
    EXPECT_EQ(e.code(), errc::invalid_argument) << v[0];
    EXPECT_NE(e.diag().message.find("direction"), std::string::npos) << e.diag().message;
    EXPECT_EQ(error_of([&] {
                f.store.upsert_batch("c", {{"ok", {0, 1, 0}, {}}, {"tiny", v, {}}});
              }).code(),
              errc::invalid_argument);
    auto s = error_of([&] { (void)f.store.search("c", v, 1); });
    EXPECT_EQ(s.code(), errc::invalid_argument) << v[0];
    auto exact = error_of([&] { (void)f.store.search("c", v, 1, {}, entity::search_mode::exact); });
    EXPECT_EQ(exact.code(), errc::invalid_argument) << v[0];
  }
  EXPECT_NE(zero_message.find("direction"), std::string::npos) << zero_message;
  EXPECT_EQ(f.store.count("c"), 1);
  // A small vector whose norm float32 holds is fine, and its distance to itself is 0.
  f.store.upsert("c", "small", {1e-15f, 0, 0});
  auto found = f.store.search("c", {1e-15f, 0, 0}, 1, {}, entity::search_mode::exact);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_NEAR(found[0].distance, 0.0f, 1e-6f);
}

TEST(VectorLimits, OtherMetricsTakeTinyVectors) {
  fixture f;
  f.store.create_collection("l", 3, metric::l2);
  f.store.upsert("l", "tiny", {tiny, 0, 0});
  EXPECT_EQ(f.store.count("l"), 1);
}

TEST(VectorLimits, MetadataWithNaNOrInfinityIsRefusedNotWrittenAsNull) {
  fixture f;
  f.store.create_collection("c", 2, metric::l2);
  const double inf = std::numeric_limits<double>::infinity();
  for (const json& meta :
       {json{{"score", std::numeric_limits<double>::quiet_NaN()}}, json{{"a", {{"b", -inf}}}}}) {
    auto e = error_of([&] { f.store.upsert("c", "v", {1, 2}, meta); });
    EXPECT_EQ(e.code(), errc::invalid_argument) << meta;
    EXPECT_NE(std::string(e.what()).find("'v'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(f.store.count("c"), 0);
}

TEST(VectorLimits, MetadataNestedPastTheLimitIsRefused) {
  fixture f;
  f.store.create_collection("c", 2, metric::l2);
  json meta = json::object();
  json* at = &meta;
  for (int i = 0; i < 100'000; ++i) at = &((*at)["x"] = json::object());
  // Moved, not copied: nlohmann copies a value one level per call.
  auto e = error_of([&] { f.store.upsert("c", "v", {1, 2}, std::move(meta)); });
  EXPECT_EQ(e.code(), errc::invalid_argument);
  EXPECT_NE(std::string(e.what()).find("512"), std::string::npos) << e.what();
  EXPECT_EQ(f.store.count("c"), 0);
}

TEST(VectorLimits, StoredMetadataTooDeepToDecodeIsADecodeError) {
  fixture f;
  f.store.create_collection("c", 2, metric::l2);
  f.store.upsert("c", "v", {1, 2});
  std::string deep = "{\"a\":" + std::string(200'000, '[') + std::string(200'000, ']') + "}";
  f.db.execute("UPDATE vec_c SET metadata = ? WHERE id = 'v'", {deep});
  auto e = error_of([&] { (void)f.store.get("c", "v"); });
  EXPECT_EQ(e.code(), errc::decode_error);
  EXPECT_NE(std::string(e.what()).find("512"), std::string::npos) << e.what();
}

}  // namespace
