// How layer 3 (memory, vector_store) writes an operation once and serves it to every caller.
//
// An operation is a struct derived from `operation<Owner, T>` with a static `start(op)`: a chain
// of steps, each a statement (or a transaction) on the layer below followed by the code that
// continues with its result. The operation's `runner` runs each step
//   - inline, on the calling thread, for the error_code& callers (run_inline) and the
//     throwing ones (throwing, around those): every step has finished when start returns;
//   - through the async API of the layer below for async callers (run_async): each
//     continuation runs on the caller's executor and takes the caller's cancellation slot
//     along, so cancelling the caller's operation stops the statement it waits for.
// The operation ends with succeed(v) or fail_with(ec, diag), once. Whatever its code throws
// (in start or in a continuation) ends it the same way: capture() turns the exception into
// (ec, diag), so a throwing check or decode fails the operation instead of escaping into the
// caller's event loop with the caller's handler lost. An exception thrown once the operation
// has ended (by the caller's own handler, called from a continuation) goes on as it came.
//
// Included only by translation units that already use asio (memory.cpp, vector_store.cpp).
#pragma once

#include <atomic>
#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "common/caller_binding.hpp"
#include "entity/database.hpp"
#include "entity/error.hpp"

namespace entity::detail {

/// Whatever `f` throws becomes (ec, diag); true when it threw nothing. An exception that is not
/// an entity::error is an errc::aborted carrying its what().
template <class F>
bool capture(F&& f, error_code& ec, diagnostics& diag) noexcept {
  try {
    f();
    return true;
  } catch (const error& e) {
    ec = e.code();
    diag = e.diag();
  } catch (const std::exception& e) {
    ec = make_error_code(errc::aborted);
    diag = {e.what(), {}};
  } catch (...) {
    ec = make_error_code(errc::aborted);
    diag = {"an exception that is not a std::exception", {}};
  }
  return false;
}

/// capture() of an exception already thrown.
inline void capture_current(error_code& ec, diagnostics& diag) noexcept {
  capture([] { throw; }, ec, diag);
}

/// What a step hands to its continuation. An operation without a value uses std::monostate.
template <class R>
struct step_result {
  error_code ec;
  diagnostics diag;
  R value{};
};

/// Runs the steps of one operation, inline or asynchronously (see the top of this file). One
/// step at a time: an async runner keeps the pending step's diagnostics, so it must outlive the
/// step (it is a member of the operation its continuation owns). Operations that run steps
/// side by side give each a runner of its own (fan_out).
class runner {
 public:
  /// Ends the operation `op` with the exception being handled; false when it had ended
  /// already. (Ending it may call the caller's handler, which may throw.)
  using failure = bool (*)(void* op);

  runner() = default;  // inline
  explicit runner(caller_binding to) : to_(std::move(to)) {}
  // A copy runs steps of its own (the pending step's diagnostics stay with the original) for
  // the same operation.
  runner(const runner& other)
      : to_(other.to_), group_(other.group_), op_(other.op_), fail_(other.fail_) {}
  runner& operator=(const runner&) = delete;

  /// Set by the operation that owns this runner (see operation).
  void fails(void* op, failure f) noexcept {
    op_ = op;
    fail_ = f;
  }
  /// Runs `f`; what it throws ends the operation, unless the operation had ended already: then
  /// the exception goes on.
  template <class F>
  void guarded(F&& f) const {
    try {
      f();
    } catch (...) {
      if (!fail_ || !fail_(op_)) throw;
    }
  }

  bool is_async() const noexcept { return to_.has_value(); }

  /// The general step: `sync(ec, diag)` returns the R (nothing, for std::monostate) for an
  /// inline runner; `async(diag, handler)` starts the async form, whose handler takes
  /// (error_code, R) or (error_code) for std::monostate. Then `next(step_result<R>)`.
  template <class R, class Sync, class Async, class Next>
  void step(Sync&& sync, Async&& async, Next&& next) const {
    if (!to_) {
      step_result<R> r;
      if constexpr (std::is_same_v<R, std::monostate>)
        sync(r.ec, r.diag);
      else
        r.value = sync(r.ec, r.diag);
      return guarded([&] { next(std::move(r)); });
    }
    pending_ = diagnostics{};
    if constexpr (std::is_same_v<R, std::monostate>) {
      async(pending_, (*to_)([self = this, next = std::forward<Next>(next)](error_code ec) mutable {
              self->guarded([&] { next(step_result<R>{ec, std::move(self->pending_), {}}); });
            }));
    } else {
      async(pending_,
            (*to_)([self = this, next = std::forward<Next>(next)](error_code ec, R v) mutable {
              self->guarded([&] {
                next(step_result<R>{ec, std::move(self->pending_), std::move(v)});
              });
            }));
    }
  }

  template <class Next>
  void execute(const database& db, std::string sql, params args, Next&& next) const {
    step<result>([&](error_code& ec,
                     diagnostics& d) { return db.execute(std::move(sql), std::move(args), ec, d); },
                 [&](diagnostics& d, auto h) {
                   db.async_execute(std::move(sql), std::move(args), d, std::move(h));
                 },
                 std::forward<Next>(next));
  }

  template <class Next>
  void fetch_one(const database& db, std::string sql, params args, Next&& next) const {
    step<std::optional<row>>(
        [&](error_code& ec, diagnostics& d) {
          return db.fetch_one(std::move(sql), std::move(args), ec, d);
        },
        [&](diagnostics& d, auto h) {
          db.async_fetch_one(std::move(sql), std::move(args), d, std::move(h));
        },
        std::forward<Next>(next));
  }

  template <class Next>
  void fetch_all(const database& db, std::string sql, params args, Next&& next) const {
    step<database::rows>(
        [&](error_code& ec, diagnostics& d) {
          return db.fetch_all(std::move(sql), std::move(args), ec, d);
        },
        [&](diagnostics& d, auto h) {
          db.async_fetch_all(std::move(sql), std::move(args), d, std::move(h));
        },
        std::forward<Next>(next));
  }

  template <class Next>
  void transaction(const database& db, transaction_body body, Next&& next) const {
    step<std::monostate>(
        [&](error_code& ec, diagnostics& d) { db.transaction(std::move(body), ec, d); },
        [&](diagnostics& d, auto h) { db.async_transaction(std::move(body), d, std::move(h)); },
        std::forward<Next>(next));
  }

  /// `n` runners for steps that run side by side, each cancelled when this one's caller is.
  /// The group (and the cancellation signals) lives as long as the runners.
  std::vector<runner> fan_out(std::size_t n) const {
    std::vector<runner> out;
    out.reserve(n);
    if (!to_ || !to_->slot.is_connected()) {
      for (std::size_t i = 0; i < n; ++i) out.push_back(*this);
      return out;
    }
    auto group = cancellation_fan_out::connect(to_->slot, n);
    for (std::size_t i = 0; i < n; ++i) {
      runner r(caller_binding{to_->executor, group->slot(i)});
      r.group_ = group;
      r.fails(op_, fail_);
      out.push_back(std::move(r));
    }
    return out;
  }

 private:
  std::optional<caller_binding> to_;
  mutable diagnostics pending_;  // the diagnostics of the async step in progress
  std::shared_ptr<cancellation_fan_out> group_;
  void* op_ = nullptr;
  failure fail_ = nullptr;
};

/// The completion handler of an async operation with a value of type T (none: std::monostate).
template <class T>
using handler_of = std::conditional_t<std::is_same_v<T, std::monostate>,
                                      boost::asio::any_completion_handler<void(error_code)>,
                                      boost::asio::any_completion_handler<void(error_code, T)>>;

/// Calls `h` with (ec, v), or (ec) for an operation without a value.
template <class T, class Handler>
void complete(Handler& h, error_code ec, T& v) {
  if constexpr (std::is_same_v<T, std::monostate>)
    std::move(h)(ec);
  else
    std::move(h)(ec, std::move(v));
}

/// Where an inline operation's end is written: the caller's (ec, diag) and the value.
template <class T>
struct inline_end {
  error_code& ec;
  diagnostics& diag;
  std::optional<T> value;
};

/// The state every operation carries from step to step. `st` keeps the layer below (and with
/// it the engine) alive; it is let go before the caller hears the end: a caller who then drops
/// its own handles must not leave the engine's last owner on one of the engine's threads, which
/// cannot shut the engine down from there. The end goes to `sink` (inline) or `handler`.
template <class Owner, class T>
struct operation {
  using value_type = T;
  Owner st;
  runner run;
  inline_end<T>* sink = nullptr;
  // Async: the caller's handler (only ever move-constructed: Boost 1.81's any_completion_handler
  // move-assignment wraps the handler in itself), its diagnostics, and whether the starting
  // call is still under way.
  std::optional<handler_of<T>> handler;
  diagnostics* caller_diag = nullptr;
  std::atomic<bool> starting{true};

  operation(Owner o, runner r) : st(std::move(o)), run(std::move(r)) {
    run.fails(this, [](void* self) {
      auto& op = *static_cast<operation*>(self);
      if (op.ended.load(std::memory_order_acquire)) return false;
      error_code ec;
      diagnostics diag;
      capture_current(ec, diag);
      op.fail_with(ec, std::move(diag));
      return true;
    });
  }
  operation(const operation&) = delete;
  operation& operator=(const operation&) = delete;

  /// Ends the operation; the first end counts, later ones do nothing.
  void succeed(T v) { end(error_code{}, diagnostics{}, std::move(v)); }
  void fail_with(error_code ec, diagnostics diag) { end(ec, std::move(diag), T{}); }

 private:
  std::atomic<bool> ended{false};

  void end(error_code ec, diagnostics diag, T v) {
    if (ended.exchange(true, std::memory_order_acq_rel)) return;
    st = Owner{};
    if (sink) {
      sink->ec = ec;
      if (ec) sink->diag = std::move(diag);
      sink->value.emplace(std::move(v));
      return;
    }
    if (ec && caller_diag) *caller_diag = std::move(diag);
    handler_of<T> h(std::move(*handler));
    handler.reset();
    // Every step's continuation runs on the handler's executor: an end reached in one calls
    // the handler where it is. One reached inside the starting call (bad input, an empty
    // batch) is delivered later, as asio requires: through a thread of the system executor,
    // then on the handler's executor (a type-erased executor cannot be required to be
    // non-blocking, hence the hop).
    if (!starting.load(std::memory_order_acquire)) return complete<T>(h, ec, v);
    namespace asio = boost::asio;
    auto work = asio::make_work_guard(h);  // keeps the caller's executor running meanwhile
    asio::post(asio::system_executor(),
               [h = std::move(h), work = std::move(work), ec, v = std::move(v)]() mutable {
                 auto ex = work.get_executor();
                 asio::dispatch(ex, [h = std::move(h), ec, v = std::move(v)]() mutable {
                   complete<T>(h, ec, v);
                 });
               });
  }
};

/// Runs an operation inline: its value, or T{} with (ec, diag) set on failure. Every step of
/// an inline operation has ended when Op::start returns, so the operation lives on this frame
/// and the shared_ptr its steps pass along owns nothing (no allocation, no reference counts).
template <class Op, class Owner, class Init>
typename Op::value_type run_inline(Owner owner, error_code& ec, diagnostics& diag, Init&& init) {
  using T = typename Op::value_type;
  ec = {};
  inline_end<T> end{ec, diag, std::nullopt};
  Op op(std::move(owner), runner{});
  op.sink = &end;
  op.run.guarded([&] {
    init(op);
    Op::start(std::shared_ptr<Op>(std::shared_ptr<void>(), &op));
  });
  return end.value ? std::move(*end.value) : T{};
}

/// The throwing form of an error_code& call: `f(ec, diag)`'s value, or entity::error.
template <class F>
auto throwing(F&& f) {
  error_code ec;
  diagnostics diag;
  if constexpr (std::is_void_v<std::invoke_result_t<F&, error_code&, diagnostics&>>) {
    f(ec, diag);
    throw_if(ec, diag);
  } else {
    auto v = f(ec, diag);
    throw_if(ec, diag);
    return v;
  }
}

/// Starts an operation whose end calls `h` (see operation::end), filling `diag` (when given)
/// on failure.
template <class Op, class Owner, class Init>
void run_async(Owner owner, diagnostics* diag, handler_of<typename Op::value_type> h, Init&& init) {
  auto op = std::make_shared<Op>(std::move(owner), runner{caller_of(h)});
  op->handler.emplace(std::move(h));
  op->caller_diag = diag;
  op->run.guarded([&] {
    init(*op);
    Op::start(op);
  });
  op->starting.store(false, std::memory_order_release);
}

}  // namespace entity::detail
