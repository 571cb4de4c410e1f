// The JSON filter compiler (common/json_filter) without a database: every refused form, with
// the message naming the problem and where it is; the limits; and that a filter's paths and
// values reach the SQL only as bound parameters. What the SQL matches is json_filter_semantics.
#include "common/json_filter.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "common/sql_lexer.hpp"
#include "entity/entity.hpp"

namespace {

using entity::json;
using entity::sql_dialect;
using entity::detail::compile_json_filter;
using entity::detail::compiled_filter;
using entity::detail::filter_node;
using entity::detail::filter_op;
using entity::detail::parse_json_filter;

constexpr sql_dialect dialects[] = {sql_dialect::sqlite, sql_dialect::postgresql};

// The message `filter` is refused with (failing the test when it compiles, or fails otherwise).
std::string refusal(const json& filter) {
  try {
    (void)parse_json_filter(filter);
  } catch (const entity::error& e) {
    EXPECT_EQ(e.code(), entity::errc::invalid_argument) << filter.dump();
    return e.diag().message;
  }
  ADD_FAILURE() << "accepted: " << filter.dump();
  return "";
}

#define EXPECT_REFUSED(filter, message) EXPECT_EQ(refusal(filter), message) << (filter).dump()

std::size_t placeholders(const compiled_filter& c, sql_dialect d) {
  std::size_t n = 0;
  for (const auto& t : entity::detail::lex_sql(c.sql, d))
    if (t.kind == entity::detail::sql_token_kind::placeholder) {
      EXPECT_EQ(t.text, "?");
      ++n;
    }
  return n;
}

TEST(JsonFilter, RefusesAFilterThatIsNotAnObject) {
  EXPECT_REFUSED(json::array(), "filter: a filter is a JSON object, not an array");
  EXPECT_REFUSED(json(1), "filter: a filter is a JSON object, not a number");
  EXPECT_REFUSED(json("a"), "filter: a filter is a JSON object, not a string");
  EXPECT_REFUSED(json(), "filter: a filter is a JSON object, not null");
}

TEST(JsonFilter, RefusesAndOrWithAnEmptyListOrANonList) {
  EXPECT_REFUSED(json::parse(R"({"$and": []})"),
                 "filter at '/$and': $and needs a non-empty list of filters, not an empty list");
  EXPECT_REFUSED(json::parse(R"({"$or": []})"),
                 "filter at '/$or': $or needs a non-empty list of filters, not an empty list");
  EXPECT_REFUSED(json::parse(R"({"$or": {"a": 1}})"),
                 "filter at '/$or': $or needs a non-empty list of filters, not an object");
  EXPECT_REFUSED(json::parse(R"({"$and": "a"})"),
                 "filter at '/$and': $and needs a non-empty list of filters, not a string");
  EXPECT_REFUSED(json::parse(R"({"$and": null})"),
                 "filter at '/$and': $and needs a non-empty list of filters, not null");
  // Their elements are filters, and empty ones are mistakes (true, or negated false, for all).
  EXPECT_REFUSED(json::parse(R"({"$and": [{"a": 1}, 2]})"),
                 "filter at '/$and/1': a filter is a JSON object, not a number");
  EXPECT_REFUSED(json::parse(R"({"$or": [{"a": 1}, {}]})"),
                 "filter at '/$or/1': $or needs non-empty filters, not {}");
  EXPECT_REFUSED(json::parse(R"({"$not": {}})"),
                 "filter at '/$not': $not needs non-empty filters, not {}");
  EXPECT_REFUSED(json::parse(R"({"$not": [{"a": 1}]})"),
                 "filter at '/$not': a filter is a JSON object, not an array");
}

TEST(JsonFilter, RefusesUnknownOperators) {
  EXPECT_REFUSED(json::parse(R"({"a": {"$regex": "^x"}})"),
                 "filter at '/a/$regex': unknown operator '$regex'");
  EXPECT_REFUSED(json::parse(R"({"a": {"$gt": 1, "$foo": 2}})"),
                 "filter at '/a/$foo': unknown operator '$foo'");
  EXPECT_REFUSED(json::parse(R"({"$foo": [{"a": 1}]})"),
                 "filter at '/$foo': unknown operator '$foo'");
  EXPECT_REFUSED(json::parse(R"({"$": 1})"), "filter at '/$': unknown operator '$'");
  EXPECT_REFUSED(json::parse(R"({"$or": [{"$EQ": 1}]})"),
                 "filter at '/$or/0/$EQ': unknown operator '$EQ'");
  // A field operator without its field, a logical one inside a field.
  EXPECT_REFUSED(json::parse(R"({"$gt": 1})"),
                 "filter at '/$gt': '$gt' is a field operator: it goes inside a field's object, as "
                 "in {\"field\": {\"$gt\": ...}}");
  EXPECT_REFUSED(json::parse(R"({"a": {"$not": {"$gt": 1}}})"),
                 "filter at '/a/$not': $not takes filters, not a field's operand: write "
                 "{\"$not\": ...} beside the fields");
  EXPECT_REFUSED(json::parse(R"({"a": {"$or": [1, 2]}})"),
                 "filter at '/a/$or': $or takes filters, not a field's operand: write "
                 "{\"$or\": ...} beside the fields");
}

TEST(JsonFilter, RefusesInAndNinWithoutAnArrayOfScalars) {
  EXPECT_REFUSED(json::parse(R"({"a": {"$in": 1}})"),
                 "filter at '/a/$in': $in needs an array, not a number");
  EXPECT_REFUSED(json::parse(R"({"a": {"$nin": "x"}})"),
                 "filter at '/a/$nin': $nin needs an array, not a string");
  EXPECT_REFUSED(json::parse(R"({"a": {"$in": {"b": 1}}})"),
                 "filter at '/a/$in': $in needs an array, not an object");
  EXPECT_REFUSED(json::parse(R"({"a": {"$in": [1, [2]]}})"),
                 "filter at '/a/$in/1': $in needs a scalar (null, a boolean, a number or a "
                 "string), not an array");
  EXPECT_REFUSED(json::parse(R"({"a": {"$nin": [{"b": 1}]}})"),
                 "filter at '/a/$nin/0': $nin needs a scalar (null, a boolean, a number or a "
                 "string), not an object");
}

TEST(JsonFilter, RefusesExistsWithoutABoolean) {
  EXPECT_REFUSED(json::parse(R"({"a": {"$exists": 1}})"),
                 "filter at '/a/$exists': $exists needs true or false, not a number");
  EXPECT_REFUSED(json::parse(R"({"a": {"$exists": "yes"}})"),
                 "filter at '/a/$exists': $exists needs true or false, not a string");
  EXPECT_REFUSED(json::parse(R"({"a": {"$exists": null}})"),
                 "filter at '/a/$exists': $exists needs true or false, not null");
}

TEST(JsonFilter, RefusesOperatorObjectsMixingOperatorsAndPlainKeys) {
  EXPECT_REFUSED(json::parse(R"({"a": {"$gt": 1, "b": 2}})"),
                 "filter at '/a': an operator object mixes operators and plain keys ('$gt' and "
                 "'b')");
}

TEST(JsonFilter, RefusesObjectsAndArraysWhereAScalarIsDue) {
  EXPECT_REFUSED(json::parse(R"({"a": {"b": 1}})"),
                 "filter at '/a': a field cannot equal an object (a nested field is a dotted "
                 "path, as in \"a.b\")");
  EXPECT_REFUSED(json::parse(R"({"a": [1, 2]})"),
                 "filter at '/a': a field cannot equal an array (for an element of an array use "
                 "$contains, for one of several values $in)");
  EXPECT_REFUSED(json::parse(R"({"a": {}})"), "filter at '/a': an empty operator object");
  for (const char* op : {"$eq", "$ne", "$contains"}) {
    json f = {{"a", {{op, json::array({1})}}}};
    EXPECT_REFUSED(f, std::string("filter at '/a/") + op + "': " + op +
                          " needs a scalar (null, a boolean, a number or a string), not an array");
    f = {{"a", {{op, {{"b", 1}}}}}};
    EXPECT_REFUSED(f, std::string("filter at '/a/") + op + "': " + op +
                          " needs a scalar (null, a boolean, a number or a string), not an object");
  }
}

TEST(JsonFilter, RefusesOrderingsOfValuesThatDoNotOrder) {
  for (const char* op : {"$gt", "$gte", "$lt", "$lte"}) {
    std::string at = std::string("filter at '/a/") + op + "': " + op;
    EXPECT_REFUSED(json({{"a", {{op, true}}}}), at + " needs a number or a string, not a boolean");
    EXPECT_REFUSED(json({{"a", {{op, nullptr}}}}), at + " needs a number or a string, not null");
    EXPECT_REFUSED(json({{"a", {{op, json::array({1})}}}}),
                   at + " needs a number or a string, not an array");
  }
}

TEST(JsonFilter, RefusesNumbersAndStringsTheBackendsCannotBothHold) {
  EXPECT_REFUSED(json({{"a", std::nan("")}}),
                 "filter at '/a': $eq: a number that is not finite (JSON has no such number)");
  EXPECT_REFUSED(json({{"a", {{"$lt", std::numeric_limits<double>::infinity()}}}}),
                 "filter at '/a/$lt': $lt: a number that is not finite (JSON has no such number)");
  EXPECT_REFUSED(json({{"a", std::numeric_limits<std::uint64_t>::max()}}),
                 "filter at '/a': $eq: the integer 18446744073709551615 is past the 64-bit "
                 "signed range");
  EXPECT_REFUSED(json({{"a", {{"$in", {"ok", "\xff"}}}}}),
                 "filter at '/a/$in/1': $in: a string that is not UTF-8");
  EXPECT_REFUSED(json({{"a", std::string("x\0y", 3)}}),
                 "filter at '/a': $eq: a string holding a NUL character");
  // The edges that are held.
  EXPECT_NO_THROW(
      parse_json_filter(json({{"a", std::uint64_t(std::numeric_limits<std::int64_t>::max())}})));
  EXPECT_NO_THROW(parse_json_filter(json({{"a", std::numeric_limits<std::int64_t>::min()}})));
}

TEST(JsonFilter, RefusesPathsThatAreNotPlainDottedNames) {
  const std::string rule =
      ": a segment is made of A-Z, a-z, 0-9, '_' and '-' only, and segments are separated by "
      "'.'";
  EXPECT_REFUSED(json({{"", 1}}), "filter at '/': the field path '' has an empty segment");
  EXPECT_REFUSED(json({{"a..b", 1}}),
                 "filter at '/a..b': the field path 'a..b' has an empty segment");
  EXPECT_REFUSED(json({{".a", 1}}), "filter at '/.a': the field path '.a' has an empty segment");
  EXPECT_REFUSED(json({{"a.", 1}}), "filter at '/a.': the field path 'a.' has an empty segment");
  EXPECT_REFUSED(json({{"a[0]", 1}}), "filter at '/a[0]': the field path 'a[0]' holds '['" + rule);
  EXPECT_REFUSED(json({{"a.$b", 1}}), "filter at '/a.$b': the field path 'a.$b' holds '$'" + rule);
  EXPECT_REFUSED(json({{"a\"b", 1}}), "filter at '/a\"b': the field path 'a\"b' holds '\"'" + rule);
  EXPECT_REFUSED(json({{"a\\b", 1}}),
                 "filter at '/a\\\\b': the field path 'a\\\\b' holds '\\\\'" + rule);
  EXPECT_REFUSED(json({{"a.*", 1}}), "filter at '/a.*': the field path 'a.*' holds '*'" + rule);
  EXPECT_REFUSED(json({{"a b", 1}}), "filter at '/a b': the field path 'a b' holds ' '" + rule);
  EXPECT_REFUSED(json({{"a\n", 1}}),
                 "filter at '/a\\x0a': the field path 'a\\x0a' holds '\\x0a'" + rule);
  EXPECT_REFUSED(json({{"caf\xc3\xa9", 1}}),
                 "filter at '/caf\xc3\xa9': the field path 'caf\xc3\xa9' holds '\\xc3'" + rule);
  EXPECT_REFUSED(json({{"a'); DROP TABLE memory; --", 1}}),
                 "filter at '/a'); DROP TABLE memory; --': the field path 'a'); DROP TABLE "
                 "memory; --' holds '''" +
                     rule);
  // The pointer of the message escapes '/' as JSON pointers do.
  EXPECT_REFUSED(json({{"a/b", 1}}), "filter at '/a~1b': the field path 'a/b' holds '/'" + rule);

  std::string segments;
  for (int i = 0; i < 33; ++i) segments += i ? ".s" : "s";
  EXPECT_REFUSED(json({{segments, 1}}), "filter at '/" + segments + "': the field path '" +
                                            segments + "' has more than 32 segments (the limit)");
  std::string max_segments = segments.substr(2);
  EXPECT_NO_THROW(parse_json_filter(json({{max_segments, 1}})));
  std::string long_segment(129, 'x');
  EXPECT_NE(
      refusal(json({{long_segment, 1}})).find("has a segment longer than 128 bytes (the limit)"),
      std::string::npos);
  EXPECT_NO_THROW(parse_json_filter(json({{std::string(128, 'x'), 1}})));
  // Digits, dashes and underscores are plain names.
  EXPECT_NO_THROW(parse_json_filter(json({{"0.-1.a_b-C9", 1}})));
}

TEST(JsonFilter, AMessageShowsAtMostTheStartOfALongKey) {
  std::string key;
  for (int i = 0; i < 20; ++i) key += std::string(100, 'a') + '.';
  key += '!';
  std::string message = refusal(json({{key, 1}}));
  EXPECT_LT(message.size(), 400u) << message;
  EXPECT_NE(message.find("aaa...' holds '!'"), std::string::npos) << message;
}

// {"$not": {"$not": ... {"a": 1}}} with `levels` levels in all.
json nested_nots(std::size_t levels) {
  json f = {{"a", 1}};
  for (std::size_t i = 1; i < levels; ++i) {
    json outer = json::object();
    outer["$not"] = std::move(f);
    f = std::move(outer);
  }
  return f;
}

TEST(JsonFilter, RefusesFiltersNestedPastTheLimit) {
  EXPECT_NO_THROW(parse_json_filter(nested_nots(32)));
  std::string message = refusal(nested_nots(33));
  EXPECT_EQ(message.rfind("filter at '/$not/$not/", 0), 0u) << message;
  EXPECT_NE(message.find("': nested deeper than 32 levels (the limit)"), std::string::npos)
      << message;
  // Refused at the first level past the limit, however deep the filter goes.
  EXPECT_NE(refusal(nested_nots(100'000)).find("nested deeper than 32 levels"), std::string::npos);
  // $and and $or count the same.
  json f = {{"a", 1}};
  for (int i = 1; i < 33; ++i) f = {{i % 2 ? "$and" : "$or", json::array({f})}};
  EXPECT_NE(refusal(f).find("nested deeper than 32 levels"), std::string::npos);
}

TEST(JsonFilter, RefusesFiltersOfMoreTermsThanTheLimit) {
  // One $in and its elements: 1 + 1023 terms.
  json in = json::array();
  for (int i = 0; i < 1023; ++i) in.push_back(i);
  EXPECT_NO_THROW(parse_json_filter(json({{"a", {{"$in", in}}}})));
  in.push_back(1023);
  EXPECT_REFUSED(json({{"a", {{"$in", in}}}}),
                 "filter at '/a/$in': more than 1024 terms (the limit)");
  json any = json::array();
  for (int i = 0; i < 1024; ++i) any.push_back({{"a", i}});
  EXPECT_NE(refusal(json({{"$or", any}})).find("more than 1024 terms (the limit)"),
            std::string::npos);
}

TEST(JsonFilter, ParsesIntoATreeOfConditions) {
  filter_node n = parse_json_filter(
      json::parse(R"({"n": {"$gt": 1, "$lt": 5}, "s": "x", "$or": [{"a.b": 1}, {"c": 2}]})"));
  ASSERT_EQ(n.type, filter_node::kind::all_of);
  // Keys in nlohmann's order (sorted): "$or", "n" (two conditions), "s".
  ASSERT_EQ(n.children.size(), 4u);
  EXPECT_EQ(n.children[0].type, filter_node::kind::any_of);
  ASSERT_EQ(n.children[0].children.size(), 2u);
  EXPECT_EQ(n.children[0].children[0].path, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(n.children[1].op, filter_op::gt);
  EXPECT_EQ(n.children[2].op, filter_op::lt);
  EXPECT_EQ(n.children[2].operand, json(5));
  EXPECT_EQ(n.children[3].op, filter_op::eq);
  EXPECT_EQ(n.children[3].operand, json("x"));
  // One condition alone is not wrapped; {} matches all.
  EXPECT_EQ(parse_json_filter(json({{"a", 1}})).type, filter_node::kind::condition);
  EXPECT_EQ(parse_json_filter(json::object()).type, filter_node::kind::match_all);
  EXPECT_EQ(compile_json_filter(json::object(), sql_dialect::sqlite, "value").sql, "TRUE");
}

TEST(JsonFilter, WritesPathsAndValuesAsParameters) {
  auto s = compile_json_filter(json({{"a.0", 1}}), sql_dialect::sqlite, "value");
  EXPECT_EQ(s.sql,
            "CASE WHEN json_type(value, ?) IN ('integer', 'real') THEN json_extract(value, ?) = ? "
            "ELSE FALSE END");
  EXPECT_EQ(s.bound, (entity::params{"$.\"a\".\"0\"", "$.\"a\".\"0\"", 1}));
  auto p = compile_json_filter(json({{"a.0", 1}}), sql_dialect::postgresql, "value");
  EXPECT_EQ(p.sql,
            "COALESCE((CAST((value) AS jsonb) -> CAST(? AS text) -> CAST(? AS text)) = "
            "CAST(? AS jsonb), FALSE)");
  EXPECT_EQ(p.bound, (entity::params{"a", "0", "1"}));
  // Numbers go to PostgreSQL as their JSON text, which numeric reads exactly.
  p = compile_json_filter(json({{"a", {{"$gt", 0.1}}}}), sql_dialect::postgresql, "value");
  EXPECT_EQ(p.bound.back(), entity::value("0.1"));
}

TEST(JsonFilter, UserTextReachesTheSqlOnlyAsParameters) {
  const std::string hostile = "x'); DROP TABLE memory; --";
  json f = json::parse(R"({"$or": [{"name": {"$in": ["'", "\"", "?", "$1"]}},
                                   {"tags": {"$contains": "?"}},
                                   {"n": {"$gte": "' OR 1=1 --"}}]})");
  f["name2"] = hostile;
  for (sql_dialect d : dialects) {
    compiled_filter c = compile_json_filter(f, d, "value");
    EXPECT_EQ(c.sql.find("DROP"), std::string::npos) << c.sql;
    EXPECT_EQ(c.sql.find("OR 1=1"), std::string::npos) << c.sql;
    EXPECT_EQ(c.sql.find("$1"), std::string::npos) << c.sql;
    EXPECT_EQ(c.sql.find("name"), std::string::npos) << c.sql;
    EXPECT_EQ(c.sql.find("tags"), std::string::npos) << c.sql;
    EXPECT_EQ(placeholders(c, d), c.bound.size()) << c.sql;
    EXPECT_NE(std::find(c.bound.begin(), c.bound.end(),
                        entity::value(d == sql_dialect::sqlite ? hostile : json(hostile).dump())),
              c.bound.end());
    // The same filter with other names and values: the same SQL.
    json other = json::parse(R"({"$or": [{"x": {"$in": ["a", "b", "c", "d"]}},
                                         {"y": {"$contains": "e"}},
                                         {"z": {"$gte": "f"}}]})");
    other["zz"] = "g";
    EXPECT_EQ(compile_json_filter(other, d, "value").sql, c.sql);
  }
}

TEST(JsonFilter, EveryPlaceholderHasItsParameter) {
  json f = json::parse(R"({"a": {"$in": [null, true, false, 1, 2.5, "s"], "$nin": [1, "t"]},
                           "b.c": {"$contains": "x"}, "d": {"$contains": 1},
                           "e": {"$exists": false}, "$not": {"f": {"$lt": 3, "$gte": "q"}},
                           "g": {"$in": []}, "h": {"$ne": null}})");
  for (sql_dialect d : dialects) {
    compiled_filter c = compile_json_filter(f, d, "m.value");
    EXPECT_EQ(placeholders(c, d), c.bound.size()) << c.sql;
    EXPECT_GT(c.bound.size(), 20u);
  }
}

}  // namespace
