// Faults: a full disk, a read-only file, a file that is not a database, a corrupted one. Each
// gives a clear error, never a crash, and leaves what was stored before intact.
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <entity/entity.hpp>
#include <fstream>
#include <string>
#include <system_error>

#include "concurrency.hpp"
#include "library_support.hpp"
#include "test_support.hpp"

namespace {

using entity::test::temp_dir;

// Runs `body` in a child process (so that limits and identities stay there) and returns its
// exit code; the body reports failures by returning non-zero after printing why.
template <class F>
int in_child(F body) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 1;
    try {
      rc = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: unexpected exception: %s\n", e.what());
    }
    std::fflush(nullptr);
    ::_exit(rc);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

using entity::test::started;

#define CHILD_CHECK(cond, ...)                     \
  do {                                             \
    if (!(cond)) {                                 \
      std::fprintf(stderr, "child: " __VA_ARGS__); \
      std::fprintf(stderr, "\n");                  \
      return 1;                                    \
    }                                              \
  } while (0)

}  // namespace

TEST(Faults, FullDiskFailsTheWriteKeepsTheDataAndRecovers) {
  temp_dir dir;
  std::string db = dir.file("full.db");
  int rc = in_child([&] {
    // A file-size limit makes every write past it fail with EFBIG, as a full disk would.
    ::signal(SIGXFSZ, SIG_IGN);
    auto infra = started(db);
    entity::memory mem{entity::database(infra)};
    mem.store("before", {{"kept", true}});
    rlimit limit{};
    ::getrlimit(RLIMIT_FSIZE, &limit);
    rlimit small = limit;
    small.rlim_cur = 256 * 1024;
    ::setrlimit(RLIMIT_FSIZE, &small);
    bool failed = false;
    std::string message;
    entity::error_code code;
    for (int i = 0; i < 10'000 && !failed; ++i) {
      try {
        mem.store("big" + std::to_string(i), std::string(4096, 'x'));
      } catch (const entity::error& e) {
        failed = true;
        message = e.what();
        code = e.code();
      }
    }
    CHILD_CHECK(failed, "writing past the limit never failed");
    CHILD_CHECK(code == entity::condition::io, "the error is not an I/O condition: %s",
                message.c_str());
    CHILD_CHECK(!message.empty(), "the error has no message");
    // The system's reason is in it, not only SQLite's "disk I/O error".
    CHILD_CHECK(message.find(std::generic_category().message(EFBIG)) != std::string::npos,
                "the error does not say why the write failed: %s", message.c_str());
    std::fprintf(stderr, "child: full disk reported as: %s\n", message.c_str());
    CHILD_CHECK(mem.load("before").has_value(), "data stored before the fault is gone");
    ::setrlimit(RLIMIT_FSIZE, &limit);  // space returns
    mem.store("after", {{"works", true}});
    CHILD_CHECK(mem.load("after").has_value(), "writing does not work again once space returns");
    auto check = entity::database(infra).fetch_one("PRAGMA integrity_check");
    CHILD_CHECK(check && check->get<std::string>(0) == "ok", "integrity_check failed");
    infra->shutdown();
    return 0;
  });
  EXPECT_EQ(rc, 0);
  // And the file reopens with the earlier data intact.
  auto infra = started(db);
  entity::memory mem{entity::database(infra)};
  EXPECT_TRUE(mem.load("before").has_value());
  EXPECT_TRUE(mem.load("after").has_value());
}

TEST(Faults, ReadOnlyFileIsAClearErrorAtStartup) {
  temp_dir dir;
  std::string db = dir.file("ro.db");
  {
    auto infra = started(db);
    entity::memory{entity::database(infra)}.store("k", 1);
    infra->shutdown();
  }
  // Root may write anything, so the child gives up root before the file becomes read-only.
  ::chmod(dir.path().c_str(), 0755);
  ::chmod(db.c_str(), 0444);
  int rc = in_child([&] {
    if (::geteuid() == 0) {
      passwd* nobody = ::getpwnam("nobody");
      CHILD_CHECK(nobody != nullptr, "no user 'nobody'");
      CHILD_CHECK(::setgid(nobody->pw_gid) == 0 && ::setuid(nobody->pw_uid) == 0,
                  "cannot drop privileges");
    }
    try {
      started(db);
    } catch (const entity::error& e) {
      std::string what = e.what();
      CHILD_CHECK(
          what.find("read-only") != std::string::npos || what.find("readonly") != std::string::npos,
          "the error does not say read-only: %s", what.c_str());
      return 0;
    }
    CHILD_CHECK(false, "startup on a read-only file succeeded");
    return 1;
  });
  EXPECT_EQ(rc, 0);
}

TEST(Faults, NotADatabaseIsAClearErrorAtStartup) {
  temp_dir dir;
  std::string path = dir.file("text.db");
  std::ofstream(path) << std::string(8192, 'z') << "this is not a database\n";
  try {
    started(path);
    FAIL() << "startup accepted a file that is not a database";
  } catch (const entity::error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("not a database"), std::string::npos) << what;
    EXPECT_NE(what.find(path), std::string::npos) << "the error should name the file: " << what;
    EXPECT_EQ(e.code(), entity::condition::io);
  }
}

ENTITY_CONCURRENT_TEST(Faults, CorruptedDatabaseIsAClearErrorNotACrash) {
  temp_dir dir;
  std::string path = dir.file("corrupt.db");
  {
    auto infra = started(path);
    entity::memory mem{entity::database(infra)};
    entity::memory::items items;
    for (int i = 0; i < 2000; ++i)
      items.emplace_back("key" + std::to_string(i), std::string(100, 'v'));
    mem.batch_store(std::move(items));
    entity::database(infra).execute("PRAGMA wal_checkpoint(TRUNCATE)");
    infra->shutdown();
  }
  {
    // Overwrite pages in the middle of the file (past the header) with garbage.
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096 * 3);
    std::string junk(4096 * 4, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  bool reported = false;
  try {
    auto infra = started(path);
    entity::database db(infra);
    entity::memory mem(db);
    entity::error_code ec;
    entity::diagnostics diag;
    auto check = db.fetch_one("PRAGMA integrity_check", {}, ec, diag);
    if (ec || !check || check->get<std::string>(0) != "ok") reported = true;
    std::vector<std::string> keys;
    for (int i = 0; i < 2000; ++i) keys.push_back("key" + std::to_string(i));
    try {
      mem.batch_load(keys);
    } catch (const entity::error& e) {
      reported = true;
      EXPECT_EQ(e.code(), entity::condition::io) << e.what();
    }
  } catch (const entity::error& e) {
    reported = true;
    EXPECT_FALSE(std::string(e.what()).empty());
  }
  EXPECT_TRUE(reported) << "the corruption went unnoticed";
}
