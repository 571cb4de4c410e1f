// libpq's pipeline mode, as bookkeeping: what a connection sent, in order, and what becomes of
// each result PQgetResult hands back. No I/O, no threads, no clocks: a front sends (and records
// what it sent here), waits its own way (a blocking PQgetResult, or an asio wait on the
// socket) and feeds every return of PQgetResult to take() until awaiting() is false, so every
// rule of the reading is tested on results made without a server
// (tests/unit/postgres/pipeline_test.cpp).
//
// What PQgetResult returns in pipeline mode, in sending order: for each command its result(s)
// and then a null, PGRES_PIPELINE_ABORTED (and a null) for a command skipped after an earlier
// error up to the next sync point, and for each sync point one PGRES_PIPELINE_SYNC, with no
// null after it. A connection that fails has libpq report it as a result without a SQLSTATE
// and then return null for ever: a null where a sync point is due ends the reading.
#pragma once

#include <libpq-fe.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "entity/infrastructure.hpp"
#include "entity/value.hpp"
#include "postgres/statement_cache.hpp"

namespace entity::postgres_detail {

/// What one entry of a pipeline is, which says where its results go.
enum class pipeline_entry : std::uint8_t {
  statement,    ///< the caller's: rows and counts go to the caller's result, errors are its
  own_command,  ///< the engine's (BEGIN, SET LOCAL, COMMIT, ROLLBACK): results dropped, errors
                ///< the caller's (its work fails with them)
  setting,      ///< a session setting the caller's work does not need (the engine's
                ///< statement_timeout): a failure is no error of the caller's, only
                ///< settings_applied() tells
  prepare,      ///< the engine's PQsendPrepare of a cached statement: its error is the
                ///< caller's (the statement's own, a syntax error say), and settle() tells the
                ///< cache whether the server took it
  cleanup,      ///< a DEALLOCATE of a statement the cache gave up: results and errors dropped
  sync,         ///< a sync point (PQpipelineSync): it ends what the server runs as one unit
};

class pipeline {
 public:
  /// `pg` only serves the connection's error message (error_of); null when there is none.
  explicit pipeline(PGconn* pg) noexcept : pg_(pg) {}

  /// Records a command just sent: `sql` is what its errors name, and a statement keeps rows up
  /// to `max_rows` of the caller's result (in all). Consecutive commands of one SQL text
  /// share its copy. `name` is the prepared statement a prepare entry creates or a statement
  /// runs, empty for an unnamed one.
  void sent(pipeline_entry kind, std::string_view sql, std::size_t max_rows = 0,
            std::string_view name = {});
  /// Records a sync point just sent.
  void synced();

  /// Whether results are still due: a sync point recorded has not come back yet. Commands
  /// recorded after the last sync point are not awaited (the server has not been told to
  /// answer them).
  bool awaiting() const noexcept { return syncs_ > 0; }
  /// The entries not answered yet, sync points included.
  std::size_t size() const noexcept { return entries_.size() - next_; }
  bool empty() const noexcept { return size() == 0; }

  /// Takes one return of PQgetResult (a result, or null) and clears it. The first error of a
  /// statement or an own command goes to `out` (absorb), naming that entry's SQL. Results out
  /// of step with what was sent (a sync point where a command's results were due, a null
  /// where a sync point was) end the reading as lost() does: the reading never spins.
  void take(PGresult* r, outcome& out);
  /// The connection failed while results were due: nothing more is awaited, and the error,
  /// unless one came first, is the connection's, naming the SQL of the entry that was due.
  void lost(outcome& out);

  /// Whether a reading ended before its sync point (lost()): the connection's state is not
  /// known, so it must not be used again.
  bool failed() const noexcept { return failed_; }
  /// Whether every setting recorded was answered with success.
  bool settings_applied() const noexcept { return settings_applied_ == settings_; }

  /// Tells `cache` what the server answered of the prepared statements this pipeline carried
  /// since the last settle(): which prepares it took or refused (one skipped after an earlier
  /// error was refused too), and which statements it refused as stale (stale_statement).
  void settle(statement_cache& cache);
  /// Whether a statement run by name was refused as stale since the last settle(): it failed
  /// before it ran, so it wrote nothing.
  bool saw_stale() const noexcept { return !stale_.empty(); }

 private:
  struct entry {
    pipeline_entry kind;
    std::size_t max_rows;
    std::size_t text;  ///< in texts_; a sync point has its command before's (no_text if none)
    std::size_t name;  ///< in names_, or no_text
  };
  static constexpr std::size_t no_text = static_cast<std::size_t>(-1);

  std::string_view text_of(const entry& e) const noexcept {
    return e.text == no_text ? std::string_view() : std::string_view(texts_[e.text]);
  }
  void pop() noexcept;
  void clear() noexcept;

  PGconn* pg_;
  std::vector<entry> entries_;  ///< in sending order; entries_[next_] is the one due
  std::size_t next_ = 0;
  std::vector<std::string> texts_;
  std::vector<std::string> names_;
  std::size_t syncs_ = 0;  ///< sync points recorded and not come back
  std::size_t settings_ = 0;
  std::size_t settings_applied_ = 0;
  bool failed_ = false;
  // What settle() hands to the cache; kept past clear(), which ends a round trip.
  std::vector<std::pair<std::string, bool>> prepares_;  ///< name, taken
  std::vector<std::string> stale_;
};

/// Sends `text` (already translated) with `args` in pipeline mode and records it in `p` as
/// `kind`, its errors naming `sql`. False when libpq refused it; nothing is recorded then.
bool send_queued(PGconn* pg, pipeline& p, pipeline_entry kind, std::string_view sql,
                 const std::string& text, const params& args = {}, std::size_t max_rows = 0);
/// Sends `args` to run the prepared statement `name` in pipeline mode and records it in `p`
/// as `kind`, its errors naming `sql`. False when libpq refused it; nothing is recorded then.
bool send_queued_prepared(PGconn* pg, pipeline& p, pipeline_entry kind, std::string_view sql,
                          const std::string& name, const params& args = {},
                          std::size_t max_rows = 0);
/// The engine's own command `sql`, without parameters (errors name it).
inline bool send_queued(PGconn* pg, pipeline& p, pipeline_entry kind, const std::string& sql) {
  return send_queued(pg, p, kind, sql, sql);
}
/// Sends a sync point (PQpipelineSync) and records it in `p`. False when libpq refused it.
bool send_sync(PGconn* pg, pipeline& p);

}  // namespace entity::postgres_detail
