// entity-db: the JSON of memory values and vector metadata, and the limits it is held to.
//
// Values are nlohmann::json. JSON enters the library as text (a stored value read back, a
// line of an import file, a command-line argument: parse_json) or as a json the caller built
// (memory::store, batch_store, vector metadata: checked by json_storage_problem before it is
// written). Either way:
//  - it is nested at most max_json_depth levels. nlohmann's writer and its copies recurse once
//    per level, so a value nested without bound would exhaust the stack; parse_json stops at
//    the first level past the limit, so nothing deeper is ever built;
//  - its numbers are finite. JSON has no NaN or infinity (nlohmann writes them as null), so a
//    value holding one is refused, never stored as something else;
//  - its text is UTF-8 (keys of the memory too: see valid_utf8).
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace entity {

using json = nlohmann::json;

/// The deepest nesting of arrays and objects a JSON value may have: a scalar is 0 levels,
/// `[]` and `{"a": 1}` are 1, `[[1]]` is 2. A value nested deeper is refused wherever JSON
/// enters: errc::invalid_argument for the caller's values (text or json), errc::decode_error
/// for a stored value read back. The Python package uses the same limit
/// (entity_db.MAX_JSON_DEPTH).
inline constexpr std::size_t max_json_depth = 512;

/// Why parse_json refused a text.
struct json_text_problem {
  bool too_deep = false;  ///< nested deeper than max_json_depth; otherwise the text is not JSON
  /// "nested deeper than 512 levels (the limit)", or the parser's reason the text is not JSON
  /// ("syntax error while parsing value - ... at line 1, column 3", "number overflow parsing
  /// '1e400'": a number no double holds is refused too).
  std::string reason;
};

/// Parses `text` as one JSON value (UTF-8, nothing but white space after it) nested at most
/// max_json_depth levels. Stops at the first level past the limit: nothing deeper is built.
/// On failure returns nullopt and says why in `problem`.
std::optional<json> parse_json(std::string_view text, json_text_problem& problem);

/// The same, throwing entity::error (errc::invalid_argument) whose message is
/// "<what> is not JSON: <reason>" or "<what> is nested deeper than 512 levels (the limit)".
json parse_json(std::string_view text, std::string_view what);

/// What keeps `j` from being written as JSON text faithfully: nesting deeper than
/// max_json_depth, or a NaN or an infinity, with the JSON pointer of where it is
/// ("has an infinity at /a/0"); nullopt when nothing does. Walks `j` without recursion, so a
/// value of any depth is answered. (Text that is not UTF-8 in a string is refused by the
/// writer itself.)
std::optional<std::string> json_storage_problem(const json& j);

/// Whether `text` is UTF-8: no stray continuation bytes, truncated or overlong sequences,
/// surrogates (U+D800 to U+DFFF) or code points past U+10FFFF.
bool valid_utf8(std::string_view text) noexcept;

/// `text` as a message can show it, in single quotes: control characters and bytes that are
/// not UTF-8 written as \xNN, a backslash as \\ (valid UTF-8 is kept as is): 'k\xff' for
/// the key "k\xff".
std::string printable(std::string_view text);

}  // namespace entity
