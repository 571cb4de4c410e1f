// What only the PostgreSQL engine does, against a real server: placeholder translation, type
// mapping, SQLSTATEs, pipelined batches, server-side cancels, reconnects, a pool under load.
// What every backend does is in the shared suites (common/database_test.cpp,
// memory/memory_test.cpp). The server comes from ENTITYDB_PG_URL (make test and
// scripts/with-postgres provide a throwaway one); without it every test here fails and says so.
// Each test works in a schema of its own, so the tests run in parallel.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "backends.hpp"
#include "concurrency.hpp"
#include "entity/entity.hpp"
#include "library_support.hpp"

namespace {

namespace asio = boost::asio;
using entity::json;
using entity::memory;
using namespace std::chrono_literals;

using entity::test::postgres_base_url;

std::string base_url() { return postgres_base_url(); }

// Fails the test when no server is configured (the convention of every PostgreSQL test).
#define REQUIRE_SERVER()                                                    \
  do {                                                                      \
    if (base_url().empty()) FAIL() << entity::test::missing_server_message; \
  } while (0)

// A fresh, empty schema named after the running test; returns a URL whose connections use it.
std::string schema_url(const std::string& extra_option = "") {
  return entity::test::postgres_schema_url(entity::test::schema_of_current_test(), extra_option);
}

std::shared_ptr<entity::postgres_infrastructure> started(std::string url, std::size_t pool = 5,
                                                         std::size_t pipeline_chunk = 1000) {
  entity::postgres_params p;
  p.url = std::move(url);
  p.pool_size = pool;
  p.pipeline_chunk = pipeline_chunk;
  auto infra = std::make_shared<entity::postgres_infrastructure>(p);
  infra->startup();
  return infra;
}

using entity::test::numbered_key;

// ---- the engine ---------------------------------------------------------------------------

TEST(PostgresInfrastructure, MakeInfrastructureChoosesPostgresForItsUrls) {
  REQUIRE_SERVER();
  auto a = entity::make_infrastructure(base_url());
  EXPECT_EQ(a->backend_name(), "postgres");
  auto b = entity::make_infrastructure("postgres://nobody@127.0.0.1:1/none");
  EXPECT_EQ(b->backend_name(), "postgres");
  EXPECT_EQ(entity::make_infrastructure(":memory:")->backend_name(), "sqlite");
  a->startup();
  EXPECT_TRUE(entity::database(a).health_check());
  a->shutdown();
  EXPECT_FALSE(a->running());
}

TEST(PostgresInfrastructure, UnreachableServerFailsStartupClearly) {
  entity::postgres_params p;
  p.url = "postgresql://nobody@127.0.0.1:1/none";
  entity::postgres_infrastructure infra(p);
  try {
    infra.startup();
    FAIL() << "startup() succeeded without a server";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), entity::errc::connection_error);
    EXPECT_NE(std::string(e.what()).find("cannot connect"), std::string::npos) << e.what();
  }
  // The engine is left not started, as it was: requests say so, and startup may be tried
  // again (it fails the same way, not as an engine shut down).
  EXPECT_FALSE(infra.running());
  entity::database db(std::shared_ptr<entity::infrastructure>(&infra, [](auto*) {}));
  entity::error_code ec;
  entity::diagnostics diag;
  db.execute("SELECT 1", {}, ec, diag);
  EXPECT_EQ(ec, entity::errc::not_started);
  try {
    infra.startup();
    FAIL() << "startup() succeeded without a server";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), entity::errc::connection_error);
  }
}

TEST(PostgresInfrastructure, QuestionMarkAndDollarPlaceholdersBind) {
  REQUIRE_SERVER();
  auto infra = started(schema_url());
  entity::database db(infra);
  db.execute("CREATE TABLE items (id bigint PRIMARY KEY, name text, score double precision)");
  EXPECT_EQ(db.execute("INSERT INTO items VALUES (?, ?, ?), (?, ?, ?)",
                       {1, "one", 1.5, 2, "two 'quoted' ?", 2.5})
                .rows_affected,
            2);
  auto r = db.fetch_one("SELECT name, score FROM items WHERE id = ?", {2});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get<std::string>("name"), "two 'quoted' ?");
  EXPECT_DOUBLE_EQ(r->get<double>("score"), 2.5);
  EXPECT_EQ(db.execute("UPDATE items SET score = score * 2 WHERE id >= $1", {1}).rows_affected, 2);
  auto all = db.fetch_all("SELECT id, score FROM items ORDER BY id");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].get<std::int64_t>("id"), 1);
  EXPECT_DOUBLE_EQ(all[1].get<double>(1), 5.0);
  EXPECT_EQ(db.execute("DELETE FROM items WHERE id = ?", {1}).rows_affected, 1);
  EXPECT_FALSE(db.fetch_one("SELECT 1 FROM items WHERE id = ?", {1}));
  auto ret = db.execute("INSERT INTO items VALUES (?, ?, ?) RETURNING id", {7, "seven", 0.0});
  ASSERT_EQ(ret.rows.size(), 1u);
  EXPECT_EQ(ret.rows[0].get<std::int64_t>(0), 7);
  EXPECT_EQ(ret.rows_affected, 1);
}

TEST(PostgresInfrastructure, ValuesMapByColumnType) {
  REQUIRE_SERVER();
  auto infra = started(schema_url());
  entity::database db(infra);
  std::vector<std::byte> bytes{std::byte{0}, std::byte{1}, std::byte{0xff}, std::byte{'\\'}};
  auto r = db.fetch_one(
      "SELECT 7::int2 AS a, 70000::int4 AS b, 9000000000::int8 AS c, 1.5::float4 AS d, "
      "2.25::float8 AS e, 3.125::numeric AS f, true AS g, false AS h, NULL::int AS i, "
      "'txt'::text AS j, ?::bytea AS k, '2020-01-02'::date AS l, ?::bigint AS m, ?::float8 AS n",
      {entity::blob(bytes), std::int64_t{-42}, 0.1});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->at("a"), entity::value(7));
  EXPECT_EQ(r->at("b"), entity::value(70000));
  EXPECT_EQ(r->at("c"), entity::value(std::int64_t{9000000000}));
  EXPECT_EQ(r->at("d"), entity::value(1.5));
  EXPECT_EQ(r->at("e"), entity::value(2.25));
  EXPECT_EQ(r->at("f"), entity::value(3.125));
  EXPECT_EQ(r->at("g"), entity::value(1));
  EXPECT_EQ(r->at("h"), entity::value(0));
  EXPECT_TRUE(r->at("i").is_null());
  EXPECT_EQ(r->at("j"), entity::value("txt"));
  EXPECT_EQ(r->at("k"), entity::value(entity::blob(bytes)));
  EXPECT_EQ(r->at("l"), entity::value("2020-01-02"));
  EXPECT_EQ(r->at("m"), entity::value(-42));
  EXPECT_EQ(r->at("n"), entity::value(0.1));
  auto empty = db.fetch_one("SELECT ?::bytea AS e, ?::text AS n", {entity::blob{}, entity::null});
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->at("e"), entity::value(entity::blob{}));
  EXPECT_TRUE(empty->at("n").is_null());
}

TEST(PostgresInfrastructure, ErrorsCarrySqlstateAndTheServersMessage) {
  REQUIRE_SERVER();
  auto infra = started(schema_url());
  entity::database db(infra);
  entity::error_code ec;
  entity::diagnostics diag;
  db.execute("SELEC 1", {}, ec, diag);
  EXPECT_EQ(ec.category(), entity::postgres_category());
  EXPECT_EQ(entity::postgres_sqlstate(ec), "42601");
  EXPECT_TRUE(ec == entity::condition::syntax);
  EXPECT_NE(diag.message.find("syntax error"), std::string::npos) << diag.message;
  EXPECT_EQ(diag.sql, "SELEC 1");

  db.execute("CREATE TABLE u (k int PRIMARY KEY)");
  db.execute("INSERT INTO u VALUES (?)", {1});
  try {
    db.execute("INSERT INTO u VALUES (?)", {1});
    FAIL() << "a duplicate key was accepted";
  } catch (const entity::error& e) {
    EXPECT_TRUE(e.code() == entity::condition::constraint);
    EXPECT_EQ(entity::postgres_sqlstate(e.code()), "23505");
    EXPECT_NE(std::string(e.what()).find("duplicate key"), std::string::npos) << e.what();
  }
  // The connection that reported the errors serves the next request.
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM u")->get<std::int64_t>(0), 1);
}

TEST(PostgresInfrastructure, ExecuteManyIsAllOrNothingInPipelineChunks) {
  REQUIRE_SERVER();
  entity::postgres_params p;
  p.url = schema_url();
  p.pipeline_chunk = 100;
  auto infra = std::make_shared<entity::postgres_infrastructure>(p);
  infra->startup();
  entity::database db(infra);
  db.execute("CREATE TABLE m (k int PRIMARY KEY, v text)");
  std::vector<entity::params> batch;
  for (int i = 0; i < 1000; ++i) batch.push_back({i, "v" + std::to_string(i)});
  auto before = infra->stats().pipeline_batches;
  EXPECT_EQ(db.execute_many("INSERT INTO m VALUES (?, ?)", batch).rows_affected, 1000);
  EXPECT_GE(infra->stats().pipeline_batches - before, 10u);
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM m")->get<std::int64_t>(0), 1000);

  // A duplicate in the middle of a later chunk: nothing of the batch stays.
  std::vector<entity::params> bad;
  for (int i = 1000; i < 1500; ++i) bad.push_back({i, "x"});
  bad.push_back({5, "dup"});
  for (int i = 1500; i < 1600; ++i) bad.push_back({i, "x"});
  entity::error_code ec;
  entity::diagnostics diag;
  db.execute_many("INSERT INTO m VALUES (?, ?)", bad, ec, diag);
  EXPECT_TRUE(ec == entity::condition::constraint) << ec.message();
  EXPECT_EQ(diag.sql, "INSERT INTO m VALUES (?, ?)");
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM m")->get<std::int64_t>(0), 1000);
  // The connection left pipeline mode cleanly.
  EXPECT_EQ(db.fetch_one("SELECT v FROM m WHERE k = ?", {5})->get<std::string>(0), "v5");
}

// PostgreSQL refuses to commit a transaction one of whose statements failed: a body that
// catches that error and goes on gets rolled_back (not a body failure), and nothing commits.
TEST(PostgresInfrastructure, ABodyThatGoesOnAfterAFailedStatementIsRolledBack) {
  REQUIRE_SERVER();
  auto infra = started(schema_url(), 1);
  entity::database db(infra);
  db.execute("CREATE TABLE m (k int PRIMARY KEY)");
  db.execute("INSERT INTO m VALUES (1)");
  entity::error_code ec;
  entity::diagnostics diag;
  db.transaction(
      [](entity::session& s) {
        s.execute("INSERT INTO m VALUES (2)");
        try {
          s.fetch_one("INSERT INTO m VALUES (1) RETURNING k");  // a duplicate key
        } catch (const entity::error&) {
          // and returns, as if nothing had happened
        }
      },
      ec, diag);
  EXPECT_EQ(ec, entity::errc::rolled_back) << ec.message() << ": " << diag.to_string();
  EXPECT_NE(diag.message.find("rolled back"), std::string::npos) << diag.message;
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM m")->get<std::int64_t>(0), 1);
  // The one connection is usable at once.
  db.execute("INSERT INTO m VALUES (3)");
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM m")->get<std::int64_t>(0), 2);
}

ENTITY_CONCURRENT_TEST(PostgresInfrastructure, DeadlineCancelsTheQueryOnTheServer) {
  REQUIRE_SERVER();
  auto infra = started(schema_url(), /*pool=*/1);
  entity::database db(infra);
  auto t0 = std::chrono::steady_clock::now();
  entity::error_code ec;
  entity::diagnostics diag;
  // The comment tells this query from other tests' sleeps on the same server.
  db.with_timeout(200ms).execute("SELECT pg_sleep(10) -- deadline-cancels-on-server", {}, ec, diag);
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(ec, entity::errc::query_timeout) << ec.message() << ": " << diag.message;
  EXPECT_TRUE(ec == entity::condition::timeout);
  EXPECT_LT(took, 1s);
  // The one connection of the pool serves the next query, and nothing is still running.
  EXPECT_EQ(db.fetch_one("SELECT 41 + 1")->get<std::int64_t>(0), 42);
  EXPECT_EQ(db.fetch_one(
                  "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                  "'%deadline-cancels-on-server%' AND state = 'active' AND pid <> pg_backend_pid()")
                ->get<std::int64_t>(0),
            0);
  EXPECT_EQ(infra->stats().timeouts, 1u);

  // The same inside a transaction body: the server's statement_timeout stops it.
  t0 = std::chrono::steady_clock::now();
  db.with_timeout(300ms).transaction([](entity::session& s) { s.execute("SELECT pg_sleep(10)"); },
                                     ec, diag);
  EXPECT_EQ(ec, entity::errc::query_timeout) << ec.message() << ": " << diag.message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_TRUE(db.health_check());
}

// A deadline stops the server's work, not only the wait for it. A CPU-bound query past a short
// deadline fails with query_timeout at once, and no backend is left running it (the server's
// statement_timeout backs up the cancel request, which was seen lost now and then).
ENTITY_CONCURRENT_TEST(PostgresInfrastructure, DeadlineStopsACpuBoundQueryOnTheServer) {
  REQUIRE_SERVER();
  const std::string app = "entity_cpu_bound_test";
  auto infra = started(schema_url("application_name=" + app), /*pool=*/2);
  entity::database db(infra);
  auto admin = started(base_url(), 1);
  entity::database server(admin);
  for (int i = 0; i < 5; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    entity::error_code ec;
    entity::diagnostics diag;
    db.with_timeout(200ms).fetch_one("SELECT count(*) FROM generate_series(1, 10000000000::bigint)",
                                     {}, ec, diag);
    EXPECT_EQ(ec, entity::errc::query_timeout) << ec.message() << ": " << diag.message;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 200ms + 3s);
    std::int64_t running = 1;
    for (int j = 0; j < 60 && running != 0; ++j) {
      running = server
                    .fetch_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = ? "
                        "AND state = 'active' AND query LIKE '%generate_series%'",
                        {app})
                    ->get<std::int64_t>(0);
      if (running) std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(running, 0) << "a backend went on with the query past its deadline";
  }
}

// Freezes the backend of `db`'s one connection with SIGSTOP; thaws it when destroyed. The
// backend must be a process of this machine serving this very connection (its title names our
// port): the server must run here (scripts/with-postgres) and be ours to signal (the same
// user, or root).
class frozen_backend {
 public:
  explicit frozen_backend(entity::database& db) {
    auto who = db.fetch_one("SELECT pg_backend_pid(), coalesce(inet_client_port(), -1)");
    pid_ = static_cast<pid_t>(who->get<std::int64_t>(0));
    const std::int64_t port = who->get<std::int64_t>(1);
    std::string title;
    {
      std::ifstream in("/proc/" + std::to_string(pid_) + "/cmdline", std::ios::binary);
      title.assign(std::istreambuf_iterator<char>(in), {});
    }
    if (title.find("(" + std::to_string(port) + ")") == std::string::npos) {
      why_ = "backend " + std::to_string(pid_) +
             " is not a process of this machine serving "
             "our connection (" +
             title + "): run the tests through scripts/with-postgres";
      pid_ = 0;
    } else if (::kill(pid_, SIGSTOP) != 0) {
      why_ = "cannot freeze backend " + std::to_string(pid_) + ": " + std::strerror(errno);
      pid_ = 0;
    }
  }
  ~frozen_backend() { thaw(); }
  frozen_backend(const frozen_backend&) = delete;
  frozen_backend& operator=(const frozen_backend&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& why_not() const { return why_; }
  void thaw() {
    if (pid_) ::kill(pid_, SIGCONT);
  }

 private:
  pid_t pid_ = 0;
  std::string why_;
};

// Whether backend `pid` is gone within a few seconds.
bool backend_ends(entity::database& server, pid_t pid) {
  for (int i = 0; i < 100; ++i) {
    if (server.fetch_one("SELECT count(*) FROM pg_stat_activity WHERE pid = ?", {pid})
            ->get<std::int64_t>(0) == 0)
      return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

// A backend frozen with SIGSTOP answers nothing (a cancel request and a termination both wait
// for it to run again): a request with a deadline still returns within it and a little more,
// and once the backend runs again it has been told to terminate, so its query does not go on.
// The same for a transaction body, which waits on its thread in a blocking call.
ENTITY_CONCURRENT_TEST(PostgresInfrastructure, DeadlineHoldsWhenTheBackendNeverAnswers) {
  REQUIRE_SERVER();
  auto infra = started(schema_url(), /*pool=*/1);
  entity::database db(infra);
  auto admin = started(base_url(), 1);
  entity::database server(admin);
  {
    frozen_backend frozen(db);
    ASSERT_NE(frozen.pid(), 0) << frozen.why_not();
    auto t0 = std::chrono::steady_clock::now();
    entity::error_code ec;
    entity::diagnostics diag;
    db.with_timeout(2s).execute("SELECT pg_sleep(30)", {}, ec, diag);
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(ec, entity::errc::query_timeout) << ec.message() << ": " << diag.message;
    EXPECT_LT(took, 2s + 3s) << "the request waited for a server that never answered";
    EXPECT_GE(took, 2s - 50ms);
    frozen.thaw();
    EXPECT_TRUE(backend_ends(server, frozen.pid()))
        << "backend " << frozen.pid() << " went on after its request's deadline";
  }
  // The pool replaced the connection; now a transaction body's statement.
  EXPECT_EQ(db.fetch_one("SELECT 41 + 1")->get<std::int64_t>(0), 42);
  {
    frozen_backend frozen(db);
    ASSERT_NE(frozen.pid(), 0) << frozen.why_not();
    auto t0 = std::chrono::steady_clock::now();
    entity::error_code ec;
    entity::diagnostics diag;
    db.with_timeout(2s).transaction([](entity::session& s) { s.execute("SELECT pg_sleep(30)"); },
                                    ec, diag);
    auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(ec, entity::errc::query_timeout) << ec.message() << ": " << diag.message;
    EXPECT_LT(took, 2s + 3s) << "the transaction waited for a server that never answered";
    frozen.thaw();
    EXPECT_TRUE(backend_ends(server, frozen.pid()))
        << "backend " << frozen.pid() << " went on after its transaction's deadline";
  }
  EXPECT_EQ(db.fetch_one("SELECT 41 + 1")->get<std::int64_t>(0), 42);
}

// Requests leave their deadline on the session as its statement_timeout; a lease's statements
// have no deadline, so a lease never inherits one.
TEST(PostgresInfrastructure, ALeaseHasNoStatementTimeoutLeftByRequests) {
  REQUIRE_SERVER();
  auto infra = started(schema_url(), /*pool=*/1);
  entity::database db(infra);
  EXPECT_NE(db.with_timeout(5s).fetch_one("SHOW statement_timeout")->get<std::string>(0), "0");
  auto lease = db.acquire();
  EXPECT_EQ(lease->fetch_one("SHOW statement_timeout")->get<std::string>(0), "0");
  lease.release();
  // The next request sets it again.
  EXPECT_NE(db.with_timeout(5s).fetch_one("SHOW statement_timeout")->get<std::string>(0), "0");
}

TEST(PostgresInfrastructure, DroppedConnectionIsReplaced) {
  REQUIRE_SERVER();
  const std::string app = "entity_dropped_test";
  auto infra = started(schema_url("application_name=" + app), /*pool=*/2);
  entity::database db(infra);
  // The request whose connection dies under it fails, and says why.
  entity::error_code ec;
  entity::diagnostics diag;
  db.execute("SELECT pg_terminate_backend(pg_backend_pid())", {}, ec, diag);
  EXPECT_EQ(ec, entity::errc::connection_error) << ec.message();
  EXPECT_NE(diag.message.find("connection"), std::string::npos) << diag.message;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(db.fetch_one("SELECT ?::int", {i})->get<int>(0), i);

  // Every pooled connection terminated from outside: later requests run on fresh ones.
  auto admin = started(base_url(), 1);
  auto killed = entity::database(admin).fetch_one(
      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = ?",
      {app});
  EXPECT_GE(killed->get<std::int64_t>(0), 1);
  std::this_thread::sleep_for(100ms);
  int failures = 0;
  for (int i = 0; i < 10; ++i) {
    auto r = db.fetch_one("SELECT ?::int", {i}, ec, diag);
    if (ec) {
      EXPECT_EQ(ec, entity::errc::connection_error) << diag.message;
      ++failures;
    } else {
      EXPECT_EQ(r->get<int>(0), i);
    }
  }
  EXPECT_LE(failures, 2);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(db.health_check());
}

// PostgreSQL text cannot hold a NUL byte, and libpq sends a text parameter only up to its
// first one: "victim\0evil" would reach the server as "victim". The engine refuses such a
// parameter (and SQL text holding one) before anything is sent, on every path a statement
// takes: single statements sync and async, execute_many, transaction bodies, leases.
TEST(PostgresInfrastructure, TextWithANulByteIsRefusedBeforeAnythingIsSent) {
  REQUIRE_SERVER();
  auto infra = started(schema_url());
  entity::database db(infra);
  db.execute("CREATE TABLE t (k text PRIMARY KEY, v text)");
  db.execute("INSERT INTO t VALUES ('victim', 'original')");
  const std::string evil("victim\0evil", 11);
  const std::string upsert =
      "INSERT INTO t VALUES (?, 'overwritten') ON CONFLICT (k) DO UPDATE SET v = excluded.v";
  auto expect_refused = [](const entity::error_code& ec, const entity::diagnostics& diag,
                           const char* what) {
    EXPECT_EQ(ec, entity::errc::invalid_argument) << what << ": " << ec.message();
    EXPECT_NE(diag.message.find("NUL"), std::string::npos) << what << ": " << diag.message;
  };
  entity::error_code ec;
  entity::diagnostics diag;

  db.execute(upsert, {evil}, ec, diag);
  expect_refused(ec, diag, "execute");
  db.execute("DELETE FROM t WHERE k = ?", {std::string("victim\0zzz", 10)}, ec, diag);
  expect_refused(ec, diag, "delete");
  auto r = db.fetch_one("SELECT ?::text", {std::string("ab\0cd", 5)}, ec, diag);
  expect_refused(ec, diag, "fetch_one");
  EXPECT_FALSE(r);

  // The second parameter set of a batch: nothing of the batch is written.
  db.execute_many("INSERT INTO t VALUES (?, 'batch')", {{std::string("first")}, {evil}}, ec, diag);
  expect_refused(ec, diag, "execute_many");

  // A transaction body's statement throws, and the transaction writes nothing.
  db.transaction(
      [&](entity::session& s) {
        s.execute("INSERT INTO t VALUES ('in-tx', 'x')");
        s.execute(upsert, {evil});
      },
      ec, diag);
  expect_refused(ec, diag, "transaction");

  // A lease's session throws.
  {
    auto lease = db.acquire();
    try {
      lease->fetch_one("SELECT ?::text", {std::string("ab\0cd", 5)});
      ADD_FAILURE() << "a lease bound text with a NUL byte";
    } catch (const entity::error& e) {
      expect_refused(e.code(), e.diag(), "lease");
    }
  }

  // The async form.
  {
    std::promise<entity::error_code> done;
    entity::diagnostics adiag;
    db.async_execute(upsert, {evil}, adiag,
                     [&](entity::error_code e, entity::result) { done.set_value(e); });
    expect_refused(done.get_future().get(), adiag, "async_execute");
  }

  // SQL text with a NUL byte would be cut short the same way.
  db.execute(std::string("DELETE FROM t\0 WHERE k = 'nothing'", 35), {}, ec, diag);
  expect_refused(ec, diag, "SQL");
  db.execute_script(std::string("DELETE FROM t\0 WHERE k = 'nothing'", 35), ec, diag);
  expect_refused(ec, diag, "script");

  // Nothing was written or removed; the connections serve the next requests.
  auto rows = db.fetch_all("SELECT k, v FROM t ORDER BY k");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].get<std::string>(0), "victim");
  EXPECT_EQ(rows[0].get<std::string>(1), "original");

  // A vector id is text too: the vector store gets the same refusal.
  entity::vector_store store(db);
  store.create_collection("docs", 2);
  store.upsert("docs", "victim", std::vector<float>{1, 0});
  store.upsert("docs", evil, std::vector<float>{0, 1}, json::object(), ec, diag);
  expect_refused(ec, diag, "vector upsert");
  EXPECT_EQ(store.count("docs"), 1);
  auto kept = store.get("docs", "victim");
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->vector, (std::vector<float>{1, 0}));

  // Blobs are not text: NUL bytes travel as they are.
  std::vector<std::byte> bytes{std::byte{'a'}, std::byte{0}, std::byte{'b'}, std::byte{0}};
  auto b = db.fetch_one("SELECT ?::bytea", {entity::blob(bytes)});
  ASSERT_TRUE(b);
  EXPECT_EQ(b->at(0), entity::value(entity::blob(bytes)));
  // JSON text escapes NUL: such a value is fine.
  auto j = db.fetch_one("SELECT ?::jsonb ->> 'k'", {std::string(R"({"k": "a\u0001b"})")});
  ASSERT_TRUE(j);
  EXPECT_EQ(j->get<std::string>(0),
            "a\x01"
            "b");
}

// ---- the statement cache ------------------------------------------------------------------

std::shared_ptr<entity::postgres_infrastructure> cached(std::string url, std::size_t cache_size,
                                                        std::size_t pool = 1) {
  entity::postgres_params p;
  p.url = std::move(url);
  p.pool_size = pool;
  p.min_connections = 1;
  p.statement_cache_size = cache_size;
  auto infra = std::make_shared<entity::postgres_infrastructure>(p);
  infra->startup();
  return infra;
}

// The statements prepared on the server, counted on a connection of the pool (the one
// connection of a pool of one).
std::int64_t prepared_on_server(entity::database& db) {
  auto lease = db.acquire();
  return lease->fetch_one("SELECT count(*) FROM pg_prepared_statements")->get<std::int64_t>(0);
}

struct cache_counts {
  std::uint64_t hits, misses;
};
cache_counts counts(const entity::postgres_infrastructure& infra) {
  auto s = infra.stats();
  return {s.statement_cache_hits, s.statement_cache_misses};
}

TEST(PostgresStatementCache, RepeatedStatementsRunByNameAndCountAsHits) {
  REQUIRE_SERVER();
  auto infra = cached(schema_url(), 100);
  entity::database db(infra);
  db.execute("CREATE TABLE t (k int PRIMARY KEY, v text)");
  db.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')");
  const cache_counts before = counts(*infra);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(db.fetch_one("SELECT v FROM t WHERE k = ?", {1 + i % 2})->get<std::string>(0),
              i % 2 ? "two" : "one");
  cache_counts after = counts(*infra);
  EXPECT_EQ(after.misses - before.misses, 1u);
  EXPECT_EQ(after.hits - before.hits, 9u);
  // The async form and a lease (the same connection) use the same prepared statement.
  std::promise<entity::result> got;
  entity::diagnostics diag;
  db.async_execute("SELECT v FROM t WHERE k = ?", {2}, diag,
                   [&](entity::error_code, entity::result r) { got.set_value(std::move(r)); });
  EXPECT_EQ(got.get_future().get().rows.at(0).get<std::string>(0), "two");
  {
    auto lease = db.acquire();
    EXPECT_EQ(lease->fetch_one("SELECT v FROM t WHERE k = ?", {1})->get<std::string>(0), "one");
  }
  after = counts(*infra);
  EXPECT_EQ(after.misses - before.misses, 1u);
  EXPECT_EQ(after.hits - before.hits, 11u);
  // Statements without parameters, and those that are not queries or data changes, go
  // unnamed: they count as neither.
  db.fetch_one("SELECT count(*) FROM t");
  db.fetch_one("SHOW statement_timeout");
  db.execute("CREATE INDEX IF NOT EXISTS t_v ON t (v)");
  after = counts(*infra);
  EXPECT_EQ(after.misses - before.misses, 1u);
  EXPECT_EQ(after.hits - before.hits, 11u);
  EXPECT_EQ(prepared_on_server(db), 1);
  // A blob binds bytea where text lets the server infer the type: one text, two statements.
  auto text = db.fetch_one("SELECT length(?)", {std::string("abc")});
  auto bytes = db.fetch_one("SELECT length(?)", {entity::blob(std::vector<std::byte>(5))});
  EXPECT_EQ(text->get<std::int64_t>(0), 3);
  EXPECT_EQ(bytes->get<std::int64_t>(0), 5);
  EXPECT_EQ(counts(*infra).misses - before.misses, 3u);
}

// With room for two statements, five used in turn are prepared and given up again and again:
// every result is still right, and the statements given up are deallocated on the server with
// the next statement sent (no round trip of their own), so the server holds at most two.
TEST(PostgresStatementCache, EvictionKeepsResultsRightAndTheServerWithinTheSize) {
  REQUIRE_SERVER();
  auto infra = cached(schema_url(), 2);
  entity::database db(infra);
  db.execute("CREATE TABLE t (k int PRIMARY KEY, v int)");
  for (int k = 0; k < 5; ++k) db.execute("INSERT INTO t VALUES (?, ?)", {k, k * 10});
  auto query = [](int n) {
    return "SELECT v + " + std::to_string(n) + " FROM t WHERE k = ?";  // five texts
  };
  for (int round = 0; round < 3; ++round)
    for (int n = 0; n < 5; ++n)
      EXPECT_EQ(db.fetch_one(query(n), {n})->get<std::int64_t>(0), n * 10 + n);
  EXPECT_LE(prepared_on_server(db), 2);
  // A lease (no transaction block) deallocates as it goes too, counted on its own connection.
  {
    auto lease = db.acquire();
    for (int n = 0; n < 5; ++n)
      EXPECT_EQ(lease->fetch_one(query(n), {n})->get<std::int64_t>(0), n * 10 + n);
    EXPECT_LE(lease->fetch_one("SELECT count(*) FROM pg_prepared_statements")->get<std::int64_t>(0),
              2);
  }
  // Inside a transaction block a DEALLOCATE that failed would abort the transaction: the
  // statements a body gives up are deallocated after it, with the connection's next
  // statement.
  db.transaction([&](entity::session& s) {
    for (int n = 0; n < 5; ++n)
      EXPECT_EQ(s.fetch_one(query(n), {n})->get<std::int64_t>(0), n * 10 + n);
  });
  EXPECT_EQ(db.fetch_one(query(0), {0})->get<std::int64_t>(0), 0);
  EXPECT_LE(prepared_on_server(db), 2);
  // Writes through a full cache: an execute_many and a body's pipelined INSERTs.
  std::vector<entity::params> rows;
  for (int k = 100; k < 110; ++k) rows.push_back({k, k});
  db.execute_many("INSERT INTO t VALUES (?, ?)", rows);
  db.transaction([](entity::session& s) {
    for (int k = 200; k < 210; ++k) {
      s.execute("INSERT INTO t VALUES (?, ?)", {k, k});
      s.execute("INSERT INTO t VALUES (?, ? + 1)", {k + 1000, k});
      s.execute("INSERT INTO t VALUES (?, ? + 2)", {k + 2000, k});
    }
  });
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM t WHERE k >= 100")->get<std::int64_t>(0), 40);
  EXPECT_LE(prepared_on_server(db), 2);
}

// A prepare the server refuses (here: a column that does not exist yet) leaves no name behind:
// the statement is prepared again, under a new name, once it can be.
TEST(PostgresStatementCache, AFailedPrepareLeavesNoName) {
  REQUIRE_SERVER();
  auto infra = cached(schema_url(), 100);
  entity::database db(infra);
  db.execute("CREATE TABLE t (k int PRIMARY KEY)");
  db.execute("INSERT INTO t VALUES (1)");
  entity::error_code ec;
  entity::diagnostics diag;
  const std::string sql = "SELECT later FROM t WHERE k = ?";
  db.fetch_one(sql, {1}, ec, diag);
  EXPECT_EQ(entity::postgres_sqlstate(ec), "42703") << ec.message() << ": " << diag.message;
  EXPECT_EQ(diag.sql, sql);
  EXPECT_EQ(prepared_on_server(db), 0);
  db.execute("ALTER TABLE t ADD COLUMN later int DEFAULT 5");
  EXPECT_EQ(db.fetch_one(sql, {1})->get<std::int64_t>(0), 5);
  EXPECT_EQ(db.fetch_one(sql, {1})->get<std::int64_t>(0), 5);
  EXPECT_EQ(prepared_on_server(db), 1);
  // The same in execute_many, whose prepare travels inside its transaction.
  db.execute_many("INSERT INTO t (k, nothing) VALUES (?, ?)", {{2, 2}, {3, 3}}, ec, diag);
  EXPECT_EQ(entity::postgres_sqlstate(ec), "42703") << ec.message() << ": " << diag.message;
  EXPECT_EQ(prepared_on_server(db), 1);
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM t")->get<std::int64_t>(0), 1);
}

// ALTER TABLE changes what SELECT * returns: the server refuses the prepared statement
// ("cached plan must not change result type", 0A000) before it runs, and the engine prepares
// it again and runs it once more, on every path outside a transaction block.
TEST(PostgresStatementCache, AnAlteredTableIsPreparedAgainTransparently) {
  REQUIRE_SERVER();
  auto infra = cached(schema_url(), 100);
  entity::database db(infra);
  db.execute("CREATE TABLE t (k int PRIMARY KEY, v text)");
  db.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')");
  const std::string sql = "SELECT * FROM t WHERE k >= ? ORDER BY k";
  EXPECT_EQ(db.fetch_all(sql, {0}).size(), 2u);
  EXPECT_EQ(db.fetch_all(sql, {0}).size(), 2u);
  const cache_counts before = counts(*infra);

  db.execute("ALTER TABLE t ADD COLUMN w int DEFAULT 7");
  auto rows = db.fetch_all(sql, {0});  // sync
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].get<std::string>("v"), "two");
  EXPECT_EQ(rows[1].get<std::int64_t>("w"), 7);
  EXPECT_EQ(counts(*infra).misses - before.misses, 1u);  // prepared again

  db.execute("ALTER TABLE t ADD COLUMN x text DEFAULT 'x'");
  std::promise<std::pair<entity::error_code, entity::result>> got;
  entity::diagnostics diag;
  db.async_execute(sql, {0}, diag, [&](entity::error_code ec, entity::result r) {
    got.set_value({ec, std::move(r)});
  });
  auto [ec, res] = got.get_future().get();
  ASSERT_FALSE(ec) << ec.message() << ": " << diag.message;
  ASSERT_EQ(res.rows.size(), 2u);
  EXPECT_EQ(res.rows[0].get<std::string>("x"), "x");

  db.execute("ALTER TABLE t DROP COLUMN w");
  {
    auto lease = db.acquire();
    auto leased = lease->fetch_all(sql, {0});
    ASSERT_EQ(leased.size(), 2u);
    EXPECT_EQ(leased[0].size(), 3u);
  }
  EXPECT_EQ(infra->stats().errors, 0u);
  EXPECT_EQ(prepared_on_server(db), 1);  // the stale statements were deallocated
}

// DEALLOCATE ALL (or DISCARD ALL) on a connection leaves its cache naming statements the
// server no longer has (26000): each is prepared again when next used.
TEST(PostgresStatementCache, StatementsTheServerLostArePreparedAgain) {
  REQUIRE_SERVER();
  auto infra = cached(schema_url(), 100);
  entity::database db(infra);
  db.execute("CREATE TABLE t (k int PRIMARY KEY, v int)");
  db.execute("INSERT INTO t VALUES (1, 10)");
  const std::string select = "SELECT v FROM t WHERE k = ?";
  const std::string update = "UPDATE t SET v = v + ? WHERE k = 1";
  EXPECT_EQ(db.fetch_one(select, {1})->get<std::int64_t>(0), 10);
  db.execute(update, {1});
  db.execute_many(update, {{1}, {1}});
  EXPECT_EQ(prepared_on_server(db), 2);

  db.execute("DEALLOCATE ALL");  // the pool's one connection
  EXPECT_EQ(prepared_on_server(db), 0);
  EXPECT_EQ(db.fetch_one(select, {1})->get<std::int64_t>(0), 13);
  // Once: an UPDATE refused as stale wrote nothing, so running it again adds 1, not 2.
  EXPECT_EQ(db.execute(update, {1}).rows_affected, 1);
  EXPECT_EQ(db.fetch_one(select, {1})->get<std::int64_t>(0), 14);

  db.execute("DISCARD ALL");
  db.execute_many(update, {{1}, {1}, {1}});  // the whole batch again, once
  EXPECT_EQ(db.fetch_one(select, {1})->get<std::int64_t>(0), 17);

  {
    auto lease = db.acquire();
    lease->execute("DEALLOCATE ALL");
    EXPECT_EQ(lease->fetch_one(select, {1})->get<std::int64_t>(0), 17);
  }
  EXPECT_EQ(infra->stats().errors, 0u);
}

// Inside a transaction body the cache serves as outside; a stale statement there has aborted
// the transaction, so it is not run again: the body fails with the server's error, and the
// statement is prepared again by the next use.
TEST(PostgresStatementCache, InsideATransactionBodyAStaleStatementFailsTheTransaction) {
  REQUIRE_SERVER();
  auto infra = cached(schema_url(), 100);
  entity::database db(infra);
  db.execute("CREATE TABLE t (k int PRIMARY KEY, v text)");
  const std::string insert = "INSERT INTO t VALUES (?, ?)";
  const std::string select = "SELECT * FROM t WHERE k = ?";
  const cache_counts before = counts(*infra);
  db.transaction([&](entity::session& s) {
    for (int k = 0; k < 10; ++k) s.execute(insert, {k, "v"});  // pipelined
    for (int k = 0; k < 10; ++k) EXPECT_EQ(s.fetch_one(select, {k})->get<std::string>(1), "v");
  });
  cache_counts after = counts(*infra);
  EXPECT_EQ(after.misses - before.misses, 2u);
  EXPECT_EQ(after.hits - before.hits, 18u);
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM t")->get<std::int64_t>(0), 10);

  db.execute("ALTER TABLE t ADD COLUMN w int");
  entity::error_code ec;
  entity::diagnostics diag;
  db.transaction(
      [&](entity::session& s) {
        s.execute(insert, {100, "in the failed transaction"});
        s.fetch_one(select, {0});
      },
      ec, diag);
  EXPECT_EQ(entity::postgres_sqlstate(ec), "0A000") << ec.message() << ": " << diag.message;
  EXPECT_FALSE(db.fetch_one("SELECT 1 FROM t WHERE k = ?", {100}));
  // The next transaction prepares it again.
  db.transaction([&](entity::session& s) {
    auto r = s.fetch_one(select, {0});
    EXPECT_EQ(r->size(), 3u);
  });
  // A pipelined INSERT whose name the server lost fails its transaction too, at the flush.
  db.transaction(
      [&](entity::session& s) {
        s.execute("DEALLOCATE ALL");
        s.execute(insert, {101, "x"});
        s.execute(insert, {102, "y"});
      },
      ec, diag);
  EXPECT_EQ(entity::postgres_sqlstate(ec), "26000") << ec.message() << ": " << diag.message;
  EXPECT_FALSE(db.fetch_one("SELECT 1 FROM t WHERE k = ?", {101}));
  db.transaction([&](entity::session& s) { s.execute(insert, {101, "x"}); });
  EXPECT_TRUE(db.fetch_one("SELECT 1 FROM t WHERE k = ?", {101}));
}

// statement_cache_size = 0 (for transaction-pooling proxies) prepares nothing: every path
// sends unnamed statements, as without a cache.
TEST(PostgresStatementCache, SizeZeroPreparesNothingOnTheServer) {
  REQUIRE_SERVER();
  auto infra = cached(schema_url(), 0);
  entity::database db(infra);
  db.execute("CREATE TABLE t (k int PRIMARY KEY, v text)");
  for (int k = 0; k < 5; ++k) db.execute("INSERT INTO t VALUES (?, ?)", {k, "v"});
  for (int k = 0; k < 5; ++k) db.fetch_one("SELECT v FROM t WHERE k = ?", {k});
  db.execute_many("INSERT INTO t VALUES (?, ?)", {{10, "a"}, {11, "b"}});
  db.transaction([](entity::session& s) {
    s.execute("INSERT INTO t VALUES (?, ?)", {20, "c"});
    s.fetch_one("SELECT v FROM t WHERE k = ?", {20});
  });
  std::promise<void> done;
  entity::diagnostics diag;
  db.async_execute("SELECT v FROM t WHERE k = ?", {1}, diag,
                   [&](entity::error_code, entity::result) { done.set_value(); });
  done.get_future().get();
  {
    auto lease = db.acquire();
    lease->fetch_one("SELECT v FROM t WHERE k = ?", {1});
    EXPECT_EQ(lease->fetch_one("SELECT count(*) FROM pg_prepared_statements")->get<std::int64_t>(0),
              0);
  }
  EXPECT_EQ(counts(*infra).hits, 0u);
  EXPECT_EQ(counts(*infra).misses, 0u);
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM t")->get<std::int64_t>(0), 8);
}

// execute_many runs its rows by the statement's one prepared name; a row in the middle that
// fails still takes the whole batch with it, and the statement stays usable.
TEST(PostgresStatementCache, ExecuteManyByNameIsStillAllOrNothing) {
  REQUIRE_SERVER();
  entity::postgres_params p;
  p.url = schema_url();
  p.pool_size = 1;
  p.pipeline_chunk = 50;
  auto infra = std::make_shared<entity::postgres_infrastructure>(p);
  infra->startup();
  entity::database db(infra);
  db.execute("CREATE TABLE m (k int PRIMARY KEY, v text)");
  const std::string insert = "INSERT INTO m VALUES (?, ?)";
  std::vector<entity::params> batch;
  for (int i = 0; i < 200; ++i) batch.push_back({i, "v"});
  EXPECT_EQ(db.execute_many(insert, batch).rows_affected, 200);
  const cache_counts before = counts(*infra);
  std::vector<entity::params> bad;
  for (int i = 200; i < 320; ++i) bad.push_back({i, "x"});
  bad.push_back({7, "dup"});  // in the third chunk
  for (int i = 320; i < 400; ++i) bad.push_back({i, "x"});
  entity::error_code ec;
  entity::diagnostics diag;
  db.execute_many(insert, bad, ec, diag);
  EXPECT_TRUE(ec == entity::condition::constraint) << ec.message() << ": " << diag.message;
  EXPECT_EQ(diag.sql, insert);
  EXPECT_EQ(counts(*infra).hits - before.hits, 1u);  // by the name prepared before
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM m")->get<std::int64_t>(0), 200);
  EXPECT_EQ(db.execute(insert, {1000, "after"}).rows_affected, 1);
  EXPECT_EQ(counts(*infra).hits - before.hits, 2u);
  EXPECT_EQ(prepared_on_server(db), 1);
}

// ---- the memory on PostgreSQL -------------------------------------------------------------

ENTITY_CONCURRENT_TEST(PostgresMemory, ConcurrentCoroutinesStoreTenThousandKeysOnAPoolOfFour) {
  REQUIRE_SERVER();
  auto infra = started(schema_url(), /*pool=*/4);
  entity::database db(infra);
  memory mem(db);
  EXPECT_EQ(mem.size(), 0);  // creates the table once, before the concurrent first uses
  asio::io_context io;
  std::atomic<int> failures{0};
  for (int c = 0; c < 20; ++c) {
    asio::co_spawn(
        io,
        [&, c]() -> asio::awaitable<void> {
          for (int i = 0; i < 500; ++i) {
            std::string key = "c" + std::to_string(c) + ":" + std::to_string(i);
            json value = {{"c", c}, {"i", i}};
            auto [ec] = co_await mem.async_store(key, value, asio::as_tuple(asio::use_awaitable));
            if (ec) ++failures;
          }
        },
        asio::detached);
  }
  io.run();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mem.size(), 10000);
  EXPECT_EQ(mem.load("c19:499"), (json{{"c", 19}, {"i", 499}}));
  auto s = infra->stats();
  EXPECT_LE(s.open_connections, 4u);
  EXPECT_GE(s.operations, 10000u);
}

TEST(PostgresMemory, TenThousandItemBatchStoreTravelsInPipelineChunks) {
  REQUIRE_SERVER();
  // 10,000 items are 79 INSERTs of up to 128 rows: 16 statements a round trip makes 5.
  auto infra = started(schema_url(), 5, /*pipeline_chunk=*/16);
  entity::database db(infra);
  memory mem(db);
  memory::items items;
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < 10000; ++i) {
    items.emplace_back(numbered_key(i), json{{"i", i}});
    keys.push_back(numbered_key(i));
  }
  auto before = infra->stats().pipeline_batches;
  mem.batch_store(items);
  EXPECT_EQ(infra->stats().pipeline_batches - before, 5u);
  EXPECT_EQ(mem.size(), 10000);
  auto loaded = mem.batch_load(keys);
  ASSERT_EQ(loaded.size(), 10000u);
  EXPECT_EQ(loaded.at(numbered_key(9999)), (json{{"i", 9999}}));

  // All or nothing: a value that cannot be written as JSON fails the whole batch.
  memory::items bad;
  for (std::size_t i = 0; i < 3000; ++i) bad.emplace_back("new" + std::to_string(i), json(1));
  bad.emplace_back("broken", json(std::string("\xff\xfe")));
  EXPECT_THROW(mem.batch_store(bad), entity::error);
  EXPECT_EQ(mem.size(), 10000);
  EXPECT_FALSE(mem.exists("new0"));
}

}  // namespace
