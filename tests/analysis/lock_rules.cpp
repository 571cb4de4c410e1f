// Compiled by check_lock_rules.cmake with clang's thread safety analysis, twice: as it is, it
// must compile; with ENTITY_FORGET_THE_LOCK, the analysis must refuse it. So make analyze's
// check is known to bite on the project's own annotations (src/common/thread_safety.hpp).
#include "common/thread_safety.hpp"

namespace {

class counter {
 public:
  void add() {
#ifndef ENTITY_FORGET_THE_LOCK
    entity::detail::lock_guard lk(mu_);
#endif
    ++n_;
  }
  int read() {
    entity::detail::unique_lock lk(mu_);
    return n_;
  }

 private:
  entity::detail::mutex mu_;
  int n_ ENTITY_GUARDED_BY(mu_) = 0;
};

}  // namespace

int main() {
  counter c;
  c.add();
  return c.read() == 1 ? 0 : 1;
}
