// The error model: entity's codes, SQLite's and PostgreSQL's, the portable conditions that
// compare across them, and the diagnostics that travel with an error.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <entity/entity.hpp>
#include <set>
#include <string>

#include "concurrency.hpp"

using entity::condition;
using entity::errc;

TEST(Error, EntityCodesHaveClearMessages) {
  entity::error_code ec = errc::not_started;
  EXPECT_EQ(ec.category(), entity::entity_category());
  EXPECT_STREQ(ec.category().name(), "entity");
  EXPECT_NE(ec.message().find("startup()"), std::string::npos) << ec.message();
  EXPECT_NE(entity::make_error_code(errc::shut_down).message().find("shut down"),
            std::string::npos);
  std::set<std::string> messages;
  for (int e = static_cast<int>(errc::not_started); e <= static_cast<int>(errc::over_budget); ++e) {
    std::string m = entity::make_error_code(static_cast<errc>(e)).message();
    EXPECT_FALSE(m.empty());
    EXPECT_EQ(m.find("unknown"), std::string::npos) << e;
    EXPECT_TRUE(messages.insert(m).second) << "two codes say the same: " << m;
  }
}

// Each code says what happened, not what another code means: the transaction-body wording
// belongs to no code but aborted, whose message covers every exception that ends an operation.
TEST(Error, EachFailureHasACodeOfItsOwn) {
  auto message = [](errc e) { return entity::make_error_code(e).message(); };
  EXPECT_NE(message(errc::aborted).find("exception"), std::string::npos);
  EXPECT_NE(message(errc::rolled_back).find("statement of the transaction failed"),
            std::string::npos);
  EXPECT_NE(message(errc::conflict).find("changed concurrently"), std::string::npos);
  EXPECT_NE(message(errc::over_budget).find("budget"), std::string::npos);
  for (errc e : {errc::rolled_back, errc::conflict, errc::over_budget})
    EXPECT_EQ(message(e).find("body"), std::string::npos) << message(e);
  // None of them is a timeout or a cancellation.
  for (errc e : {errc::aborted, errc::rolled_back, errc::conflict, errc::over_budget}) {
    EXPECT_NE(entity::make_error_code(e), condition::timeout);
    EXPECT_NE(entity::make_error_code(e), errc::cancelled);
  }
}

ENTITY_CONCURRENT_TEST(Error, TimeoutsMatchTheTimeoutCondition) {
  EXPECT_EQ(entity::make_error_code(errc::query_timeout), condition::timeout);
  EXPECT_EQ(entity::make_error_code(errc::pool_exhausted), condition::timeout);
  EXPECT_NE(entity::make_error_code(errc::shut_down), condition::timeout);
  EXPECT_EQ(entity::make_sqlite_error(SQLITE_INTERRUPT), condition::timeout);
  EXPECT_EQ(entity::make_postgres_error("57014"), condition::timeout);
}

ENTITY_CONCURRENT_TEST(Error, CancelledMatchesOperationCanceledAndNoCondition) {
  auto ec = entity::make_error_code(errc::cancelled);
  EXPECT_EQ(ec.message(), "the operation was cancelled by its caller");
  // One check serves entity's cancellations and asio's own (operation_aborted).
  EXPECT_TRUE(ec == boost::system::errc::operation_canceled);
  EXPECT_TRUE(boost::system::error_code(boost::system::errc::operation_canceled,
                                        boost::system::system_category()) ==
              boost::system::errc::operation_canceled);
  for (condition c : {condition::busy, condition::constraint, condition::syntax, condition::timeout,
                      condition::io})
    EXPECT_NE(ec, c);
}

TEST(Error, SqliteCodesMapToConditions) {
  auto ec = entity::make_sqlite_error(SQLITE_CONSTRAINT_PRIMARYKEY);
  EXPECT_EQ(ec.category(), entity::sqlite_category());
  EXPECT_EQ(ec.value(), SQLITE_CONSTRAINT_PRIMARYKEY);
  EXPECT_EQ(ec, condition::constraint);
  EXPECT_NE(ec, condition::syntax);
  EXPECT_EQ(ec.message(), sqlite3_errstr(SQLITE_CONSTRAINT_PRIMARYKEY));
  EXPECT_EQ(entity::make_sqlite_error(SQLITE_CONSTRAINT_NOTNULL), condition::constraint);
  EXPECT_EQ(entity::make_sqlite_error(SQLITE_BUSY), condition::busy);
  EXPECT_EQ(entity::make_sqlite_error(SQLITE_BUSY_SNAPSHOT), condition::busy);
  EXPECT_EQ(entity::make_sqlite_error(SQLITE_LOCKED), condition::busy);
  EXPECT_EQ(entity::make_sqlite_error(SQLITE_ERROR), condition::syntax);
  EXPECT_EQ(entity::make_sqlite_error(SQLITE_FULL), condition::io);
  EXPECT_EQ(entity::make_sqlite_error(SQLITE_IOERR_WRITE), condition::io);
  EXPECT_EQ(entity::make_sqlite_error(SQLITE_NOTADB), condition::io);
  EXPECT_EQ(entity::make_sqlite_error(SQLITE_READONLY), condition::io);
  EXPECT_NE(entity::make_sqlite_error(SQLITE_MISMATCH), condition::constraint);
}

TEST(Error, PostgresSqlstatesRoundTripAndMapToConditions) {
  for (std::string s : {"23505", "42P01", "57014", "40001", "XX000", "00000", "ZZZZZ"}) {
    auto ec = entity::make_postgres_error(s);
    EXPECT_EQ(ec.category(), entity::postgres_category());
    EXPECT_EQ(entity::postgres_sqlstate(ec), s);
    EXPECT_EQ(ec.message(), "SQLSTATE " + s);
  }
  EXPECT_EQ(entity::make_postgres_error("23505"), condition::constraint);
  EXPECT_EQ(entity::make_postgres_error("23502"), condition::constraint);
  EXPECT_EQ(entity::make_postgres_error("42601"), condition::syntax);
  EXPECT_EQ(entity::make_postgres_error("40P01"), condition::busy);
  EXPECT_EQ(entity::make_postgres_error("53100"), condition::io);
  EXPECT_NE(entity::make_postgres_error("22012"), condition::constraint);
}

TEST(Error, ConditionsHaveMessages) {
  for (auto c : {condition::busy, condition::constraint, condition::syntax, condition::timeout,
                 condition::io}) {
    auto cond = entity::make_error_condition(c);
    EXPECT_EQ(cond.category(), entity::condition_category());
    EXPECT_FALSE(cond.message().empty());
    EXPECT_EQ(cond.message().find("unknown"), std::string::npos);
  }
}

TEST(Error, SqlExcerptKeepsAboutAHundredCharacters) {
  EXPECT_EQ(entity::sql_excerpt("  \n\tSELECT 1"), "SELECT 1");
  std::string long_sql = "SELECT " + std::string(300, 'x');
  std::string expected_long = long_sql.substr(0, 100);
  expected_long += "...";
  EXPECT_EQ(entity::sql_excerpt(long_sql), expected_long);
  // Never cuts a UTF-8 character in half: 99 ASCII characters then two-byte characters.
  std::string utf8 = std::string(99, 'a');
  for (int i = 0; i < 10; ++i) utf8 += "\xc3\xa9";
  std::string expected(99, 'a');
  expected += "...";
  EXPECT_EQ(entity::sql_excerpt(utf8), expected);
}

TEST(Error, DiagnosticsRenderMessageAndSql) {
  entity::diagnostics d;
  EXPECT_EQ(d.to_string(), "");
  d.message = "no such table: t";
  EXPECT_EQ(d.to_string(), "no such table: t");
  d.sql = "SELECT * FROM t";
  EXPECT_EQ(d.to_string(), "no such table: t (sql: SELECT * FROM t)");
  d.message.clear();
  EXPECT_EQ(d.to_string(), "(sql: SELECT * FROM t)");
  d.clear();
  EXPECT_TRUE(d.message.empty() && d.sql.empty());
}

TEST(Error, TheCodesOwnTextIsSaidOnce) {
  const auto io = entity::make_sqlite_error(SQLITE_IOERR_WRITE);
  const std::string text = io.message();
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(std::string(entity::error(io, {text, "INSERT INTO t"}).what()),
            text + " (sql: INSERT INTO t)");
  EXPECT_EQ(std::string(entity::error(io, {text + " (File too large)", "INSERT INTO t"}).what()),
            text + " (File too large) (sql: INSERT INTO t)");
  // A message that merely begins with the same letters is the backend's own: kept whole.
  EXPECT_EQ(std::string(entity::error(io, {text + "s everywhere", ""}).what()),
            text + ": " + text + "s everywhere");
}

TEST(Error, ExceptionCarriesCodeAndDiagnostics) {
  entity::error e(entity::make_sqlite_error(SQLITE_ERROR), {"no such table: t", "SELECT * FROM t"});
  EXPECT_EQ(e.code(), condition::syntax);
  EXPECT_EQ(e.diag().message, "no such table: t");
  std::string what = e.what();
  EXPECT_NE(what.find("no such table: t"), std::string::npos) << what;
  EXPECT_NE(what.find("SELECT * FROM t"), std::string::npos) << what;
  // It is a system_error, so generic handlers see the code too.
  try {
    throw e;
  } catch (const boost::system::system_error& se) {
    EXPECT_EQ(se.code(), condition::syntax);
  }

  entity::error plain(errc::shut_down, {});
  EXPECT_EQ(std::string(plain.what()), entity::make_error_code(errc::shut_down).message());

  EXPECT_NO_THROW(entity::throw_if({}, {"ignored", ""}));
  try {
    entity::throw_if(errc::invalid_argument, {"bad name", ""});
    FAIL() << "throw_if did not throw";
  } catch (const entity::error& ex) {
    EXPECT_EQ(ex.code(), errc::invalid_argument);
    EXPECT_NE(std::string(ex.what()).find("bad name"), std::string::npos);
  }
}
