// The memory's write path on arbitrary bytes: a key, a scope name and a value's JSON text cut
// from the input, stored and read back on one SQLite in-memory database. Either a part is
// refused with a clean entity::error (invalid_argument: a scope name or key that is not UTF-8,
// text that is not JSON, nested deeper than max_json_depth or with a number no double holds),
// or what was stored is what is read back: the same value by load and batch_load, under the
// same key, listed by keys(). Nothing else escapes, nothing crashes.
//
// The input: two length bytes, then the scope name and the key of those lengths (as far as
// the input goes), then the value's text. Scope name length 0 means no scope.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "entity/entity.hpp"
#include "fuzz_check.hpp"

using entity::json;

namespace {

const entity::memory& whole() {
  static const auto infra = [] {
    auto i = std::make_shared<entity::sqlite_infrastructure>(
        entity::sqlite_params{.path = ":memory:", .pool_size = 1, .min_connections = 1});
    i->startup();
    return i;
  }();
  static const entity::memory mem{entity::database(infra)};
  return mem;
}

std::string_view take(std::string_view& in, std::size_t n) {
  n = std::min(n, in.size());
  std::string_view part = in.substr(0, n);
  in.remove_prefix(n);
  return part;
}

// Runs `f`; an entity::error must be invalid_argument and say something.
template <class F>
bool refused_cleanly(F&& f) {
  try {
    f();
    return false;
  } catch (const entity::error& e) {
    ENTITY_FUZZ_CHECK(e.code() == entity::errc::invalid_argument);
    ENTITY_FUZZ_CHECK(!e.diag().message.empty());
    return true;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (in.size() < 2) return 0;
  const std::size_t scope_len = static_cast<unsigned char>(in[0]) % 16;
  const std::size_t key_len = static_cast<unsigned char>(in[1]) % 64;
  in.remove_prefix(2);
  const std::string scope_name(take(in, scope_len));
  const std::string key(take(in, key_len));
  const std::string_view text = in;

  std::optional<entity::memory> view;
  if (scope_name.empty()) {
    view = whole();
  } else if (refused_cleanly([&] { view = whole().scope(scope_name); })) {
    ENTITY_FUZZ_CHECK(!entity::valid_utf8(scope_name));
    return 0;
  }
  ENTITY_FUZZ_CHECK(entity::valid_utf8(scope_name));

  json value;
  if (refused_cleanly([&] { value = entity::parse_json(text, "the value"); })) return 0;
  ENTITY_FUZZ_CHECK(!entity::json_storage_problem(value));

  if (refused_cleanly([&] { view->store(key, value); })) {
    ENTITY_FUZZ_CHECK(!entity::valid_utf8(key));  // the value was fine: the key is not
    ENTITY_FUZZ_CHECK(!view->exists(key));
    return 0;
  }
  ENTITY_FUZZ_CHECK(entity::valid_utf8(key));
  std::optional<json> loaded = view->load(key);
  ENTITY_FUZZ_CHECK(loaded.has_value());
  ENTITY_FUZZ_CHECK(*loaded == value);
  ENTITY_FUZZ_CHECK(loaded->dump() == value.dump());
  entity::memory::loaded batch = view->batch_load({key});
  ENTITY_FUZZ_CHECK(batch.size() == 1 && batch.begin()->first == key);
  ENTITY_FUZZ_CHECK(batch.begin()->second.dump() == value.dump());
  // keys() takes a LIKE pattern: ask for every key and find this one.
  std::vector<std::string> keys = view->keys();
  ENTITY_FUZZ_CHECK(std::find(keys.begin(), keys.end(), key) != keys.end());

  // batch_store writes the same.
  ENTITY_FUZZ_CHECK(view->erase(key));
  ENTITY_FUZZ_CHECK(!view->exists(key));
  view->batch_store({{key, value}});
  loaded = view->load(key);
  ENTITY_FUZZ_CHECK(loaded.has_value() && loaded->dump() == value.dump());
  ENTITY_FUZZ_CHECK(view->erase(key));
  return 0;
}
