// Whether the files SQLite keeps beside a database in WAL mode (PATH-wal, PATH-shm) are still
// the ones the engine opened. Deleting or replacing them under a live process is something
// SQLite cannot survive: the process goes on writing into the unlinked log, other processes
// start a new one, and what the first acknowledges is lost when it ends. The engine checks
// after each commit, before it acknowledges, and fails loudly instead.
//
// Each file is held by an O_PATH descriptor of its own, and checked with fstat(2): a file
// deleted, or replaced by another renamed over it, has no name left (st_nlink is 0). That is
// cheaper after every commit than looking the path up again. An O_PATH descriptor does not
// touch the POSIX locks SQLite holds on these files: closing it releases none of them (closing
// an ordinary descriptor of the file would release them all). A file given a second name
// before its first was taken away still has a name, and is not seen as replaced.
//
// Plain code over open(2) and fstat(2): no threads, no SQLite.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace entity::sqlite_detail {

class log_watch {
 public:
  log_watch() = default;
  log_watch(const log_watch&) = delete;
  log_watch& operator=(const log_watch&) = delete;
  ~log_watch() {
    for (const watched& f : files_) ::close(f.fd);
  }

  /// Remembers the file at `path` as it is now; false (nothing remembered) when there is none.
  bool watch(std::string path) {
    const int fd = ::open(path.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) return false;
    files_.push_back({std::move(path), fd});
    return true;
  }
  bool active() const noexcept { return !files_.empty(); }

  /// The path of the first watched file that is gone or is another file now; "" when all
  /// are as they were.
  std::string changed() const {
    for (const watched& f : files_) {
      struct stat st {};
      if (::fstat(f.fd, &st) != 0 || st.st_nlink == 0) return f.path;
    }
    return {};
  }

 private:
  struct watched {
    std::string path;
    int fd;
  };
  std::vector<watched> files_;
};

}  // namespace entity::sqlite_detail
