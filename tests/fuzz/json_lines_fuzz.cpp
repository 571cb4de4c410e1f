// The JSON Lines imports of `entitydb memory import` and `entitydb vector import` on arbitrary
// files. A bad line fails with "FILE:LINE: why" and nothing else escapes; an accepted vector
// line is one the collection may store; an accepted memory item, stored and exported, reads
// back as the same item, and exporting it again gives the same bytes.
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "json_lines.hpp"

using entity::json;
using namespace entitydb;

namespace {

// memory::store keeps a value as its JSON text; load parses it back.
json stored(const json& value) { return json::parse(value.dump()); }

void check_memory_item(json& line, const line_failure& bad) {
  auto [key, value] = memory_item_of_line(line, bad);
  std::string exported = memory_line(key, stored(value));
  json reread = json::parse(exported);
  auto [key2, value2] = memory_item_of_line(reread, bad);
  ENTITY_FUZZ_CHECK(key2 == key);
  ENTITY_FUZZ_CHECK(value2 == stored(value));
  ENTITY_FUZZ_CHECK(memory_line(key2, stored(value2)) == exported);
}

void check_vector_item(json& line, const line_failure& bad) {
  const entity::collection_info c{.name = "c", .dim = 3, .metric = entity::metric::cosine};
  entity::vector_item item = vector_item_of_line(line, bad, c);
  ENTITY_FUZZ_CHECK(!item.id.empty());
  ENTITY_FUZZ_CHECK(item.vector.size() == c.dim);
  ENTITY_FUZZ_CHECK(std::all_of(item.vector.begin(), item.vector.end(),
                                [](float x) { return std::isfinite(x); }));
  ENTITY_FUZZ_CHECK(std::any_of(item.vector.begin(), item.vector.end(),
                                [](float x) { return x != 0; }));
  ENTITY_FUZZ_CHECK(item.metadata.is_object());
}

void import_file(std::string_view text, void (*check)(json&, const line_failure&)) {
  std::istringstream in{std::string(text)};
  std::size_t lines = std::count(text.begin(), text.end(), '\n') + 1;
  try {
    for_each_json_line(in, "in.jsonl", check);
  } catch (const failure& f) {
    // "in.jsonl:LINE: why", LINE one of the file's lines.
    std::string_view what = f.what();
    ENTITY_FUZZ_CHECK(what.starts_with("in.jsonl:"));
    what.remove_prefix(9);
    std::size_t digits = what.find(':');
    ENTITY_FUZZ_CHECK(digits != std::string_view::npos && digits > 0);
    std::size_t number = std::stoul(std::string(what.substr(0, digits)));
    ENTITY_FUZZ_CHECK(number >= 1 && number <= lines);
    ENTITY_FUZZ_CHECK(what.size() > digits + 2 && what.substr(digits, 2) == ": ");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  import_file(text, check_memory_item);
  import_file(text, check_vector_item);
  return 0;
}
