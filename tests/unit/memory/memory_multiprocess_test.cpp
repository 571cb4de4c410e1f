// Several processes writing one memory file at once: SQLite's file locks are the only thing
// they share, so lock waits must be absorbed by the engine, never reported as "database is
// locked", and every acknowledged store must be in the file afterwards.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "concurrency.hpp"
#include "entity/entity.hpp"
#include "test_support.hpp"

namespace {

using entity::json;

constexpr int processes = 4;
constexpr int stores_per_process = 2500;

std::string key_of(int process, int i) {
  return "p" + std::to_string(process) + ":" + std::to_string(i);
}
json value_of(int process, int i) {
  return json{{"p", process}, {"i", i}, {"note", "written by a child"}};
}

// The body of one child process: waits for the start signal, opens its own engine on the file,
// then stores its keys one by one with the sync API. Returns the exit status: 0 when every
// store succeeded.
int child(const std::string& path, int process, int stores, int start_fd) {
  char go;
  if (::read(start_fd, &go, 1) < 0) return 3;
  ::close(start_fd);
  try {
    entity::sqlite_params p;
    p.path = path;
    auto infra = std::make_shared<entity::sqlite_infrastructure>(p);
    infra->startup();
    entity::memory mem{entity::database(infra)};
    for (int i = 0; i < stores; ++i) mem.store(key_of(process, i), value_of(process, i));
    infra->shutdown();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "process %d: %s\n", process, e.what());
    return 1;
  } catch (...) {
    return 2;
  }
}

// Forks `processes` children that each run child(path, p, ...) at the same moment, and
// expects every one to exit with status 0.
void run_children(const std::string& path, int stores) {
  // Every child blocks on this pipe until all have been forked, so they start together.
  int start[2];
  ASSERT_EQ(::pipe(start), 0);
  std::vector<pid_t> children;
  for (int p = 0; p < processes; ++p) {
    std::fflush(nullptr);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(start[1]);
      // _exit: the child must not run the parent's atexit handlers or gtest's reporting.
      ::_exit(child(path, p, stores, start[0]));
    }
    children.push_back(pid);
  }
  ::close(start[0]);
  ::close(start[1]);  // EOF on the pipe: go
  for (std::size_t p = 0; p < children.size(); ++p) {
    int status = 0;
    ASSERT_EQ(::waitpid(children[p], &status, 0), children[p]);
    EXPECT_TRUE(WIFEXITED(status)) << "process " << p << " was killed";
    if (WIFEXITED(status)) EXPECT_EQ(WEXITSTATUS(status), 0) << "process " << p << " failed";
  }
}

// Every key every child stored is in the file, with its value.
void expect_every_key(const std::string& path, int stores) {
  entity::sqlite_params params;
  params.path = path;
  auto infra = std::make_shared<entity::sqlite_infrastructure>(params);
  infra->startup();
  entity::memory mem{entity::database(infra)};
  EXPECT_EQ(mem.size(), processes * stores);
  std::vector<std::string> keys;
  for (int p = 0; p < processes; ++p)
    for (int i = 0; i < stores; ++i) keys.push_back(key_of(p, i));
  auto got = mem.batch_load(keys);
  ASSERT_EQ(got.size(), keys.size());
  for (int p = 0; p < processes; ++p)
    for (int i = 0; i < stores; ++i) ASSERT_EQ(got.at(key_of(p, i)), value_of(p, i));
}

ENTITY_CONCURRENT_TEST(MemoryMultiprocess, ConcurrentWritersLoseNothing) {
  entity::test::temp_dir dir;
  const std::string path = dir.file("shared.db");
  // The file exists, in WAL mode, without the memory table: the children race to create the
  // table and then to write. (No infrastructure exists in this process before the forks.)
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);

  run_children(path, stores_per_process);
  expect_every_key(path, stores_per_process);
}

// The children also race to create the file and to switch it to WAL. SQLite answers a
// connection that cannot take the exclusive lock a journal-mode switch needs with SQLITE_BUSY
// at once, without calling the busy handler: opening must wait for the lock like any write.
// Several rounds, because the race is lost only now and then.
ENTITY_CONCURRENT_TEST(MemoryMultiprocess, ConcurrentFirstOpensOfANewFileSucceed) {
  entity::test::temp_dir dir;
  for (int round = 0; round < 40; ++round) {
    const std::string path = dir.file("new-" + std::to_string(round) + ".db");
    run_children(path, 20);
    expect_every_key(path, 20);
    if (HasFailure()) break;
  }
}

}  // namespace
