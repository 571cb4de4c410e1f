// The JSON every layer reads and writes (entity/json.hpp): the depth limit of the parser, the
// checks a value passes before it is stored, UTF-8 and how text that is not shows in messages.
#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "entity/entity.hpp"
#include "library_support.hpp"

namespace {

using entity::json;
using entity::test::nested_arrays;
using entity::test::nested_text;

TEST(Json, TheParserTakesValuesUpToTheDepthLimit) {
  entity::json_text_problem problem;
  auto j = entity::parse_json(nested_text(entity::max_json_depth), problem);
  ASSERT_TRUE(j) << problem.reason;
  EXPECT_EQ(*j, nested_arrays(entity::max_json_depth));
  std::string objects;
  for (std::size_t i = 0; i < entity::max_json_depth; ++i) objects += "{\"a\":";
  objects += "1" + std::string(entity::max_json_depth, '}');
  EXPECT_TRUE(entity::parse_json(objects, problem)) << problem.reason;
  EXPECT_EQ(entity::parse_json(" 42 ", problem), json(42));
}

TEST(Json, TheParserRefusesTheFirstLevelPastTheLimitWithoutBuildingIt) {
  for (std::size_t levels : {entity::max_json_depth + 1, std::size_t{1'000'000}}) {
    entity::json_text_problem problem;
    EXPECT_FALSE(entity::parse_json(nested_text(levels), problem)) << levels;
    EXPECT_TRUE(problem.too_deep);
    EXPECT_EQ(problem.reason, "nested deeper than 512 levels (the limit)");
  }
  // Unclosed, as a hostile file would be: the same answer, not a syntax error at the end.
  entity::json_text_problem problem;
  EXPECT_FALSE(entity::parse_json(std::string(100'000, '['), problem));
  EXPECT_TRUE(problem.too_deep);
  try {
    (void)entity::parse_json(nested_text(600), "the value of key 'k'");
    FAIL() << "parsed";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), entity::errc::invalid_argument);
    EXPECT_EQ(e.diag().message,
              "the value of key 'k' is nested deeper than 512 levels (the limit)");
  }
}

TEST(Json, TheParserSaysWhyTextIsNotJson) {
  entity::json_text_problem problem;
  for (const char* bad : {"", "{", "[1,]", "1 2", "\"\xff\"", "1e400", "NaN"}) {
    EXPECT_FALSE(entity::parse_json(bad, problem)) << bad;
    EXPECT_FALSE(problem.too_deep) << bad;
    EXPECT_FALSE(problem.reason.empty()) << bad;
    EXPECT_EQ(problem.reason.find("[json.exception"), std::string::npos) << problem.reason;
  }
  try {
    (void)entity::parse_json("{", "the line");
    FAIL() << "parsed";
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), entity::errc::invalid_argument);
    EXPECT_EQ(e.diag().message.rfind("the line is not JSON: ", 0), 0u) << e.diag().message;
  }
}

TEST(Json, StorageRefusesNaNAndInfinityWhereTheyAre) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(entity::json_storage_problem(json(nan)), "is NaN (JSON has no such number)");
  EXPECT_EQ(entity::json_storage_problem(json(-inf)), "is an infinity (JSON has no such number)");
  json j = {{"a", {1, {{"b/c~", {0, inf}}}}}};
  EXPECT_EQ(entity::json_storage_problem(j),
            "has an infinity at /a/1/b~1c~0/1 (JSON has no such number)");
  EXPECT_EQ(entity::json_storage_problem(json{{"x", {1, 2, nan}}}),
            "has a NaN at /x/2 (JSON has no such number)");
  EXPECT_FALSE(entity::json_storage_problem(json{{"a", {1, 2.5, "x", nullptr, true}}}));
  EXPECT_FALSE(entity::json_storage_problem(json(1.5)));
}

TEST(Json, StorageRefusesValuesNestedPastTheLimitAtAnyDepth) {
  EXPECT_FALSE(entity::json_storage_problem(nested_arrays(entity::max_json_depth)));
  for (std::size_t levels : {entity::max_json_depth + 1, std::size_t{200'000}}) {
    auto why = entity::json_storage_problem(nested_arrays(levels));
    ASSERT_TRUE(why) << levels;
    EXPECT_EQ(why->rfind("is nested deeper than 512 levels (the limit) at /0/0/", 0), 0u) << *why;
    EXPECT_LT(why->size(), 200u);
  }
}

TEST(Json, Utf8IsCheckedStrictly) {
  for (const char* good :
       {"", "plain", "ünïcödé", "日本語", "🐍", "\x7f", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf"})
    EXPECT_TRUE(entity::valid_utf8(good)) << good;
  EXPECT_TRUE(entity::valid_utf8(std::string("a\0b", 3)));
  for (const char* bad : {"\xff", "k\xff", "\x80", "\xc3", "\xc0\xaf", "\xe0\x80\xaf",
                          "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "\xe6\x97"})
    EXPECT_FALSE(entity::valid_utf8(bad)) << entity::printable(bad);
}

TEST(Json, Utf8IsCheckedAtEveryPositionOfALongText) {
  // Long ASCII runs are read a word at a time: a bad byte is found wherever it is.
  for (std::size_t at = 0; at < 40; ++at) {
    std::string text(40, 'k');
    EXPECT_TRUE(entity::valid_utf8(text));
    text[at] = '\xff';
    EXPECT_FALSE(entity::valid_utf8(text)) << at;
    text[at] = '\xc3';  // a sequence cut short, or ended by ASCII
    EXPECT_FALSE(entity::valid_utf8(text)) << at;
    text.replace(at, 1, "\xc3\xa9");
    EXPECT_TRUE(entity::valid_utf8(text)) << at;
  }
}

TEST(Json, StorageAcceptsWhatItOnlyWalks) {
  // The usual value passes the quick walk; a problem anywhere sends it to the one that says
  // where, at the root and under objects and arrays alike.
  json fine = {{"a", {{"b", {1, 2.5, "x"}}}}, {"c", json::array()}, {"d", json::object()}};
  EXPECT_FALSE(entity::json_storage_problem(fine));
  json bad = fine;
  bad["c"].push_back(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(entity::json_storage_problem(bad), "has a NaN at /c/0 (JSON has no such number)");
  bad = fine;
  bad["a"]["b"][3] = nested_arrays(entity::max_json_depth);
  auto why = entity::json_storage_problem(bad);
  ASSERT_TRUE(why);
  EXPECT_EQ(why->rfind("is nested deeper than 512 levels (the limit) at /a/b/3/0/", 0), 0u) << *why;
  // Exactly at the limit, counted from the root.
  bad = fine;
  bad["a"] = nested_arrays(entity::max_json_depth - 1);
  EXPECT_FALSE(entity::json_storage_problem(bad));
}

TEST(Json, PrintableEscapesWhatIsNotUtf8) {
  EXPECT_EQ(entity::printable("k\xff"), "'k\\xff'");
  EXPECT_EQ(entity::printable("ünï"), "'ünï'");
  EXPECT_EQ(entity::printable("a\nb\\c"), "'a\\x0ab\\\\c'");
  EXPECT_EQ(entity::printable("\xe6\x97 x"), "'\\xe6\\x97 x'");
}

}  // namespace
