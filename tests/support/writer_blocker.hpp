// Holds a database's writer inside a transaction body until release(): on SQLite the writer
// connection, on a PostgreSQL pool of one its only connection. Requests made meanwhile queue
// behind it, so a test can act on them while they wait (group them, cancel them, time them out).
#pragma once

#include <gtest/gtest.h>

#include <latch>

#include "entity/entity.hpp"

namespace entity::test {

class writer_blocker {
 public:
  explicit writer_blocker(const entity::database& db) {
    db.async_transaction(
        [this](entity::session&) {
          entered_.count_down();
          release_.wait();
        },
        [this](entity::error_code ec) {
          ec_ = ec;
          done_.count_down();
        });
    entered_.wait();
  }
  writer_blocker(const writer_blocker&) = delete;
  writer_blocker& operator=(const writer_blocker&) = delete;
  ~writer_blocker() { release(); }

  /// Lets the body return and waits for its transaction to commit.
  void release() {
    if (released_) return;
    released_ = true;
    release_.count_down();
    done_.wait();
    EXPECT_FALSE(ec_) << ec_.message();
  }

 private:
  std::latch entered_{1}, release_{1}, done_{1};
  bool released_ = false;
  entity::error_code ec_;
};

}  // namespace entity::test
