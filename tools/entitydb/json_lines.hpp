// The JSON Lines files of `entitydb memory import/export` and `entitydb vector import`: how one
// line becomes an item. Kept apart from the commands so that the rules can be checked alone
// (tests/fuzz/json_lines_fuzz.cpp feeds them arbitrary bytes).
#pragma once

#include <entity/entity.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common.hpp"

namespace entitydb {

/// A JSON array of numbers as float32s. Throws a failure naming `what` when `j` is not an
/// array, is empty, or has an element that is not a number or does not fit in a float32.
std::vector<float> to_floats(const entity::json& j, std::string_view what);

/// The memory item of one import line, {"key": "...", "value": ...} and, optionally, the times
/// `memory export --times` writes: "created", "updated" and "expires" (TIME: ISO-8601 UTC or
/// milliseconds since the epoch, as a string or a number; null: not given) and "ttl"
/// (seconds above zero, at most 10,000 years; null: not given). Other fields are ignored.
/// Throws bad(why) when "key" is missing or not a string, "value" is missing, or a time or
/// the ttl is not one. The value is moved out of `line`.
entity::memory_item memory_item_of_line(entity::json& line, const line_failure& bad);

/// The line `memory export` writes for one item (no newline); memory_item_of_line reads it.
/// Throws a failure naming the key (escaped) when the key or a text of the value is not UTF-8:
/// the line would not read back as the same item.
std::string memory_line(const std::string& key, const entity::json& value);
/// The line of `memory export --times`: "created" and "updated" (null when unknown), and for
/// an item that expires "expires" and "ttl" (seconds; null when it has a fixed expiry).
std::string memory_item_line(const entity::memory_item& item);
/// A time as the lines write it: ISO-8601 UTC to the millisecond, or null.
nlohmann::ordered_json time_json(const std::optional<entity::memory_time>& t);
/// The same line with the fields of `more` after "key" and "value" (`memory search --json`).
std::string memory_line(const std::string& key, const entity::json& value,
                        const nlohmann::ordered_json& more);

/// The vector item of one import line, {"id": "...", "vector": [...], "metadata": {...}}, for
/// collection `c`. Throws bad(why) unless "id" is a non-empty string, "vector" has `c.dim`
/// finite float32s (not all zero in a cosine collection) and "metadata", if any, is an object
/// or null. The metadata is moved out of `line`.
entity::vector_item vector_item_of_line(entity::json& line, const line_failure& bad,
                                        const entity::collection_info& c);

}  // namespace entitydb
