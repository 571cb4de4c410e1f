// How memory and vector_store continue a caller's asynchronous operation with operations of
// their own: each continuation runs on the caller's executor and takes the caller's
// cancellation slot along, so cancelling the caller's operation reaches the statement it is
// waiting for (layer 2 connects the slot to the engine's request).
//
// Included only by translation units that already use asio (memory.cpp, vector_store.cpp).
#pragma once

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <cstddef>
#include <memory>
#include <utility>

namespace entity::detail {

/// The executor and cancellation slot of a caller's handler, taken before the handler moves
/// into the continuation that completes it.
struct caller_binding {
  boost::asio::any_completion_executor executor;
  boost::asio::cancellation_slot slot;

  /// `f`, to run on the caller's executor and to receive the caller's cancellations.
  /// REQUIRES: at most one operation at a time waits with the slot (a slot holds one handler);
  /// operations that run side by side take theirs from a cancellation_fan_out.
  template <class F>
  auto operator()(F&& f) const {
    return boost::asio::bind_cancellation_slot(
        slot, boost::asio::bind_executor(executor, std::forward<F>(f)));
  }
};

template <class Handler>
caller_binding caller_of(const Handler& h) {
  return {boost::asio::get_associated_executor(h),
          boost::asio::get_associated_cancellation_slot(h)};
}

/// One cancellation slot per operation of a group that runs side by side, all cancelled when
/// the caller's slot is. The caller's slot handler shares ownership of the signals, and so must
/// every operation's continuation: a signal outlives the operation waiting on its slot.
class cancellation_fan_out {
 public:
  /// REQUIRES: `caller` is connected.
  static std::shared_ptr<cancellation_fan_out> connect(boost::asio::cancellation_slot caller,
                                                       std::size_t n) {
    auto fan = std::shared_ptr<cancellation_fan_out>(new cancellation_fan_out(n));
    caller.assign([fan](boost::asio::cancellation_type type) {
      for (std::size_t i = 0; i < fan->n_; ++i) fan->signals_[i].emit(type);
    });
    return fan;
  }
  boost::asio::cancellation_slot slot(std::size_t i) { return signals_[i].slot(); }

 private:
  explicit cancellation_fan_out(std::size_t n)
      : signals_(std::make_unique<boost::asio::cancellation_signal[]>(n)), n_(n) {}
  std::unique_ptr<boost::asio::cancellation_signal[]> signals_;
  std::size_t n_;
};

}  // namespace entity::detail
