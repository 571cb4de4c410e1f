// The JSON Lines imports of `entitydb memory import` and `entitydb vector import` on arbitrary
// files. A bad line fails with "FILE:LINE: why" and nothing else escapes; no accepted line is
// longer than the line limit (here max_line_bytes, small enough for the fuzzer to cross) or
// nested deeper than entity::max_json_depth, and a line refused as too long is; an accepted
// vector line is one the collection may store; an accepted memory item, stored and exported,
// reads back as the same item, and exporting it again gives the same bytes.
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "json_lines.hpp"

using entity::json;
using namespace entitydb;

namespace {

constexpr std::size_t max_line_bytes = 4096;

// memory::store keeps a value as its JSON text; load parses it back.
json stored(const json& value) { return json::parse(value.dump()); }

void check_memory_item(json& line, const line_failure& bad) {
  ENTITY_FUZZ_CHECK(!entity::json_storage_problem(line));
  entity::memory_item item = memory_item_of_line(line, bad);
  item.value = stored(item.value);
  // With its times too: what export --times writes reads back as the same item.
  for (const std::string& exported : {memory_line(item.key, item.value), memory_item_line(item)}) {
    json reread = json::parse(exported);
    entity::memory_item again = memory_item_of_line(reread, bad);
    ENTITY_FUZZ_CHECK(again.key == item.key);
    ENTITY_FUZZ_CHECK(again.value == item.value);
    if (exported != memory_line(item.key, item.value)) {
      ENTITY_FUZZ_CHECK(again.created == item.created && again.updated == item.updated);
      ENTITY_FUZZ_CHECK(again.expires == item.expires);
      ENTITY_FUZZ_CHECK(memory_item_line(again) == exported);
    } else {
      ENTITY_FUZZ_CHECK(memory_line(again.key, again.value) == exported);
    }
  }
}

void check_vector_item(json& line, const line_failure& bad) {
  ENTITY_FUZZ_CHECK(!entity::json_storage_problem(line));
  const entity::collection_info c{.name = "c", .dim = 3, .metric = entity::metric::cosine};
  entity::vector_item item = vector_item_of_line(line, bad, c);
  ENTITY_FUZZ_CHECK(!item.id.empty());
  ENTITY_FUZZ_CHECK(item.vector.size() == c.dim);
  ENTITY_FUZZ_CHECK(std::all_of(item.vector.begin(), item.vector.end(),
                                [](float x) { return std::isfinite(x); }));
  ENTITY_FUZZ_CHECK(
      std::any_of(item.vector.begin(), item.vector.end(), [](float x) { return x != 0; }));
  ENTITY_FUZZ_CHECK(item.metadata.is_object());
}

// The length of each line of `text`, in bytes before its newline.
std::vector<std::size_t> line_lengths(std::string_view text) {
  std::vector<std::size_t> out;
  for (std::size_t from = 0; from <= text.size();) {
    std::size_t end = text.find('\n', from);
    if (end == std::string_view::npos) end = text.size();
    out.push_back(end - from);
    from = end + 1;
  }
  return out;
}

void import_file(std::string_view text, void (*check)(json&, const line_failure&)) {
  std::istringstream in{std::string(text)};
  const std::vector<std::size_t> lengths = line_lengths(text);
  const std::size_t lines = lengths.size();
  try {
    for_each_json_line(in, "in.jsonl", check, max_line_bytes);
    // Every line was read: none was longer than the limit.
    ENTITY_FUZZ_CHECK(*std::max_element(lengths.begin(), lengths.end()) <= max_line_bytes);
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
    // The lines before it were within the limit; it is past it exactly when it says so.
    for (std::size_t i = 0; i + 1 < number; ++i) ENTITY_FUZZ_CHECK(lengths[i] <= max_line_bytes);
    const bool said_too_long =
        what.substr(digits + 2).starts_with("the line is longer than 4096 bytes");
    ENTITY_FUZZ_CHECK(said_too_long == (lengths[number - 1] > max_line_bytes));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  import_file(text, check_memory_item);
  import_file(text, check_vector_item);
  return 0;
}
