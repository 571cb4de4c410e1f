// The meeting point of an asyncio event loop and the engine.
//
// One loop_bridge per event loop: an entity::event_loop (event_loop.hpp). The handlers of the
// package's async calls are bound to its executor, so the engine may leave short work to the
// loop (infrastructure::defer) exactly as it does for an io_context.
// Everything posted to the executor lands in one queue:
//   - from the loop's own thread (a deferred ticket, a completion of inline work) it is run by
//     the call that started the operation, before that call returns, when the loop has had a
//     turn recently (see may_run_inline), or on the loop's next turn otherwise;
//   - from the engine's threads (completions of work the engine ran) it wakes the loop through
//     one eventfd registered with loop.add_reader: one write per batch, however many
//     completions the batch holds.
// The queue is run with the GIL released; the operations it completes are then handed to
// Python together, under the GIL once.
#pragma once

#include <Python.h>

#include <atomic>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/execution_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "entity/detail/unique_function.hpp"
#include "entity/error.hpp"
#include "entity/event_loop.hpp"

namespace entity::python {

/// A strong reference to a Python object that may be dropped on any thread: without the GIL
/// it takes it, and once the interpreter is finalizing it lets the object leak rather than
/// touch a dying interpreter.
class py_ref {
 public:
  py_ref() = default;
  /// Takes a new reference (the caller holds the GIL).
  static py_ref borrow(PyObject* o) noexcept {
    Py_XINCREF(o);
    return py_ref(o);
  }
  /// Adopts a reference the caller owns.
  static py_ref steal(PyObject* o) noexcept { return py_ref(o); }
  py_ref(py_ref&& other) noexcept : o_(other.o_) { other.o_ = nullptr; }
  py_ref& operator=(py_ref&& other) noexcept {
    if (this != &other) {
      reset();
      o_ = other.o_;
      other.o_ = nullptr;
    }
    return *this;
  }
  py_ref(const py_ref&) = delete;
  py_ref& operator=(const py_ref&) = delete;
  ~py_ref() { reset(); }

  PyObject* get() const noexcept { return o_; }
  explicit operator bool() const noexcept { return o_ != nullptr; }
  /// Gives up the reference to the caller.
  PyObject* release() noexcept {
    PyObject* o = o_;
    o_ = nullptr;
    return o;
  }
  void reset() noexcept;

 private:
  explicit py_ref(PyObject* o) noexcept : o_(o) {}
  PyObject* o_ = nullptr;
};

/// True once the interpreter has begun to finalize (no thread may take the GIL any more).
bool interpreter_finalizing() noexcept;

class loop_bridge;

/// One awaited operation: its asyncio future, what the engine answered, and the cancellation
/// signal its handler is bound to.
struct pending_op {
  std::shared_ptr<loop_bridge> bridge;
  py_ref future;
  diagnostics diag;
  error_code ec;
  /// Builds the Python result (under the GIL); empty for operations that return None.
  detail::unique_function<PyObject*()> make_result;
  /// Builds the exception to raise instead of the engine's error when there is a truer one (the
  /// exception a transaction function raised); may return null: the engine's error then.
  detail::unique_function<PyObject*()> make_error;
  boost::asio::cancellation_signal cancel;
  /// Handed to Python (its future was completed, or found cancelled): the future is gone then.
  bool delivered() const noexcept { return !future; }
};

class loop_bridge final : public event_loop, public std::enable_shared_from_this<loop_bridge> {
 public:
  /// A task may take operations that complete at once for this long before the loop gets a
  /// turn (other tasks, timers, I/O); then one operation waits for the loop's next turn.
  static constexpr std::chrono::microseconds inline_streak{1000};

  /// Registers the eventfd with `loop` (the caller holds the GIL). Throws on failure.
  static std::shared_ptr<loop_bridge> create(PyObject* loop);
  ~loop_bridge() override;
  loop_bridge(const loop_bridge&) = delete;
  loop_bridge& operator=(const loop_bridge&) = delete;

  /// What the handlers of this loop's operations are bound to.
  event_loop_executor executor() { return event_loop_executor(shared_from_this()); }
  boost::asio::execution_context& context() noexcept override { return context_; }
  PyObject* loop() const noexcept { return loop_raw_; }
  bool is_closed() {
    std::lock_guard lock(m_);
    return closed_;
  }

  /// Queues `f` to run on the loop's thread (any thread may call it).
  void post(detail::unique_function<void()> f) override;
  /// When an operation started on the loop's thread runs the work it left to the loop.
  enum class completes {
    /// Before the call that started it returns (unless the streak is spent: then on the loop's
    /// next turn). Reads: nothing is gained by waiting.
    at_once,
    /// When its future is first awaited, or on the loop's next turn: writes started together
    /// (asyncio.gather) are all queued by then, and the first ticket commits them as one group.
    with_its_group,
  };
  /// After an operation was started on the loop's thread (GIL held): runs what it queued, as
  /// `when` says; arranges for cancellation of the future to reach the operation while it is
  /// pending.
  void started(const std::shared_ptr<pending_op>& op, completes when);
  /// An operation of completes::with_its_group is awaited (GIL held): runs what is queued now,
  /// or on the loop's next turn when the streak is spent.
  void awaited(const std::shared_ptr<pending_op>& op);
  /// An operation's handler ran (on the loop's thread, GIL released): `op` is delivered to
  /// Python after the queue is empty.
  void finished(std::shared_ptr<pending_op> op);
  /// The loop has had a turn (GIL held): the eventfd's reader callback.
  void on_readable();

  /// What the bridge has done so far (the loop's thread only).
  struct counters {
    std::uint64_t wakeups = 0;      ///< times the eventfd woke the loop
    std::uint64_t completions = 0;  ///< operations handed back to Python
  };
  counters stats() const noexcept { return counters_; }
  /// The loop is gone or closing: operations still pending are cancelled, queued work is
  /// dropped (tickets go back to the engine's threads), later work is dropped as it comes.
  /// Called with the GIL held.
  void close();

 private:
  explicit loop_bridge(int fd);
  void close(bool loop_alive);
  bool queued();
  void drain();                   // GIL held: runs the queue now, then delivers
  void drain_now_or_next_turn();  // GIL held: drain() within the streak, else ensure_turn()
  void ensure_turn();             // GIL held: on_turn() runs on the loop's next turn
  void on_turn();
  void run_queue();  // GIL released
  void deliver();    // GIL held

  boost::asio::execution_context context_;
  PyObject* loop_raw_ = nullptr;  // borrowed: valid until loop_weak_'s callback closes us
  py_ref loop_weak_;              // a weak reference to the loop
  py_ref marker_;                 // the callable of on_turn()
  int fd_ = -1;
  std::thread::id loop_thread_;

  std::mutex m_;
  std::vector<detail::unique_function<void()>> queue_;  // guarded by m_
  bool signalled_ = false;                              // guarded by m_: the eventfd was written
  bool closed_ = false;                                 // guarded by m_

  // The loop's thread only.
  std::vector<std::shared_ptr<pending_op>> done_;
  std::vector<std::weak_ptr<pending_op>> pending_;  // operations not completed at once
  std::size_t pending_prune_at_ = 64;
  bool running_ = false;
  bool streak_ = false;
  bool turn_scheduled_ = false;
  counters counters_;
  std::chrono::steady_clock::time_point streak_start_{};
};

/// The bridge of the event loop running in this thread (creating it on first use), or null
/// with a Python RuntimeError set when no loop runs here. GIL held.
std::shared_ptr<loop_bridge> bridge_for_running_loop();

/// Drops every bridge (module teardown, interpreter exit).
void close_all_bridges();

}  // namespace entity::python
