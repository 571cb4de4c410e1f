// The `?` to `$n` translator of the PostgreSQL engine: placeholders become numbered parameters,
// and nothing inside literals, quoted identifiers, comments or dollar-quoted bodies changes.
#include "postgres/placeholders.hpp"

#include <gtest/gtest.h>

namespace {

using entity::postgres_detail::split_statements;
using entity::postgres_detail::translate;
using entity::postgres_detail::translate_placeholders;
using pieces = std::vector<std::string_view>;

TEST(PlaceholderTranslation, NumbersPlaceholdersInOrder) {
  EXPECT_EQ(translate_placeholders("SELECT ?"), "SELECT $1");
  EXPECT_EQ(translate_placeholders("INSERT INTO t (a, b, c) VALUES (?, ?, ?)"),
            "INSERT INTO t (a, b, c) VALUES ($1, $2, $3)");
  EXPECT_EQ(translate_placeholders("SELECT * FROM t WHERE a=? AND b>?"),
            "SELECT * FROM t WHERE a=$1 AND b>$2");
  EXPECT_EQ(translate_placeholders("SELECT ?,?"), "SELECT $1,$2");
}

TEST(PlaceholderTranslation, CountsPastNine) {
  std::string sql = "VALUES (";
  std::string want = "VALUES (";
  for (int i = 1; i <= 12; ++i) {
    sql += i > 1 ? ",?" : "?";
    want += (i > 1 ? ",$" : "$") + std::to_string(i);
  }
  EXPECT_EQ(translate_placeholders(sql + ")"), want + ")");
}

TEST(PlaceholderTranslation, LeavesSqlWithoutPlaceholdersAlone) {
  EXPECT_EQ(translate_placeholders(""), "");
  EXPECT_EQ(translate_placeholders("SELECT 1"), "SELECT 1");
  EXPECT_EQ(translate_placeholders("CREATE TABLE t (a int)"), "CREATE TABLE t (a int)");
}

TEST(PlaceholderTranslation, SkipsStringLiterals) {
  EXPECT_EQ(translate_placeholders("SELECT 'why?', ?"), "SELECT 'why?', $1");
  EXPECT_EQ(translate_placeholders("SELECT 'it''s ?', ?"), "SELECT 'it''s ?', $1");
  EXPECT_EQ(translate_placeholders("SELECT '', ?"), "SELECT '', $1");
  EXPECT_EQ(translate_placeholders("SELECT '?'||'?' || ?"), "SELECT '?'||'?' || $1");
}

TEST(PlaceholderTranslation, SkipsEscapeStrings) {
  EXPECT_EQ(translate_placeholders("SELECT E'a\\' ?', ?"), "SELECT E'a\\' ?', $1");
  EXPECT_EQ(translate_placeholders("SELECT e'\\\\', ?"), "SELECT e'\\\\', $1");
  // Outside an E string a backslash escapes nothing: the literal ends at the quote.
  EXPECT_EQ(translate_placeholders("SELECT 'a\\', ?"), "SELECT 'a\\', $1");
}

TEST(PlaceholderTranslation, SkipsQuotedIdentifiers) {
  EXPECT_EQ(translate_placeholders("SELECT \"a?b\" FROM t WHERE x = ?"),
            "SELECT \"a?b\" FROM t WHERE x = $1");
  EXPECT_EQ(translate_placeholders("SELECT \"a\"\"?\" , ?"), "SELECT \"a\"\"?\" , $1");
}

TEST(PlaceholderTranslation, SkipsLineComments) {
  EXPECT_EQ(translate_placeholders("SELECT ? -- is it ?\n, ?"), "SELECT $1 -- is it ?\n, $2");
  EXPECT_EQ(translate_placeholders("SELECT ? -- ? at the end"), "SELECT $1 -- ? at the end");
}

TEST(PlaceholderTranslation, SkipsBlockCommentsNestedToo) {
  EXPECT_EQ(translate_placeholders("SELECT /* ? */ ?"), "SELECT /* ? */ $1");
  EXPECT_EQ(translate_placeholders("SELECT /* a /* ? */ still ? */ ?"),
            "SELECT /* a /* ? */ still ? */ $1");
  EXPECT_EQ(translate_placeholders("SELECT ? /* unterminated ?"), "SELECT $1 /* unterminated ?");
}

TEST(PlaceholderTranslation, SkipsDollarQuotedBodies) {
  EXPECT_EQ(translate_placeholders("SELECT $$ ? $$, ?"), "SELECT $$ ? $$, $1");
  EXPECT_EQ(translate_placeholders("SELECT $tag$ ? $$ ? $tag$, ?"),
            "SELECT $tag$ ? $$ ? $tag$, $1");
  EXPECT_EQ(translate_placeholders(
                "CREATE FUNCTION f() RETURNS int AS $body$ SELECT '?'::int $body$ LANGUAGE sql; "
                "SELECT ?"),
            "CREATE FUNCTION f() RETURNS int AS $body$ SELECT '?'::int $body$ LANGUAGE sql; "
            "SELECT $1");
  EXPECT_EQ(translate_placeholders("SELECT $a$ unterminated ?"), "SELECT $a$ unterminated ?");
}

TEST(PlaceholderTranslation, PassesNumberedParametersThrough) {
  EXPECT_EQ(translate_placeholders("SELECT $1, $2"), "SELECT $1, $2");
  EXPECT_EQ(translate_placeholders("SELECT $12 + 1"), "SELECT $12 + 1");
  EXPECT_EQ(translate_placeholders("SELECT $1::int"), "SELECT $1::int");
}

TEST(PlaceholderTranslation, DollarInsideIdentifiersIsNoQuote) {
  EXPECT_EQ(translate_placeholders("SELECT a$b$ FROM t WHERE c = ?"),
            "SELECT a$b$ FROM t WHERE c = $1");
  EXPECT_EQ(translate_placeholders("SELECT x$$ , ?"), "SELECT x$$ , $1");
}

TEST(PlaceholderTranslation, UnterminatedLiteralsAreCopied) {
  EXPECT_EQ(translate_placeholders("SELECT 'open ?"), "SELECT 'open ?");
  EXPECT_EQ(translate_placeholders("SELECT \"open ?"), "SELECT \"open ?");
}

TEST(PlaceholderTranslation, KeepsMultibyteText) {
  EXPECT_EQ(translate_placeholders("SELECT 'héllo ?', ? AS ünï"), "SELECT 'héllo ?', $1 AS ünï");
}

// ---- what the engine checks before sending ---------------------------------------------------

TEST(PlaceholderTranslation, CountsTheParametersAStatementTakes) {
  EXPECT_EQ(translate("SELECT 1").parameters, 0u);
  EXPECT_EQ(translate("SELECT ?, '?', \"?\" -- ?\n").parameters, 1u);
  EXPECT_EQ(translate("INSERT INTO t VALUES (?, ?, ?)").parameters, 3u);
  EXPECT_EQ(translate("SELECT $2, $1").parameters, 2u);
  EXPECT_EQ(translate("SELECT $12").parameters, 12u);
  EXPECT_EQ(translate("SELECT $$ $3 $$, $1").parameters, 1u);  // $3 is inside a dollar quote
}

TEST(PlaceholderTranslation, NoticesSeveralStatements) {
  EXPECT_FALSE(translate("SELECT 1").several_statements);
  EXPECT_FALSE(translate("SELECT 1;").several_statements);
  EXPECT_FALSE(translate("SELECT 1; -- done\n  /* really */ ").several_statements);
  EXPECT_FALSE(translate("SELECT ';', \"a;b\", $$;$$").several_statements);
  EXPECT_TRUE(translate("SELECT 1; SELECT 2").several_statements);
  EXPECT_TRUE(translate("INSERT INTO t VALUES (1);INSERT INTO t VALUES (2)").several_statements);
}

TEST(PlaceholderTranslation, SaysWhichStatementsMayBePrepared) {
  EXPECT_TRUE(translate("SELECT v FROM t WHERE k = ?").preparable);
  EXPECT_TRUE(translate("  -- a comment\n insert into t values (?)").preparable);
  EXPECT_TRUE(translate("UPDATE t SET v = $1").preparable);
  EXPECT_TRUE(translate("DELETE FROM t WHERE k = ?").preparable);
  EXPECT_TRUE(translate("VALUES (?)").preparable);
  EXPECT_FALSE(translate("WITH a AS (SELECT ?) SELECT * FROM a").preparable);
  EXPECT_FALSE(translate("SELECT ? INTO newtable").preparable);
  EXPECT_TRUE(translate("SELECT (SELECT x FROM (SELECT ? AS x) s) FROM t").preparable);
  for (const char* sql :
       {"BEGIN", "COMMIT", "SET statement_timeout = 5", "SHOW x", "CREATE TABLE t (k int)",
        "DEALLOCATE ALL", "DISCARD ALL", "EXPLAIN SELECT ?", "(SELECT ?)"})
    EXPECT_FALSE(translate(sql).preparable) << sql;
}

TEST(ScriptSplitting, SplitsAtSemicolonsOutsideLiteralsAndComments) {
  EXPECT_EQ(split_statements("CREATE TABLE a (x int); INSERT INTO a VALUES (1);"),
            (pieces{"CREATE TABLE a (x int);", "INSERT INTO a VALUES (1);"}));
  EXPECT_EQ(split_statements("SELECT 'a;b'; SELECT \"c;d\"\n;SELECT 1 -- e;f\n"),
            (pieces{"SELECT 'a;b';", "SELECT \"c;d\"\n;", "SELECT 1 -- e;f\n"}));
  EXPECT_EQ(split_statements("CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ "
                             "LANGUAGE sql; SELECT f()"),
            (pieces{"CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;",
                    "SELECT f()"}));
}

TEST(ScriptSplitting, DropsEmptyPiecesAndKeepsCommentsWithTheirStatement) {
  EXPECT_TRUE(split_statements("").empty());
  EXPECT_TRUE(split_statements(" ;; -- nothing\n /* at all */ ;").empty());
  EXPECT_EQ(split_statements("\n  -- the schema\n  CREATE TABLE a (x int);;\n"),
            (pieces{"-- the schema\n  CREATE TABLE a (x int);"}));
}

TEST(ScriptSplitting, KeepsAnAtomicFunctionBodyWhole) {
  std::string_view sql =
      "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; "
      "SELECT f();";
  EXPECT_EQ(split_statements(sql), (pieces{sql}));
}

}  // namespace
