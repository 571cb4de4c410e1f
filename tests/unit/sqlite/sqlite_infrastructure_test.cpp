// Layer 1: the SQLite engine. Lifecycle, the reader pool, deadlines, the writer queue with group
// commit, shutdown, and what WAL promises. Every test opens its own database.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <entity/entity.hpp>
#include <filesystem>
#include <future>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "concurrency.hpp"
#include "library_support.hpp"
#include "test_support.hpp"
#include "writer_blocker.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using entity::errc;
using entity::error_code;
using steady = std::chrono::steady_clock;

namespace {

// Counts to ten billion: hours of work unless the deadline really stops it.
const std::string runaway_cte =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 10000000000) "
    "SELECT count(*) FROM c";

using entity::test::count_rows;
using entity::test::run_coroutine;
using entity::test::started;

// Ends the process when a test hangs: a deadlock or a query that was never interrupted fails
// the test in seconds instead of holding the run until ctest's own timeout.
class watchdog {
 public:
  explicit watchdog(std::chrono::seconds limit) : thread_([this, limit] { watch(limit); }) {}
  ~watchdog() {
    {
      std::lock_guard lk(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void watch(std::chrono::seconds limit) {
    std::unique_lock lk(mu_);
    if (!cv_.wait_for(lk, limit, [&] { return done_; })) {
      std::fprintf(stderr, "watchdog: %s did not finish within %lld s\n",
                   ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                   static_cast<long long>(limit.count()));
      std::fflush(stderr);
      std::_Exit(1);
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// Collects the outcomes of async operations completed by plain callbacks on worker threads.
struct outcomes {
  explicit outcomes(std::size_t n) : ecs(n), left(static_cast<std::ptrdiff_t>(n)) {}
  auto callback(std::size_t i) {
    return [this, i](error_code ec, auto&&...) {
      ecs[i] = ec;
      left.count_down();
    };
  }
  std::vector<error_code> ecs;
  std::latch left;
};

}  // namespace

// ---- lifecycle -------------------------------------------------------------------------------

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, StartupAndShutdown) {
  entity::sqlite_infrastructure infra;
  EXPECT_FALSE(infra.running());
  infra.startup();
  EXPECT_TRUE(infra.running());
  infra.startup();  // a second startup() of a running engine changes nothing
  EXPECT_TRUE(infra.running());
  EXPECT_EQ(infra.backend_name(), "sqlite");
  infra.shutdown();
  EXPECT_FALSE(infra.running());
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, ShutdownIsIdempotent) {
  auto infra = started();
  entity::database db(infra);
  db.execute("CREATE TABLE t (a)");
  infra->shutdown();
  infra->shutdown();
  EXPECT_FALSE(infra->running());
  entity::sqlite_infrastructure never_started;
  never_started.shutdown();
  never_started.shutdown();
}

TEST(SqliteInfrastructure, UseBeforeStartupFailsWithNotStarted) {
  auto infra = std::make_shared<entity::sqlite_infrastructure>();
  entity::database db(infra);
  try {
    db.execute("SELECT 1");
    FAIL() << "execute before startup() succeeded";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), errc::not_started);
    EXPECT_NE(std::string(e.what()).find("startup()"), std::string::npos) << e.what();
  }
  error_code ec;
  entity::diagnostics diag;
  db.execute("INSERT INTO t VALUES (1)", {}, ec, diag);
  EXPECT_EQ(ec, errc::not_started);
  EXPECT_NE(diag.message.find("startup()"), std::string::npos) << diag.message;

  error_code async_ec;
  db.async_fetch_one("SELECT 1", {},
                     [&](error_code e, std::optional<entity::row>) { async_ec = e; });
  EXPECT_EQ(async_ec, errc::not_started);
  run_coroutine([&]() -> asio::awaitable<void> {  // completes before the coroutine suspends
    auto [ec, r] = co_await db.async_execute("SELECT 1", {}, asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(ec, errc::not_started);
  });
  try {
    db.acquire(10ms);
    FAIL() << "acquire before startup() succeeded";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), errc::not_started);
  }
  EXPECT_FALSE(db.health_check());
}

TEST(SqliteInfrastructure, AJournalModeChangeIsRefusedAtOnceWithTheReason) {
  entity::test::temp_dir dir;
  entity::sqlite_params p;
  p.path = dir.file("journal.db");
  // Waiting for the file to itself would last until the deadline: this one.
  p.query_timeout = 20s;
  auto infra = started(p);
  entity::database db(infra);
  db.execute("CREATE TABLE t (x)");
  auto start = std::chrono::steady_clock::now();
  for (const char* sql : {"PRAGMA journal_mode=DELETE", "pragma main.journal_mode = 'truncate'"}) {
    error_code ec;
    entity::diagnostics diag;
    db.execute(sql, {}, ec, diag);
    EXPECT_EQ(ec, errc::invalid_argument) << sql << ": " << diag.to_string();
    EXPECT_NE(diag.message.find("journal mode cannot change while the database is open"),
              std::string::npos)
        << diag.message;
    EXPECT_NE(diag.message.find("'wal'"), std::string::npos) << diag.message;
  }
  run_coroutine([&]() -> asio::awaitable<void> {
    auto [ec, r] = co_await db.async_execute("PRAGMA journal_mode=OFF", {},
                                             asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(ec, errc::invalid_argument);
  });
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);  // refused, not waited out
  // Reading the mode, or asking for the one it has, is no change.
  EXPECT_EQ(db.fetch_one("PRAGMA journal_mode")->get<std::string>(0), "wal");
  EXPECT_EQ(db.fetch_one("PRAGMA journal_mode = WAL")->get<std::string>(0), "wal");
  db.execute("INSERT INTO t VALUES (1)");
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM t")->get<int>(0), 1);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, UseAfterShutdownFailsWithShutDown) {
  auto infra = started();
  entity::database db(infra);
  db.execute("CREATE TABLE t (a)");
  infra->shutdown();
  try {
    db.execute("INSERT INTO t VALUES (1)");
    FAIL() << "execute after shutdown() succeeded";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), errc::shut_down);
    EXPECT_NE(std::string(e.what()).find("shut down"), std::string::npos) << e.what();
  }
  error_code ec;
  entity::diagnostics diag;
  db.fetch_all("SELECT * FROM t", {}, ec, diag);
  EXPECT_EQ(ec, errc::shut_down);
  error_code async_ec;
  db.async_execute("INSERT INTO t VALUES (1)", {},
                   [&](error_code e, entity::result) { async_ec = e; });
  EXPECT_EQ(async_ec, errc::shut_down);
  try {
    db.acquire(10ms);
    FAIL() << "acquire after shutdown() succeeded";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), errc::shut_down);
  }
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, CannotStartAgainAfterShutdown) {
  auto infra = started();
  infra->shutdown();
  try {
    infra->startup();
    FAIL() << "startup() after shutdown() succeeded";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), errc::shut_down);
  }
}

TEST(SqliteInfrastructure, StartupCreatesMissingParentFolders) {
  entity::test::temp_dir dir;
  std::string path = dir.file("a/b/c/agent.db");
  ASSERT_FALSE(std::filesystem::exists(dir.path() / "a"));
  entity::sqlite_params p;
  p.path = path;
  auto infra = started(p);
  entity::database db(infra);
  db.execute("CREATE TABLE t (a)");
  db.execute("INSERT INTO t VALUES (?)", {7});
  EXPECT_EQ(db.fetch_one("SELECT a FROM t")->get<int>(0), 7);
  infra->shutdown();
  EXPECT_TRUE(std::filesystem::is_regular_file(path));

  // The same file opens again with its data.
  auto again = started(p);
  EXPECT_EQ(count_rows(entity::database(again), "t"), 1);
}

TEST(SqliteInfrastructure, StartupRejectsAFileThatIsNotADatabase) {
  entity::test::temp_dir dir;
  std::string path = dir.file("notes.txt");
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::string junk(8192, 'x');
    std::fwrite(junk.data(), 1, junk.size(), f);
    std::fclose(f);
  }
  entity::sqlite_params p;
  p.path = path;
  entity::sqlite_infrastructure infra(p);
  try {
    infra.startup();
    FAIL() << "startup() on a text file succeeded";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), entity::condition::io);
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_FALSE(infra.running());
}

TEST(SqliteInfrastructure, MakeInfrastructureChoosesTheBackend) {
  entity::test::temp_dir dir;
  for (std::string url : {std::string(":memory:"), "sqlite:" + dir.file("a.db"),
                          "sqlite://" + dir.file("b.db"), dir.file("c.db")}) {
    auto infra = entity::make_infrastructure(url);
    ASSERT_TRUE(infra) << url;
    EXPECT_EQ(infra->backend_name(), "sqlite");
    EXPECT_FALSE(infra->running());
    infra->startup();
    EXPECT_TRUE(entity::database(infra).health_check()) << url;
    infra->shutdown();
  }
  EXPECT_TRUE(std::filesystem::exists(dir.file("a.db")));
  EXPECT_TRUE(std::filesystem::exists(dir.file("b.db")));
  EXPECT_EQ(entity::parse_target("sqlite:///abs/x.db").location, "/abs/x.db");
  EXPECT_EQ(entity::parse_target("sqlite:rel/x.db").location, "rel/x.db");
  EXPECT_FALSE(entity::parse_target("rel/x.db").postgres);
  EXPECT_TRUE(entity::parse_target("postgres://u@h/db").postgres);
  EXPECT_EQ(entity::parse_target("postgresql://u@h/db").location, "postgresql://u@h/db");
  try {
    entity::make_infrastructure("sqlite:");
    FAIL() << "an empty path was accepted";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), errc::invalid_argument);
  }
}

TEST(SqliteInfrastructure, DefaultsAreTheDocumentedOnes) {
  const entity::sqlite_params d;
  EXPECT_EQ(d.path, ":memory:");
  EXPECT_EQ(d.pool_size, 5u);
  EXPECT_EQ(d.min_connections, 2u);
  EXPECT_EQ(d.query_timeout, 30s);
  EXPECT_EQ(d.acquire_timeout, 5s);
  EXPECT_EQ(d.busy_timeout, 5s);
  EXPECT_EQ(d.journal, entity::journal_mode::wal);
  EXPECT_EQ(d.synchronous, entity::synchronous_mode::normal);
  EXPECT_EQ(d.temp_store, entity::temp_store_mode::memory);
  EXPECT_EQ(d.mmap_size, 256LL * 1024 * 1024);
  EXPECT_EQ(d.statement_cache_size, 64u);
  EXPECT_EQ(d.max_group_size, 256u);
  EXPECT_EQ(d.inline_budget, 250us);

  // What the connections really run with. PRAGMAs are per connection: read them on the
  // engine's own, a reader (a lease) and the writer (a transaction body). busy_timeout is not
  // SQLite's PRAGMA (the engine's own busy handler waits, bounded by deadlines too): the
  // Interop tests show what it does.
  struct settings {
    std::string journal;
    std::int64_t synchronous = -1, temp_store = -1, mmap_size = -1;
  };
  auto read_settings = [](entity::session& s) {
    settings got;
    got.journal = s.fetch_one("PRAGMA journal_mode")->get<std::string>(0);
    got.synchronous = s.fetch_one("PRAGMA synchronous")->get<std::int64_t>(0);
    got.temp_store = s.fetch_one("PRAGMA temp_store")->get<std::int64_t>(0);
    got.mmap_size = s.fetch_one("PRAGMA mmap_size")->get<std::int64_t>(0);
    return got;
  };
  auto on_reader_and_writer = [&](const entity::database& db) {
    std::vector<settings> both{read_settings(*db.acquire())};
    db.transaction([&](entity::session& s) { both.push_back(read_settings(s)); });
    return both;
  };

  entity::test::temp_dir dir;
  entity::sqlite_params p;
  p.path = dir.file("defaults.db");
  auto infra = started(p);
  entity::database db(infra);
  EXPECT_EQ(db.stats().open_connections, 2u);  // min_connections: the writer and one reader
  for (const settings& s : on_reader_and_writer(db)) {
    EXPECT_EQ(s.journal, "wal");
    EXPECT_EQ(s.synchronous, 1);  // NORMAL
    EXPECT_EQ(s.temp_store, 2);   // MEMORY
    EXPECT_EQ(s.mmap_size, 268435456);
  }
  infra->shutdown();

  // The durable mode differs in synchronous alone.
  auto durable = started(entity::sqlite_params::durable(dir.file("durable.db")));
  for (const settings& s : on_reader_and_writer(entity::database(durable))) {
    EXPECT_EQ(s.journal, "wal");
    EXPECT_EQ(s.synchronous, 2);  // FULL
    EXPECT_EQ(s.temp_store, 2);
    EXPECT_EQ(s.mmap_size, 268435456);
  }
}

// ---- the reader pool -------------------------------------------------------------------------

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, PoolStatsCountConnections) {
  entity::sqlite_params p;
  p.pool_size = 3;
  p.min_connections = 2;
  auto infra = started(p);
  entity::database db(infra);
  auto s = db.stats();
  EXPECT_EQ(s.pool_size, 4u);  // three readers and the writer
  EXPECT_EQ(s.open_connections, 2u);
  EXPECT_EQ(s.idle_connections, 2u);
  EXPECT_EQ(s.busy_connections, 0u);
  EXPECT_EQ(s.queued_operations, 0u);
  {
    auto a = db.acquire();
    auto b = db.acquire();  // opens a second reader
    s = db.stats();
    EXPECT_EQ(s.open_connections, 3u);
    EXPECT_EQ(s.busy_connections, 2u);
    EXPECT_EQ(s.idle_connections, 1u);
  }
  s = db.stats();
  EXPECT_EQ(s.open_connections, 3u);
  EXPECT_EQ(s.busy_connections, 0u);
  EXPECT_EQ(s.idle_connections, 3u);
}

// stats() may be called from another thread while the engine starts (a monitor polling from
// the start): startup pools its first readers under the pool's lock. Without it, the vector of
// idle readers grows under stats()'s reading of it, a race for ThreadSanitizer to report.
ENTITY_CONCURRENT_TEST(SqliteInfrastructure, StatsMayBeReadWhileTheEngineStarts) {
  entity::sqlite_params p;
  p.pool_size = 8;
  p.min_connections = 9;  // the writer and eight readers, opened by startup()
  entity::sqlite_infrastructure infra(p);
  std::atomic<bool> polling{false}, stop{false};
  std::thread monitor([&] {
    while (!stop.load()) {
      (void)infra.stats();
      polling.store(true);
    }
  });
  while (!polling.load()) std::this_thread::yield();
  infra.startup();
  stop.store(true);
  monitor.join();
  auto s = infra.stats();
  EXPECT_EQ(s.open_connections, 9u);
  EXPECT_EQ(s.idle_connections, 9u);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, FiveConcurrentQueriesEachGetTheirOwnValue) {
  auto infra = started();
  entity::database db(infra);
  constexpr int n = 5;
  std::vector<std::int64_t> got(n, -1);
  std::latch go(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      go.arrive_and_wait();
      for (int round = 0; round < 50; ++round) {
        auto r = db.fetch_one("SELECT ? AS v", {i * 1000 + round});
        if (r->get<std::int64_t>("v") != i * 1000 + round) return;
      }
      got[i] = i;
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < n; ++i) EXPECT_EQ(got[i], i) << "thread " << i << " saw another's value";
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, FiveConcurrentCoroutinesEachGetTheirOwnValue) {
  auto infra = started();
  entity::database db(infra);
  asio::io_context io;
  std::vector<std::int64_t> got(5, -1);
  int finished = 0;
  auto query = [&](int i) -> asio::awaitable<void> {
    entity::params args{i * 11};
    auto r = co_await db.async_fetch_one("SELECT ? AS v", std::move(args), asio::use_awaitable);
    got[i] = r->get<std::int64_t>("v");
    ++finished;
  };
  for (int i = 0; i < 5; ++i) asio::co_spawn(io, query(i), asio::detached);
  io.run();
  EXPECT_EQ(finished, 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(got[i], i * 11);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, PoolExhaustionFailsAfterAcquireTimeout) {
  entity::sqlite_params p;
  p.pool_size = 2;
  p.acquire_timeout = 100ms;
  auto infra = started(p);
  entity::database db(infra);
  watchdog guard(30s);
  auto a = db.acquire();
  auto b = db.acquire();

  auto t0 = steady::now();
  error_code ec;
  entity::diagnostics diag;
  db.fetch_one("SELECT 1", {}, ec, diag);
  auto waited = steady::now() - t0;
  EXPECT_EQ(ec, errc::pool_exhausted) << diag.to_string();
  EXPECT_EQ(ec, entity::condition::timeout);
  EXPECT_FALSE(diag.message.empty());
  EXPECT_GE(waited, 90ms);
  EXPECT_LT(waited, 3s);

  std::promise<error_code> async_ec;
  db.async_fetch_one("SELECT 1", {},
                     [&](error_code e, std::optional<entity::row>) { async_ec.set_value(e); });
  EXPECT_EQ(async_ec.get_future().get(), errc::pool_exhausted);

  try {
    db.acquire(50ms);
    FAIL() << "a third lease from a pool of two";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), errc::pool_exhausted);
  }

  // A returned connection serves the next read at once.
  a.release();
  EXPECT_EQ(db.fetch_one("SELECT 5")->get<int>(0), 5);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, LeaseReturnsToThePool) {
  entity::sqlite_params p;
  p.pool_size = 1;
  p.acquire_timeout = 100ms;
  auto infra = started(p);
  entity::database db(infra);
  db.execute("CREATE TABLE t (a)");
  db.execute("INSERT INTO t VALUES (1), (2)");
  auto idle_before = db.stats().idle_connections;
  {
    auto lease = db.acquire();
    ASSERT_TRUE(lease);
    EXPECT_EQ(db.stats().idle_connections, idle_before - 1);
    // A snapshot across several statements on one connection.
    lease->execute("BEGIN");
    EXPECT_EQ(lease->fetch_all("SELECT a FROM t ORDER BY a").size(), 2u);
    EXPECT_EQ(lease->fetch_one("SELECT count(*) FROM t")->get<int>(0), 2);
    // The lease is the only reader: a sync read waits for it and gives up.
    error_code ec;
    entity::diagnostics diag;
    db.fetch_one("SELECT 1", {}, ec, diag);
    EXPECT_EQ(ec, errc::pool_exhausted);
  }  // returned here, its open transaction rolled back
  EXPECT_EQ(db.stats().idle_connections, idle_before);
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM t")->get<int>(0), 2);
  db.execute("INSERT INTO t VALUES (3)");  // no read transaction left open holds anything
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM t")->get<int>(0), 3);

  // Moving a lease moves the connection; assigning over one returns it.
  auto first = db.acquire();
  auto moved = std::move(first);
  EXPECT_FALSE(first);
  EXPECT_TRUE(moved);
  moved = entity::connection_lease();
  EXPECT_EQ(db.stats().idle_connections, idle_before);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, LeaseRefusesWrites) {
  auto infra = started();
  entity::database db(infra);
  db.execute("CREATE TABLE t (a)");
  auto lease = db.acquire();
  EXPECT_THROW(lease->execute("INSERT INTO t VALUES (1)"), entity::error);
  lease.release();
  EXPECT_EQ(count_rows(db, "t"), 0);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, LeaseQueriesHaveTheQueryTimeout) {
  entity::sqlite_params p;
  p.query_timeout = 100ms;
  auto infra = started(p);
  entity::database db(infra);
  watchdog guard(30s);
  auto lease = db.acquire();
  try {
    lease->fetch_one(runaway_cte);
    FAIL() << "the runaway query finished";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), errc::query_timeout);
  }
  EXPECT_EQ(lease->fetch_one("SELECT 42")->get<int>(0), 42);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, MemoryDatabaseIsSharedByAllConnections) {
  entity::sqlite_params p;
  p.path = ":memory:";
  p.pool_size = 5;
  auto infra = started(p);
  entity::database db(infra);
  db.execute("CREATE TABLE shared (a INTEGER)");
  db.execute("INSERT INTO shared VALUES (1), (2), (3)");
  watchdog guard(30s);

  constexpr std::size_t n = 20;
  outcomes async_results(n);
  std::vector<std::int64_t> sums(n, -1);
  for (std::size_t i = 0; i < n; ++i)
    db.async_fetch_one("SELECT sum(a) FROM shared", {},
                       [&, i](error_code ec, std::optional<entity::row> r) {
                         if (!ec && r) sums[i] = r->get<std::int64_t>(0);
                         async_results.callback(i)(ec);
                       });
  async_results.left.wait();
  for (std::size_t i = 0; i < n; ++i) {
    EXPECT_FALSE(async_results.ecs[i]) << async_results.ecs[i].message();
    EXPECT_EQ(sums[i], 6) << "read " << i;
  }

  // And from 20 threads on the sync path, each on whichever reader it gets.
  std::vector<std::int64_t> sync_sums(n, -1);
  std::vector<std::thread> threads;
  std::latch go(n);
  for (std::size_t i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      go.arrive_and_wait();
      sync_sums[i] = db.fetch_one("SELECT sum(a) FROM shared")->get<std::int64_t>(0);
    });
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(sync_sums[i], 6) << "thread " << i;

  // Every reader connection, held at once so that each is a different one, sees the table.
  std::vector<entity::connection_lease> leases;
  for (std::size_t i = 0; i < p.pool_size; ++i) leases.push_back(db.acquire());
  EXPECT_EQ(db.stats().open_connections, p.pool_size + 1);
  for (auto& lease : leases)
    EXPECT_EQ(lease->fetch_one("SELECT sum(a) FROM shared")->get<int>(0), 6);
  leases.clear();

  // Two infrastructures on ":memory:" are two databases.
  auto other = started(p);
  error_code ec;
  entity::diagnostics diag;
  entity::database(other).fetch_one("SELECT * FROM shared", {}, ec, diag);
  EXPECT_EQ(ec, entity::condition::syntax);
}

// ---- deadlines -------------------------------------------------------------------------------

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, TimeoutInterruptsRunawayQuery) {
  entity::sqlite_params p;
  p.pool_size = 1;  // the next query must run on the very connection that was interrupted
  auto infra = started(p);
  entity::database db(infra);
  watchdog guard(30s);

  auto t0 = steady::now();
  error_code ec;
  entity::diagnostics diag;
  auto r = db.with_timeout(50ms).fetch_one(runaway_cte, {}, ec, diag);
  EXPECT_LT(steady::now() - t0, 5s);
  EXPECT_EQ(ec, errc::query_timeout) << diag.to_string();
  EXPECT_EQ(ec, entity::condition::timeout);
  EXPECT_FALSE(r);
  EXPECT_NE(diag.sql.find("WITH RECURSIVE"), std::string::npos);

  auto t1 = steady::now();
  EXPECT_EQ(db.fetch_one("SELECT 1 + 1")->get<int>(0), 2);
  EXPECT_LT(steady::now() - t1, 2s);

  try {
    db.with_timeout(50ms).fetch_all(runaway_cte);
    FAIL() << "the runaway query finished";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), errc::query_timeout);
    EXPECT_NE(std::string(e.what()).find("WITH RECURSIVE"), std::string::npos);
  }
  EXPECT_EQ(db.stats().timeouts, 2u);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, TimeoutInterruptsRunawayQueryAsync) {
  entity::sqlite_params p;
  p.pool_size = 1;  // one reader thread, one reader connection: both must be free again
  auto infra = started(p);
  entity::database db(infra);
  watchdog guard(30s);
  run_coroutine([&]() -> asio::awaitable<void> {
    auto [ec, r] = co_await db.with_timeout(50ms).async_fetch_one(
        runaway_cte, {}, asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(ec, errc::query_timeout);
    EXPECT_EQ(ec, entity::condition::timeout);
    auto t1 = steady::now();
    auto next = co_await db.async_fetch_one("SELECT 3", {}, asio::use_awaitable);
    EXPECT_LT(steady::now() - t1, 2s);
    EXPECT_EQ(next->get<int>(0), 3);
  });
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, TimeoutInterruptsRunawayWrite) {
  auto infra = started();
  entity::database db(infra);
  db.execute("CREATE TABLE t (n INTEGER)");
  watchdog guard(30s);
  // Starts with WITH, so it is tried on a reader first and moved to the writer: the deadline
  // still counts from submission.
  std::string runaway_insert =
      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 10000000000) "
      "INSERT INTO t SELECT count(*) FROM c";
  error_code ec;
  entity::diagnostics diag;
  db.with_timeout(50ms).execute(runaway_insert, {}, ec, diag);
  EXPECT_EQ(ec, errc::query_timeout) << diag.to_string();

  std::promise<error_code> async_ec;
  db.with_timeout(50ms).async_execute(runaway_insert, {},
                                      [&](error_code e, entity::result) { async_ec.set_value(e); });
  EXPECT_EQ(async_ec.get_future().get(), errc::query_timeout);

  auto t1 = steady::now();
  db.execute("INSERT INTO t VALUES (1)");
  EXPECT_LT(steady::now() - t1, 2s);
  EXPECT_EQ(count_rows(db, "t"), 1);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, TimeQueuedCountsAgainstTheDeadline) {
  auto infra = started();
  entity::database db(infra);
  db.execute("CREATE TABLE t (a)");
  watchdog guard(30s);
  std::promise<error_code> late;
  {
    entity::test::writer_blocker block(db);
    db.with_timeout(50ms).async_execute("INSERT INTO t VALUES (1)", {},
                                        [&](error_code ec, entity::result) { late.set_value(ec); });
    std::this_thread::sleep_for(150ms);  // the insert's deadline passes while it is queued
  }
  EXPECT_EQ(late.get_future().get(), errc::query_timeout);
  EXPECT_EQ(count_rows(db, "t"), 0);
}

// ---- the writer queue ------------------------------------------------------------------------

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, ConcurrentWritersAllLand) {
  entity::test::temp_dir dir;
  entity::sqlite_params p;
  p.path = dir.file("writers.db");
  auto infra = started(p);
  entity::database db(infra);
  db.execute("CREATE TABLE t (writer INTEGER, i INTEGER, PRIMARY KEY (writer, i))");
  std::vector<std::thread> threads;
  std::latch go(5);
  std::atomic<int> failures{0};
  for (int w = 0; w < 5; ++w)
    threads.emplace_back([&, w] {
      go.arrive_and_wait();
      for (int i = 0; i < 10; ++i) {
        error_code ec;
        entity::diagnostics diag;
        db.execute("INSERT INTO t VALUES (?, ?)", {w, i}, ec, diag);
        if (ec) failures++;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(count_rows(db, "t"), 50);
  for (int w = 0; w < 5; ++w)
    EXPECT_EQ(db.fetch_one("SELECT count(*) FROM t WHERE writer = ?", {w})->get<int>(0), 10);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, GroupCommitBatchesConcurrentWriters) {
  entity::test::temp_dir dir;
  entity::sqlite_params p;
  p.path = dir.file("group.db");
  auto infra = started(p);
  entity::database db(infra);
  db.execute("CREATE TABLE t (writer INTEGER, i INTEGER, PRIMARY KEY (writer, i))");
  watchdog guard(120s);

  asio::io_context io;
  std::atomic<int> failures{0};
  auto writer = [&](int w) -> asio::awaitable<void> {
    for (int i = 0; i < 500; ++i) {
      entity::params args{w, i};
      auto [ec, r] = co_await db.async_execute("INSERT INTO t VALUES (?, ?)", std::move(args),
                                               asio::as_tuple(asio::use_awaitable));
      if (ec || r.rows_affected != 1) failures++;
    }
  };
  for (int w = 0; w < 20; ++w) asio::co_spawn(io, writer(w), asio::detached);
  io.run();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(count_rows(db, "t"), 10000);
  auto s = db.stats();
  EXPECT_GT(s.group_commits, 0u);
  EXPECT_GT(s.mean_group_size, 1.0);
  EXPECT_LE(s.grouped_operations, 10000u);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, FailingWriteInAGroupFailsAlone) {
  auto infra = started();
  entity::database db(infra);
  db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)");
  db.execute("INSERT INTO t VALUES (-1)");
  watchdog guard(30s);

  constexpr std::size_t n = 100;
  constexpr std::size_t bad = 50;
  outcomes results(n);
  entity::diagnostics bad_diag;
  {
    entity::test::writer_blocker block(db);  // everything below queues, then commits as one group
    for (std::size_t i = 0; i < n; ++i) {
      entity::params args{i == bad ? std::int64_t{-1} : static_cast<std::int64_t>(i)};
      if (i == bad)
        db.async_execute("INSERT INTO t VALUES (?)", std::move(args), bad_diag,
                         results.callback(i));
      else
        db.async_execute("INSERT INTO t VALUES (?)", std::move(args), results.callback(i));
    }
  }
  results.left.wait();
  for (std::size_t i = 0; i < n; ++i) {
    if (i == bad) {
      EXPECT_EQ(results.ecs[i], entity::condition::constraint) << results.ecs[i].message();
      EXPECT_NE(bad_diag.message.find("UNIQUE"), std::string::npos) << bad_diag.message;
    } else {
      EXPECT_FALSE(results.ecs[i]) << i << ": " << results.ecs[i].message();
    }
  }
  EXPECT_EQ(count_rows(db, "t"), static_cast<std::int64_t>(n));  // 99 neighbours and the -1
  auto s = db.stats();
  EXPECT_GE(s.group_commits, 1u);
  EXPECT_GE(s.grouped_operations, n - 1);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, TimedOutWriteInAGroupFailsAlone) {
  // SQLite rolls back the whole transaction when it interrupts a statement: the requests
  // committed before it in the same group must not be lost or blamed for it.
  auto infra = started();
  entity::database db(infra);
  db.execute("CREATE TABLE t (n INTEGER)");
  watchdog guard(30s);
  std::string runaway_insert =
      "INSERT INTO t SELECT count(*) FROM "
      "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 10000000000) "
      "SELECT x FROM c)";
  outcomes results(4);
  {
    entity::test::writer_blocker block(db);
    db.async_execute("INSERT INTO t VALUES (1)", {}, results.callback(0));
    db.async_execute_many("INSERT INTO t VALUES (?)", {{2}, {3}}, results.callback(1));
    // Long enough to still be alive when the group starts; it then runs into its deadline.
    db.with_timeout(500ms).async_execute(runaway_insert, {}, results.callback(2));
    db.async_execute("INSERT INTO t VALUES (4)", {}, results.callback(3));
  }
  results.left.wait();
  EXPECT_FALSE(results.ecs[0]) << results.ecs[0].message();
  EXPECT_FALSE(results.ecs[1]) << results.ecs[1].message();
  EXPECT_EQ(results.ecs[2], errc::query_timeout);
  EXPECT_FALSE(results.ecs[3]) << results.ecs[3].message();
  auto rows = db.fetch_all("SELECT n FROM t ORDER BY n");
  ASSERT_EQ(rows.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(rows[i].get<int>(0), i + 1);
  auto s = db.stats();
  EXPECT_EQ(s.timeouts, 1u);
  EXPECT_EQ(s.errors, 1u);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, TransactionBodyRunsAgainWhenItsGroupIsRolledBack) {
  auto infra = started();
  entity::database db(infra);
  db.execute("CREATE TABLE t (n INTEGER)");
  watchdog guard(30s);
  std::string runaway_insert =
      "INSERT INTO t SELECT count(*) FROM "
      "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 10000000000) "
      "SELECT x FROM c)";
  std::atomic<int> runs{0};
  outcomes results(2);
  {
    entity::test::writer_blocker block(db);
    db.async_transaction(
        [&](entity::session& s) {
          runs++;
          s.execute("INSERT INTO t VALUES (1)");
        },
        results.callback(0));
    db.with_timeout(500ms).async_execute(runaway_insert, {}, results.callback(1));
  }
  results.left.wait();
  EXPECT_FALSE(results.ecs[0]) << results.ecs[0].message();
  EXPECT_EQ(results.ecs[1], errc::query_timeout);
  EXPECT_EQ(runs.load(), 2);  // its first run was rolled back with the timed-out neighbour
  EXPECT_EQ(count_rows(db, "t"), 1);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, WriteThroughTheDatabaseInsideATransactionFails) {
  // The body must write through its session; a write through the database would wait for the
  // very transaction it is part of. It fails at once instead of hanging.
  entity::test::temp_dir dir;
  entity::sqlite_params p;
  p.path = dir.file("body.db");  // WAL: a read during the write transaction does not wait
  auto infra = started(p);
  entity::database db(infra);
  db.execute("CREATE TABLE t (a)");
  watchdog guard(30s);
  error_code inner;
  db.transaction([&](entity::session& s) {
    s.execute("INSERT INTO t VALUES (1)");
    entity::diagnostics diag;
    db.execute("INSERT INTO t VALUES (2)", {}, inner, diag);
    EXPECT_NE(diag.message.find("session"), std::string::npos) << diag.message;
    // Reads through the database are fine: they go to a reader (and see the last commit).
    EXPECT_EQ(count_rows(db, "t"), 0);
  });
  EXPECT_EQ(inner, errc::invalid_argument);
  std::promise<error_code> async_inner;
  db.async_transaction(
      [&](entity::session&) {
        error_code ec;
        entity::diagnostics diag;
        db.execute("INSERT INTO t VALUES (3)", {}, ec, diag);
        async_inner.set_value(ec);
      },
      [](error_code) {});
  EXPECT_EQ(async_inner.get_future().get(), errc::invalid_argument);
  EXPECT_EQ(count_rows(db, "t"), 1);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, ExecuteManyInAGroupIsAllOrNothing) {
  auto infra = started();
  entity::database db(infra);
  db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)");
  watchdog guard(30s);
  std::vector<entity::params> good_batch, bad_batch;
  for (int i = 0; i < 100; ++i) good_batch.push_back({i});
  for (int i = 1000; i < 1100; ++i) bad_batch.push_back({i == 1050 ? 1000 : i});
  outcomes results(4);
  {
    entity::test::writer_blocker block(db);
    db.async_execute("INSERT INTO t VALUES (?)", {5000}, results.callback(0));
    db.async_execute_many("INSERT INTO t VALUES (?)", bad_batch, results.callback(1));
    db.async_execute_many("INSERT INTO t VALUES (?)", good_batch, results.callback(2));
    db.async_execute("INSERT INTO t VALUES (?)", {5001}, results.callback(3));
  }
  results.left.wait();
  EXPECT_FALSE(results.ecs[0]);
  EXPECT_EQ(results.ecs[1], entity::condition::constraint);
  EXPECT_FALSE(results.ecs[2]);
  EXPECT_FALSE(results.ecs[3]);
  EXPECT_EQ(count_rows(db, "t"), 102);
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM t WHERE id >= 1000 AND id < 1100")->get<int>(0), 0);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, ThrowingTransactionInAGroupRollsBackAlone) {
  auto infra = started();
  entity::database db(infra);
  db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)");
  watchdog guard(30s);
  outcomes results(3);
  {
    entity::test::writer_blocker block(db);
    db.async_execute("INSERT INTO t VALUES (1)", {}, results.callback(0));
    db.async_transaction(
        [](entity::session& s) {
          s.execute("INSERT INTO t VALUES (2)");
          s.execute("INSERT INTO t VALUES (3)");
          throw std::runtime_error("changed my mind");
        },
        results.callback(1));
    db.async_execute("INSERT INTO t VALUES (4)", {}, results.callback(2));
  }
  results.left.wait();
  EXPECT_FALSE(results.ecs[0]);
  EXPECT_EQ(results.ecs[1], errc::aborted);
  EXPECT_FALSE(results.ecs[2]);
  auto ids = db.fetch_all("SELECT id FROM t ORDER BY id");
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0].get<int>(0), 1);
  EXPECT_EQ(ids[1].get<int>(0), 4);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, PlainCallbackMayCallTheSyncApi) {
  // A plain callback runs on the worker that finished the operation. Calling the sync API from
  // there must work, including a write from the writer's own thread.
  auto infra = started();
  entity::database db(infra);
  db.execute("CREATE TABLE t (a)");
  watchdog guard(30s);
  std::promise<std::int64_t> seen;
  db.async_execute("INSERT INTO t VALUES (1)", {}, [&](error_code ec, entity::result) {
    try {
      if (ec) throw entity::error(ec, {});
      db.execute("INSERT INTO t VALUES (2)");
      seen.set_value(count_rows(db, "t"));
    } catch (...) {
      seen.set_exception(std::current_exception());
    }
  });
  EXPECT_EQ(seen.get_future().get(), 2);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, SyncWritersDoNotNeedTheWriterThread) {
  // The writer thread is held inside a plain callback. A sync write queued behind another sync
  // caller's transaction must still be committed: by that caller, or by itself in turn.
  auto infra = started();
  entity::database db(infra);
  db.execute("CREATE TABLE t (a)");
  watchdog guard(30s);

  std::latch in_callback(1), release_callback(1);
  db.async_execute("INSERT INTO t VALUES (0)", {}, [&](error_code, entity::result) {
    in_callback.count_down();
    release_callback.wait();
  });
  in_callback.wait();

  std::latch in_transaction(1);
  std::thread leader([&] {
    db.transaction([&](entity::session& s) {
      s.execute("INSERT INTO t VALUES (1)");
      in_transaction.count_down();
      // Hold the writer until the other sync write has queued behind this transaction.
      auto until = steady::now() + 10s;
      while (db.stats().queued_operations == 0 && steady::now() < until)
        std::this_thread::sleep_for(1ms);
    });
  });
  in_transaction.wait();
  db.execute("INSERT INTO t VALUES (2)");
  leader.join();
  EXPECT_EQ(count_rows(db, "t"), 3);
  release_callback.count_down();
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, ReadersAreNotBlockedByALongWriteTransaction) {
  entity::test::temp_dir dir;
  entity::sqlite_params p;
  p.path = dir.file("wal.db");
  // A reader that had to wait for the writer would give up quickly and fail the test.
  p.busy_timeout = 200ms;
  auto infra = started(p);
  entity::database db(infra);
  EXPECT_EQ(db.fetch_one("PRAGMA journal_mode")->get<std::string>(0), "wal");
  db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)");
  db.execute("INSERT INTO t (payload) VALUES (x'00')");
  watchdog guard(60s);

  std::latch in_transaction(1), release(1);
  std::promise<error_code> tx_done;
  db.async_transaction(
      [&](entity::session& s) {
        // Several MiB: more than the page cache holds, so the changes reach the file (in
        // rollback-journal mode that takes the exclusive lock readers cannot pass).
        s.execute(
            "INSERT INTO t (payload) SELECT randomblob(4000) FROM "
            "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 2000) "
            "SELECT x FROM c)");
        in_transaction.count_down();
        release.wait();
      },
      [&](error_code ec) { tx_done.set_value(ec); });
  in_transaction.wait();

  // The write transaction is open right now. Reads see the last committed state.
  for (int i = 0; i < 5; ++i) {
    error_code ec;
    entity::diagnostics diag;
    auto r = db.fetch_one("SELECT count(*) FROM t", {}, ec, diag);
    EXPECT_FALSE(ec) << diag.to_string();
    if (r) EXPECT_EQ(r->get<int>(0), 1);
  }
  std::promise<error_code> async_read;
  db.async_fetch_all("SELECT id FROM t", {},
                     [&](error_code ec, entity::database::rows) { async_read.set_value(ec); });
  EXPECT_FALSE(async_read.get_future().get());
  release.count_down();
  EXPECT_FALSE(tx_done.get_future().get());
  EXPECT_EQ(count_rows(db, "t"), 2001);
}

// ---- shutdown --------------------------------------------------------------------------------

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, ShutdownCompletesEveryQueuedOperation) {
  entity::test::temp_dir dir;
  entity::sqlite_params p;
  p.path = dir.file("queued.db");
  p.pool_size = 2;
  auto infra = started(p);
  entity::database db(infra);
  db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)");
  watchdog guard(60s);

  constexpr std::size_t n = 1000;
  constexpr std::size_t writes = n - (n + 2) / 3;  // every i with i % 3 != 0
  std::vector<error_code> ecs(n);
  std::vector<int> calls(n, 0);
  std::atomic<std::size_t> completed{0}, writes_completed{0};
  std::thread stopper;
  {
    entity::test::writer_blocker block(db);  // every write below waits in the writer's queue
    for (std::size_t i = 0; i < n; ++i) {
      auto done = [&, i](error_code ec, auto&&...) {
        ecs[i] = ec;
        calls[i]++;
        if (i % 3 != 0) writes_completed.fetch_add(1);
        completed.fetch_add(1);
      };
      if (i % 3 == 0)
        db.async_fetch_one("SELECT count(*) FROM t", {}, done);
      else
        db.async_execute("INSERT INTO t VALUES (?)", {static_cast<std::int64_t>(i)}, done);
    }
    EXPECT_GE(db.stats().queued_operations, writes);
    stopper = std::thread([&] { infra->shutdown(); });
    while (infra->running()) std::this_thread::yield();
    // Shutdown has begun with every write still queued behind the held writer.
    EXPECT_EQ(writes_completed.load(), 0u);
  }  // the writer is let go; shutdown() returns once the queue is done
  stopper.join();
  EXPECT_EQ(completed.load(), n);

  std::int64_t inserted = 0;
  for (std::size_t i = 0; i < n; ++i) {
    EXPECT_EQ(calls[i], 1) << "operation " << i;
    EXPECT_TRUE(!ecs[i] || ecs[i] == errc::shut_down) << i << ": " << ecs[i].message();
    if (i % 3 != 0 && !ecs[i]) ++inserted;
  }
  // What was reported committed is in the file, and nothing else.
  auto reopened = started(p);
  EXPECT_EQ(count_rows(entity::database(reopened), "t"), inserted);
}

// ---- stats -----------------------------------------------------------------------------------

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, QueuedOperationsCountsWritesWaitingForTheWriter) {
  auto infra = started();
  entity::database db(infra);
  db.execute("CREATE TABLE t (a)");
  watchdog guard(30s);
  EXPECT_EQ(db.stats().queued_operations, 0u);
  outcomes results(3);
  {
    entity::test::writer_blocker block(db);
    for (std::size_t i = 0; i < 3; ++i)
      db.async_execute("INSERT INTO t VALUES (?)", {static_cast<std::int64_t>(i)},
                       results.callback(i));
    EXPECT_EQ(db.stats().queued_operations, 3u);
  }
  results.left.wait();
  for (const error_code& ec : results.ecs) EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(db.stats().queued_operations, 0u);
  EXPECT_EQ(count_rows(db, "t"), 3);
}

ENTITY_CONCURRENT_TEST(SqliteInfrastructure, StatsCountOperationsErrorsAndTimeouts) {
  auto infra = started();
  entity::database db(infra);
  auto s = db.stats();
  EXPECT_EQ(s.operations, 0u);
  EXPECT_EQ(s.p50_latency_us, 0.0);

  db.execute("CREATE TABLE t (a)");
  db.execute("INSERT INTO t VALUES (1)");
  db.fetch_all("SELECT * FROM t");
  std::promise<void> async_done;
  db.async_fetch_one("SELECT 1", {}, [&](error_code, auto) { async_done.set_value(); });
  async_done.get_future().wait();
  error_code ec;
  entity::diagnostics diag;
  db.execute("SELEC nonsense", {}, ec, diag);
  EXPECT_TRUE(ec);
  db.with_timeout(20ms).fetch_one(runaway_cte, {}, ec, diag);
  EXPECT_EQ(ec, errc::query_timeout);

  s = db.stats();
  EXPECT_EQ(s.operations, 6u);
  EXPECT_EQ(s.errors, 2u);
  EXPECT_EQ(s.timeouts, 1u);
  EXPECT_GT(s.p50_latency_us, 0.0);
  EXPECT_GE(s.p99_latency_us, s.p50_latency_us);
  EXPECT_EQ(s.open_connections, s.idle_connections + s.busy_connections);
  EXPECT_EQ(s.busy_connections, 0u);
  EXPECT_EQ(s.queued_operations, 0u);
}
