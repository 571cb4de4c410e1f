// log_watch on plain files: what it sees as a lost log, and the locks it must leave alone.
#include "sqlite/log_watch.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "test_support.hpp"

namespace fs = std::filesystem;
using entity::sqlite_detail::log_watch;

namespace {

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

}  // namespace

TEST(LogWatch, SeesAFileDeletedOrReplacedButNotOneWrittenTo) {
  entity::test::temp_dir dir;
  const std::string wal = dir.file("db-wal"), shm = dir.file("db-shm");
  write_file(wal, "log");
  write_file(shm, "index");
  log_watch w;
  EXPECT_FALSE(w.watch(dir.file("db-journal")));  // no such file: nothing watched
  EXPECT_FALSE(w.active());
  ASSERT_TRUE(w.watch(wal));
  ASSERT_TRUE(w.watch(shm));
  EXPECT_TRUE(w.active());
  EXPECT_EQ(w.changed(), "");

  write_file(wal, "more log");  // the same file, written to
  EXPECT_EQ(w.changed(), "");

  write_file(dir.file("other"), "a stranger");
  fs::rename(dir.file("other"), shm);  // another file under the name
  EXPECT_EQ(w.changed(), shm);

  fs::remove(wal);
  EXPECT_EQ(w.changed(), wal);   // the first changed file is named
  write_file(wal, "a new log");  // a new file of the same name is not the one watched
  EXPECT_EQ(w.changed(), wal);
}

// SQLite holds POSIX locks on the -shm and -wal files; closing any ordinary descriptor of a
// file drops every such lock the process holds on it. The watch's descriptors must not.
TEST(LogWatch, ForgettingItsFilesLeavesTheProcessLocksInPlace) {
  entity::test::temp_dir dir;
  const std::string shm = dir.file("db-shm");
  write_file(shm, "index");
  const int fd = ::open(shm.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = 0;
  lock.l_len = 1;
  ASSERT_EQ(::fcntl(fd, F_SETLK, &lock), 0);
  {
    log_watch w;
    ASSERT_TRUE(w.watch(shm));
    EXPECT_EQ(w.changed(), "");
  }  // its descriptors closed here

  // Another process asks who holds the byte: still this one.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const int cfd = ::open(shm.c_str(), O_RDWR);
    struct flock probe {};
    probe.l_type = F_WRLCK;
    probe.l_whence = SEEK_SET;
    probe.l_start = 0;
    probe.l_len = 1;
    const bool held = cfd >= 0 && ::fcntl(cfd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK;
    ::_exit(held ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the lock was released when the watch let go";
  ::close(fd);
}
