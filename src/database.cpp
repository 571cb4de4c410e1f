// The async face of layer 2: the one translation unit (with memory.cpp) that sees asio.
// Each async operation arrives here as an any_completion_handler; its work is handed to the
// engine and the handler is dispatched to its associated executor when the engine is done.
//
// When that executor is an event loop's (an io_context's, a coroutine's), the engine may leave
// short work to it (infrastructure::defer): the ticket is posted there and runs as a handler
// of its own, so the work happens on the loop's thread without a hand-off to the engine's
// threads and back, and never inside the initiating call.
//
// A handler with a connected cancellation slot (asio's per-operation cancellation) gets an
// entity::cancellation on its request: any cancellation type the slot receives requests it,
// and the engine stops the request as it would at its deadline (errc::cancelled).
#include "entity/database.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <optional>

#include "entity/event_loop.hpp"

namespace entity {
namespace asio = boost::asio;

namespace {

template <class T>
T convert(result&& r);
template <>
result convert<result>(result&& r) {
  return std::move(r);
}
template <>
std::optional<row> convert<std::optional<row>>(result&& r) {
  if (r.rows.empty()) return std::nullopt;
  return std::move(r.rows.front());
}
template <>
std::vector<row> convert<std::vector<row>>(result&& r) {
  return std::move(r.rows);
}

// Wraps `h` into an engine completion that dispatches it to its executor. The work guard keeps
// the handler's io_context running while the request is in flight.
template <class T>
completion bridge(asio::any_completion_handler<void(error_code, T)> h, diagnostics* diag) {
  auto work = asio::make_work_guard(h);
  return [h = std::move(h), work = std::move(work), diag](outcome&& out) mutable {
    if (out.ec && diag) *diag = std::move(out.diag);
    auto ex = work.get_executor();
    asio::dispatch(ex,
                   [h = std::move(h), ec = out.ec, v = convert<T>(std::move(out.res))]() mutable {
                     std::move(h)(ec, std::move(v));
                   });
  };
}

completion bridge(asio::any_completion_handler<void(error_code)> h, diagnostics* diag) {
  auto work = asio::make_work_guard(h);
  return [h = std::move(h), work = std::move(work), diag](outcome&& out) mutable {
    if (out.ec && diag) *diag = std::move(out.diag);
    auto ex = work.get_executor();
    asio::dispatch(ex, [h = std::move(h), ec = out.ec]() mutable { std::move(h)(ec); });
  };
}

// The event loop behind `ex`, when it is one that work can be posted to. A type-erased
// completion executor cannot be asked not to block (post needs that), so the executors asio's
// own code hands out, and event_loop_executor (event_loop.hpp), are looked for behind it; any
// other (the system executor of a plain callback, a user's own executor type) finds none.
std::optional<asio::any_io_executor> loop_of(const asio::any_completion_executor& ex) {
  if (auto* io = ex.target<asio::io_context::executor_type>()) return asio::any_io_executor(*io);
  if (auto* any = ex.target<asio::any_io_executor>()) return *any;
  if (auto* s = ex.target<asio::strand<asio::io_context::executor_type>>())
    return asio::any_io_executor(*s);
  if (auto* sa = ex.target<asio::strand<asio::any_io_executor>>())
    return asio::any_io_executor(*sa);
  if (auto* el = ex.target<event_loop_executor>()) return asio::any_io_executor(*el);
  if (auto* inner = ex.target<asio::any_completion_executor>()) return loop_of(*inner);
  return std::nullopt;
}

// Connects the handler's cancellation slot, when it has one, to the request. The slot's handler
// owns the cancellation, so an emit after the request has finished (or after the engine is
// gone) only sets a flag nobody reads. It is installed here, in the initiating call: asio
// requires the slot to be touched only where the caller may emit.
template <class Handler>
void connect_cancellation(const Handler& h, request& req) {
  auto slot = asio::get_associated_cancellation_slot(h);
  if (!slot.is_connected()) return;
  auto cancel = std::make_shared<cancellation>();
  req.cancel = cancel;
  slot.assign([cancel](asio::cancellation_type type) {
    if (type != asio::cancellation_type::none) cancel->request();
  });
}

// Hands `req` to the engine, deferred to the handler's event loop when it has one.
template <class Handler>
void start_on(infrastructure& infra, request req, diagnostics* diag, Handler h) {
  connect_cancellation(h, req);
  std::optional<asio::any_io_executor> loop = loop_of(asio::get_associated_executor(h));
  if (!loop) return infra.submit(std::move(req), bridge(std::move(h), diag));
  std::unique_ptr<deferred_work> t = infra.defer(std::move(req), bridge(std::move(h), diag));
  if (t) asio::post(*loop, [t = std::move(t)] { t->run(); });
}

}  // namespace

database::database(std::shared_ptr<infrastructure> infra) : infra_(std::move(infra)) {
  if (!infra_) throw error(errc::invalid_argument, {"database: the infrastructure is null", {}});
}

database database::with_timeout(std::chrono::milliseconds timeout) const {
  database d(*this);
  d.timeout_ = timeout;
  return d;
}

request database::make_request(request_kind kind, std::string sql, params args) const {
  request r;
  r.kind = kind;
  r.sql = std::move(sql);
  r.args = std::move(args);
  r.timeout = timeout_;
  return r;
}

request database::make_many(std::string sql, std::vector<params> batch) const {
  request r = make_request(request_kind::many, std::move(sql), {});
  r.batch = std::move(batch);
  return r;
}

request database::make_transaction(transaction_body body) const {
  request r = make_request(request_kind::transaction, {}, {});
  r.body = std::move(body);
  return r;
}

void database::start(request req, diagnostics* diag, handler<result> h) const {
  start_on(*infra_, std::move(req), diag, std::move(h));
}
void database::start(request req, diagnostics* diag, handler<std::optional<row>> h) const {
  start_on(*infra_, std::move(req), diag, std::move(h));
}
void database::start(request req, diagnostics* diag, handler<rows> h) const {
  start_on(*infra_, std::move(req), diag, std::move(h));
}
void database::start(request req, diagnostics* diag, void_handler h) const {
  start_on(*infra_, std::move(req), diag, std::move(h));
}

// ---- sync ---------------------------------------------------------------------------------

namespace {
result run_sync(infrastructure& infra, request req, error_code& ec, diagnostics& diag) {
  outcome out = infra.run(std::move(req));
  ec = out.ec;
  diag = std::move(out.diag);
  return std::move(out.res);
}
result run_throwing(infrastructure& infra, request req) {
  outcome out = infra.run(std::move(req));
  if (out.exception) std::rethrow_exception(out.exception);
  throw_if(out.ec, out.diag);
  return std::move(out.res);
}
}  // namespace

result database::execute(std::string sql, params args) const {
  return run_throwing(*infra_,
                      make_request(request_kind::execute, std::move(sql), std::move(args)));
}
result database::execute(std::string sql, params args, error_code& ec, diagnostics& diag) const {
  return run_sync(*infra_, make_request(request_kind::execute, std::move(sql), std::move(args)), ec,
                  diag);
}
std::optional<row> database::fetch_one(std::string sql, params args) const {
  return convert<std::optional<row>>(run_throwing(
      *infra_, make_request(request_kind::fetch_one, std::move(sql), std::move(args))));
}
std::optional<row> database::fetch_one(std::string sql, params args, error_code& ec,
                                       diagnostics& diag) const {
  return convert<std::optional<row>>(run_sync(
      *infra_, make_request(request_kind::fetch_one, std::move(sql), std::move(args)), ec, diag));
}
database::rows database::fetch_all(std::string sql, params args) const {
  return std::move(execute(std::move(sql), std::move(args)).rows);
}
database::rows database::fetch_all(std::string sql, params args, error_code& ec,
                                   diagnostics& diag) const {
  return std::move(execute(std::move(sql), std::move(args), ec, diag).rows);
}
void database::execute_script(std::string sql) const {
  run_throwing(*infra_, make_request(request_kind::script, std::move(sql), {}));
}
void database::execute_script(std::string sql, error_code& ec, diagnostics& diag) const {
  run_sync(*infra_, make_request(request_kind::script, std::move(sql), {}), ec, diag);
}
result database::execute_many(std::string sql, std::vector<params> batch) const {
  return run_throwing(*infra_, make_many(std::move(sql), std::move(batch)));
}
result database::execute_many(std::string sql, std::vector<params> batch, error_code& ec,
                              diagnostics& diag) const {
  return run_sync(*infra_, make_many(std::move(sql), std::move(batch)), ec, diag);
}
void database::transaction(transaction_body body) const {
  run_throwing(*infra_, make_transaction(std::move(body)));
}
void database::transaction(transaction_body body, error_code& ec, diagnostics& diag) const {
  run_sync(*infra_, make_transaction(std::move(body)), ec, diag);
}
bool database::health_check() const noexcept {
  try {
    if (!infra_->running()) return false;
    error_code ec;
    diagnostics diag;
    auto r = fetch_one("SELECT 1", {}, ec, diag);
    return !ec && r && r->get<std::int64_t>(0) == 1;
  } catch (...) {
    return false;
  }
}
connection_lease database::acquire(std::optional<std::chrono::milliseconds> t) const {
  error_code ec;
  diagnostics diag;
  connection_lease lease = infra_->acquire(t, ec, diag);
  throw_if(ec, diag);
  return lease;
}

}  // namespace entity
