// What both engines (sqlite_infrastructure, postgres_infrastructure) share, written once: their
// lifecycle, the counters they keep of every request, and how an engine shuts down when asked
// to from one of its own threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "common/latency_histogram.hpp"
#include "entity/error.hpp"
#include "entity/infrastructure.hpp"

namespace entity::detail {

/// The deadline of a request given `timeout` from `now`: `now` itself for a timeout of zero or
/// less (the request times out at once), and the clock's farthest point for a timeout too long
/// to add (milliseconds::max(), a timeout of 1e10 s): a long timeout saturates, it never wraps
/// round into the past.
template <class TimePoint>
TimePoint deadline_after(TimePoint now, std::chrono::milliseconds timeout) noexcept {
  if (timeout.count() <= 0) return now;
  // Compared in milliseconds: converting `timeout` to the clock's finer unit could overflow.
  const auto room = std::chrono::duration_cast<std::chrono::milliseconds>(TimePoint::max() - now);
  if (timeout >= room) return TimePoint::max();
  return now + timeout;
}

/// The deadline of request `r` submitted at `now`: its own timeout, or the engine's
/// `query_timeout` (time spent queued counts).
template <class TimePoint>
TimePoint deadline_of(const request& r, TimePoint now, std::chrono::milliseconds query_timeout) {
  return deadline_after(now, r.timeout.value_or(query_timeout));
}

/// An engine's lifecycle: not started → starting → running → shut down, and from not started
/// straight to shut down. A failed startup leaves the engine not started (startup may be tried
/// again); a shut-down engine never starts again. Transitions are atomic: any thread may ask
/// whether the engine runs while another starts or stops it.
class lifecycle {
 public:
  /// True when the caller is to start the engine now (then started() or startup_failed());
  /// false when it runs already or another call is starting it. Throws shut_down after
  /// shutdown.
  bool begin_startup() {
    phase expected = phase::idle;
    if (phase_.compare_exchange_strong(expected, phase::starting, std::memory_order_acq_rel))
      return true;
    if (expected == phase::stopped)
      throw error(errc::shut_down,
                  {"an infrastructure cannot be started again after shutdown()", {}});
    return false;
  }
  void started() noexcept { phase_.store(phase::running, std::memory_order_release); }
  void startup_failed() noexcept { phase_.store(phase::idle, std::memory_order_release); }

  /// True when the engine was running and the caller is to stop it; an engine never started
  /// is shut down at once (false). An engine still starting is left to its startup (false).
  bool begin_shutdown() noexcept {
    phase expected = phase::running;
    if (phase_.compare_exchange_strong(expected, phase::stopped, std::memory_order_acq_rel))
      return true;
    if (expected == phase::idle) {
      // Another thread may start it meanwhile: only a still idle engine goes straight to stopped.
      phase_.compare_exchange_strong(expected, phase::stopped, std::memory_order_acq_rel);
    }
    return false;
  }

  bool running() const noexcept { return phase_.load(std::memory_order_acquire) == phase::running; }

  /// The error of a request that finds the engine not running: not_started (before startup,
  /// or while it starts) or shut_down.
  error_code not_running() const noexcept {
    return make_error_code(phase_.load(std::memory_order_acquire) == phase::stopped
                               ? errc::shut_down
                               : errc::not_started);
  }
  /// The same with its message in `diag` (the code's own: what() says it once).
  error_code not_running(diagnostics& diag) const {
    error_code ec = not_running();
    diag.message = ec.message();
    return ec;
  }

 private:
  enum class phase : int { idle, starting, running, stopped };
  std::atomic<phase> phase_{phase::idle};
};

/// The counters an engine keeps of the requests it finished: how many, how many failed and
/// timed out, and their latency from submission to completion.
class request_counters {
 public:
  using clock = std::chrono::steady_clock;

  void finished(const error_code& ec, clock::time_point submitted) noexcept {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - submitted);
    latency_.record(static_cast<std::uint64_t>(ns.count()));
    operations_.fetch_add(1, std::memory_order_relaxed);
    if (ec) {
      errors_.fetch_add(1, std::memory_order_relaxed);
      if (ec == errc::query_timeout) timeouts_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  /// Fills the counters' fields of `s`: operations, errors, timeouts, p50 and p99 latency.
  void fill(infrastructure_stats& s) const noexcept {
    s.operations = operations_.load(std::memory_order_relaxed);
    s.errors = errors_.load(std::memory_order_relaxed);
    s.timeouts = timeouts_.load(std::memory_order_relaxed);
    s.p50_latency_us = latency_.quantile(0.50) / 1000.0;
    s.p99_latency_us = latency_.quantile(0.99) / 1000.0;
  }

 private:
  std::atomic<std::uint64_t> operations_{0}, errors_{0}, timeouts_{0};
  latency_histogram latency_;
};

/// The engine whose work the current thread is doing (its worker threads, the completions and
/// transaction bodies it runs): marked for as long as the mark lives.
inline thread_local const void* engine_of_this_thread = nullptr;

class engine_thread_mark {
 public:
  explicit engine_thread_mark(const void* engine) noexcept : saved_(engine_of_this_thread) {
    engine_of_this_thread = engine;
  }
  ~engine_thread_mark() { engine_of_this_thread = saved_; }
  engine_thread_mark(const engine_thread_mark&) = delete;
  engine_thread_mark& operator=(const engine_thread_mark&) = delete;

 private:
  const void* saved_;
};

/// Ends a request submitted at `submitted`: counts it, then hands `out` to `done` on this
/// thread, marked as `engine`'s (see shut_down: a completion that drops the last handle on the
/// engine must not shut it down from inside the engine's own call). Both engines end every
/// request with a completion here.
inline void complete(const void* engine, request_counters& counters,
                     std::chrono::steady_clock::time_point submitted, completion done,
                     outcome&& out) {
  counters.finished(out.ec, submitted);
  engine_thread_mark mark(engine);
  done(std::move(out));
}

/// Shuts `engine` down. On one of the engine's own threads (a plain callback dropping the last
/// handle on the engine, say), waiting for that thread would wait for itself: another thread
/// does the shutdown, keeping the engine alive until it is done.
template <class Engine>
void shut_down(const std::shared_ptr<Engine>& engine) {
  if (engine_of_this_thread == engine.get()) {
    std::thread([engine] { engine->shutdown(); }).detach();
    return;
  }
  engine->shutdown();
}

}  // namespace entity::detail
