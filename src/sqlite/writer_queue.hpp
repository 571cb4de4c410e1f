// The SQLite engine's writer queue, as plain data: who waits to write, who commits next, and
// whom to wake when a commit is done. No threads, no locks, no clocks: the engine holds its
// writer mutex around every call and does the waking, so every rule here is tested on plain
// structs (tests/unit/sqlite/writer_queue_test.cpp).
//
// Three kinds of write wait in one queue, in arrival order:
//   - a sync write, whose caller waits (`waits`) and may lead a group itself;
//   - a deferred write, whose ticket's caller may lead a group on its event loop (`ticket`);
//   - a write due to the writer thread (`for_writer`, counted in writer_due()): an async write,
//     a deferred one whose ticket was dropped or could not lead, and any write handed back;
//   - a rider: a deferred write that arrived from the thread of a ticket not yet run (the
//     carrier) and gets no ticket of its own. The carrier's caller leads it along; whatever
//     riders its group did not take are due to the writer thread once the carrier has run or
//     was dropped (release_riders). Twenty coroutines storing at once post one ticket, not 20.
//     The completions of the carrier's group may start writes that ride on a new carrier
//     meanwhile: those are the new carrier's, not left to the writer thread.
// One leader at a time takes a group from the front (take_group), commits it with the lock
// released, and hands over (hand_over): the writer thread and the first waiting sync caller
// are woken, and either may lead next: a sync caller must never depend on the writer thread,
// which may be busy running a completion handler.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <thread>
#include <utility>
#include <vector>

namespace entity::sqlite_detail {

/// What the queue keeps of a write: a request type derives from it.
struct queued_write {
  bool waits = false;       ///< a sync caller waits for it, and may lead
  bool queued = false;      ///< in the queue (a sync caller's wait ends when it is not)
  bool for_writer = false;  ///< the writer thread must take it (counted in writer_due)
  /// It may run on a caller's thread (one statement, or one over many parameter sets).
  bool statement = true;
  /// Set by a leader on a caller's thread: it did not finish within the budget and goes back
  /// to the queue (requeue_rehanded). Only the leader touches it.
  bool rehand = false;
  /// A deferred write's ticket's hold on it: nulled once a leader takes the write or it is
  /// due to the writer thread, so the ticket knows it has nothing left to do.
  queued_write** ticket = nullptr;
  /// The carrier it rides on (push_carrier's number); 0 when it is no rider. Counted in riders.
  std::uint64_t rider_of = 0;
};

template <class Write>
class writer_queue {
 public:
  /// Who must be woken after leadership was released.
  struct wake_up {
    bool writer_thread = false;
    Write* sync_caller = nullptr;  ///< the first sync write still queued: it may lead
  };

  bool stopping() const noexcept { return stopping_; }
  /// No more writes are queued; the writer thread commits what is queued, then ends.
  void stop() noexcept { stopping_ = true; }

  // ---- arrivals ----

  /// An async write: the writer thread takes it.
  void push_for_writer(Write& w) {
    push(w);
    make_due(w);
  }
  /// A deferred write: its ticket's caller may lead, and `*ticket` points at it until then.
  /// The ticket carries the deferred writes that `thread` queues until it runs or is dropped
  /// (close_carrier). Returns the carrier's number, for release_riders.
  std::uint64_t push_carrier(Write& w, queued_write** ticket, std::thread::id thread) {
    *ticket = &w;
    w.ticket = ticket;
    push(w);
    carrier_ = ticket;
    carrier_thread_ = thread;
    return ++carriers_;
  }
  /// Queues `w` as a rider of the open carrier when `thread` is the carrier's; false (nothing
  /// queued) when there is no such carrier.
  bool push_rider(Write& w, std::thread::id thread) {
    if (!carrier_ || carrier_thread_ != thread) return false;
    w.rider_of = carriers_;
    ++riders_;
    push(w);
    return true;
  }
  /// The ticket `ticket` runs or is dropped: it carries no new riders.
  void close_carrier(queued_write** ticket) noexcept {
    if (carrier_ == ticket) carrier_ = nullptr;
  }
  /// Riders still queued.
  std::size_t riders() const noexcept { return riders_; }
  /// Every rider of carrier `carrier` still queued is due to the writer thread (its carrier
  /// has run or was dropped). Returns whether there was one.
  bool release_riders(std::uint64_t carrier) {
    if (riders_ == 0) return false;
    bool any = false;
    for (Write* w : q_) {
      if (w->rider_of == carrier) {
        make_due(*w);
        any = true;
      }
    }
    return any;
  }
  /// A sync write whose caller waits to be committed or to lead.
  void push_waiting(Write& w) {
    w.waits = true;
    ++sync_queued_;
    push(w);
  }
  /// A queued write the writer thread must take (a deferred write whose ticket did not lead).
  void make_due(Write& w) {
    release_ticket(w);
    drop_rider(w);
    if (!w.for_writer) {
      w.for_writer = true;
      ++writer_due_;
      writer_due_hint_.store(writer_due_, std::memory_order_release);
    }
  }

  // ---- leadership ----

  bool leader() const noexcept { return leader_; }
  void lead() noexcept { leader_ = true; }
  void stop_leading() noexcept { leader_ = false; }

  /// Takes up to `room` writes from the front into `group`; with `statements_only`, stops at
  /// the first one that must not run on a caller's thread.
  void take_group(std::vector<Write*>& group, std::size_t room, bool statements_only) {
    std::size_t n = 0;
    while (n < room && !q_.empty()) {
      Write* w = q_.front();
      if (statements_only && !w->statement) break;
      q_.pop_front();
      ++n;
      w->queued = false;
      if (w->waits) --sync_queued_;
      if (w->for_writer) {
        w->for_writer = false;
        --writer_due_;
      }
      release_ticket(*w);
      drop_rider(*w);
      group.push_back(w);
    }
    size_.fetch_sub(n, std::memory_order_relaxed);
    writer_due_hint_.store(writer_due_, std::memory_order_release);
  }

  /// The writes of `group` marked `rehand` leave it and go back to the front of the queue, in
  /// their order: sync ones for their callers to lead, the others for the writer thread.
  /// `reset` is applied to each (their outcome is cleared: they run again).
  template <class Reset>
  void requeue_rehanded(std::vector<Write*>& group, Reset&& reset) {
    std::vector<Write*> back;
    auto keep = group.begin();
    for (Write* w : group) {
      if (w->rehand)
        back.push_back(w);
      else
        *keep++ = w;
    }
    group.erase(keep, group.end());
    for (auto it = back.rbegin(); it != back.rend(); ++it) {
      Write* w = *it;
      w->rehand = false;
      reset(*w);
      w->queued = true;
      q_.push_front(w);
      if (w->waits)
        ++sync_queued_;
      else
        make_due(*w);
    }
    size_.fetch_add(back.size(), std::memory_order_release);
  }

  /// Whom to wake now that leadership is released: the writer thread when it has work (or
  /// must stop), and the first sync write still queued.
  wake_up hand_over() const {
    wake_up w;
    w.writer_thread = writer_due_ > 0 || checkpoint_due_ || stopping_;
    if (sync_queued_ > 0) {
      for (Write* x : q_) {
        if (x->waits) {
          w.sync_caller = x;
          break;
        }
      }
    }
    return w;
  }

  // ---- the writer thread ----

  /// The writer thread has something to do and may do it now.
  bool writer_may_run() const noexcept {
    return (writer_due_ > 0 || checkpoint_due_ || stopping_) && !leader_;
  }
  /// A commit on a caller's thread grew the log past the threshold: the writer thread
  /// checkpoints (and takes deferred writes meanwhile: see checkpoint_due()).
  void request_checkpoint() noexcept { checkpoint_due_ = true; }
  bool checkpoint_due() const noexcept { return checkpoint_due_; }
  /// True (and no longer due) when a checkpoint was requested.
  bool take_checkpoint() noexcept { return std::exchange(checkpoint_due_, false); }

  bool empty() const noexcept { return q_.empty(); }
  std::size_t writer_due() const noexcept { return writer_due_; }

  // ---- read without the lock ----

  /// The number of queued writes (for stats).
  std::size_t size_hint() const noexcept { return size_.load(std::memory_order_relaxed); }
  /// writer_due(), for the writer thread's spinning before it takes the lock.
  std::size_t writer_due_hint() const noexcept {
    return writer_due_hint_.load(std::memory_order_acquire);
  }

 private:
  void push(Write& w) {
    w.queued = true;
    q_.push_back(&w);
    size_.fetch_add(1, std::memory_order_release);
  }
  void drop_rider(queued_write& w) noexcept {
    if (w.rider_of != 0) {
      w.rider_of = 0;
      --riders_;
    }
  }
  static void release_ticket(queued_write& w) noexcept {
    if (w.ticket) {
      *w.ticket = nullptr;
      w.ticket = nullptr;
    }
  }

  std::deque<Write*> q_;
  bool leader_ = false;
  bool stopping_ = false;
  bool checkpoint_due_ = false;
  std::size_t sync_queued_ = 0;
  std::size_t writer_due_ = 0;
  queued_write** carrier_ = nullptr;  // the open carrier's ticket
  std::uint64_t carriers_ = 0;        // carriers so far: the open one's number
  std::thread::id carrier_thread_;
  std::size_t riders_ = 0;
  std::atomic<std::size_t> size_{0};
  std::atomic<std::size_t> writer_due_hint_{0};
};

}  // namespace entity::sqlite_detail
