// `entitydb sql`: the real binary on real database files: output formats, typed parameters,
// scripts, errors, timeouts and exit codes.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "test_support.hpp"

namespace {

using entity::test::command_line;
using entity::test::command_result;
using entity::test::lines_of;
using entity::test::run_command;
using entity::test::shell_quote;
using entity::test::temp_dir;

// Runs `env_prefix entitydb args...`, every argument quoted for the shell.
command_result entitydb(const std::vector<std::string>& args, const std::string& env_prefix = {}) {
  return run_command(env_prefix + command_line(ENTITYDB_BIN, args));
}

command_result sql(const std::string& db, const std::vector<std::string>& args) {
  std::vector<std::string> all = {"sql", "--db", db};
  all.insert(all.end(), args.begin(), args.end());
  return entitydb(all);
}

// A statement that failed: exit status 1, nothing on stdout, and a single line on stderr that
// reads "error: <what failed>: <backend message>", where the backend's message matches
// `backend` (an ECMAScript regex).
testing::AssertionResult fails_with_one_error_line(const command_result& r,
                                                   const std::string& backend) {
  if (r.exit_code != 1) return testing::AssertionFailure() << "exit code " << r.exit_code;
  if (!r.out.empty()) return testing::AssertionFailure() << "stdout: " << r.out;
  if (std::count(r.err.begin(), r.err.end(), '\n') != 1 || r.err.back() != '\n')
    return testing::AssertionFailure() << "stderr is not a single line: " << r.err;
  std::string line = r.err.substr(0, r.err.size() - 1);
  if (!std::regex_search(line, std::regex("^error: [^:\n]+: " + backend)))
    return testing::AssertionFailure()
           << "stderr is not 'error: <what failed>: " << backend << "': " << r.err;
  return testing::AssertionSuccess();
}

TEST(CliSql, PrintsAlignedTable) {
  temp_dir dir;
  std::string db = dir.file("t.db");
  ASSERT_EQ(sql(db, {"CREATE TABLE people (name TEXT, age INTEGER, note TEXT)"}).exit_code, 0);
  ASSERT_EQ(sql(db, {"INSERT INTO people VALUES ('Ada', 36, 'maths'), ('Grace Hopper', 85, NULL), "
                     "('Al', 7, 'a\nb')"})
                .exit_code,
            0);

  auto r = sql(db, {"SELECT name, age, note FROM people ORDER BY rowid"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "name          age  note\n"
            "------------  ---  -----\n"
            "Ada            36  maths\n"
            "Grace Hopper   85  NULL\n"
            "Al              7  a\\nb\n");
}

TEST(CliSql, StatementWithoutRowsPrintsNothing) {
  temp_dir dir;
  std::string db = dir.file("t.db");
  auto r = sql(db, {"CREATE TABLE t (x)"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  r = sql(db, {"SELECT x FROM t"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(CliSql, JsonRowsParseBack) {
  temp_dir dir;
  std::string db = dir.file("t.db");
  auto r = sql(db, {"--json",
                    "SELECT 42 AS i, 1.5 AS r, 'héllo \"q\"' AS t, NULL AS n, "
                    "x'00ff10' AS b UNION ALL SELECT -7, -0.25, '', NULL, x''"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;

  auto first = nlohmann::ordered_json::parse(lines[0]);
  nlohmann::ordered_json want = {
      {"i", 42}, {"r", 1.5}, {"t", "héllo \"q\""}, {"n", nullptr}, {"b", "00ff10"}};
  EXPECT_EQ(first, want);  // ordered: column order is kept
  EXPECT_TRUE(first["i"].is_number_integer());
  EXPECT_TRUE(first["r"].is_number_float());

  auto second = nlohmann::ordered_json::parse(lines[1]);
  EXPECT_EQ(second, (nlohmann::ordered_json{
                        {"i", -7}, {"r", -0.25}, {"t", ""}, {"n", nullptr}, {"b", ""}}));
}

TEST(CliSql, ParamsAreTyped) {
  temp_dir dir;
  std::string db = dir.file("t.db");
  // No declared type: the column keeps whatever type was bound.
  ASSERT_EQ(sql(db, {"CREATE TABLE v (id INTEGER PRIMARY KEY, x)"}).exit_code, 0);
  auto ins = sql(db, {"INSERT INTO v (x) VALUES (?), (?), (?), (?), (?), (?)", "42", "1.5", "abc",
                      "-12", "1e3", "12abc"});
  ASSERT_EQ(ins.exit_code, 0) << ins.err;

  auto r = sql(db, {"--json", "SELECT typeof(x) AS type, x FROM v ORDER BY id"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 6u) << r.out;
  std::vector<nlohmann::json> want = {
      {{"type", "integer"}, {"x", 42}},  {{"type", "real"}, {"x", 1.5}},
      {{"type", "text"}, {"x", "abc"}},  {{"type", "integer"}, {"x", -12}},
      {{"type", "real"}, {"x", 1000.0}}, {{"type", "text"}, {"x", "12abc"}},
  };
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(nlohmann::json::parse(lines[i]), want[i]) << "row " << i;
}

TEST(CliSql, WrongNumberOfParamsFails) {
  temp_dir dir;
  auto r = sql(dir.file("t.db"), {"SELECT ? + ?", "1"});
  EXPECT_TRUE(fails_with_one_error_line(r, ".*2 parameters but 1 was given"));
}

TEST(CliSql, ScriptRunsEveryStatement) {
  temp_dir dir;
  std::string db = dir.file("t.db");
  auto s = sql(db, {"CREATE TABLE notes (body TEXT);\n"
                    "INSERT INTO notes VALUES ('first; not a new statement');\n"
                    "-- a comment; with a semicolon\n"
                    "INSERT INTO notes VALUES ('second');"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_EQ(s.out, "");

  auto r = sql(db, {"--json", "SELECT body FROM notes ORDER BY rowid"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "{\"body\":\"first; not a new statement\"}\n"
            "{\"body\":\"second\"}\n");
}

TEST(CliSql, SemicolonsInsideQuotesAndCommentsKeepOneStatement) {
  temp_dir dir;
  // Taken for a script, these would print nothing and refuse the parameter.
  auto r = sql(dir.file("t.db"),
               {"--json", "SELECT 'a;b' AS \"c;d\", ? AS [e;f] /* ; */ -- ;\n;", "x;y"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out), (nlohmann::json{{"c;d", "a;b"}, {"e;f", "x;y"}}));
}

TEST(CliSql, SyntaxErrorExitsOne) {
  temp_dir dir;
  auto r = sql(dir.file("t.db"), {"SELEC 1"});
  EXPECT_TRUE(fails_with_one_error_line(r, "near \"SELEC\": syntax error"));
}

TEST(CliSql, NoSuchTableExitsOne) {
  temp_dir dir;
  auto r = sql(dir.file("t.db"), {"SELECT * FROM nowhere"});
  EXPECT_TRUE(fails_with_one_error_line(r, "no such table: nowhere"));
}

TEST(CliSql, MultiLineStatementFailsOnOneLine) {
  temp_dir dir;
  // The report quotes the statement; its line breaks must not split the report.
  auto r = sql(dir.file("t.db"), {"SELECT *\r\n  FROM nowhere\n  WHERE 1"});
  EXPECT_TRUE(fails_with_one_error_line(r, "no such table: nowhere"));
  EXPECT_NE(r.err.find("SELECT *\\r\\n  FROM nowhere\\n  WHERE 1"), std::string::npos) << r.err;

  // In a script too: the failing statement is quoted, line breaks and all.
  r = sql(dir.file("t.db"), {"CREATE TABLE t (x UNIQUE);\n"
                             "INSERT INTO t VALUES (1);\n"
                             "INSERT INTO t\n  VALUES (1);\n"});
  EXPECT_TRUE(fails_with_one_error_line(r, "UNIQUE constraint failed: t\\.x"));
}

TEST(CliSql, FailingScriptExitsOne) {
  temp_dir dir;
  auto r = sql(dir.file("t.db"), {"CREATE TABLE t (x UNIQUE); INSERT INTO t VALUES (1); "
                                  "INSERT INTO t VALUES (1)"});
  EXPECT_TRUE(fails_with_one_error_line(r, "UNIQUE constraint failed: t\\.x"));
}

TEST(CliSql, TimeoutSaysTimeout) {
  temp_dir dir;
  auto start = std::chrono::steady_clock::now();
  auto r = sql(dir.file("t.db"), {"--timeout", "0.2",
                                  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) "
                                  "SELECT count(*) FROM c"});
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(fails_with_one_error_line(r, ".*deadline"));
  EXPECT_NE(r.err.find("timeout"), std::string::npos) << r.err;
  // The query was stopped, not waited out: it never ends by itself.
  EXPECT_LT(elapsed, std::chrono::seconds(10));
}

TEST(CliSql, AnEnormousTimeoutSaturatesInsteadOfExpiring) {
  temp_dir dir;
  for (const char* t : {"1e10", "1e16", "1e300"}) {
    auto r = sql(dir.file("t.db"), {"--timeout", t, "SELECT 41 + 1 AS answer"});
    EXPECT_EQ(r.exit_code, 0) << t << ": " << r.err;
    EXPECT_NE(r.out.find("42"), std::string::npos) << t << ": " << r.out;
  }
}

TEST(CliSql, AJournalModeChangeSaysWhyAtOnce) {
  temp_dir dir;
  ASSERT_EQ(sql(dir.file("t.db"), {"CREATE TABLE t (x)"}).exit_code, 0);
  auto start = std::chrono::steady_clock::now();
  auto r = sql(dir.file("t.db"), {"PRAGMA journal_mode=DELETE"});
  EXPECT_TRUE(
      fails_with_one_error_line(r, ".*journal mode cannot change while the database is open.*"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  auto mode = sql(dir.file("t.db"), {"PRAGMA journal_mode"});
  EXPECT_NE(mode.out.find("wal"), std::string::npos) << mode.out;
}

TEST(CliSql, UsageErrorsExitTwo) {
  temp_dir dir;
  std::string db = dir.file("t.db");
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"sql", "--db", db},                                   // no SQL
           {"sql", "--db", db, "--no-such-option", "SELECT 1"},   // unknown option
           {"sql", "--db", db, "--timeout", "soon", "SELECT 1"},  // not a number
           {"sql", "--db", db, "--timeout", "0", "SELECT 1"},     // no time at all
           {"sql", "--db", db, "SELECT 1; SELECT 2", "7"},        // a script takes no params
           {"no-such-command"},
           {},
       }) {
    auto r = entitydb(args);
    EXPECT_EQ(r.exit_code, 2) << "args: " << testing::PrintToString(args) << "\n" << r.err;
    EXPECT_EQ(r.out.find("error:"), std::string::npos);
  }
}

TEST(CliSql, HelpExitsZero) {
  auto r = entitydb({"sql", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("PARAM"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--timeout"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--json"), std::string::npos) << r.out;
}

TEST(CliSql, DatabaseFromEnvironment) {
  temp_dir dir;
  std::string db = dir.file("from-env.db");
  std::string env = "ENTITYDB_PATH=" + shell_quote(db) + " ";
  auto r = entitydb({"sql", "CREATE TABLE t (x); INSERT INTO t VALUES (7)"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(db));
  EXPECT_EQ(sql(db, {"--json", "SELECT x FROM t"}).out, "{\"x\":7}\n");

  // --db wins over the environment.
  std::string other = dir.file("other.db");
  r = entitydb({"sql", "--db", other, "CREATE TABLE u (y)"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(sql(other, {"SELECT name FROM sqlite_schema"}).out, "name\n----\nu\n");
  EXPECT_EQ(sql(db, {"SELECT name FROM sqlite_schema"}).out, "name\n----\nt\n");
}

TEST(CliSql, DefaultDatabaseIsEntityDbInWorkingFolder) {
  temp_dir dir;
  std::string cd = "cd " + shell_quote(dir.path().string()) + " && env -u ENTITYDB_PATH ";
  auto r = entitydb({"sql", "CREATE TABLE t (x)"}, cd);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "entity.db"));
}

TEST(CliSql, InMemoryDatabaseWorks) {
  auto r = sql(":memory:", {"--json", "SELECT 1 + 1 AS two"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "{\"two\":2}\n");
}

TEST(CliSql, FileThatIsNotADatabaseCannotBeOpened) {
  temp_dir dir;
  std::string db = dir.file("garbage.db");
  std::string garbage(8192, 'x');
  ASSERT_EQ(run_command("cat > " + shell_quote(db), garbage).exit_code, 0);
  auto r = sql(db, {"SELECT 1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("error: cannot open", 0), 0u) << r.err;
}

}  // namespace
