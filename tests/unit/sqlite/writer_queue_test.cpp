// The SQLite engine's writer queue (src/sqlite/writer_queue.hpp) on plain structs: who is
// grouped with whom, what goes back after a budget ran out, whom a finished commit wakes.
// No threads and no clocks: the engine does the locking and the waking.
#include "sqlite/writer_queue.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace {

using entity::sqlite_detail::queued_write;

struct write : queued_write {
  explicit write(std::string n, bool is_statement = true) : name(std::move(n)) {
    statement = is_statement;
  }
  std::string name;
  int runs = 0;
};

using queue = entity::sqlite_detail::writer_queue<write>;

std::vector<std::string> names(const std::vector<write*>& group) {
  std::vector<std::string> out;
  for (const write* w : group) out.push_back(w->name);
  return out;
}

using list = std::vector<std::string>;

TEST(WriterQueue, AGroupIsTakenFromTheFrontInArrivalOrderUpToItsRoom) {
  queue q;
  write a("a"), b("b"), c("c");
  q.push_for_writer(a);
  q.push_waiting(b);
  q.push_for_writer(c);
  EXPECT_EQ(q.size_hint(), 3u);
  EXPECT_EQ(q.writer_due(), 2u);

  std::vector<write*> group;
  q.take_group(group, 2, false);
  EXPECT_EQ(names(group), (list{"a", "b"}));
  EXPECT_FALSE(a.queued);
  EXPECT_FALSE(b.queued);  // the sync caller's wait ends: it was taken
  EXPECT_TRUE(c.queued);
  EXPECT_EQ(q.writer_due(), 1u);
  EXPECT_EQ(q.writer_due_hint(), 1u);
  EXPECT_EQ(q.size_hint(), 1u);
}

TEST(WriterQueue, ALeaderOnACallersThreadStopsAtTheFirstWriteThatMustNotRunThere) {
  queue q;
  write a("a"), script("script", /*is_statement=*/false), b("b");
  q.push_for_writer(a);
  q.push_for_writer(script);
  q.push_for_writer(b);
  std::vector<write*> group;
  q.take_group(group, 10, /*statements_only=*/true);
  EXPECT_EQ(names(group), (list{"a"}));
  group.clear();
  // The writer thread takes anything.
  q.take_group(group, 10, false);
  EXPECT_EQ(names(group), (list{"script", "b"}));
  EXPECT_TRUE(q.empty());
}

TEST(WriterQueue, ADeferredWriteIsTheTicketsUntilALeaderTakesIt) {
  queue q;
  write d("deferred");
  queued_write* ticket = nullptr;
  q.push_carrier(d, &ticket, std::this_thread::get_id());
  EXPECT_EQ(ticket, &d);
  EXPECT_EQ(q.writer_due(), 0u);  // its caller may lead: the writer thread is not woken
  EXPECT_FALSE(q.writer_may_run());

  std::vector<write*> group;
  q.take_group(group, 10, true);
  EXPECT_EQ(names(group), (list{"deferred"}));
  EXPECT_EQ(ticket, nullptr);  // nothing left for the ticket to do
}

TEST(WriterQueue, ADeferredWriteWhoseTicketCannotLeadIsDueToTheWriterThreadOnce) {
  queue q;
  write d("deferred");
  queued_write* ticket = nullptr;
  q.push_carrier(d, &ticket, std::this_thread::get_id());
  q.make_due(d);
  q.make_due(d);  // the ticket ran and was then dropped: still counted once
  EXPECT_EQ(ticket, nullptr);
  EXPECT_EQ(q.writer_due(), 1u);
  EXPECT_TRUE(q.writer_may_run());
  std::vector<write*> group;
  q.take_group(group, 10, false);
  EXPECT_EQ(q.writer_due(), 0u);
  EXPECT_FALSE(q.writer_may_run());
}

TEST(WriterQueue, TheWriterThreadWaitsWhileSomeoneLeads) {
  queue q;
  write a("a");
  q.push_for_writer(a);
  EXPECT_TRUE(q.writer_may_run());
  q.lead();
  EXPECT_TRUE(q.leader());
  EXPECT_FALSE(q.writer_may_run());
  q.stop_leading();
  EXPECT_TRUE(q.writer_may_run());
}

TEST(WriterQueue, RehandedWritesGoBackToTheFrontInTheirOrderAndTheOthersStay) {
  queue q;
  write a("a"), b("b"), c("c"), later("later");
  write sync("sync");
  q.push_for_writer(a);
  q.push_waiting(sync);
  q.push_for_writer(b);
  q.push_for_writer(c);
  std::vector<write*> group;
  q.take_group(group, 4, true);
  q.push_for_writer(later);  // arrived while the group ran
  ASSERT_EQ(names(group), (list{"a", "sync", "b", "c"}));

  // The budget ran out at `sync` and again at `c`: both go back, `a` and `b` committed.
  sync.rehand = true;
  c.rehand = true;
  q.requeue_rehanded(group, [](write& w) { ++w.runs; });
  EXPECT_EQ(names(group), (list{"a", "b"}));
  EXPECT_FALSE(sync.rehand);
  EXPECT_EQ(sync.runs, 1);
  EXPECT_EQ(c.runs, 1);
  EXPECT_EQ(a.runs, 0);
  EXPECT_TRUE(sync.queued);
  // The async one is now the writer thread's; the sync one is its caller's to lead.
  EXPECT_TRUE(c.for_writer);
  EXPECT_FALSE(sync.for_writer);
  EXPECT_EQ(q.writer_due(), 2u);  // c and later

  std::vector<write*> next;
  q.take_group(next, 10, false);
  EXPECT_EQ(names(next), (list{"sync", "c", "later"}));
}

TEST(WriterQueue, HandingOverWakesTheWriterThreadForItsWorkAndTheFirstWaitingCaller) {
  queue q;
  EXPECT_FALSE(q.hand_over().writer_thread);
  EXPECT_EQ(q.hand_over().sync_caller, nullptr);

  write first("first"), second("second"), async("async");
  q.push_waiting(first);
  q.push_waiting(second);
  auto w = q.hand_over();
  EXPECT_FALSE(w.writer_thread);  // only sync callers wait: they lead themselves
  EXPECT_EQ(w.sync_caller, &first);

  q.push_for_writer(async);
  w = q.hand_over();
  // Both: the sync caller must not depend on the writer thread, which may be busy.
  EXPECT_TRUE(w.writer_thread);
  EXPECT_EQ(w.sync_caller, &first);

  std::vector<write*> group;
  q.take_group(group, 1, false);
  EXPECT_EQ(q.hand_over().sync_caller, &second);
}

TEST(WriterQueue, ACheckpointIsTheWriterThreadsWorkUntilItIsTaken) {
  queue q;
  EXPECT_FALSE(q.take_checkpoint());
  q.request_checkpoint();
  EXPECT_TRUE(q.checkpoint_due());
  EXPECT_TRUE(q.writer_may_run());
  EXPECT_TRUE(q.hand_over().writer_thread);
  EXPECT_TRUE(q.take_checkpoint());
  EXPECT_FALSE(q.checkpoint_due());
  EXPECT_FALSE(q.writer_may_run());
}

TEST(WriterQueue, StoppingWakesTheWriterThreadToCommitWhatIsLeft) {
  queue q;
  write a("a");
  q.push_waiting(a);
  EXPECT_FALSE(q.writer_may_run());
  q.stop();
  EXPECT_TRUE(q.stopping());
  EXPECT_TRUE(q.writer_may_run());
  EXPECT_TRUE(q.hand_over().writer_thread);
  EXPECT_FALSE(q.empty());  // it still commits `a` before it ends
}

TEST(WriterQueue, WritesDeferredFromTheCarriersThreadRideOnItsTicket) {
  queue q;
  const auto here = std::this_thread::get_id();
  write carrier("carrier"), r1("r1"), r2("r2");
  queued_write* ticket = nullptr;
  EXPECT_FALSE(q.push_rider(r1, here));  // no carrier yet: r1 needs a ticket of its own
  q.push_carrier(carrier, &ticket, here);
  EXPECT_TRUE(q.push_rider(r1, here));
  EXPECT_TRUE(q.push_rider(r2, here));
  EXPECT_EQ(q.riders(), 2u);
  EXPECT_EQ(q.writer_due(), 0u);  // the carrier's caller leads them: no one else is woken
  EXPECT_FALSE(q.writer_may_run());

  // Its ticket runs: no new riders, and its group takes them along.
  q.close_carrier(&ticket);
  write late("late");
  EXPECT_FALSE(q.push_rider(late, here));
  std::vector<write*> group;
  q.take_group(group, 10, true);
  EXPECT_EQ(names(group), (list{"carrier", "r1", "r2"}));
  EXPECT_EQ(q.riders(), 0u);
  EXPECT_EQ(ticket, nullptr);
}

TEST(WriterQueue, ACarrierCarriesOnlyItsOwnThreadsWrites) {
  queue q;
  write carrier("carrier"), elsewhere("elsewhere");
  queued_write* ticket = nullptr;
  q.push_carrier(carrier, &ticket, std::this_thread::get_id());
  std::thread other([&] { EXPECT_FALSE(q.push_rider(elsewhere, std::this_thread::get_id())); });
  other.join();
  EXPECT_EQ(q.riders(), 0u);
  EXPECT_EQ(q.size_hint(), 1u);
}

TEST(WriterQueue, RidersTheCarriersGroupLeftBehindAreDueToTheWriterThread) {
  queue q;
  const auto here = std::this_thread::get_id();
  write carrier("carrier"), r1("r1"), r2("r2"), r3("r3");
  queued_write* ticket = nullptr;
  auto number = q.push_carrier(carrier, &ticket, here);
  ASSERT_TRUE(q.push_rider(r1, here));
  ASSERT_TRUE(q.push_rider(r2, here));
  ASSERT_TRUE(q.push_rider(r3, here));
  q.close_carrier(&ticket);
  std::vector<write*> group;
  q.take_group(group, 2, true);  // room for two only
  EXPECT_EQ(names(group), (list{"carrier", "r1"}));
  EXPECT_EQ(q.riders(), 2u);
  EXPECT_TRUE(q.release_riders(number));
  EXPECT_EQ(q.riders(), 0u);
  EXPECT_EQ(q.writer_due(), 2u);
  EXPECT_TRUE(q.writer_may_run());
  group.clear();
  q.take_group(group, 10, false);
  EXPECT_EQ(names(group), (list{"r2", "r3"}));
  EXPECT_EQ(q.writer_due(), 0u);
}

TEST(WriterQueue, ADroppedCarriersWriteAndRidersAllGoToTheWriterThread) {
  queue q;
  const auto here = std::this_thread::get_id();
  write carrier("carrier"), r1("r1");
  queued_write* ticket = nullptr;
  auto number = q.push_carrier(carrier, &ticket, here);
  ASSERT_TRUE(q.push_rider(r1, here));
  // What the engine does when the ticket is destroyed unrun.
  q.close_carrier(&ticket);
  q.make_due(carrier);
  EXPECT_TRUE(q.release_riders(number));
  EXPECT_EQ(ticket, nullptr);
  EXPECT_EQ(q.writer_due(), 2u);
  std::vector<write*> group;
  q.take_group(group, 10, false);
  EXPECT_EQ(names(group), (list{"carrier", "r1"}));
}

TEST(WriterQueue, ReleasingACarriersRidersLeavesTheNextCarriersAlone) {
  queue q;
  const auto here = std::this_thread::get_id();
  write first("first"), old_rider("old rider"), second("second"), new_rider("new rider");
  queued_write* t1 = nullptr;
  queued_write* t2 = nullptr;
  auto n1 = q.push_carrier(first, &t1, here);
  ASSERT_TRUE(q.push_rider(old_rider, here));
  q.close_carrier(&t1);  // the first ticket runs...
  std::vector<write*> group;
  q.take_group(group, 1, true);  // ...and its group has room for itself only
  // Its completions start writes: a new carrier and its rider.
  auto n2 = q.push_carrier(second, &t2, here);
  ASSERT_NE(n1, n2);
  ASSERT_TRUE(q.push_rider(new_rider, here));
  EXPECT_TRUE(q.release_riders(n1));  // the first one's leftover goes to the writer thread
  EXPECT_EQ(q.writer_due(), 1u);
  EXPECT_EQ(q.riders(), 1u);  // the new rider waits for its own carrier
  EXPECT_FALSE(new_rider.for_writer);
  EXPECT_FALSE(q.release_riders(n1));
}

}  // namespace
