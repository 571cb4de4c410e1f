// A database file is plain SQLite: the sqlite3 command-line tool reads what entity-db wrote and
// the other way round, and the two can share a file while both are running.
#include <gtest/gtest.h>

#include <chrono>
#include <entity/entity.hpp>
#include <filesystem>
#include <string>
#include <thread>

#include "concurrency.hpp"
#include "library_support.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using entity::test::run_command;
using entity::test::shell_quote;

namespace {

const std::string sqlite3_cli = ENTITY_SQLITE3_CLI;

using entity::test::started;

// Runs `input` through the sqlite3 tool on `path`; returns what it printed.
std::string cli(const std::string& path, const std::string& input) {
  auto r = run_command(sqlite3_cli + " -batch " + shell_quote(path), input);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out;
}

bool cli_available() { return run_command(sqlite3_cli + " -version").exit_code == 0; }

// scripts/install-deps installs the tool: without it the setup is broken, and these tests fail
// rather than skip, so that a run which never checked the file format cannot pass.
const char* const missing_cli_message =
    "the sqlite3 command-line tool does not run: install it (scripts/install-deps does)";

// Waits (boundedly) for a file another process creates when it has reached a point.
bool wait_for_file(const std::string& path) {
  for (int i = 0; i < 2000; ++i) {
    if (std::filesystem::exists(path)) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

// Another process, the sqlite3 shell, holding the lock of the database at `path` for
// `seconds`: it runs `begin` ("BEGIN IMMEDIATE;" or "BEGIN EXCLUSIVE;") and `inside`, then
// sleeps and commits. Constructed once the lock is held; destroyed once the shell is done.
class lock_held_elsewhere {
 public:
  lock_held_elsewhere(const std::string& path, const std::string& begin, const std::string& inside,
                      const std::string& seconds)
      : locked_(path + ".locked") {
    shell_ = std::thread([=, this] {
      cli(path, begin + "\n" + inside + ".shell touch " + shell_quote(locked_) + "\n.shell sleep " +
                    seconds + "\nCOMMIT;\n");
    });
    held_ = wait_for_file(locked_);
  }
  lock_held_elsewhere(const lock_held_elsewhere&) = delete;
  lock_held_elsewhere& operator=(const lock_held_elsewhere&) = delete;
  ~lock_held_elsewhere() { done(); }

  bool held() const { return held_; }
  /// Waits for the shell to commit and end.
  void done() {
    if (shell_.joinable()) shell_.join();
  }

 private:
  std::string locked_;
  std::thread shell_;
  bool held_ = false;
};

}  // namespace

TEST(Interop, FileWrittenHereReadsInTheSqliteTool) {
  ASSERT_TRUE(cli_available()) << missing_cli_message;
  entity::test::temp_dir dir;
  entity::sqlite_params p;
  p.path = dir.file("ours.db");
  {
    auto infra = started(p);
    entity::database db(infra);
    db.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT, weight REAL, tag BLOB)");
    std::vector<std::byte> tag = {std::byte{0xca}, std::byte{0xfe}};
    db.execute("INSERT INTO things VALUES (?, ?, ?, ?)", {1, "anvil", 50.5, entity::blob(tag)});
    db.execute("INSERT INTO things VALUES (?, ?, ?, ?)", {2, "it's", entity::null, entity::null});
    // Still running: the tool reads the committed rows from the WAL alongside us.
    EXPECT_EQ(cli(p.path, "SELECT count(*) FROM things;"), "2\n");
    infra->shutdown();
  }
  EXPECT_EQ(
      cli(p.path, "SELECT id, name, weight, hex(tag), typeof(weight) FROM things ORDER BY id;"),
      "1|anvil|50.5|CAFE|real\n2|it's|||null\n");
  EXPECT_EQ(cli(p.path, "PRAGMA integrity_check;"), "ok\n");
  EXPECT_EQ(cli(p.path, "PRAGMA journal_mode;"), "wal\n");
}

TEST(Interop, FileWrittenBySqliteToolReadsHere) {
  ASSERT_TRUE(cli_available()) << missing_cli_message;
  entity::test::temp_dir dir;
  std::string path = dir.file("theirs.db");
  cli(path,
      "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, score REAL, raw BLOB);\n"
      "INSERT INTO notes VALUES (1, 'hello', 0.25, x'00ff'), (2, NULL, 3, NULL);\n");
  entity::sqlite_params p;
  p.path = path;
  auto infra = started(p);
  entity::database db(infra);
  auto rows = db.fetch_all("SELECT id, body, score, raw FROM notes ORDER BY id");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].get<std::string>("body"), "hello");
  EXPECT_EQ(rows[0].get<double>("score"), 0.25);
  EXPECT_EQ(rows[0].get<entity::blob>("raw"),
            entity::blob(std::vector<std::byte>{std::byte{0}, std::byte{0xff}}));
  EXPECT_EQ(rows[1].get<std::optional<std::string>>("body"), std::nullopt);
  EXPECT_EQ(rows[1].get<double>("score"), 3.0);
  // And it writes to it.
  db.execute("INSERT INTO notes (body) VALUES (?)", {"from entity-db"});
  infra->shutdown();
  EXPECT_EQ(cli(path, "SELECT body FROM notes WHERE id = 3;"), "from entity-db\n");
}

ENTITY_CONCURRENT_TEST(Interop, WriterWaitsForAnotherProcessLock) {
  ASSERT_TRUE(cli_available()) << missing_cli_message;
  entity::test::temp_dir dir;
  entity::sqlite_params p;
  p.path = dir.file("shared.db");
  // Shorter than the other process holds its lock: the writer must keep trying past it, up
  // to the request's deadline.
  p.busy_timeout = 20ms;
  auto infra = started(p);
  entity::database db(infra);
  db.execute("CREATE TABLE t (who TEXT)");

  lock_held_elsewhere other(p.path, "BEGIN IMMEDIATE;", "INSERT INTO t VALUES ('tool');\n", "0.4");
  ASSERT_TRUE(other.held());
  db.execute("INSERT INTO t VALUES ('entity')");
  other.done();
  auto rows = db.fetch_all("SELECT who FROM t ORDER BY rowid");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].get<std::string>(0), "tool");
  EXPECT_EQ(rows[1].get<std::string>(0), "entity");
}

ENTITY_CONCURRENT_TEST(Interop, AWriteWaitsForAnotherProcessLockOnlyUntilItsDeadline) {
  ASSERT_TRUE(cli_available()) << missing_cli_message;
  entity::test::temp_dir dir;
  entity::sqlite_params p;
  p.path = dir.file("deadline.db");
  // Far longer than the request may take: the wait must end at the request's deadline.
  p.busy_timeout = 20s;
  auto infra = started(p);
  entity::database db(infra);
  db.execute("CREATE TABLE t (who TEXT)");

  lock_held_elsewhere other(p.path, "BEGIN EXCLUSIVE;", "", "4");
  ASSERT_TRUE(other.held());
  // A lone statement (autocommit) and a batch (BEGIN IMMEDIATE) wait in different places.
  for (bool batch : {false, true}) {
    const char* sql = "INSERT INTO t VALUES (?)";
    auto start = std::chrono::steady_clock::now();
    entity::error_code ec;
    entity::diagnostics diag;
    auto quick = db.with_timeout(300ms);
    if (batch)
      quick.execute_many(sql, {{"one"}, {"two"}}, ec, diag);
    else
      quick.execute(sql, {"alone"}, ec, diag);
    auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(ec, entity::condition::busy) << sql << ": " << diag.to_string();
    EXPECT_NE(diag.message.find("deadline"), std::string::npos) << diag.message;
    // The lock is held for 4 s and busy_timeout is 20 s: returning before either shows the
    // deadline ended the wait.
    EXPECT_LT(waited, 3s) << (batch ? "execute_many" : "execute");
  }
  other.done();
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM t")->get<int>(0), 0);
}

ENTITY_CONCURRENT_TEST(Interop, ATransactionWaitsForAnotherProcessLockOnlyUntilItsDeadline) {
  ASSERT_TRUE(cli_available()) << missing_cli_message;
  entity::test::temp_dir dir;
  entity::sqlite_params p;
  p.path = dir.file("tx.db");
  p.busy_timeout = 20s;
  auto infra = started(p);
  entity::database db(infra);
  db.execute("CREATE TABLE t (who TEXT)");

  lock_held_elsewhere other(p.path, "BEGIN EXCLUSIVE;", "", "4");
  ASSERT_TRUE(other.held());
  auto start = std::chrono::steady_clock::now();
  bool ran = false;
  entity::error_code ec;
  entity::diagnostics diag;
  db.with_timeout(300ms).transaction(
      [&](entity::session& s) {
        ran = true;
        s.execute("INSERT INTO t VALUES ('tx')");
      },
      ec, diag);
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(ec, entity::condition::busy) << diag.to_string();
  EXPECT_FALSE(ran);
  EXPECT_LT(waited, 3s);
  other.done();
}

ENTITY_CONCURRENT_TEST(Interop, AReadWaitsForAnotherProcessLockUpToBusyTimeout) {
  ASSERT_TRUE(cli_available()) << missing_cli_message;
  entity::test::temp_dir dir;
  entity::sqlite_params p;
  p.path = dir.file("rollback.db");
  // In rollback-journal mode a reader needs a shared lock that an exclusive one keeps out.
  p.journal = entity::journal_mode::delete_;
  p.busy_timeout = 300ms;
  p.query_timeout = 20s;
  p.pool_size = 1;
  auto infra = started(p);
  entity::database db(infra);
  db.execute("CREATE TABLE t (who TEXT)");
  // The one reader has the schema and the statement: what it waits for is the lock alone.
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM t")->get<int>(0), 0);

  lock_held_elsewhere other(p.path, "BEGIN EXCLUSIVE;", "INSERT INTO t VALUES ('tool');\n", "4");
  ASSERT_TRUE(other.held());
  auto start = std::chrono::steady_clock::now();
  entity::error_code ec;
  entity::diagnostics diag;
  auto row = db.fetch_one("SELECT count(*) FROM t", {}, ec, diag);
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(ec, entity::condition::busy) << diag.to_string();
  EXPECT_GE(waited, 250ms);  // it did wait, for about busy_timeout
  EXPECT_LT(waited, 3s);     // and not for the lock's 4 s nor the 20 s deadline
  other.done();
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM t")->get<int>(0), 1);
}

ENTITY_CONCURRENT_TEST(Interop, ScriptRetriedAfterAnotherProcessLockRunsEachStatementOnce) {
  ASSERT_TRUE(cli_available()) << missing_cli_message;
  entity::test::temp_dir dir;
  entity::sqlite_params p;
  p.path = dir.file("script.db");
  p.busy_timeout = 20ms;
  auto infra = started(p);
  entity::database db(infra);
  db.execute_script("CREATE TABLE log (line TEXT); CREATE TABLE t (a);");

  lock_held_elsewhere other(p.path, "BEGIN IMMEDIATE;", "INSERT INTO t VALUES (0);\n", "0.4");
  ASSERT_TRUE(other.held());
  // The first statement needs no lock on the file (a temporary table); the second waits for
  // the other process. The first must not run twice.
  entity::error_code ec;
  entity::diagnostics diag;
  db.execute_script("CREATE TEMP TABLE scratch (x); INSERT INTO t VALUES (1);", ec, diag);
  other.done();
  EXPECT_FALSE(ec) << diag.to_string();
  EXPECT_EQ(db.fetch_one("SELECT count(*) FROM t")->get<int>(0), 2);
}
