// A request in flight in the SQLite engine, and what the engine's parts (the queues, the group
// commit) ask of it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "entity/infrastructure.hpp"
#include "sqlite/classify.hpp"
#include "sqlite/connection.hpp"
#include "sqlite/writer_queue.hpp"

namespace entity::sqlite_detail {

// A request in flight. Async ones live on the heap until their completion runs; a sync one
// lives on its caller's stack. Who touches what (no member is annotated: the one lock in play
// is the engine's wmu, which is no member here, and the rest goes from thread to thread with
// the request itself):
//   - req, submitted, deadline, path, sql_hash and `statement`: written by prepare() before the
//   request
//     is queued anywhere, only read after;
//   - out, done and over_budget: whichever thread holds the request (the one that runs it: a reader
//     thread, a caller's, the leader whose group took it; then the one that completes it); it
//     is handed on through a queue, under the queue's mutex, or in a ticket;
//   - `finished`, and what the writer queue keeps of a write (queued_write, but `rehand`, the
//     leader's alone): under the engine's wmu. A sync write queued behind a leader waits on
//     `cv` with wmu, for its completion or for the chance to lead.
struct pending : queued_write {
  request req;
  completion done;
  clock::time_point submitted;
  clock::time_point deadline;
  outcome out;
  std::condition_variable cv;  // sync writes waiting in the queue only
  bool finished = false;       // under wmu: a waiting sync write was completed
  // Where the request goes, classified once when it arrives (the classifier reads the SQL).
  route path = route::write;
  // Set by defer() before the request is queued (never 0 then): the SQL's overrun_memory hash.
  std::uint64_t sql_hash = 0;
  // Set by the group commit (or a deferred read): the inline budget stopped the statement.
  bool over_budget = false;
};

inline std::size_t max_rows_of(const request& r) {
  return r.kind == request_kind::fetch_one ? 1 : std::numeric_limits<std::size_t>::max();
}

inline route route_of(const request& r) {
  switch (r.kind) {
    case request_kind::execute:
    case request_kind::fetch_one:
      return classify(r.sql);
    case request_kind::script:
      return route::solo;
    case request_kind::many:
    case request_kind::transaction:
      return route::write;
  }
  return route::write;
}

inline void set_error(outcome& out, error_code ec, std::string message, std::string_view sql = {}) {
  out.ec = ec;
  out.diag.message = std::move(message);
  out.diag.sql = sql_excerpt(sql);
}

inline bool cancel_requested(const pending& op) {
  return op.req.cancel && op.req.cancel->requested();
}

inline void set_cancelled(pending& op) {
  set_error(op.out, make_error_code(errc::cancelled),
            "the caller cancelled the request before it started", op.req.sql);
}

// A request of this kind may run on a caller's thread: one statement (or one statement over
// many parameter sets) that can be interrupted at the budget and run again elsewhere.
inline bool runs_inline(const request& r) {
  return r.kind == request_kind::execute || r.kind == request_kind::fetch_one ||
         r.kind == request_kind::many;
}

}  // namespace entity::sqlite_detail
