// entity-db layer 2: the SQL resource (the seed's AsyncDatabaseResource).
//
// Every operation exists in three forms with one implementation beneath:
//   async_execute(sql, params, token)  any asio completion token: use_awaitable, deferred,
//                                      use_future, as_tuple(...), a plain callback;
//   execute(sql, params)               for code without an event loop; throws entity::error;
//   execute(sql, params, ec, diag)     the same without exceptions: sets (ec, diag) on failure
//                                      and returns an empty value.
// The async handler runs on its associated executor (a plain callback's runs on the thread that
// finished the work). An overload taking `diagnostics&` before the token fills it on failure;
// the caller keeps it alive until the handler runs.
//
// Per-operation cancellation: a handler with a cancellation slot (asio::bind_cancellation_slot,
// a coroutine's own, awaitable operators) cancels its operation on any cancellation type. A
// request not yet started then completes with errc::cancelled without running; a running one
// is stopped as its deadline would stop it (interrupted in SQLite, cancelled on the PostgreSQL
// server) and completes with errc::cancelled, leaving what a failure leaves (nothing, but for
// the statements a script had already run); one that finished first completes as usual.
// memory and vector_store pass their handler's slot on to the statements they run.
//
// Errors, on every form and every call (the ones a call adds are named at the call):
//   errc::not_started, errc::shut_down   the engine is not running (before startup(), after
//                                        or during shutdown());
//   errc::query_timeout                  the call's deadline (query_timeout, with_timeout)
//                                        passed: the statement was interrupted, its
//                                        transaction rolled back;
//   errc::pool_exhausted                 no connection became free within acquire_timeout;
//   errc::cancelled                      async only: the caller cancelled (see above);
//   errc::invalid_argument               wrong parameter count, an empty body or script;
//   the backend's own codes              sqlite_category / postgres_category, comparable
//                                        with entity::condition (busy, constraint, syntax,
//                                        timeout, io); errc::connection_error (PostgreSQL).
// The diagnostics carry the backend's message and the start of the SQL.
//
// Thread safety: a database is a cheap handle (a shared_ptr to the engine and a timeout).
// Any thread may call any member of any copy at any time, async and sync alike; a sync call
// blocks only its own thread. The engine orders writes (one writer) and runs reads on its
// pool. A transaction body runs on the writer's thread and must not block: it writes through
// its session; a write through the database from inside a body (SQLite) fails at once with
// errc::invalid_argument instead of waiting for the transaction it is part of, while reads
// through the database go to a reader and see the last commit.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "entity/error.hpp"
#include "entity/infrastructure.hpp"
#include "entity/value.hpp"

namespace entity {

/// A handle on an infrastructure (cheap to copy; every copy shares the engine).
class database {
 public:
  using rows = std::vector<row>;
  template <class T>
  using handler = boost::asio::any_completion_handler<void(error_code, T)>;
  using void_handler = boost::asio::any_completion_handler<void(error_code)>;

  /// REQUIRES: `infra` is not null. The engine need not be started yet.
  explicit database(std::shared_ptr<infrastructure> infra);

  /// A handle whose operations use `timeout` instead of the engine's query_timeout.
  database with_timeout(std::chrono::milliseconds timeout) const;

  infrastructure& infra() const noexcept { return *infra_; }
  const std::shared_ptr<infrastructure>& infra_ptr() const noexcept { return infra_; }
  std::string_view backend_name() const noexcept { return infra_->backend_name(); }
  /// The engine's SQL dialect (infrastructure::dialect): for SQL the backends spell differently.
  sql_dialect dialect() const noexcept { return infra_->dialect(); }

  // ---- sync -----------------------------------------------------------------------------

  /// Runs one statement. Read-only statements go to a reader, the rest to the writer queue.
  result execute(std::string sql, params args = {}) const;
  result execute(std::string sql, params args, error_code& ec, diagnostics& diag) const;
  /// The first row, or nullopt when the statement returned none.
  std::optional<row> fetch_one(std::string sql, params args = {}) const;
  std::optional<row> fetch_one(std::string sql, params args, error_code& ec,
                               diagnostics& diag) const;
  rows fetch_all(std::string sql, params args = {}) const;
  rows fetch_all(std::string sql, params args, error_code& ec, diagnostics& diag) const;
  /// Runs several ';'-separated statements in order on the writer. No parameters. A script
  /// that opens a transaction must close it: one left open is rolled back and reported
  /// (errc::transaction_open). The statements before a failing one stay done.
  void execute_script(std::string sql) const;
  void execute_script(std::string sql, error_code& ec, diagnostics& diag) const;
  /// Runs `sql` once per parameter set, all in one transaction: all or nothing.
  /// The result's rows_affected is the total.
  result execute_many(std::string sql, std::vector<params> batch) const;
  result execute_many(std::string sql, std::vector<params> batch, error_code& ec,
                      diagnostics& diag) const;
  /// Runs `body` on the writer connection inside one transaction; committed when it returns,
  /// rolled back when it throws (the exception is rethrown). The body may share its
  /// transaction with other queued writes; when one of those makes SQLite roll back the whole
  /// transaction (a statement interrupted at its deadline, disk full), the body runs again, so
  /// its effects outside the database should bear repeating. Its database effects commit once.
  /// The error_code& form reports a body's entity::error with its own code and any other
  /// exception as errc::aborted; on PostgreSQL, a body that swallows a failed statement's
  /// error and returns gets errc::rolled_back (the server refuses to commit).
  void transaction(transaction_body body) const;
  void transaction(transaction_body body, error_code& ec, diagnostics& diag) const;
  /// True when the engine is running and answers a trivial query.
  bool health_check() const noexcept;
  infrastructure_stats stats() const { return infra_->stats(); }
  /// Borrows a read connection (see connection_lease). Throws pool_exhausted after
  /// `acquire_timeout` (the engine's default when not given).
  connection_lease acquire(std::optional<std::chrono::milliseconds> acquire_timeout = {}) const;

  // ---- async ----------------------------------------------------------------------------

  template <class Token>
  auto async_execute(std::string sql, params args, Token&& token) const {
    return initiate<result>(make_request(request_kind::execute, std::move(sql), std::move(args)),
                            nullptr, std::forward<Token>(token));
  }
  template <class Token>
  auto async_execute(std::string sql, params args, diagnostics& diag, Token&& token) const {
    return initiate<result>(make_request(request_kind::execute, std::move(sql), std::move(args)),
                            &diag, std::forward<Token>(token));
  }

  template <class Token>
  auto async_fetch_one(std::string sql, params args, Token&& token) const {
    return initiate<std::optional<row>>(
        make_request(request_kind::fetch_one, std::move(sql), std::move(args)), nullptr,
        std::forward<Token>(token));
  }
  template <class Token>
  auto async_fetch_one(std::string sql, params args, diagnostics& diag, Token&& token) const {
    return initiate<std::optional<row>>(
        make_request(request_kind::fetch_one, std::move(sql), std::move(args)), &diag,
        std::forward<Token>(token));
  }

  template <class Token>
  auto async_fetch_all(std::string sql, params args, Token&& token) const {
    return initiate<rows>(make_request(request_kind::execute, std::move(sql), std::move(args)),
                          nullptr, std::forward<Token>(token));
  }
  template <class Token>
  auto async_fetch_all(std::string sql, params args, diagnostics& diag, Token&& token) const {
    return initiate<rows>(make_request(request_kind::execute, std::move(sql), std::move(args)),
                          &diag, std::forward<Token>(token));
  }

  template <class Token>
  auto async_execute_script(std::string sql, Token&& token) const {
    return initiate<void>(make_request(request_kind::script, std::move(sql), {}), nullptr,
                          std::forward<Token>(token));
  }
  template <class Token>
  auto async_execute_script(std::string sql, diagnostics& diag, Token&& token) const {
    return initiate<void>(make_request(request_kind::script, std::move(sql), {}), &diag,
                          std::forward<Token>(token));
  }

  template <class Token>
  auto async_execute_many(std::string sql, std::vector<params> batch, Token&& token) const {
    return initiate<result>(make_many(std::move(sql), std::move(batch)), nullptr,
                            std::forward<Token>(token));
  }
  template <class Token>
  auto async_execute_many(std::string sql, std::vector<params> batch, diagnostics& diag,
                          Token&& token) const {
    return initiate<result>(make_many(std::move(sql), std::move(batch)), &diag,
                            std::forward<Token>(token));
  }

  /// The body runs on the writer's thread; keep it short and free of blocking waits.
  /// A body that throws completes with the entity::error's code, or errc::aborted.
  template <class Token>
  auto async_transaction(transaction_body body, Token&& token) const {
    return initiate<void>(make_transaction(std::move(body)), nullptr, std::forward<Token>(token));
  }
  template <class Token>
  auto async_transaction(transaction_body body, diagnostics& diag, Token&& token) const {
    return initiate<void>(make_transaction(std::move(body)), &diag, std::forward<Token>(token));
  }

  /// Completes with success when the engine answers a trivial query.
  template <class Token>
  auto async_health_check(Token&& token) const {
    return initiate<void>(make_request(request_kind::fetch_one, "SELECT 1", {}), nullptr,
                          std::forward<Token>(token));
  }

 private:
  /// The compiled bodies behind the templates (one per completion signature).
  void start(request req, diagnostics* diag, handler<result> h) const;
  void start(request req, diagnostics* diag, handler<std::optional<row>> h) const;
  void start(request req, diagnostics* diag, handler<rows> h) const;
  void start(request req, diagnostics* diag, void_handler h) const;
  request make_request(request_kind kind, std::string sql, params args) const;
  request make_many(std::string sql, std::vector<params> batch) const;
  request make_transaction(transaction_body body) const;

  template <class T, class Token>
  auto initiate(request req, diagnostics* diag, Token&& token) const {
    if constexpr (std::is_void_v<T>) {
      return boost::asio::async_initiate<Token, void(error_code)>(
          [self = *this](auto h, request r, diagnostics* d) {
            self.start(std::move(r), d, void_handler(std::move(h)));
          },
          token, std::move(req), diag);
    } else {
      return boost::asio::async_initiate<Token, void(error_code, T)>(
          [self = *this](auto h, request r, diagnostics* d) {
            self.start(std::move(r), d, handler<T>(std::move(h)));
          },
          token, std::move(req), diag);
    }
  }

  std::shared_ptr<infrastructure> infra_;
  std::optional<std::chrono::milliseconds> timeout_;
};

}  // namespace entity
