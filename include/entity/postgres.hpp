// entity-db layer 1: the PostgreSQL engine.
//
// libpq in non-blocking mode, driven by asio on each connection's socket from one internal
// io_context thread: a query costs no thread while it waits for the server. A pool of
// connections serves every request; execute_many (and the INSERTs of a transaction body) travel
// in libpq pipeline mode, many statements per round trip. Every request has a deadline: past it
// a cancel request stops the statement on the server and the request fails with
// errc::query_timeout, while the connection stays usable. A connection the server dropped is
// replaced: the request that found it broken fails with errc::connection_error, the next ones
// run on a fresh connection.
//
// SQL binds parameters with `?` (as on SQLite) or `$1, $2, ...`; `?` outside literals, quoted
// identifiers, comments and dollar-quoted bodies becomes `$n`. As on SQLite, a statement given
// the wrong number of parameters, or SQL holding several statements where one is expected,
// fails with errc::invalid_argument before anything is sent. execute_script sends its
// statements one at a time: a failing one stops the script, names itself in the diagnostics,
// and leaves the statements before it done (sent as one string, PostgreSQL would have run them
// all in one implicit transaction). Result columns map by type:
// int2/int4/int8/oid -> integer, float4/float8/numeric -> double, bytea -> blob,
// bool -> 0 or 1, NULL -> null, every other type -> its text form. result::last_insert_id is
// always 0 (use INSERT ... RETURNING).
//
// Each connection keeps the statements it runs prepared (postgres_params::statement_cache_size):
// a statement the server refuses as prepared (a table it reads was altered so that its result
// type changed, 0A000; the connection lost it to DEALLOCATE ALL or DISCARD ALL, 26000) failed
// before it ran, and outside a transaction block it is prepared again and run once more,
// unseen by the caller. Inside a transaction body the error has aborted the transaction: the
// body fails with it (no statement of it is run again behind its back), and the statement is
// prepared again by its next use.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "entity/infrastructure.hpp"

namespace entity {

/// Configuration of a postgres_infrastructure. Every field has a documented default.
struct postgres_params {
  /// Where the server is: a URL ("postgresql://user@host:port/db?...") or a libpq conninfo
  /// string ("host=... dbname=..."). Default empty: libpq's own defaults (PGHOST, PGUSER, ...).
  std::string url;
  /// Connections the pool may open. Default 5.
  std::size_t pool_size = 5;
  /// Connections opened by startup(). Default 2 (at most pool_size).
  std::size_t min_connections = 2;
  /// Deadline of every request unless the request gives its own; time queued counts. Default 30 s.
  std::chrono::milliseconds query_timeout = std::chrono::seconds(30);
  /// How long a request or acquire() waits for a free connection before failing with
  /// errc::pool_exhausted. Default 5 s.
  std::chrono::milliseconds acquire_timeout = std::chrono::seconds(5);
  /// How long opening one connection may take (libpq's connect_timeout, whole seconds, at least
  /// 2). Default 10 s.
  std::chrono::milliseconds connect_timeout = std::chrono::seconds(10);
  /// Statements a pipelined batch sends per round trip. Default 1000.
  std::size_t pipeline_chunk = 1000;
  /// Prepared statements each connection keeps, least recently used given up first. A
  /// statement with parameters that reads or changes data (SELECT, INSERT, UPDATE, DELETE,
  /// MERGE, VALUES, TABLE) is prepared on its connection the first time it runs there, in the
  /// same round trip, and then runs by name: the server neither parses nor plans it again.
  /// Other statements always go unnamed: those without parameters, DDL, BEGIN, SET, scripts,
  /// and WITH (prepared, it would lock its tables in another order than a fresh one, and could
  /// deadlock with DDL that a fresh one only waits for).
  /// 0 turns the cache off: every statement goes unnamed, as through a proxy that pools
  /// connections per transaction (pgbouncer's pool_mode=transaction), which does not keep a
  /// session's prepared statements; set 0 there. Default 100.
  std::size_t statement_cache_size = 100;
};

/// The PostgreSQL engine. Construct, startup(), use through entity::database, shutdown() (or let
/// the destructor do it).
///
/// Threads: one io thread runs every single statement, script and execute_many, interleaving
/// them on the pool's connections; transaction bodies (synchronous user code) run on a worker
/// thread of their own with a leased connection in blocking mode, inside BEGIN ... COMMIT, their
/// deadline enforced by the server's statement_timeout. Inside a transaction body an INSERT
/// without RETURNING is pipelined: it returns at once with rows_affected 0, and its error, if
/// any, surfaces from the body's next other statement or from the COMMIT; either way the whole
/// transaction rolls back. run() waits on the calling thread for the same work submit() does; it
/// must not be called from a completion handler running on the engine's io thread.
class postgres_infrastructure final : public infrastructure {
 public:
  explicit postgres_infrastructure(postgres_params settings = {});
  ~postgres_infrastructure() override;
  postgres_infrastructure(const postgres_infrastructure&) = delete;
  postgres_infrastructure& operator=(const postgres_infrastructure&) = delete;

  void startup() override;
  void shutdown() override;
  bool running() const noexcept override;
  void submit(request req, completion done) override;
  outcome run(request req) override;
  /// A connection in blocking mode for the calling thread; its statements have no deadline.
  connection_lease acquire(std::optional<std::chrono::milliseconds> acquire_timeout, error_code& ec,
                           diagnostics& diag) override;
  infrastructure_stats stats() const override;
  std::string_view backend_name() const noexcept override { return "postgres"; }
  sql_dialect dialect() const noexcept override { return sql_dialect::postgresql; }

  const postgres_params& params() const noexcept;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace entity
