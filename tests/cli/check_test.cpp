// `entitydb check`: a healthy file says ok; a file that is missing, not a database, or
// damaged fails with exit code 1 and a message, never a crash. On PostgreSQL it reports the
// server, the pool and entity-db's tables, and an unreachable server fails clearly.
#include <filesystem>
#include <fstream>
#include <iterator>

#include "cli_postgres.hpp"
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

TEST(CliCheck, PostgresReportsServerPoolAndSchema) {
  entity::test::cli_postgres_schema pg(ENTITYDB_BIN);
  ASSERT_TRUE(pg.available()) << entity::test::cli_missing_server_message;
  // An empty schema: the server answers, and no entity-db table is there (nor made by check).
  auto r = entitydb({"check", "--db", pg.url()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out.rfind("server: PostgreSQL ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\npool: size 5, open "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(", idle "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(", in use "), std::string::npos) << r.out;
  // The check's own statements: its to_regclass(?) probes are prepared where they run.
  const std::size_t cache = r.out.find("\nstatement cache: ");
  ASSERT_NE(cache, std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" hits, ", cache), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(" 0 misses\n", cache), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nschema " + pg.name() + ": no entity-db tables\n"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\nok\n"), std::string::npos) << r.out;
  auto tables =
      entitydb({"sql", "--db", pg.url(), "--json",
                "SELECT count(*) AS n FROM pg_tables WHERE schemaname = current_schema()"});
  EXPECT_EQ(tables.out, "{\"n\":0}\n") << tables.err;

  // A memory of two keys and a collection of three vectors.
  ASSERT_EQ(entitydb({"memory", "put", "--db", pg.url(), "a", "1"}).exit_code, 0);
  ASSERT_EQ(entitydb({"memory", "put", "--db", pg.url(), "b", "2"}).exit_code, 0);
  ASSERT_EQ(entitydb({"vector", "create", "docs", "--dim", "2", "--db", pg.url()}).exit_code, 0);
  for (const char* id : {"x", "y", "z"})
    ASSERT_EQ(entitydb({"vector", "add", "docs", id, "[1,0]", "--db", pg.url()}).exit_code, 0);
  r = entitydb({"check", "--db", pg.url()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\nschema " + pg.name() + ":\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n  memory: 2 keys\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n  vector collection docs (dim 2, cosine): 3 vectors\n"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.substr(r.out.size() - 3), "ok\n") << r.out;
}

TEST(CliCheck, UnreachablePostgresServerFailsClearly) {
  auto r = entitydb({"check", "--db", "postgresql://nobody:secret@127.0.0.1:1/none"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("cannot connect"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("no database at"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("secret"), std::string::npos) << "the password was printed: " << r.err;
}

TEST(CliCheck, UsageErrorExitsTwo) {
  auto r = entitydb({"check", "--db"});
  EXPECT_EQ(r.exit_code, 2);
  r = entitydb({"check", "extra"});
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
