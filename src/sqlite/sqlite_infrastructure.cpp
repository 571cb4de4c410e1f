// The SQLite engine: one writer with a queue and group commit, a pool of readers, deadlines.
//
// Threads: one writer thread and pool_size reader threads run async requests. A sync request
// runs on its caller's thread: a read leases an idle reader; a write joins the writer queue and,
// when no one is committing, its caller becomes the leader and commits a group from the front of
// the queue itself (LevelDB's writer queue), so the writer thread is woken only for async work.
// Leadership is released as soon as a group has committed, before its requests are completed:
// completion runs callers' handlers, and a handler may itself write.
//
// Deferred requests (defer(): async requests whose caller runs an event loop) avoid the thread
// hand-off altogether. A read waits for its ticket, then runs on the caller's thread on an idle
// reader. A write joins the writer queue without waking the writer thread; when its ticket
// runs, the caller leads a group itself, taking along every write queued meanwhile (the other
// coroutines of its loop: they still commit together). Both run under the inline budget: a
// statement that outlasts it is interrupted and its request handed to the engine's threads,
// which run it again from the start.
//
// Cancellation (request::cancel) is polled, not signalled: a request checks it where it would
// check its deadline (before it starts, when a group reaches it) and the progress handler checks
// it while a statement runs, so a cancelled statement stops exactly as one past its deadline
// does, rolled back alone, wherever it runs. No wake-up is registered.
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unistd.h>
#include <vector>

#include "common/engine_core.hpp"
#include "entity/sqlite.hpp"
#include "sqlite/classify.hpp"
#include "sqlite/connection.hpp"
#include "sqlite/spin.hpp"
#include "sqlite/writer_queue.hpp"

namespace entity {

using sqlite_detail::clock;
using sqlite_detail::connection;
using sqlite_detail::queued_write;
using sqlite_detail::route;

namespace {

struct write_ticket;

// A request in flight. Async ones live on the heap until their completion runs; a sync one
// lives on its caller's stack. What the writer queue keeps of a write (queued_write) is
// GUARDED_BY(wmu). A sync write queued behind a leader waits on `cv` under the writer's
// mutex, for its completion or for the chance to lead.
struct pending : queued_write {
  request req;
  completion done;
  clock::time_point submitted;
  clock::time_point deadline;
  outcome out;
  std::condition_variable cv;  // sync writes waiting in the queue only
  bool finished = false;       // GUARDED_BY(wmu): a waiting sync write was completed
  // Where the request goes, classified once when it arrives (the classifier reads the SQL).
  route path = route::write;
};


std::size_t max_rows_of(const request& r) {
  return r.kind == request_kind::fetch_one ? 1 : std::numeric_limits<std::size_t>::max();
}

route route_of(const request& r) {
  switch (r.kind) {
    case request_kind::execute:
    case request_kind::fetch_one: return sqlite_detail::classify(r.sql);
    case request_kind::script: return route::solo;
    case request_kind::many:
    case request_kind::transaction: return route::write;
  }
  return route::write;
}

void set_error(outcome& out, error_code ec, std::string message, std::string_view sql = {}) {
  out.ec = ec;
  out.diag.message = std::move(message);
  out.diag.sql = sql_excerpt(sql);
}

bool cancel_requested(const pending& op) { return op.req.cancel && op.req.cancel->requested(); }

void set_cancelled(pending& op) {
  set_error(op.out, make_error_code(errc::cancelled),
            "the caller cancelled the request before it started", op.req.sql);
}

// A request of this kind may run on a caller's thread: one statement (or one statement over
// many parameter sets) that can be interrupted at the budget and run again elsewhere.
bool runs_inline(const request& r) {
  return r.kind == request_kind::execute || r.kind == request_kind::fetch_one ||
         r.kind == request_kind::many;
}

std::atomic<unsigned> memdb_counter{0};

// The engine whose writer this thread is committing for (a transaction body runs then).
thread_local const void* committing_for = nullptr;

}  // namespace

namespace {

// A deferred write: queued in the writer queue from defer() on. `op` is null once a leader has
// taken the request or it is due to the writer thread (GUARDED_BY(self->wmu)).
struct write_ticket final : deferred_work {
  explicit write_ticket(std::shared_ptr<sqlite_infrastructure::impl> s) : self(std::move(s)) {}
  ~write_ticket() override;
  void run() noexcept override;

  std::shared_ptr<sqlite_infrastructure::impl> self;
  queued_write* op = nullptr;
};

// A deferred read: not queued anywhere until run() or the destructor.
struct read_ticket final : deferred_work {
  read_ticket(std::shared_ptr<sqlite_infrastructure::impl> s, pending* o)
      : self(std::move(s)), op(o) {}
  ~read_ticket() override;
  void run() noexcept override;

  std::shared_ptr<sqlite_infrastructure::impl> self;
  pending* op;
};

}  // namespace

struct sqlite_infrastructure::impl final : connection_lease::owner,
                                           std::enable_shared_from_this<impl> {
  explicit impl(sqlite_params settings)
      : p(std::move(settings)),
        // A commit that does not wait for the disk is short enough for a caller's thread.
        inline_writes(p.path == ":memory:" ||
                      (p.journal == journal_mode::wal &&
                       (p.synchronous == synchronous_mode::normal ||
                        p.synchronous == synchronous_mode::off))) {}

  sqlite_params p;
  const bool inline_writes;
  std::string target;
  bool uri = false;
  // The journal mode the database runs in, as SQLite names it ("wal"; "memory" in memory):
  // set at startup, read-only after.
  std::string journal_now;

  std::mutex lifecycle_mu;  // startup and shutdown, one at a time
  detail::lifecycle life;

  // The writer: its connection is used only by the current leader.
  std::unique_ptr<connection> writer;
  std::mutex wmu;
  std::condition_variable wcv;
  sqlite_detail::writer_queue<pending> wq;  // GUARDED_BY(wmu)
  // The current leader commits on its caller's thread under the inline budget. Only the
  // leader reads or writes it.
  bool leading_inline = false;
  // SQLite's own threshold for its automatic checkpoint.
  static constexpr int checkpoint_frames = 1000;
  std::thread writer_thread;

  // Async reads wait here for a reader thread.
  std::mutex rmu;
  std::condition_variable rcv;
  std::deque<pending*> rq;  // GUARDED_BY(rmu)
  bool rstop = false;       // GUARDED_BY(rmu)
  std::atomic<std::size_t> rq_size{0};
  std::vector<std::thread> reader_threads;
  sqlite_detail::spin_gate reader_spinner;

  // Reader connections.
  std::mutex pmu;
  std::condition_variable pcv;
  std::vector<std::unique_ptr<connection>> idle;  // GUARDED_BY(pmu)
  std::size_t open_readers = 0;                   // GUARDED_BY(pmu)
  bool pool_closed = false;                       // GUARDED_BY(pmu)

  // Counters: the engine's own, beside every request's (counters).
  detail::request_counters counters;
  std::atomic<std::uint64_t> group_commits{0}, grouped_ops{0}, inline_ops{0};
  std::atomic<bool> writer_busy{false};

  // ---- lifecycle ----------------------------------------------------------------------

  void startup() {
    std::lock_guard lk(lifecycle_mu);
    if (!life.begin_startup()) return;
    try {
      open_connections();
    } catch (...) {
      life.startup_failed();
      throw;
    }
    life.started();
    writer_thread = std::thread([this] { writer_loop(); });
    for (std::size_t i = 0; i < std::max<std::size_t>(p.pool_size, 1); ++i)
      reader_threads.emplace_back([this] { reader_loop(); });
  }

  // The writer and min_connections - 1 readers; throws what failed, leaving none open.
  void open_connections() {
    if (p.path.empty())
      throw error(errc::invalid_argument, {"the database path is empty", {}});
    if (p.path == ":memory:") {
      // memdb: one in-memory database that every connection of this process opening the same
      // name shares; the name is unique to this infrastructure.
      target = "file:/entitydb-" + std::to_string(::getpid()) + "-" +
               std::to_string(memdb_counter.fetch_add(1)) + "?vfs=memdb";
      uri = true;
    } else {
      target = p.path;
      uri = false;
      std::filesystem::path parent = std::filesystem::path(p.path).parent_path();
      if (!parent.empty()) {
        std::error_code fec;
        std::filesystem::create_directories(parent, fec);
        if (fec)
          throw error(errc::open_failed, {"cannot create folder '" + parent.string() +
                                              "': " + fec.message(),
                                          {}});
      }
    }
    error_code ec;
    diagnostics diag;
    writer = connection::open(target, uri, connection::role::writer, p, ec, diag);
    if (!writer) throw error(ec, diag);
    result mode;
    if (!writer->run("PRAGMA journal_mode", {}, 1, mode, diag) && !mode.rows.empty())
      journal_now = mode.rows[0].get<std::string>(0);
    std::size_t readers = std::min(p.pool_size, p.min_connections > 0 ? p.min_connections - 1 : 0);
    for (std::size_t i = 0; i < readers; ++i) {
      auto c = connection::open(target, uri, connection::role::reader, p, ec, diag);
      if (!c) {
        idle.clear();
        writer.reset();
        throw error(ec, diag);
      }
      idle.push_back(std::move(c));
    }
    open_readers = idle.size();
  }

  void shutdown() {
    std::lock_guard lk(lifecycle_mu);
    if (!life.begin_shutdown()) return;
    {
      std::lock_guard w(wmu);
      wq.stop();
    }
    wcv.notify_all();
    if (writer_thread.joinable()) writer_thread.join();
    {
      std::lock_guard r(rmu);
      rstop = true;
    }
    rcv.notify_all();
    for (auto& t : reader_threads) t.join();
    reader_threads.clear();
    writer.reset();
    std::lock_guard pl(pmu);
    pool_closed = true;
    open_readers -= idle.size();
    idle.clear();
  }

  // ---- completion ---------------------------------------------------------------------

  void finish(pending* op) {
    counters.finished(op->out.ec, op->submitted);
    if (op->done) {
      completion done = std::move(op->done);
      outcome out = std::move(op->out);
      delete op;
      done(std::move(out));
    } else if (op->waits) {
      // Notified under the lock: once it is released the waiter may return and destroy `op`.
      std::lock_guard lk(wmu);
      op->finished = true;
      op->cv.notify_one();
    }
  }

  // ---- reader pool --------------------------------------------------------------------

  // Borrows a reader, waiting until `wait_until`; when that passes, fails with `expired`.
  std::unique_ptr<connection> acquire_reader(clock::time_point wait_until, errc expired,
                                             error_code& ec, diagnostics& diag) {
    std::unique_lock lk(pmu);
    while (true) {
      if (pool_closed) {
        ec = make_error_code(errc::shut_down);
        diag.message = "the database has been shut down";
        return nullptr;
      }
      if (!idle.empty()) {
        auto c = std::move(idle.back());
        idle.pop_back();
        return c;
      }
      if (open_readers < std::max<std::size_t>(p.pool_size, 1)) {
        ++open_readers;
        lk.unlock();
        auto c = connection::open(target, uri, connection::role::reader, p, ec, diag);
        if (!c) {
          lk.lock();
          --open_readers;
          pcv.notify_one();
        }
        return c;
      }
      if (pcv.wait_until(lk, wait_until) == std::cv_status::timeout && idle.empty() &&
          !pool_closed) {
        ec = make_error_code(expired);
        diag.message = expired == errc::pool_exhausted
                           ? "every one of the " + std::to_string(p.pool_size) +
                                 " reader connections stayed busy past acquire_timeout"
                           : "the deadline passed while waiting for a reader connection";
        return nullptr;
      }
    }
  }

  void release_reader(std::unique_ptr<connection> c) noexcept {
    std::lock_guard lk(pmu);
    if (pool_closed) {
      --open_readers;
      c.reset();
      return;
    }
    idle.push_back(std::move(c));
    pcv.notify_one();
  }

  void give_back(std::unique_ptr<session> s) noexcept override {
    std::unique_ptr<connection> c(static_cast<connection*>(s.release()));
    c->set_per_query_timeout(std::nullopt);
    c->set_deadline(clock::time_point::max());
    if (!c->autocommit()) {
      diagnostics ignored;
      c->exec("ROLLBACK", ignored);
    }
    release_reader(std::move(c));
  }

  // Runs a read-routed request on `c`. Returns false when the statement turned out to write:
  // the caller must send it to the writer.
  bool read_on(connection& c, pending& op) {
    c.set_deadline(op.deadline);
    c.set_cancellation(op.req.cancel.get());
    bool needs_writer = false;
    op.out.ec = c.run(op.req.sql, op.req.args, max_rows_of(op.req), op.out.res, op.out.diag,
                      true, &needs_writer);
    c.set_cancellation(nullptr);
    c.set_deadline(clock::time_point::max());
    return !needs_writer;
  }

  // An idle reader, or null: never waits and never opens one.
  std::unique_ptr<connection> idle_reader() {
    std::lock_guard lk(pmu);
    if (pool_closed || idle.empty()) return nullptr;
    auto c = std::move(idle.back());
    idle.pop_back();
    return c;
  }

  // A deferred read, on its caller's thread: on an idle reader within the budget, or else on
  // the reader threads, which also report any error the engine's state calls for.
  void run_deferred_read(pending* op) {
    if (cancel_requested(*op)) {
      set_cancelled(*op);
      return finish(op);
    }
    std::unique_ptr<connection> c;
    if (clock::now() < op->deadline) c = idle_reader();
    if (!c) return push_read(op);
    c->set_budget(clock::now() + p.inline_budget);
    bool is_read = read_on(*c, *op);
    bool over = c->over_budget() || op->out.ec == condition::busy;
    c->clear_budget();
    release_reader(std::move(c));
    if (over || !is_read) {
      op->out = outcome{};
      return over ? push_read(op) : push_write(op);
    }
    inline_ops.fetch_add(1, std::memory_order_relaxed);
    finish(op);
  }

  // Runs a read-routed request on a reader. Returns false when the statement turned out to
  // write: the caller must send it to the writer.
  bool run_read(pending& op) {
    auto now = clock::now();
    if (now >= op.deadline) {
      set_error(op.out, make_error_code(errc::query_timeout),
                "the deadline passed before the statement could start", op.req.sql);
      return true;
    }
    if (cancel_requested(op)) {
      set_cancelled(op);
      return true;
    }
    auto acquire_deadline = detail::deadline_after(now, p.acquire_timeout);
    bool deadline_first = op.deadline < acquire_deadline;
    auto c = acquire_reader(deadline_first ? op.deadline : acquire_deadline,
                            deadline_first ? errc::query_timeout : errc::pool_exhausted,
                            op.out.ec, op.out.diag);
    if (!c) return true;
    bool is_read = read_on(*c, op);
    release_reader(std::move(c));
    return is_read;
  }

  void reader_loop() {
    detail::engine_thread_mark mark(this);
    while (pending* op = pop_read()) {
      if (run_read(*op))
        finish(op);
      else
        push_write(op);
    }
  }

  pending* pop_read() {
    reader_spinner.spin_while([&] { return rq_size.load(std::memory_order_acquire) == 0; });
    std::unique_lock lk(rmu);
    rcv.wait(lk, [&] { return !rq.empty() || rstop; });
    if (rq.empty()) return nullptr;
    pending* op = rq.front();
    rq.pop_front();
    rq_size.fetch_sub(1, std::memory_order_relaxed);
    return op;
  }

  void push_read(pending* op) {
    {
      std::lock_guard lk(rmu);
      if (!rstop) {
        rq.push_back(op);
        rq_size.fetch_add(1, std::memory_order_release);
        op = nullptr;
      }
    }
    if (op) {
      set_error(op->out, make_error_code(errc::shut_down), "the database has been shut down");
      finish(op);
      return;
    }
    rcv.notify_one();
  }

  // ---- writer -------------------------------------------------------------------------

  void push_write(pending* op) {
    {
      std::lock_guard lk(wmu);
      if (!wq.stopping()) {
        wq.push_for_writer(*op);
        op = nullptr;
      }
    }
    if (op) {
      set_error(op->out, make_error_code(errc::shut_down), "the database has been shut down");
      finish(op);
      return;
    }
    wcv.notify_one();
  }

  // REQUIRES: wmu held, leader false. Commits one group from the front of the queue (plus
  // `own`, the request of a sync caller that leads without queueing), releases leadership, then
  // completes the group's requests. Returns with wmu held again. `on_caller`: the leader is a
  // deferred write's caller, so the group holds only statements, each under the budget.
  void lead_one_group(std::unique_lock<std::mutex>& lk, std::vector<pending*>& group,
                      pending* own, bool on_caller = false) {
    wq.lead();
    wq.take_group(group, std::max<std::size_t>(p.max_group_size, 1) - (own ? 1 : 0), on_caller);
    if (own) group.push_back(own);
    bool log_full = false;
    if (!group.empty()) {
      lk.unlock();
      committing_for = this;
      leading_inline = on_caller;
      if (on_caller) writer->set_budget(clock::time_point::max());  // no waiting for locks
      commit(group);
      if (on_caller) writer->clear_budget();
      leading_inline = false;
      committing_for = nullptr;
      // What SQLite's automatic checkpoint would do here, except on a caller's event loop.
      log_full = writer->wal_frames() >= checkpoint_frames;
      if (log_full && !on_caller) writer->checkpoint();
      lk.lock();
    }
    if (log_full && on_caller) wq.request_checkpoint();
    wq.stop_leading();
    wq.requeue_rehanded(group, [](pending& op) { op.out = outcome{}; });
    hand_over();
    lk.unlock();
    if (on_caller) inline_ops.fetch_add(group.size(), std::memory_order_relaxed);
    for (pending* op : group) finish(op);
    group.clear();
    lk.lock();
  }

  // A deferred write's ticket runs on its caller's thread: lead a group there unless someone
  // else is committing, in which case the writer thread takes the request after them. While a
  // checkpoint is due, the writer thread takes it too, after the checkpoint: commits made on
  // callers' loops never grow the log past one group beyond the checkpoint threshold, however
  // late the writer thread gets to run.
  void run_deferred_write(write_ticket& t) {
    std::unique_lock lk(wmu);
    if (!t.op) return;  // a leader has taken it
    if (!wq.leader() && committing_for != this && !wq.checkpoint_due()) {
      std::vector<pending*> group;
      lead_one_group(lk, group, nullptr, /*on_caller=*/true);
      if (!t.op) return;
    }
    wq.make_due(*static_cast<pending*>(t.op));
    lk.unlock();
    wcv.notify_one();
  }

  // A deferred write's ticket destroyed unrun: the writer thread takes the request.
  void abandon(write_ticket& t) noexcept {
    std::unique_lock lk(wmu);
    if (!t.op) return;
    wq.make_due(*static_cast<pending*>(t.op));
    lk.unlock();
    wcv.notify_one();
  }

  // REQUIRES: wmu held, leadership just released. Wakes whom the queue says may commit next.
  void hand_over() {
    auto w = wq.hand_over();
    if (w.writer_thread) wcv.notify_one();
    if (w.sync_caller) w.sync_caller->cv.notify_one();
  }

  void writer_loop() {
    detail::engine_thread_mark mark(this);
    std::vector<pending*> group;
    sqlite_detail::spin_gate spinner;
    while (true) {
      spinner.spin_while([&] { return wq.writer_due_hint() == 0; });
      std::unique_lock lk(wmu);
      wcv.wait(lk, [&] { return wq.writer_may_run(); });
      if (wq.take_checkpoint()) {
        wq.lead();
        lk.unlock();
        writer->checkpoint();
        lk.lock();
        wq.stop_leading();
        hand_over();
        continue;
      }
      if (wq.empty()) return;  // stopping, and everything queued has been committed
      lead_one_group(lk, group, nullptr);
    }
  }

  // A sync write: commit it ourselves when no one else is committing, else queue and wait for
  // a leader to commit it, leading in turn when leadership frees up while it is still queued.
  void run_write_sync(pending& op) {
    if (committing_for == this) {
      // A transaction body writing through the database instead of its session: the write
      // would queue behind the body that waits for it.
      set_error(op.out, make_error_code(errc::invalid_argument),
                "a write from inside a transaction body must use the body's session, not the "
                "database (it would wait for the transaction it is part of)",
                op.req.sql);
      return;
    }
    std::unique_lock lk(wmu);
    if (wq.stopping()) {
      set_error(op.out, make_error_code(errc::shut_down), "the database has been shut down");
      return;
    }
    std::vector<pending*> group;
    if (!wq.leader()) {
      lead_one_group(lk, group, &op);
      return;
    }
    wq.push_waiting(op);
    while (true) {
      op.cv.wait(lk, [&] { return op.finished || (op.queued && !wq.leader()); });
      if (op.finished) return;
      lead_one_group(lk, group, nullptr);
    }
  }

  bool is_solo(const pending& op) const { return op.path == route::solo; }

  // Commits `ops` in order; each one's outcome is set, none is completed yet.
  void commit(std::vector<pending*>& ops) {
    writer_busy.store(true, std::memory_order_relaxed);
    auto now = clock::now();
    std::vector<pending*> batch;
    batch.reserve(ops.size());
    for (pending* op : ops) {
      if (now >= op->deadline) {
        set_error(op->out, make_error_code(errc::query_timeout),
                  "the deadline passed while the request waited for the writer", op->req.sql);
      } else if (cancel_requested(*op)) {
        set_cancelled(*op);
      } else if (is_solo(*op)) {
        run_batch(batch);
        batch.clear();
        run_solo(*op);
      } else {
        batch.push_back(op);
      }
    }
    run_batch(batch);
    writer_busy.store(false, std::memory_order_relaxed);
  }

  // Runs one request's statements on the writer (inside whatever transaction is open).
  void run_on_writer(pending& op) {
    outcome& out = op.out;
    writer->set_deadline(op.deadline);
    writer->set_cancellation(op.req.cancel.get());
    if (leading_inline) writer->set_budget(clock::now() + p.inline_budget);
    switch (op.req.kind) {
      case request_kind::execute:
      case request_kind::fetch_one:
        out.ec = writer->run(op.req.sql, op.req.args, max_rows_of(op.req), out.res, out.diag);
        break;
      case request_kind::script:
        out.ec = writer->run_script(op.req.sql, out.diag);
        break;
      case request_kind::many:
        for (const entity::params& args : op.req.batch) {
          // Each statement may be too short for the progress handler to see the request.
          if (writer->cancel_requested()) {
            set_error(out, make_error_code(errc::cancelled),
                      "the caller cancelled the request; its statements were rolled back",
                      op.req.sql);
            break;
          }
          out.ec = writer->run(op.req.sql, args, 0, out.res, out.diag);
          if (out.ec) break;
        }
        break;
      case request_kind::transaction:
        try {
          if (!op.req.body) throw error(errc::invalid_argument, {"the transaction body is empty", {}});
          op.req.body(*writer);
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
    writer->set_cancellation(nullptr);
    writer->set_deadline(clock::time_point::max());
    if (leading_inline) {
      // Interrupted at the budget, or another process holds the lock: the writer thread runs
      // it again (what it did was rolled back with its savepoint or its transaction).
      if (writer->over_budget() || out.ec == condition::busy) op.rehand = true;
      writer->set_budget(clock::time_point::max());
    }
  }

  // A fixed control statement on the writer; never subject to a request's deadline.
  error_code control(std::string_view sql, diagnostics& diag) {
    writer->set_deadline(clock::time_point::max());
    return writer->exec(sql, diag);
  }

  // BEGIN IMMEDIATE takes the write lock now, so no statement inside can fail with
  // SQLITE_BUSY later. Another process may hold it: the writer waits for it until `deadline`
  // (connection::wait_for_lock), except on a caller's thread, which does not wait.
  error_code begin(clock::time_point deadline, diagnostics& diag) {
    diag.clear();
    writer->set_deadline(deadline);
    error_code ec = writer->exec("BEGIN IMMEDIATE", diag);
    writer->set_deadline(clock::time_point::max());
    return ec;
  }

  // A request run by itself, outside a group: a statement that must find no transaction open
  // (a script, VACUUM), or a lone statement that commits by itself. A statement that finds
  // another process's lock waits for it inside the connection, up to the request's deadline.
  void run_solo(pending& op) {
    op.out = outcome{};
    run_on_writer(op);
    if (!writer->autocommit()) {
      diagnostics ignored;
      control("ROLLBACK", ignored);
      if (!op.out.ec)
        set_error(op.out, make_error_code(errc::transaction_open),
                  "the statements left a transaction open, so it was rolled back; "
                  "use transaction() or end the script with COMMIT",
                  op.req.sql);
    }
  }

  void run_batch(std::vector<pending*>& batch) {
    if (batch.empty()) return;
    if (batch.size() == 1 && !leading_inline &&
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
          op->rehand = leading_inline && ec == condition::busy;
        }
        return;
      }
      bool again = false;
      for (std::size_t i = 0; i < batch.size() && !again; ++i) {
        pending& op = *batch[i];
        if (op.out.ec) continue;  // failed in an earlier attempt
        if (clock::now() >= op.deadline) {
          set_error(op.out, make_error_code(errc::query_timeout),
                    "the deadline passed while the request waited in its group", op.req.sql);
          continue;
        }
        if (cancel_requested(op)) {
          set_cancelled(op);
          continue;
        }
        if (savepoints) {
          if (error_code ec = control("SAVEPOINT entity_op", op.out.diag)) {
            op.out.ec = ec;
            continue;
          }
        }
        run_on_writer(op);
        if (!op.out.ec) {
          if (savepoints) control("RELEASE entity_op", diag);
          continue;
        }
        if (writer->autocommit()) {
          for (std::size_t j = 0; j < i; ++j)
            if (!batch[j]->out.ec) batch[j]->out = outcome{};
          again = true;
          continue;
        }
        if (savepoints) {
          diagnostics ignored;
          control("ROLLBACK TO entity_op", ignored);
          control("RELEASE entity_op", ignored);
        } else {
          diagnostics ignored;
          control("ROLLBACK", ignored);
        }
      }
      if (!again) break;
    }
    if (writer->autocommit()) return;  // nothing left open (everything was rolled back)
    if (!savepoints && batch[0]->out.ec) return;  // rolled back above
    if (error_code ec = control("COMMIT", diag)) {
      diagnostics ignored;
      if (!writer->autocommit()) control("ROLLBACK", ignored);
      for (pending* op : batch) {
        if (op->out.ec) continue;
        if (leading_inline && ec == condition::busy) {
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
      group_commits.fetch_add(1, std::memory_order_relaxed);
      grouped_ops.fetch_add(committed, std::memory_order_relaxed);
    }
  }

  // ---- entry points -------------------------------------------------------------------

  clock::time_point deadline_of(const request& r, clock::time_point now) const {
    return detail::deadline_after(now, r.timeout.value_or(p.query_timeout));
  }

  // REQUIRES: op.path set. True (with the error in op.out) for a request refused before it is
  // queued anywhere: the engine is not running, or the request asks for what cannot be done
  // while the engine is open and would otherwise wait for locks until its deadline.
  bool refused(pending& op) const {
    if (!life.running()) {
      op.out.ec = life.not_running(op.out.diag);
      return true;
    }
    if (op.path != route::solo) return false;
    char buf[17];
    std::string_view mode = sqlite_detail::journal_mode_requested(op.req.sql, buf);
    if (mode.empty() || mode == journal_now) return false;
    set_error(op.out, make_error_code(errc::invalid_argument),
              "the journal mode cannot change while the database is open (it is '" +
                  journal_now + "'): the change needs the file to itself, and the engine keeps "
                  "its reader connections open; choose it when opening (sqlite_params::journal)",
              op.req.sql);
    return true;
  }

  pending* make_pending(request req, completion done) {
    auto* op = new pending;
    op->req = std::move(req);
    op->done = std::move(done);
    op->submitted = clock::now();
    op->deadline = deadline_of(op->req, op->submitted);
    op->path = route_of(op->req);
    op->statement = runs_inline(op->req) && op->path != route::solo;
    return op;
  }

  void submit(request req, completion done) {
    pending* op = make_pending(std::move(req), std::move(done));
    if (refused(*op)) return finish(op);
    if (op->path == route::read)
      push_read(op);
    else
      push_write(op);
  }

  std::unique_ptr<deferred_work> defer(request req, completion done);

  outcome run(request req) {
    pending op;
    op.req = std::move(req);
    op.submitted = clock::now();
    op.deadline = deadline_of(op.req, op.submitted);
    op.path = route_of(op.req);
    op.statement = runs_inline(op.req) && op.path != route::solo;
    if (refused(op)) return std::move(op.out);
    if (op.path == route::read) {
      if (run_read(op)) {
        finish(&op);
        return std::move(op.out);
      }
    }
    run_write_sync(op);
    return std::move(op.out);
  }

  connection_lease acquire(std::optional<std::chrono::milliseconds> timeout, error_code& ec,
                           diagnostics& diag) {
    if (!life.running()) {
      ec = life.not_running(diag);
      return {};
    }
    auto c = acquire_reader(detail::deadline_after(clock::now(), timeout.value_or(p.acquire_timeout)),
                            errc::pool_exhausted, ec, diag);
    if (!c) return {};
    c->set_per_query_timeout(p.query_timeout);
    return connection_lease(std::move(c), shared_from_this());
  }

  infrastructure_stats stats() {
    infrastructure_stats s;
    s.pool_size = p.pool_size + 1;
    {
      std::lock_guard lk(pmu);
      s.open_connections = open_readers;
      s.idle_connections = idle.size();
    }
    // The lifecycle alone says whether the writer is open: `writer` itself is set and reset
    // by startup() and shutdown() without a lock that stats() could take.
    if (life.running()) {
      s.open_connections += 1;
      if (!writer_busy.load(std::memory_order_relaxed)) s.idle_connections += 1;
    }
    s.busy_connections = s.open_connections - s.idle_connections;
    s.queued_operations = wq.size_hint() + rq_size.load();
    counters.fill(s);
    s.group_commits = group_commits.load();
    s.grouped_operations = grouped_ops.load();
    s.mean_group_size =
        s.group_commits ? static_cast<double>(s.grouped_operations) / s.group_commits : 0.0;
    s.inline_operations = inline_ops.load();
    return s;
  }
};

std::unique_ptr<deferred_work> sqlite_infrastructure::impl::defer(request req, completion done) {
  if (p.inline_budget.count() <= 0 || !runs_inline(req) ||
      !life.running()) {
    submit(std::move(req), std::move(done));
    return nullptr;
  }
  pending* op = make_pending(std::move(req), std::move(done));
  if (refused(*op)) {
    finish(op);
    return nullptr;
  }
  if (op->path == route::read) return std::make_unique<read_ticket>(shared_from_this(), op);
  if (op->path != route::write || !inline_writes) {
    push_write(op);
    return nullptr;
  }
  auto t = std::make_unique<write_ticket>(shared_from_this());
  {
    std::lock_guard lk(wmu);
    if (!wq.stopping()) {
      wq.push_deferred(*op, &t->op);
      return t;
    }
  }
  set_error(op->out, make_error_code(errc::shut_down), "the database has been shut down");
  finish(op);
  return nullptr;
}

namespace {

void read_ticket::run() noexcept { self->run_deferred_read(std::exchange(op, nullptr)); }
read_ticket::~read_ticket() {
  if (op) self->push_read(op);
}
void write_ticket::run() noexcept { self->run_deferred_write(*this); }
write_ticket::~write_ticket() { self->abandon(*this); }

}  // namespace

sqlite_infrastructure::sqlite_infrastructure(sqlite_params settings)
    : impl_(std::make_shared<impl>(std::move(settings))) {}

sqlite_infrastructure::~sqlite_infrastructure() { shutdown(); }

void sqlite_infrastructure::startup() { impl_->startup(); }
void sqlite_infrastructure::shutdown() {
  detail::shut_down(impl_);  // from one of its own threads too
}
bool sqlite_infrastructure::running() const noexcept {
  return impl_->life.running();
}
void sqlite_infrastructure::submit(request req, completion done) {
  impl_->submit(std::move(req), std::move(done));
}
std::unique_ptr<deferred_work> sqlite_infrastructure::defer(request req, completion done) {
  return impl_->defer(std::move(req), std::move(done));
}
outcome sqlite_infrastructure::run(request req) { return impl_->run(std::move(req)); }
connection_lease sqlite_infrastructure::acquire(std::optional<std::chrono::milliseconds> t,
                                                error_code& ec, diagnostics& diag) {
  return impl_->acquire(t, ec, diag);
}
infrastructure_stats sqlite_infrastructure::stats() const { return impl_->stats(); }
const sqlite_params& sqlite_infrastructure::params() const noexcept { return impl_->p; }

}  // namespace entity
