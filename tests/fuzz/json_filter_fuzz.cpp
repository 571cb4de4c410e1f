// The JSON filter compiler (common/json_filter) on arbitrary JSON. Either the filter is
// refused with a clean entity::error (invalid_argument, a message), or, on each dialect:
//  - the SQL is made of the compiler's own words, literals and punctuation and the column's
//    name, with one `?` per bound parameter;
//  - the SQL is the same for the filter with every path and every string and number replaced
//    by another of the same shape: it depends on the filter's structure only, so no byte of a
//    path or a value reaches it other than through a parameter;
// and on SQLite the SQL runs over a few stored values, and is never NULL on any of them.
#include <sqlite3.h>

#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "common/json_filter.hpp"
#include "common/sql_lexer.hpp"
#include "entity/error.hpp"
#include "fuzz_check.hpp"

using entity::json;
using entity::sql_dialect;
using entity::detail::compiled_filter;

namespace {

// Every word, string literal and quoted identifier the compiler writes, and the column.
const std::set<std::string_view> words = {"CASE",       "WHEN",         "THEN",
                                          "ELSE",       "END",          "TRUE",
                                          "FALSE",      "NOT",          "AND",
                                          "OR",         "IN",           "IS",
                                          "NULL",       "COALESCE",     "EXISTS",
                                          "SELECT",     "FROM",         "WHERE",
                                          "AS",         "json_type",    "json_extract",
                                          "json_each",  "instr",        "doc",
                                          "filter_doc", "filter_elem",  "type",
                                          "CAST",       "text",         "jsonb",
                                          "numeric",    "jsonb_typeof", "jsonb_build_array",
                                          "strpos",     "COLLATE",      "value"};
const std::set<std::string_view> literals = {
    "'integer'", "'real'", "'text'", "'number'", "'string'", "'array'", "\"C\"", "0", "1"};
const std::string_view punctuation = "(),=<>.-@";

void check_sql(const compiled_filter& c, sql_dialect d) {
  std::size_t placeholders = 0;
  for (const auto& t : entity::detail::lex_sql(c.sql, d)) {
    using K = entity::detail::sql_token_kind;
    switch (t.kind) {
      case K::whitespace:
        ENTITY_FUZZ_CHECK(t.text == " ");
        break;
      case K::word:
        ENTITY_FUZZ_CHECK(words.count(t.text) == 1);
        break;
      case K::string:
      case K::quoted_identifier:
      case K::number:
        ENTITY_FUZZ_CHECK(literals.count(t.text) == 1);
        break;
      case K::placeholder:
        ENTITY_FUZZ_CHECK(t.text == "?");
        ++placeholders;
        break;
      case K::punctuation:
        ENTITY_FUZZ_CHECK(t.text.size() == 1 &&
                          punctuation.find(t.text[0]) != std::string_view::npos);
        break;
      default:
        ENTITY_FUZZ_CHECK(!"a comment, a separator or a dollar quote");
    }
  }
  ENTITY_FUZZ_CHECK(placeholders == c.bound.size());
}

// `filter` with its paths, strings and numbers replaced by others of the same shape: each
// plain key by "k<n>" of as many segments (n in the order of the keys, so that the order is
// kept: plain keys sort after the $-keys either way), strings by "s", integers by 7, other
// numbers by 0.5. Booleans and nulls stay: they choose SQL ($exists) or are no user text.
json blind_operand(const json& v) {
  if (v.is_string()) return "s";
  if (v.is_number_integer() || v.is_number_unsigned()) return 7;
  if (v.is_number_float()) return 0.5;
  if (v.is_array()) {
    json out = json::array();
    for (const json& e : v) out.push_back(blind_operand(e));
    return out;
  }
  return v;
}

json blind(const json& filter) {
  if (!filter.is_object()) return filter;
  json out = json::object();
  int n = 0;
  for (auto it = filter.begin(); it != filter.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    if (key.starts_with('$')) {
      if (v.is_array()) {
        json list = json::array();
        for (const json& e : v) list.push_back(blind(e));
        out[key] = list;
      } else {
        out[key] = blind(v);
      }
      continue;
    }
    char name[16];
    std::snprintf(name, sizeof name, "k%05d", n++);
    std::string path = name;
    for (char c : key)
      if (c == '.') path += ".s";
    if (v.is_object()) {
      json ops = json::object();
      for (auto op = v.begin(); op != v.end(); ++op) ops[op.key()] = blind_operand(op.value());
      out[path] = ops;
    } else {
      out[path] = blind_operand(v);
    }
  }
  return out;
}

sqlite3* database() {
  static sqlite3* db = [] {
    sqlite3* d = nullptr;
    ENTITY_FUZZ_CHECK(sqlite3_open(":memory:", &d) == SQLITE_OK);
    const char* setup =
        "CREATE TABLE memory(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO memory VALUES ('a', "
        "'{\"a\":1,\"b\":{\"c\":\"x\"},\"t\":[1,\"x\",true,null]}'),"
        "('b', '{\"a\":\"1\",\"b\":null,\"n\":2.5,\"t\":\"xyz\"}'), ('c', '[1,2]'), ('d', '7'),"
        "('e', '{}'), ('f', '{\"0\":{\"1\":false},\"a\":[[1]],\"s\":\"\\u00e9\"}');";
    ENTITY_FUZZ_CHECK(sqlite3_exec(d, setup, nullptr, nullptr, nullptr) == SQLITE_OK);
    return d;
  }();
  return db;
}

// The number of rows where `where` holds, run on SQLite.
long long count(const std::string& where, const entity::params& bound) {
  sqlite3_stmt* stmt = nullptr;
  std::string sql = "SELECT count(*) FROM memory WHERE " + where;
  ENTITY_FUZZ_CHECK(sqlite3_prepare_v2(database(), sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
  for (std::size_t i = 0; i < bound.size(); ++i) {
    const int at = static_cast<int>(i + 1);
    const entity::value& v = bound[i];
    if (v.is_int())
      sqlite3_bind_int64(stmt, at, v.as_int());
    else if (v.is_double())
      sqlite3_bind_double(stmt, at, v.as_double());
    else
      sqlite3_bind_text(stmt, at, v.as_text().data(), static_cast<int>(v.as_text().size()),
                        SQLITE_TRANSIENT);
  }
  ENTITY_FUZZ_CHECK(sqlite3_step(stmt) == SQLITE_ROW);
  long long n = sqlite3_column_int64(stmt, 0);
  ENTITY_FUZZ_CHECK(sqlite3_finalize(stmt) == SQLITE_OK);
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  entity::json_text_problem problem;
  std::optional<json> filter =
      entity::parse_json(std::string_view(reinterpret_cast<const char*>(data), size), problem);
  if (!filter) return 0;
  for (sql_dialect d : {sql_dialect::sqlite, sql_dialect::postgresql}) {
    compiled_filter c;
    try {
      c = entity::detail::compile_json_filter(*filter, d, "value");
    } catch (const entity::error& e) {
      ENTITY_FUZZ_CHECK(e.code() == entity::errc::invalid_argument);
      ENTITY_FUZZ_CHECK(!e.diag().message.empty());
      return 0;
    }
    check_sql(c, d);
    compiled_filter blinded = entity::detail::compile_json_filter(blind(*filter), d, "value");
    ENTITY_FUZZ_CHECK(blinded.sql == c.sql);
    ENTITY_FUZZ_CHECK(blinded.bound.size() == c.bound.size());
    if (d == sql_dialect::sqlite) {
      ENTITY_FUZZ_CHECK(count("(" + c.sql + ") IS NULL", c.bound) == 0);
      ENTITY_FUZZ_CHECK(count(c.sql, c.bound) + count("NOT (" + c.sql + ")", c.bound) == 6);
    }
  }
  return 0;
}
