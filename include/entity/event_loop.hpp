// entity-db: event loops other than asio's own, as homes for short async work.
//
// When an async operation's handler is bound to an event loop's executor, the engine may run
// short work on that loop instead of handing it to its own threads and back (database.hpp,
// infrastructure::defer). asio's own loops (io_context, any_io_executor, their strands) are
// recognised as they are. Any other loop (another language's event loop, a GUI's) takes part by
// implementing `event_loop` and binding its handlers to an `event_loop_executor` of it:
//
//   auto ex = entity::event_loop_executor(my_loop);   // std::shared_ptr<my_loop_type>
//   db.async_execute(sql, args, asio::bind_executor(ex, handler));
//
// Thread safety: post() is called from any thread, concurrently.
#pragma once

#include <boost/asio/execution.hpp>
#include <boost/asio/execution_context.hpp>
#include <memory>
#include <utility>

#include "entity/detail/unique_function.hpp"

namespace entity {

/// A loop that runs posted functions, in order, on its own thread, never inside post().
class event_loop {
 public:
  virtual ~event_loop() = default;
  /// Queues `f` to run on the loop's thread. A loop that can no longer run it (it is closing)
  /// destroys it instead: work posted by the engine then returns to the engine's threads.
  virtual void post(detail::unique_function<void()> f) = 0;
  /// The execution context asio's executor model asks an executor for.
  virtual boost::asio::execution_context& context() noexcept = 0;
};

/// An asio executor (the standard executor model, never blocking) over an event_loop.
class event_loop_executor {
 public:
  explicit event_loop_executor(std::shared_ptr<event_loop> loop) noexcept
      : loop_(std::move(loop)) {}

  boost::asio::execution_context& query(boost::asio::execution::context_t) const noexcept {
    return loop_->context();
  }
  static constexpr boost::asio::execution::blocking_t query(
      boost::asio::execution::blocking_t) noexcept {
    return boost::asio::execution::blocking.never;
  }
  event_loop_executor require(boost::asio::execution::blocking_t::never_t) const noexcept {
    return *this;
  }
  template <class F>
  void execute(F&& f) const {
    loop_->post(detail::unique_function<void()>(std::forward<F>(f)));
  }
  const std::shared_ptr<event_loop>& loop() const noexcept { return loop_; }

  friend bool operator==(const event_loop_executor& a, const event_loop_executor& b) noexcept {
    return a.loop_ == b.loop_;
  }
  friend bool operator!=(const event_loop_executor& a, const event_loop_executor& b) noexcept {
    return a.loop_ != b.loop_;
  }

 private:
  std::shared_ptr<event_loop> loop_;
};

}  // namespace entity
