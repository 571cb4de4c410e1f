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

namespace entity::postgres_detail {

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

  pg_conn() = default;
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

/// Opens a connection in non-blocking mode with its socket registered on `io`. Blocks for the
/// connect. On failure returns null and sets `ec` (connection_error) and `diag`.
std::unique_ptr<pg_conn> open_connection(const std::string& conninfo,
                                         std::chrono::milliseconds connect_timeout,
                                         boost::asio::io_context& io, error_code& ec,
                                         diagnostics& diag);

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
