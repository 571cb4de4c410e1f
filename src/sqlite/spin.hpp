// Brief spinning before sleeping. Waking a sleeping thread costs tens of microseconds on these
// machines, more than most statements; a worker that just finished watches its queue for a
// little while first, so back-to-back requests are picked up without a wake-up.
#pragma once

#include <atomic>
#include <chrono>

namespace entity::sqlite_detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

/// Lets one thread at a time spin (several spinners would starve the threads doing real work
/// on a two-core machine).
class spin_gate {
 public:
  static constexpr std::chrono::microseconds spin_for{50};

  /// Spins while `idle()` holds, for at most spin_for; returns at once if another thread is
  /// already spinning at this gate.
  template <class Idle>
  void spin_while(Idle idle) noexcept {
    bool expected = false;
    if (!spinning_.compare_exchange_strong(expected, true, std::memory_order_acquire)) return;
    auto until = std::chrono::steady_clock::now() + spin_for;
    while (idle()) {
      for (int i = 0; i < 32; ++i) cpu_relax();
      if (std::chrono::steady_clock::now() >= until) break;
    }
    spinning_.store(false, std::memory_order_release);
  }

 private:
  std::atomic<bool> spinning_{false};
};

}  // namespace entity::sqlite_detail
