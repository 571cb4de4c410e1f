// One SQLite connection: RAII over sqlite3*, a bounded prepared-statement cache, statements
// run against a deadline that interrupts them inside SQLite.
// Not thread-safe (opened with SQLITE_OPEN_NOMUTEX): one thread at a time.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "entity/infrastructure.hpp"
#include "entity/sqlite.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace entity::sqlite_detail {

using clock = std::chrono::steady_clock;

/// A prepared statement, finalized when it goes.
struct finalize_statement {
  void operator()(sqlite3_stmt* stmt) const noexcept;
};
using statement = std::unique_ptr<sqlite3_stmt, finalize_statement>;

class connection final : public session {
 public:
  enum class role { writer, reader };

  /// Opens `target` (a path, or a memdb URI when `uri` is set) and applies `p`'s settings.
  static std::unique_ptr<connection> open(const std::string& target, bool uri, role r,
                                          const sqlite_params& p, error_code& ec,
                                          diagnostics& diag);
  ~connection() override;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Runs one statement. When `readers_only` is set and the statement would write, nothing
  /// runs and `needs_writer` is set instead.
  error_code run(std::string_view sql, const params& args, std::size_t max_rows, result& out,
                 diagnostics& diag, bool readers_only = false, bool* needs_writer = nullptr);
  /// Runs every statement of `sql` in order (no parameters, rows discarded).
  error_code run_script(std::string_view sql, diagnostics& diag);
  /// Runs a fixed statement such as "PRAGMA journal_mode" through the cache.
  error_code exec(std::string_view sql, diagnostics& diag);

  /// The statements of transaction control a group commit runs around every request.
  enum class control { begin_immediate, savepoint, release, rollback_to, rollback, commit };
  /// Runs one of them ("SAVEPOINT entity_op" and so on): prepared once per connection and run
  /// without a cache lookup, parameters or rows. A lock another connection holds is waited for
  /// as by any statement (wait_for_lock).
  error_code run(control which, diagnostics& diag);

  /// Statements stop with query_timeout once `deadline` passes.
  void set_deadline(clock::time_point deadline) noexcept { deadline_ = deadline; }
  clock::time_point deadline() const noexcept { return deadline_; }
  /// Statements stop with errc::cancelled once `c` is requested (null: never); query() does
  /// not start one then. REQUIRES: `c` outlives its use; set it back to null before freeing it.
  void set_cancellation(const cancellation* c) noexcept { cancel_ = c; }
  bool cancel_requested() const noexcept { return cancel_ && cancel_->requested(); }
  /// A shorter leash than the deadline, for work run on a caller's thread: statements stop once
  /// `until` passes (over_budget() then says so), and a lock held by another connection fails
  /// at once with SQLITE_BUSY instead of being waited for. clear_budget() lifts both.
  void set_budget(clock::time_point until) noexcept;
  void clear_budget() noexcept;
  /// True when a statement was stopped by the budget rather than by the deadline since
  /// set_budget (read it before clear_budget).
  bool over_budget() const noexcept { return over_budget_; }
  /// For a leased connection: each query() gets now + timeout as its deadline.
  void set_per_query_timeout(std::optional<std::chrono::milliseconds> t) noexcept {
    per_query_timeout_ = t;
  }
  /// Frames in the write-ahead log after this connection's last commit (0 outside WAL mode).
  /// SQLite's own automatic checkpoint is off for the writer: the engine decides where the
  /// checkpoint runs.
  int wal_frames() const noexcept { return wal_frames_; }
  /// A PASSIVE checkpoint: copies what it can of the log into the database without waiting
  /// for readers.
  void checkpoint() noexcept;
  /// True when no transaction is open.
  bool autocommit() const noexcept;
  role kind() const noexcept { return role_; }

  // session
  result query(std::string_view sql, const params& args, std::size_t max_rows) override;

 private:
  struct cached {
    statement stmt;
    std::uint64_t last_used = 0;
    columns names;       // shared by every row this statement returns
    int reprepares = 0;  // SQLite re-prepares after a schema change; the names may change
  };
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };

  connection(sqlite3* db, role r, std::size_t cache_size, std::chrono::milliseconds busy_timeout);
  /// The one place that decides whether to wait for a lock another connection holds, and
  /// waits: it is SQLite's busy handler, and it is called again for a statement that SQLite
  /// failed with SQLITE_BUSY without consulting its handler (switching a file to WAL, a log
  /// being recovered). `attempt` counts the waits for this lock from 0. Returns true to try
  /// again. It never waits under a budget (a caller's thread) or once the caller cancelled;
  /// otherwise it waits until the deadline, and a reader (or the writer outside a request, with
  /// no deadline) at most busy_timeout from the first attempt.
  bool wait_for_lock(int attempt) noexcept;
  static int on_busy(void* self, int attempt) noexcept;
  /// Steps `stmt` until it yields no more rows, handing each row to `row`; a statement that
  /// SQLite failed with SQLITE_BUSY before it did anything (no rows, autocommit) is stepped
  /// again as wait_for_lock allows. Returns the last result code.
  template <class OnRow>
  int step_all(sqlite3_stmt* stmt, OnRow&& row);
  cached* prepare(std::string_view sql, error_code& ec, diagnostics& diag);
  error_code fail(int rc, std::string_view sql, diagnostics& diag);
  static int on_progress(void* self) noexcept;
  static int on_wal_commit(void* self, sqlite3* db, const char* name, int frames) noexcept;

  sqlite3* db_;
  role role_;
  std::size_t cache_size_;
  std::uint64_t use_clock_ = 0;
  std::unordered_map<std::string, cached, string_hash, std::equal_to<>> cache_;
  std::array<statement, 6> controls_;  // by control, prepared on first use
  clock::time_point deadline_ = clock::time_point::max();
  const cancellation* cancel_ = nullptr;
  clock::time_point budget_ = clock::time_point::max();
  bool over_budget_ = false;
  bool waits_for_locks_ = true;          // false under a budget
  bool busy_consulted_ = false;          // SQLite called the busy handler since the last step
  bool lock_wait_hit_deadline_ = false;  // the last wait for a lock ended at the deadline
  clock::time_point lock_wait_began_{};
  int wal_frames_ = 0;
  std::chrono::milliseconds busy_timeout_;
  std::optional<std::chrono::milliseconds> per_query_timeout_;
};

/// Binds `v` to parameter `index` (1-based) of `stmt`; returns SQLite's result code.
int bind_value(sqlite3_stmt* stmt, int index, const value& v) noexcept;
/// Reads column `i` of the current row of `stmt`.
value column_value(sqlite3_stmt* stmt, int i);

}  // namespace entity::sqlite_detail
