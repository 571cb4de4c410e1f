// Which statements lately ran past the inline budget. A deferred request (an async request
// whose caller runs an event loop) first runs on its caller's thread, up to the budget; one
// that needs longer is interrupted there and starts again on an engine thread, so it costs the
// budget plus its own time. The engine asks this memory first, and sends a statement that
// overran last time straight to its threads; every retry_every-th time it is tried inline
// again, and a run within the budget forgets it, so a statement that became short (a table
// that shrank) comes back to the caller's thread.
//
// Plain code, no clock and no locks: a fixed table of atomic slots indexed by the statement's
// hash. Lossy by design: two statements sharing a slot evict each other, and concurrent
// updates of one slot may lose a count. Either only costs one budget's wait.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

namespace entity::sqlite_detail {

class overrun_memory {
 public:
  static constexpr std::size_t slots = 256;
  static constexpr unsigned retry_every = 16;

  /// Never 0 (a request whose hash is 0 was not deferred).
  static std::uint64_t hash_of(std::string_view sql) noexcept {
    const std::uint64_t h = std::hash<std::string_view>{}(sql);
    return h ? h : 1;
  }

  /// True when the statement of `hash` overran the budget when it last ran inline, except
  /// every retry_every-th time it is asked (then it is tried inline again).
  bool expect_overrun(std::uint64_t hash) noexcept {
    std::atomic<std::uint64_t>& slot = slot_of(hash);
    const std::uint64_t v = slot.load(std::memory_order_relaxed);
    if ((v & ~count_mask) != tag_of(hash)) return false;
    const std::uint64_t asked = ((v & count_mask) + 1) % retry_every;
    slot.store(tag_of(hash) | asked, std::memory_order_relaxed);
    return asked != 0;
  }

  /// The statement ran past the budget.
  void overran(std::uint64_t hash) noexcept {
    slot_of(hash).store(tag_of(hash), std::memory_order_relaxed);
  }

  /// The statement finished within the budget: it is forgotten.
  void fit(std::uint64_t hash) noexcept {
    std::atomic<std::uint64_t>& slot = slot_of(hash);
    std::uint64_t v = slot.load(std::memory_order_relaxed);
    if ((v & ~count_mask) == tag_of(hash))
      slot.compare_exchange_strong(v, 0, std::memory_order_relaxed);
  }

 private:
  static constexpr std::uint64_t count_mask = 0xff;
  static_assert(retry_every <= count_mask + 1);

  // The hash's bits above the count, never 0 (0 is an empty slot).
  static std::uint64_t tag_of(std::uint64_t hash) noexcept { return (hash & ~count_mask) | 0x100; }
  std::atomic<std::uint64_t>& slot_of(std::uint64_t hash) noexcept {
    return slots_[(hash ^ (hash >> 29)) % slots];
  }

  std::array<std::atomic<std::uint64_t>, slots> slots_{};
};

}  // namespace entity::sqlite_detail
