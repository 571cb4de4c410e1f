// entitydb vector, through the real binary.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "test_support.hpp"

namespace {

using entity::test::lines_of;
using entity::test::run_command;
using entity::test::shell_quote;

struct cli {
  entity::test::temp_dir dir;
  std::string db = dir.file("v.db");
  entity::test::command_result run(const std::string& args) {
    return run_command(std::string(ENTITYDB_BIN) + " vector " + args + " --db " + shell_quote(db));
  }
};

}  // namespace

TEST(CliVector, CreateAddSearchNearestFirst) {
  cli c;
  ASSERT_EQ(c.run("create docs --dim 3 --metric l2").exit_code, 0);
  ASSERT_EQ(c.run("add docs far '[10,10,10]'").exit_code, 0);
  ASSERT_EQ(c.run("add docs near '[1,0,0]' --metadata '{\"tag\":\"x\"}'").exit_code, 0);
  auto r = c.run("search docs '[1,0.1,0]' -k 2 --exact");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto l = lines_of(r.out);
  ASSERT_EQ(l.size(), 2u) << r.out;
  EXPECT_EQ(l[0].substr(0, 5), "near\t");
  EXPECT_NE(l[0].find("{\"tag\":\"x\"}"), std::string::npos) << l[0];
  EXPECT_EQ(l[1].substr(0, 4), "far\t");
  auto f = c.run("search docs '[1,0,0]' --filter '{\"tag\":\"x\"}'");
  EXPECT_EQ(lines_of(f.out).size(), 1u) << f.out;
}

TEST(CliVector, WrongDimensionFailsAndWritesNothing) {
  cli c;
  ASSERT_EQ(c.run("create docs --dim 3").exit_code, 0);
  auto r = c.run("add docs a '[1,2]'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("error:"), std::string::npos) << r.err;
  EXPECT_TRUE(c.run("search docs '[1,0,0]'").out.empty());
}

TEST(CliVector, ImportBadLineNamesItAndWritesNothing) {
  cli c;
  ASSERT_EQ(c.run("create docs --dim 2").exit_code, 0);
  std::string file = c.dir.file("in.jsonl");
  std::ofstream(file) << "{\"id\":\"a\",\"vector\":[1,0]}\n"
                      << "{\"id\":\"b\",\"vector\":[0,1]}\n"
                      << "{\"id\":\"c\",\"vector\":\"oops\"}\n";
  auto r = c.run("import docs " + shell_quote(file));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(":3:"), std::string::npos) << r.err;
  EXPECT_TRUE(c.run("search docs '[1,0]'").out.empty()) << "a failed import wrote vectors";
}
