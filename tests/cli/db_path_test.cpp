// `entitydb --db` takes a path as a path: one that starts with "file:" and looks like a SQLite
// URI ("file:x?mode=memory", "file:/abs/x.db") names the file it spells, relative to the
// working folder, whatever the SQLite build's default for URI names.
#include <filesystem>

#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using entity::test::command_line;
using entity::test::command_result;
using entity::test::run_command;
using entity::test::shell_quote;
using entity::test::temp_dir;

// `entitydb ARGS` with `folder` as the working directory.
command_result entitydb_in(const fs::path& folder, const std::vector<std::string>& args) {
  return run_command("cd " + shell_quote(folder.string()) + " && " +
                     command_line(ENTITYDB_BIN, args));
}

class CliDbPath : public testing::Test {
 protected:
  temp_dir dir;
};

TEST_F(CliDbPath, ADbPathStartingWithFileIsAPathNotAUri) {
  auto put_r = entitydb_in(dir.path(), {"memory", "put", "--db", "file:x?mode=memory", "k", "7"});
  ASSERT_EQ(put_r.exit_code, 0) << put_r.err;
  EXPECT_TRUE(fs::is_regular_file(dir.path() / "file:x?mode=memory"));
  auto get_r = entitydb_in(dir.path(), {"memory", "get", "--db", "file:x?mode=memory", "k"});
  EXPECT_EQ(get_r.exit_code, 0) << get_r.err;
  EXPECT_EQ(get_r.out, "7\n");
}

TEST_F(CliDbPath, ADbPathOfFileAndAnAbsolutePathStaysUnderTheWorkingFolder) {
  temp_dir elsewhere;
  std::string target = elsewhere.file("x.db");
  auto r = entitydb_in(dir.path(), {"memory", "put", "--db", "file:" + target, "k", "7"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The database is the file the path names, below ./file: (the folders it needs are made).
  EXPECT_TRUE(fs::is_regular_file(dir.path() / ("file:" + target)));
  EXPECT_FALSE(fs::exists(target));
  auto get_r = entitydb_in(dir.path(), {"memory", "get", "--db", "file:" + target, "k"});
  EXPECT_EQ(get_r.out, "7\n");
}

}  // namespace
