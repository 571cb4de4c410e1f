// `entitydb` on hostile input: JSON nested past the depth limit, keys that are not UTF-8,
// import lines past the length limit, an export aimed at the database itself. Each fails
// cleanly (exit 1, "error: ..." naming what and why); none crashes, none changes data
// silently, a failed export leaves no half-written file.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using entity::test::command_line;
using entity::test::command_result;
using entity::test::run_command;
using entity::test::shell_quote;
using entity::test::temp_dir;

command_result entitydb(const std::vector<std::string>& args, const std::string& input = {}) {
  return run_command(command_line(ENTITYDB_BIN, args), input);
}
// The same with `folder` as the working directory.
command_result entitydb_in(const fs::path& folder, const std::vector<std::string>& args) {
  return run_command("cd " + shell_quote(folder.string()) + " && " +
                     command_line(ENTITYDB_BIN, args));
}

std::string nested(std::size_t levels) {
  return std::string(levels, '[') + std::string(levels, ']');
}

// SQL whose value is `levels` nested arrays as text: how another program writes one that the
// command line could not carry (an argument is at most 128 KiB).
std::string nested_sql(std::size_t levels) {
  std::string n = std::to_string(levels);
  return "replace(hex(zeroblob(" + n + ")), '00', '[') || replace(hex(zeroblob(" + n +
         ")), '00', ']')";
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::vector<std::string> entries_of(const fs::path& folder) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(folder)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

class CliHostile : public testing::Test {
 protected:
  command_result memory(const std::string& verb, std::vector<std::string> args = {},
                        const std::string& input = {}) {
    args.insert(args.begin(), {"memory", verb, "--db", db});
    return entitydb(args, input);
  }
  void put(const std::string& key, const std::string& value) {
    auto r = memory("put", {key, value});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void sql(const std::string& statement) {
    auto r = entitydb({"sql", "--db", db, statement});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = dir.file(name);
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  void expect_database_whole() {
    auto check = entitydb({"check", "--db", db});
    EXPECT_EQ(check.exit_code, 0) << check.err;
    EXPECT_EQ(check.out, "ok\n");
    EXPECT_EQ(memory("get", {"k"}).out, "{\"v\":1}\n");
  }

  temp_dir dir;
  std::string db = dir.file("m.db");
};

// ---- JSON depth ---------------------------------------------------------------------------

TEST_F(CliHostile, PutOfAValueNestedPastTheDepthLimitFailsCleanly) {
  auto r = memory("put", {"deep", nested(60'000)});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(has(r.err, "error: ")) << r.err;
  EXPECT_TRUE(has(r.err, "512")) << r.err;
  EXPECT_TRUE(has(r.err, "'deep'")) << r.err;
  EXPECT_EQ(memory("size").out, "0\n");
  // At the limit it is stored and printed back.
  put("deepest", nested(512));
  EXPECT_EQ(memory("get", {"deepest"}).out, nested(512) + "\n");
  EXPECT_EQ(memory("put", {"deeper", nested(513)}).exit_code, 1);
}

TEST_F(CliHostile, PutOfAValueNestedPastTheDepthLimitFailsCleanlyOnPostgres) {
  const char* url = std::getenv("ENTITYDB_PG_URL");
  ASSERT_TRUE(url && *url) << "ENTITYDB_PG_URL is not set: run through scripts/with-postgres";
  auto r = entitydb({"memory", "put", "--db", url, "cli-hostile-deep", nested(60'000)});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(has(r.err, "512")) << r.err;
  std::string file =
      write("deep.jsonl", "{\"key\": \"cli-hostile-deep\", \"value\": " + nested(70'000) + "}\n");
  auto i = entitydb({"memory", "import", "--db", url, file});
  EXPECT_EQ(i.exit_code, 1) << i.err;
  EXPECT_TRUE(has(i.err, file + ":1: ")) << i.err;
  EXPECT_EQ(entitydb({"memory", "get", "--db", url, "cli-hostile-deep"}).exit_code, 1);
}

TEST_F(CliHostile, ImportOfAValueNestedPastTheDepthLimitNamesTheLineAndStoresNothing) {
  std::string file = write("deep.jsonl",
                           "{\"key\": \"a\", \"value\": 1}\n"
                           "{\"key\": \"deep\", \"value\": " +
                               nested(70'000) + "}\n");
  auto r = memory("import", {file});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(has(r.err, file + ":2: ")) << r.err;
  EXPECT_TRUE(has(r.err, "512")) << r.err;
  EXPECT_EQ(memory("size").out, "0\n");
}

TEST_F(CliHostile, GetAndExportOfAStoredValueTooDeepToDecodeFailNamingTheKey) {
  put("k", "{\"v\":1}");
  sql("INSERT INTO memory (key, value) VALUES ('deep-one', " + nested_sql(200'000) + ")");
  auto get = memory("get", {"deep-one"});
  EXPECT_EQ(get.exit_code, 1) << get.err;
  EXPECT_TRUE(has(get.err, "'deep-one'")) << get.err;
  EXPECT_TRUE(has(get.err, "512")) << get.err;

  // Export stops at the value (a backup with a hole would look whole): exit 1, nothing on
  // standard output, and a file given keeps what it held.
  auto to_stdout = memory("export");
  EXPECT_EQ(to_stdout.exit_code, 1) << to_stdout.err;
  EXPECT_TRUE(has(to_stdout.err, "'deep-one'")) << to_stdout.err;
  EXPECT_EQ(to_stdout.out, "");
  std::string previous = write("backup.jsonl", "the previous backup\n");
  auto before = entries_of(dir.path());
  auto to_file = memory("export", {previous});
  EXPECT_EQ(to_file.exit_code, 1) << to_file.err;
  EXPECT_TRUE(has(to_file.err, "'deep-one'")) << to_file.err;
  EXPECT_EQ(slurp(previous), "the previous backup\n");
  EXPECT_EQ(entries_of(dir.path()), before);  // no temporary file left behind
  expect_database_whole();
}

// ---- keys that are not UTF-8 ------------------------------------------------------

TEST_F(CliHostile, PutOfAKeyThatIsNotUtf8IsRefused) {
  auto r = memory("put", {"k\xff", "1"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(has(r.err, "'k\\xff'")) << r.err;
  EXPECT_TRUE(has(r.err, "UTF-8")) << r.err;
  EXPECT_EQ(memory("size").out, "0\n");
  auto scoped = entitydb({"memory", "put", "--db", db, "--scope", "s\xfe", "k", "1"});
  EXPECT_EQ(scoped.exit_code, 1) << scoped.err;
  EXPECT_EQ(memory("size").out, "0\n");
}

TEST_F(CliHostile, ExportOfAStoredKeyThatIsNotUtf8FailsNamingItEscaped) {
  put("k", "{\"v\":1}");
  sql("INSERT INTO memory (key, value) VALUES (CAST(x'6bff' AS TEXT), '2')");
  std::string out = dir.file("out.jsonl");
  auto r = memory("export", {out});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(has(r.err, "'k\\xff'")) << r.err;
  EXPECT_TRUE(has(r.err, "UTF-8")) << r.err;
  EXPECT_FALSE(fs::exists(out));
  auto to_stdout = memory("export");
  EXPECT_EQ(to_stdout.exit_code, 1);
  EXPECT_FALSE(has(to_stdout.out, "\\ufffd")) << to_stdout.out;
}

// ---- JSON Lines line length -----------------------------------------------------------------

TEST_F(CliHostile, AnImportLineLongerThanTheLimitFailsNamingItsNumberAndStoresNothing) {
  std::string line = "{\"key\": \"long\", \"value\": \"" + std::string(200, 'x') + "\"}";
  std::string file = write("long.jsonl", "{\"key\": \"a\", \"value\": 1}\n" + line + "\n");
  auto r = memory("import", {"--max-line-bytes", "100", file});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(has(r.err, file + ":2: ")) << r.err;
  EXPECT_TRUE(has(r.err, "100 bytes")) << r.err;
  EXPECT_TRUE(has(r.err, "--max-line-bytes")) << r.err;
  EXPECT_EQ(memory("size").out, "0\n");
  // A line of exactly the limit is read.
  auto fits = memory("import", {"--max-line-bytes", std::to_string(line.size()), file});
  EXPECT_EQ(fits.exit_code, 0) << fits.err;
  EXPECT_EQ(fits.out, "2\n");
}

TEST_F(CliHostile, ImportOfALineLongerThanTheDefaultLimitFails) {
  // 64 MiB is the default: a valid line one byte longer is refused.
  std::string head = "{\"key\": \"huge\", \"value\": \"";
  std::string tail = "\"}";
  std::size_t limit = 64u << 20;
  std::string line = head + std::string(limit + 1 - head.size() - tail.size(), 'x') + tail;
  ASSERT_EQ(line.size(), limit + 1);
  std::string file = write("huge.jsonl", line + "\n");
  auto r = memory("import", {file});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(has(r.err, file + ":1: ")) << r.err;
  EXPECT_TRUE(has(r.err, std::to_string(limit) + " bytes")) << r.err;
  EXPECT_EQ(memory("size").out, "0\n");
}

TEST_F(CliHostile, ImportOfDevZeroStopsAtTheLimit) {
  auto r = memory("import", {"--max-line-bytes", "1000000", "/dev/zero"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(has(r.err, "/dev/zero:1: ")) << r.err;
  EXPECT_EQ(memory("size").out, "0\n");
}

TEST_F(CliHostile, VectorImportLineLongerThanTheLimitFails) {
  ASSERT_EQ(entitydb({"vector", "create", "--db", db, "c", "--dim", "2"}).exit_code, 0);
  std::string file =
      write("v.jsonl", "{\"id\": \"a\", \"vector\": [1, 2], \"metadata\": {\"s\": \"" +
                           std::string(500, 'y') + "\"}}\n");
  auto r = entitydb({"vector", "import", "--db", db, "--max-line-bytes", "100", "c", file});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(has(r.err, file + ":1: ")) << r.err;
  auto list = entitydb({"vector", "list", "--db", db});
  EXPECT_EQ(list.out, "c\t2\tcosine\t0\n");
}

// ---- exports aimed at the database ----------------------------------------------------------

TEST_F(CliHostile, ExportOverTheDatabaseItselfIsRefused) {
  put("k", "{\"v\":1}");
  std::string link = dir.file("link.jsonl");
  fs::create_symlink(db, link);
  std::string hard = dir.file("hard.jsonl");
  fs::create_hard_link(db, hard);
  for (const std::string& out : {db, link, hard, db + "-wal", db + "-shm", db + "-journal"}) {
    auto r = memory("export", {out});
    EXPECT_EQ(r.exit_code, 1) << out << ": " << r.err;
    EXPECT_TRUE(has(r.err, "database")) << r.err;
    expect_database_whole();
  }
  // The same path spelled another way, from the database's folder.
  auto relative = entitydb_in(dir.path(), {"memory", "export", "--db", "m.db", "./m.db"});
  EXPECT_EQ(relative.exit_code, 1) << relative.err;
  auto prefixed = entitydb_in(dir.path(), {"memory", "export", "--db", "sqlite:m.db", "m.db"});
  EXPECT_EQ(prefixed.exit_code, 1) << prefixed.err;
  expect_database_whole();
}

TEST_F(CliHostile, ExportReplacesTheFileWholeAndLeavesNoTemporaryFile) {
  put("k", "{\"v\":1}");
  std::string out = write("backup.jsonl", "old contents that are longer than the new ones\n");
  ::chmod(out.c_str(), 0640);
  auto r = memory("export", {out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(slurp(out), "{\"key\":\"k\",\"value\":{\"v\":1}}\n");
  struct stat st {};
  ASSERT_EQ(::stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);  // the file keeps its permissions
  EXPECT_EQ(entries_of(dir.path()), (std::vector<std::string>{"backup.jsonl", "m.db"}));
  // Into a folder that does not exist: a clear failure.
  auto missing = memory("export", {dir.file("no/such/folder/x.jsonl")});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(has(missing.err, "cannot write")) << missing.err;
}

}  // namespace
