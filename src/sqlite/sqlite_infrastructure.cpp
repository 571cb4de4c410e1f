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
// coroutines of its loop: they still commit together). The writes a thread defers while its
// ticket waits to run ride on that ticket instead of posting tickets of their own (see
// writer_queue.hpp). Both run under the inline budget: a
// statement that outlasts it is interrupted and its request handed to the engine's threads,
// which run it again from the start.
//
// Cancellation (request::cancel) is polled, not signalled: a request checks it where it would
// check its deadline (before it starts, when a group reaches it) and the progress handler checks
// it while a statement runs, so a cancelled statement stops exactly as one past its deadline
// does, rolled back alone, wherever it runs. No wake-up is registered.
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <thread>
#include <vector>

#include "common/engine_core.hpp"
#include "common/thread_safety.hpp"
#include "entity/sqlite.hpp"
#include "sqlite/classify.hpp"
#include "sqlite/connection.hpp"
#include "sqlite/group_commit.hpp"
#include "sqlite/log_watch.hpp"
#include "sqlite/overrun_memory.hpp"
#include "sqlite/pending.hpp"
#include "sqlite/spin.hpp"

namespace entity {

using sqlite_detail::cancel_requested;
using sqlite_detail::clock;
using sqlite_detail::connection;
using sqlite_detail::max_rows_of;
using sqlite_detail::overrun_memory;
using sqlite_detail::pending;
using sqlite_detail::queued_write;
using sqlite_detail::route;
using sqlite_detail::route_of;
using sqlite_detail::runs_inline;
using sqlite_detail::set_cancelled;
using sqlite_detail::set_error;

namespace {

std::atomic<unsigned> memdb_counter{0};

// The engine whose writer this thread is committing for (a transaction body runs then).
thread_local const void* committing_for = nullptr;

}  // namespace

struct sqlite_infrastructure::impl final : connection_lease::owner,
                                           std::enable_shared_from_this<impl> {
  // A deferred write: queued in the writer queue from defer() on. `op` is null once a leader has
  // taken the request or it is due to the writer thread. The queue nulls it through the pointer
  // it keeps (queued_write::ticket): `op` is under self->wmu, like the queue, but is not
  // annotated, since the analysis cannot tell that `self` is the engine whose wmu is held.
  struct write_ticket final : deferred_work {
    explicit write_ticket(std::shared_ptr<impl> s) : self(std::move(s)) {}
    ~write_ticket() override;
    void run() noexcept override;

    std::shared_ptr<impl> self;
    queued_write* op = nullptr;
    std::uint64_t carrier = 0;  // its number as a carrier of riders (writer_queue::push_carrier)
    bool ran = false;           // run() left nothing behind for the destructor
  };

  // A deferred read: not queued anywhere until run() or the destructor.
  struct read_ticket final : deferred_work {
    read_ticket(std::shared_ptr<impl> s, std::unique_ptr<pending> o)
        : self(std::move(s)), op(std::move(o)) {}
    ~read_ticket() override;
    void run() noexcept override;

    std::shared_ptr<impl> self;
    std::unique_ptr<pending> op;
  };

  explicit impl(sqlite_params settings)
      : p(std::move(settings)),
        // A commit that does not wait for the disk is short enough for a caller's thread.
        inline_writes(p.path == ":memory:" || (p.journal == journal_mode::wal &&
                                               (p.synchronous == synchronous_mode::normal ||
                                                p.synchronous == synchronous_mode::off))) {}

  sqlite_params p;
  const bool inline_writes;
  std::string target;
  bool uri = false;
  // The journal mode the database runs in, as SQLite names it ("wal"; "memory" in memory):
  // set at startup, read-only after.
  std::string journal_now;
  // The write-ahead log and its index as the writer opened them: set at startup, then read by
  // the leader only. Once one is gone or replaced, log_lost is set (by the leader, after it has
  // written lost_log) and the engine refuses every request.
  sqlite_detail::log_watch logs;
  std::string lost_log;
  std::atomic<bool> log_lost{false};

  detail::mutex lifecycle_mu;  // startup and shutdown, one at a time
  detail::lifecycle life;

  // The writer: its connection is used only by the current leader (leadership is the writer
  // queue's, taken and given up under wmu; the connection itself is used without the lock).
  std::unique_ptr<connection> writer;
  detail::mutex wmu;
  std::condition_variable wcv;
  sqlite_detail::writer_queue<pending> wq ENTITY_GUARDED_BY(wmu);
  // Used by the current leader only.
  sqlite_detail::group_commit committer{p.inline_budget};
  // SQLite's own threshold for its automatic checkpoint.
  static constexpr int checkpoint_frames = 1000;
  std::thread writer_thread ENTITY_GUARDED_BY(lifecycle_mu);

  // Async reads wait here for a reader thread.
  detail::mutex rmu;
  std::condition_variable rcv;
  std::deque<std::unique_ptr<pending>> rq ENTITY_GUARDED_BY(rmu);
  bool rstop ENTITY_GUARDED_BY(rmu) = false;
  std::atomic<std::size_t> rq_size{0};
  std::vector<std::thread> reader_threads ENTITY_GUARDED_BY(lifecycle_mu);
  sqlite_detail::spin_gate reader_spinner;

  // Reader connections.
  detail::mutex pmu;
  std::condition_variable pcv;
  std::vector<std::unique_ptr<connection>> idle ENTITY_GUARDED_BY(pmu);
  std::size_t open_readers ENTITY_GUARDED_BY(pmu) = 0;
  bool pool_closed ENTITY_GUARDED_BY(pmu) = false;

  // Counters: the engine's own, beside every request's (counters).
  detail::request_counters counters;
  std::atomic<std::uint64_t> inline_ops{0};
  // The deferred statements that lately ran past the inline budget (see overrun_memory).
  sqlite_detail::overrun_memory overruns;
  std::atomic<bool> writer_busy{false};

  // ---- lifecycle ----------------------------------------------------------------------

  void startup() {
    detail::lock_guard lk(lifecycle_mu);
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
  void open_connections() ENTITY_REQUIRES(lifecycle_mu) {
    if (p.path.empty()) throw error(errc::invalid_argument, {"the database path is empty", {}});
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
          throw error(errc::open_failed,
                      {"cannot create folder '" + parent.string() + "': " + fec.message(), {}});
      }
    }
    error_code ec;
    diagnostics diag;
    writer = connection::open(target, uri, connection::role::writer, p, ec, diag);
    if (!writer) throw error(ec, diag);
    result mode;
    if (!writer->run("PRAGMA journal_mode", {}, 1, mode, diag) && !mode.rows.empty())
      journal_now = mode.rows[0].get<std::string>(0);
    if (!uri && journal_now == "wal") {
      // Absolute: a later chdir of the process must not look like a deleted file.
      std::error_code fec;
      std::string base = std::filesystem::absolute(target, fec).string();
      if (!fec) {
        logs.watch(base + "-wal");
        logs.watch(base + "-shm");
      }
    }
    std::size_t readers = std::min(p.pool_size, p.min_connections > 0 ? p.min_connections - 1 : 0);
    // Opened aside and pooled under pmu: stats() may read the pool while the engine starts.
    std::vector<std::unique_ptr<connection>> opened;
    for (std::size_t i = 0; i < readers; ++i) {
      auto c = connection::open(target, uri, connection::role::reader, p, ec, diag);
      if (!c) {
        opened.clear();
        writer.reset();
        throw error(ec, diag);
      }
      opened.push_back(std::move(c));
    }
    detail::lock_guard lk(pmu);
    for (auto& c : opened) idle.push_back(std::move(c));
    open_readers = idle.size();
  }

  void shutdown() {
    detail::lock_guard lk(lifecycle_mu);
    if (!life.begin_shutdown()) return;
    {
      detail::lock_guard w(wmu);
      wq.stop();
    }
    wcv.notify_all();
    if (writer_thread.joinable()) writer_thread.join();
    {
      detail::lock_guard r(rmu);
      rstop = true;
    }
    rcv.notify_all();
    for (auto& t : reader_threads) t.join();
    reader_threads.clear();
    writer.reset();
    detail::lock_guard pl(pmu);
    pool_closed = true;
    open_readers -= idle.size();
    idle.clear();
  }

  // ---- completion ---------------------------------------------------------------------

  // Ownership: an async request (one with a completion) is owned by a unique_ptr from
  // make_pending on: the read queue's, a ticket's, a caller's of push_*. The writer queue holds
  // sync requests (on their callers' stacks) beside async ones, so it holds plain pointers: an
  // async write is released into it by push_write / defer and adopted back here.
  void finish(std::unique_ptr<pending> op) { finish(op.release()); }
  void finish(pending* op) {
    if (op->done) {
      std::unique_ptr<pending> owned(op);
      completion done = std::move(op->done);
      outcome out = std::move(op->out);
      const clock::time_point submitted = op->submitted;
      owned.reset();
      detail::complete(this, counters, submitted, std::move(done), std::move(out));
      return;
    }
    counters.finished(op->out.ec, op->submitted);
    if (op->waits) {
      // Notified under the lock: once it is released the waiter may return and destroy `op`.
      detail::lock_guard lk(wmu);
      op->finished = true;
      op->cv.notify_one();
    }
  }

  // ---- reader pool --------------------------------------------------------------------

  // Borrows a reader, waiting until `wait_until`; when that passes, fails with `expired`.
  std::unique_ptr<connection> acquire_reader(clock::time_point wait_until, errc expired,
                                             error_code& ec, diagnostics& diag) {
    detail::unique_lock lk(pmu);
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
      if (pcv.wait_until(lk.native(), wait_until) == std::cv_status::timeout && idle.empty() &&
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
    detail::lock_guard lk(pmu);
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
      c->run(connection::control::rollback, ignored);
    }
    release_reader(std::move(c));
  }

  // Runs a read-routed request on `c`. Returns false when the statement turned out to write:
  // the caller must send it to the writer.
  bool read_on(connection& c, pending& op) {
    c.set_deadline(op.deadline);
    c.set_cancellation(op.req.cancel.get());
    bool needs_writer = false;
    op.out.ec = c.run(op.req.sql, op.req.args, max_rows_of(op.req), op.out.res, op.out.diag, true,
                      &needs_writer);
    c.set_cancellation(nullptr);
    c.set_deadline(clock::time_point::max());
    return !needs_writer;
  }

  // An idle reader, or null: never waits and never opens one.
  std::unique_ptr<connection> idle_reader() {
    detail::lock_guard lk(pmu);
    if (pool_closed || idle.empty()) return nullptr;
    auto c = std::move(idle.back());
    idle.pop_back();
    return c;
  }

  // A deferred read, on its caller's thread: on an idle reader within the budget, or else on
  // the reader threads, which also report any error the engine's state calls for.
  void run_deferred_read(std::unique_ptr<pending> op) {
    if (cancel_requested(*op)) {
      set_cancelled(*op);
      return finish(std::move(op));
    }
    std::unique_ptr<connection> c;
    if (clock::now() < op->deadline) c = idle_reader();
    if (!c) return push_read(std::move(op));
    c->set_budget(clock::now() + p.inline_budget);
    bool is_read = read_on(*c, *op);
    op->over_budget = c->over_budget();
    remember_budget(*op);
    bool over = op->over_budget || op->out.ec == condition::busy;
    c->clear_budget();
    release_reader(std::move(c));
    if (over || !is_read) {
      op->out = outcome{};
      return over ? push_read(std::move(op)) : push_write(std::move(op));
    }
    inline_ops.fetch_add(1, std::memory_order_relaxed);
    finish(std::move(op));
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
                            deadline_first ? errc::query_timeout : errc::pool_exhausted, op.out.ec,
                            op.out.diag);
    if (!c) return true;
    bool is_read = read_on(*c, op);
    release_reader(std::move(c));
    return is_read;
  }

  void reader_loop() {
    detail::engine_thread_mark mark(this);
    while (std::unique_ptr<pending> op = pop_read()) {
      if (run_read(*op))
        finish(std::move(op));
      else
        push_write(std::move(op));
    }
  }

  std::unique_ptr<pending> pop_read() {
    reader_spinner.spin_while([&] { return rq_size.load(std::memory_order_acquire) == 0; });
    detail::unique_lock lk(rmu);
    rcv.wait(lk.native(), [&]() ENTITY_REQUIRES(rmu) { return !rq.empty() || rstop; });
    if (rq.empty()) return nullptr;
    std::unique_ptr<pending> op = std::move(rq.front());
    rq.pop_front();
    rq_size.fetch_sub(1, std::memory_order_relaxed);
    return op;
  }

  void push_read(std::unique_ptr<pending> op) {
    {
      detail::lock_guard lk(rmu);
      if (!rstop) {
        rq.push_back(std::move(op));
        rq_size.fetch_add(1, std::memory_order_release);
      }
    }
    if (op) {
      set_error(op->out, make_error_code(errc::shut_down), "the database has been shut down");
      finish(std::move(op));
      return;
    }
    rcv.notify_one();
  }

  // ---- writer -------------------------------------------------------------------------

  void push_write(std::unique_ptr<pending> op) {
    {
      detail::lock_guard lk(wmu);
      if (!wq.stopping()) wq.push_for_writer(*op.release());
    }
    if (op) {
      set_error(op->out, make_error_code(errc::shut_down), "the database has been shut down");
      finish(std::move(op));
      return;
    }
    wcv.notify_one();
  }

  // REQUIRES: leader false; `lk` holds wmu. Commits one group from the front of the queue (plus
  // `own`, the request of a sync caller that leads without queueing), releases leadership, then
  // completes the group's requests. Returns with wmu held again. `on_caller`: the leader is a
  // deferred write's caller, so the group holds only statements, each under the budget.
  void lead_one_group(detail::unique_lock& lk, std::vector<pending*>& group, pending* own,
                      bool on_caller = false) ENTITY_REQUIRES(wmu) {
    wq.lead();
    wq.take_group(group, std::max<std::size_t>(p.max_group_size, 1) - (own ? 1 : 0), on_caller);
    if (own) group.push_back(own);
    bool log_full = false;
    if (!group.empty()) {
      lk.unlock(wmu);
      committing_for = this;
      writer_busy.store(true, std::memory_order_relaxed);
      committer.commit(*writer, group, on_caller);
      writer_busy.store(false, std::memory_order_relaxed);
      committing_for = nullptr;
      if (on_caller)
        for (const pending* op : group) remember_budget(*op);
      check_log(group);
      // What SQLite's automatic checkpoint would do here, except on a caller's event loop.
      log_full = writer->wal_frames() >= checkpoint_frames;
      if (log_full && !on_caller) writer->checkpoint();
      lk.lock(wmu);
    }
    if (log_full && on_caller) wq.request_checkpoint();
    wq.stop_leading();
    wq.requeue_rehanded(group, [](pending& op) { op.out = outcome{}; });
    hand_over();
    lk.unlock(wmu);
    if (on_caller) inline_ops.fetch_add(group.size(), std::memory_order_relaxed);
    for (pending* op : group) finish(op);
    group.clear();
    lk.lock(wmu);
  }

  // What a deferred request's run on its caller's thread says of its statement: a read's
  // (run_deferred_read) or a write's in a group led there (the group commit sets over_budget
  // and rehand).
  void remember_budget(const pending& op) noexcept {
    if (op.sql_hash == 0) return;  // not deferred
    if (op.over_budget)
      overruns.overran(op.sql_hash);
    else if (!op.rehand)
      overruns.fit(op.sql_hash);
  }

  // After a commit, before it is acknowledged: a write-ahead log deleted or replaced under
  // the process took the group's writes where no other process will see them, and where they
  // may vanish when this one ends. The group's requests fail instead, and so does every later one.
  void check_log(std::vector<pending*>& group) {
    if (!logs.active()) return;
    if (!log_lost.load(std::memory_order_relaxed)) {
      std::string gone = logs.changed();
      if (gone.empty()) return;
      lost_log = std::move(gone);
      log_lost.store(true, std::memory_order_release);
    }
    for (pending* op : group)
      if (!op->out.ec && !op->rehand) fail_lost_log(op->out);
  }

  // REQUIRES: log_lost is set.
  void fail_lost_log(outcome& out) const {
    out = outcome{};
    out.ec = make_sqlite_error(SQLITE_IOERR);
    out.diag.message =
        "the write-ahead log '" + lost_log +
        "' was deleted or replaced while the database was open: what was committed into it "
        "since is not in the database file, other processes cannot see it, and it may be lost "
        "when this process ends; nothing more is read or written here. Close the database, "
        "then run entitydb check on it";
  }

  // A deferred write's ticket runs on its caller's thread: lead a group there unless someone
  // else is committing, in which case the writer thread takes the request after them. While a
  // checkpoint is due, the writer thread takes it too, after the checkpoint: commits made on
  // callers' loops never grow the log past one group beyond the checkpoint threshold, however
  // late the writer thread gets to run.
  // Its riders too: what its group does not take is due to the writer thread.
  void run_deferred_write(write_ticket& t) {
    detail::unique_lock lk(wmu);
    wq.close_carrier(&t.op);
    if (t.op && !wq.leader() && committing_for != this && !wq.checkpoint_due()) {
      std::vector<pending*> group;
      lead_one_group(lk, group, nullptr, /*on_caller=*/true);
    }
    if (hand_leftovers_to_writer(t)) {
      lk.unlock();
      wcv.notify_one();
    }
  }

  // A deferred write's ticket destroyed unrun: the writer thread takes the request and its
  // riders.
  void abandon(write_ticket& t) noexcept {
    detail::unique_lock lk(wmu);
    wq.close_carrier(&t.op);
    if (hand_leftovers_to_writer(t)) {
      lk.unlock();
      wcv.notify_one();
    }
  }

  // REQUIRES: `t` closed. Its request, if no leader took it, and the riders left are due to the
  // writer thread. True when there was one: the caller wakes the writer thread, once it has
  // released wmu.
  bool hand_leftovers_to_writer(write_ticket& t) ENTITY_REQUIRES(wmu) {
    bool due = t.op != nullptr;
    if (t.op) wq.make_due(*static_cast<pending*>(t.op));
    if (wq.release_riders(t.carrier)) due = true;
    return due;
  }

  // REQUIRES: leadership just released. Wakes whom the queue says may commit next.
  void hand_over() ENTITY_REQUIRES(wmu) {
    auto w = wq.hand_over();
    if (w.writer_thread) wcv.notify_one();
    if (w.sync_caller) w.sync_caller->cv.notify_one();
  }

  // The writer queue's counts kept in atomics, to be read without wmu (writer_queue's "read
  // without the lock"): the analysis cannot tell them from the queue's guarded state.
  std::size_t writer_due_hint() const ENTITY_NO_THREAD_SAFETY_ANALYSIS {
    return wq.writer_due_hint();
  }
  std::size_t queued_writes_hint() const ENTITY_NO_THREAD_SAFETY_ANALYSIS { return wq.size_hint(); }

  void writer_loop() {
    detail::engine_thread_mark mark(this);
    std::vector<pending*> group;
    sqlite_detail::spin_gate spinner;
    while (true) {
      spinner.spin_while([&] { return writer_due_hint() == 0; });
      detail::unique_lock lk(wmu);
      wcv.wait(lk.native(), [&]() ENTITY_REQUIRES(wmu) { return wq.writer_may_run(); });
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
    detail::unique_lock lk(wmu);
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
      op.cv.wait(lk.native(),
                 [&]() ENTITY_REQUIRES(wmu) { return op.finished || (op.queued && !wq.leader()); });
      if (op.finished) return;
      lead_one_group(lk, group, nullptr);
    }
  }

  // ---- entry points -------------------------------------------------------------------

  clock::time_point deadline_of(const request& r, clock::time_point now) const {
    return detail::deadline_of(r, now, p.query_timeout);
  }

  // REQUIRES: op.path set. True (with the error in op.out) for a request refused before it is
  // queued anywhere: the engine is not running, or the request asks for what cannot be done
  // while the engine is open and would otherwise wait for locks until its deadline.
  bool refused(pending& op) const {
    if (!life.running()) {
      op.out.ec = life.not_running(op.out.diag);
      return true;
    }
    if (log_lost.load(std::memory_order_acquire)) {
      fail_lost_log(op.out);
      return true;
    }
    if (op.path != route::solo) return false;
    char buf[17];
    std::string_view mode = sqlite_detail::journal_mode_requested(op.req.sql, buf);
    if (mode.empty() || mode == journal_now) return false;
    set_error(op.out, make_error_code(errc::invalid_argument),
              "the journal mode cannot change while the database is open (it is '" + journal_now +
                  "'): the change needs the file to itself, and the engine keeps "
                  "its reader connections open; choose it when opening (sqlite_params::journal)",
              op.req.sql);
    return true;
  }

  // A request as it arrives: timed, routed once.
  void prepare(pending& op, request req) const {
    op.req = std::move(req);
    op.submitted = clock::now();
    op.deadline = deadline_of(op.req, op.submitted);
    op.path = route_of(op.req);
    op.statement = runs_inline(op.req) && op.path != route::solo;
  }

  std::unique_ptr<pending> make_pending(request req, completion done) {
    auto op = std::make_unique<pending>();
    prepare(*op, std::move(req));
    op->done = std::move(done);
    return op;
  }

  void submit(request req, completion done) {
    std::unique_ptr<pending> op = make_pending(std::move(req), std::move(done));
    if (refused(*op)) return finish(std::move(op));
    if (op->path == route::read)
      push_read(std::move(op));
    else
      push_write(std::move(op));
  }

  std::unique_ptr<deferred_work> defer(request req, completion done);

  outcome run(request req) {
    pending op;
    prepare(op, std::move(req));
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
    if (log_lost.load(std::memory_order_acquire)) {
      outcome out;
      fail_lost_log(out);
      ec = out.ec;
      diag = std::move(out.diag);
      return {};
    }
    auto c =
        acquire_reader(detail::deadline_after(clock::now(), timeout.value_or(p.acquire_timeout)),
                       errc::pool_exhausted, ec, diag);
    if (!c) return {};
    c->set_per_query_timeout(p.query_timeout);
    return connection_lease(std::move(c), shared_from_this());
  }

  infrastructure_stats stats() {
    infrastructure_stats s;
    s.pool_size = p.pool_size + 1;
    {
      detail::lock_guard lk(pmu);
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
    s.queued_operations = queued_writes_hint() + rq_size.load();
    counters.fill(s);
    s.group_commits = committer.groups();
    s.grouped_operations = committer.grouped();
    s.mean_group_size =
        s.group_commits ? static_cast<double>(s.grouped_operations) / s.group_commits : 0.0;
    s.inline_operations = inline_ops.load();
    return s;
  }
};

std::unique_ptr<deferred_work> sqlite_infrastructure::impl::defer(request req, completion done) {
  // A statement that ran past the budget last time goes straight to the engine's threads (its
  // SQL hashed only for a request that could run inline).
  std::uint64_t hash = 0;
  if (p.inline_budget.count() <= 0 || !runs_inline(req) || !life.running() ||
      overruns.expect_overrun(hash = overrun_memory::hash_of(req.sql))) {
    submit(std::move(req), std::move(done));
    return nullptr;
  }
  std::unique_ptr<pending> op = make_pending(std::move(req), std::move(done));
  op->sql_hash = hash;
  if (refused(*op)) {
    finish(std::move(op));
    return nullptr;
  }
  if (op->path == route::read)
    return std::make_unique<read_ticket>(shared_from_this(), std::move(op));
  if (op->path != route::write || !inline_writes) {
    push_write(std::move(op));
    return nullptr;
  }
  const std::thread::id thread = std::this_thread::get_id();
  {
    detail::lock_guard lk(wmu);
    if (!wq.stopping()) {
      if (wq.push_rider(*op, thread)) {
        op.release();  // a ticket of this thread's, not yet run, carries it
        return nullptr;
      }
      auto t = std::make_unique<write_ticket>(shared_from_this());
      t->carrier = wq.push_carrier(*op.release(), &t->op, thread);
      return t;
    }
  }
  set_error(op->out, make_error_code(errc::shut_down), "the database has been shut down");
  finish(std::move(op));
  return nullptr;
}

void sqlite_infrastructure::impl::read_ticket::run() noexcept {
  self->run_deferred_read(std::move(op));
}
sqlite_infrastructure::impl::read_ticket::~read_ticket() {
  if (op) self->push_read(std::move(op));
}
void sqlite_infrastructure::impl::write_ticket::run() noexcept {
  self->run_deferred_write(*this);
  ran = true;
}
sqlite_infrastructure::impl::write_ticket::~write_ticket() {
  if (!ran) self->abandon(*this);
}

sqlite_infrastructure::sqlite_infrastructure(sqlite_params settings)
    : impl_(std::make_shared<impl>(std::move(settings))) {}

sqlite_infrastructure::~sqlite_infrastructure() { shutdown(); }

void sqlite_infrastructure::startup() { impl_->startup(); }
void sqlite_infrastructure::shutdown() {
  detail::shut_down(impl_);  // from one of its own threads too
}
bool sqlite_infrastructure::running() const noexcept { return impl_->life.running(); }
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
