// Layer 1 and 2: short async work runs on the caller's event loop (infrastructure::defer and
// database's use of it). The engine-level contract first (a ticket runs its request on the
// calling thread, or hands it to the engine when destroyed unrun), then what it means for
// async code: reads and writes from coroutines run on the loop, writes still commit as groups,
// and nothing long or blocked holds the loop.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <entity/entity.hpp>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "concurrency.hpp"
#include "library_support.hpp"
#include "sqlite/overrun_memory.hpp"
#include "test_support.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using entity::errc;
using steady = std::chrono::steady_clock;

namespace {

// Counts to three million: tens of milliseconds of work, far past any inline budget.
const std::string long_count =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 3000000) "
    "SELECT count(*) FROM c";

using entity::test::started;

entity::request statement(std::string sql, entity::params args = {}) {
  entity::request r;
  r.kind = entity::request_kind::execute;
  r.sql = std::move(sql);
  r.args = std::move(args);
  return r;
}

// Records the outcome a completion receives and on which thread it came.
struct recorder {
  std::promise<entity::outcome> promise;
  std::future<entity::outcome> future = promise.get_future();
  std::atomic<int> calls{0};
  std::thread::id thread;

  entity::completion completion() {
    return [this](entity::outcome&& out) {
      thread = std::this_thread::get_id();
      if (calls.fetch_add(1) == 0) promise.set_value(std::move(out));
    };
  }
  entity::outcome get() {
    // Generous: under ThreadSanitizer the long statements below run for tens of seconds.
    if (future.wait_for(300s) != std::future_status::ready)
      throw std::runtime_error("the completion was never called");
    return future.get();
  }
};

class DeferredWork : public ::testing::Test {
 protected:
  entity::test::temp_dir dir;
  entity::sqlite_params params() const {
    entity::sqlite_params p;
    p.path = dir.file("deferred.db");
    return p;
  }
};

ENTITY_CONCURRENT_TEST_F(DeferredWork, AReadRunsOnTheThreadThatRunsItsTicket) {
  auto infra = started(params());
  recorder r;
  auto ticket = infra->defer(statement("SELECT 40 + ?", {2}), r.completion());
  ASSERT_NE(ticket, nullptr);
  EXPECT_EQ(r.calls.load(), 0) << "nothing runs before the ticket does";
  ticket->run();
  ASSERT_EQ(r.calls.load(), 1) << "a short read completes inside run()";
  EXPECT_EQ(r.thread, std::this_thread::get_id());
  auto out = r.get();
  ASSERT_FALSE(out.ec) << out.diag.message;
  EXPECT_EQ(out.res.rows.at(0).get<std::int64_t>(0), 42);
  EXPECT_EQ(infra->stats().inline_operations, 1u);
}

ENTITY_CONCURRENT_TEST_F(DeferredWork, AReadWhoseTicketIsDestroyedUnrunRunsOnTheEngine) {
  auto infra = started(params());
  recorder r;
  auto ticket = infra->defer(statement("SELECT 7"), r.completion());
  ASSERT_NE(ticket, nullptr);
  ticket.reset();
  auto out = r.get();
  ASSERT_FALSE(out.ec) << out.diag.message;
  EXPECT_EQ(out.res.rows.at(0).get<std::int64_t>(0), 7);
  EXPECT_NE(r.thread, std::this_thread::get_id());
  EXPECT_EQ(infra->stats().inline_operations, 0u);
}

ENTITY_CONCURRENT_TEST_F(DeferredWork, AReadPastTheBudgetIsInterruptedAndRunAgainOnAReader) {
  auto p = params();
  p.inline_budget = 200us;
  auto infra = started(p);
  recorder r;
  auto ticket = infra->defer(statement(long_count), r.completion());
  ASSERT_NE(ticket, nullptr);
  ticket->run();
  auto out = r.get();
  ASSERT_FALSE(out.ec) << out.diag.message;
  EXPECT_EQ(out.res.rows.at(0).get<std::int64_t>(0), 3000000);
  EXPECT_NE(r.thread, std::this_thread::get_id()) << "finished by a reader thread";
  EXPECT_EQ(infra->stats().inline_operations, 0u);
}

ENTITY_CONCURRENT_TEST_F(DeferredWork, AReadThatRanPastTheBudgetGoesStraightToAReaderNextTime) {
  auto p = params();
  p.inline_budget = 200us;
  auto infra = started(p);
  auto first = std::make_unique<recorder>();
  auto ticket = infra->defer(statement(long_count), first->completion());
  ASSERT_NE(ticket, nullptr);
  ticket->run();
  ASSERT_FALSE(first->get().ec);
  // The same statement again: no inline run that would cost the budget first, except one
  // retry in every retry_every.
  int tickets = 0;
  for (unsigned i = 0; i < entity::sqlite_detail::overrun_memory::retry_every; ++i) {
    recorder r;
    auto t = infra->defer(statement(long_count), r.completion());
    if (t) {
      ++tickets;
      t->run();
    }
    auto out = r.get();
    ASSERT_FALSE(out.ec) << out.diag.message;
    EXPECT_EQ(out.res.rows.at(0).get<std::int64_t>(0), 3000000);
    EXPECT_NE(r.thread, std::this_thread::get_id());
  }
  EXPECT_EQ(tickets, 1) << "one retry inline in retry_every";
  // Other statements still run inline.
  recorder short_one;
  auto t = infra->defer(statement("SELECT 1"), short_one.completion());
  ASSERT_NE(t, nullptr);
  t->run();
  EXPECT_EQ(short_one.thread, std::this_thread::get_id());
}

ENTITY_CONCURRENT_TEST_F(DeferredWork, AReadThatBecameShortRunsInlineAgainAfterItsRetry) {
  auto p = params();
  p.inline_budget = 200us;
  auto infra = started(p);
  entity::database db(infra);
  db.execute("CREATE TABLE n(x INTEGER)");
  db.execute(
      "INSERT INTO n WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c "
      "WHERE x < 2000000) SELECT x FROM c");
  // A full scan with a function on every row: far past the budget while the table is big.
  const std::string sum = "SELECT sum(abs(x) + length(x)) FROM n";
  auto run_deferred = [&] {
    recorder r;
    auto t = infra->defer(statement(sum), r.completion());
    const bool had_ticket = t != nullptr;
    if (t) t->run();
    auto out = r.get();
    EXPECT_FALSE(out.ec) << out.diag.message;
    return std::pair{had_ticket, r.thread == std::this_thread::get_id()};
  };
  EXPECT_EQ(run_deferred(), std::pair(true, false)) << "tried inline, finished on a reader";
  db.execute("DELETE FROM n WHERE x > 1");
  // Sent to the readers until the retry, which now fits the budget: from then on, inline.
  bool retried = false;
  for (unsigned i = 0; i < entity::sqlite_detail::overrun_memory::retry_every && !retried; ++i)
    retried = run_deferred().first;
  ASSERT_TRUE(retried);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(run_deferred(), std::pair(true, true)) << i;
}

ENTITY_CONCURRENT_TEST_F(DeferredWork, AWriteThatRanPastTheBudgetGoesStraightToTheWriterNextTime) {
  auto p = params();
  p.inline_budget = 200us;
  auto infra = started(p);
  entity::database db(infra);
  db.execute("CREATE TABLE t(x INTEGER)");
  const std::string big =
      "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c "
      "WHERE x < 300000) SELECT x FROM c";
  {
    recorder r;
    auto t = infra->defer(statement(big), r.completion());
    ASSERT_NE(t, nullptr);
    t->run();
    ASSERT_FALSE(r.get().ec);
  }
  recorder again;
  auto t = infra->defer(statement(big), again.completion());
  EXPECT_EQ(t, nullptr) << "no ticket: the writer thread takes it at once";
  auto out = again.get();
  ASSERT_FALSE(out.ec) << out.diag.message;
  EXPECT_EQ(out.res.rows_affected, 300000);
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM t")->get<std::int64_t>(0), 600000);
}

ENTITY_CONCURRENT_TEST_F(DeferredWork,
                         WritesDeferredTogetherCommitAsOneGroupWhenTheFirstTicketRuns) {
  auto infra = started(params());
  entity::database db(infra);
  db.execute("CREATE TABLE t(x INTEGER)");
  auto before = infra->stats();
  std::vector<std::unique_ptr<recorder>> recs;
  std::vector<std::unique_ptr<entity::deferred_work>> tickets;
  for (int i = 0; i < 5; ++i) {
    recs.push_back(std::make_unique<recorder>());
    tickets.push_back(
        infra->defer(statement("INSERT INTO t VALUES (?)", {i}), recs.back()->completion()));
    // The first gets a ticket; the others, deferred from its thread before it ran, ride on it.
    if (i == 0)
      ASSERT_NE(tickets.back(), nullptr);
    else
      ASSERT_EQ(tickets.back(), nullptr) << "write " << i << " posted a ticket of its own";
  }
  EXPECT_EQ(infra->stats().queued_operations, 5u);  // all waiting for the first ticket
  tickets.front()->run();
  for (auto& r : recs) {
    ASSERT_EQ(r->calls.load(), 1) << "every queued write committed with the first ticket";
    auto out = r->get();
    EXPECT_FALSE(out.ec) << out.diag.message;
    EXPECT_EQ(out.res.rows_affected, 1);
  }
  tickets.clear();
  for (auto& r : recs) EXPECT_EQ(r->calls.load(), 1) << "each completion is called once";
  auto after = infra->stats();
  EXPECT_EQ(after.group_commits - before.group_commits, 1u);
  EXPECT_EQ(after.grouped_operations - before.grouped_operations, 5u);
  EXPECT_EQ(after.inline_operations - before.inline_operations, 5u);
  EXPECT_EQ(db.fetch_one("SELECT count(*), sum(x) FROM t")->get<std::int64_t>(1), 10);
}

ENTITY_CONCURRENT_TEST_F(DeferredWork, AWriteWhoseTicketIsDestroyedUnrunIsCommittedByTheWriter) {
  auto infra = started(params());
  entity::database db(infra);
  db.execute("CREATE TABLE t(x INTEGER)");
  recorder r;
  auto ticket = infra->defer(statement("INSERT INTO t VALUES (1)"), r.completion());
  ASSERT_NE(ticket, nullptr);
  ticket.reset();
  auto out = r.get();
  ASSERT_FALSE(out.ec) << out.diag.message;
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM t")->get<std::int64_t>(0), 1);
}

ENTITY_CONCURRENT_TEST_F(DeferredWork, ASyncWriterTakesAlongWritesWaitingForTheirTickets) {
  auto infra = started(params());
  entity::database db(infra);
  db.execute("CREATE TABLE t(x INTEGER)");
  recorder r;
  auto ticket = infra->defer(statement("INSERT INTO t VALUES (1)"), r.completion());
  ASSERT_NE(ticket, nullptr);
  db.execute("INSERT INTO t VALUES (2)");  // leads a group: the deferred write is in it
  ASSERT_EQ(r.calls.load(), 1);
  EXPECT_FALSE(r.get().ec);
  ticket->run();
  EXPECT_EQ(r.calls.load(), 1);
  EXPECT_EQ(db.fetch_one("SELECT sum(x) FROM t")->get<std::int64_t>(0), 3);
}

ENTITY_CONCURRENT_TEST_F(DeferredWork, WritesRidingOnATicketDestroyedUnrunAreCommittedByTheWriter) {
  auto infra = started(params());
  entity::database db(infra);
  db.execute("CREATE TABLE t(x INTEGER)");
  recorder first, rider1, rider2;
  auto ticket = infra->defer(statement("INSERT INTO t VALUES (1)"), first.completion());
  ASSERT_NE(ticket, nullptr);
  EXPECT_EQ(infra->defer(statement("INSERT INTO t VALUES (2)"), rider1.completion()), nullptr);
  EXPECT_EQ(infra->defer(statement("INSERT INTO t VALUES (3)"), rider2.completion()), nullptr);
  ticket.reset();
  for (recorder* r : {&first, &rider1, &rider2}) {
    auto out = r->get();
    EXPECT_FALSE(out.ec) << out.diag.message;
    EXPECT_NE(r->thread, std::this_thread::get_id()) << "committed by the writer thread";
  }
  EXPECT_EQ(db.fetch_one("SELECT sum(x) FROM t")->get<std::int64_t>(0), 6);
}

ENTITY_CONCURRENT_TEST_F(DeferredWork, AWriteDeferredFromAnotherThreadGetsATicketOfItsOwn) {
  auto infra = started(params());
  entity::database db(infra);
  db.execute("CREATE TABLE t(x INTEGER)");
  recorder here, there;
  auto mine = infra->defer(statement("INSERT INTO t VALUES (1)"), here.completion());
  ASSERT_NE(mine, nullptr);
  std::unique_ptr<entity::deferred_work> theirs;
  std::thread other([&] {
    theirs = infra->defer(statement("INSERT INTO t VALUES (2)"), there.completion());
    ASSERT_NE(theirs, nullptr) << "another thread's loop must not wait for this one's ticket";
    theirs->run();
  });
  other.join();
  EXPECT_FALSE(there.get().ec);
  mine->run();
  EXPECT_FALSE(here.get().ec);
  EXPECT_EQ(db.fetch_one("SELECT sum(x) FROM t")->get<std::int64_t>(0), 3);
}

ENTITY_CONCURRENT_TEST_F(DeferredWork, AWriteThatRunsPastTheBudgetIsCommittedByTheWriterThread) {
  auto p = params();
  p.inline_budget = 200us;
  auto infra = started(p);
  entity::database db(infra);
  db.execute("CREATE TABLE t(x INTEGER)");
  recorder big, small;
  auto t1 = infra->defer(
      statement("INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c "
                "WHERE x < 300000) SELECT x FROM c"),
      big.completion());
  auto t2 = infra->defer(statement("INSERT INTO t VALUES (-1)"), small.completion());
  ASSERT_NE(t1, nullptr);
  EXPECT_EQ(t2, nullptr) << "the second write rides on the first one's ticket";
  t1->run();
  auto small_out = small.get();
  EXPECT_FALSE(small_out.ec) << small_out.diag.message;
  auto big_out = big.get();
  ASSERT_FALSE(big_out.ec) << big_out.diag.message;
  EXPECT_EQ(big_out.res.rows_affected, 300000);
  EXPECT_NE(big.thread, std::this_thread::get_id()) << "finished by the writer thread";
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM t")->get<std::int64_t>(0), 300001);
}

ENTITY_CONCURRENT_TEST_F(DeferredWork, AWriteStoppedAtTheBudgetIsAppliedExactlyOnce) {
  // SQLite consults the progress handler once more after a statement has halted, and with a
  // budget this short that last call is often the one that finds it spent: a lone write that
  // had already committed by itself then reported SQLITE_INTERRUPT, went to the writer thread
  // and ran a second time.
  auto p = params();
  p.inline_budget = 1us;
  auto infra = started(p);
  entity::database db(infra);
  db.execute("CREATE TABLE t(n INTEGER)");
  constexpr int n = 2000;
  for (int i = 0; i < n; ++i) {
    recorder r;
    // A statement of its own each time: one the budget stopped would otherwise go straight to
    // the writer thread the next times (overrun_memory), and never be tried inline again.
    auto ticket =
        infra->defer(statement("INSERT INTO t VALUES (" + std::to_string(i) + ")"), r.completion());
    ASSERT_NE(ticket, nullptr);
    ticket->run();
    auto out = r.get();
    ASSERT_FALSE(out.ec) << out.diag.message;
    ASSERT_EQ(out.res.rows_affected, 1);
  }
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM t")->get<std::int64_t>(0), n);
  EXPECT_EQ(db.fetch_one("SELECT count(DISTINCT n) FROM t")->get<std::int64_t>(0), n);
}

ENTITY_CONCURRENT_TEST_F(DeferredWork, AWriteWhoseCommitFindsAReaderIsCommittedByTheWriterThread) {
  // A :memory: database has no WAL: a reader in a transaction holds the lock a commit needs,
  // and a caller's thread does not wait for it. The write goes to the writer thread, which
  // waits, and commits it once the reader is done.
  entity::sqlite_params p;  // ":memory:"
  auto infra = started(p);
  entity::database db(infra);
  db.execute("CREATE TABLE t(n INTEGER)");
  recorder r;
  {
    auto reader = db.acquire();
    reader->execute("BEGIN");
    EXPECT_EQ(reader->fetch_one("SELECT count(*) FROM t")->get<std::int64_t>(0), 0);
    auto ticket = infra->defer(statement("INSERT INTO t VALUES (1)"), r.completion());
    ASSERT_NE(ticket, nullptr);
    ticket->run();
    EXPECT_EQ(r.future.wait_for(100ms), std::future_status::timeout)
        << "the commit cannot happen while the reader holds its lock";
    reader->execute("COMMIT");
  }
  auto out = r.get();
  ASSERT_FALSE(out.ec) << out.diag.message;
  EXPECT_NE(r.thread, std::this_thread::get_id()) << "committed by the writer thread";
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM t")->get<std::int64_t>(0), 1);
}

ENTITY_CONCURRENT_TEST_F(DeferredWork, TransactionsScriptsAndDurableWritesAreNeverLeftToTheCaller) {
  {
    auto infra = started(params());
    recorder r;
    entity::request tx;
    tx.kind = entity::request_kind::transaction;
    tx.body = [](entity::session& s) { s.execute("CREATE TABLE IF NOT EXISTS t(x)"); };
    EXPECT_EQ(infra->defer(std::move(tx), r.completion()), nullptr);
    EXPECT_FALSE(r.get().ec);
    recorder s;
    entity::request script;
    script.kind = entity::request_kind::script;
    script.sql = "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)";
    EXPECT_EQ(infra->defer(std::move(script), s.completion()), nullptr);
    EXPECT_FALSE(s.get().ec);
  }
  auto durable = entity::sqlite_params::durable(dir.file("durable.db"));
  auto infra = started(durable);
  entity::database(infra).execute("CREATE TABLE t(x)");
  recorder w;
  EXPECT_EQ(infra->defer(statement("INSERT INTO t VALUES (1)"), w.completion()), nullptr)
      << "a commit that waits for the disk stays off the caller's thread";
  EXPECT_FALSE(w.get().ec);
  recorder rd;
  auto read = infra->defer(statement("SELECT count(*) FROM t"), rd.completion());
  EXPECT_NE(read, nullptr) << "reads still may";
  read.reset();
  EXPECT_FALSE(rd.get().ec);
}

ENTITY_CONCURRENT_TEST_F(DeferredWork, AZeroBudgetTurnsItOff) {
  auto p = params();
  p.inline_budget = 0us;
  auto infra = started(p);
  recorder r;
  EXPECT_EQ(infra->defer(statement("SELECT 1"), r.completion()), nullptr);
  EXPECT_FALSE(r.get().ec);
}

ENTITY_CONCURRENT_TEST_F(DeferredWork, AnEngineNotRunningFailsTheRequestAtOnce) {
  entity::sqlite_infrastructure infra(params());
  recorder r;
  EXPECT_EQ(infra.defer(statement("SELECT 1"), r.completion()), nullptr);
  EXPECT_EQ(r.get().ec, errc::not_started);
}

// ---- through the async API ------------------------------------------------------------------

class InlineAsync : public DeferredWork {};

ENTITY_CONCURRENT_TEST_F(InlineAsync, CoroutineReadsAndWritesRunOnTheirLoopAndWritesStillGroup) {
  auto p = params();
  // What is counted is where the requests run; a budget far above any store's time keeps a
  // slow moment of a loaded machine (or a sanitizer's) from sending one to the engine's threads.
  p.inline_budget = 50ms;
  auto infra = started(p);
  entity::database db(infra);
  entity::memory mem(db);
  mem.store("warm", 0);
  auto before = infra->stats();
  asio::io_context io;
  constexpr int workers = 20, each = 50;
  std::atomic<int> errors{0};
  for (int w = 0; w < workers; ++w) {
    asio::co_spawn(
        io,
        [&, w]() -> asio::awaitable<void> {
          for (int i = 0; i < each; ++i) {
            std::string key = std::to_string(w) + "/" + std::to_string(i);
            co_await mem.async_store(key, i, asio::use_awaitable);
            auto v = co_await mem.async_load(key, asio::use_awaitable);
            if (!v || *v != i) ++errors;
          }
        },
        [&](std::exception_ptr e) {
          if (e) ++errors;
        });
  }
  io.run();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(mem.size(), workers * each + 1);
  auto after = infra->stats();
  EXPECT_EQ(after.inline_operations - before.inline_operations, 2u * workers * each)
      << "with the loop's own thread free, every store and load ran on it";
  EXPECT_GT(after.group_commits, before.group_commits);
  EXPECT_GT(after.mean_group_size, 2.0) << "20 coroutines' stores commit together";
}

ENTITY_CONCURRENT_TEST_F(InlineAsync, ALongQueryDoesNotHoldTheLoop) {
  auto p = params();
  p.inline_budget = 200us;
  auto infra = started(p);
  entity::database db(infra);
  asio::io_context io;
  std::atomic<int> ticks{0};
  std::atomic<bool> query_done{false};
  std::int64_t counted = 0;
  std::string failure;
  // A deadline far past the statement's time even under a sanitizer; whatever happens, the
  // timer below stops when the query does.
  auto patient = db.with_timeout(std::chrono::minutes(10));
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          auto r = co_await patient.async_fetch_one(long_count, {}, asio::use_awaitable);
          counted = r->get<std::int64_t>(0);
        } catch (const std::exception& e) {
          failure = e.what();
        }
        query_done = true;
      },
      asio::detached);
  // A timer on the same loop ticks while the query runs elsewhere.
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        asio::steady_timer t(co_await asio::this_coro::executor);
        while (!query_done) {
          t.expires_after(1ms);
          co_await t.async_wait(asio::use_awaitable);
          if (!query_done) ++ticks;
        }
      },
      asio::detached);
  io.run();
  EXPECT_EQ(failure, "");
  EXPECT_EQ(counted, 3000000);
  EXPECT_GT(ticks.load(), 0) << "the loop ran its timer while the query was on a reader";
}

ENTITY_CONCURRENT_TEST_F(InlineAsync, AWriteBlockedByAnotherProcessesLockDoesNotHoldTheLoop) {
  auto p = params();
  p.busy_timeout = 20s;  // a loop that waited for the lock would wait this long
  auto infra = started(p);
  entity::database db(infra);
  db.execute("CREATE TABLE t(x INTEGER)");

  // Another connection (as another process would) holds the write lock; a timer on the loop
  // releases it. The write can only succeed soon if the loop keeps running meanwhile.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(p.path.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);

  asio::io_context io;
  steady::time_point released{};
  asio::steady_timer release(io, 50ms);
  release.async_wait([&](boost::system::error_code) {
    sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr);
    released = steady::now();
  });
  auto start = steady::now();
  bool written = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        std::string sql = "INSERT INTO t VALUES (2)";
        co_await db.async_execute(sql, {}, asio::use_awaitable);
        written = true;
      },
      asio::detached);
  io.run();
  sqlite3_close(other);
  EXPECT_TRUE(written);
  ASSERT_NE(released, steady::time_point{});
  EXPECT_LT(released - start, 10s) << "the lock's release waited for the write's busy wait";
  EXPECT_EQ(db.fetch_one("SELECT sum(x) FROM t")->get<std::int64_t>(0), 2);
}

ENTITY_CONCURRENT_TEST_F(InlineAsync, TheLogIsStillCheckpointedWhenEveryCommitIsMadeOnTheLoop) {
  auto infra = started(params());
  entity::memory mem{entity::database(infra)};
  mem.store("warm", 0);
  asio::io_context io;
  const std::string text(2000, 'x');  // 20 MB in all: far past the checkpoint threshold
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 10000; ++i) {
          std::string key = std::to_string(i % 500);
          co_await mem.async_store(key, text, asio::use_awaitable);
        }
      },
      asio::detached);
  io.run();
  // Most commits were made on the loop (those that came while the writer thread held the log
  // for a checkpoint went to it).
  EXPECT_GT(infra->stats().inline_operations, 5000u);
  // The writer thread checkpoints after the loop's commits: the log is reused from its start
  // instead of growing with everything ever written.
  auto wal = std::filesystem::file_size(params().path + "-wal");
  EXPECT_LT(wal, 10u * 1024 * 1024) << "the write-ahead log was never checkpointed";
  EXPECT_EQ(mem.size(), 501);
}

ENTITY_CONCURRENT_TEST_F(InlineAsync, SyncWritersOnOtherThreadsAndCoroutineWritersShareTheQueue) {
  auto infra = started(params());
  entity::memory mem{entity::database(infra)};
  mem.store("warm", 0);
  asio::io_context io;
  std::atomic<int> errors{0};
  for (int w = 0; w < 10; ++w) {
    asio::co_spawn(
        io,
        [&, w]() -> asio::awaitable<void> {
          for (int i = 0; i < 100; ++i) {
            std::string key = "a" + std::to_string(w * 100 + i);
            co_await mem.async_store(key, i, asio::use_awaitable);
          }
        },
        [&](std::exception_ptr e) {
          if (e) ++errors;
        });
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) mem.store("s" + std::to_string(t * 500 + i), i);
    });
  io.run();
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(mem.size(), 1000 + 1000 + 1);
}

}  // namespace
