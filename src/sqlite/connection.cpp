#include "sqlite/connection.hpp"

#include <sqlite3.h>

#include <cerrno>
#include <iterator>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>

#include "common/engine_core.hpp"
#include "sqlite/classify.hpp"

namespace entity::sqlite_detail {
namespace {

const char* journal_name(journal_mode m) {
  switch (m) {
    case journal_mode::wal:
      return "WAL";
    case journal_mode::delete_:
      return "DELETE";
    case journal_mode::truncate:
      return "TRUNCATE";
    case journal_mode::persist:
      return "PERSIST";
    case journal_mode::memory:
      return "MEMORY";
    case journal_mode::off:
      return "OFF";
  }
  return "WAL";
}
const char* synchronous_name(synchronous_mode m) {
  switch (m) {
    case synchronous_mode::off:
      return "OFF";
    case synchronous_mode::normal:
      return "NORMAL";
    case synchronous_mode::full:
      return "FULL";
    case synchronous_mode::extra:
      return "EXTRA";
  }
  return "NORMAL";
}
const char* temp_store_name(temp_store_mode m) {
  switch (m) {
    case temp_store_mode::default_:
      return "DEFAULT";
    case temp_store_mode::file:
      return "FILE";
    case temp_store_mode::memory:
      return "MEMORY";
  }
  return "MEMORY";
}

}  // namespace

int bind_value(sqlite3_stmt* stmt, int index, const value& v) noexcept {
  struct visitor {
    sqlite3_stmt* s;
    int i;
    int operator()(null_t) const { return sqlite3_bind_null(s, i); }
    int operator()(std::int64_t x) const { return sqlite3_bind_int64(s, i, x); }
    int operator()(double x) const { return sqlite3_bind_double(s, i, x); }
    int operator()(const std::string& x) const {
      return sqlite3_bind_text64(s, i, x.data(), x.size(), SQLITE_STATIC, SQLITE_UTF8);
    }
    int operator()(const blob& x) const {
      return sqlite3_bind_blob64(s, i,
                                 x.bytes.empty() ? "" : static_cast<const void*>(x.bytes.data()),
                                 x.bytes.size(), SQLITE_STATIC);
    }
  };
  return std::visit(visitor{stmt, index}, v.raw());
}

value column_value(sqlite3_stmt* stmt, int i) {
  switch (sqlite3_column_type(stmt, i)) {
    case SQLITE_INTEGER:
      return value(static_cast<std::int64_t>(sqlite3_column_int64(stmt, i)));
    case SQLITE_FLOAT:
      return value(sqlite3_column_double(stmt, i));
    case SQLITE_TEXT: {
      auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, i));
      return value(std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt, i))));
    }
    case SQLITE_BLOB: {
      const void* p = sqlite3_column_blob(stmt, i);
      return value(blob(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt, i))));
    }
    default:
      return value();
  }
}

connection::connection(sqlite3* db, role r, std::size_t cache_size,
                       std::chrono::milliseconds busy_timeout)
    : db_(db),
      role_(r),
      cache_size_(cache_size == 0 ? 1 : cache_size),
      busy_timeout_(busy_timeout) {
  // Every 1000 virtual-machine steps SQLite asks whether to go on: that is where a statement
  // past its deadline, or cancelled by its caller, stops, wherever it is (sorting, a recursive
  // CTE, a long scan).
  sqlite3_progress_handler(db_, 1000, &connection::on_progress, this);
  // Waiting for another connection's lock is the engine's to decide (wait_for_lock), not a
  // fixed timeout's: a request's deadline and a caller's budget bound it too.
  sqlite3_busy_handler(db_, &connection::on_busy, this);
}

void finalize_statement::operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }

namespace {

// Leaves a cached statement ready for its next use however the use ends.
struct reset_after_use {
  sqlite3_stmt* stmt;
  ~reset_after_use() {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
  }
};

}  // namespace

connection::~connection() {
  cache_.clear();  // every statement finalized before the connection closes
  for (statement& c : controls_) c.reset();
  sqlite3_close_v2(db_);
}

int connection::on_progress(void* self) noexcept {
  auto* c = static_cast<connection*>(self);
  auto now = clock::now();
  if (now >= c->deadline_ || c->cancel_requested()) return 1;
  if (now < c->budget_) return 0;
  c->over_budget_ = true;
  return 1;
}

int connection::on_busy(void* self, int attempt) noexcept {
  auto* c = static_cast<connection*>(self);
  c->busy_consulted_ = true;
  return c->wait_for_lock(attempt) ? 1 : 0;
}

bool connection::wait_for_lock(int attempt) noexcept {
  using std::chrono::milliseconds;
  auto now = clock::now();
  if (attempt == 0) {
    lock_wait_began_ = now;
    lock_wait_hit_deadline_ = false;
  }
  if (!waits_for_locks_ || cancel_requested()) return false;
  const auto patience = detail::deadline_after(lock_wait_began_, busy_timeout_);
  const bool writer_request = role_ == role::writer && deadline_ != clock::time_point::max();
  const auto until = writer_request ? deadline_ : std::min(deadline_, patience);
  if (now >= until) {
    lock_wait_hit_deadline_ = until == deadline_;
    return false;
  }
  // Short waits first, as SQLite's own handler does: most locks are held for a moment.
  static constexpr milliseconds backoff[] = {milliseconds(1),  milliseconds(2),  milliseconds(5),
                                             milliseconds(10), milliseconds(15), milliseconds(20),
                                             milliseconds(25), milliseconds(25), milliseconds(50),
                                             milliseconds(50), milliseconds(100)};
  constexpr int last = static_cast<int>(std::size(backoff)) - 1;
  const clock::duration pause = backoff[std::min(attempt, last)];
  std::this_thread::sleep_for(std::min(pause, until - now));
  return true;
}

int connection::on_wal_commit(void* self, sqlite3*, const char*, int frames) noexcept {
  static_cast<connection*>(self)->wal_frames_ = frames;
  return SQLITE_OK;
}

void connection::checkpoint() noexcept {
  auto saved = deadline_;
  deadline_ = clock::time_point::max();
  sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  deadline_ = saved;
  wal_frames_ = 0;
}

void connection::set_budget(clock::time_point until) noexcept {
  budget_ = until;
  over_budget_ = false;
  waits_for_locks_ = false;
}

void connection::clear_budget() noexcept {
  budget_ = clock::time_point::max();
  over_budget_ = false;
  waits_for_locks_ = true;
}

namespace {

// What the operating system said of a failed file operation, as " (reason)": SQLite's own
// message for an I/O error ("disk I/O error") does not say whether the disk was full, the
// file too large or the permission missing. Empty when the last error was not the system's.
std::string system_reason(sqlite3* db) {
  int primary = sqlite3_extended_errcode(db) & 0xff;
  if (primary != SQLITE_IOERR && primary != SQLITE_CANTOPEN && primary != SQLITE_FULL) return {};
  // SQLite does not record it for every failure (a failed write of a statement's pages leaves
  // it 0); errno is cleared before each call that prepares or runs statements, so what it
  // holds now came from inside that call.
  int sys = sqlite3_system_errno(db);
  if (sys == 0) sys = errno;
  if (sys == 0) return {};
  return " (" + std::generic_category().message(sys) + ")";
}

}  // namespace

std::unique_ptr<connection> connection::open(const std::string& target, bool uri, role r,
                                             const sqlite_params& p, error_code& ec,
                                             diagnostics& diag) {
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (uri) flags |= SQLITE_OPEN_URI;
  // A path is a path. SQLite reads a name starting with "file:" as a URI, without
  // SQLITE_OPEN_URI, when it was built (SQLITE_USE_URI, as Debian's is) or configured to:
  // "file:x?mode=memory" would open a database in RAM, "file:/a/b.db" /a/b.db. In front of
  // such a relative path, "./" names the same file and is no URI.
  const std::string name = !uri && target.starts_with("file:") ? "./" + target : target;
  errno = 0;  // see system_reason
  int rc = sqlite3_open_v2(name.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    ec = make_sqlite_error(db ? sqlite3_extended_errcode(db) : rc);
    diag.message = "cannot open database '" + target +
                   "': " + (db ? sqlite3_errmsg(db) + system_reason(db) : sqlite3_errstr(rc));
    sqlite3_close_v2(db);
    return nullptr;
  }
  sqlite3_extended_result_codes(db, 1);
  std::unique_ptr<connection> c(new connection(db, r, p.statement_cache_size, p.busy_timeout));
  // The writer's commits report the log's size here instead of checkpointing by themselves:
  // a commit made on a caller's event loop must not copy megabytes and wait for the disk.
  if (r == role::writer) sqlite3_wal_hook(db, &connection::on_wal_commit, c.get());

  if (sqlite3_db_readonly(db, "main") == 1) {
    ec = make_sqlite_error(SQLITE_READONLY);
    diag.message = "database '" + target + "' is read-only: entity-db needs to write to it";
    return nullptr;
  }

  std::string setup;
  if (r == role::writer)
    setup += std::string("PRAGMA journal_mode=") + journal_name(p.journal) + ";";
  setup += std::string("PRAGMA synchronous=") + synchronous_name(p.synchronous) + ";";
  setup += std::string("PRAGMA temp_store=") + temp_store_name(p.temp_store) + ";";
  setup += "PRAGMA mmap_size=" + std::to_string(p.mmap_size) + ";";
  // A reader refuses to write: a write that reached it by mistake fails instead of bypassing
  // the writer's queue.
  if (r == role::reader) setup += "PRAGMA query_only=1;";
  // Reading the schema proves the file is a database (a non-database fails here, not later).
  setup += "SELECT count(*) FROM sqlite_schema;";
  // Switching a new file to WAL needs an exclusive lock, and SQLite reports SQLITE_BUSY at once
  // (without its busy handler) while another process opening the same file holds a shared
  // one: each setup statement waits for the lock up to busy_timeout (wait_for_lock).
  c->set_deadline(detail::deadline_after(clock::now(), p.busy_timeout));
  ec = c->run_script(setup, diag);
  c->set_deadline(clock::time_point::max());
  if (ec) {
    diag.message = "cannot open database '" + target + "': " + diag.message;
    return nullptr;
  }
  return c;
}

bool connection::autocommit() const noexcept { return sqlite3_get_autocommit(db_) != 0; }

error_code connection::fail(int rc, std::string_view sql, diagnostics& diag) {
  diag.sql = sql_excerpt(sql);
  if ((rc & 0xff) == SQLITE_INTERRUPT && cancel_requested()) {
    diag.message = "the caller cancelled the statement and it was interrupted";
    return make_error_code(errc::cancelled);
  }
  if ((rc & 0xff) == SQLITE_INTERRUPT && clock::now() >= deadline_) {
    diag.message = "the statement ran past its deadline and was interrupted";
    return make_error_code(errc::query_timeout);
  }
  if ((rc & 0xff) == SQLITE_INTERRUPT && over_budget_) {
    diag.message = "the statement ran past its budget on the caller's thread and was interrupted";
    return make_error_code(errc::over_budget);
  }
  diag.message = sqlite3_errmsg(db_) + system_reason(db_);
  if ((rc & 0xff) == SQLITE_BUSY && lock_wait_hit_deadline_)
    diag.message += ": another connection held the lock until the request's deadline";
  int ext = sqlite3_extended_errcode(db_);
  return make_sqlite_error(ext != SQLITE_OK ? ext : rc);
}

connection::cached* connection::prepare(std::string_view sql, error_code& ec, diagnostics& diag) {
  if (auto it = cache_.find(sql); it != cache_.end()) {
    it->second.last_used = ++use_clock_;
    return &it->second;
  }
  sqlite3_stmt* raw = nullptr;
  const char* tail = nullptr;
  errno = 0;  // see system_reason
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &raw, &tail);
  statement stmt(raw);
  if (rc != SQLITE_OK) {
    ec = fail(rc, sql, diag);
    return nullptr;
  }
  if (stmt == nullptr) {
    ec = make_error_code(errc::invalid_argument);
    diag.message = "the SQL holds no statement";
    diag.sql = sql_excerpt(sql);
    return nullptr;
  }
  if (tail && !is_blank(std::string_view(tail, sql.data() + sql.size() - tail))) {
    ec = make_error_code(errc::invalid_argument);
    diag.message = "the SQL holds several statements: use execute_script";
    diag.sql = sql_excerpt(sql);
    return nullptr;
  }
  if (cache_.size() >= cache_size_) {
    auto victim = cache_.begin();
    for (auto it = cache_.begin(); it != cache_.end(); ++it)
      if (it->second.last_used < victim->second.last_used) victim = it;
    cache_.erase(victim);
  }
  auto [it, inserted] =
      cache_.emplace(std::string(sql), cached{std::move(stmt), ++use_clock_, nullptr});
  return &it->second;
}

template <class OnRow>
int connection::step_all(sqlite3_stmt* stmt, OnRow&& on_row) {
  // A SQLITE_BUSY always passes through wait_for_lock(0), which resets lock_wait_hit_deadline_.
  bool any_row = false;
  for (int attempt = 0;; ++attempt) {
    busy_consulted_ = false;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      any_row = true;
      if (!on_row()) return rc;
    }
    // A statement that failed this way did nothing: outside a transaction it may run again.
    if ((rc & 0xff) != SQLITE_BUSY || busy_consulted_ || any_row || !autocommit() ||
        !wait_for_lock(attempt))
      return rc;
    sqlite3_reset(stmt);
  }
}

error_code connection::run(std::string_view sql, const params& args, std::size_t max_rows,
                           result& out, diagnostics& diag, bool readers_only, bool* needs_writer) {
  error_code ec;
  cached* c = prepare(sql, ec, diag);
  if (!c) return ec;
  sqlite3_stmt* stmt = c->stmt.get();
  reset_after_use in_use{stmt};
  bool readonly = sqlite3_stmt_readonly(stmt) != 0;
  if (readers_only && !readonly) {
    if (needs_writer) *needs_writer = true;
    return {};
  }
  int expected = sqlite3_bind_parameter_count(stmt);
  if (static_cast<std::size_t>(expected) != args.size()) {
    diag.message = "the statement has " + std::to_string(expected) + " parameter" +
                   (expected == 1 ? "" : "s") + " but " + std::to_string(args.size()) +
                   (args.size() == 1 ? " was" : " were") + " given";
    diag.sql = sql_excerpt(sql);
    return make_error_code(errc::invalid_argument);
  }
  for (int i = 0; i < expected; ++i) {
    if (int rc = bind_value(stmt, i + 1, args[static_cast<std::size_t>(i)]); rc != SQLITE_OK) {
      return fail(rc, sql, diag);
    }
  }
  // sqlite3_changes64() keeps the count of the last INSERT, UPDATE or DELETE, whatever ran
  // since; a statement that changed nothing (DDL, an UPDATE matching no row) must report 0.
  const std::int64_t changes_before = sqlite3_total_changes64(db_);
  errno = 0;  // see system_reason
  int rc = step_all(stmt, [&] {
    if (out.rows.size() < max_rows) {
      int n = sqlite3_column_count(stmt);
      int reprepares = sqlite3_stmt_status(stmt, SQLITE_STMTSTATUS_REPREPARE, 0);
      if (!c->names || c->names->size() != static_cast<std::size_t>(n) ||
          c->reprepares != reprepares) {
        c->reprepares = reprepares;
        auto names = std::make_shared<std::vector<std::string>>();
        names->reserve(static_cast<std::size_t>(n));
        for (int i = 0; i < n; ++i) {
          const char* name = sqlite3_column_name(stmt, i);
          names->emplace_back(name ? name : "");
        }
        c->names = std::move(names);
      }
      std::vector<value> values;
      values.reserve(static_cast<std::size_t>(n));
      for (int i = 0; i < n; ++i) values.push_back(column_value(stmt, i));
      out.rows.emplace_back(c->names, std::move(values));
    } else if (readonly) {
      return false;  // a read has nothing more to do; a write (RETURNING) must run to the end
    }
    return true;
  });
  // SQLite consults the progress handler once more after a statement has halted: a write that
  // committed by itself (autocommit) can still report SQLITE_INTERRUPT. Its changes were
  // counted, so it did finish, and it is reported as done rather than as cancelled or late.
  if ((rc & 0xff) == SQLITE_INTERRUPT && !readonly && autocommit() &&
      sqlite3_total_changes64(db_) != changes_before)
    rc = SQLITE_DONE;
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) ec = fail(rc, sql, diag);
  if (!ec && !readonly) {
    if (sqlite3_total_changes64(db_) != changes_before) out.rows_affected += sqlite3_changes64(db_);
    out.last_insert_id = sqlite3_last_insert_rowid(db_);
  }
  return ec;
}

error_code connection::run_script(std::string_view sql, diagnostics& diag) {
  const char* p = sql.data();
  const char* end = sql.data() + sql.size();
  while (p < end) {
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    errno = 0;  // see system_reason
    int rc = sqlite3_prepare_v2(db_, p, static_cast<int>(end - p), &raw, &tail);
    statement stmt(raw);
    if (rc != SQLITE_OK)
      return fail(rc, std::string_view(p, static_cast<std::size_t>(end - p)), diag);
    std::string_view text(p, static_cast<std::size_t>((tail ? tail : end) - p));
    p = tail ? tail : end;
    if (!stmt) continue;  // whitespace or a comment
    errno = 0;            // see system_reason
    // Only this statement waits for a lock, never the script again: its earlier statements
    // have committed.
    rc = step_all(stmt.get(), [] { return true; });
    if (rc != SQLITE_DONE) return fail(rc, text, diag);
  }
  return {};
}

error_code connection::exec(std::string_view sql, diagnostics& diag) {
  result ignored;
  return run(sql, {}, 0, ignored, diag);
}

error_code connection::run(control which, diagnostics& diag) {
  static constexpr std::string_view text[] = {"BEGIN IMMEDIATE",   "SAVEPOINT entity_op",
                                              "RELEASE entity_op", "ROLLBACK TO entity_op",
                                              "ROLLBACK",          "COMMIT"};
  static_assert(std::size(text) == std::tuple_size_v<decltype(controls_)>);
  const auto i = static_cast<std::size_t>(which);
  statement& stmt = controls_[i];
  if (!stmt) {
    sqlite3_stmt* raw = nullptr;
    errno = 0;  // see system_reason
    int rc = sqlite3_prepare_v3(db_, text[i].data(), static_cast<int>(text[i].size()),
                                SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    stmt.reset(raw);
    if (rc != SQLITE_OK) return fail(rc, text[i], diag);
  }
  reset_after_use in_use{stmt.get()};
  errno = 0;  // see system_reason
  int rc = step_all(stmt.get(), [] { return true; });
  return rc == SQLITE_DONE ? error_code{} : fail(rc, text[i], diag);
}

result connection::query(std::string_view sql, const params& args, std::size_t max_rows) {
  // A statement too short for the progress handler would run to its end: a transaction body
  // cancelled between statements stops at the next one.
  if (cancel_requested())
    throw error(errc::cancelled,
                {"the caller cancelled the transaction before this statement", sql_excerpt(sql)});
  if (per_query_timeout_) deadline_ = detail::deadline_after(clock::now(), *per_query_timeout_);
  result out;
  diagnostics diag;
  error_code ec = run(sql, args, max_rows, out, diag);
  throw_if(ec, diag);
  return out;
}

}  // namespace entity::sqlite_detail
