// Whether the files SQLite keeps beside a database in WAL mode (PATH-wal, PATH-shm) are still
// the ones the engine opened. Deleting or replacing them under a live process is something
// SQLite cannot survive: the process goes on writing into the unlinked log, other processes
// start a new one, and what the first acknowledges is lost when it ends. The engine checks
// after each commit, before it acknowledges, and fails loudly instead.
//
// Plain code over stat(2): no threads, no SQLite.
#pragma once

#include <sys/stat.h>

#include <string>
#include <vector>

namespace entity::sqlite_detail {

class log_watch {
 public:
  /// Remembers the file at `path` as it is now; false (nothing remembered) when there is none.
  bool watch(std::string path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return false;
    files_.push_back({std::move(path), st.st_dev, st.st_ino});
    return true;
  }
  bool active() const noexcept { return !files_.empty(); }

  /// The path of the first watched file that is gone or is another file now; "" when all
  /// are as they were.
  std::string changed() const {
    for (const watched& f : files_) {
      struct stat st {};
      if (::stat(f.path.c_str(), &st) != 0 || st.st_dev != f.dev || st.st_ino != f.ino)
        return f.path;
    }
    return {};
  }

 private:
  struct watched {
    std::string path;
    dev_t dev;
    ino_t ino;
  };
  std::vector<watched> files_;
};

}  // namespace entity::sqlite_detail
