// The write-ahead log (x.db-wal) or its index (x.db-shm) deleted or replaced under a live
// process. SQLite cannot survive it: the process would go on committing into the unlinked log,
// which no other process reads and which vanishes when it ends. The engine fails loudly
// instead of acknowledging such writes, and `entitydb check` names the process.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <entity/entity.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "library_support.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using entity::test::started;
using entity::test::temp_dir;

std::shared_ptr<entity::sqlite_infrastructure> engine_on(const std::string& path) {
  entity::sqlite_params p;
  p.path = path;
  return started(p);
}

struct opened {
  explicit opened(const std::string& path) : infra(engine_on(path)) {}
  std::shared_ptr<entity::sqlite_infrastructure> infra;
  entity::database db{infra};
  entity::memory mem{db};
};

// What every request, sync, async or a lease, gets once the log is gone.
void expect_refused_everywhere(const opened& o) {
  entity::error_code ec;
  entity::diagnostics diag;
  o.mem.store("later", 3, ec, diag);
  EXPECT_TRUE(ec == entity::condition::io) << ec.message();
  EXPECT_NE(diag.message.find("write-ahead log"), std::string::npos) << diag.message;
  auto row = o.db.fetch_one("SELECT 1", {}, ec, diag);
  EXPECT_TRUE(ec == entity::condition::io) << "a read answered from a log no one else sees";
  EXPECT_FALSE(o.db.health_check());
  entity::test::run_coroutine([&]() -> boost::asio::awaitable<void> {
    auto [aec] =
        co_await o.mem.async_store("async", 4, boost::asio::as_tuple(boost::asio::use_awaitable));
    EXPECT_TRUE(aec == entity::condition::io) << aec.message();
    co_return;
  });
  EXPECT_THROW(o.db.acquire(), entity::error);
}

TEST(LostLog, AWriteAfterTheLogIsDeletedFailsInsteadOfBeingAcknowledged) {
  temp_dir dir;
  const std::string path = dir.file("m.db");
  opened o(path);
  o.mem.store("kept", 1);
  ASSERT_TRUE(fs::exists(path + "-wal"));
  ASSERT_TRUE(fs::exists(path + "-shm"));
  fs::remove(path + "-wal");
  fs::remove(path + "-shm");

  entity::error_code ec;
  entity::diagnostics diag;
  o.mem.store("lost", 2, ec, diag);
  EXPECT_TRUE(ec == entity::condition::io) << ec.message();
  EXPECT_NE(diag.message.find(path + "-wal"), std::string::npos) << diag.message;
  expect_refused_everywhere(o);
}

TEST(LostLog, AReplacedIndexIsCaughtToo) {
  temp_dir dir;
  const std::string path = dir.file("m.db");
  opened o(path);
  o.mem.store("kept", 1);
  // Another file of the same name: what a second process opening the database would create.
  fs::remove(path + "-shm");
  std::ofstream(path + "-shm") << "";
  entity::error_code ec;
  entity::diagnostics diag;
  o.mem.store("lost", 2, ec, diag);
  EXPECT_TRUE(ec == entity::condition::io) << ec.message();
  EXPECT_NE(diag.message.find(path + "-shm"), std::string::npos) << diag.message;
  expect_refused_everywhere(o);
}

TEST(LostLog, AnIntactLogIsNotMistakenForALostOne) {
  temp_dir dir;
  const std::string path = dir.file("m.db");
  opened o(path);
  // Checkpoints, many commits, a reopen by another engine: the files stay the same files.
  for (int i = 0; i < 3000; ++i) o.mem.store("k" + std::to_string(i % 50), i);
  opened other(path);
  other.mem.store("from another engine", true);
  o.mem.store("after", 1);
  EXPECT_EQ(o.mem.size(), 52u);
  EXPECT_TRUE(o.db.health_check());
}

#ifdef ENTITYDB_BIN
TEST(LostLog, CheckNamesTheProcessThatWritesIntoADeletedLog) {
  temp_dir dir;
  const std::string path = dir.file("m.db");
  auto check = [&] {
    return entity::test::run_command(
        entity::test::command_line(ENTITYDB_BIN, {"check", "--db", path}));
  };
  {
    opened o(path);
    o.mem.store("kept", 1);
    EXPECT_EQ(check().exit_code, 0);
    fs::remove(path + "-wal");
    fs::remove(path + "-shm");
    auto r = check();
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_NE(r.err.find("write-ahead log"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(std::to_string(::getpid())), std::string::npos)
        << "names this process: " << r.err;
  }
  // The process has let go: the file is whole again (as of its last checkpoint).
  auto r = check();
  EXPECT_EQ(r.exit_code, 0) << r.err;
}
#endif

}  // namespace
