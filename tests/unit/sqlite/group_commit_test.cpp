// Group commit (src/sqlite/group_commit.hpp) on one real writer connection, without threads:
// savepoints isolate a request's failure, requests past their deadline (on a clock the test
// holds) or cancelled run nothing, solo requests keep their place, a transaction SQLite rolled
// back entirely is run again without the request that failed, and a group on a caller's
// thread hands back what could not finish there.
#include "sqlite/group_commit.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "sqlite/connection.hpp"
#include "test_support.hpp"

namespace {

using entity::errc;
using entity::sqlite_detail::clock;
using entity::sqlite_detail::connection;
using entity::sqlite_detail::group_commit;
using entity::sqlite_detail::pending;
using entity::sqlite_detail::route;
using namespace std::chrono_literals;

// The clock the group compares deadlines with: still unless a test moves it. It starts at the
// real time, since the connection itself stops statements on the real clock.
clock::time_point held_now = clock::now();
clock::time_point held_clock() { return held_now; }

class GroupCommit : public testing::Test {
 protected:
  void SetUp() override {
    params_.path = dir_.file("group.db");
    writer_ = open_connection();
    run("CREATE TABLE t (name TEXT UNIQUE)");
  }

  std::unique_ptr<connection> open_connection() {
    entity::error_code ec;
    entity::diagnostics diag;
    auto c = connection::open(params_.path, false, connection::role::writer, params_, ec, diag);
    EXPECT_TRUE(c) << diag.to_string();
    return c;
  }

  void run(const std::string& sql) {
    entity::result ignored;
    entity::diagnostics diag;
    ASSERT_FALSE(writer_->run(sql, {}, 0, ignored, diag)) << diag.to_string();
  }

  std::vector<std::string> names() {
    entity::result r;
    entity::diagnostics diag;
    EXPECT_FALSE(writer_->run("SELECT name FROM t ORDER BY rowid", {}, 100, r, diag));
    std::vector<std::string> out;
    for (const auto& row : r.rows) out.push_back(row.get<std::string>(0));
    return out;
  }

  // An insert of `name`, due at the held clock's `due` from now.
  std::unique_ptr<pending> insert(const std::string& name, clock::duration due = 1h) {
    auto op = std::make_unique<pending>();
    op->req.sql = "INSERT INTO t VALUES (?)";
    op->req.args = {name};
    op->deadline = held_now + due;
    op->path = route::write;
    return op;
  }

  std::vector<pending*> group_of(const std::vector<std::unique_ptr<pending>>& ops) {
    std::vector<pending*> g;
    for (const auto& op : ops) g.push_back(op.get());
    return g;
  }

  entity::test::temp_dir dir_;
  entity::sqlite_params params_;
  std::unique_ptr<connection> writer_;
  group_commit committer_{250us, &held_clock};
};

using ops = std::vector<std::unique_ptr<pending>>;
using list = std::vector<std::string>;

TEST_F(GroupCommit, OneRequestsFailureIsRolledBackAloneAndTheRestCommitTogether) {
  ops g;
  g.push_back(insert("a"));
  g.push_back(insert("a"));  // UNIQUE: fails
  g.push_back(insert("c"));
  auto group = group_of(g);
  committer_.commit(*writer_, group, false);
  EXPECT_FALSE(g[0]->out.ec) << g[0]->out.diag.to_string();
  EXPECT_EQ(g[1]->out.ec, entity::condition::constraint);
  EXPECT_FALSE(g[2]->out.ec);
  EXPECT_EQ(names(), (list{"a", "c"}));
  EXPECT_EQ(committer_.groups(), 1u);
  EXPECT_EQ(committer_.grouped(), 2u);
  EXPECT_TRUE(writer_->autocommit());
}

TEST_F(GroupCommit, ALoneStatementCommitsByItself) {
  ops g;
  g.push_back(insert("alone"));
  auto group = group_of(g);
  committer_.commit(*writer_, group, false);
  EXPECT_FALSE(g[0]->out.ec);
  EXPECT_EQ(g[0]->out.res.rows_affected, 1u);
  EXPECT_EQ(names(), (list{"alone"}));
  EXPECT_EQ(committer_.groups(), 0u);  // not a group
}

TEST_F(GroupCommit, ARequestPastItsDeadlineOrCancelledRunsNothing) {
  ops g;
  g.push_back(insert("late", -1ms));
  g.push_back(insert("cancelled"));
  g[1]->req.cancel = std::make_shared<entity::cancellation>();
  g[1]->req.cancel->request();
  g.push_back(insert("on time", 1ms));
  auto group = group_of(g);
  committer_.commit(*writer_, group, false);
  EXPECT_EQ(g[0]->out.ec, errc::query_timeout);
  EXPECT_NE(g[0]->out.diag.message.find("waited for the writer"), std::string::npos);
  EXPECT_EQ(g[1]->out.ec, errc::cancelled);
  EXPECT_FALSE(g[2]->out.ec) << g[2]->out.diag.to_string();
  EXPECT_EQ(names(), (list{"on time"}));
}

TEST_F(GroupCommit, ASoloRequestRunsBetweenGroupsInItsPlace) {
  ops g;
  g.push_back(insert("a"));
  g.push_back(insert("b"));
  auto script = std::make_unique<pending>();
  script->req.kind = entity::request_kind::script;
  script->req.sql = "INSERT INTO t VALUES ('c'); INSERT INTO t VALUES ('d');";
  script->deadline = held_now + 1h;
  script->path = route::solo;
  g.push_back(std::move(script));
  g.push_back(insert("e"));
  auto group = group_of(g);
  committer_.commit(*writer_, group, false);
  for (const auto& op : g) EXPECT_FALSE(op->out.ec) << op->out.diag.to_string();
  EXPECT_EQ(names(), (list{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(committer_.groups(), 1u);  // a and b; e commits alone
}

TEST_F(GroupCommit, AFailureThatRollsBackTheTransactionRunsTheOthersAgainWithoutIt) {
  ops g;
  g.push_back(insert("before"));
  // Interrupted at its (real) deadline: SQLite rolls back the whole transaction, `before`
  // included, so the group runs again without it.
  auto slow = std::make_unique<pending>();
  slow->req.sql =
      "INSERT INTO t SELECT 'n' || x FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT "
      "x + 1 FROM c) SELECT x FROM c)";
  slow->path = route::write;
  g.push_back(std::move(slow));
  g.push_back(insert("after"));
  auto group = group_of(g);
  held_now = clock::now();
  for (auto& op : g) op->deadline = held_now + 10s;
  g[1]->deadline = held_now + 50ms;
  committer_.commit(*writer_, group, false);
  EXPECT_FALSE(g[0]->out.ec) << g[0]->out.diag.to_string();
  EXPECT_EQ(g[1]->out.ec, errc::query_timeout) << g[1]->out.diag.to_string();
  EXPECT_FALSE(g[2]->out.ec) << g[2]->out.diag.to_string();
  EXPECT_EQ(names(), (list{"before", "after"}));
  EXPECT_TRUE(writer_->autocommit());
}

TEST_F(GroupCommit, OnACallersThreadALockedFileHandsTheGroupBackUntouched) {
  auto other = open_connection();
  entity::result ignored;
  entity::diagnostics diag;
  ASSERT_FALSE(other->run("BEGIN IMMEDIATE", {}, 0, ignored, diag)) << diag.to_string();
  ops g;
  g.push_back(insert("a"));
  g.push_back(insert("b"));
  auto group = group_of(g);
  committer_.commit(*writer_, group, /*on_caller=*/true);
  // Nothing waited for the lock and nothing ran: the engine runs them again on its thread.
  for (const auto& op : g) {
    EXPECT_TRUE(op->rehand);
    EXPECT_EQ(op->out.ec, entity::condition::busy);
  }
  ASSERT_FALSE(other->run("ROLLBACK", {}, 0, ignored, diag));
  EXPECT_EQ(names(), list{});
  // The writer waits for locks again once the group is done.
  EXPECT_FALSE(writer_->over_budget());
}

}  // namespace
