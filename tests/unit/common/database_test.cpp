// Layer 2: entity::database, its sync operations and the async ones with every kind of
// completion token. The suite runs on every backend (SQLite and PostgreSQL), each test on a
// database of its own; what only one backend does is tested at the end.
#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstring>
#include <entity/entity.hpp>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "backends.hpp"
#include "concurrency.hpp"
#include "library_support.hpp"
#include "test_support.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using entity::errc;
using entity::error_code;

namespace {

using entity::test::bytes;
using entity::test::count_rows;
using entity::test::run_coroutine;

}  // namespace

class Database : public entity::test::backend_test {};
ENTITY_INSTANTIATE_ON_EVERY_BACKEND(Database);

// ---- sync CRUD -------------------------------------------------------------------------------

TEST_P(Database, Crud) {
  auto db = open();
  db.execute("CREATE TABLE people (id " + auto_key() +
             ", name TEXT NOT NULL, score DOUBLE PRECISION, photo " + blob_type() + ", note TEXT)");

  auto r = db.execute("INSERT INTO people (name, score, photo, note) VALUES (?, ?, ?, ?)",
                      {"ada", 9.5, bytes({1, 2, 0, 255}), entity::null});
  EXPECT_EQ(r.rows_affected, 1);
  if (on_sqlite()) EXPECT_EQ(r.last_insert_id, 1);  // PostgreSQL: always 0, use RETURNING
  EXPECT_TRUE(r.empty());
  r = db.execute("INSERT INTO people (name, score, photo, note) VALUES (?, ?, ?, ?)",
                 {"bob", 7.25, bytes({}), "likes tea"});
  EXPECT_EQ(r.rows_affected, 1);
  if (on_sqlite()) EXPECT_EQ(r.last_insert_id, 2);
  r = db.execute("INSERT INTO people (name) VALUES (?)", {std::string("cy")});
  if (on_sqlite()) EXPECT_EQ(r.last_insert_id, 3);

  auto row =
      db.fetch_one("SELECT id, name, score, photo, note FROM people WHERE name = ?", {"ada"});
  ASSERT_TRUE(row);
  EXPECT_EQ(row->column_names(),
            (std::vector<std::string>{"id", "name", "score", "photo", "note"}));
  EXPECT_EQ(row->size(), 5u);
  EXPECT_EQ(row->get<std::int64_t>("id"), 1);
  EXPECT_EQ(row->get<std::string>("name"), "ada");
  EXPECT_EQ(row->get<double>("score"), 9.5);
  EXPECT_EQ(row->get<entity::blob>("photo"), bytes({1, 2, 0, 255}));
  EXPECT_EQ(row->get<std::optional<std::string>>("note"), std::nullopt);
  EXPECT_EQ(row->get<std::optional<std::int64_t>>(0), 1);
  EXPECT_TRUE(row->at("note").is_null());
  EXPECT_EQ(row->get<double>(0), 1.0);  // an integer reads as a double on request

  auto all = db.fetch_all("SELECT name, note FROM people ORDER BY id");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].get<std::string>("name"), "ada");
  EXPECT_EQ(all[1].get<std::string>(0), "bob");
  EXPECT_EQ(all[1].get<std::optional<std::string>>("note"), "likes tea");
  EXPECT_EQ(all[2].get<std::string>("name"), "cy");
  EXPECT_EQ(all[2].column_names(), (std::vector<std::string>{"name", "note"}));

  r = db.execute("UPDATE people SET score = score + 1 WHERE score IS NOT NULL");
  EXPECT_EQ(r.rows_affected, 2);
  EXPECT_EQ(db.fetch_one("SELECT score FROM people WHERE id = 2")->get<double>(0), 8.25);
  r = db.execute("DELETE FROM people WHERE name = ?", {"bob"});
  EXPECT_EQ(r.rows_affected, 1);
  EXPECT_EQ(count_rows(db, "people"), 2);

  EXPECT_EQ(db.fetch_one("SELECT * FROM people WHERE name = ?", {"nobody"}), std::nullopt);
  EXPECT_TRUE(db.fetch_all("SELECT * FROM people WHERE id > 100").empty());
}

TEST_P(Database, InsertReturningGivesItsRows) {
  auto db = open();
  db.execute("CREATE TABLE t (id " + auto_key() + ", a TEXT)");
  auto row = db.fetch_one("INSERT INTO t (a) VALUES (?) RETURNING id, a", {"x"});
  ASSERT_TRUE(row);
  EXPECT_EQ(row->get<int>("id"), 1);
  EXPECT_EQ(row->get<std::string>("a"), "x");
  // fetch_one keeps one row, but the statement still inserts every row.
  db.fetch_one("INSERT INTO t (a) VALUES ('y'), ('z') RETURNING id");
  EXPECT_EQ(count_rows(db, "t"), 3);
}

TEST_P(Database, RowsAffectedCountsOnlyTheStatementsOwnChanges) {
  auto db = open();
  db.execute("CREATE TABLE t (a INTEGER)");
  EXPECT_EQ(db.execute("INSERT INTO t VALUES (1), (2), (3)").rows_affected, 3);
  // Statements that change no rows report none, not the previous statement's count.
  EXPECT_EQ(db.execute("CREATE TABLE u (b INTEGER)").rows_affected, 0);
  EXPECT_EQ(db.execute("CREATE INDEX t_a ON t (a)").rows_affected, 0);
  EXPECT_EQ(db.execute("UPDATE t SET a = 0 WHERE a > 100").rows_affected, 0);
  EXPECT_EQ(db.fetch_all("SELECT * FROM t").size(), 3u);
}

TEST_P(Database, ColumnNamesFollowSchemaChanges) {
  // Every read runs on the same connection (and, on SQLite, its cached statement).
  auto db = open({.pool_size = 1});
  db.execute("CREATE TABLE t (a INTEGER, b INTEGER)");
  db.execute("INSERT INTO t VALUES (1, 2)");
  EXPECT_EQ(db.fetch_one("SELECT * FROM t")->column_names(), (std::vector<std::string>{"a", "b"}));
  db.execute("ALTER TABLE t RENAME COLUMN a TO c");
  auto row = db.fetch_one("SELECT * FROM t");
  EXPECT_EQ(row->column_names(), (std::vector<std::string>{"c", "b"}));
  EXPECT_EQ(row->get<int>("c"), 1);
}

// ---- scripts, batches, transactions ----------------------------------------------------------

TEST_P(Database, ExecuteScriptRunsEveryStatement) {
  auto db = open();
  db.execute_script(R"(
    -- a schema and some data
    CREATE TABLE a (x INTEGER);
    CREATE TABLE b (y TEXT);
    INSERT INTO a VALUES (1), (2);
    INSERT INTO b VALUES ('semi;colon');
  )");
  EXPECT_EQ(count_rows(db, "a"), 2);
  EXPECT_EQ(db.fetch_one("SELECT y FROM b")->get<std::string>(0), "semi;colon");

  // A script may hold its own transaction.
  db.execute_script("BEGIN; INSERT INTO a VALUES (3); COMMIT;");
  EXPECT_EQ(count_rows(db, "a"), 3);

  // One that leaves it open is rolled back and reported.
  error_code ec;
  entity::diagnostics diag;
  db.execute_script("BEGIN; INSERT INTO a VALUES (4);", ec, diag);
  EXPECT_EQ(ec, errc::transaction_open);
  EXPECT_EQ(count_rows(db, "a"), 3);
  db.execute("INSERT INTO a VALUES (5)");  // and the writer is usable afterwards
  EXPECT_EQ(count_rows(db, "a"), 4);

  // A failing statement stops the script and names itself (the first statement is long
  // enough that an excerpt of the whole script would not reach the failing one). The
  // statements before it stay, as they would typed one by one.
  db.execute_script(
      "INSERT INTO a SELECT 6 WHERE 'a condition long enough to push what follows out of an "
      "excerpt' <> ''; INSERT INTO nowhere VALUES (1); INSERT INTO a VALUES (7);",
      ec, diag);
  EXPECT_EQ(ec, entity::condition::syntax);
  EXPECT_NE(diag.sql.find("nowhere"), std::string::npos) << diag.sql;
  EXPECT_NE(diag.message.find("nowhere"), std::string::npos) << diag.message;
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM a WHERE x = 6")->get<int>(0), 1);
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM a WHERE x = 7")->get<int>(0), 0);
}

TEST_P(Database, ExecuteRejectsSeveralStatements) {
  auto db = open();
  db.execute("CREATE TABLE t (a INTEGER)");
  error_code ec;
  entity::diagnostics diag;
  db.execute("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)", {}, ec, diag);
  EXPECT_EQ(ec, errc::invalid_argument);
  EXPECT_NE(diag.message.find("execute_script"), std::string::npos) << diag.message;
  EXPECT_EQ(count_rows(db, "t"), 0);
}

TEST_P(Database, ExecuteManyInsertsEveryRow) {
  auto db = open();
  db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)");
  std::vector<entity::params> batch;
  for (int i = 0; i < 100; ++i) batch.push_back({i, "n" + std::to_string(i)});
  auto r = db.execute_many("INSERT INTO t VALUES (?, ?)", batch);
  EXPECT_EQ(r.rows_affected, 100);
  EXPECT_EQ(count_rows(db, "t"), 100);
  EXPECT_EQ(db.execute_many("UPDATE t SET name = ? WHERE id < ?", {{"low", 10}, {"lower", 5}})
                .rows_affected,
            15);
  EXPECT_EQ(db.execute_many("INSERT INTO t VALUES (?, ?)", {}).rows_affected, 0);
}

ENTITY_CONCURRENT_TEST_P(Database, ExecuteManyIsAllOrNothing) {
  auto db = open();
  db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)");
  std::vector<entity::params> batch;
  for (int i = 0; i < 1000; ++i) batch.push_back({i == 500 ? 0 : i});  // row 500 repeats row 0
  error_code ec;
  entity::diagnostics diag;
  db.execute_many("INSERT INTO t VALUES (?)", batch, ec, diag);
  EXPECT_EQ(ec, entity::condition::constraint) << diag.to_string();
  EXPECT_EQ(count_rows(db, "t"), 0);

  // A wrong parameter count in the middle aborts the whole batch too.
  std::vector<entity::params> uneven = {{1}, {2}, {3, 4}, {5}};
  db.execute_many("INSERT INTO t VALUES (?)", uneven, ec, diag);
  EXPECT_EQ(ec, errc::invalid_argument);
  EXPECT_EQ(count_rows(db, "t"), 0);

  std::promise<error_code> async_ec;
  db.async_execute_many("INSERT INTO t VALUES (?)", batch,
                        [&](error_code e, entity::result) { async_ec.set_value(e); });
  EXPECT_EQ(async_ec.get_future().get(), entity::condition::constraint);
  EXPECT_EQ(count_rows(db, "t"), 0);
}

TEST_P(Database, TransactionCommits) {
  auto db = open();
  db.execute("CREATE TABLE accounts (name TEXT PRIMARY KEY, balance INTEGER)");
  db.execute("INSERT INTO accounts VALUES ('a', 100), ('b', 0)");
  db.transaction([](entity::session& s) {
    auto a = s.fetch_one("SELECT balance FROM accounts WHERE name = ?", {"a"});
    s.execute("UPDATE accounts SET balance = balance - ? WHERE name = 'a'", {a->get<int>(0) / 2});
    s.execute("UPDATE accounts SET balance = balance + 50 WHERE name = 'b'");
    EXPECT_EQ(s.fetch_all("SELECT * FROM accounts").size(), 2u);
  });
  EXPECT_EQ(db.fetch_one("SELECT balance FROM accounts WHERE name = 'a'")->get<int>(0), 50);
  EXPECT_EQ(db.fetch_one("SELECT balance FROM accounts WHERE name = 'b'")->get<int>(0), 50);
}

TEST_P(Database, TransactionRollsBackWhenTheBodyThrows) {
  auto db = open();
  db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)");
  db.execute("INSERT INTO t VALUES (1)");

  // Anything thrown is rethrown as itself.
  EXPECT_THROW(db.transaction([](entity::session& s) {
    s.execute("INSERT INTO t VALUES (2)");
    s.execute("DELETE FROM t WHERE id = 1");
    throw std::runtime_error("no");
  }),
               std::runtime_error);
  EXPECT_EQ(count_rows(db, "t"), 1);
  EXPECT_EQ(db.fetch_one("SELECT id FROM t")->get<int>(0), 1);

  // A failing statement inside the body rolls back what ran before it.
  try {
    db.transaction([](entity::session& s) {
      s.execute("INSERT INTO t VALUES (3)");
      s.execute("INSERT INTO t VALUES (1)");  // duplicate key
    });
    FAIL() << "the transaction committed";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), entity::condition::constraint);
  }
  EXPECT_EQ(count_rows(db, "t"), 1);

  error_code ec;
  entity::diagnostics diag;
  db.transaction(
      [](entity::session& s) {
        s.execute("INSERT INTO t VALUES (4)");
        throw 42;
      },
      ec, diag);
  EXPECT_EQ(ec, errc::aborted);
  EXPECT_EQ(count_rows(db, "t"), 1);
}

ENTITY_CONCURRENT_TEST_P(Database, AsyncTransactionReportsAbortedOrTheErrorsCode) {
  auto db = open();
  db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)");
  run_coroutine([&]() -> asio::awaitable<void> {
    co_await db.async_transaction([](entity::session& s) { s.execute("INSERT INTO t VALUES (1)"); },
                                  asio::use_awaitable);

    entity::diagnostics diag;
    auto [ec] = co_await db.async_transaction(
        [](entity::session& s) {
          s.execute("INSERT INTO t VALUES (2)");
          throw std::runtime_error("body gave up");
        },
        diag, asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(ec, errc::aborted);
    EXPECT_NE(diag.message.find("body gave up"), std::string::npos) << diag.message;

    auto [ec2] = co_await db.async_transaction(
        [](entity::session& s) {
          s.execute("INSERT INTO t VALUES (3)");
          s.execute("INSERT INTO t VALUES (1)");
        },
        asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(ec2, entity::condition::constraint);
  });
  auto ids = db.fetch_all("SELECT id FROM t");
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(ids[0].get<int>(0), 1);
}

// ---- errors ----------------------------------------------------------------------------------

TEST_P(Database, InvalidSqlReportsSyntaxAndNamesTheSql) {
  auto db = open();
  try {
    db.execute("SELEC * FROM everywhere");
    FAIL() << "invalid SQL ran";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), entity::condition::syntax);
    EXPECT_EQ(e.code().category(), backend_category());
    EXPECT_NE(e.diag().sql.find("SELEC * FROM everywhere"), std::string::npos);
    EXPECT_NE(e.diag().message.find("syntax error"), std::string::npos) << e.diag().message;
    EXPECT_NE(std::string(e.what()).find("SELEC * FROM everywhere"), std::string::npos) << e.what();
  }
  error_code ec;
  entity::diagnostics diag;
  db.fetch_all("SELECT * FROM no_such_table", {}, ec, diag);
  EXPECT_EQ(ec, entity::condition::syntax);
  EXPECT_NE(diag.message.find("no_such_table"), std::string::npos) << diag.message;
  EXPECT_EQ(diag.sql, "SELECT * FROM no_such_table");
}

TEST_P(Database, WrongParameterCountIsInvalidArgument) {
  auto db = open();
  db.execute("CREATE TABLE t (a INTEGER, b INTEGER)");
  error_code ec;
  entity::diagnostics diag;
  db.execute("INSERT INTO t VALUES (?, ?)", {1}, ec, diag);
  EXPECT_EQ(ec, errc::invalid_argument);
  EXPECT_NE(diag.message.find("2 parameters"), std::string::npos) << diag.message;
  db.fetch_one("SELECT ?", {1, 2}, ec, diag);
  EXPECT_EQ(ec, errc::invalid_argument);
  EXPECT_THROW(db.fetch_all("SELECT 1", {1}), entity::error);
  EXPECT_EQ(count_rows(db, "t"), 0);
}

TEST_P(Database, ConstraintViolationIsReported) {
  auto db = open();
  db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)");
  db.execute("INSERT INTO t VALUES (1, 'a')");
  error_code ec;
  entity::diagnostics diag;
  db.execute("INSERT INTO t VALUES (1, 'b')", {}, ec, diag);
  EXPECT_EQ(ec, entity::condition::constraint);
  db.execute("INSERT INTO t VALUES (2, NULL)", {}, ec, diag);
  EXPECT_EQ(ec, entity::condition::constraint);
  // SQLite: "NOT NULL constraint failed: t.name"; PostgreSQL: "null value in column "name"
  // ... violates not-null constraint".
  EXPECT_NE(diag.message.find("name"), std::string::npos) << diag.message;
  EXPECT_NE(diag.message.find(on_sqlite() ? "NOT NULL" : "not-null"), std::string::npos)
      << diag.message;
  EXPECT_EQ(count_rows(db, "t"), 1);
}

// ---- health and stats ------------------------------------------------------------------------

ENTITY_CONCURRENT_TEST_P(Database, HealthCheckSyncAndAsync) {
  auto infra = open_engine();
  entity::database db(infra);
  EXPECT_TRUE(db.health_check());
  std::promise<error_code> healthy;
  db.async_health_check([&](error_code ec) { healthy.set_value(ec); });
  EXPECT_FALSE(healthy.get_future().get());
  run_coroutine(
      [&]() -> asio::awaitable<void> { co_await db.async_health_check(asio::use_awaitable); });

  infra->shutdown();
  EXPECT_FALSE(db.health_check());
  std::promise<error_code> down;
  db.async_health_check([&](error_code ec) { down.set_value(ec); });
  EXPECT_EQ(down.get_future().get(), errc::shut_down);
}

ENTITY_CONCURRENT_TEST_P(Database, WithTimeoutKeepsTheEngine) {
  auto db = open();
  auto quick = db.with_timeout(1s);
  EXPECT_EQ(&quick.infra(), &db.infra());
  EXPECT_EQ(quick.backend_name(), backend_name());
  EXPECT_EQ(quick.fetch_one("SELECT 1")->get<int>(0), 1);
  EXPECT_THROW(entity::database(nullptr), entity::error);
}

TEST_P(Database, AnEnormousTimeoutMeansNoDeadlineRatherThanAnExpiredOne) {
  auto db = open();
  // Each of these once wrapped round into the past: the statement timed out before it started.
  for (std::chrono::milliseconds t :
       {std::chrono::milliseconds(10'000'000'000'000), std::chrono::milliseconds::max()}) {
    auto patient = db.with_timeout(t);
    EXPECT_EQ(patient.fetch_one("SELECT 1")->get<int>(0), 1) << t.count();
    patient.execute("CREATE TABLE IF NOT EXISTS patient (x INTEGER)");
    EXPECT_EQ(patient.execute("INSERT INTO patient VALUES (1)").rows_affected, 1u);
  }
  auto lease = db.acquire(std::chrono::milliseconds::max());
  EXPECT_EQ(lease->query("SELECT 2", {}, 1).rows.at(0).get<int>(0), 2);
}

TEST_P(Database, TellsTheEnginesDialect) {
  auto want = on_postgres() ? entity::sql_dialect::postgresql : entity::sql_dialect::sqlite;
  auto engine = make_engine();  // known before startup
  EXPECT_EQ(engine->dialect(), want);
  engine->startup();
  entity::database db(engine);
  EXPECT_EQ(db.dialect(), want);
  EXPECT_EQ(db.with_timeout(1s).dialect(), want);
}

TEST_P(Database, UseBeforeStartupFailsWithNotStarted) {
  entity::database db(make_engine());
  try {
    db.execute("SELECT 1");
    FAIL() << "execute before startup() succeeded";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), errc::not_started);
    EXPECT_NE(std::string(e.what()).find("startup()"), std::string::npos) << e.what();
  }
  std::promise<error_code> async_ec;
  db.async_fetch_one("SELECT 1", {},
                     [&](error_code e, std::optional<entity::row>) { async_ec.set_value(e); });
  EXPECT_EQ(async_ec.get_future().get(), errc::not_started);
  try {
    db.acquire(10ms);
    FAIL() << "acquire before startup() succeeded";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), errc::not_started);
  }
  EXPECT_FALSE(db.health_check());
}

ENTITY_CONCURRENT_TEST_P(Database, PoolExhaustedAfterAcquireTimeout) {
  auto db = open({.pool_size = 2, .acquire_timeout = 100ms});
  auto a = db.acquire();
  auto b = db.acquire();
  EXPECT_EQ(a->fetch_one("SELECT 5")->get<int>(0), 5);

  auto t0 = std::chrono::steady_clock::now();
  error_code ec;
  entity::diagnostics diag;
  db.fetch_one("SELECT 1", {}, ec, diag);
  auto waited = std::chrono::steady_clock::now() - t0;
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
  EXPECT_EQ(db.fetch_one("SELECT 6")->get<int>(0), 6);
}

// ---- async, every kind of completion token ---------------------------------------------------

ENTITY_CONCURRENT_TEST_P(Database, AsyncWithUseAwaitable) {
  auto db = open();
  run_coroutine([&]() -> asio::awaitable<void> {
    co_await db.async_execute_script("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)",
                                     asio::use_awaitable);
    entity::params ada{1, "ada"};
    auto r = co_await db.async_execute("INSERT INTO t VALUES (?, ?)", std::move(ada),
                                       asio::use_awaitable);
    EXPECT_EQ(r.rows_affected, 1);
    if (on_sqlite()) EXPECT_EQ(r.last_insert_id, 1);
    std::vector<entity::params> more = {{2, "bob"}, {3, "cy"}};
    auto m = co_await db.async_execute_many("INSERT INTO t VALUES (?, ?)", std::move(more),
                                            asio::use_awaitable);
    EXPECT_EQ(m.rows_affected, 2);
    entity::params which{2};
    auto one = co_await db.async_fetch_one("SELECT name FROM t WHERE id = ?", std::move(which),
                                           asio::use_awaitable);
    EXPECT_EQ(one->get<std::string>("name"), "bob");
    auto none =
        co_await db.async_fetch_one("SELECT name FROM t WHERE id = 99", {}, asio::use_awaitable);
    EXPECT_FALSE(none);
    auto all =
        co_await db.async_fetch_all("SELECT name FROM t ORDER BY id", {}, asio::use_awaitable);
    EXPECT_EQ(all.size(), 3u);

    // An error arrives as an exception carrying its code.
    try {
      co_await db.async_execute("INSERT INTO t VALUES (1, 'again')", {}, asio::use_awaitable);
      ADD_FAILURE() << "a duplicate key was inserted";
    } catch (const boost::system::system_error& e) {
      EXPECT_EQ(e.code(), entity::condition::constraint);
    }
  });
}

ENTITY_CONCURRENT_TEST_P(Database, AsyncHandlerRunsOnItsExecutor) {
  auto db = open();
  asio::io_context io;
  auto strand = asio::make_strand(io);
  std::thread::id io_thread, handler_thread;
  bool in_strand = false;
  db.async_fetch_one("SELECT 1", {},
                     asio::bind_executor(strand, [&](error_code ec, std::optional<entity::row>) {
                       EXPECT_FALSE(ec);
                       handler_thread = std::this_thread::get_id();
                       in_strand = strand.running_in_this_thread();
                     }));
  // The work is in flight: the io_context must not run out of work before it completes.
  io_thread = std::this_thread::get_id();
  io.run();
  EXPECT_EQ(handler_thread, io_thread);
  EXPECT_TRUE(in_strand);

  // Awaiting resumes the coroutine on its own thread, not on the engine's.
  asio::io_context io2;
  std::thread::id resumed_on;
  asio::co_spawn(
      io2,
      [&]() -> asio::awaitable<void> {
        co_await db.async_execute("CREATE TABLE t (a INTEGER)", {}, asio::use_awaitable);
        resumed_on = std::this_thread::get_id();
      },
      asio::detached);
  io2.run();
  EXPECT_EQ(resumed_on, std::this_thread::get_id());
}

ENTITY_CONCURRENT_TEST_P(Database, AsyncWithDeferred) {
  auto db = open();
  db.execute("CREATE TABLE t (a INTEGER)");
  // A deferred operation starts only when invoked with a token.
  auto op = db.async_execute("INSERT INTO t VALUES (1)", {}, asio::deferred);
  EXPECT_EQ(count_rows(db, "t"), 0);
  std::promise<std::int64_t> affected;
  std::move(op)(
      [&](error_code ec, entity::result r) { affected.set_value(ec ? -1 : r.rows_affected); });
  EXPECT_EQ(affected.get_future().get(), 1);

  run_coroutine([&]() -> asio::awaitable<void> {
    auto count = db.async_fetch_one("SELECT count(*) FROM t", {}, asio::deferred);
    auto row = co_await std::move(count)(asio::use_awaitable);
    EXPECT_EQ(row->get<int>(0), 1);
    // A deferred operation composes before it runs.
    auto first_name = db.async_fetch_all("SELECT a FROM t", {}, asio::deferred) |
                      asio::deferred([](error_code ec, entity::database::rows rows) {
                        return asio::deferred.values(ec, rows.empty() ? -1 : rows[0].get<int>(0));
                      });
    auto [ec, a] = co_await std::move(first_name)(asio::as_tuple(asio::use_awaitable));
    EXPECT_FALSE(ec);
    EXPECT_EQ(a, 1);
  });
}

namespace {
// The transaction of the two tests below, and the column it leaves.
void scale_then_add_four(entity::session& s) {
  s.execute("UPDATE t SET a = a * 10");
  s.execute("INSERT INTO t VALUES (4)");
}
std::vector<std::int64_t> column_a(const entity::database& db) {
  std::vector<std::int64_t> out;
  for (const entity::row& r : db.fetch_all("SELECT a FROM t ORDER BY a"))
    out.push_back(r.get<std::int64_t>(0));
  return out;
}
}  // namespace

ENTITY_CONCURRENT_TEST_P(Database, ScriptManyAndTransactionWithDeferred) {
  auto db = open();
  auto script = db.async_execute_script("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1)",
                                        asio::deferred);
  auto many = db.async_execute_many("INSERT INTO t VALUES (?)", {{2}, {3}}, asio::deferred);
  auto tx = db.async_transaction(scale_then_add_four, asio::deferred);
  // None of them has run yet: the table does not exist.
  error_code ec;
  entity::diagnostics diag;
  db.fetch_one("SELECT count(*) FROM t", {}, ec, diag);
  EXPECT_EQ(ec, entity::condition::syntax) << diag.to_string();

  run_coroutine([&]() -> asio::awaitable<void> {
    co_await std::move(script)(asio::use_awaitable);
    EXPECT_EQ(count_rows(db, "t"), 1);
    auto r = co_await std::move(many)(asio::use_awaitable);
    EXPECT_EQ(r.rows_affected, 2);
    co_await std::move(tx)(asio::use_awaitable);
  });
  EXPECT_EQ(column_a(db), (std::vector<std::int64_t>{4, 10, 20, 30}));
}

ENTITY_CONCURRENT_TEST_P(Database, AsyncWithUseFuture) {
  auto db = open();
  std::future<entity::result> created =
      db.async_execute("CREATE TABLE t (a INTEGER)", {}, asio::use_future);
  created.get();
  auto inserted = db.async_execute("INSERT INTO t VALUES (?)", {5}, asio::use_future);
  EXPECT_EQ(inserted.get().rows_affected, 1);
  auto row = db.async_fetch_one("SELECT a FROM t", {}, asio::use_future).get();
  EXPECT_EQ(row->get<int>(0), 5);
  EXPECT_EQ(db.async_fetch_all("SELECT a FROM t", {}, asio::use_future).get().size(), 1u);
  db.async_health_check(asio::use_future).get();

  auto failed = db.async_execute("INSERT INTO missing VALUES (1)", {}, asio::use_future);
  try {
    failed.get();
    FAIL() << "the future held a value";
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), entity::condition::syntax);
  }
}

ENTITY_CONCURRENT_TEST_P(Database, ScriptManyAndTransactionWithUseFuture) {
  auto db = open();
  std::future<void> script = db.async_execute_script(
      "CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1)", asio::use_future);
  script.get();
  EXPECT_EQ(count_rows(db, "t"), 1);
  std::future<entity::result> many =
      db.async_execute_many("INSERT INTO t VALUES (?)", {{2}, {3}}, asio::use_future);
  EXPECT_EQ(many.get().rows_affected, 2);
  EXPECT_EQ(count_rows(db, "t"), 3);
  std::future<void> tx = db.async_transaction(scale_then_add_four, asio::use_future);
  tx.get();
  EXPECT_EQ(column_a(db), (std::vector<std::int64_t>{4, 10, 20, 30}));

  // A failure arrives through the future, and the transaction left nothing behind.
  auto failed = db.async_transaction(
      [](entity::session& s) {
        s.execute("INSERT INTO t VALUES (5)");
        s.execute("INSERT INTO missing VALUES (1)");
      },
      asio::use_future);
  try {
    failed.get();
    FAIL() << "the future held a value";
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), entity::condition::syntax);
  }
  EXPECT_EQ(count_rows(db, "t"), 4);
}

ENTITY_CONCURRENT_TEST_P(Database, AsyncWithAsTuple) {
  auto db = open();
  run_coroutine([&]() -> asio::awaitable<void> {
    auto [ec, r] = co_await db.async_execute("CREATE TABLE t (a INTEGER UNIQUE)", {},
                                             asio::as_tuple(asio::use_awaitable));
    EXPECT_FALSE(ec);
    auto [ec2, r2] = co_await db.async_execute("INSERT INTO t VALUES (1)", {},
                                               asio::as_tuple(asio::use_awaitable));
    EXPECT_FALSE(ec2);
    EXPECT_EQ(r2.rows_affected, 1);
    auto [ec3, r3] = co_await db.async_execute("INSERT INTO t VALUES (1)", {},
                                               asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(ec3, entity::condition::constraint);
    auto [ec4, rows] =
        co_await db.async_fetch_all("SELECT a FROM t", {}, asio::as_tuple(asio::use_awaitable));
    EXPECT_FALSE(ec4);
    EXPECT_EQ(rows.size(), 1u);
    auto [ec5] =
        co_await db.async_execute_script("NOT SQL AT ALL", asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(ec5, entity::condition::syntax);
  });
}

ENTITY_CONCURRENT_TEST_P(Database, AsyncWithPlainCallback) {
  auto db = open();
  std::promise<void> created;
  db.async_execute_script("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1), (2);",
                          [&](error_code ec) {
                            EXPECT_FALSE(ec);
                            created.set_value();
                          });
  created.get_future().get();
  std::promise<std::int64_t> sum;
  db.async_fetch_one("SELECT sum(a) FROM t", {}, [&](error_code ec, std::optional<entity::row> r) {
    sum.set_value(ec || !r ? -1 : r->get<std::int64_t>(0));
  });
  EXPECT_EQ(sum.get_future().get(), 3);
}

// A plain callback runs on one of the engine's own threads. Shutting the engine down there (or
// dropping its last handle, which does the same) must not wait for that thread or for the
// request whose handler it is running: the engine stops, and the handler returns.
ENTITY_CONCURRENT_TEST_P(Database, ShutdownInsideAPlainCallbackStopsTheEngine) {
  auto infra = open_engine();
  entity::database db(infra);
  std::promise<void> returned;
  db.async_fetch_one("SELECT 1", {}, [&](error_code ec, std::optional<entity::row>) {
    EXPECT_FALSE(ec);
    infra->shutdown();
    returned.set_value();
  });
  ASSERT_EQ(returned.get_future().wait_for(30s), std::future_status::ready)
      << "shutdown() inside the handler never returned";
  for (int i = 0; i < 3000 && infra->running(); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(infra->running());
  try {
    db.fetch_one("SELECT 1");
    ADD_FAILURE() << "a shut-down engine ran a query";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), errc::shut_down) << e.what();
  }
}

ENTITY_CONCURRENT_TEST_P(Database, AsyncDiagnosticsOverloadFillsTheMessage) {
  auto db = open();
  entity::diagnostics diag;
  std::promise<error_code> done;
  db.async_execute("SELECT * FROM absent_table", {}, diag,
                   [&](error_code ec, entity::result) { done.set_value(ec); });
  EXPECT_EQ(done.get_future().get(), entity::condition::syntax);
  EXPECT_NE(diag.message.find("absent_table"), std::string::npos) << diag.message;
  EXPECT_EQ(diag.sql, "SELECT * FROM absent_table");

  run_coroutine([&]() -> asio::awaitable<void> {
    entity::diagnostics d2;
    entity::params one{1};
    auto [ec, row] = co_await db.async_fetch_one("SELECT ?, ?", std::move(one), d2,
                                                 asio::as_tuple(asio::use_awaitable));
    EXPECT_EQ(ec, errc::invalid_argument);
    EXPECT_NE(d2.message.find("parameter"), std::string::npos) << d2.message;
    entity::diagnostics d3;
    auto [ec3, rows] =
        co_await db.async_fetch_all("SELECT 1", {}, d3, asio::as_tuple(asio::use_awaitable));
    EXPECT_FALSE(ec3);
    EXPECT_TRUE(d3.message.empty());
  });
}

// ---- SQLite only -----------------------------------------------------------------------------

TEST(SqliteDatabase, FileDatabaseKeepsItsData) {
  entity::test::temp_dir dir;
  entity::sqlite_params p;
  p.path = dir.file("nested/folder/data.db");
  {
    auto infra = std::make_shared<entity::sqlite_infrastructure>(p);
    infra->startup();
    entity::database db(infra);
    db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)");
    db.execute_many("INSERT INTO notes (body) VALUES (?)", {{"one"}, {"two"}});
  }  // the destructor shuts down
  auto infra = std::make_shared<entity::sqlite_infrastructure>(p);
  infra->startup();
  entity::database db(infra);
  auto rows = db.fetch_all("SELECT body FROM notes ORDER BY id");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].get<std::string>(0), "two");
}

TEST(SqliteDatabase, MemoryDatabaseCrud) {
  auto infra = std::make_shared<entity::sqlite_infrastructure>();
  ASSERT_EQ(infra->params().path, ":memory:");
  infra->startup();
  entity::database db(infra);
  db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)");
  auto r = db.execute("INSERT INTO notes (body) VALUES (?)", {"one"});
  EXPECT_EQ(r.rows_affected, 1);
  EXPECT_EQ(r.last_insert_id, 1);
  r = db.execute("INSERT INTO notes (body) VALUES (?)", {"two"});
  EXPECT_EQ(r.rows_affected, 1);
  EXPECT_EQ(r.last_insert_id, 2);

  auto one = db.fetch_one("SELECT body FROM notes WHERE id = ?", {1});
  ASSERT_TRUE(one);
  EXPECT_EQ(one->get<std::string>("body"), "one");
  auto all = db.fetch_all("SELECT id, body FROM notes ORDER BY id");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].get<std::int64_t>("id"), 2);
  EXPECT_EQ(all[1].get<std::string>("body"), "two");

  EXPECT_EQ(db.execute("UPDATE notes SET body = upper(body)").rows_affected, 2);
  EXPECT_EQ(db.fetch_one("SELECT body FROM notes WHERE id = 2")->get<std::string>(0), "TWO");
  EXPECT_EQ(db.execute("DELETE FROM notes WHERE id = ?", {1}).rows_affected, 1);
  EXPECT_EQ(db.fetch_one("SELECT body FROM notes WHERE id = ?", {1}), std::nullopt);
  EXPECT_EQ(count_rows(db, "notes"), 1);
}
