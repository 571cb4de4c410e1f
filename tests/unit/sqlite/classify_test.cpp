#include "sqlite/classify.hpp"

#include <gtest/gtest.h>

#include <string>

using entity::sqlite_detail::classify;
using entity::sqlite_detail::has_several_statements;
using entity::sqlite_detail::is_blank;
using entity::sqlite_detail::route;

TEST(Classify, ReadsGoToReaders) {
  EXPECT_EQ(classify("SELECT 1"), route::read);
  EXPECT_EQ(classify("  select * from t"), route::read);
  EXPECT_EQ(classify("-- comment\nWITH x AS (SELECT 1) SELECT * FROM x"), route::read);
  EXPECT_EQ(classify("/* c */ values (1)"), route::read);
  EXPECT_EQ(classify("EXPLAIN QUERY PLAN SELECT 1"), route::read);
}

TEST(Classify, WritesGoToTheWriter) {
  EXPECT_EQ(classify("INSERT INTO t VALUES (1)"), route::write);
  EXPECT_EQ(classify("update t set a = 1"), route::write);
  EXPECT_EQ(classify("DELETE FROM t"), route::write);
  EXPECT_EQ(classify("CREATE TABLE t (a)"), route::write);
  EXPECT_EQ(classify("REPLACE INTO t VALUES (1)"), route::write);
  EXPECT_EQ(classify(""), route::write);
}

TEST(Classify, ReadsTheLettersThatStartTheFirstWord) {
  char buf[17];
  EXPECT_EQ(entity::sqlite_detail::first_keyword("select1 from t", buf), "SELECT");
  EXPECT_EQ(entity::sqlite_detail::first_keyword("Insert_x", buf), "INSERT");
  EXPECT_EQ(entity::sqlite_detail::first_keyword("\t/* c */ -- d\n with", buf), "WITH");
  EXPECT_EQ(entity::sqlite_detail::first_keyword("abcdefghijklmnopqrstuvwxyz", buf),
            "ABCDEFGHIJKLMNOP");
  EXPECT_EQ(entity::sqlite_detail::first_keyword("(SELECT 1)", buf), "");
  EXPECT_EQ(entity::sqlite_detail::first_keyword("", buf), "");
  EXPECT_EQ(classify("SELECTED"), route::write);
}

TEST(Classify, TransactionControlRunsAlone) {
  EXPECT_EQ(classify("BEGIN"), route::solo);
  EXPECT_EQ(classify("commit"), route::solo);
  EXPECT_EQ(classify("PRAGMA journal_mode"), route::solo);
  EXPECT_EQ(classify("VACUUM"), route::solo);
  EXPECT_EQ(classify("ATTACH 'x.db' AS x"), route::solo);
  EXPECT_EQ(classify("SAVEPOINT a"), route::solo);
}

TEST(Classify, CountsStatementsOutsideLiteralsAndComments) {
  EXPECT_FALSE(has_several_statements("SELECT 1"));
  EXPECT_FALSE(has_several_statements("SELECT 1;"));
  EXPECT_FALSE(has_several_statements("SELECT 1; -- done\n ;"));
  EXPECT_FALSE(has_several_statements("SELECT 'a;b'"));
  EXPECT_FALSE(has_several_statements("SELECT \"x;y\" FROM t"));
  EXPECT_FALSE(has_several_statements("SELECT 1 /* ; */"));
  EXPECT_FALSE(has_several_statements("SELECT 'it''s; fine'"));
  EXPECT_TRUE(has_several_statements("SELECT 1; SELECT 2"));
  EXPECT_TRUE(has_several_statements("CREATE TABLE t(a);\nINSERT INTO t VALUES (1);"));
}

TEST(Classify, BlankMeansNothingToRun) {
  EXPECT_TRUE(is_blank(""));
  EXPECT_TRUE(is_blank("  ;\n -- x\n /* y */ ;"));
  EXPECT_FALSE(is_blank(" SELECT 1"));
}

TEST(Classify, TellsAJournalModeChangeFromAReadOfIt) {
  using entity::sqlite_detail::journal_mode_requested;
  auto asked = [](std::string_view sql) {
    char buf[17];
    return std::string(journal_mode_requested(sql, buf));
  };
  EXPECT_EQ(asked("PRAGMA journal_mode=DELETE"), "delete");
  EXPECT_EQ(asked("  pragma Journal_Mode = 'Truncate';"), "truncate");
  EXPECT_EQ(asked("PRAGMA main.journal_mode(wal)"), "wal");
  EXPECT_EQ(asked("/* why */ PRAGMA \"main\" . journal_mode = \"memory\""), "memory");
  // Reading the mode, another schema's mode, another PRAGMA, or no PRAGMA at all.
  EXPECT_EQ(asked("PRAGMA journal_mode"), "");
  EXPECT_EQ(asked("PRAGMA aux.journal_mode = delete"), "");
  EXPECT_EQ(asked("PRAGMA synchronous = OFF"), "");
  EXPECT_EQ(asked("SELECT 'PRAGMA journal_mode=DELETE'"), "");
  EXPECT_EQ(asked("PRAGMA journal_mode ="), "");
}
