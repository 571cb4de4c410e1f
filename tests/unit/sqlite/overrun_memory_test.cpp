// The SQLite engine's memory of statements that ran past the inline budget
// (src/sqlite/overrun_memory.hpp), on plain hashes: no threads, no clock.
#include "sqlite/overrun_memory.hpp"

#include <gtest/gtest.h>

#include <cstdint>

namespace {

using entity::sqlite_detail::overrun_memory;

TEST(OverrunMemory, AStatementNeverSeenIsTriedInline) {
  overrun_memory m;
  EXPECT_FALSE(m.expect_overrun(overrun_memory::hash_of("SELECT 1")));
  m.fit(overrun_memory::hash_of("SELECT 1"));
  EXPECT_FALSE(m.expect_overrun(overrun_memory::hash_of("SELECT 1")));
}

TEST(OverrunMemory, AStatementThatOverranSkipsTheInlineRunButIsTriedAgainNowAndThen) {
  overrun_memory m;
  const std::uint64_t h = overrun_memory::hash_of("SELECT count(*) FROM big");
  m.overran(h);
  for (int round = 0; round < 3; ++round) {
    for (unsigned i = 1; i < overrun_memory::retry_every; ++i)
      EXPECT_TRUE(m.expect_overrun(h)) << "round " << round << ", ask " << i;
    EXPECT_FALSE(m.expect_overrun(h)) << "round " << round << ": the retry";
    m.overran(h);  // it overran again: the count starts over
  }
}

TEST(OverrunMemory, ARunWithinTheBudgetForgetsTheStatement) {
  overrun_memory m;
  const std::uint64_t h = overrun_memory::hash_of("SELECT * FROM shrunk");
  m.overran(h);
  EXPECT_TRUE(m.expect_overrun(h));
  m.fit(h);
  for (unsigned i = 0; i < 2 * overrun_memory::retry_every; ++i) EXPECT_FALSE(m.expect_overrun(h));
}

TEST(OverrunMemory, OtherStatementsAreNotAffected) {
  overrun_memory m;
  const std::uint64_t slow = overrun_memory::hash_of("SELECT slow()");
  m.overran(slow);
  // Whatever slots they fall in, statements that never overran are tried inline, and their
  // runs within the budget do not make the slow one forgotten unless they are the slow one.
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t other = overrun_memory::hash_of("SELECT " + std::to_string(i));
    if (other == slow) continue;
    EXPECT_FALSE(m.expect_overrun(other)) << i;
    m.fit(other);
  }
  EXPECT_TRUE(m.expect_overrun(slow));
}

TEST(OverrunMemory, AStatementSharingASlotEvictsTheOther) {
  overrun_memory m;
  // A statement whose hash shares a's slot, found by search: the test does not assume how a
  // slot is chosen.
  const std::uint64_t a = overrun_memory::hash_of("a");
  std::uint64_t b = 0;
  for (int i = 0; i < 100000 && !b; ++i) {
    const std::uint64_t h = overrun_memory::hash_of("b" + std::to_string(i));
    overrun_memory fresh;
    fresh.overran(a);
    fresh.overran(h);
    if (h != a && !fresh.expect_overrun(a)) b = h;
  }
  ASSERT_NE(b, 0u) << "no hash sharing a's slot in 100000 tries";
  m.overran(a);
  m.overran(b);
  EXPECT_FALSE(m.expect_overrun(a)) << "evicted: tried inline again, which is always safe";
  EXPECT_TRUE(m.expect_overrun(b));
}

}  // namespace
