#include "vector/codec.hpp"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>

#include "entity/vector_store.hpp"

namespace entity::vector_detail {

static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559,
              "vectors are stored as IEEE 754 float32");

blob encode_vector(std::span<const float> v) {
  if (v.empty()) return blob();  // memcpy from or to the null data() of nothing is undefined
  std::vector<std::byte> bytes(v.size() * 4);
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(bytes.data(), v.data(), bytes.size());
  } else {
    for (std::size_t i = 0; i < v.size(); ++i) {
      auto u = std::bit_cast<std::uint32_t>(v[i]);
      for (int b = 0; b < 4; ++b) bytes[i * 4 + b] = static_cast<std::byte>(u >> (8 * b));
    }
  }
  return blob(std::move(bytes));
}

bool decode_vector(const blob& b, std::size_t dim, float* out) noexcept {
  if (b.bytes.size() != dim * 4) return false;
  if (dim == 0) return true;  // memcpy from the null data() of an empty blob is undefined
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(out, b.bytes.data(), b.bytes.size());
  } else {
    for (std::size_t i = 0; i < dim; ++i) {
      std::uint32_t u = 0;
      for (int k = 0; k < 4; ++k)
        u |= std::uint32_t(std::to_integer<std::uint8_t>(b.bytes[i * 4 + k])) << (8 * k);
      out[i] = std::bit_cast<float>(u);
    }
  }
  return true;
}

std::optional<std::string> vector_problem(std::span<const float> v) {
  if (v.empty()) return std::string("is empty");
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (std::isnan(v[i])) return "has a NaN at index " + std::to_string(i);
    if (std::isinf(v[i])) return "has an infinity at index " + std::to_string(i);
  }
  return std::nullopt;
}

std::string encode_metadata(const json& metadata, std::string_view whose) {
  if (metadata.is_null()) return "{}";
  if (!metadata.is_object())
    throw error(errc::invalid_argument,
                {"the metadata of " + std::string(whose) + " is not a JSON object (it is " +
                     metadata.type_name() + ")",
                 {}});
  if (auto why = json_storage_problem(metadata))
    throw error(errc::invalid_argument, {"the metadata of " + std::string(whose) + " " + *why, {}});
  try {
    return metadata.dump();
  } catch (const json::exception& e) {
    throw error(
        errc::invalid_argument,
        {"the metadata of " + std::string(whose) + " cannot be written as JSON: " + e.what(), {}});
  }
}

json decode_metadata(const value& stored, std::string_view whose) {
  if (stored.is_null()) return json::object();
  std::string_view text;
  std::string from_blob;
  if (stored.is_text()) {
    text = stored.as_text();
  } else if (stored.is_blob()) {
    const auto& b = stored.as_blob().bytes;
    from_blob.assign(reinterpret_cast<const char*>(b.data()), b.size());
    text = from_blob;
  }
  json_text_problem problem;
  std::optional<json> j = parse_json(text, problem);
  if (problem.too_deep)
    throw error(errc::decode_error,
                {"the stored metadata of " + std::string(whose) + " is " + problem.reason, {}});
  if (!j || !j->is_object())
    throw error(errc::decode_error, {"the stored metadata of " + std::string(whose) +
                                         " is not a JSON object: " + sql_excerpt(text),
                                     {}});
  return std::move(*j);
}

bool matches_filter(const json& metadata, const json& filter) {
  for (auto it = filter.begin(); it != filter.end(); ++it) {
    auto found = metadata.find(it.key());
    if (found == metadata.end() || *found != it.value()) return false;
  }
  return true;
}

std::string quote(std::string_view name) {
  std::string out = "'";
  std::size_t shown = 0;
  for (char c : name) {
    if (++shown > 80) {
      out += "...";
      break;
    }
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "'";
}

void check_name(std::string_view name) {
  if (vector_store::valid_name(name)) return;
  throw error(errc::invalid_argument,
              {quote(name) + " is not a valid collection name: use 1 to 63 ASCII letters, "
                             "digits or '_', not starting with a digit",
               {}});
}

std::string table_of(std::string_view name) { return "vec_" + std::string(name); }

}  // namespace entity::vector_detail
