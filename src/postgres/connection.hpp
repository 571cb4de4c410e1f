// The pieces of the PostgreSQL engine that touch libpq directly: one pooled connection, binding
// parameters, turning results into entity values and errors, and the blocking session that
// transaction bodies and leases use.
#pragma once

#include <libpq-fe.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "entity/error.hpp"
#include "entity/infrastructure.hpp"
#include "entity/value.hpp"
#include "postgres/pipeline.hpp"
#include "postgres/statement_cache.hpp"

namespace entity::postgres_detail {

struct translated_sql;

/// One connection of the pool. Used by one party at a time (an async request on the io thread,
/// a transaction on a worker, a lease on its caller's thread); the pool's mutex guards only
/// who holds it.
struct pg_conn {
  PGconn* pg = nullptr;
  PGcancel* cancel = nullptr;  ///< for cancel requests; PQcancel is safe from any thread
  /// The socket, watched by the io thread. It does not own the descriptor: libpq does.
  std::unique_ptr<boost::asio::posix::stream_descriptor> sock;
  int backend_pid = 0;
  bool broken = false;  ///< set when the connection failed; the pool closes it on give-back
  /// The session's statement_timeout in ms as this engine last set it; -1 when not known (a
  /// new connection). Read and written by the connection's one user at a time.
  long long statement_timeout_ms = -1;
  /// A duplicate of the socket's descriptor, ours alone: shutting it down (abandon()) ends a
  /// blocking libpq call on another thread, and the number cannot be reused while we hold it,
  /// whatever libpq does with its own.
  int own_fd = -1;
  /// Whether a blocking call (a transaction body's statement) is waiting for the server.
  std::atomic<bool> in_blocking_call{false};
  /// The statements this connection prepared on the server (see send_cached). A new
  /// connection's is empty, as the server's side is. Used by the connection's one user.
  statement_cache statements;

  explicit pg_conn(std::size_t statement_cache_size = 0, statement_counters* counters = nullptr)
      : statements(statement_cache_size, counters) {}
  pg_conn(const pg_conn&) = delete;
  pg_conn& operator=(const pg_conn&) = delete;
  ~pg_conn();

  /// True when the connection is usable: reads whatever the server sent meanwhile (a
  /// terminated backend's farewell) without blocking.
  bool alive();

  /// Shuts the socket down in both directions (from any thread): whatever waits on it, here
  /// or on the server, sees the connection end, and the connection's user finds it broken.
  void abandon() noexcept;
};

/// The statement_timeout (ms) to set on `c` before a statement whose deadline is `remaining`
/// away, or 0 when the session's own is close enough: at least `remaining` (the server never
/// stops a statement before its deadline) and not much more (it stops one soon after its
/// deadline when the cancel request is lost). A value set covers the next requests with
/// slightly less time left too, so a steady stream of requests with one timeout sets it once
/// per connection.
long long statement_timeout_to_set(const pg_conn& c, std::chrono::milliseconds remaining);

/// Asks the server to terminate backend `pid` (pg_terminate_backend) over a connection of its
/// own, opened for that with at most `connect_timeout`: for a backend that did not answer a
/// cancel request. Blocks. Returns an empty string when the server took the request, else
/// why not.
std::string terminate_backend(const std::string& conninfo, int pid,
                              std::chrono::milliseconds connect_timeout);

/// Opens a connection in non-blocking mode with its socket registered on `io`, with a
/// statement cache of `statement_cache_size` statements counted in `counters`. Blocks for the
/// connect. On failure returns null and sets `ec` (connection_error) and `diag`.
std::unique_ptr<pg_conn> open_connection(const std::string& conninfo,
                                         std::chrono::milliseconds connect_timeout,
                                         std::size_t statement_cache_size,
                                         statement_counters* counters, boost::asio::io_context& io,
                                         error_code& ec, diagnostics& diag);

/// Parameters in libpq's form: text for integers, doubles and text, binary bytea for blobs.
class bound_params {
 public:
  explicit bound_params(const params& args);
  int count() const noexcept { return static_cast<int>(values_.size()); }
  const Oid* types() const noexcept { return types_.data(); }
  const char* const* values() const noexcept { return values_.data(); }
  const int* lengths() const noexcept { return lengths_.data(); }
  const int* formats() const noexcept { return formats_.data(); }

 private:
  std::vector<std::string> text_;
  std::vector<Oid> types_;
  std::vector<const char*> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

/// Sends one statement with `PQsendQueryParams` (`sql` already translated). False on failure.
bool send_statement(PGconn* pg, const std::string& sql, const params& args);
/// Sends `args` to run the prepared statement `name` (`PQsendQueryPrepared`). False on failure.
bool send_prepared(PGconn* pg, const std::string& name, const params& args);

/// Whether `c` keeps the statement `translated` prepared: its cache is on and the statement is
/// one worth preparing and safe to run again by name (translated_sql::preparable) that takes
/// parameters. A statement without any is most often written once with its values inline, and
/// would only push the statements used again out of the cache.
bool cacheable(const pg_conn& c, const translated_sql& translated);

/// The key a statement is cached under: its translated text, and the types its parameters are
/// bound with, which a prepared statement fixes (a blob binds bytea; every other value lets
/// the server infer the type, as for an unnamed statement). SQL never holds a NUL byte (it is
/// refused before anything is sent), so the NUL between the two cannot be part of the text.
std::string statement_key(const std::string& text, const params& args);

/// Whether every parameter set of `batch` has the same statement_key as the first (given the
/// same text): whether one prepared statement may run them all.
bool same_parameter_types(const std::vector<params>& batch);

/// Looks `text` (`sql` translated) up in `c`'s statement cache and sets `name` to its prepared
/// statement; on a miss, first sends its PQsendPrepare in pipeline mode and records it in `p`
/// (`p.settle()` then tells the cache whether the server took it). False when libpq refused
/// to send.
bool send_prepare_if_new(pg_conn& c, pipeline& p, std::string_view sql, const std::string& text,
                         const params& args, std::string& name);

/// Sends `text` (`sql` translated) with `args` in pipeline mode and records it in `p` as `kind`
/// (see send_queued). With `cached`, through `c`'s statement cache: a miss sends the
/// statement's prepare first, in the same round trip (send_prepare_if_new), and it runs by
/// name. False when libpq refused to send.
bool send_cached(pg_conn& c, pipeline& p, pipeline_entry kind, std::string_view sql,
                 const std::string& text, const params& args, std::size_t max_rows, bool cached);

/// Sends a DEALLOCATE for each statement `c`'s cache gave up, each followed by a sync point (a
/// name the server no longer knows fails alone, and is no one's error), and empties the list.
/// REQUIRES: `c` is in pipeline mode and outside a transaction block, where a failing
/// DEALLOCATE cannot abort anyone's transaction. False when libpq refused to send.
bool send_closing(pg_conn& c, pipeline& p);

/// Whether `r` is the server refusing to run a prepared statement it cannot use as prepared:
/// SQLSTATE 0A000 "cached plan must not change result type" (a table the statement reads was
/// altered) or 26000 (the server does not know the name: DEALLOCATE ALL, DISCARD ALL). Both are
/// raised before the statement runs, so nothing of it was done: outside a transaction block
/// the statement is prepared afresh and runs once more; inside one the transaction is aborted,
/// and the error is the caller's.
bool stale_statement(const PGresult* r);

/// Folds one PGresult into `out`: rows (at most `max_rows` in all), rows_affected, or the first
/// error into `ec`/`diag`. Pipeline markers are ignored.
void absorb(PGresult* r, PGconn* pg, std::string_view sql, std::size_t max_rows, result& out,
            error_code& ec, diagnostics& diag);

/// The error of a failed result (or of the connection when `r` is null).
void error_of(PGresult* r, PGconn* pg, std::string_view sql, error_code& ec, diagnostics& diag);

/// When the connection broke, turns `ec` into errc::connection_error with a message that says
/// so, and marks `c` broken. Returns whether it broke.
bool note_broken(pg_conn& c, error_code& ec, diagnostics& diag);

/// A connection used with blocking libpq calls on the caller's thread: a transaction body's or
/// a lease's. With `pipeline_inserts`, an INSERT without RETURNING is queued in pipeline mode
/// and sent `chunk` at a time; queued statements are flushed before any other statement and
/// by flush().
class blocking_session final : public session {
 public:
  blocking_session(pg_conn* c, bool pipeline_inserts, std::size_t chunk,
                   std::function<void()> on_pipeline_batch);
  ~blocking_session() override;

  result query(std::string_view sql, const params& args, std::size_t max_rows) override;
  /// Sends the queued statements and reads their results; throws the first error.
  void flush();
  /// Runs a statement of our own (BEGIN, COMMIT, ...), outside any pipeline.
  void command(const char* sql, error_code& ec, diagnostics& diag);
  /// query() refuses to start a statement once `c` is requested (throws errc::cancelled).
  /// REQUIRES: `c` outlives the session.
  void set_cancellation(const cancellation* c) noexcept { cancel_ = c; }

  pg_conn* conn() const noexcept { return c_; }

 private:
  /// Runs a statement in pipeline mode, in one round trip: with `cached`, its prepare on a
  /// miss; with `idle` (outside a transaction block), the DEALLOCATEs due. Returns whether the
  /// server refused the statement as stale.
  bool run_pipelined(std::string_view sql, const std::string& text, const params& args,
                     std::size_t max_rows, bool cached, bool idle, result& res, error_code& ec,
                     diagnostics& diag);

  pg_conn* c_;
  bool pipeline_inserts_;
  std::size_t chunk_;
  std::function<void()> on_pipeline_batch_;
  pipeline queued_;  ///< the INSERTs sent and not flushed yet
  const cancellation* cancel_ = nullptr;
};

/// Refuses, as SQLite does, what the server would otherwise reject with a less helpful message
/// (or run differently): several statements where one is expected, and a parameter count
/// that is not the statement's. Refuses too what libpq would silently cut short (see
/// refuse_nul): SQL or a text parameter holding a NUL byte. Sets `ec` (invalid_argument) and
/// `diag` and returns true then.
bool refuse_statement(std::size_t parameters, bool several_statements, const params& args,
                      std::string_view sql, error_code& ec, diagnostics& diag);

/// PostgreSQL text cannot hold a NUL byte, and libpq sends SQL and text parameters as C
/// strings: "victim\0evil" would reach the server as "victim", and a write meant for one key
/// would land on another. Refuses SQL or a text parameter with a NUL byte (blobs travel as
/// bytea, with their length, and may hold any byte): sets `ec` (invalid_argument) and `diag`
/// and returns true then.
bool refuse_nul(std::string_view sql, const params& args, error_code& ec, diagnostics& diag);

/// Whether `ec` is the failure of a `CREATE ... IF NOT EXISTS` that lost a race with another
/// session creating the same object: PostgreSQL checks for the object, then creates it, and
/// the loser fails on the catalog's unique index (23505) or as a duplicate (42P07, 42710)
/// instead of doing nothing. Run again, the statement finds the object and does nothing.
bool lost_creation_race(std::string_view sql, const error_code& ec);

/// Whether a transaction body's statement may be pipelined: an INSERT, or a WITH whose main
/// statement is an INSERT, without RETURNING.
bool pipelinable(std::string_view sql);

}  // namespace entity::postgres_detail
