// The PostgreSQL engine: a pool of libpq connections in non-blocking mode, each socket watched
// by asio on one io thread. A request leases a connection, sends its statement(s), and waits
// for readiness without holding a thread; transaction bodies, cancel requests and connects are
// blocking work and run on worker threads.
//
// A caller's cancellation (request::cancel) wakes the io thread, which treats it as the deadline:
// a request waiting for a connection leaves the queue, a running statement gets a cancel
// request on the server, a transaction body is cancelled on the server and refused its next
// statement and its COMMIT; each completes with errc::cancelled.
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <condition_variable>
#include <deque>
#include <future>
#include <list>
#include <mutex>
#include <thread>

#include "common/engine_core.hpp"
#include "common/thread_safety.hpp"
#include "entity/postgres.hpp"
#include "postgres/connection.hpp"
#include "postgres/placeholders.hpp"

namespace entity {
namespace asio = boost::asio;
using namespace postgres_detail;
using clock_type = std::chrono::steady_clock;

namespace {

// How long a cancel request may take to stop a statement. Past it the server is taken not to
// answer: its backend is told to terminate (from a connection of its own), the connection is
// closed and the request ends. A deadline's request so returns within the deadline and this.
constexpr std::chrono::milliseconds cancel_grace{1000};

std::chrono::milliseconds ms_until(clock_type::time_point t) {
  auto left = t - clock_type::now();
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(left);
  return std::max(ms, std::chrono::milliseconds(1));
}

// One request on the io thread, with what its deadline timer needs to see.
struct op_state {
  op_state(asio::io_context& io, request r, completion d, clock_type::time_point submitted_at,
           clock_type::time_point due)
      : req(std::move(r)), done(std::move(d)), submitted(submitted_at), deadline(due), timer(io) {}
  request req;
  completion done;
  clock_type::time_point submitted;
  clock_type::time_point deadline;
  asio::steady_timer timer;
  pg_conn* conn = nullptr;
  bool started = false;     ///< run_op has begun
  bool finished = false;    ///< the statement(s) and their results are done
  bool timed_out = false;   ///< the deadline passed while the statement ran
  bool cancelled = false;   ///< the caller cancelled the request while the statement ran
  bool terminated = false;  ///< the cancel went unanswered: the backend was told to terminate
  int holds = 1;            ///< the request itself, plus a cancel request in flight
};

// A transaction body's request. The body runs on a worker; a cancel request for its connection
// runs on another, and the connection goes back only once none is in flight.
struct tx_state {
  tx_state(request r, completion d, clock_type::time_point submitted_at, clock_type::time_point due)
      : req(std::move(r)), done(std::move(d)), submitted(submitted_at), deadline(due) {}
  request req;
  completion done;
  clock_type::time_point submitted, deadline;
  detail::mutex mu;
  std::condition_variable cv;                        // cancels_in_flight reached zero
  pg_conn* running ENTITY_GUARDED_BY(mu) = nullptr;  // the body's connection while it runs
  int cancels_in_flight ENTITY_GUARDED_BY(mu) = 0;
  bool cancel_sent ENTITY_GUARDED_BY(mu) = false;
  std::atomic<bool> abandoned{false};         // the deadline's guard ended a wait for the server
  std::shared_ptr<asio::steady_timer> guard;  // touched on the io thread only
};

// Waits for write readiness until libpq has sent everything. False when the connection failed.
asio::awaitable<bool> flush_out(pg_conn& c) {
  for (;;) {
    if (c.broken) co_return false;  // e.g. the deadline gave up on the server: no more waits
    int r = PQflush(c.pg);
    if (r == 0) co_return true;
    if (r < 0) co_return false;
    boost::system::error_code ec;
    co_await c.sock->async_wait(asio::posix::stream_descriptor::wait_write,
                                asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return false;
  }
}

// Waits until PQgetResult will not block. Input is read before every wait, so readiness that
// arrived earlier is never waited for again. False when the connection failed.
asio::awaitable<bool> result_ready(pg_conn& c) {
  for (;;) {
    if (c.broken) co_return false;  // e.g. the deadline gave up on the server: no more waits
    if (!PQconsumeInput(c.pg)) co_return false;
    if (!PQisBusy(c.pg)) co_return true;
    boost::system::error_code ec;
    co_await c.sock->async_wait(asio::posix::stream_descriptor::wait_read,
                                asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return false;
  }
}

// The next result, or null at the end of one statement's results; `ok` false when the
// connection failed.
asio::awaitable<PGresult*> next_result(pg_conn& c, bool& ok) {
  ok = co_await result_ready(c);
  if (!ok) co_return nullptr;
  co_return PQgetResult(c.pg);
}

// Reads the results `p` awaits into `out` (see pipeline::take). A connection that fails
// meanwhile, or whose results come out of step, is marked broken.
asio::awaitable<void> read_pipeline(pg_conn& c, pipeline& p, outcome& out) {
  while (p.awaiting()) {
    bool alive = true;
    PGresult* r = co_await next_result(c, alive);
    if (alive)
      p.take(r, out);
    else
      p.lost(out);
  }
  if (p.failed()) c.broken = true;
}

// Reads every result of the statement in flight into `out`. With `stale`, notes whether the
// server refused a prepared statement as stale (stale_statement).
asio::awaitable<void> collect(pg_conn& c, std::string_view sql, std::size_t max_rows, result& out,
                              error_code& ec, diagnostics& diag, bool* stale = nullptr) {
  for (;;) {
    bool ok = true;
    PGresult* r = co_await next_result(c, ok);
    if (!ok) {
      if (!ec) error_of(nullptr, c.pg, sql, ec, diag);
      c.broken = true;
      co_return;
    }
    if (!r) co_return;
    if (stale && stale_statement(r)) *stale = true;
    absorb(r, c.pg, sql, max_rows, out, ec, diag);
    PQclear(r);
  }
}

struct waiter {
  std::uint64_t id;
  detail::unique_function<void(pg_conn*, error_code, diagnostics)> cb;
  std::shared_ptr<asio::steady_timer> timer;
  const cancellation* cancel = nullptr;  ///< the waiting request's, if it has one
};

}  // namespace

struct postgres_infrastructure::impl final : connection_lease::owner,
                                             std::enable_shared_from_this<impl> {
  using lease_callback = detail::unique_function<void(pg_conn*, error_code, diagnostics)>;

  explicit impl(postgres_params p) : params(std::move(p)) {
    if (params.pool_size == 0) params.pool_size = 1;
    if (params.min_connections > params.pool_size) params.min_connections = params.pool_size;
    if (params.pipeline_chunk == 0) params.pipeline_chunk = 1;
  }

  postgres_params params;
  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> io_work;
  std::thread io_thread;
  std::unique_ptr<asio::thread_pool> tx_workers;   // transaction bodies
  std::unique_ptr<asio::thread_pool> aux_workers;  // connects and cancel requests

  detail::lifecycle life;

  mutable detail::mutex mu;
  std::condition_variable idle_cv;  // in_flight reached zero
  std::vector<std::unique_ptr<pg_conn>> conns ENTITY_GUARDED_BY(mu);
  std::deque<pg_conn*> idle ENTITY_GUARDED_BY(mu);
  std::list<waiter> waiters ENTITY_GUARDED_BY(mu);
  std::size_t opening ENTITY_GUARDED_BY(mu) = 0;
  std::size_t in_flight ENTITY_GUARDED_BY(mu) = 0;
  std::uint64_t next_waiter ENTITY_GUARDED_BY(mu) = 1;

  detail::request_counters counters;
  std::atomic<std::uint64_t> pipeline_batches{0};
  statement_counters statement_counts;  // every connection's statement cache counts here

  // ---- lifecycle ----------------------------------------------------------------------------

  void startup() {
    if (!life.begin_startup()) return;
    io.restart();  // after a startup that failed
    io_work.emplace(io.get_executor());
    io_thread = std::thread([this] { io.run(); });
    tx_workers = std::make_unique<asio::thread_pool>(params.pool_size);
    aux_workers = std::make_unique<asio::thread_pool>(2);
    try {
      for (std::size_t i = 0; i < params.min_connections; ++i) {
        error_code ec;
        diagnostics diag;
        auto c = open_connection(params.url, params.connect_timeout, params.statement_cache_size,
                                 &statement_counts, io, ec, diag);
        if (!c) throw error(ec, diag);
        detail::lock_guard lk(mu);
        idle.push_back(c.get());
        conns.push_back(std::move(c));
      }
    } catch (...) {
      stop_threads();
      detail::lock_guard lk(mu);
      idle.clear();
      conns.clear();
      life.startup_failed();
      throw;
    }
    life.started();
  }

  void stop_threads() {
    tx_workers->join();
    aux_workers->join();
    io_work.reset();
    io.stop();
    if (io_thread.joinable()) io_thread.join();
  }

  void shutdown() {
    if (!life.begin_shutdown()) return;
    // Queued requests fail; running ones finish (their deadlines bound the wait).
    std::list<waiter> failed;
    {
      detail::lock_guard lk(mu);
      failed.swap(waiters);
    }
    for (auto& w : failed) {
      diagnostics diag{"the engine was shut down while the request waited for a connection", {}};
      w.cb(nullptr, make_error_code(errc::shut_down), diag);
    }
    {
      detail::unique_lock lk(mu);
      idle_cv.wait(lk.native(), [&]() ENTITY_REQUIRES(mu) { return in_flight == 0; });
    }
    tx_workers->join();
    aux_workers->join();
    // Connections are closed on the io thread, which owns their sockets' registrations.
    std::promise<void> closed;
    asio::post(io, [&] {
      detail::lock_guard lk(mu);
      std::erase_if(conns, [&](const std::unique_ptr<pg_conn>& c) ENTITY_REQUIRES(mu) {
        return std::find(idle.begin(), idle.end(), c.get()) != idle.end();
      });
      idle.clear();
      closed.set_value();
    });
    closed.get_future().wait();
    stop_threads();
  }

  // ---- the pool -----------------------------------------------------------------------------

  // Hands a connection to `cb` now, or when one frees up before `deadline`. The deadline of an
  // acquire (`query_deadline` false) fails with pool_exhausted, a request's with query_timeout.
  // A request that waits can be withdrawn through `cancel` (see withdraw).
  void lease(clock_type::time_point acquire_deadline, clock_type::time_point query_deadline,
             lease_callback cb, std::shared_ptr<cancellation> cancel = nullptr) {
    for (;;) {
      pg_conn* c = nullptr;
      {
        detail::unique_lock lk(mu);
        if (!life.running()) {
          lk.unlock();
          diagnostics diag;
          error_code ec = life.not_running(diag);
          cb(nullptr, ec, diag);
          return;
        }
        if (idle.empty()) {
          auto timer = std::make_shared<asio::steady_timer>(io);
          bool is_query = query_deadline <= acquire_deadline;
          timer->expires_at(is_query ? query_deadline : acquire_deadline);
          std::uint64_t id = next_waiter++;
          waiters.push_back(waiter{id, std::move(cb), timer, cancel.get()});
          open_more_locked();
          lk.unlock();
          // The timer is only ever touched on the io thread. Its handler holds the engine
          // weakly: a timer still pending at shutdown must not keep the engine alive.
          asio::post(io, [weak = weak_from_this(), timer, id, is_query, cancel] {
            // A cancellation whose wake-up came before the waiter was queued found nothing
            // to withdraw: it is seen here.
            if (cancel && cancel->requested()) {
              if (auto self = weak.lock()) self->withdraw(cancel.get());
              return;
            }
            timer->async_wait([weak, id, is_query](boost::system::error_code ec) {
              auto self = weak.lock();
              if (ec || !self) return;  // served meanwhile, or gone
              self->expire(id, is_query);
            });
          });
          return;
        }
        c = idle.back();
        idle.pop_back();
      }
      // A connection that died while idle (the server restarted, an administrator terminated
      // it) is replaced before any request sees it.
      if (c->alive()) {
        cb(c, {}, {});
        return;
      }
      c->broken = true;
      give_back_conn(c);
    }
  }

  // A request cancelled while it waits for a connection leaves the queue and completes with
  // errc::cancelled. Nothing happens when it is not waiting (served meanwhile, or never queued).
  void withdraw(const cancellation* cancel) {
    lease_callback cb;
    {
      detail::lock_guard lk(mu);
      auto it = std::find_if(waiters.begin(), waiters.end(),
                             [&](const waiter& w) { return w.cancel == cancel; });
      if (it == waiters.end()) return;
      cb = std::move(it->cb);
      cancel_timer(it->timer);
      waiters.erase(it);
    }
    diagnostics diag{"the caller cancelled the request while it waited for a connection", {}};
    cb(nullptr, make_error_code(errc::cancelled), diag);
  }

  // Calls `on_io(state)` on the io thread when the caller cancels the request behind `state`
  // (at once when it already has). The wake-up holds both weakly: a cancellation may outlive
  // its request and the engine.
  template <class State, class OnIo>
  void watch_cancellation(const std::shared_ptr<State>& state, OnIo on_io) {
    const std::shared_ptr<cancellation>& cancel = state->req.cancel;
    if (!cancel) return;
    cancel->on_request([weak = weak_from_this(), ws = std::weak_ptr<State>(state), on_io] {
      auto self = weak.lock();
      if (!self) return;
      asio::post(self->io, [weak, ws, on_io] {
        auto engine = weak.lock();
        auto st = ws.lock();
        if (engine && st) (engine.get()->*on_io)(st);
      });
    });
  }

  void expire(std::uint64_t id, bool is_query) {
    lease_callback cb;
    {
      detail::lock_guard lk(mu);
      auto it =
          std::find_if(waiters.begin(), waiters.end(), [&](const waiter& w) { return w.id == id; });
      if (it == waiters.end()) return;
      cb = std::move(it->cb);
      waiters.erase(it);
    }
    diagnostics diag;
    if (is_query) {
      diag.message = "the deadline passed while the request waited for a connection";
      cb(nullptr, make_error_code(errc::query_timeout), diag);
    } else {
      diag.message = "no connection of the pool (" + std::to_string(params.pool_size) +
                     ") became free within acquire_timeout";
      cb(nullptr, make_error_code(errc::pool_exhausted), diag);
    }
  }

  // Opens connections for waiters while the pool has room.
  void open_more_locked() ENTITY_REQUIRES(mu) {
    while (waiters.size() > opening && conns.size() + opening < params.pool_size) {
      ++opening;
      asio::post(*aux_workers, [self = shared_from_this()] { self->open_one(); });
    }
  }

  void open_one() {
    error_code ec;
    diagnostics diag;
    auto c = open_connection(params.url, params.connect_timeout, params.statement_cache_size,
                             &statement_counts, io, ec, diag);
    lease_callback failed;
    {
      detail::unique_lock lk(mu);
      --opening;
      if (c) {
        pg_conn* raw = c.get();
        conns.push_back(std::move(c));
        lk.unlock();
        hand_out(raw);
        return;
      }
      if (!waiters.empty()) {
        failed = std::move(waiters.front().cb);
        cancel_timer(waiters.front().timer);
        waiters.pop_front();
      }
    }
    if (failed) failed(nullptr, ec, diag);
  }

  void cancel_timer(const std::shared_ptr<asio::steady_timer>& t) {
    asio::post(io, [t] { t->cancel(); });
  }

  // Gives `c` to the first waiter, or makes it idle.
  void hand_out(pg_conn* c) {
    lease_callback cb;
    {
      detail::lock_guard lk(mu);
      if (waiters.empty() || !life.running()) {
        idle.push_back(c);
        return;
      }
      cb = std::move(waiters.front().cb);
      cancel_timer(waiters.front().timer);
      waiters.pop_front();
    }
    cb(c, {}, {});
  }

  void give_back_conn(pg_conn* c) {
    if (!c->broken && PQstatus(c->pg) == CONNECTION_OK) return hand_out(c);
    std::unique_ptr<pg_conn> dead;
    {
      detail::lock_guard lk(mu);
      auto it = std::find_if(conns.begin(), conns.end(), [&](auto& p) { return p.get() == c; });
      if (it != conns.end()) {
        dead = std::move(*it);
        conns.erase(it);
      }
      if (life.running()) open_more_locked();
    }
    // Closed on the io thread, which owns the socket's registration.
    if (dead && life.running()) asio::post(io, [d = std::shared_ptr<pg_conn>(std::move(dead))] {});
  }

  // A lease's session comes home.
  void give_back(std::unique_ptr<session> s) noexcept override {
    auto* bs = dynamic_cast<blocking_session*>(s.get());
    if (!bs) return;
    pg_conn* c = bs->conn();
    s.reset();  // reads the results of anything the lease left queued
    if (!c->broken && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
      // The lease left a transaction open: it must not leak into the next user.
      PGresult* r = PQexec(c->pg, "ROLLBACK");
      if (r) PQclear(r);
    }
    if (PQsetnonblocking(c->pg, 1) != 0) c->broken = true;
    give_back_conn(c);
  }

  // ---- requests -----------------------------------------------------------------------------

  void finish(outcome&& out, completion& done, clock_type::time_point submitted) {
    detail::complete(this, counters, submitted, std::move(done), std::move(out));
    detail::lock_guard lk(mu);
    if (--in_flight == 0) idle_cv.notify_all();
  }

  void submit(request req, completion done) {
    auto now = clock_type::now();
    {
      detail::unique_lock lk(mu);
      if (!life.running()) {
        lk.unlock();
        outcome out;
        out.ec = life.not_running(out.diag);
        return detail::complete(this, counters, now, std::move(done), std::move(out));
      }
      ++in_flight;
    }
    auto deadline = detail::deadline_of(req, now, params.query_timeout);
    auto acquire_deadline = detail::deadline_after(now, params.acquire_timeout);
    if (req.kind == request_kind::transaction)
      return submit_transaction(std::move(req), std::move(done), now, deadline, acquire_deadline);

    auto op = std::make_shared<op_state>(io, std::move(req), std::move(done), now, deadline);
    watch_cancellation(op, &impl::cancel_op);
    lease(
        acquire_deadline, deadline,
        [self = shared_from_this(), op](pg_conn* c, error_code ec, diagnostics diag) mutable {
          if (!c) {
            if (op->req.cancel) op->req.cancel->clear();
            outcome out;
            out.ec = ec;
            out.diag = std::move(diag);
            out.diag.sql = sql_excerpt(op->req.sql);
            return self->finish(std::move(out), op->done, op->submitted);
          }
          op->conn = c;
          asio::co_spawn(self->io, self->run_op(op), asio::detached);
        },
        op->req.cancel);
  }

  // The caller cancelled `op` (on the io thread): a running statement is cancelled as at its
  // deadline, a waiting request leaves the queue. One handed a connection but not yet started
  // sees the cancellation when it starts.
  void cancel_op(const std::shared_ptr<op_state>& op) {
    if (op->finished) return;
    if (!op->started) return withdraw(op->req.cancel.get());
    if (op->timed_out || op->cancelled) return;  // a cancel request is on its way already
    op->cancelled = true;
    cancel_on_server(op);
  }

  // The deadline of a running statement: ask the server to cancel it; the statement then fails
  // with 57014 and the request with query_timeout.
  void arm_deadline(const std::shared_ptr<op_state>& op) {
    op->timer.expires_at(op->deadline);
    op->timer.async_wait([weak = weak_from_this(), op](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || op->finished || op->cancelled || !self) return;
      op->timed_out = true;
      self->cancel_on_server(op);
    });
  }

  // Asks the server to cancel the statement `op` runs (a blocking call, so on a worker). Should
  // the server not answer within cancel_grace, its backend is told to terminate from another
  // connection (a cancel request can be lost; a backend past its deadline must not go on), and
  // the socket is closed: the request ends then whether the server ever answers or not, and
  // the connection is replaced. The deadline's timer serves for that wait.
  void cancel_on_server(const std::shared_ptr<op_state>& op) {
    ++op->holds;
    asio::post(*aux_workers, [self = shared_from_this(), op] {
      char buf[256];
      if (op->conn->cancel) PQcancel(op->conn->cancel, buf, sizeof buf);
      asio::post(self->io, [self, op] { self->release_op_conn(op); });
    });
    op->timer.expires_after(cancel_grace);
    op->timer.async_wait([weak = weak_from_this(), op](boost::system::error_code ec) {
      if (ec || op->finished) return;
      op->conn->broken = true;
      if (auto self = weak.lock()) self->terminate_on_server(op);
      boost::system::error_code ignored;
      op->conn->sock->cancel(ignored);  // the pending wait fails; the request ends
    });
  }

  // Tells the server to terminate the backend of `op`'s connection, from a connection of its
  // own (blocking, so on a worker). The connection goes back (to be closed) only afterwards.
  void terminate_on_server(const std::shared_ptr<op_state>& op) {
    ++op->holds;
    op->terminated = true;
    asio::post(*aux_workers, [self = shared_from_this(), op, pid = op->conn->backend_pid] {
      terminate_backend(self->params.url, pid, self->params.connect_timeout);
      asio::post(self->io, [self, op] { self->release_op_conn(op); });
    });
  }

  // The connection goes back once the request is done and no cancel request for it is in
  // flight (a late cancel must not hit the next user's statement).
  void release_op_conn(const std::shared_ptr<op_state>& op) {
    if (--op->holds == 0) give_back_conn(op->conn);
  }

  asio::awaitable<void> run_op(std::shared_ptr<op_state> op) {
    outcome out;
    pg_conn& c = *op->conn;
    request& req = op->req;
    if (clock_type::now() >= op->deadline) {
      out.ec = make_error_code(errc::query_timeout);
      out.diag = {"the deadline passed while the request waited for a connection",
                  sql_excerpt(req.sql)};
    } else if (req.cancel && req.cancel->requested()) {
      out.ec = make_error_code(errc::cancelled);
      out.diag = {"the caller cancelled the request before it started", sql_excerpt(req.sql)};
    } else {
      op->started = true;
      arm_deadline(op);
      switch (req.kind) {
        case request_kind::many:
          co_await run_many(c, req, op->deadline, out);
          break;
        case request_kind::script:
          co_await run_script(c, req, op->deadline, out);
          break;
        default:
          co_await run_single(c, req, op->deadline, out);
          break;
      }
    }
    op->finished = true;
    op->timer.cancel();
    if (req.cancel) req.cancel->clear();
    const bool stopped = op->timed_out || op->cancelled;
    const errc why = op->cancelled ? errc::cancelled : errc::query_timeout;
    const std::string what =
        op->cancelled ? "the caller cancelled the request" : "the deadline passed";
    if (stopped && out.ec && out.ec != errc::connection_error) {
      out.ec = make_error_code(why);
      out.diag.message = what + "; the statement was cancelled on the server" +
                         (out.diag.message.empty() ? std::string() : " (" + out.diag.message + ")");
    } else if (stopped && c.broken) {
      out.ec = make_error_code(why);
      out.diag.message = what + " and the server did not answer the cancel request; " +
                         (op->terminated ? "its backend was told to terminate and " : "") +
                         "the connection was closed";
    } else if (!stopped && out.ec.category() == postgres_category() &&
               postgres_sqlstate(out.ec) == "57014" &&
               clock_type::now() >= op->deadline - std::chrono::milliseconds(5)) {
      // The server's statement_timeout, which is this deadline, came first.
      out.ec = make_error_code(errc::query_timeout);
      out.diag.message =
          "the deadline passed; the server stopped the statement (" + out.diag.message + ")";
    }
    if (out.ec) out.res = {};
    // Completing before the connection goes back keeps results in submission order for one
    // caller; the handler must not block.
    release_op_conn(op);
    finish(std::move(out), op->done, op->submitted);
  }

  // Runs `sql` (`req.sql` translated) in one round trip in pipeline mode, with what must
  // travel with it:
  // - with `timeout_ms`, SET statement_timeout before it, each followed by a sync point so
  //   that the SET stays whatever becomes of the statement. A SET that fails is not the
  //   statement's error: the session's timeout is then unknown, and the next request sets it
  //   again;
  // - with `cached`, its prepare when the connection's cache does not hold it yet (it then
  //   runs by name);
  // - with `outside_tx` (no transaction block open), the DEALLOCATEs of the statements the
  //   cache gave up, each with a sync point of its own: those due go before the statement,
  //   the one its own prepare gives up after it. They cost no round trip of their own.
  // Returns whether the server refused the statement as stale.
  asio::awaitable<bool> run_pipelined(pg_conn& c, request& req, const std::string& sql,
                                      std::size_t max_rows, long long timeout_ms, bool cached,
                                      bool outside_tx, outcome& out) {
    pipeline p(c.pg);
    bool ok = PQenterPipelineMode(c.pg) == 1 && (!outside_tx || send_closing(c, p));
    if (ok && timeout_ms > 0) {
      // The SET's entry names the statement: a connection lost while it is due fails the
      // request.
      const std::string set = "SET statement_timeout = " + std::to_string(timeout_ms);
      ok = send_queued(c.pg, p, pipeline_entry::setting, req.sql, set) && send_sync(c.pg, p);
    }
    ok = ok &&
         send_cached(c, p, pipeline_entry::statement, req.sql, sql, req.args, max_rows, cached) &&
         send_sync(c.pg, p) && (!outside_tx || send_closing(c, p));
    if (ok) ok = co_await flush_out(c);
    if (!ok) {
      // Half a pipeline may have gone: the connection is not trusted again.
      error_of(nullptr, c.pg, req.sql, out.ec, out.diag);
      c.broken = true;
      co_return false;
    }
    co_await read_pipeline(c, p, out);
    if (timeout_ms > 0) c.statement_timeout_ms = p.settings_applied() ? timeout_ms : -1;
    if (!c.broken && PQexitPipelineMode(c.pg) != 1) c.broken = true;
    const bool stale = p.saw_stale();
    p.settle(c.statements);
    co_return stale;
  }

  asio::awaitable<void> run_single(pg_conn& c, request& req, clock_type::time_point deadline,
                                   outcome& out) {
    translated_sql translated = translate(req.sql);
    if (refuse_statement(translated.parameters, translated.several_statements, req.args, req.sql,
                         out.ec, out.diag))
      co_return;
    const std::string& sql = translated.text;
    const bool cached = cacheable(c, translated);
    const std::string key = cached ? statement_key(sql, req.args) : std::string();
    std::size_t max_rows =
        req.kind == request_kind::fetch_one ? 1 : std::numeric_limits<std::size_t>::max();
    for (int attempt = 0;; ++attempt) {
      // The server stops the statement at the deadline too, should the cancel request be
      // lost: its statement_timeout travels with the statement when the session's differs.
      const long long timeout_ms = statement_timeout_to_set(c, ms_until(deadline));
      const bool outside_tx = PQtransactionStatus(c.pg) == PQTRANS_IDLE;
      bool stale = false;
      if (timeout_ms > 0 || (cached && !c.statements.holds(key)) ||
          (outside_tx && !c.statements.closing().empty())) {
        stale = co_await run_pipelined(c, req, sql, max_rows, timeout_ms, cached, outside_tx, out);
      } else {
        // One statement alone, unnamed or by a name the connection holds prepared.
        std::string name;
        if (cached) name.assign(c.statements.lookup(key).name);
        if (bool sent =
                cached ? send_prepared(c.pg, name, req.args) : send_statement(c.pg, sql, req.args);
            !sent) {
          // Refused before anything was sent (a bad parameter): the connection is fine.
          error_of(nullptr, c.pg, req.sql, out.ec, out.diag);
          if (PQstatus(c.pg) == CONNECTION_OK) out.ec = make_error_code(errc::invalid_argument);
        } else if (!(sent = co_await flush_out(c))) {
          error_of(nullptr, c.pg, req.sql, out.ec, out.diag);
          c.broken = true;
        } else {
          co_await collect(c, req.sql, max_rows, out.res, out.ec, out.diag,
                           cached ? &stale : nullptr);
          if (stale) c.statements.forget(name);
        }
      }
      // CREATE ... IF NOT EXISTS racing another session's: does nothing, as on SQLite.
      if (attempt == 0 && !c.broken && lost_creation_race(req.sql, out.ec)) {
        out = outcome{};
        continue;
      }
      // A prepared statement the server could not use as prepared failed before it ran: it
      // is prepared again and run once more. Outside a transaction block nothing of the first
      // attempt can remain (see stale_statement).
      if (attempt == 0 && !c.broken && stale && outside_tx && out.ec) {
        out = outcome{};
        continue;
      }
      break;
    }
    note_broken(c, out.ec, out.diag);
  }

  // A script runs statement by statement, each in its own round trip. Sent as one string,
  // PostgreSQL would run the statements in one implicit transaction, so a failure would take
  // the statements before it along; one by one, they behave as on SQLite (and as typed into
  // psql): what ran before the failing statement stays, and the error names that statement.
  asio::awaitable<void> run_script(pg_conn& c, request& req, clock_type::time_point deadline,
                                   outcome& out) {
    if (refuse_nul(req.sql, {}, out.ec, out.diag)) co_return;
    // The server's statement_timeout, when the session's is not this deadline's: a round trip
    // of its own (a script's statements go as simple queries, one at a time).
    if (long long timeout_ms = statement_timeout_to_set(c, ms_until(deadline)); timeout_ms > 0) {
      std::string set = "SET statement_timeout = " + std::to_string(timeout_ms);
      result ignored;
      bool sent = PQsendQuery(c.pg, set.c_str()) == 1;
      if (sent) sent = co_await flush_out(c);
      if (!sent) {
        error_of(nullptr, c.pg, set, out.ec, out.diag);
        c.broken = true;
        note_broken(c, out.ec, out.diag);
        co_return;
      }
      co_await collect(c, set, 0, ignored, out.ec, out.diag);
      if (out.ec || c.broken) {
        note_broken(c, out.ec, out.diag);
        co_return;
      }
      c.statement_timeout_ms = timeout_ms;
    }
    for (std::string_view statement : split_statements(req.sql)) {
      std::string text(statement);
      bool sent = PQsendQuery(c.pg, text.c_str()) == 1;
      if (sent) sent = co_await flush_out(c);
      if (!sent) {
        error_of(nullptr, c.pg, statement, out.ec, out.diag);
        c.broken = true;
        break;
      }
      co_await collect(c, statement, std::numeric_limits<std::size_t>::max(), out.res, out.ec,
                       out.diag);
      if (out.ec || c.broken) break;
    }
    if (note_broken(c, out.ec, out.diag)) co_return;
    if (PQtransactionStatus(c.pg) != PQTRANS_IDLE) {
      // A script must close what it opens: the open transaction is rolled back, not leaked.
      result ignored;
      error_code rollback_ec;
      diagnostics rollback_diag;
      bool sent = PQsendQuery(c.pg, "ROLLBACK") == 1;
      if (sent) sent = co_await flush_out(c);
      if (sent)
        co_await collect(c, "ROLLBACK", 0, ignored, rollback_ec, rollback_diag);
      else
        c.broken = true;
      if (!out.ec) {
        out.ec = make_error_code(errc::transaction_open);
        out.diag = {"the script left a transaction open; it was rolled back", sql_excerpt(req.sql)};
      }
    }
  }

  // execute_many: BEGIN, the statements and COMMIT in pipeline mode, pipeline_chunk statements
  // per round trip. The first error aborts the rest (the server skips them up to the sync
  // point) and the transaction is rolled back. A statement the cache holds but the server
  // refuses as stale fails before the batch's first row runs, in a transaction rolled back
  // whole: the batch runs once more, its statement prepared again.
  asio::awaitable<void> run_many(pg_conn& c, request& req, clock_type::time_point deadline,
                                 outcome& out) {
    translated_sql translated = translate(req.sql);
    // Every parameter set is checked before anything is sent: a wrong one writes nothing.
    for (const entity::params& args : req.batch)
      if (refuse_statement(translated.parameters, translated.several_statements, args, req.sql,
                           out.ec, out.diag))
        co_return;
    for (int attempt = 0;; ++attempt) {
      const bool stale = co_await run_batch(c, req, translated, deadline, out);
      if (!(stale && attempt == 0 && out.ec && !c.broken)) break;
      out = outcome{};
    }
    note_broken(c, out.ec, out.diag);
  }

  // One attempt of run_many. Returns whether the server refused the statement as stale.
  asio::awaitable<bool> run_batch(pg_conn& c, request& req, const translated_sql& translated,
                                  clock_type::time_point deadline, outcome& out) {
    const std::string& sql = translated.text;
    // One prepared statement fixes one set of parameter types: a batch that binds a blob in
    // one row where another row binds something else goes unnamed, each row typed its own way.
    const bool cached =
        !req.batch.empty() && cacheable(c, translated) && same_parameter_types(req.batch);
    if (PQenterPipelineMode(c.pg) != 1) {
      error_of(nullptr, c.pg, req.sql, out.ec, out.diag);
      co_return false;
    }
    pipeline p(c.pg);
    // The server stops the batch's statements at the deadline too (SET LOCAL: for this
    // transaction only), should the cancel request be lost.
    const std::string set =
        "SET LOCAL statement_timeout = " + std::to_string(ms_until(deadline).count());
    // Statements the cache gave up go first, before the transaction (where a DEALLOCATE that
    // failed would abort it).
    bool ok = (PQtransactionStatus(c.pg) != PQTRANS_IDLE || send_closing(c, p)) &&
              send_queued(c.pg, p, pipeline_entry::own_command, "BEGIN") &&
              send_queued(c.pg, p, pipeline_entry::own_command, set);
    // Every row runs the one prepared statement: looked up (and prepared) once per batch.
    std::string name;
    if (ok && cached) ok = send_prepare_if_new(c, p, req.sql, sql, req.batch.front(), name);
    const std::size_t n = req.batch.size();
    for (std::size_t next = 0; ok;) {
      const std::size_t end = std::min(n, next + params.pipeline_chunk);
      for (; ok && next < end; ++next)
        ok = cached
                 ? send_queued_prepared(c.pg, p, pipeline_entry::statement, req.sql, name,
                                        req.batch[next])
                 : send_queued(c.pg, p, pipeline_entry::statement, req.sql, sql, req.batch[next]);
      if (ok && next == n) ok = send_queued(c.pg, p, pipeline_entry::own_command, "COMMIT");
      if (ok) ok = send_sync(c.pg, p);
      if (ok) ok = co_await flush_out(c);
      if (!ok) break;
      co_await read_pipeline(c, p, out);
      pipeline_batches.fetch_add(1, std::memory_order_relaxed);
      if (out.ec || c.broken || next == n) break;
    }
    if (!ok) {
      error_of(nullptr, c.pg, req.sql, out.ec, out.diag);
      c.broken = true;
    }
    if (out.ec && !c.broken) {
      // What ran (the transaction, aborted at the error) is rolled back; its own errors do
      // not replace the batch's.
      ok = send_queued(c.pg, p, pipeline_entry::own_command, "ROLLBACK") && send_sync(c.pg, p);
      if (ok) ok = co_await flush_out(c);
      if (ok)
        co_await read_pipeline(c, p, out);
      else
        c.broken = true;
    }
    if (!c.broken) PQexitPipelineMode(c.pg);
    const bool stale = p.saw_stale();
    p.settle(c.statements);
    co_return stale;
  }

  // A transaction body is synchronous user code: it runs on a worker with the connection in
  // blocking mode, its deadline enforced by the server (SET LOCAL statement_timeout).
  void submit_transaction(request req, completion done, clock_type::time_point submitted,
                          clock_type::time_point deadline,
                          clock_type::time_point acquire_deadline) {
    auto t = std::make_shared<tx_state>(std::move(req), std::move(done), submitted, deadline);
    watch_cancellation(t, &impl::cancel_tx);
    lease(
        acquire_deadline, deadline,
        [self = shared_from_this(), t](pg_conn* c, error_code ec, diagnostics diag) mutable {
          if (!c) {
            if (t->req.cancel) t->req.cancel->clear();
            outcome out;
            out.ec = ec;
            out.diag = std::move(diag);
            return self->finish(std::move(out), t->done, t->submitted);
          }
          asio::post(*self->tx_workers, [self, t, c] {
            detail::engine_thread_mark mark(self.get());  // the body is the caller's code too
            {
              detail::lock_guard lk(t->mu);
              t->running = c;
            }
            self->guard_transaction(t);
            outcome out = self->run_transaction(c, t->req, t->deadline);
            asio::post(self->io, [t] {
              if (t->guard) t->guard->cancel();
            });
            if (t->abandoned.load() && out.ec) {  // what committed before the guard stays so
              out.ec = make_error_code(errc::query_timeout);
              out.diag.message =
                  "the deadline passed and the server did not answer; its backend "
                  "was told to terminate and the connection was closed";
              out.exception = nullptr;
            }
            {
              // A cancel request still in flight must not reach the connection's next user.
              detail::unique_lock lk(t->mu);
              t->running = nullptr;
              t->cv.wait(lk.native(),
                         [&]() ENTITY_REQUIRES(t->mu) { return t->cancels_in_flight == 0; });
            }
            if (t->req.cancel) t->req.cancel->clear();
            self->give_back_conn(c);
            self->finish(std::move(out), t->done, t->submitted);
          });
        },
        t->req.cancel);
  }

  // A transaction body's statements are stopped at the deadline by the server
  // (statement_timeout). Should the server not answer at all (a frozen backend, a host gone),
  // this guard, from deadline + cancel_grace on, ends a wait for it: the backend is told to
  // terminate from a connection of its own and the socket is shut down, so the blocking call
  // returns, the body's statement throws, and the transaction ends with query_timeout.
  void guard_transaction(const std::shared_ptr<tx_state>& t) {
    asio::post(io, [weak = weak_from_this(), t] {
      auto self = weak.lock();
      if (!self) return;
      t->guard = std::make_shared<asio::steady_timer>(self->io, t->deadline + cancel_grace);
      self->arm_transaction_guard(t);
    });
  }

  void arm_transaction_guard(const std::shared_ptr<tx_state>& t) {
    t->guard->async_wait([weak = weak_from_this(), t](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      pg_conn* c = nullptr;
      {
        detail::lock_guard lk(t->mu);
        c = t->running;
        if (c && c->in_blocking_call.load() && !t->abandoned.exchange(true)) {
          asio::post(*self->aux_workers, [self, pid = c->backend_pid] {
            terminate_backend(self->params.url, pid, self->params.connect_timeout);
          });
          c->abandon();
          return;
        }
      }
      if (!c) return;  // the body is done
      // The body is between statements: look again a little later.
      t->guard->expires_after(cancel_grace / 4);
      self->arm_transaction_guard(t);
    });
  }

  // The caller cancelled the transaction `t` (on the io thread): a running body's statement is
  // cancelled on the server (the body is refused its next statement and its COMMIT anyway), a
  // waiting one leaves the queue.
  void cancel_tx(const std::shared_ptr<tx_state>& t) {
    pg_conn* c = nullptr;
    {
      detail::lock_guard lk(t->mu);
      if (t->running) {
        if (t->cancel_sent) return;
        c = t->running;
        t->cancel_sent = true;
        ++t->cancels_in_flight;
      }
    }
    if (!c) return withdraw(t->req.cancel.get());
    asio::post(*aux_workers, [t, c] {
      char buf[256];
      if (c->cancel) PQcancel(c->cancel, buf, sizeof buf);
      detail::lock_guard lk(t->mu);
      if (--t->cancels_in_flight == 0) t->cv.notify_all();
    });
  }

  outcome run_transaction(pg_conn* c, request& req, clock_type::time_point deadline) {
    outcome out;
    auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    if (remaining.count() <= 0) {
      out.ec = make_error_code(errc::query_timeout);
      out.diag.message = "the deadline passed while the transaction waited for a connection";
      return out;
    }
    const cancellation* cancel = req.cancel.get();
    auto cancelled = [cancel] { return cancel && cancel->requested(); };
    if (cancelled()) {
      out.ec = make_error_code(errc::cancelled);
      out.diag.message = "the caller cancelled the transaction before it started";
      return out;
    }
    if (PQsetnonblocking(c->pg, 0) != 0) {
      c->broken = true;
      out.ec = make_error_code(errc::connection_error);
      out.diag.message = "cannot put the connection in blocking mode";
      return out;
    }
    auto counted = [self = shared_from_this()] {
      self->pipeline_batches.fetch_add(1, std::memory_order_relaxed);
    };
    {
      blocking_session s(c, /*pipeline_inserts=*/true, params.pipeline_chunk, counted);
      s.set_cancellation(cancel);
      std::string set_timeout = "SET LOCAL statement_timeout = " +
                                std::to_string(std::max<long long>(1, remaining.count()));
      s.command("BEGIN", out.ec, out.diag);
      if (!out.ec) s.command(set_timeout.c_str(), out.ec, out.diag);
      if (!out.ec) {
        try {
          req.body(s);
          s.flush();
          if (PQtransactionStatus(c->pg) == PQTRANS_INERROR) {
            // The body caught a statement's error and went on: nothing of it may commit.
            out.ec = make_error_code(errc::rolled_back);
            out.diag.message =
                "a statement of the transaction failed and the body went on; the transaction was "
                "rolled back";
          } else if (cancelled()) {
            out.ec = make_error_code(errc::cancelled);
            out.diag.message = "the caller cancelled the transaction; it was rolled back";
          } else {
            s.command("COMMIT", out.ec, out.diag);
          }
        } catch (const error& e) {
          out.ec = e.code();
          out.diag = e.diag();
        } catch (...) {
          out.ec = make_error_code(errc::aborted);
          out.exception = std::current_exception();
          try {
            throw;
          } catch (const std::exception& e) {
            out.diag.message = std::string("the transaction body threw: ") + e.what();
          } catch (...) {
            out.diag.message = "the transaction body threw";
          }
        }
      }
      // Statements still queued by a body that threw are read (and dropped) first.
      try {
        s.flush();
      } catch (...) {
      }
      if (out.ec && !c->broken && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        error_code rollback_ec;
        diagnostics rollback_diag;
        s.command("ROLLBACK", rollback_ec, rollback_diag);
      }
    }
    // The server's statement_timeout is our deadline, and our cancel request the caller's
    // cancellation: report them as such.
    if (out.ec.category() == postgres_category() && postgres_sqlstate(out.ec) == "57014") {
      if (cancelled()) {
        out.ec = make_error_code(errc::cancelled);
        out.diag.message =
            "the caller cancelled the transaction; the statement was cancelled on "
            "the server and the transaction rolled back (" +
            out.diag.message + ")";
      } else if (clock_type::now() >= deadline - std::chrono::milliseconds(5)) {
        out.ec = make_error_code(errc::query_timeout);
      }
    }
    if (!c->broken && PQsetnonblocking(c->pg, 1) != 0) c->broken = true;
    return out;
  }

  outcome run(request req) {
    if (io.get_executor().running_in_this_thread()) {
      outcome out;
      out.ec = make_error_code(errc::invalid_argument);
      out.diag.message =
          "a sync call on the engine's io thread would wait for itself; use the "
          "async API inside completion handlers";
      return out;
    }
    std::promise<outcome> p;
    auto f = p.get_future();
    submit(std::move(req), [&p](outcome&& o) { p.set_value(std::move(o)); });
    return f.get();
  }

  connection_lease acquire(std::optional<std::chrono::milliseconds> timeout, error_code& ec,
                           diagnostics& diag) {
    ec.clear();
    diag.clear();
    auto now = clock_type::now();
    auto acquire_deadline = detail::deadline_after(now, timeout.value_or(params.acquire_timeout));
    std::promise<std::pair<pg_conn*, std::pair<error_code, diagnostics>>> p;
    auto f = p.get_future();
    lease(acquire_deadline, clock_type::time_point::max(),
          [&p](pg_conn* c, error_code e, diagnostics d) {
            p.set_value({c, {e, std::move(d)}});
          });
    auto [c, failure] = f.get();
    if (!c) {
      ec = failure.first;
      diag = std::move(failure.second);
      return {};
    }
    if (PQsetnonblocking(c->pg, 0) != 0) {
      c->broken = true;
      give_back_conn(c);
      ec = make_error_code(errc::connection_error);
      diag.message = "cannot put the connection in blocking mode";
      return {};
    }
    // A lease's statements have no deadline: a statement_timeout that requests left on the
    // session goes (one round trip, only for a connection that carries one).
    if (c->statement_timeout_ms > 0) {
      PGresult* r = PQexec(c->pg, "SET statement_timeout = 0");
      bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
      PQclear(r);
      c->statement_timeout_ms = ok ? 0 : -1;
      if (!ok) {
        error_of(nullptr, c->pg, "SET statement_timeout = 0", ec, diag);
        if (PQstatus(c->pg) != CONNECTION_OK) c->broken = true;
        if (!c->broken && PQsetnonblocking(c->pg, 1) != 0) c->broken = true;
        give_back_conn(c);
        return {};
      }
    }
    return connection_lease(
        std::make_unique<blocking_session>(c, false, params.pipeline_chunk, nullptr),
        shared_from_this());
  }

  infrastructure_stats stats() const {
    infrastructure_stats s;
    s.pool_size = params.pool_size;
    {
      detail::lock_guard lk(mu);
      s.open_connections = conns.size();
      s.idle_connections = idle.size();
      s.queued_operations = waiters.size();
    }
    s.busy_connections = s.open_connections - s.idle_connections;
    counters.fill(s);
    s.pipeline_batches = pipeline_batches.load(std::memory_order_relaxed);
    s.statement_cache_hits = statement_counts.hits.load(std::memory_order_relaxed);
    s.statement_cache_misses = statement_counts.misses.load(std::memory_order_relaxed);
    return s;
  }
};

postgres_infrastructure::postgres_infrastructure(postgres_params settings)
    : impl_(std::make_shared<impl>(std::move(settings))) {}

postgres_infrastructure::~postgres_infrastructure() { shutdown(); }

void postgres_infrastructure::startup() { impl_->startup(); }
void postgres_infrastructure::shutdown() {
  // From a completion handler or transaction body of this engine too (a plain callback that
  // drops the last handle, say): it would wait for the very request it runs in.
  detail::shut_down(impl_);
}
bool postgres_infrastructure::running() const noexcept { return impl_->life.running(); }
void postgres_infrastructure::submit(request req, completion done) {
  impl_->submit(std::move(req), std::move(done));
}
outcome postgres_infrastructure::run(request req) { return impl_->run(std::move(req)); }
connection_lease postgres_infrastructure::acquire(std::optional<std::chrono::milliseconds> t,
                                                  error_code& ec, diagnostics& diag) {
  return impl_->acquire(t, ec, diag);
}
infrastructure_stats postgres_infrastructure::stats() const { return impl_->stats(); }
const postgres_params& postgres_infrastructure::params() const noexcept { return impl_->params; }

}  // namespace entity
