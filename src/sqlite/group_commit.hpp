// Group commit on the SQLite writer: a group of write requests taken from the writer queue is
// committed in one transaction, each request inside a savepoint of its own, so that one
// request's failure rolls back that request alone. Requests that cannot share a transaction
// (scripts, transaction control, VACUUM: route::solo) run by themselves between groups, in
// their place; a lone statement commits by itself (autocommit).
//
// A failure that makes SQLite roll back the whole transaction (a statement interrupted at its
// deadline, disk full, an I/O error) takes the requests before it along: nothing of theirs
// survived, so the group runs again without the failed request instead of reporting a
// neighbour's failure to them.
//
// On a caller's thread (`on_caller`), every statement runs under the inline budget and nothing
// waits for another process's lock; a request that could not finish there is marked `rehand`
// (its work rolled back) for the engine to run again on the writer thread.
//
// Plain code over one connection: no threads, no locks. Deadlines are compared with `now_fn`,
// so tests can hold the clock still or move it (tests/unit/sqlite/group_commit_test.cpp).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>
#include <vector>

#include "sqlite/connection.hpp"
#include "sqlite/pending.hpp"

namespace entity::sqlite_detail {

class group_commit {
 public:
  using now_fn = clock::time_point (*)();
  static clock::time_point steady_now() { return clock::now(); }

  explicit group_commit(std::chrono::microseconds inline_budget,
                        now_fn now = &group_commit::steady_now) noexcept;

  /// Commits `ops` on `writer` in order: each one's outcome is set (or it is marked rehand),
  /// none is completed. A request past its deadline or cancelled fails without running.
  void commit(connection& writer, std::vector<pending*>& ops, bool on_caller);

  /// Groups of two or more requests committed together, and the requests they held.
  std::uint64_t groups() const noexcept { return groups_.load(std::memory_order_relaxed); }
  std::uint64_t grouped() const noexcept { return grouped_.load(std::memory_order_relaxed); }

 private:
  void run_on_writer(pending& op);
  void run_solo(pending& op);
  void run_batch(std::vector<pending*>& batch);
  error_code begin(clock::time_point deadline, diagnostics& diag);
  error_code control(connection::control which, diagnostics& diag);

  std::chrono::microseconds inline_budget_;
  now_fn now_;
  connection* writer_ = nullptr;  // during commit()
  bool leading_inline_ = false;   // during commit(): on a caller's thread
  std::atomic<std::uint64_t> groups_{0}, grouped_{0};
};

}  // namespace entity::sqlite_detail
