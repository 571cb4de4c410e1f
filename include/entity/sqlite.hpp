// entity-db layer 1: the embedded SQLite engine.
//
// One writer connection with its own queue and `pool_size` reader connections (WAL lets them
// read while the writer writes). Consecutive writes are committed as a group: one
// BEGIN IMMEDIATE ... COMMIT with a SAVEPOINT per request, so a failing request is rolled back
// alone. Every request has a deadline; a statement past it is interrupted inside SQLite.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "entity/infrastructure.hpp"

namespace entity {

enum class journal_mode { wal, delete_, truncate, persist, memory, off };
enum class synchronous_mode { off, normal, full, extra };
enum class temp_store_mode { default_, file, memory };

/// Configuration of a sqlite_infrastructure. Every field has a documented default.
struct sqlite_params {
  /// A file path, or ":memory:" for one in-memory database shared by every connection of this
  /// infrastructure. Missing parent folders of a file are created at startup.
  std::string path = ":memory:";
  /// Reader connections (the writer is one more). Default 5.
  std::size_t pool_size = 5;
  /// Connections opened by startup(): the writer plus min_connections - 1 readers. Default 2.
  std::size_t min_connections = 2;
  /// Deadline of every request unless the request gives its own; time queued counts. Default 30 s.
  std::chrono::milliseconds query_timeout = std::chrono::seconds(30);
  /// How long acquire() and a sync read wait for a free reader. Default 5 s.
  std::chrono::milliseconds acquire_timeout = std::chrono::seconds(5);
  /// How long a reader waits for another process's lock, never past the request's deadline.
  /// The writer waits past it until the request's deadline, and no longer. Nothing waits on a
  /// caller's event loop (a deferred request goes to the engine's threads instead). The
  /// engine's own busy handler does the waiting, so `PRAGMA busy_timeout` reads 0. Default 5 s.
  std::chrono::milliseconds busy_timeout = std::chrono::seconds(5);
  /// Default WAL: readers never block the writer nor the writer them.
  journal_mode journal = journal_mode::wal;
  /// Default NORMAL: in WAL mode a commit survives a process crash; FULL (the durable mode)
  /// also survives power loss, at the cost of an fsync per group commit.
  synchronous_mode synchronous = synchronous_mode::normal;
  /// Default MEMORY: temporary tables and indexes never touch the disk.
  temp_store_mode temp_store = temp_store_mode::memory;
  /// Bytes of the file mapped into memory for reads. Default 256 MiB.
  std::int64_t mmap_size = 256LL * 1024 * 1024;
  /// Prepared statements kept per connection, least recently used evicted. Default 64.
  std::size_t statement_cache_size = 64;
  /// Most requests committed in one group. Default 256.
  std::size_t max_group_size = 256;
  /// An async statement whose caller runs an asio event loop (an io_context, a coroutine) runs
  /// on that loop, as a handler of its own, for at most this long; one that takes longer is
  /// interrupted and run again from the start on the engine's threads, so the loop is never
  /// held longer than this. Handing work to another thread costs tens of microseconds, more
  /// than most statements take. Writes run there only where a commit does not wait for the
  /// disk (WAL with synchronous NORMAL or OFF, the default; or ":memory:") and are still
  /// committed as groups. A statement that ran past the budget goes straight to the engine's
  /// threads the next times it is asked for (tried on the loop again one time in 16, and
  /// forgotten once it fits), so a known long query does not pay the budget first.
  /// Transaction bodies and scripts always run on the engine's threads. Zero: every async
  /// request goes to the engine's threads. Default 250 µs.
  std::chrono::microseconds inline_budget{250};

  /// The durable mode: synchronous=FULL.
  static sqlite_params durable(std::string path) {
    sqlite_params p;
    p.path = std::move(path);
    p.synchronous = synchronous_mode::full;
    return p;
  }
};

/// The SQLite engine. Construct, startup(), use through entity::database, shutdown() (or let
/// the destructor do it).
class sqlite_infrastructure final : public infrastructure {
 public:
  explicit sqlite_infrastructure(sqlite_params settings = {});
  ~sqlite_infrastructure() override;
  sqlite_infrastructure(const sqlite_infrastructure&) = delete;
  sqlite_infrastructure& operator=(const sqlite_infrastructure&) = delete;

  void startup() override;
  void shutdown() override;
  bool running() const noexcept override;
  void submit(request req, completion done) override;
  std::unique_ptr<deferred_work> defer(request req, completion done) override;
  outcome run(request req) override;
  connection_lease acquire(std::optional<std::chrono::milliseconds> acquire_timeout, error_code& ec,
                           diagnostics& diag) override;
  infrastructure_stats stats() const override;
  std::string_view backend_name() const noexcept override { return "sqlite"; }
  sql_dialect dialect() const noexcept override { return sql_dialect::sqlite; }

  const sqlite_params& params() const noexcept;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace entity
