// entity-db layer 1: the engine interface every backend implements.
//
// Layer 2 (database, vector_store) talks to a backend only through this header. A backend runs
// requests either asynchronously (`submit`: the work happens elsewhere and `done` is called once,
// on whatever thread finished it) or synchronously on the calling thread (`run`).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "entity/detail/unique_function.hpp"
#include "entity/error.hpp"
#include "entity/value.hpp"

namespace entity {

class session;

/// The SQL a backend speaks: what the layers above consult where the two spell a statement
/// differently (column types, upserts, JSON functions), instead of comparing backend names.
enum class sql_dialect {
  sqlite,      ///< sqlite_infrastructure
  postgresql,  ///< postgres_infrastructure
};

/// What a request asks the engine to do.
enum class request_kind {
  execute,      ///< one statement, all rows kept
  fetch_one,    ///< one statement, at most one row kept
  script,       ///< several statements separated by ';', run in order, no parameters
  many,         ///< one statement run once per parameter set, in one transaction
  transaction,  ///< a callable given a session, committed or rolled back as a whole
};

/// A transaction body: runs on one connection inside one transaction. Throwing (an
/// entity::error from a statement, or anything else) rolls the whole body back. It may run
/// again when a request sharing its transaction rolls the transaction back (see
/// database::transaction).
using transaction_body = detail::unique_function<void(session&)>;

/// A caller's wish that one request stop: requested from any thread, seen by the engine that
/// runs the request. Thread-safe.
///
/// A request whose cancellation is requested before it starts completes with errc::cancelled
/// without running; a running one is stopped the way its deadline would stop it (interrupted
/// inside SQLite, cancelled on the PostgreSQL server) and completes with errc::cancelled,
/// rolled back as a failure would be. A request that finishes first completes as usual.
class cancellation {
 public:
  using wake_up = detail::unique_function<void()>;

  cancellation() = default;
  cancellation(const cancellation&) = delete;
  cancellation& operator=(const cancellation&) = delete;

  /// Requests cancellation. The first call runs the engine's wake-up, if one is registered, on
  /// the calling thread before returning; later calls do nothing.
  void request() noexcept;
  bool requested() const noexcept { return requested_.load(std::memory_order_acquire); }

  /// For the engine that polls requested() too rarely: `wake` runs once when cancellation is
  /// requested, on the requesting thread; at once, on this thread, when it already was.
  /// Replaces a wake-up that has not run.
  /// REQUIRES: `wake` is short, does not throw, does not complete the request itself (the
  /// requester may be inside an asio cancellation signal's emit: the wake-up hands the work to
  /// the engine's threads), and calls no member of this object but requested() (it runs under
  /// this object's lock).
  void on_request(wake_up wake);
  /// For the engine, when the request ends: drops the wake-up. Once it returns, the wake-up is
  /// not running and never will.
  void clear() noexcept;

 private:
  std::atomic<bool> requested_{false};
  std::mutex mu_;
  wake_up wake_;  // GUARDED_BY(mu_)
};

/// One unit of work for the engine.
struct request {
  request_kind kind = request_kind::execute;
  std::string sql;
  params args;
  std::vector<params> batch;  ///< for request_kind::many
  transaction_body body;      ///< for request_kind::transaction
  /// Overrides the engine's query_timeout. Time spent queued counts.
  std::optional<std::chrono::milliseconds> timeout;
  /// When set, the caller may cancel the request through it (see cancellation).
  std::shared_ptr<cancellation> cancel;
};

/// How a request ended. `exception` is set when a transaction body threw something that is not
/// an entity::error; the sync API rethrows it, the async API reports errc::aborted.
struct outcome {
  error_code ec;
  diagnostics diag;
  result res;
  std::exception_ptr exception;
};

/// Called exactly once per submitted request.
using completion = detail::unique_function<void(outcome&&)>;

/// A request an engine holds for its caller to run (see infrastructure::defer).
class deferred_work {
 public:
  /// Destroyed without run(): the engine's own workers take the request.
  virtual ~deferred_work() = default;
  /// Runs the request on the calling thread for at most the engine's budget for such work;
  /// what does not finish within it moves to the engine's workers. The completion may be
  /// called before run() returns.
  virtual void run() noexcept = 0;
};

/// A connection borrowed for a run of statements: a transaction body's, or a lease's.
/// Not thread-safe: one thread at a time, as the connection itself.
class session {
 public:
  virtual ~session() = default;

  /// Runs one statement with `args`; keeps at most `max_rows` rows. Throws entity::error.
  virtual result query(std::string_view sql, const params& args,
                       std::size_t max_rows = std::numeric_limits<std::size_t>::max()) = 0;

  result execute(std::string_view sql, const params& args = {}) { return query(sql, args); }
  std::optional<row> fetch_one(std::string_view sql, const params& args = {});
  std::vector<row> fetch_all(std::string_view sql, const params& args = {});
};

/// A connection borrowed from the pool. Move-only; the destructor gives it back.
/// Obtained from infrastructure::acquire; meant for reads (a consistent snapshot when wrapped
/// in BEGIN ... COMMIT). Writes belong to the writer: use database::execute or transaction.
class connection_lease {
 public:
  class owner {
   public:
    virtual ~owner() = default;
    virtual void give_back(std::unique_ptr<session> s) noexcept = 0;
  };

  connection_lease() = default;
  connection_lease(std::unique_ptr<session> s, std::shared_ptr<owner> home)
      : session_(std::move(s)), home_(std::move(home)) {}
  connection_lease(connection_lease&&) noexcept = default;
  connection_lease& operator=(connection_lease&& other) noexcept {
    if (this != &other) {
      release();
      session_ = std::move(other.session_);
      home_ = std::move(other.home_);
    }
    return *this;
  }
  ~connection_lease() { release(); }

  explicit operator bool() const noexcept { return session_ != nullptr; }
  session& operator*() const { return *session_; }
  session* operator->() const { return session_.get(); }

  /// Gives the connection back now.
  void release() noexcept {
    if (session_ && home_) home_->give_back(std::move(session_));
    session_.reset();
    home_.reset();
  }

 private:
  std::unique_ptr<session> session_;
  std::shared_ptr<owner> home_;
};

/// A snapshot of an engine's counters.
struct infrastructure_stats {
  std::size_t pool_size = 0;             ///< connections the pool may open (readers + writer)
  std::size_t open_connections = 0;      ///< connections open now
  std::size_t idle_connections = 0;      ///< open and not in use
  std::size_t busy_connections = 0;      ///< open and in use
  std::size_t queued_operations = 0;     ///< submitted, not yet started
  std::uint64_t operations = 0;          ///< requests finished, successfully or not
  std::uint64_t errors = 0;              ///< requests that finished with an error
  std::uint64_t timeouts = 0;            ///< requests that finished with query_timeout
  std::uint64_t group_commits = 0;       ///< transactions that committed two or more requests
  std::uint64_t grouped_operations = 0;  ///< requests committed inside those transactions
  double mean_group_size = 0;            ///< grouped_operations / group_commits
  std::uint64_t pipeline_batches = 0;   ///< round trips that carried a pipelined batch (PostgreSQL)
  std::uint64_t inline_operations = 0;  ///< async requests run on their caller's thread (defer)
  /// Statements run by a name their connection already held prepared (PostgreSQL; 0 on SQLite)
  std::uint64_t statement_cache_hits = 0;
  /// Statements prepared on their connection before they ran (PostgreSQL; 0 on SQLite)
  std::uint64_t statement_cache_misses = 0;
  double p50_latency_us = 0;  ///< median time from submit to completion
  double p99_latency_us = 0;
};

/// The engine interface. Implementations: sqlite_infrastructure, postgres_infrastructure.
/// Thread safety: every member may be called from any thread, except that startup() and
/// shutdown() must not race each other.
class infrastructure {
 public:
  virtual ~infrastructure() = default;

  /// Opens the first connections and starts the workers. Throws entity::error.
  virtual void startup() = 0;
  /// Finishes every queued request (or fails it with errc::shut_down), closes every connection
  /// and joins every thread. Idempotent.
  virtual void shutdown() = 0;
  virtual bool running() const noexcept = 0;

  /// Runs `req` asynchronously; `done` is called exactly once, from any thread.
  virtual void submit(request req, completion done) = 0;
  /// Like submit, but the engine may leave short work to its caller instead of waking one of
  /// its own threads: it returns a ticket, and the request runs when the ticket's run() is
  /// called (the caller posts it to its event loop, so it never runs inside the initiating
  /// call) or, should the ticket be destroyed unrun, on the engine's workers. Returns null when
  /// the request was submitted as by submit(). The default submits.
  virtual std::unique_ptr<deferred_work> defer(request req, completion done) {
    submit(std::move(req), std::move(done));
    return nullptr;
  }
  /// Runs `req` before returning, on the calling thread where that is safe.
  virtual outcome run(request req) = 0;

  /// Borrows a read connection, waiting at most `acquire_timeout` (the engine's default when
  /// not given); fails with errc::pool_exhausted when none frees up in time.
  virtual connection_lease acquire(std::optional<std::chrono::milliseconds> acquire_timeout,
                                   error_code& ec, diagnostics& diag) = 0;

  virtual infrastructure_stats stats() const = 0;
  /// "sqlite" or "postgres": the backend's name, for people (reports, logs).
  virtual std::string_view backend_name() const noexcept = 0;
  /// Which SQL the backend speaks; code that writes SQL per backend asks this, not the name.
  /// Constant for the engine's lifetime; callable from any thread, before startup() too.
  virtual sql_dialect dialect() const noexcept = 0;
};

/// What a database URL names: which engine, and what that engine is given (a SQLite path or
/// ":memory:", or the PostgreSQL URL itself).
struct engine_target {
  bool postgres = false;
  std::string location;
};
/// "postgresql://..." or "postgres://..." name PostgreSQL; a path, "sqlite:PATH",
/// "sqlite://PATH" or ":memory:" name SQLite. Throws entity::error (invalid_argument) for an
/// empty path.
engine_target parse_target(std::string_view url);

/// Opens the engine `url` names (see parse_target) with its default settings. Not started yet.
/// Defined in entity::db, the whole library (it names both engines); a program linked with
/// entity::core alone, the SQLite-only part, constructs its sqlite_infrastructure itself.
std::shared_ptr<infrastructure> make_infrastructure(std::string_view url);

}  // namespace entity
