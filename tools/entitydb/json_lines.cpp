#include "json_lines.hpp"

#include <algorithm>
#include <cmath>

namespace entitydb {

using entity::json;

std::vector<float> to_floats(const json& j, std::string_view what) {
  if (!j.is_array()) throw failure(std::string(what) + " is not a JSON array of numbers");
  if (j.empty()) throw failure(std::string(what) + " is empty");
  std::vector<float> out;
  out.reserve(j.size());
  for (std::size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_number())
      throw failure(std::string(what) + " has a " + j[i].type_name() + " at index " +
                    std::to_string(i) + " (numbers only)");
    double d = j[i].get<double>();
    auto f = static_cast<float>(d);
    if (!std::isfinite(f))
      throw failure(std::string(what) + " has " + dump_json(j[i]) + " at index " +
                    std::to_string(i) + ", which does not fit in a float32");
    out.push_back(f);
  }
  return out;
}

namespace {

std::optional<entity::memory_time> time_field(const json& line, const char* name,
                                              const line_failure& bad) {
  auto f = line.find(name);
  if (f == line.end() || f->is_null()) return std::nullopt;
  std::optional<std::int64_t> millis;
  if (f->is_number_integer()) {
    millis = f->get<std::int64_t>();
  } else if (f->is_string()) {
    if (auto t = parse_utc_time(f->get_ref<const std::string&>())) millis = t->millis;
  }
  if (!millis)
    throw bad("\"" + std::string(name) +
              "\" is not a time (ISO-8601 UTC, or milliseconds since the epoch)");
  return entity::memory_time(std::chrono::milliseconds(*millis));
}

}  // namespace

entity::memory_item memory_item_of_line(json& line, const line_failure& bad) {
  auto key = line.find("key");
  if (key == line.end()) throw bad("no \"key\"");
  if (!key->is_string()) throw bad("\"key\" is not a string");
  auto value = line.find("value");
  if (value == line.end()) throw bad("no \"value\"");
  entity::memory_item item;
  item.key = key->get<std::string>();
  item.created = time_field(line, "created", bad);
  item.updated = time_field(line, "updated", bad);
  item.expires = time_field(line, "expires", bad);
  if (auto ttl = line.find("ttl"); ttl != line.end() && !ttl->is_null()) {
    const double seconds = ttl->is_number() ? ttl->get<double>() : 0;
    if (!(seconds > 0 && seconds <= longest_ttl_seconds))
      throw bad("\"ttl\" is not a number of seconds above zero and at most 10,000 years");
    // To the nearest millisecond (what export wrote), and never none at all.
    item.ttl = std::max(std::chrono::milliseconds(1),
                        std::chrono::milliseconds(std::llround(seconds * 1000.0)));
  }
  item.value = std::move(*value);
  return item;
}

nlohmann::ordered_json time_json(const std::optional<entity::memory_time>& t) {
  if (!t) return nullptr;
  return format_utc_time(t->time_since_epoch().count());
}

std::string memory_item_line(const entity::memory_item& item) {
  auto more = nlohmann::ordered_json::object();
  more["created"] = time_json(item.created);
  more["updated"] = time_json(item.updated);
  if (item.expires) {
    more["expires"] = time_json(item.expires);
    more["ttl"] = item.ttl ? nlohmann::ordered_json(static_cast<double>(item.ttl->count()) / 1000.0)
                           : nlohmann::ordered_json(nullptr);
  }
  return memory_line(item.key, item.value, more);
}

std::string memory_line(const std::string& key, const json& value) {
  return memory_line(key, value, nlohmann::ordered_json::object());
}

std::string memory_line(const std::string& key, const json& value,
                        const nlohmann::ordered_json& more) {
  if (!entity::valid_utf8(key))
    throw failure("the key " + entity::printable(key) +
                  " is not valid UTF-8: JSON text cannot hold it unchanged");
  nlohmann::ordered_json line = {{"key", key}, {"value", value}};
  for (const auto& [name, field] : more.items()) line[name] = field;
  try {
    return line.dump();  // strict: text that is not UTF-8 is refused, never replaced
  } catch (const json::exception& e) {
    throw failure("the value of key " + entity::printable(key) +
                  " cannot be written as JSON: " + json_reason(e));
  }
}

entity::vector_item vector_item_of_line(json& line, const line_failure& bad,
                                        const entity::collection_info& c) {
  auto id = line.find("id");
  if (id == line.end()) throw bad("no \"id\"");
  if (!id->is_string()) throw bad("\"id\" is not a string");
  if (id->get_ref<const std::string&>().empty()) throw bad("\"id\" is empty");
  auto vec = line.find("vector");
  if (vec == line.end()) throw bad("no \"vector\"");
  entity::vector_item item;
  item.id = id->get<std::string>();
  try {
    item.vector = to_floats(*vec, "\"vector\"");
  } catch (const failure& f) {
    throw bad(f.what());
  }
  if (item.vector.size() != c.dim)
    throw bad("\"vector\" has " + std::to_string(item.vector.size()) + " values; collection '" +
              c.name + "' has dimension " + std::to_string(c.dim));
  if (c.metric == entity::metric::cosine &&
      std::all_of(item.vector.begin(), item.vector.end(), [](float x) { return x == 0; }))
    throw bad("\"vector\" is all zeros: a cosine collection needs a direction");
  if (auto meta = line.find("metadata"); meta != line.end() && !meta->is_null()) {
    if (!meta->is_object()) throw bad("\"metadata\" is not a JSON object");
    item.metadata = std::move(*meta);
  }
  return item;
}

}  // namespace entitydb
