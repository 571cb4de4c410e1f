// The PostgreSQL engine's statement cache (src/postgres/statement_cache.hpp) as plain data:
// hits and misses, least-recently-used eviction, names never reused, and what becomes of a
// name the server refused or called stale. And the pipeline's part: which prepares the server
// took, on results made without a server.
#include "postgres/statement_cache.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "postgres/connection.hpp"
#include "postgres/pipeline.hpp"

namespace {

using entity::postgres_detail::pipeline;
using entity::postgres_detail::pipeline_entry;
using entity::postgres_detail::statement_cache;
using entity::postgres_detail::statement_counters;

TEST(StatementCache, AMissReservesANameAndAHitReusesIt) {
  statement_counters counters;
  statement_cache cache(10, &counters);
  auto first = cache.lookup("SELECT $1");
  EXPECT_TRUE(first.prepare);
  const std::string name(first.name);
  auto again = cache.lookup("SELECT $1");
  EXPECT_FALSE(again.prepare);
  EXPECT_EQ(again.name, name);
  auto other = cache.lookup("SELECT $1 + 1");
  EXPECT_TRUE(other.prepare);
  EXPECT_NE(other.name, name);
  EXPECT_EQ(counters.hits.load(), 1u);
  EXPECT_EQ(counters.misses.load(), 2u);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_TRUE(cache.closing().empty());
}

TEST(StatementCache, TheLeastRecentlyUsedGoesAndIsToBeDeallocated) {
  statement_cache cache(2);
  const std::string a(cache.lookup("a").name);
  const std::string b(cache.lookup("b").name);
  EXPECT_FALSE(cache.lookup("a").prepare);  // a is now the most recently used
  auto c = cache.lookup("c");               // gives up b
  EXPECT_TRUE(c.prepare);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_TRUE(cache.holds("a"));
  EXPECT_FALSE(cache.holds("b"));
  ASSERT_EQ(cache.closing(), std::vector<std::string>{b});
  cache.closed();
  EXPECT_TRUE(cache.closing().empty());
  // b comes back under a new name: a DEALLOCATE of the old one can never hit it.
  auto b_again = cache.lookup("b");
  EXPECT_TRUE(b_again.prepare);
  EXPECT_NE(b_again.name, b);
  EXPECT_NE(b_again.name, a);
}

TEST(StatementCache, ARefusedPrepareLeavesNoName) {
  statement_cache cache(2);
  const std::string a(cache.lookup("a").name);
  cache.prepared(a, false);
  EXPECT_FALSE(cache.holds("a"));
  EXPECT_TRUE(cache.closing().empty());  // nothing was prepared: nothing to deallocate
  auto retry = cache.lookup("a");
  EXPECT_TRUE(retry.prepare);
  EXPECT_NE(retry.name, a);
  cache.prepared(retry.name, true);
  EXPECT_FALSE(cache.lookup("a").prepare);

  // A name given up before its prepare was answered, and then refused: not deallocated.
  statement_cache small(1);
  const std::string x(small.lookup("x").name);
  small.lookup("y");
  ASSERT_EQ(small.closing(), std::vector<std::string>{x});
  small.prepared(x, false);
  EXPECT_TRUE(small.closing().empty());
}

TEST(StatementCache, AStaleStatementIsForgottenAndDeallocated) {
  statement_cache cache(5);
  const std::string a(cache.lookup("a").name);
  cache.forget(a);
  EXPECT_FALSE(cache.holds("a"));
  ASSERT_EQ(cache.closing(), std::vector<std::string>{a});
  cache.forget(a);  // twice: nothing more
  EXPECT_EQ(cache.closing().size(), 1u);
  EXPECT_TRUE(cache.lookup("a").prepare);
}

TEST(StatementCache, ABlobParameterIsPartOfTheKey) {
  using entity::postgres_detail::statement_key;
  const std::string text = "SELECT length($1)";
  EXPECT_EQ(statement_key(text, {std::string("abc")}), statement_key(text, {std::int64_t{1}}));
  EXPECT_NE(statement_key(text, {std::string("abc")}),
            statement_key(text, {entity::blob(std::vector<std::byte>(3))}));
}

TEST(StatementCache, ABatchMixingBlobsAndTextIsNoOneStatement) {
  using entity::postgres_detail::same_parameter_types;
  const entity::blob b(std::vector<std::byte>(2));
  EXPECT_TRUE(same_parameter_types({{1, "a"}, {2, "b"}, {3, entity::null}}));
  EXPECT_TRUE(same_parameter_types({{1, b}, {2, b}}));
  EXPECT_FALSE(same_parameter_types({{1, b}, {2, "b"}}));
  EXPECT_FALSE(same_parameter_types({{1, "a"}, {2, b}}));
}

// The pipeline's part: the server's answer to each prepare goes to the cache; a prepare
// skipped after an earlier error was not prepared either.
TEST(StatementCache, APipelineSettlesItsPrepares) {
  statement_cache cache(5);
  const std::string a(cache.lookup("a").name);
  const std::string b(cache.lookup("b").name);
  pipeline p(nullptr);
  entity::outcome out;
  p.sent(pipeline_entry::prepare, "SELECT a", 0, a);
  p.sent(pipeline_entry::statement, "SELECT a", 10, a);
  p.synced();
  p.sent(pipeline_entry::own_command, "BEGIN");
  p.sent(pipeline_entry::prepare, "SELECT b", 0, b);
  p.sent(pipeline_entry::statement, "SELECT b", 10, b);
  p.synced();
  auto answer = [&](ExecStatusType status) {
    p.take(PQmakeEmptyPGresult(nullptr, status), out);
    p.take(nullptr, out);
  };
  answer(PGRES_COMMAND_OK);
  answer(PGRES_TUPLES_OK);
  p.take(PQmakeEmptyPGresult(nullptr, PGRES_PIPELINE_SYNC), out);
  answer(PGRES_FATAL_ERROR);  // BEGIN failed: the rest is skipped
  answer(PGRES_PIPELINE_ABORTED);
  answer(PGRES_PIPELINE_ABORTED);
  p.take(PQmakeEmptyPGresult(nullptr, PGRES_PIPELINE_SYNC), out);
  EXPECT_FALSE(p.awaiting());
  EXPECT_FALSE(p.saw_stale());
  p.settle(cache);
  EXPECT_TRUE(cache.holds("a"));
  EXPECT_FALSE(cache.holds("b"));
  EXPECT_TRUE(cache.closing().empty());
}

}  // namespace
