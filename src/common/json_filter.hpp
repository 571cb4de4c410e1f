// Filters on stored JSON values, compiled to SQL: the one implementation behind the memory's
// search and the vector store's metadata filters. A filter is JSON, in the language of mem0
// and MongoDB; it is parsed into a small tree (parse_json_filter), refused whole when any part
// of it is malformed, and the tree is written as a SQL boolean expression for one dialect
// (emit_json_filter). Plain code: no I/O, no threads.
//
// The language
//   {"a.b": 1}                       a bare value is {"a.b": {"$eq": 1}}
//   {"a": 1, "b": 2}                 several keys of one object are AND-ed
//   {"n": {"$gt": 1, "$lt": 5}}      several operators on one field are AND-ed
//   field operators                  $eq $ne $gt $gte $lt $lte $in $nin $exists $contains
//   {"$and": [f, ...]}, {"$or": [f, ...]}, {"$not": f}
//                                    nest, and sit beside field conditions in one object
//   {}                               at the top: every value matches
//
// Semantics (the same on both dialects; a missing path is one that leads nowhere: a key that
// is absent, or a step into something that is not an object)
//   $eq v       type-strict JSON equality. Numbers compare as numbers (1 == 1.0), strings by
//               their bytes, true/false only with booleans (true != 1), null only with null.
//               v is a scalar: objects and arrays are refused (their equality cannot be made
//               the same on both backends: key order, duplicate keys, number spellings)
//   $ne v       not $eq v: true on a missing path
//   $gt $gte $lt $lte v
//               v a number or a string. Numbers with numbers, strings with strings in byte
//               order (UTF-8 bytes: code point order; PostgreSQL compares in COLLATE "C",
//               whatever the database's collation). False for a stored value of another type
//               and on a missing path
//   $in [v...]  $eq with any element (scalars); $in [] is false
//   $nin [v...] not $in: true on a missing path; $nin [] is true
//   $exists b   true: the path is present, even holding null; false: absent
//   $contains v the stored value is an array with an element $eq to v (its elements, not
//               theirs: [[1]] does not contain 1), or v is a string and the stored value a
//               string holding it (the empty string is in every string). False otherwise,
//               for objects too
//   $not f      the negation of f: {"$not": {"a": {"$gt": 1}}} is true on a missing path
//   $and/$or    a non-empty list of non-empty filter objects
// A stored value that is not an object (42, "text", [1]) has no paths. Every expression is
// strictly TRUE or FALSE, never SQL NULL, so $not and $or are plain boolean logic.
//
// Paths: dotted; each segment is 1 to 128 of [A-Za-z0-9_-], at most 32 segments. A segment
// names an object key only, digits too ("tags.0" is the key "0", never an array's element),
// on both backends. These bytes read the same in SQLite's JSON path syntax ($."a"."0") and
// PostgreSQL's text keys, and no JSON writer escapes them: SQLite (before 3.45) finds a path's
// key by comparing it to the key's JSON text undecoded, so a key a writer escaped (Python's
// json.dumps writes "é" as "\u00e9") would be found by PostgreSQL and not by SQLite. A key
// holding other characters (a '.', a space, non-ASCII) cannot be addressed.
//
// Limits: nested at most max_filter_depth (32) levels (the top object is level 1, each
// $and/$or element and $not operand one more), at most max_filter_terms (1024) terms (each
// field operator, each $in/$nin element and each $and/$or/$not counts one).
//
// Refused, with errc::invalid_argument and a message saying what is wrong and where (a JSON
// pointer into the filter: "filter at '/$or/1/age/$in': $in needs an array, not a string"): a
// filter that is not an object; unknown operators ($regex, $foo, a field operator at the top,
// $and inside an operator object); $and/$or with an empty list or a non-list, or an element
// that is not a non-empty object; $not of anything but a non-empty object; $in/$nin of a
// non-array or holding a non-scalar; $exists of a non-bool; an operator object mixing
// $-keys and plain keys, an object or array where a scalar is due, an empty operator object;
// a bad path; a number that is not finite or an integer past int64; a string that is not
// UTF-8 or holds a NUL (PostgreSQL can hold neither); nesting or size past the limits.
//
// Where the backends can still differ, on JSON text other programs wrote: an object with a
// duplicate key (SQLite sees the first, PostgreSQL the last; nlohmann::json never writes one);
// numbers, which SQLite holds as int64 or double and PostgreSQL exactly: they agree on every
// integer in int64 and every number written in the shortest form that reads back as the same
// double (what nlohmann::json and Python write) of magnitude below 2^53, not on longer decimal
// text nor integers past int64. PostgreSQL refuses to read a stored string holding \u0000 as
// jsonb, failing the statement.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "entity/infrastructure.hpp"  // entity::sql_dialect
#include "entity/json.hpp"
#include "entity/value.hpp"

namespace entity::detail {

inline constexpr std::size_t max_filter_depth = 32;
inline constexpr std::size_t max_filter_terms = 1024;
inline constexpr std::size_t max_path_segments = 32;
inline constexpr std::size_t max_path_segment_size = 128;

enum class filter_op { eq, ne, gt, gte, lt, lte, in, nin, exists, contains };

/// One node of a parsed filter.
struct filter_node {
  enum class kind {
    match_all,  ///< {} at the top
    all_of,     ///< $and, and the keys and operators of one object: children, at least one
    any_of,     ///< $or: children, at least one
    negation,   ///< $not: one child
    condition,  ///< path, op, operand
  };
  kind type = kind::match_all;
  std::vector<filter_node> children;
  std::vector<std::string> path;  ///< a condition's segments, each checked as above
  filter_op op = filter_op::eq;
  /// A condition's operand, checked: a scalar (null, bool, a finite number, an integer within
  /// int64, a UTF-8 string without NUL); for $in/$nin an array of those; for $exists a bool.
  json operand;
};

/// Parses and checks `filter`. Throws entity::error (errc::invalid_argument) naming the
/// problem and where it is; recurses at most max_filter_depth levels, whatever `filter`'s
/// depth.
filter_node parse_json_filter(const json& filter);

/// A filter as SQL: a boolean expression for a WHERE clause and the parameters it binds, in
/// the order of its `?` placeholders (one `?` per parameter, on both dialects).
struct compiled_filter {
  std::string sql;
  params bound;
};

/// `filter` as SQL of `dialect` on the JSON text (or, on PostgreSQL, jsonb) that the SQL
/// expression `column` yields, e.g. "value" or "m.metadata". Every path and value of the
/// filter is a bound parameter; the text is this file's own SQL and `column`.
/// REQUIRES: `column` is SQL of the caller's own, never user input, and names a value of the
/// row being filtered. PostgreSQL: the SQL casts `column` to jsonb at each use (a caller
/// filtering on many conditions can pass a jsonb expression computed once per row, for which
/// the cast is free).
compiled_filter emit_json_filter(const filter_node& filter, sql_dialect dialect,
                                 std::string_view column);

/// parse_json_filter, then emit_json_filter.
compiled_filter compile_json_filter(const json& filter, sql_dialect dialect,
                                    std::string_view column);

}  // namespace entity::detail
