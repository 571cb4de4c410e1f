// The `?` to `$n` translator of the PostgreSQL engine: placeholders become numbered parameters,
// and nothing inside literals, quoted identifiers, comments or dollar-quoted bodies changes.
#include <gtest/gtest.h>

#include "postgres/placeholders.hpp"

namespace {

using entity::postgres_detail::translate_placeholders;

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

}  // namespace
