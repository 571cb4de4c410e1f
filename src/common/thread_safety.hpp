// Lock rules the compiler checks: clang's thread safety analysis (-Wthread-safety, see
// https://clang.llvm.org/docs/ThreadSafetyAnalysis.html) reads these annotations and fails the
// build where a member is touched without the mutex that guards it, or a function is called
// without the lock it requires (CMake makes that an error on clang: `make analyze`). The
// attributes are clang's; on other compilers they expand to nothing, and the wrappers below
// are the std types they hold, inline: no cost anywhere.
//
// libstdc++'s std::mutex carries no annotations, so the engine's internals lock through the
// thin wrappers here instead:
//   mutex, shared_mutex         the capabilities (GUARDED_BY names one of them);
//   lock_guard                  a scope holding a mutex (or a shared_mutex exclusively);
//   unique_lock                 the same, unlockable and relockable, whose std::unique_lock
//                               (native()) is what std::condition_variable waits with;
//   shared_lock                 a scope holding a shared_mutex shared, unlockable.
//
// What the analysis cannot follow:
//   - a lock handed to another function: the callee states REQUIRES(mu) and, if it unlocks
//     and relocks, names the mutex (unique_lock::unlock(mu), lock(mu)), since it cannot see
//     which mutex the lock it was handed holds;
//   - a lambda's body, which is a function of its own: a condition variable's predicate that
//     reads guarded members says REQUIRES(mu) itself (`[&]() ENTITY_REQUIRES(mu) { ... }`);
//   - a guarded member's part that is meant to be read without the lock (the writer queue's
//     atomic counts): a small accessor marked ENTITY_NO_THREAD_SAFETY_ANALYSIS, with a
//     comment saying why that is safe.
// What no annotation can state (fields that go from thread to thread with the request they
// belong to) is said in comments where they are declared.
#pragma once

#include <cassert>
#include <mutex>
#include <shared_mutex>

#if defined(__clang__)
#define ENTITY_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define ENTITY_THREAD_ANNOTATION(x)
#endif

/// A type whose objects are locks (`name` appears in the analysis's messages).
#define ENTITY_CAPABILITY(name) ENTITY_THREAD_ANNOTATION(capability(name))
/// An RAII type that holds the capabilities its constructor acquires until it is destroyed.
#define ENTITY_SCOPED_CAPABILITY ENTITY_THREAD_ANNOTATION(scoped_lockable)
/// A data member read and written only with `x` held (read with `x` held shared, at least).
#define ENTITY_GUARDED_BY(x) ENTITY_THREAD_ANNOTATION(guarded_by(x))
/// A pointer member whose pointee is read and written only with `x` held.
#define ENTITY_PT_GUARDED_BY(x) ENTITY_THREAD_ANNOTATION(pt_guarded_by(x))
/// The caller must hold the capabilities (exclusively; shared for the _SHARED form).
#define ENTITY_REQUIRES(...) ENTITY_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define ENTITY_REQUIRES_SHARED(...) \
  ENTITY_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
/// The function acquires (releases) the capabilities; with no argument, `*this`.
#define ENTITY_ACQUIRE(...) ENTITY_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ENTITY_ACQUIRE_SHARED(...) ENTITY_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define ENTITY_RELEASE(...) ENTITY_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define ENTITY_RELEASE_SHARED(...) ENTITY_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
/// The caller must not hold the capabilities (the function takes them itself).
#define ENTITY_EXCLUDES(...) ENTITY_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
/// The function's body is not analysed (its annotations still bind its callers). Only for a
/// body that the analysis cannot follow, with a comment saying why the body is right.
#define ENTITY_NO_THREAD_SAFETY_ANALYSIS ENTITY_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace entity::detail {

// The bodies below lock the std types, which the analysis knows nothing of: they are what the
// annotations describe, not code the analysis could check.

/// std::mutex, as a capability.
class ENTITY_CAPABILITY("mutex") mutex {
 public:
  void lock() ENTITY_ACQUIRE() ENTITY_NO_THREAD_SAFETY_ANALYSIS { m_.lock(); }
  void unlock() ENTITY_RELEASE() ENTITY_NO_THREAD_SAFETY_ANALYSIS { m_.unlock(); }

 private:
  friend class unique_lock;
  std::mutex m_;
};

/// std::shared_mutex, as a capability that may be held shared.
class ENTITY_CAPABILITY("shared_mutex") shared_mutex {
 public:
  void lock() ENTITY_ACQUIRE() ENTITY_NO_THREAD_SAFETY_ANALYSIS { m_.lock(); }
  void unlock() ENTITY_RELEASE() ENTITY_NO_THREAD_SAFETY_ANALYSIS { m_.unlock(); }
  void lock_shared() ENTITY_ACQUIRE_SHARED() ENTITY_NO_THREAD_SAFETY_ANALYSIS { m_.lock_shared(); }
  void unlock_shared() ENTITY_RELEASE_SHARED() ENTITY_NO_THREAD_SAFETY_ANALYSIS {
    m_.unlock_shared();
  }

 private:
  std::shared_mutex m_;
};

/// Holds `m` (a mutex, or a shared_mutex exclusively) from construction to destruction.
template <class Mutex>
class ENTITY_SCOPED_CAPABILITY lock_guard {
 public:
  explicit lock_guard(Mutex& m) ENTITY_ACQUIRE(m) : m_(m) { m_.lock(); }
  ~lock_guard() ENTITY_RELEASE() { m_.unlock(); }
  lock_guard(const lock_guard&) = delete;
  lock_guard& operator=(const lock_guard&) = delete;

 private:
  Mutex& m_;
};

/// Holds `m` from construction, but may unlock and relock it; releases it, if held, when
/// destroyed. Waits on a std::condition_variable with native().
class ENTITY_SCOPED_CAPABILITY unique_lock {
 public:
  explicit unique_lock(mutex& m) ENTITY_ACQUIRE(m) : lk_(m.m_) {}
  ~unique_lock() ENTITY_RELEASE() = default;
  unique_lock(const unique_lock&) = delete;
  unique_lock& operator=(const unique_lock&) = delete;

  /// In the function that made the lock.
  void lock() ENTITY_ACQUIRE() ENTITY_NO_THREAD_SAFETY_ANALYSIS { lk_.lock(); }
  void unlock() ENTITY_RELEASE() ENTITY_NO_THREAD_SAFETY_ANALYSIS { lk_.unlock(); }

  /// For a function handed this lock (by reference) that REQUIRES `m` and unlocks it for a
  /// while: `m` must be the mutex this lock holds. The analysis cannot see that, so the
  /// callee names it.
  void unlock(mutex& m) ENTITY_RELEASE(m) ENTITY_NO_THREAD_SAFETY_ANALYSIS {
    assert(lk_.mutex() == &m.m_);
    (void)m;
    lk_.unlock();
  }
  void lock(mutex& m) ENTITY_ACQUIRE(m) ENTITY_NO_THREAD_SAFETY_ANALYSIS {
    assert(lk_.mutex() == &m.m_);
    (void)m;
    lk_.lock();
  }

  /// The lock itself, for std::condition_variable::wait*: the mutex is held again when a
  /// wait returns, so the analysis, which does not see the wait, is right to assume it held.
  std::unique_lock<std::mutex>& native() noexcept { return lk_; }

 private:
  std::unique_lock<std::mutex> lk_;
};

/// Holds `m` shared from construction; may unlock it before it is destroyed.
class ENTITY_SCOPED_CAPABILITY shared_lock {
 public:
  explicit shared_lock(shared_mutex& m) ENTITY_ACQUIRE_SHARED(m) : m_(m) { m_.lock_shared(); }
  ~shared_lock() ENTITY_RELEASE() {
    if (held_) m_.unlock_shared();
  }
  shared_lock(const shared_lock&) = delete;
  shared_lock& operator=(const shared_lock&) = delete;

  void unlock() ENTITY_RELEASE() ENTITY_NO_THREAD_SAFETY_ANALYSIS {
    m_.unlock_shared();
    held_ = false;
  }

 private:
  shared_mutex& m_;
  bool held_ = true;
};

}  // namespace entity::detail
