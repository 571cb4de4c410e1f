// Crash safety: a child stores keys and reports each one after its store returned; the test
// kills it with SIGKILL at random moments. Afterwards the database must pass integrity_check
// and hold every key the child reported, in the default mode and in the durable mode.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <entity/entity.hpp>
#include <random>
#include <set>
#include <string>

#include "concurrency.hpp"
#include "test_support.hpp"

namespace {

// Runs the child for `run_for`, kills it, and returns every key it reported.
std::vector<std::string> run_and_kill(const std::string& db, const char* mode, long first,
                                      std::chrono::milliseconds run_for) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    std::string first_s = std::to_string(first);
    ::execl(ENTITY_CRASH_CHILD, ENTITY_CRASH_CHILD, db.c_str(), mode, first_s.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  std::this_thread::sleep_for(run_for);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status)) << "the child ended by itself, status " << status;
  // Everything the child wrote before it died is in the pipe; a torn last line is not a report.
  std::string all;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) all.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  std::vector<std::string> keys;
  std::size_t start = 0;
  for (std::size_t nl; (nl = all.find('\n', start)) != std::string::npos; start = nl + 1)
    keys.push_back(all.substr(start, nl - start));
  return keys;
}

void crash_rounds(const char* mode) {
  entity::test::temp_dir dir;
  std::string db = dir.file("crash.db");
  std::mt19937 rng(20261127);
  std::uniform_int_distribution<int> ms(30, 250);
  std::set<std::string> reported;
  for (int round = 0; round < 20; ++round) {
    auto keys = run_and_kill(db, mode, round * 1'000'000L, std::chrono::milliseconds(ms(rng)));
    reported.insert(keys.begin(), keys.end());

    auto infra = std::make_shared<entity::sqlite_infrastructure>(entity::sqlite_params{.path = db});
    infra->startup();
    entity::database database(infra);
    auto check = database.fetch_one("PRAGMA integrity_check");
    ASSERT_TRUE(check);
    ASSERT_EQ(check->get<std::string>(0), "ok") << "round " << round;
    entity::memory mem(database);
    std::vector<std::string> wanted(reported.begin(), reported.end());
    auto found = mem.batch_load(wanted);
    for (const auto& k : wanted)
      ASSERT_TRUE(found.count(k)) << "round " << round << ": key " << k
                                  << " was reported stored but is missing";
    infra->shutdown();
  }
  EXPECT_GT(reported.size(), 100u) << "the child hardly stored anything: the test proves little";
}

}  // namespace

ENTITY_CONCURRENT_TEST(CrashSafety, KilledWriterLosesNothingAcknowledged) {
  crash_rounds("normal");
}

ENTITY_CONCURRENT_TEST(CrashSafety, KilledWriterLosesNothingAcknowledgedDurable) {
  crash_rounds("durable");
}
