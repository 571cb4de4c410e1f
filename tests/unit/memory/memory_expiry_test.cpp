// Expiry and item times on every backend, on a clock the test sets (memory_params::clock): an
// expired item is invisible to every read at once, swept or not; sweeps delete in bounded
// batches; times are kept across replaces; scopes list what they hold.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backends.hpp"
#include "entity/entity.hpp"
#include "library_support.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using entity::errc;
using entity::json;
using entity::memory;
using entity::memory_params;
using entity::memory_time;

// A clock the test moves by hand.
struct test_clock {
  std::shared_ptr<std::atomic<std::int64_t>> ms =
      std::make_shared<std::atomic<std::int64_t>>(1'700'000'000'000);
  void advance(std::chrono::milliseconds d) { *ms += d.count(); }
  memory_time now() const { return memory_time(std::chrono::milliseconds(ms->load())); }
  std::function<memory_time()> source() const {
    return [ms = ms] { return memory_time(std::chrono::milliseconds(ms->load())); };
  }
};

class MemoryExpiry : public entity::test::backend_test {
 protected:
  memory make(memory_params p = {}) {
    p.clock = clock.source();
    if (!db_) db_ = open();
    return memory(*db_, std::move(p));
  }
  const entity::database& db() const { return *db_; }
  test_clock clock;
  std::optional<entity::database> db_;
};
ENTITY_INSTANTIATE_ON_EVERY_BACKEND(MemoryExpiry);

TEST_P(MemoryExpiry, AnExpiredItemIsInvisibleToEveryReadAtOnce) {
  memory mem = make();
  mem.store("short", json{{"note", "milk"}}, 10s);
  mem.store("forever", json{{"note", "name"}});
  clock.advance(9999ms);
  EXPECT_EQ(mem.load("short"), (json{{"note", "milk"}}));  // 1 ms left
  EXPECT_TRUE(mem.exists("short"));
  clock.advance(1ms);  // exactly at the expiry: gone
  EXPECT_EQ(mem.load("short"), std::nullopt);
  EXPECT_EQ(mem.load("short", json("default")), json("default"));
  EXPECT_FALSE(mem.exists("short"));
  EXPECT_EQ(mem.load_item("short"), std::nullopt);
  EXPECT_EQ(mem.keys(), (std::vector<std::string>{"forever"}));
  EXPECT_EQ(mem.size(), 1);
  EXPECT_EQ(mem.stats().keys, 1);
  EXPECT_EQ(mem.batch_load({"short", "forever"}).size(), 1u);
  entity::search_query q;
  q.filter = json{{"note", "milk"}};
  EXPECT_TRUE(mem.search(q).empty());
  q.filter = json::object();
  q.text = "milk";
  EXPECT_TRUE(mem.search(q).empty());
  // Erasing or clearing what is already gone takes nothing.
  EXPECT_FALSE(mem.erase("short"));
  EXPECT_EQ(mem.clear(), 1);  // "forever"
  EXPECT_EQ(mem.size(), 0);
}

TEST_P(MemoryExpiry, TheDefaultTtlAppliesToItemsStoredWithoutOne) {
  memory_params p;
  p.default_ttl = 1min;
  memory mem = make(p);
  mem.store("a", 1);
  mem.store("b", 2, memory::no_expiry);  // never, whatever the default
  mem.store("c", 3, 2min);
  mem.batch_store({{"d", 4}, {"e", 5}});
  mem.batch_store({{"f", 6}}, 10min);
  clock.advance(1min);
  EXPECT_EQ(mem.keys(), (std::vector<std::string>{"b", "c", "f"}));
  clock.advance(1min);
  EXPECT_EQ(mem.keys(), (std::vector<std::string>{"b", "f"}));
  clock.advance(1000h);
  EXPECT_EQ(mem.keys(), (std::vector<std::string>{"b"}));
}

TEST_P(MemoryExpiry, ADefaultOfNoExpiryMeansNever) {
  memory_params p;
  p.default_ttl = memory::no_expiry;
  memory mem = make(p);
  mem.store("a", 1);
  mem.batch_store({{"b", 2}});
  clock.advance(100'000h);
  EXPECT_EQ(mem.keys(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(mem.load_item("a")->expires, std::nullopt);
}

TEST_P(MemoryExpiry, StoringAgainReplacesTheTimeToLive) {
  memory mem = make();
  mem.store("k", 1, 10s);
  clock.advance(5s);
  mem.store("k", 2);  // no ttl now: it stays
  clock.advance(1h);
  EXPECT_EQ(mem.load("k"), json(2));
  mem.store("k", 3, 1s);
  clock.advance(1s);
  EXPECT_EQ(mem.load("k"), std::nullopt);
}

TEST_P(MemoryExpiry, ItemsKnowWhenTheyWereCreatedAndUpdated) {
  memory mem = make();
  const memory_time t0 = clock.now();
  mem.store("k", 1, 1h);
  clock.advance(30s);
  mem.store("k", 2, 1h);
  auto item = mem.load_item("k");
  ASSERT_TRUE(item);
  EXPECT_EQ(item->key, "k");
  EXPECT_EQ(item->value, json(2));
  EXPECT_EQ(item->created, t0);
  EXPECT_EQ(item->updated, t0 + 30s);
  EXPECT_EQ(item->expires, t0 + 30s + 1h);
  // Expired and stored again, it is a new item.
  clock.advance(2h);
  mem.store("k", 3);
  item = mem.load_item("k");
  ASSERT_TRUE(item);
  EXPECT_EQ(item->created, t0 + 30s + 2h);
  EXPECT_EQ(item->expires, std::nullopt);
  EXPECT_EQ(mem.load_item("absent"), std::nullopt);
}

TEST_P(MemoryExpiry, ARestoreGivesBackItemsAsTheyWere) {
  memory_params p;
  p.refresh_on_read = true;
  memory mem = make(p);
  const memory_time t0 = clock.now();
  mem.store("kept", json{{"a", 1}});
  clock.advance(1min);
  mem.store("kept", json{{"a", 2}});
  mem.scope("s").store("short", "milk", 1h);
  std::vector<entity::memory_item> backup;
  for (const char* key : {"kept", "s:short"}) backup.push_back(*mem.load_item(key));
  EXPECT_EQ(backup[1].ttl, std::chrono::milliseconds(1h));
  EXPECT_EQ(backup[0].ttl, std::nullopt);
  EXPECT_EQ(mem.clear(), 2);
  clock.advance(10min);
  mem.restore(backup);
  for (const entity::memory_item& was : backup) {
    auto now = mem.load_item(was.key);
    ASSERT_TRUE(now) << was.key;
    EXPECT_EQ(now->value, was.value);
    EXPECT_EQ(now->created, was.created) << was.key;
    EXPECT_EQ(now->updated, was.updated) << was.key;
    // Read with refresh_on_read: the expiry starts again from now, as it would have.
    EXPECT_EQ(now->ttl, was.ttl) << was.key;
  }
  EXPECT_EQ(mem.load_item("kept")->created, t0);
  EXPECT_EQ(mem.load_item("kept")->updated, t0 + 1min);
  EXPECT_EQ(mem.load_item("s:short")->expires, clock.now() + 1h);
  // Into a scope: the keys are the scope's.
  memory other = mem.scope("other");
  other.restore({backup[0]});
  EXPECT_EQ(other.load_item("kept")->created, t0);
}

TEST_P(MemoryExpiry, ARestoredTimeNotGivenIsWhatAStoreWouldGive) {
  memory mem = make();
  const memory_time t0 = clock.now();
  mem.store("existing", 1);
  clock.advance(1h);
  entity::memory_item a;
  a.key = "existing";
  a.value = 2;
  entity::memory_item b;
  b.key = "fresh";
  b.value = 3;
  b.ttl = 10s;  // no expiry given: ten seconds from now
  entity::memory_item c;
  c.key = "deadline";
  c.value = 4;
  c.expires = clock.now() + 5s;  // an expiry without a ttl: a fixed deadline
  mem.restore({a, b, c});
  auto item = mem.load_item("existing");
  EXPECT_EQ(item->created, t0) << "a live item keeps its creation, as with store()";
  EXPECT_EQ(item->updated, t0 + 1h);
  EXPECT_EQ(item->expires, std::nullopt);
  item = mem.load_item("fresh");
  EXPECT_EQ(item->created, t0 + 1h);
  EXPECT_EQ(item->expires, t0 + 1h + 10s);
  EXPECT_EQ(item->ttl, std::chrono::milliseconds(10s));
  item = mem.load_item("deadline");
  EXPECT_EQ(item->expires, t0 + 1h + 5s);
  EXPECT_EQ(item->ttl, std::nullopt);
  clock.advance(5s);
  EXPECT_EQ(mem.keys(), (std::vector<std::string>{"existing", "fresh"}));
  // An expiry already past: stored, and no read sees it.
  entity::memory_item gone;
  gone.key = "gone";
  gone.value = 5;
  gone.expires = clock.now() - 1ms;
  mem.restore({gone});
  EXPECT_EQ(mem.load("gone"), std::nullopt);
  EXPECT_EQ(mem.keys(), (std::vector<std::string>{"existing", "fresh"}));
  // The later of a key given twice wins.
  a.value = "first";
  b.key = "existing";
  b.value = "second";
  mem.restore({a, b});
  EXPECT_EQ(mem.load("existing"), json("second"));
  EXPECT_EQ(mem.load_item("existing")->ttl, std::chrono::milliseconds(10s));
}

TEST_P(MemoryExpiry, ARestoreIsAllOrNothing) {
  memory mem = make();
  mem.store("k", "before");
  entity::memory_item good;
  good.key = "k";
  good.value = "after";
  entity::memory_item bad_ttl = good;
  bad_ttl.key = "other";
  bad_ttl.ttl = 0ms;
  auto code = [](auto&& f) { return entity::test::error_of(f).code(); };
  EXPECT_EQ(code([&] { mem.restore({good, bad_ttl}); }), errc::invalid_argument);
  entity::memory_item bad_key = good;
  bad_key.key = std::string("\xff", 1);
  EXPECT_EQ(code([&] { mem.restore({good, bad_key}); }), errc::invalid_argument);
  entity::memory_item bad_value = good;
  bad_value.key = "nan";
  bad_value.value = std::nan("");
  EXPECT_EQ(code([&] { mem.restore({good, bad_value}); }), errc::invalid_argument);
  EXPECT_EQ(mem.load("k"), json("before"));
  EXPECT_EQ(mem.keys(), (std::vector<std::string>{"k"}));
  mem.restore({});  // nothing to do
  EXPECT_EQ(mem.size(), 1);
}

TEST_P(MemoryExpiry, ARestoredKeyLosesItsEmbeddingAsAStoreWould) {
  memory mem = make();
  mem.store("k", "with", std::vector<float>{1, 0});
  mem.store("other", "kept", std::vector<float>{0, 1});
  ASSERT_EQ(mem.recall({1, 0}, 2).size(), 2u);
  entity::memory_item item;
  item.key = "k";
  item.value = "without";
  mem.restore({item});
  auto found = mem.recall({1, 0}, 2);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].key, "other");
}

TEST_P(MemoryExpiry, TheAsyncRestore) {
  memory mem = make();
  entity::memory_item item;
  item.key = "k";
  item.value = 1;
  item.created = clock.now() - 1h;
  mem.async_restore({item}, asio::use_future).get();
  EXPECT_EQ(mem.load_item("k")->created, clock.now() - 1h);
  item.ttl = 0ms;
  entity::diagnostics diag;
  auto failed = mem.async_restore({item}, diag, asio::use_future);
  EXPECT_THROW(failed.get(), boost::system::system_error);
  EXPECT_FALSE(diag.message.empty());
}

TEST_P(MemoryExpiry, KeysAndSearchFilterOnTimes) {
  memory mem = make();
  const memory_time t0 = clock.now();
  mem.store("old", json{{"n", 1}});
  clock.advance(1h);
  mem.store("new", json{{"n", 2}});
  clock.advance(1h);
  mem.store("old", json{{"n", 3}});  // updated late, created early
  entity::time_window w;
  w.created_after = t0 + 30min;
  EXPECT_EQ(mem.keys("%", w), (std::vector<std::string>{"new"}));
  w = {};
  w.updated_after = t0 + 90min;
  EXPECT_EQ(mem.keys("%", w), (std::vector<std::string>{"old"}));
  w = {};
  w.created_before = t0 + 1h;  // strictly before
  EXPECT_EQ(mem.keys("%", w), (std::vector<std::string>{"old"}));
  entity::search_query q;
  q.times.created_after = t0;
  q.times.updated_before = t0 + 2h;
  auto hits = mem.search(q);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].key, "new");
  EXPECT_EQ(hits[0].created, t0 + 1h);
  EXPECT_EQ(hits[0].updated, t0 + 1h);
}

TEST_P(MemoryExpiry, RefreshOnReadStartsTheTimeToLiveAgain) {
  memory_params p;
  p.refresh_on_read = true;
  memory mem = make(p);
  mem.store("a", 1, 10s);
  mem.store("b", 2, 10s);
  mem.store("c", json{{"w", "apple"}}, 10s);
  mem.store("keep", 0);
  for (int i = 0; i < 3; ++i) {
    clock.advance(8s);
    EXPECT_EQ(mem.load("a"), json(1));
    EXPECT_EQ(mem.batch_load({"b"}).size(), 1u);
    entity::search_query q;
    q.filter = json{{"w", "apple"}};
    EXPECT_EQ(mem.search(q).size(), 1u);
  }
  auto item = mem.load_item("a");
  ASSERT_TRUE(item);
  EXPECT_EQ(item->expires, clock.now() + 10s);
  clock.advance(11s);
  EXPECT_EQ(mem.keys(), (std::vector<std::string>{"keep"}));
}

TEST_P(MemoryExpiry, WithoutRefreshOnReadReadsDoNotExtend) {
  memory mem = make();
  mem.store("a", 1, 10s);
  clock.advance(8s);
  EXPECT_EQ(mem.load("a"), json(1));
  clock.advance(2s);
  EXPECT_EQ(mem.load("a"), std::nullopt);
}

TEST_P(MemoryExpiry, SweepDeletesExpiredItemsInBoundedBatches) {
  memory_params p;
  p.sweep_batch = 100;
  p.sweep_interval = 0ms;  // only on demand
  memory mem = make(p);
  memory::items soon, later;
  for (int i = 0; i < 1050; ++i) soon.emplace_back("s" + std::to_string(i), i);
  for (int i = 0; i < 20; ++i) later.emplace_back("l" + std::to_string(i), i);
  mem.batch_store(soon, 1min);
  mem.batch_store(later, 1h);
  mem.store("kept", 1);
  EXPECT_EQ(mem.sweep(), 0);  // nothing expired yet
  clock.advance(1min);
  const auto before = db().stats().operations;
  EXPECT_EQ(mem.sweep(), 1050);
  // 11 batches of at most 100, one transaction each (each counted once by the engine).
  EXPECT_EQ(db().stats().operations - before, 11u);
  EXPECT_EQ(mem.sweep(), 0);
  EXPECT_EQ(mem.size(), 21);
  // The rows are gone from the table itself, not only hidden.
  EXPECT_EQ(db().fetch_one("SELECT count(*) FROM memory")->get<std::int64_t>(0), 21);
  EXPECT_EQ(db().fetch_one("SELECT count(*) FROM memory_meta WHERE expires_ms IS NOT NULL")
                ->get<std::int64_t>(0),
            20);
}

TEST_P(MemoryExpiry, AnOperationStartsTheBackgroundSweepOncePerInterval) {
  memory_params p;
  p.sweep_interval = 1ms;
  memory mem = make(p);
  memory::items items;
  for (int i = 0; i < 30; ++i) items.emplace_back("k" + std::to_string(i), i);
  mem.batch_store(items, 1s);
  mem.store("kept", 1);
  clock.advance(1s);
  auto rows = [&] { return db().fetch_one("SELECT count(*) FROM memory")->get<std::int64_t>(0); };
  EXPECT_EQ(rows(), 31);  // expired, invisible, not yet deleted
  // Nothing but operations of the memory: once the interval has passed, one starts a sweep
  // that nobody waits for.
  for (int i = 0; i < 2000 && rows() != 1; ++i) {
    std::this_thread::sleep_for(2ms);
    EXPECT_EQ(mem.size(), 1);
  }
  EXPECT_EQ(rows(), 1);
  EXPECT_EQ(mem.keys(), (std::vector<std::string>{"kept"}));
}

TEST_P(MemoryExpiry, AScopeSweepsOnlyItsOwnItems) {
  memory_params p;
  p.sweep_interval = 0ms;
  memory mem = make(p);
  mem.scope("a").store("x", 1, 1s);
  mem.scope("a_").store("x", 1, 1s);  // '_' is a plain character
  mem.scope("b").store("x", 1, 1s);
  mem.store("a:y", 1, 1s);  // the same key as a's "y": in scope a
  clock.advance(1s);
  EXPECT_EQ(mem.scope("a").sweep(), 2);
  EXPECT_EQ(db().fetch_one("SELECT count(*) FROM memory")->get<std::int64_t>(0), 2);
  EXPECT_EQ(mem.sweep(), 2);
}

TEST_P(MemoryExpiry, TheSweepFindsItsBatchThroughTheExpiryIndex) {
  memory mem = make();
  mem.store("k", 1);
  auto plan = [&](const std::string& sql) {
    std::string out;
    const bool pg = db().dialect() == entity::sql_dialect::postgresql;
    if (pg) db().execute("SET enable_seqscan = off");
    for (const auto& r : db().fetch_all((pg ? "EXPLAIN " : "EXPLAIN QUERY PLAN ") + sql,
                                        {std::int64_t{1}, std::int64_t{10}}))
      out += r[r.size() - 1].as_text() + "\n";
    return out;
  };
  const std::string p =
      plan("SELECT key FROM memory_meta WHERE expires_ms <= ? ORDER BY expires_ms LIMIT ?");
  EXPECT_NE(p.find("memory_meta_expiry"), std::string::npos) << p;
}

TEST_P(MemoryExpiry, ABadTimeToLiveIsRefusedAndNothingIsWritten) {
  memory mem = make();
  auto code = [](auto&& f) { return entity::test::error_of(f).code(); };
  EXPECT_EQ(code([&] { mem.store("k", 1, 0ms); }), errc::invalid_argument);
  EXPECT_EQ(code([&] { mem.store("k", 1, -5s); }), errc::invalid_argument);
  EXPECT_EQ(code([&] { mem.batch_store({{"k", 1}}, 0ms); }), errc::invalid_argument);
  EXPECT_EQ(code([&] {
              mem.store("k", 1, std::vector<float>{1, 0}, -1ms);
            }),
            errc::invalid_argument);
  EXPECT_EQ(mem.size(), 0);
  memory_params p;
  p.default_ttl = 0ms;
  EXPECT_EQ(code([&] { make(p); }), errc::invalid_argument);
  p.default_ttl = std::chrono::hours(24 * 366 * 10'001);  // past 10,000 years
  EXPECT_EQ(code([&] { make(p); }), errc::invalid_argument);
  p = {};
  p.sweep_batch = 0;
  EXPECT_EQ(code([&] { make(p); }), errc::invalid_argument);
  p = {};
  p.text_fields = {"a b"};
  EXPECT_EQ(code([&] { make(p); }), errc::invalid_argument);
}

TEST_P(MemoryExpiry, TheAsyncFormsTakeATimeToLiveToo) {
  memory mem = make();
  auto stored = mem.async_store("a", 1, 5s, asio::use_future);
  auto batch = mem.async_batch_store({{"b", 2}}, 5s, asio::use_future);
  stored.get();
  batch.get();
  auto item = mem.async_load_item("a", asio::use_future);
  auto got = item.get();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->expires, clock.now() + 5s);
  clock.advance(5s);
  auto swept = mem.async_sweep(asio::use_future);
  auto scopes = mem.async_scopes("", 1, asio::use_future);
  EXPECT_EQ(swept.get(), 2);
  EXPECT_TRUE(scopes.get().empty());
}

// ---- scopes --------------------------------------------------------------------------------

TEST_P(MemoryExpiry, ScopesListsTheScopesThatHoldItems) {
  memory mem = make();
  mem.store("top", 1);  // in no scope
  mem.scope("user-42").store("name", "Ada");
  mem.scope("user-42").scope("session-7").store("turn", 1);
  mem.scope("user-42").scope("session-8").store("turn", 2);
  mem.scope("user-4").store("name", "Bo");
  mem.scope("o'brien %_\"x").store("k", 1);
  mem.scope("gone").store("k", 1, 1s);
  clock.advance(1s);  // an expired item holds no scope
  EXPECT_EQ(mem.scopes(), (std::vector<std::string>{"o'brien %_\"x", "user-4", "user-42",
                                                    "user-42:session-7", "user-42:session-8"}));
  EXPECT_EQ(mem.scopes("", 1), (std::vector<std::string>{"o'brien %_\"x", "user-4", "user-42"}));
  EXPECT_EQ(mem.scopes("user-42"),
            (std::vector<std::string>{"user-42", "user-42:session-7", "user-42:session-8"}));
  EXPECT_EQ(mem.scopes("user-42:session-7"), (std::vector<std::string>{"user-42:session-7"}));
  EXPECT_TRUE(mem.scopes("user").empty());  // whole names only
  // From a scope, relative to it.
  EXPECT_EQ(mem.scope("user-42").scopes(), (std::vector<std::string>{"session-7", "session-8"}));
  EXPECT_THROW(mem.scopes("", 0), entity::error);
}

}  // namespace
