// Layer 3: the memory. Every requirement of the memory has a test here that fails without it:
// the operations and their edge cases, the seed's table and JSON text, decode errors that name
// their key, scopes that stay isolated, big batches that round trip or leave nothing behind,
// and async stores that share group commits. The suite runs on every backend (SQLite and
// PostgreSQL, the latter also in a database with ICU's en-US collation), each test on a
// database of its own; what only SQLite does is tested at the end.
#include <gtest/gtest.h>
#include <sqlite3.h>

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
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backends.hpp"
#include "concurrency.hpp"
#include "entity/entity.hpp"
#include "library_support.hpp"
#include "test_support.hpp"

namespace {

namespace asio = boost::asio;
using entity::json;
using entity::memory;
using namespace std::chrono_literals;

using entity::test::numbered_key;
using entity::test::run_coroutine;
using entity::test::started;

// A memory over a fresh SQLite database file in its own temporary folder.
struct sqlite_fixture : entity::test::sqlite_file {
  sqlite_fixture() : sqlite_file("memory.db") {}
  entity::database db{infra};
  memory mem{db};
};

// A memory over a fresh database of the backend under test.
struct fixture {
  entity::database db;
  memory mem;
};

class Memory : public entity::test::backend_test {
 protected:
  fixture make() {
    auto db = open();
    return {db, memory(db)};
  }
};
// Memory's scopes are key ranges and its keys come sorted: the suite runs on a PostgreSQL
// database whose collation is not bytewise too.
ENTITY_INSTANTIATE_ON_EVERY_BACKEND_AND_COLLATION(Memory);

// A string that is not UTF-8: nlohmann::json refuses to write it as JSON.
json not_utf8() { return json(std::string("ok \xff\xfe bytes")); }

memory::items numbered_items(std::size_t n) {
  memory::items items;
  items.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    items.emplace_back(numbered_key(i), json{{"i", i}, {"s", "v"}});
  return items;
}

std::vector<std::string> numbered_keys(std::size_t n) {
  std::vector<std::string> keys;
  keys.reserve(n);
  for (std::size_t i = 0; i < n; ++i) keys.push_back(numbered_key(i));
  return keys;
}

void expect_numbered(const memory::loaded& got, std::size_t n) {
  ASSERT_EQ(got.size(), n);
  for (std::size_t i = 0; i < n; ++i) {
    auto it = got.find(numbered_key(i));
    ASSERT_NE(it, got.end()) << numbered_key(i);
    ASSERT_EQ(it->second, (json{{"i", i}, {"s", "v"}})) << numbered_key(i);
  }
}

// One statement's single text result, read with SQLite directly (not through entity-db).
std::string sqlite_text(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0))
    out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

void sqlite_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr),
            SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

// Stores a value behind the memory's back, as raw SQL text: how a broken value gets in. The
// upsert is spelled the way both SQLite and PostgreSQL read it.
void store_raw(const entity::database& db, const std::string& key, const std::string& text) {
  db.execute(
      "INSERT INTO memory (key, value) VALUES (?, ?) "
      "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      {key, text});
}

// ---- the operations -----------------------------------------------------------------------

TEST_P(Memory, StoreThenLoadRoundTripsEveryKindOfJson) {
  auto f = make();
  const json values[] = {
      json{{"goal", "book a flight"}, {"done", false}, {"legs", {1, 2, 3}}},
      json::array({1, "two", 3.5, nullptr}),
      json("Zürich ☃ 𝄞"),
      json(42),
      json(-1.25),
      json(true),
      json(nullptr),
      json::object(),
      json(""),
      json(std::string("a\0b", 3)),
  };
  for (std::size_t i = 0; i < std::size(values); ++i)
    f.mem.store("v" + std::to_string(i), values[i]);
  for (std::size_t i = 0; i < std::size(values); ++i) {
    auto got = f.mem.load("v" + std::to_string(i));
    ASSERT_TRUE(got.has_value()) << i;
    EXPECT_EQ(*got, values[i]) << i;
  }
  f.mem.store("v0", "replaced");
  EXPECT_EQ(f.mem.load("v0"), json("replaced"));
  EXPECT_EQ(f.mem.size(), static_cast<std::int64_t>(std::size(values)));
}

TEST_P(Memory, LoadOfAMissingKeyIsEmptyNotAnError) {
  auto f = make();
  EXPECT_EQ(f.mem.load("nobody"), std::nullopt);
  EXPECT_EQ(f.mem.load("nobody", json{{"fallback", 1}}), (json{{"fallback", 1}}));
  f.mem.store("somebody", 7);
  EXPECT_EQ(f.mem.load("somebody", json(0)), json(7));
  // A stored JSON null is a value, not a missing key: the default does not replace it.
  f.mem.store("null", nullptr);
  EXPECT_EQ(f.mem.load("null", json("default")), json(nullptr));
}

TEST_P(Memory, EraseSaysWhetherTheKeyExisted) {
  auto f = make();
  EXPECT_FALSE(f.mem.erase("missing"));
  f.mem.store("k", 1);
  f.mem.store("other", 2);
  EXPECT_TRUE(f.mem.exists("k"));
  EXPECT_TRUE(f.mem.erase("k"));
  EXPECT_FALSE(f.mem.exists("k"));
  EXPECT_EQ(f.mem.load("k"), std::nullopt);
  EXPECT_EQ(f.mem.load("k", json("gone")), json("gone"));
  EXPECT_FALSE(f.mem.erase("k"));
  EXPECT_TRUE(f.mem.exists("other"));
  EXPECT_EQ(f.mem.size(), 1);
}

TEST_P(Memory, KeysMatchALikePatternAndAreSorted) {
  auto f = make();
  for (const char* k : {"task:2", "b", "task:10", "a", "task:1", "note", "B"}) f.mem.store(k, 0);
  EXPECT_EQ(f.mem.keys(),
            (std::vector<std::string>{"B", "a", "b", "note", "task:1", "task:10", "task:2"}));
  EXPECT_EQ(f.mem.keys("task:%"), (std::vector<std::string>{"task:1", "task:10", "task:2"}));
  EXPECT_EQ(f.mem.keys("task:_"), (std::vector<std::string>{"task:1", "task:2"}));
  EXPECT_EQ(f.mem.keys("nothing%"), std::vector<std::string>{});
}

TEST_P(Memory, ClearRemovesTheMatchingKeysAndCountsThem) {
  auto f = make();
  for (const char* k : {"tmp:1", "tmp:2", "tmp:3", "keep:1", "keep:2"}) f.mem.store(k, 0);
  EXPECT_EQ(f.mem.clear("tmp:%"), 3);
  EXPECT_EQ(f.mem.keys(), (std::vector<std::string>{"keep:1", "keep:2"}));
  EXPECT_EQ(f.mem.clear("tmp:%"), 0);
  EXPECT_EQ(f.mem.clear(), 2);
  EXPECT_EQ(f.mem.size(), 0);
}

TEST_P(Memory, StatsCountKeysAndTheBytesOfTheirJsonText) {
  auto f = make();
  EXPECT_EQ(f.mem.stats().keys, 0);
  EXPECT_EQ(f.mem.stats().value_bytes, 0);
  // Non-ASCII text: SQLite's length() counts characters; the stats promise bytes.
  const json a = {{"city", "Zürich"}, {"snow", "☃☃☃"}};
  const json b = {1, 2, 3};
  f.mem.store("a", a);
  f.mem.store("b", b);
  auto s = f.mem.stats();
  EXPECT_EQ(s.keys, 2);
  EXPECT_EQ(s.value_bytes, static_cast<std::int64_t>(a.dump().size() + b.dump().size()));
  EXPECT_GT(s.engine.operations, 0u);
  EXPECT_EQ(f.mem.size(), 2);
}

// ---- values that are not JSON -------------------------------------------------------------

TEST_P(Memory, AValueThatIsNotJsonFailsItsLoadNamingTheKey) {
  auto f = make();
  f.mem.store("good", 1);
  store_raw(f.db, "broken-key", "{not json");
  try {
    f.mem.load("broken-key");
    FAIL() << "loading a value that is not JSON succeeded";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), entity::errc::decode_error);
    EXPECT_NE(std::string(e.what()).find("broken-key"), std::string::npos) << e.what();
    EXPECT_NE(e.diag().message.find("broken-key"), std::string::npos) << e.diag().message;
  }
  // Not silently replaced by the default either.
  EXPECT_THROW(f.mem.load("broken-key", json("default")), entity::error);
  // The memory is still usable, and the other keys load.
  EXPECT_EQ(f.mem.load("good"), json(1));
  EXPECT_TRUE(f.mem.exists("broken-key"));
  EXPECT_EQ(f.mem.keys(), (std::vector<std::string>{"broken-key", "good"}));
}

TEST_P(Memory, BatchLoadOfAValueThatIsNotJsonFailsNamingTheKey) {
  auto f = make();
  auto items = numbered_items(1200);
  f.mem.batch_store(items);
  store_raw(f.db, numbered_key(777), "[1, 2");  // in the second chunk of the batch
  try {
    f.mem.batch_load(numbered_keys(1200));
    FAIL() << "batch_load of a value that is not JSON succeeded";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), entity::errc::decode_error);
    EXPECT_NE(std::string(e.what()).find(numbered_key(777)), std::string::npos) << e.what();
  }
  std::vector<std::string> others = {numbered_key(1), numbered_key(1199)};
  EXPECT_EQ(f.mem.batch_load(others).size(), 2u);
}

ENTITY_CONCURRENT_TEST_P(Memory, AsyncLoadsOfAValueThatIsNotJsonFailWithDecodeError) {
  auto f = make();
  f.mem.store("good", 1);
  store_raw(f.db, "broken-key", "nope");
  run_coroutine([&]() -> asio::awaitable<void> {
    auto [ec, v] = co_await f.mem.async_load("broken-key", asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(ec, entity::errc::decode_error);
    EXPECT_FALSE(v.has_value());
    // Not silently replaced by the default either.
    json fallback = "default";
    auto [ec1, d] =
        co_await f.mem.async_load("broken-key", fallback, asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(ec1, entity::errc::decode_error);
    EXPECT_EQ(d, json());
    std::vector<std::string> wanted = {"good", "broken-key"};
    auto [ec2, m] =
        co_await f.mem.async_batch_load(std::move(wanted), asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(ec2, entity::errc::decode_error);
    EXPECT_TRUE(m.empty());
    auto good = co_await f.mem.async_load("good", asio::use_awaitable);
    EXPECT_EQ(good, json(1));
  });
}

ENTITY_CONCURRENT_TEST_P(Memory, AsyncDiagnosticsNameTheKeyOfAValueThatIsNotJson) {
  auto f = make();
  f.mem.batch_store(numbered_items(1200));
  store_raw(f.db, "broken-key", "nope");
  store_raw(f.db, numbered_key(900), "{\"a\": ");
  entity::diagnostics load_diag, default_diag, batch_diag, store_diag;
  run_coroutine([&]() -> asio::awaitable<void> {
    const auto t = asio::as_tuple(asio::use_awaitable);
    auto [ec, v] = co_await f.mem.async_load("broken-key", load_diag, t);
    EXPECT_EQ(ec, entity::errc::decode_error);
    json fallback = 0;
    auto [ec1, d] = co_await f.mem.async_load("broken-key", fallback, default_diag, t);
    EXPECT_EQ(ec1, entity::errc::decode_error);
    auto [ec2, m] = co_await f.mem.async_batch_load(numbered_keys(1200), batch_diag, t);
    EXPECT_EQ(ec2, entity::errc::decode_error);
    auto [ec3] = co_await f.mem.async_store("unwritable", not_utf8(), store_diag, t);
    EXPECT_EQ(ec3, entity::errc::invalid_argument);
  });
  EXPECT_NE(load_diag.message.find("broken-key"), std::string::npos) << load_diag.message;
  EXPECT_NE(default_diag.message.find("broken-key"), std::string::npos) << default_diag.message;
  EXPECT_NE(batch_diag.message.find(numbered_key(900)), std::string::npos) << batch_diag.message;
  EXPECT_NE(store_diag.message.find("unwritable"), std::string::npos) << store_diag.message;
}

// ---- batches ------------------------------------------------------------------------------

TEST_P(Memory, BatchLoadOmitsMissingKeys) {
  auto f = make();
  memory::items items = {{"a", 1}, {"b", json{{"x", "y"}}}, {"c", nullptr}};
  f.mem.batch_store(items);
  auto got = f.mem.batch_load({"a", "missing", "b", "c", "a"});
  EXPECT_EQ(got.size(), 3u);
  EXPECT_EQ(got.at("a"), json(1));
  EXPECT_EQ(got.at("b"), (json{{"x", "y"}}));
  EXPECT_EQ(got.at("c"), json(nullptr));
  EXPECT_TRUE(f.mem.batch_load({}).empty());
  EXPECT_TRUE(f.mem.batch_load({"none", "of", "these"}).empty());
}

TEST_P(Memory, BatchStoreIsOneTransaction) {
  auto f = make();
  EXPECT_EQ(f.mem.size(), 0);  // the table exists from here on
  auto before = f.db.stats().operations;
  f.mem.batch_store(numbered_items(1000));
  EXPECT_EQ(f.db.stats().operations - before, 1u);
  EXPECT_EQ(f.mem.size(), 1000);
  f.mem.batch_store({});  // nothing to do is not an error
  EXPECT_EQ(f.mem.size(), 1000);
}

// A key may come more than once, in one statement's rows or across them: the last value wins,
// as a run of single stores would leave it.
TEST_P(Memory, BatchStoreOfAKeyGivenTwiceKeepsTheLastValue) {
  auto f = make();
  f.mem.store("a", "before");
  memory::items items;
  for (int i = 0; i < 300; ++i) items.emplace_back("k" + std::to_string(i % 100), i);
  for (int i : {0, 1, 2, 150, 299}) items.emplace_back("a", i);
  items.emplace_back("k7", "last");
  f.mem.batch_store(std::move(items));
  EXPECT_EQ(f.mem.size(), 101);
  EXPECT_EQ(f.mem.load("a"), json(299));
  EXPECT_EQ(f.mem.load("k7"), json("last"));
  EXPECT_EQ(f.mem.load("k0"), json(200));
  EXPECT_EQ(f.mem.load("k99"), json(299));
}

// Each row's key and text are written whole, whatever the rows before them in the batch held:
// a short value after a long one, in the same place of the next chunk, reads back as itself.
TEST_P(Memory, BatchStoreWritesEachValueWhole) {
  auto f = make();
  auto scoped = f.mem.scope("s");
  memory::items items;
  for (int i = 0; i < 400; ++i) {
    const bool long_one = (i / 128) % 2 == 0;
    items.emplace_back(
        long_one ? "long-key-" + std::string(40, 'k') + std::to_string(i) : std::to_string(i),
        long_one ? json{{"text", std::string(500, 'x')}, {"i", i}} : json(i));
  }
  const memory::items expected = items;
  scoped.batch_store(std::move(items));
  EXPECT_EQ(scoped.size(), 400);
  for (const auto& [key, value] : expected) EXPECT_EQ(scoped.load(key), value) << key;
  EXPECT_EQ(f.mem.size(), 400);
}

// A chunk shorter than a statement's rows is written in parts; every size writes every item.
TEST_P(Memory, BatchStoreOfAnySizeWritesEveryItem) {
  auto f = make();
  std::int64_t total = 0;
  for (int n : {1, 2, 3, 7, 64, 127, 129, 255, 383}) {
    auto scoped = f.mem.scope("n" + std::to_string(n) + ":");
    memory::items items;
    for (int i = 0; i < n; ++i) items.emplace_back(std::to_string(i), json{{"n", n}, {"i", i}});
    scoped.batch_store(std::move(items));
    total += n;
    EXPECT_EQ(scoped.size(), n);
    for (int i : {0, n / 2, n - 1})
      EXPECT_EQ(scoped.load(std::to_string(i)), (json{{"n", n}, {"i", i}}));
  }
  EXPECT_EQ(f.mem.size(), total);
}

TEST_P(Memory, BatchStoreIsAllOrNothing) {
  auto f = make();
  f.mem.store("keep", 1);
  memory::items items = {{"keep", 2}, {"new", 3}, {"bad-value", not_utf8()}, {"later", 4}};
  try {
    f.mem.batch_store(items);
    FAIL() << "a batch holding a value that cannot be JSON was stored";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), entity::errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("bad-value"), std::string::npos) << e.what();
  }
  EXPECT_EQ(f.mem.load("keep"), json(1));
  EXPECT_FALSE(f.mem.exists("new"));
  EXPECT_FALSE(f.mem.exists("later"));
  EXPECT_EQ(f.mem.size(), 1);
  // A single store of such a value fails the same way and writes nothing.
  EXPECT_THROW(f.mem.store("bad-value", not_utf8()), entity::error);
  EXPECT_FALSE(f.mem.exists("bad-value"));
}

TEST_P(Memory, HundredThousandItemsRoundTrip) {
  auto f = make();
  f.mem.batch_store(numbered_items(100'000));
  EXPECT_EQ(f.mem.size(), 100'000);
  auto keys = numbered_keys(100'000);
  keys.push_back("missing");  // and a last chunk of one key
  expect_numbered(f.mem.batch_load(std::move(keys)), 100'000);
}

ENTITY_CONCURRENT_TEST_P(Memory, HundredThousandItemsRoundTripAsync) {
  auto f = make();
  memory::loaded got;
  run_coroutine([&]() -> asio::awaitable<void> {
    co_await f.mem.async_batch_store(numbered_items(100'000), asio::use_awaitable);
    auto keys = numbered_keys(100'000);
    keys.push_back("missing");
    got = co_await f.mem.async_batch_load(std::move(keys), asio::use_awaitable);
  });
  expect_numbered(got, 100'000);
  EXPECT_EQ(f.mem.size(), 100'000);
}

TEST_P(Memory, BatchStoreFailingHalfwayLeavesNothingWritten) {
  auto f = make();
  auto items = numbered_items(100'000);
  items[50'000].second = not_utf8();
  try {
    f.mem.batch_store(std::move(items));
    FAIL() << "the batch was stored";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), entity::errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find(numbered_key(50'000)), std::string::npos) << e.what();
  }
  EXPECT_EQ(f.mem.size(), 0);
  EXPECT_EQ(f.mem.keys(), std::vector<std::string>{});
  f.mem.store("after", 1);  // the writer is healthy afterwards
  EXPECT_EQ(f.mem.size(), 1);
}

ENTITY_CONCURRENT_TEST_P(Memory, AsyncBatchStoreFailingHalfwayLeavesNothingWritten) {
  auto f = make();
  entity::error_code ec;
  run_coroutine([&]() -> asio::awaitable<void> {
    auto items = numbered_items(100'000);
    items[50'000].second = not_utf8();
    auto [e] =
        co_await f.mem.async_batch_store(std::move(items), asio::as_tuple(asio::use_awaitable));
    ec = e;
  });
  EXPECT_EQ(ec, entity::errc::invalid_argument);
  EXPECT_EQ(f.mem.size(), 0);
}

// The process's resident anonymous memory in KiB (RssAnon): its heap, not the database file's
// pages that SQLite maps.
long anon_rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("RssAnon:", 0) == 0) return std::strtol(line.c_str() + 8, nullptr, 10);
  return -1;
}

// The most anon_rss_kib() reached while `work` runs, sampled every millisecond on a thread.
template <class F>
long peak_anon_rss_kib_during(F&& work) {
  std::atomic<bool> done{false};
  std::atomic<long> peak{anon_rss_kib()};
  std::thread sampler([&] {
    while (!done.load()) {
      long now = anon_rss_kib();
      if (now > peak.load()) peak.store(now);
      std::this_thread::sleep_for(1ms);
    }
  });
  work();
  done.store(true);
  sampler.join();
  return std::max(peak.load(), anon_rss_kib());
}

// AddressSanitizer pads every block and keeps freed ones in quarantine (256 MiB), so resident
// memory there says nothing about what the code allocates: the bound holds in normal builds.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool resident_memory_is_meaningful = false;
#else
constexpr bool resident_memory_is_meaningful = true;
#endif

TEST_P(Memory, MillionItemBatchStoreStreamsItsItems) {
  auto f = make();
  f.mem.store("warm", 1);  // the table and the connections exist before the measure
  constexpr std::size_t n = 1'000'000;
  const long before = anon_rss_kib();
  memory::items items;
  items.reserve(n);
  for (std::size_t i = 0; i < n; ++i) items.emplace_back(numbered_key(i), static_cast<int>(i));
  const long with_items = anon_rss_kib();
  const long items_kib = with_items - before;
  const long peak = peak_anon_rss_kib_during([&] { f.mem.batch_store(std::move(items)); });
  if (resident_memory_is_meaningful) {
    // The items take ~46,000 KiB (a key string and a JSON value each). Binding one chunk of
    // items at a time adds a few statements' worth; a copy of the batch as SQL parameters (~80
    // bytes an item), or even of its values as JSON text (~32), would add over half the items.
    ASSERT_GT(items_kib, 40'000) << "RssAnon did not see the items: the measure is broken";
    EXPECT_LT(peak - with_items, items_kib / 2)
        << "KiB over the items, which take " << items_kib << " KiB";
  }
  EXPECT_EQ(f.mem.size(), static_cast<std::int64_t>(n + 1));
  EXPECT_EQ(f.mem.load(numbered_key(n - 1)), json(static_cast<int>(n - 1)));
}

// ---- scopes -------------------------------------------------------------------------------

TEST_P(Memory, ScopeKeysLiveUnderItsPrefix) {
  auto f = make();
  auto user = f.mem.scope("user-42");
  EXPECT_EQ(user.prefix(), "user-42:");
  user.store("mood", "curious");
  EXPECT_EQ(f.mem.load("user-42:mood"), json("curious"));
  EXPECT_EQ(user.load("mood"), json("curious"));
  EXPECT_EQ(user.keys(), std::vector<std::string>{"mood"});
  EXPECT_THROW(f.mem.scope(""), entity::error);
}

TEST_P(Memory, ScopesAreIsolated) {
  auto f = make();
  auto alice = f.mem.scope("alice");
  auto bob = f.mem.scope("bob");
  f.mem.store("shared", 0);
  alice.store("a1", 1);
  alice.store("x", 2);
  bob.store("x", 3);
  memory::items bobs = {{"b1", 4}, {"b2", 5}};
  bob.batch_store(bobs);
  EXPECT_EQ(alice.keys(), (std::vector<std::string>{"a1", "x"}));
  EXPECT_EQ(bob.keys(), (std::vector<std::string>{"b1", "b2", "x"}));
  EXPECT_EQ(alice.load("x"), json(2));
  EXPECT_EQ(bob.load("x"), json(3));
  EXPECT_EQ(alice.size(), 2);
  EXPECT_EQ(bob.size(), 3);
  EXPECT_EQ(alice.stats().keys, 2);
  EXPECT_FALSE(alice.exists("b1"));
  EXPECT_FALSE(alice.erase("b1"));
  EXPECT_EQ(alice.batch_load({"a1", "b1", "x"}).size(), 2u);
  EXPECT_EQ(alice.clear(), 2);
  EXPECT_EQ(bob.size(), 3);
  EXPECT_EQ(f.mem.load("shared"), json(0));
  EXPECT_EQ(f.mem.size(), 4);
}

// A key is bytes. SQLite keeps a NUL byte in one, so "victim\0evil" is a key of its own;
// PostgreSQL text cannot hold one, so there every operation given such a key (or a scope
// name with one) fails with invalid_argument and writes nothing. Either way the key "victim"
// is never touched by an operation on a longer key.
TEST_P(Memory, KeyWithANulByteNeverReachesTheKeyBeforeIt) {
  auto f = make();
  f.mem.store("victim", "original");
  f.mem.store("b", "unscoped");
  const std::string evil("victim\0evil", 11);
  const std::string other("victim\0zzz", 10);
  auto nul_scope = f.mem.scope(std::string("b\0", 2));
  if (on_sqlite()) {
    f.mem.store(evil, "evil");
    EXPECT_FALSE(f.mem.erase(other));
    nul_scope.store("x", "scoped");
    EXPECT_EQ(f.mem.load(evil), json("evil"));
    EXPECT_EQ(nul_scope.load("x"), json("scoped"));
    EXPECT_EQ(f.mem.size(), 4);
    memory::items batch = {{std::string("a\0b", 3), 1}};
    f.mem.batch_store(batch);
    EXPECT_EQ(f.mem.batch_load({std::string("a\0b", 3)}).size(), 1u);
    EXPECT_FALSE(f.mem.exists("a"));
  } else {
    auto refused = [](const std::function<void()>& call, const char* what) {
      try {
        call();
        ADD_FAILURE() << what << " accepted a key with a NUL byte";
      } catch (const entity::error& e) {
        EXPECT_EQ(e.code(), entity::errc::invalid_argument) << what << ": " << e.what();
        EXPECT_NE(std::string(e.what()).find("NUL"), std::string::npos) << what << ": " << e.what();
      }
    };
    refused([&] { f.mem.store(evil, "evil"); }, "store");
    refused([&] { f.mem.erase(other); }, "erase");
    refused([&] { nul_scope.store("x", "scoped"); }, "a scope's store");
    refused([&] { nul_scope.clear(); }, "a scope's clear");
    refused([&] { f.mem.batch_store({{"fine", 1}, {std::string("a\0b", 3), 2}}); }, "batch_store");
    refused([&] { f.mem.load(evil); }, "load");
    EXPECT_EQ(f.mem.size(), 2);
    EXPECT_FALSE(f.mem.exists("fine"));
  }
  EXPECT_EQ(f.mem.load("victim"), json("original"));
  EXPECT_EQ(f.mem.load("b"), json("unscoped"));
}

TEST_P(Memory, ScopeWithLikeCharactersIsIsolated) {
  auto f = make();
  auto odd = f.mem.scope("a%_b");
  auto plain = f.mem.scope("aXYb");
  auto near = f.mem.scope("a%Zb");
  odd.store("k1", 1);
  plain.store("k1", 2);
  plain.store("k2", 3);
  near.store("k3", 4);
  EXPECT_EQ(odd.keys(), std::vector<std::string>{"k1"});
  EXPECT_EQ(odd.keys("k%"), std::vector<std::string>{"k1"});
  EXPECT_EQ(odd.size(), 1);
  EXPECT_EQ(odd.stats().keys, 1);
  EXPECT_EQ(odd.clear("k_"), 1);
  EXPECT_EQ(plain.size(), 2);
  EXPECT_EQ(near.size(), 1);
  EXPECT_EQ(plain.load("k1"), json(2));
  plain.clear();
  EXPECT_EQ(near.load("k3"), json(4));
}

// A scope is the key range [prefix, prefix with its last byte raised), and keys come sorted by
// their bytes, as SQLite compares them. A database collation that is not bytewise (ICU's en-US
// sorts ';' before ':' and ignores case at first) must change neither.
TEST_P(Memory, ScopesAndKeyOrderFollowTheBytesWhateverTheCollation) {
  auto f = make();
  const std::vector<std::string> all = {"a:x", "a:Y", "a:z", "a;", "a-b", "ab", "A:x", "a", "b:1"};
  for (const std::string& k : all) f.mem.store(k, k);
  auto sorted = all;
  std::sort(sorted.begin(), sorted.end());  // std::string compares bytes (as unsigned char)
  EXPECT_EQ(f.mem.keys(), sorted);
  auto a = f.mem.scope("a");
  EXPECT_EQ(a.keys(), (std::vector<std::string>{"Y", "x", "z"}));
  EXPECT_EQ(a.keys("_"), (std::vector<std::string>{"Y", "x", "z"}));
  EXPECT_EQ(a.size(), 3);
  EXPECT_EQ(a.stats().keys, 3);
  EXPECT_EQ(a.load("Y"), json("a:Y"));
  EXPECT_EQ(a.batch_load({"x", "z", "w"}).size(), 2u);
  EXPECT_EQ(f.mem.scope("A").keys(), std::vector<std::string>{"x"});
  EXPECT_EQ(f.mem.scope("b").size(), 1);
  EXPECT_EQ(a.clear("x"), 1);
  EXPECT_EQ(a.clear(), 2);
  EXPECT_EQ(a.size(), 0);
  EXPECT_EQ(f.mem.keys(), (std::vector<std::string>{"A:x", "a", "a-b", "a;", "ab", "b:1"}));
}

TEST_P(Memory, ScopesDifferingOnlyInCaseAreIsolated) {
  auto f = make();
  auto upper = f.mem.scope("User");
  auto lower = f.mem.scope("user");
  upper.store("k", "upper");
  lower.store("k", "lower");
  lower.store("only-lower", 1);
  EXPECT_EQ(upper.keys(), std::vector<std::string>{"k"});
  EXPECT_EQ(upper.size(), 1);
  EXPECT_EQ(lower.size(), 2);
  EXPECT_EQ(upper.load("k"), json("upper"));
  EXPECT_EQ(upper.clear(), 1);
  EXPECT_EQ(lower.load("k"), json("lower"));
  EXPECT_EQ(lower.size(), 2);
}

ENTITY_CONCURRENT_TEST_P(Memory, AsyncScopesAreIsolated) {
  auto f = make();
  auto odd = f.mem.scope("a%_b");
  auto plain = f.mem.scope("aXYb");
  plain.store("k", 1);
  run_coroutine([&]() -> asio::awaitable<void> {
    co_await odd.async_store("k", json(2), asio::use_awaitable);
    auto keys = co_await odd.async_keys("%", asio::use_awaitable);
    EXPECT_EQ(keys, std::vector<std::string>{"k"});
    EXPECT_EQ(co_await odd.async_size(asio::use_awaitable), 1);
    EXPECT_EQ(co_await odd.async_clear("%", asio::use_awaitable), 1);
  });
  EXPECT_EQ(plain.load("k"), json(1));
}

// ---- async --------------------------------------------------------------------------------

// Every result of one scripted session: run once with the sync calls, once with the async ones.
struct session_results {
  std::vector<std::optional<json>> loads;
  std::vector<bool> flags;
  std::vector<std::vector<std::string>> key_lists;
  std::vector<std::int64_t> counts;
  memory::loaded batch;
  bool operator==(const session_results&) const = default;
};

session_results sync_session(const memory& m) {
  session_results r;
  m.store("a", json{{"x", 1}});
  m.store("b", json::array({1, 2}));
  m.store("tmp:1", "t");
  m.store("tmp:2", "t");
  r.loads.push_back(m.load("a"));
  r.loads.push_back(m.load("missing"));
  r.loads.push_back(m.load("missing", "fallback"));
  r.loads.push_back(m.load("a", "fallback"));
  r.flags.push_back(m.exists("a"));
  r.flags.push_back(m.exists("missing"));
  r.flags.push_back(m.erase("b"));
  r.flags.push_back(m.erase("b"));
  r.key_lists.push_back(m.keys("%"));
  r.key_lists.push_back(m.keys("tmp:%"));
  r.counts.push_back(m.clear("tmp:%"));
  r.counts.push_back(m.size());
  m.batch_store({{"c", 3}, {"d", json{{"y", nullptr}}}});
  r.batch = m.batch_load({"a", "c", "d", "missing"});
  r.counts.push_back(m.size());
  entity::memory_stats st = m.stats();
  r.counts.push_back(st.keys);
  r.counts.push_back(st.value_bytes);
  return r;
}

asio::awaitable<session_results> async_session(memory m) {
  session_results r;
  const auto t = asio::use_awaitable;
  json a = {{"x", 1}}, b = json::array({1, 2}), tmp = "t";
  co_await m.async_store("a", a, t);
  co_await m.async_store("b", b, t);
  co_await m.async_store("tmp:1", tmp, t);
  co_await m.async_store("tmp:2", tmp, t);
  r.loads.push_back(co_await m.async_load("a", t));
  r.loads.push_back(co_await m.async_load("missing", t));
  json fallback = "fallback";
  r.loads.push_back(co_await m.async_load("missing", fallback, t));
  r.loads.push_back(co_await m.async_load("a", fallback, t));
  r.flags.push_back(co_await m.async_exists("a", t));
  r.flags.push_back(co_await m.async_exists("missing", t));
  r.flags.push_back(co_await m.async_erase("b", t));
  r.flags.push_back(co_await m.async_erase("b", t));
  r.key_lists.push_back(co_await m.async_keys("%", t));
  r.key_lists.push_back(co_await m.async_keys("tmp:%", t));
  r.counts.push_back(co_await m.async_clear("tmp:%", t));
  r.counts.push_back(co_await m.async_size(t));
  memory::items items = {{"c", 3}, {"d", json{{"y", nullptr}}}};
  co_await m.async_batch_store(std::move(items), t);
  std::vector<std::string> wanted = {"a", "c", "d", "missing"};
  r.batch = co_await m.async_batch_load(std::move(wanted), t);
  r.counts.push_back(co_await m.async_size(t));
  entity::memory_stats st = co_await m.async_stats(t);
  r.counts.push_back(st.keys);
  r.counts.push_back(st.value_bytes);
  co_return r;
}

ENTITY_CONCURRENT_TEST_P(Memory, AsyncAndSyncGiveTheSameResults) {
  auto f = make();
  session_results from_sync = sync_session(f.mem.scope("sync"));
  session_results from_async;
  run_coroutine([&]() -> asio::awaitable<void> {
    from_async = co_await async_session(f.mem.scope("async"));
  });
  EXPECT_EQ(from_sync.loads, from_async.loads);
  EXPECT_EQ(from_sync.flags, from_async.flags);
  EXPECT_EQ(from_sync.key_lists, from_async.key_lists);
  EXPECT_EQ(from_sync.counts, from_async.counts);
  EXPECT_EQ(from_sync.batch, from_async.batch);
  EXPECT_EQ(from_sync.flags, (std::vector<bool>{true, false, true, false}));
  EXPECT_EQ(from_sync.loads, (std::vector<std::optional<json>>{json{{"x", 1}}, std::nullopt,
                                                               json("fallback"), json{{"x", 1}}}));
  // stats: 3 keys holding {"x":1}, 3 and {"y":null}: 7 + 1 + 10 bytes of JSON text.
  EXPECT_EQ(from_sync.counts, (std::vector<std::int64_t>{2, 1, 3, 3, 18}));
  EXPECT_EQ(from_sync.batch.size(), 3u);
}

ENTITY_CONCURRENT_TEST_P(Memory, AsyncHandlersRunOnTheCallersExecutor) {
  auto f = make();
  asio::io_context io;
  int checked = 0;
  auto here = [&] {
    EXPECT_TRUE(io.get_executor().running_in_this_thread());
    ++checked;
  };
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        const auto t = asio::as_tuple(asio::use_awaitable);
        json one = 1;
        co_await f.mem.async_store("k", one, t), here();
        co_await f.mem.async_store("bad", not_utf8(), t), here();  // fails before the engine
        co_await f.mem.async_load("k", t), here();
        co_await f.mem.async_load("absent", one, t), here();
        co_await f.mem.async_exists("k", t), here();
        co_await f.mem.async_keys("%", t), here();
        co_await f.mem.async_size(t), here();
        co_await f.mem.async_stats(t), here();
        co_await f.mem.async_batch_store(numbered_items(1500), t), here();
        co_await f.mem.async_batch_load(numbered_keys(1500), t), here();
        co_await f.mem.async_batch_load({}, t), here();
        co_await f.mem.async_erase("k", t), here();
        co_await f.mem.async_clear("%", t), here();
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  io.run();
  EXPECT_EQ(checked, 13);
}

ENTITY_CONCURRENT_TEST_P(Memory, AsyncWorksWithFuturesAndPlainCallbacks) {
  auto f = make();
  f.mem.async_store("k", json(5), asio::use_future).get();
  EXPECT_EQ(f.mem.async_load("k", asio::use_future).get(), json(5));
  EXPECT_EQ(f.mem.async_load("missing", asio::use_future).get(), std::nullopt);
  EXPECT_EQ(f.mem.async_load("missing", json(7), asio::use_future).get(), json(7));
  EXPECT_EQ(f.mem.async_stats(asio::use_future).get().keys, 1);
  std::promise<std::pair<entity::error_code, bool>> erased;
  f.mem.async_erase("k", [&](entity::error_code ec, bool existed) {
    erased.set_value({ec, existed});
  });
  auto [ec, existed] = erased.get_future().get();
  EXPECT_FALSE(ec);
  EXPECT_TRUE(existed);
  EXPECT_FALSE(f.mem.async_erase("k", asio::use_future).get());
  EXPECT_THROW(f.mem.async_store("bad", not_utf8(), asio::use_future).get(), std::exception);
}

// asio's rule for every async operation: the handler is never invoked inside the call that
// starts it, even when the outcome is known at once (a value that cannot be JSON, an empty batch).
ENTITY_CONCURRENT_TEST_P(Memory, AsyncHandlersNeverRunInsideTheStartingCall) {
  auto f = make();
  f.mem.store("k", 1);  // the table exists: nothing below needs the engine to start
  asio::io_context io;
  int completed = 0;
  bool started = false;
  asio::post(io, [&] {
    auto check = [&](const char* what) {
      return [&, what](auto&&...) {
        EXPECT_TRUE(started) << what << " completed inside the call that started it";
        ++completed;
      };
    };
    f.mem.async_store("bad", not_utf8(), asio::bind_executor(io, check("store")));
    f.mem.async_batch_store({}, asio::bind_executor(io, check("batch_store")));
    f.mem.async_batch_load({}, asio::bind_executor(io, check("batch_load")));
    f.mem.async_load("k", asio::bind_executor(io, check("load")));
    started = true;
  });
  io.run();
  EXPECT_EQ(completed, 4);
}

// An async call made from a handler that runs on the engine's writer thread, on a memory whose
// table does not exist yet: the first use must not wait on the writer it is running on.
ENTITY_CONCURRENT_TEST_P(Memory, FirstAsyncCallFromAnEngineThreadDoesNotDeadlock) {
  auto f = make();
  std::promise<entity::error_code> stored;
  auto done = stored.get_future();
  memory mem = f.mem;
  f.db.async_execute(
      "CREATE TABLE other (x INTEGER)", {}, [mem, &stored](entity::error_code, entity::result) {
        mem.async_store("k", json(1), [&stored](entity::error_code ec) { stored.set_value(ec); });
      });
  if (done.wait_for(10s) != std::future_status::ready) {
    std::fprintf(stderr, "the store never completed: the writer waits on itself\n");
    std::_Exit(1);  // the engine cannot be shut down from here: its writer is stuck
  }
  EXPECT_FALSE(done.get());
  EXPECT_EQ(f.mem.load("k"), json(1));
}

// ---- concurrency --------------------------------------------------------------------------

ENTITY_CONCURRENT_TEST_P(Memory, ConcurrentAsyncStoresShareGroupCommits) {
  auto f = make();
  constexpr int coroutines = 20, per_coroutine = 200;
  asio::io_context io;
  std::atomic<int> finished{0};
  for (int c = 0; c < coroutines; ++c) {
    asio::co_spawn(
        io,
        [&, c]() -> asio::awaitable<void> {
          for (int i = 0; i < per_coroutine; ++i) {
            json v = {{"c", c}, {"i", i}};
            co_await f.mem.async_store("c" + std::to_string(c) + ":" + std::to_string(i), v,
                                       asio::use_awaitable);
          }
          ++finished;
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
  }
  io.run();
  EXPECT_EQ(finished.load(), coroutines);
  if (on_sqlite()) EXPECT_GT(f.db.stats().group_commits, 0u);  // PostgreSQL: a pool instead
  EXPECT_EQ(f.mem.size(), coroutines * per_coroutine);
  std::vector<std::string> keys;
  for (int c = 0; c < coroutines; ++c)
    for (int i = 0; i < per_coroutine; ++i)
      keys.push_back("c" + std::to_string(c) + ":" + std::to_string(i));
  auto got = f.mem.batch_load(keys);
  ASSERT_EQ(got.size(), keys.size());
  for (int c = 0; c < coroutines; ++c)
    for (int i = 0; i < per_coroutine; ++i)
      ASSERT_EQ(got.at("c" + std::to_string(c) + ":" + std::to_string(i)),
                (json{{"c", c}, {"i", i}}));
}

ENTITY_CONCURRENT_TEST_P(Memory, ViewsMayBeMadeAndUsedFromManyThreads) {
  auto f = make();
  constexpr int threads = 4, per_thread = 300;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&f, t] {
      for (int i = 0; i < per_thread; ++i) {
        // A fresh view every time: making one must not disturb the others in use.
        auto view = f.mem.scope("t" + std::to_string(t));
        view.store(std::to_string(i), i);
        if (view.load(std::to_string(i)) != json(i)) ADD_FAILURE() << t << ":" << i;
      }
    });
  }
  for (auto& w : workers) w.join();
  for (int t = 0; t < threads; ++t)
    EXPECT_EQ(f.mem.scope("t" + std::to_string(t)).size(), per_thread);
}

// ---- SQLite only: the seed's table ------------------------------------------------------

TEST(SqliteMemory, TableIsTheSeedsAndIsCreatedOnFirstUse) {
  sqlite_fixture f;
  EXPECT_EQ(sqlite_text(f.path, "SELECT sql FROM sqlite_schema WHERE name = 'memory'"), "");
  EXPECT_EQ(f.mem.load("anything"), std::nullopt);  // a first use that only reads
  EXPECT_EQ(sqlite_text(f.path, "SELECT sql FROM sqlite_schema WHERE name = 'memory'"),
            "CREATE TABLE memory (key TEXT PRIMARY KEY, value TEXT)");
  // The same through the sqlite3 command-line tool, the way a person would look.
  auto cli = entity::test::run_command(std::string(ENTITY_SQLITE3_CLI) + " " +
                                       entity::test::shell_quote(f.path) + " '.schema memory'");
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  // The table is the seed's; what the memory knows beyond it (times, expiry) lives in
  // memory_meta, which the triggers on memory keep in step with whatever program writes.
  EXPECT_EQ(cli.out.substr(0, cli.out.find('\n') + 1),
            "CREATE TABLE memory (key TEXT PRIMARY KEY, value TEXT);\n");
  std::istringstream rest(cli.out.substr(cli.out.find('\n') + 1));
  for (std::string line; std::getline(rest, line);)
    EXPECT_EQ(line.rfind("CREATE TRIGGER memory_", 0), 0u) << line;
  // Values are JSON text, readable by anything that reads the seed's file.
  f.mem.store("profile", json{{"a", 1}, {"b", {1, 2}}});
  EXPECT_EQ(sqlite_text(f.path, "SELECT typeof(value) FROM memory WHERE key = 'profile'"), "text");
  EXPECT_EQ(json::parse(sqlite_text(f.path, "SELECT value FROM memory WHERE key = 'profile'")),
            (json{{"a", 1}, {"b", {1, 2}}}));
}

TEST(SqliteMemory, OpensAFileWrittenByPython) {
  entity::test::temp_dir dir;
  std::string path = dir.file("python.db");
  // What Python's json.dumps writes: spaces after ':' and ',', non-ASCII escaped.
  sqlite_exec(path,
              "CREATE TABLE memory (key TEXT PRIMARY KEY, value TEXT);"
              "INSERT INTO memory VALUES ('profile', '{\"a\": 1, \"b\": [1, 2]}');"
              "INSERT INTO memory VALUES ('city', '{\"name\": \"Z\\u00fcrich\", \"pop\": 421878}');"
              "INSERT INTO memory VALUES ('list', '[1, 2.5, \"x\", null, true]');"
              "INSERT INTO memory VALUES ('text', '\"hello\"');"
              "INSERT INTO memory VALUES ('n', '42');");
  auto infra = started(path);
  memory mem{entity::database(infra)};
  EXPECT_EQ(mem.load("profile"), (json{{"a", 1}, {"b", {1, 2}}}));
  EXPECT_EQ(mem.load("city"), (json{{"name", "Zürich"}, {"pop", 421878}}));
  EXPECT_EQ(mem.load("list"), json::parse(R"([1, 2.5, "x", null, true])"));
  EXPECT_EQ(mem.load("text"), json("hello"));
  EXPECT_EQ(mem.load("n"), json(42));
  EXPECT_EQ(mem.keys(), (std::vector<std::string>{"city", "list", "n", "profile", "text"}));
  auto many = mem.batch_load({"profile", "n", "absent"});
  EXPECT_EQ(many.size(), 2u);
  EXPECT_EQ(many.at("profile"), (json{{"a", 1}, {"b", {1, 2}}}));
  mem.store("from-cpp", json{{"x", 1}});
  EXPECT_EQ(mem.size(), 6);
}

// The other direction, with Python itself: its sqlite3 and json modules read what this memory
// wrote, with the seed's schema, and what Python writes back with json.dumps loads here.
TEST(SqliteMemory, FileWrittenHereOpensInPython) {
  sqlite_fixture f;
  f.mem.store("profile", json{{"a", 1}, {"b", {1, 2}}});
  f.mem.store("city", json{{"name", "Zürich"}, {"pop", 421878}});
  f.mem.scope("user-42").store("likes", json::array({"tea", nullptr, 2.5}));
  const std::string script = R"py(import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
print(db.execute("SELECT sql FROM sqlite_master WHERE name = 'memory'").fetchone()[0])
for key, value in db.execute("SELECT key, value FROM memory ORDER BY key"):
    print(key, json.dumps(json.loads(value), sort_keys=True))
db.execute("INSERT INTO memory VALUES (?, ?)", ("from-python", json.dumps({"ok": True, "n": [1, 2]})))
db.commit()
)py";
  auto py = entity::test::run_command("python3 - " + entity::test::shell_quote(f.path), script);
  ASSERT_EQ(py.exit_code, 0) << py.err;
  EXPECT_EQ(py.out,
            "CREATE TABLE memory (key TEXT PRIMARY KEY, value TEXT)\n"
            "city {\"name\": \"Z\\u00fcrich\", \"pop\": 421878}\n"
            "profile {\"a\": 1, \"b\": [1, 2]}\n"
            "user-42:likes [\"tea\", null, 2.5]\n");
  EXPECT_EQ(f.mem.load("from-python"), (json{{"ok", true}, {"n", {1, 2}}}));
}

}  // namespace
