// `entitydb check`: a healthy file says ok; a file that is missing, not a database, or
// damaged fails with exit code 1 and a message, never a crash.
#include <filesystem>
#include <fstream>
#include <iterator>

#include "test_support.hpp"

namespace {

using entity::test::command_line;
using entity::test::command_result;
using entity::test::run_command;
using entity::test::temp_dir;

command_result entitydb(const std::vector<std::string>& args) {
  return run_command(command_line(ENTITYDB_BIN, args));
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  ASSERT_TRUE(out.good()) << path;
}

TEST(CliCheck, HealthyDatabaseSaysOk) {
  temp_dir dir;
  std::string db = dir.file("good.db");
  ASSERT_EQ(entitydb({"sql", "--db", db, "CREATE TABLE t (x); INSERT INTO t VALUES (1)"}).exit_code,
            0);
  auto r = entitydb({"check", "--db", db});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ok\n");
  EXPECT_EQ(r.err, "");
}

TEST(CliCheck, InMemoryDatabaseSaysOk) {
  auto r = entitydb({"check", "--db", ":memory:"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ok\n");
}

TEST(CliCheck, GarbageFileFails) {
  temp_dir dir;
  std::string db = dir.file("garbage.db");
  std::string garbage;
  for (int i = 0; i < 4096; ++i) garbage += static_cast<char>((i * 7919) % 251);
  write_file(db, garbage);
  auto r = entitydb({"check", "--db", db});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.rfind("error: cannot open", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("not a database"), std::string::npos) << r.err;
}

TEST(CliCheck, MissingFileFailsAndIsNotCreated) {
  temp_dir dir;
  std::string db = dir.file("typo.db");
  auto r = entitydb({"check", "--db", db});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("typo.db"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(db));
}

TEST(CliCheck, DamagedPagesFail) {
  temp_dir dir;
  std::string db = dir.file("damaged.db");
  // Enough rows for the table to span many pages beyond the first.
  auto made = entitydb({"sql", "--db", db,
                        "CREATE TABLE t (x TEXT); CREATE INDEX t_x ON t (x);"
                        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c "
                        "WHERE n < 2000) INSERT INTO t SELECT printf('%0100d', n) FROM c"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  // The last connection folds the WAL back into the file: the bytes below are the pages.
  ASSERT_FALSE(std::filesystem::exists(db + "-wal") && std::filesystem::file_size(db + "-wal") > 0);
  ASSERT_GT(std::filesystem::file_size(db), 16u * 4096);
  {
    std::fstream f(db, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(4 * 4096);  // page 5: a b-tree page, not the schema on page 1
    std::string ones(4096, '\xff');
    f.write(ones.data(), static_cast<std::streamsize>(ones.size()));
    ASSERT_TRUE(f.good());
  }
  auto r = entitydb({"check", "--db", db});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
}

TEST(CliCheck, IndexOutOfStepWithTableFails) {
  temp_dir dir;
  std::string db = dir.file("skewed.db");
  auto made = entitydb({"sql", "--db", db,
                        "CREATE TABLE t (x TEXT); CREATE INDEX t_x ON t (x);"
                        "INSERT INTO t VALUES ('needle-0001'), ('other')"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ASSERT_FALSE(std::filesystem::exists(db + "-wal") && std::filesystem::file_size(db + "-wal") > 0);
  // Change the text in one of its two copies (the table's or the index's): the file stays
  // readable, but the index no longer matches the table.
  std::string bytes;
  {
    std::ifstream in(db, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto at = bytes.find("needle-0001");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 10] = '2';
  write_file(db, bytes);

  auto r = entitydb({"check", "--db", db});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.rfind("error: integrity check failed:", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("t_x"), std::string::npos) << r.err;
}

TEST(CliCheck, UsageErrorExitsTwo) {
  auto r = entitydb({"check", "--db"});
  EXPECT_EQ(r.exit_code, 2);
  r = entitydb({"check", "extra"});
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
