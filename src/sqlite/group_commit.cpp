// Group commit on the SQLite writer: see group_commit.hpp.
#include "sqlite/group_commit.hpp"

#include <algorithm>

namespace entity::sqlite_detail {

group_commit::group_commit(std::chrono::microseconds inline_budget, now_fn now) noexcept
    : inline_budget_(inline_budget), now_(now) {}

void group_commit::commit(connection& writer, std::vector<pending*>& ops, bool on_caller) {
  writer_ = &writer;
  leading_inline_ = on_caller;
  if (on_caller) writer.set_budget(clock::time_point::max());  // no waiting for locks
  auto now = now_();
  std::vector<pending*> batch;
  batch.reserve(ops.size());
  for (pending* op : ops) {
    if (now >= op->deadline) {
      set_error(op->out, make_error_code(errc::query_timeout),
                "the deadline passed while the request waited for the writer", op->req.sql);
    } else if (cancel_requested(*op)) {
      set_cancelled(*op);
    } else if (op->path == route::solo) {
      run_batch(batch);
      batch.clear();
      run_solo(*op);
    } else {
      batch.push_back(op);
    }
  }
  run_batch(batch);
  if (on_caller) writer.clear_budget();
  writer_ = nullptr;
  leading_inline_ = false;
}

// Runs one request's statements on the writer (inside whatever transaction is open).
void group_commit::run_on_writer(pending& op) {
  outcome& out = op.out;
  writer_->set_deadline(op.deadline);
  writer_->set_cancellation(op.req.cancel.get());
  // The budget is the connection's, on its own clock.
  if (leading_inline_) writer_->set_budget(clock::now() + inline_budget_);
  switch (op.req.kind) {
    case request_kind::execute:
    case request_kind::fetch_one:
      out.ec = writer_->run(op.req.sql, op.req.args, max_rows_of(op.req), out.res, out.diag);
      break;
    case request_kind::script:
      out.ec = writer_->run_script(op.req.sql, out.diag);
      break;
    case request_kind::many:
      for (const entity::params& args : op.req.batch) {
        // Each statement may be too short for the progress handler to see the request.
        if (writer_->cancel_requested()) {
          set_error(out, make_error_code(errc::cancelled),
                    "the caller cancelled the request; its statements were rolled back",
                    op.req.sql);
          break;
        }
        out.ec = writer_->run(op.req.sql, args, 0, out.res, out.diag);
        if (out.ec) break;
      }
      break;
    case request_kind::transaction:
      try {
        if (!op.req.body)
          throw error(errc::invalid_argument, {"the transaction body is empty", {}});
        op.req.body(*writer_);
      } catch (const error& e) {
        out.ec = e.code();
        out.diag = e.diag();
      } catch (const std::exception& e) {
        set_error(out, make_error_code(errc::aborted), e.what());
        out.exception = std::current_exception();
      } catch (...) {
        set_error(out, make_error_code(errc::aborted), "the transaction body threw");
        out.exception = std::current_exception();
      }
      break;
  }
  writer_->set_cancellation(nullptr);
  writer_->set_deadline(clock::time_point::max());
  if (leading_inline_) {
    // Interrupted at the budget, or another process holds the lock: the writer thread runs
    // it again (what it did was rolled back with its savepoint or its transaction).
    op.over_budget = writer_->over_budget();
    if (op.over_budget || out.ec == condition::busy) op.rehand = true;
    writer_->set_budget(clock::time_point::max());
  }
}

// A fixed control statement on the writer; never subject to a request's deadline.
error_code group_commit::control(connection::control which, diagnostics& diag) {
  writer_->set_deadline(clock::time_point::max());
  return writer_->run(which, diag);
}

// BEGIN IMMEDIATE takes the write lock now, so no statement inside can fail with
// SQLITE_BUSY later. Another process may hold it: the writer waits for it until `deadline`
// (connection::wait_for_lock), except on a caller's thread, which does not wait.
error_code group_commit::begin(clock::time_point deadline, diagnostics& diag) {
  diag.clear();
  writer_->set_deadline(deadline);
  error_code ec = writer_->run(connection::control::begin_immediate, diag);
  writer_->set_deadline(clock::time_point::max());
  return ec;
}

// A request run by itself, outside a group: a statement that must find no transaction open
// (a script, VACUUM), or a lone statement that commits by itself. A statement that finds
// another process's lock waits for it inside the connection, up to the request's deadline.
void group_commit::run_solo(pending& op) {
  op.out = outcome{};
  run_on_writer(op);
  if (!writer_->autocommit()) {
    diagnostics ignored;
    control(connection::control::rollback, ignored);
    if (!op.out.ec)
      set_error(op.out, make_error_code(errc::transaction_open),
                "the statements left a transaction open, so it was rolled back; "
                "use transaction() or end the script with COMMIT",
                op.req.sql);
  }
}

void group_commit::run_batch(std::vector<pending*>& batch) {
  if (batch.empty()) return;
  if (batch.size() == 1 && !leading_inline_ &&
      (batch[0]->req.kind == request_kind::execute ||
       batch[0]->req.kind == request_kind::fetch_one)) {
    // A lone statement commits by itself (autocommit): two statements fewer than a group.
    // Not on a caller's thread: SQLite consults the progress handler once more after a
    // statement has halted, so a statement that committed in autocommit can still report
    // SQLITE_INTERRUPT at the budget, and running it again would apply it twice. Inside
    // BEGIN ... COMMIT an interrupted statement is rolled back before it is handed over.
    run_solo(*batch[0]);
    return;
  }
  const bool savepoints = batch.size() > 1;
  diagnostics diag;
  // A failure that makes SQLite roll back the whole transaction (a statement interrupted at
  // its deadline, disk full, an I/O error) takes the requests before it in the group along.
  // Nothing of theirs survived, so the group runs again without the failed request instead of
  // reporting a neighbour's failure to them. A request whose outcome holds an error is
  // finished; each new attempt finishes at least one more, so this ends.
  while (true) {
    clock::time_point first_deadline = clock::time_point::max();
    bool any_left = false;
    for (pending* op : batch) {
      if (op->out.ec) continue;
      any_left = true;
      first_deadline = std::min(first_deadline, op->deadline);
    }
    if (!any_left) return;  // every request has failed
    if (error_code ec = begin(first_deadline, diag)) {
      for (pending* op : batch) {
        if (op->out.ec) continue;
        op->out.ec = ec;
        op->out.diag = diag;
        op->rehand = leading_inline_ && ec == condition::busy;
      }
      return;
    }
    bool again = false;
    for (std::size_t i = 0; i < batch.size() && !again; ++i) {
      pending& op = *batch[i];
      if (op.out.ec) continue;  // failed in an earlier attempt
      if (now_() >= op.deadline) {
        set_error(op.out, make_error_code(errc::query_timeout),
                  "the deadline passed while the request waited in its group", op.req.sql);
        continue;
      }
      if (cancel_requested(op)) {
        set_cancelled(op);
        continue;
      }
      if (savepoints) {
        if (error_code ec = control(connection::control::savepoint, op.out.diag)) {
          op.out.ec = ec;
          continue;
        }
      }
      run_on_writer(op);
      if (!op.out.ec) {
        if (savepoints) control(connection::control::release, diag);
        continue;
      }
      if (writer_->autocommit()) {
        for (std::size_t j = 0; j < i; ++j)
          if (!batch[j]->out.ec) batch[j]->out = outcome{};
        again = true;
        continue;
      }
      if (savepoints) {
        diagnostics ignored;
        control(connection::control::rollback_to, ignored);
        control(connection::control::release, ignored);
      } else {
        diagnostics ignored;
        control(connection::control::rollback, ignored);
      }
    }
    if (!again) break;
  }
  if (writer_->autocommit()) return;            // nothing left open (everything was rolled back)
  if (!savepoints && batch[0]->out.ec) return;  // rolled back above
  if (error_code ec = control(connection::control::commit, diag)) {
    diagnostics ignored;
    if (!writer_->autocommit()) control(connection::control::rollback, ignored);
    for (pending* op : batch) {
      if (op->out.ec) continue;
      if (leading_inline_ && ec == condition::busy) {
        // A reader holds the lock the commit needs (a :memory: database has no WAL) and a
        // caller's thread does not wait for it: rolled back, the writer thread runs it again.
        op->out = outcome{};
        op->rehand = true;
        continue;
      }
      op->out.ec = ec;
      op->out.diag.message = "the commit failed: " + diag.message;
      op->out.res = result{};
    }
    return;
  }
  std::size_t committed = 0;
  for (pending* op : batch) committed += op->out.ec ? 0 : 1;
  if (committed >= 2) {
    groups_.fetch_add(1, std::memory_order_relaxed);
    grouped_.fetch_add(committed, std::memory_order_relaxed);
  }
}

}  // namespace entity::sqlite_detail
