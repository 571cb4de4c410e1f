// How vectors and metadata are checked, written to and read back from their table.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "entity/value.hpp"
#include "entity/vector_types.hpp"

namespace entity::vector_detail {

/// The vector as little-endian float32 bytes, the column format of `embedding`.
blob encode_vector(std::span<const float> v);
/// Reads an `embedding` of `dim` floats into `out`; false when the blob has another size.
bool decode_vector(const blob& b, std::size_t dim, float* out) noexcept;

/// Why `v` cannot be stored or searched for ("has a NaN at index 3"), or nullopt when it is
/// fine. Checks what does not depend on the collection: not empty, every element finite.
std::optional<std::string> vector_problem(std::span<const float> v);

/// The metadata JSON text to store: null becomes {}. Throws entity::error (invalid_argument)
/// when `metadata` is not an object or cannot be written as JSON faithfully (a NaN or
/// infinity, nesting deeper than max_json_depth: json_storage_problem); `whose` names the item.
std::string encode_metadata(const json& metadata, std::string_view whose);
/// The metadata of a stored row (NULL reads as {}); throws entity::error (decode_error) when it
/// is not a JSON object or is nested deeper than max_json_depth.
json decode_metadata(const value& stored, std::string_view whose);

/// True when every key of `filter` is in `metadata` with an equal value.
bool matches_filter(const json& metadata, const json& filter);

/// `name` quoted for a message: 'name', with anything unprintable escaped and long names cut.
std::string quote(std::string_view name);

/// Throws entity::error (invalid_argument) unless `name` is a valid collection name.
void check_name(std::string_view name);

/// The table of collection `name` (which must be valid): vec_<name>.
std::string table_of(std::string_view name);

}  // namespace entity::vector_detail
