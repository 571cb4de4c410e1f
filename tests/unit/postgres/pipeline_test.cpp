// The PostgreSQL engine's pipeline bookkeeping (src/postgres/pipeline.hpp) on results made
// without a server (PQmakeEmptyPGresult): where each result goes, which SQL the first error
// names, when a round trip is over, and that results out of step end the reading instead of
// waiting for ever. A made error result has no SQLSTATE, so its error is a connection_error.
#include "postgres/pipeline.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using entity::outcome;
using entity::postgres_detail::pipeline;
using entity::postgres_detail::pipeline_entry;

PGresult* made(ExecStatusType status) { return PQmakeEmptyPGresult(nullptr, status); }

// A result of `n` rows of one int4 column `k`, valued 0, 1, ...
PGresult* rows(int n) {
  PGresult* r = made(PGRES_TUPLES_OK);
  PGresAttDesc column{};
  column.name = const_cast<char*>("k");
  column.typid = 23;  // int4
  column.typlen = 4;
  column.atttypmod = -1;
  EXPECT_EQ(PQsetResultAttrs(r, 1, &column), 1);
  for (int i = 0; i < n; ++i) {
    std::string v = std::to_string(i);
    EXPECT_EQ(PQsetvalue(r, i, 0, v.data(), static_cast<int>(v.size())), 1);
  }
  return r;
}

// Feeds one command's results: `r`, then the null that ends them.
void answer(pipeline& p, PGresult* r, outcome& out) {
  p.take(r, out);
  p.take(nullptr, out);
}

TEST(Pipeline, StatementResultsGoToTheCallerAndOwnCommandsAreDropped) {
  pipeline p(nullptr);
  outcome out;
  p.sent(pipeline_entry::own_command, "BEGIN");
  p.sent(pipeline_entry::statement, "SELECT k FROM t", 3);
  p.sent(pipeline_entry::own_command, "SELECT 'own'");
  p.sent(pipeline_entry::statement, "SELECT k FROM t", 3);
  p.sent(pipeline_entry::own_command, "COMMIT");
  p.synced();
  EXPECT_EQ(p.size(), 6u);
  answer(p, made(PGRES_COMMAND_OK), out);
  answer(p, rows(2), out);
  answer(p, rows(5), out);  // the engine's own rows: not the caller's
  answer(p, rows(2), out);  // up to max_rows in all
  answer(p, made(PGRES_COMMAND_OK), out);
  EXPECT_TRUE(p.awaiting());
  p.take(made(PGRES_PIPELINE_SYNC), out);
  EXPECT_FALSE(p.awaiting());
  EXPECT_TRUE(p.empty());
  EXPECT_FALSE(out.ec) << out.diag.message;
  EXPECT_FALSE(p.failed());
  ASSERT_EQ(out.res.rows.size(), 3u);
  EXPECT_EQ(out.res.rows[0].get<std::int64_t>(0), 0);
  EXPECT_EQ(out.res.rows[1].get<std::int64_t>(0), 1);
  EXPECT_EQ(out.res.rows[2].get<std::int64_t>(0), 0);
}

TEST(Pipeline, TheFirstErrorNamesTheStatementItCameFrom) {
  pipeline p(nullptr);
  outcome out;
  p.sent(pipeline_entry::own_command, "BEGIN");
  p.sent(pipeline_entry::statement, "INSERT INTO t VALUES ($1)");
  p.sent(pipeline_entry::statement, "INSERT INTO t VALUES ($1)");
  p.sent(pipeline_entry::statement, "INSERT INTO u VALUES ($1)");
  p.sent(pipeline_entry::statement, "INSERT INTO t VALUES ($1)");
  p.sent(pipeline_entry::own_command, "COMMIT");
  p.synced();
  answer(p, made(PGRES_COMMAND_OK), out);
  answer(p, made(PGRES_COMMAND_OK), out);
  answer(p, made(PGRES_COMMAND_OK), out);
  answer(p, made(PGRES_FATAL_ERROR), out);
  // The server skips the rest up to the sync point.
  answer(p, made(PGRES_PIPELINE_ABORTED), out);
  answer(p, made(PGRES_PIPELINE_ABORTED), out);
  p.take(made(PGRES_PIPELINE_SYNC), out);
  EXPECT_FALSE(p.awaiting());
  EXPECT_FALSE(p.failed());  // an error of the server's: the connection is fine
  EXPECT_EQ(out.ec, entity::errc::connection_error);
  EXPECT_EQ(out.diag.sql, "INSERT INTO u VALUES ($1)");
}

TEST(Pipeline, AnOwnCommandsErrorNamesItAndALaterOneDoesNotReplaceIt) {
  pipeline p(nullptr);
  outcome out;
  p.sent(pipeline_entry::own_command, "SET LOCAL statement_timeout = 10");
  p.sent(pipeline_entry::statement, "INSERT INTO t VALUES ($1)");
  p.synced();
  p.sent(pipeline_entry::own_command, "ROLLBACK");
  p.synced();
  answer(p, made(PGRES_FATAL_ERROR), out);
  answer(p, made(PGRES_PIPELINE_ABORTED), out);
  p.take(made(PGRES_PIPELINE_SYNC), out);
  EXPECT_TRUE(p.awaiting());  // the second sync point is still due
  answer(p, made(PGRES_FATAL_ERROR), out);
  p.take(made(PGRES_PIPELINE_SYNC), out);
  EXPECT_FALSE(p.awaiting());
  EXPECT_EQ(out.diag.sql, "SET LOCAL statement_timeout = 10");
}

TEST(Pipeline, CommandsAfterTheLastSyncPointAreNotAwaited) {
  pipeline p(nullptr);
  EXPECT_TRUE(p.empty());
  EXPECT_FALSE(p.awaiting());
  p.sent(pipeline_entry::statement, "INSERT INTO t VALUES ($1)");
  p.sent(pipeline_entry::statement, "INSERT INTO t VALUES ($1)");
  EXPECT_EQ(p.size(), 2u);
  EXPECT_FALSE(p.awaiting());
  p.synced();
  EXPECT_TRUE(p.awaiting());
}

TEST(Pipeline, AFailedSettingIsNoErrorOfTheCallers) {
  pipeline p(nullptr);
  outcome out;
  p.sent(pipeline_entry::setting, "SELECT k FROM t");
  p.synced();
  p.sent(pipeline_entry::statement, "SELECT k FROM t", 10);
  p.synced();
  answer(p, made(PGRES_FATAL_ERROR), out);
  p.take(made(PGRES_PIPELINE_SYNC), out);
  answer(p, rows(1), out);
  p.take(made(PGRES_PIPELINE_SYNC), out);
  EXPECT_FALSE(p.awaiting());
  EXPECT_FALSE(out.ec) << out.diag.message;
  EXPECT_EQ(out.res.rows.size(), 1u);
  EXPECT_FALSE(p.settings_applied());

  pipeline q(nullptr);
  q.sent(pipeline_entry::setting, "SELECT 1");
  q.synced();
  EXPECT_FALSE(q.settings_applied());  // not answered yet
  answer(q, made(PGRES_COMMAND_OK), out);
  q.take(made(PGRES_PIPELINE_SYNC), out);
  EXPECT_TRUE(q.settings_applied());
}

// What libpq gives when the connection fails: a result without a SQLSTATE where the sync
// point is due, then null for ever.
TEST(Pipeline, ANullWhereTheSyncPointIsDueEndsTheReading) {
  pipeline p(nullptr);
  outcome out;
  p.sent(pipeline_entry::statement, "INSERT INTO t VALUES ($1)");
  p.sent(pipeline_entry::statement, "UPDATE t SET k = 2");
  p.synced();
  answer(p, made(PGRES_COMMAND_OK), out);
  answer(p, made(PGRES_PIPELINE_ABORTED), out);
  int takes = 0;
  for (; p.awaiting() && takes < 10; ++takes) p.take(nullptr, out);
  EXPECT_EQ(takes, 1);
  EXPECT_FALSE(p.awaiting());
  EXPECT_TRUE(p.empty());
  EXPECT_TRUE(p.failed());
  EXPECT_EQ(out.ec, entity::errc::connection_error);
  EXPECT_EQ(out.diag.sql, "UPDATE t SET k = 2");  // the command before the sync point
  EXPECT_FALSE(out.diag.message.empty());
}

TEST(Pipeline, ASyncPointWhereACommandsResultsWereDueEndsTheReading) {
  pipeline p(nullptr);
  outcome out;
  p.sent(pipeline_entry::statement, "INSERT INTO t VALUES ($1)");
  p.sent(pipeline_entry::statement, "INSERT INTO u VALUES ($1)");
  p.synced();
  answer(p, made(PGRES_COMMAND_OK), out);
  p.take(made(PGRES_PIPELINE_SYNC), out);
  EXPECT_FALSE(p.awaiting());
  EXPECT_TRUE(p.failed());
  EXPECT_EQ(out.ec, entity::errc::connection_error);
  EXPECT_EQ(out.diag.sql, "INSERT INTO u VALUES ($1)");
}

TEST(Pipeline, ALostConnectionNamesTheEntryDueUnlessAnErrorCameFirst) {
  pipeline p(nullptr);
  outcome out;
  p.sent(pipeline_entry::own_command, "BEGIN");
  p.sent(pipeline_entry::statement, "INSERT INTO t VALUES ($1)");
  p.synced();
  answer(p, made(PGRES_COMMAND_OK), out);
  p.lost(out);
  EXPECT_FALSE(p.awaiting());
  EXPECT_TRUE(p.failed());
  EXPECT_EQ(out.diag.sql, "INSERT INTO t VALUES ($1)");

  pipeline q(nullptr);
  outcome first;
  q.sent(pipeline_entry::statement, "INSERT INTO t VALUES ($1)");
  q.sent(pipeline_entry::own_command, "COMMIT");
  q.synced();
  answer(q, made(PGRES_FATAL_ERROR), first);
  first.diag.message = "duplicate key";
  q.lost(first);
  EXPECT_EQ(first.diag.message, "duplicate key");
  EXPECT_EQ(first.diag.sql, "INSERT INTO t VALUES ($1)");
}

TEST(Pipeline, ARoundTripAfterAnotherStartsAfresh) {
  pipeline p(nullptr);
  outcome out;
  p.sent(pipeline_entry::statement, "INSERT INTO t VALUES ($1)");
  p.synced();
  answer(p, made(PGRES_COMMAND_OK), out);
  p.take(made(PGRES_PIPELINE_SYNC), out);
  EXPECT_TRUE(p.empty());
  p.sent(pipeline_entry::statement, "INSERT INTO u VALUES ($1)");
  p.sent(pipeline_entry::statement, "INSERT INTO u VALUES ($1)");
  p.synced();
  answer(p, made(PGRES_COMMAND_OK), out);
  answer(p, made(PGRES_FATAL_ERROR), out);
  p.take(made(PGRES_PIPELINE_SYNC), out);
  EXPECT_FALSE(p.awaiting());
  EXPECT_FALSE(p.failed());
  EXPECT_EQ(out.diag.sql, "INSERT INTO u VALUES ($1)");
}

}  // namespace
