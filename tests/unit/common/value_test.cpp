// Values, rows and their typed getters; and that every kind of value survives a round trip
// through the database.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <entity/entity.hpp>
#include <limits>
#include <string>

#include "library_support.hpp"

namespace {

using entity::test::bytes;

struct memory_db {
  memory_db() : infra(std::make_shared<entity::sqlite_infrastructure>()), db(infra) {
    infra->startup();
  }
  std::shared_ptr<entity::sqlite_infrastructure> infra;
  entity::database db;
};

// Expects `f` to throw entity::error with errc::decode_error.
template <class F>
void expect_decode_error(F f) {
  try {
    f();
    ADD_FAILURE() << "no decode_error";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), entity::errc::decode_error) << e.what();
  }
}

}  // namespace

TEST(Value, HoldsEachKind) {
  EXPECT_TRUE(entity::value().is_null());
  EXPECT_TRUE(entity::value(entity::null).is_null());
  EXPECT_TRUE(entity::value(nullptr).is_null());
  EXPECT_TRUE(entity::value(42).is_int());
  EXPECT_TRUE(entity::value(std::uint8_t{7}).is_int());
  EXPECT_TRUE(entity::value(true).is_int());
  EXPECT_TRUE(entity::value(1.5).is_double());
  EXPECT_TRUE(entity::value(1.5f).is_double());
  EXPECT_TRUE(entity::value("text").is_text());
  EXPECT_TRUE(entity::value(std::string_view("text")).is_text());
  EXPECT_TRUE(entity::value(bytes({1})).is_blob());
  EXPECT_EQ(entity::value(true), entity::value(1));
  EXPECT_EQ(entity::value("a"), entity::value(std::string("a")));
  EXPECT_NE(entity::value(1), entity::value(1.0));
  EXPECT_NE(entity::value("1"), entity::value(1));
}

TEST(Value, ToStringRendersEachKind) {
  EXPECT_EQ(entity::value().to_string(), "NULL");
  EXPECT_EQ(entity::value(42).to_string(), "42");
  EXPECT_EQ(entity::value(-7).to_string(), "-7");
  EXPECT_EQ(entity::value(1.5).to_string(), "1.5");
  EXPECT_EQ(entity::value(0.1).to_string(), "0.1");  // the shortest text that reads back
  EXPECT_EQ(entity::value(1e300).to_string(), "1e+300");
  EXPECT_EQ(std::stod(entity::value(1.0 / 3).to_string()), 1.0 / 3);
  EXPECT_EQ(entity::value("hello").to_string(), "hello");
  EXPECT_EQ(entity::value(bytes({0x0a, 0x0b, 0xff})).to_string(), "x'0a0bff'");
  EXPECT_EQ(entity::value(entity::blob()).to_string(), "x''");
}

TEST(Value, TypedGetters) {
  entity::value i(42), d(2.5), t("text"), n;
  EXPECT_EQ(i.get<std::int64_t>(), 42);
  EXPECT_EQ(i.get<int>(), 42);
  EXPECT_EQ(i.get<bool>(), true);
  EXPECT_EQ(i.get<double>(), 42.0);  // integers widen to double on request
  EXPECT_EQ(d.get<double>(), 2.5);
  EXPECT_EQ(d.get<float>(), 2.5f);
  EXPECT_EQ(t.get<std::string>(), "text");
  EXPECT_EQ(n.get<std::optional<std::int64_t>>(), std::nullopt);
  EXPECT_EQ(n.get<std::optional<std::string>>(), std::nullopt);
  EXPECT_EQ(i.get<std::optional<std::int64_t>>(), 42);
  EXPECT_EQ(i.get<entity::value>(), i);

  expect_decode_error([&] { t.get<std::int64_t>(); });
  expect_decode_error([&] { d.get<std::int64_t>(); });  // no silent truncation
  expect_decode_error([&] { i.get<std::string>(); });
  expect_decode_error([&] { n.get<std::int64_t>(); });  // NULL needs std::optional
  expect_decode_error([&] { t.get<entity::blob>(); });
  expect_decode_error([&] { t.get<std::optional<double>>(); });
  try {
    t.get<std::int64_t>();
  } catch (const entity::error& e) {
    EXPECT_NE(std::string(e.what()).find("text"), std::string::npos) << e.what();
  }
}

TEST(Value, RowLooksUpColumnsByNameAndIndex) {
  auto names = std::make_shared<const std::vector<std::string>>(std::vector<std::string>{"a", "b"});
  entity::row r(names, {entity::value(1), entity::value("x")});
  EXPECT_EQ(r.size(), 2u);
  EXPECT_EQ(r.get<int>("a"), 1);
  EXPECT_EQ(r.get<std::string>(1), "x");
  EXPECT_EQ(r[1], entity::value("x"));
  EXPECT_EQ(r.column_names(), *names);
  try {
    r.at("c");
    FAIL() << "found a column that does not exist";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), entity::errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("'c'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(r.at(2), entity::error);
  EXPECT_TRUE(entity::row().column_names().empty());
}

TEST(Value, BlobsRoundTrip) {
  memory_db m;
  m.db.execute("CREATE TABLE b (id INTEGER PRIMARY KEY, data BLOB)");
  std::vector<std::byte> all(256);
  for (int i = 0; i < 256; ++i) all[static_cast<std::size_t>(i)] = static_cast<std::byte>(i);
  std::vector<std::byte> large(1 << 20);
  for (std::size_t i = 0; i < large.size(); ++i) large[i] = static_cast<std::byte>(i * 31 % 251);
  const std::vector<entity::blob> samples = {entity::blob(all), bytes({0, 0, 0}), entity::blob(),
                                             entity::blob(large)};
  for (std::size_t i = 0; i < samples.size(); ++i)
    m.db.execute("INSERT INTO b VALUES (?, ?)", {static_cast<std::int64_t>(i), samples[i]});
  auto rows = m.db.fetch_all("SELECT data, typeof(data) FROM b ORDER BY id");
  ASSERT_EQ(rows.size(), samples.size());
  for (std::size_t i = 0; i < samples.size(); ++i) {
    EXPECT_TRUE(rows[i][0].is_blob()) << i;
    EXPECT_EQ(rows[i].get<std::string>(1), "blob") << i;  // stored as BLOB, even when empty
    EXPECT_EQ(rows[i].get<entity::blob>(0), samples[i]) << i;
  }
  // A blob binds as a blob: it matches itself, not its text.
  EXPECT_EQ(m.db.fetch_one("SELECT id FROM b WHERE data = ?", {bytes({0, 0, 0})})->get<int>(0), 1);
}

TEST(Value, EveryKindRoundTripsThroughTheDatabase) {
  memory_db m;
  m.db.execute("CREATE TABLE v (i INTEGER, r REAL, t TEXT, n)");
  const std::int64_t big = std::numeric_limits<std::int64_t>::max();
  const std::int64_t small = std::numeric_limits<std::int64_t>::min();
  std::string with_nul("a\0b", 3);
  std::string utf8 = "na\xc3\xafve \xe2\x9c\x93";
  m.db.execute("INSERT INTO v VALUES (?, ?, ?, ?)", {big, 0.1, with_nul, entity::null});
  m.db.execute("INSERT INTO v VALUES (?, ?, ?, ?)", {small, -1e-300, utf8, nullptr});
  auto rows = m.db.fetch_all("SELECT i, r, t, n FROM v ORDER BY rowid");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].get<std::int64_t>("i"), big);
  EXPECT_EQ(rows[1].get<std::int64_t>("i"), small);
  EXPECT_EQ(rows[0].get<double>("r"), 0.1);
  EXPECT_EQ(rows[1].get<double>("r"), -1e-300);
  EXPECT_EQ(rows[0].get<std::string>("t"), with_nul);
  EXPECT_EQ(rows[1].get<std::string>("t"), utf8);
  EXPECT_TRUE(rows[0].at("n").is_null());
  EXPECT_EQ(rows[1].get<std::optional<double>>("n"), std::nullopt);
}

TEST(Value, TextColumnReadAsIntegerIsADecodeError) {
  memory_db m;
  m.db.execute("CREATE TABLE t (a TEXT)");
  m.db.execute("INSERT INTO t VALUES ('forty-two')");
  auto row = m.db.fetch_one("SELECT a FROM t");
  ASSERT_TRUE(row);
  expect_decode_error([&] { row->get<std::int64_t>("a"); });
  expect_decode_error([&] { row->get<std::int64_t>(0); });
  EXPECT_EQ(row->get<std::string>(0), "forty-two");
}
