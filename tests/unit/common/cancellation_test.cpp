// Per-operation cancellation: entity::cancellation itself, then asio's cancellation slots on
// every backend (a running statement is interrupted, a queued request never runs, a
// transaction body stops and rolls back, memory operations pass the slot on), then what only
// SQLite does (group commit, statements running on the caller's loop).
#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <entity/entity.hpp>
#include <latch>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backends.hpp"
#include "concurrency.hpp"
#include "library_support.hpp"
#include "writer_blocker.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using entity::errc;
using entity::error_code;
using steady = std::chrono::steady_clock;

namespace {

// Never ends by itself: only a cancellation (or the 30 s query_timeout) stops it.
const std::string sqlite_runaway =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c";
// The same as a write, routed to the writer from the start.
const std::string sqlite_runaway_insert =
    "INSERT INTO t SELECT count(*) FROM "
    "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c)";

using entity::test::count_rows;

// One operation under test: its handler runs on `io`, takes its cancellations from `signal`,
// and records how the operation ended.
struct probe {
  asio::io_context& io;
  asio::cancellation_signal signal;
  error_code ec;
  bool done = false;

  auto handler() {
    return asio::bind_cancellation_slot(signal.slot(),
                                        asio::bind_executor(io, [this](error_code e, auto&&...) {
                                          ec = e;
                                          done = true;
                                        }));
  }
  /// A timer on `io` that cancels the operation `after` from now (keep it while `io` runs).
  asio::steady_timer cancel_after(std::chrono::milliseconds after) {
    asio::steady_timer t(io, after);
    t.async_wait([this](boost::system::error_code) { cancel(); });
    return t;
  }
  void cancel(asio::cancellation_type type = asio::cancellation_type::terminal) {
    signal.emit(type);
  }
};

// Runs `io` until `done` or `limit` passes, whichever comes first.
void run_until(asio::io_context& io, const bool& done, std::chrono::seconds limit) {
  io.restart();
  auto until = steady::now() + limit;
  while (!done && steady::now() < until) io.run_one_for(50ms);
}

}  // namespace

// ---- entity::cancellation ----------------------------------------------------------------------

ENTITY_CONCURRENT_TEST(Cancellation, WakeUpRunsOnceWhenRequested) {
  entity::cancellation c;
  EXPECT_FALSE(c.requested());
  int woken = 0;
  c.on_request([&] { ++woken; });
  EXPECT_EQ(woken, 0);
  c.request();
  EXPECT_TRUE(c.requested());
  EXPECT_EQ(woken, 1);
  c.request();
  EXPECT_EQ(woken, 1);
  // Registered after the request: runs at once.
  c.on_request([&] { ++woken; });
  EXPECT_EQ(woken, 2);
}

ENTITY_CONCURRENT_TEST(Cancellation, ClearedWakeUpNeverRuns) {
  entity::cancellation c;
  int woken = 0;
  c.on_request([&] { ++woken; });
  c.clear();
  c.request();
  EXPECT_TRUE(c.requested());
  EXPECT_EQ(woken, 0);
}

ENTITY_CONCURRENT_TEST(Cancellation, RequestFromAnotherThreadRunsTheWakeUpThere) {
  entity::cancellation c;
  std::thread::id woken_on;
  c.on_request([&] { woken_on = std::this_thread::get_id(); });
  std::thread other([&] { c.request(); });
  auto other_id = other.get_id();
  other.join();
  EXPECT_EQ(woken_on, other_id);
  // clear() after the wake-up ran is harmless.
  c.clear();
}

// ---- asio cancellation slots, on every backend -------------------------------------------------

class AsyncCancel : public entity::test::backend_test {
 protected:
  // On PostgreSQL the comment tells this query from other tests' sleeps on the same server.
  std::string runaway() const {
    return on_sqlite() ? sqlite_runaway : "SELECT pg_sleep(30) -- async-cancel-runaway";
  }
};
ENTITY_INSTANTIATE_ON_EVERY_BACKEND(AsyncCancel);

ENTITY_CONCURRENT_TEST_P(AsyncCancel, RunawayQueryStopsWithCancelled) {
  auto db = open({.pool_size = 1});  // the next query runs on the connection that was stopped
  asio::io_context io;
  probe op{io};
  auto t0 = steady::now();
  db.async_fetch_one(runaway(), {}, op.handler());
  auto timer = op.cancel_after(100ms);
  io.run();
  auto took = steady::now() - t0;
  ASSERT_TRUE(op.done);
  EXPECT_EQ(op.ec, errc::cancelled) << op.ec.message();
  EXPECT_FALSE(op.ec == entity::condition::timeout);
  EXPECT_TRUE(op.ec == boost::system::errc::operation_canceled);
  EXPECT_LT(took, 5s);  // the query_timeout is 30 s
  EXPECT_EQ(db.stats().timeouts, 0u);

  // An emit after the operation ended reaches nothing.
  op.cancel();
  auto t1 = steady::now();
  EXPECT_EQ(db.fetch_one("SELECT 1 + 1")->get<int>(0), 2);
  EXPECT_LT(steady::now() - t1, 2s);
  if (on_postgres()) {
    // The server stops it promptly, though not necessarily before the client has moved on (a
    // connection given up on is replaced while its backend is still being stopped).
    std::int64_t running = 1;
    for (int i = 0; i < 60 && running != 0; ++i) {
      if (i > 0) std::this_thread::sleep_for(50ms);
      running = db.fetch_one(
                      "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                      "'%async-cancel-runaway%' AND state = 'active' AND pid <> "
                      "pg_backend_pid()")
                    ->get<std::int64_t>(0);
    }
    EXPECT_EQ(running, 0) << "the cancelled query still runs on the server after 3 s";
  }
}

ENTITY_CONCURRENT_TEST_P(AsyncCancel, AwaitableOperatorsCancelTheSlowerQuery) {
  using namespace asio::experimental::awaitable_operators;
  auto db = open({.pool_size = 1});
  asio::io_context io;
  std::exception_ptr failure;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer timer(co_await asio::this_coro::executor, 100ms);
        auto t0 = steady::now();
        // The timer wins; the query, cancelled, must finish before the expression does.
        auto winner = co_await (db.async_fetch_one(runaway(), {}, asio::use_awaitable) ||
                                timer.async_wait(asio::use_awaitable));
        EXPECT_EQ(winner.index(), 1u);
        EXPECT_LT(steady::now() - t0, 5s);
        auto next = co_await db.async_fetch_one("SELECT 2", {}, asio::use_awaitable);
        EXPECT_EQ(next->get<int>(0), 2);
      },
      [&](std::exception_ptr e) { failure = e; });
  io.run();
  if (failure) std::rethrow_exception(failure);
}

ENTITY_CONCURRENT_TEST_P(AsyncCancel, CancelBeforeItStartsRunsNothing) {
  auto db = open({.pool_size = 1});
  db.execute("CREATE TABLE t (n INTEGER)");
  asio::io_context io;
  probe op{io};
  {
    entity::test::writer_blocker hold(db);
    db.async_execute("INSERT INTO t VALUES (1)", {}, op.handler());
    io.poll();  // SQLite: the write's ticket finds the writer busy and leaves it queued
    std::this_thread::sleep_for(50ms);  // well settled in its queue
    op.cancel(asio::cancellation_type::total);
    if (on_postgres()) {
      // A request waiting for a connection leaves the queue at once.
      run_until(io, op.done, 5s);
      EXPECT_TRUE(op.done);
    }
  }
  run_until(io, op.done, 10s);
  ASSERT_TRUE(op.done);
  EXPECT_EQ(op.ec, errc::cancelled) << op.ec.message();
  EXPECT_EQ(count_rows(db, "t"), 0);
  db.execute("INSERT INTO t VALUES (2)");
  EXPECT_EQ(count_rows(db, "t"), 1);
}

ENTITY_CONCURRENT_TEST_P(AsyncCancel, TransactionBodyStopsAndRollsBack) {
  auto db = open({.pool_size = 1});
  db.execute("CREATE TABLE t (n INTEGER)");
  asio::io_context io;
  probe op{io};
  auto t0 = steady::now();
  db.async_transaction(
      [sql = runaway()](entity::session& s) {
        s.execute("INSERT INTO t VALUES (1)");
        s.execute(sql);
        s.execute("INSERT INTO t VALUES (2)");
      },
      op.handler());
  auto timer = op.cancel_after(100ms);
  io.run();
  ASSERT_TRUE(op.done);
  EXPECT_EQ(op.ec, errc::cancelled) << op.ec.message();
  EXPECT_LT(steady::now() - t0, 5s);
  EXPECT_EQ(count_rows(db, "t"), 0);  // the body's first INSERT was rolled back
  db.execute("INSERT INTO t VALUES (3)");
  EXPECT_EQ(count_rows(db, "t"), 1);
}

ENTITY_CONCURRENT_TEST_P(AsyncCancel, MemoryStoreCancelledWhileQueuedStoresNothing) {
  auto db = open({.pool_size = 1});
  entity::memory mem(db);
  mem.store("warm", 1);  // the table exists: the store below is one statement
  asio::io_context io;
  probe op{io};
  {
    entity::test::writer_blocker hold(db);
    mem.async_store("k", {{"v", 1}}, op.handler());
    io.poll();
    op.cancel();
  }
  run_until(io, op.done, 10s);
  ASSERT_TRUE(op.done);
  EXPECT_EQ(op.ec, errc::cancelled) << op.ec.message();
  EXPECT_FALSE(mem.load("k"));
  EXPECT_EQ(mem.load("warm").value(), 1);
  mem.store("k", 2);
  EXPECT_EQ(mem.load("k").value(), 2);
}

ENTITY_CONCURRENT_TEST_P(AsyncCancel, MemoryBatchLoadCancelsEveryChunk) {
  auto db = open({.pool_size = 1});
  entity::memory mem(db);
  entity::memory::items items;
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < 2 * entity::memory::load_chunk + 1; ++i) {
    keys.push_back("k" + std::to_string(i));
    items.emplace_back(keys.back(), entity::json(static_cast<int>(i)));
  }
  mem.batch_store(items);
  asio::io_context io;
  asio::cancellation_signal signal;
  error_code ec;
  std::size_t loaded = 0;
  bool done = false;
  {
    entity::test::writer_blocker hold(db);  // PostgreSQL: the chunks wait for the connection
    mem.async_batch_load(
        keys, asio::bind_cancellation_slot(signal.slot(),
                                           asio::bind_executor(io, [&](error_code e, auto out) {
                                             ec = e;
                                             loaded = out.size();
                                             done = true;
                                           })));
    // SQLite: the chunks' tickets have not run yet.
    signal.emit(asio::cancellation_type::terminal);
  }
  run_until(io, done, 10s);
  ASSERT_TRUE(done);
  EXPECT_EQ(ec, errc::cancelled) << ec.message();
  EXPECT_EQ(loaded, 0u);
  EXPECT_EQ(mem.batch_load(keys).size(), keys.size());
}

// ---- SQLite only -------------------------------------------------------------------------------

ENTITY_CONCURRENT_TEST(SqliteCancel, CancelledWriteLeavesTheRestOfItsGroup) {
  auto infra = std::make_shared<entity::sqlite_infrastructure>();
  infra->startup();
  entity::database db(infra);
  db.execute("CREATE TABLE t (n INTEGER)");
  asio::io_context io;
  probe cancelled{io};
  std::vector<error_code> ecs(3);
  int left = 2;
  auto on = [&](std::size_t i) {
    return asio::bind_executor(io, [&, i](error_code e, entity::result) {
      ecs[i] = e;
      --left;
    });
  };
  {
    entity::test::writer_blocker hold(db);
    db.async_execute("INSERT INTO t VALUES (1)", {}, on(0));
    db.async_execute(sqlite_runaway_insert, {}, cancelled.handler());
    db.async_execute("INSERT INTO t VALUES (3)", {}, on(2));
    io.poll();  // their tickets find the writer busy: the writer thread takes all three together
  }
  auto timer = cancelled.cancel_after(100ms);
  auto t0 = steady::now();
  io.restart();
  io.run();
  ASSERT_EQ(left, 0);
  ASSERT_TRUE(cancelled.done);
  EXPECT_LT(steady::now() - t0, 5s);
  EXPECT_FALSE(ecs[0]) << ecs[0].message();
  EXPECT_EQ(cancelled.ec, errc::cancelled) << cancelled.ec.message();
  EXPECT_FALSE(ecs[2]) << ecs[2].message();
  auto rows = db.fetch_all("SELECT n FROM t ORDER BY n");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].get<int>(0), 1);
  EXPECT_EQ(rows[1].get<int>(0), 3);
  auto s = db.stats();
  EXPECT_EQ(s.group_commits, 1u);  // the two others still committed as one group
  EXPECT_EQ(s.grouped_operations, 2u);
  EXPECT_EQ(s.errors, 1u);
  EXPECT_EQ(s.timeouts, 0u);
}

ENTITY_CONCURRENT_TEST(SqliteCancel, CancelInterruptsAStatementOnTheCallersLoop) {
  entity::sqlite_params p;
  p.inline_budget = 60s;  // the statements run on the loop until cancelled
  auto infra = std::make_shared<entity::sqlite_infrastructure>(p);
  infra->startup();
  entity::database db(infra);
  db.execute("CREATE TABLE t (n INTEGER)");
  asio::io_context io;
  for (const std::string& sql : {sqlite_runaway, sqlite_runaway_insert}) {
    SCOPED_TRACE(sql);
    asio::cancellation_signal signal;
    error_code ec;
    std::thread::id ran_on;
    auto inline_before = db.stats().inline_operations;
    db.async_execute(sql, {},
                     asio::bind_cancellation_slot(
                         signal.slot(), asio::bind_executor(io, [&](error_code e, entity::result) {
                           ec = e;
                           ran_on = std::this_thread::get_id();
                         })));
    // The loop's thread is busy with the statement: the cancellation comes from another.
    std::thread canceller([&] {
      std::this_thread::sleep_for(100ms);
      signal.emit(asio::cancellation_type::terminal);
    });
    auto t0 = steady::now();
    io.restart();
    io.run();
    canceller.join();
    EXPECT_LT(steady::now() - t0, 5s);
    EXPECT_EQ(ec, errc::cancelled) << ec.message();
    EXPECT_EQ(ran_on, std::this_thread::get_id());
    EXPECT_EQ(db.stats().inline_operations, inline_before + 1);  // it ran here, on the loop
  }
  std::optional<entity::row> next;
  db.async_fetch_one("SELECT 2", {}, asio::bind_executor(io, [&](error_code e, auto r) {
                       EXPECT_FALSE(e);
                       next = std::move(r);
                     }));
  io.restart();
  io.run();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->get<int>(0), 2);
  EXPECT_EQ(count_rows(db, "t"), 0);
  EXPECT_EQ(db.stats().timeouts, 0u);
}
