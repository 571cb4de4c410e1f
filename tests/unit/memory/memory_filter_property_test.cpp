// Property: memory::search with random filters over random values returns exactly what a
// brute-force evaluation of the documented semantics (README, "Searching memory";
// common/json_filter.hpp) returns, on every backend and collation. The evaluator here is written
// from the documentation, not from the compiler.
#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <string>
#include <vector>

#include "backends.hpp"
#include "entity/entity.hpp"
#include "library_support.hpp"

namespace {

using entity::json;
using entity::memory;
using entity::search_query;

// ---- the reference ---------------------------------------------------------------------------

// The value at a dotted path of object keys, or nothing.
const json* at(const json& doc, const std::string& path) {
  const json* cur = &doc;
  std::size_t from = 0;
  while (true) {
    const std::size_t dot = path.find('.', from);
    const std::string key = path.substr(from, dot == std::string::npos ? dot : dot - from);
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(key);
    if (it == cur->end()) return nullptr;
    cur = &*it;
    if (dot == std::string::npos) return cur;
    from = dot + 1;
  }
}

bool is_number(const json& j) { return j.is_number(); }

// $eq of two scalars: numbers as numbers, strings by bytes, booleans and null only themselves.
bool equal(const json& a, const json& b) {
  if (is_number(a) && is_number(b)) return a.get<double>() == b.get<double>();
  if (a.is_string() && b.is_string())
    return a.get_ref<const std::string&>() == b.get_ref<const std::string&>();
  if (a.is_boolean() && b.is_boolean()) return a.get<bool>() == b.get<bool>();
  if (a.is_null() && b.is_null()) return true;
  return false;
}

// $gt and the others: a number against a number, a string against a string (byte order).
std::optional<int> order(const json& a, const json& b) {
  if (is_number(a) && is_number(b)) {
    double x = a.get<double>(), y = b.get<double>();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    int c = a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>());
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  return std::nullopt;
}

bool matches(const json& doc, const json& filter);

bool condition(const json& doc, const std::string& path, const std::string& op,
               const json& operand) {
  const json* v = at(doc, path);
  if (op == "$exists") return operand.get<bool>() == (v != nullptr);
  if (op == "$ne") return !(v && !v->is_array() && !v->is_object() && equal(*v, operand));
  if (op == "$nin") {
    for (const json& x : operand)
      if (v && !v->is_array() && !v->is_object() && equal(*v, x)) return false;
    return true;
  }
  if (!v) return false;
  if (op == "$eq") return !v->is_array() && !v->is_object() && equal(*v, operand);
  if (op == "$in") {
    for (const json& x : operand)
      if (!v->is_array() && !v->is_object() && equal(*v, x)) return true;
    return false;
  }
  if (op == "$contains") {
    if (v->is_array()) {
      for (const json& e : *v)
        if (!e.is_array() && !e.is_object() && equal(e, operand)) return true;
      return false;
    }
    if (v->is_string() && operand.is_string())
      return v->get_ref<const std::string&>().find(operand.get_ref<const std::string&>()) !=
             std::string::npos;
    return false;
  }
  if (v->is_array() || v->is_object()) return false;
  auto o = order(*v, operand);
  if (!o) return false;
  if (op == "$gt") return *o > 0;
  if (op == "$gte") return *o >= 0;
  if (op == "$lt") return *o < 0;
  if (op == "$lte") return *o <= 0;
  ADD_FAILURE() << "no reference for " << op;
  return false;
}

bool matches(const json& doc, const json& filter) {
  for (const auto& [key, operand] : filter.items()) {
    bool ok;
    if (key == "$and") {
      ok = true;
      for (const json& f : operand) ok = ok && matches(doc, f);
    } else if (key == "$or") {
      ok = false;
      for (const json& f : operand) ok = ok || matches(doc, f);
    } else if (key == "$not") {
      ok = !matches(doc, operand);
    } else if (operand.is_object()) {
      ok = true;
      for (const auto& [op, x] : operand.items()) ok = ok && condition(doc, key, op, x);
    } else {
      ok = condition(doc, key, "$eq", operand);
    }
    if (!ok) return false;
  }
  return true;
}

// ---- random values and filters ---------------------------------------------------------------

class generator {
 public:
  explicit generator(unsigned seed) : rng_(seed) {}

  std::size_t pick(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
  }

  json scalar() {
    switch (pick(5)) {
      case 0:
        return static_cast<int>(pick(5)) - 2;
      case 1:
        return std::vector<double>{0.5, 1.0, 2.5, -1.0}[pick(4)];
      case 2:
        return std::vector<std::string>{"", "a", "b", "ab", "B", "ba"}[pick(6)];
      case 3:
        return pick(2) == 0;
      default:
        return nullptr;
    }
  }
  json doc() {
    json d = json::object();
    for (const char* field : {"a", "b", "c"})
      if (pick(4) != 0) d[field] = scalar();
    if (pick(3) != 0) {
      json tags = json::array();
      for (std::size_t i = pick(4); i > 0; --i) tags.push_back(scalar());
      d["tags"] = tags;
    }
    if (pick(2) == 0) d["n"] = {{"x", scalar()}};
    return d;
  }
  json field_condition() {
    static const std::vector<std::string> scalar_fields = {"a", "b", "c", "n.x"};
    const std::string path = scalar_fields[pick(scalar_fields.size())];
    switch (pick(9)) {
      case 0:
        return {{path, scalar()}};
      case 1:
        return {{path, {{"$ne", scalar()}}}};
      case 2:
        return {{path,
                 {{std::vector<std::string>{"$gt", "$gte", "$lt", "$lte"}[pick(4)],
                   pick(2) ? json(static_cast<int>(pick(5)) - 2)
                           : json(std::vector<std::string>{"", "a", "b"}[pick(3)])}}}};
      case 3: {
        json list = json::array();
        for (std::size_t i = pick(4); i > 0; --i) list.push_back(scalar());
        return {{path, {{pick(2) ? "$in" : "$nin", list}}}};
      }
      case 4:
        return {{pick(2) ? path : "tags", {{"$exists", pick(2) == 0}}}};
      case 5:
        return {{"tags", {{"$contains", scalar()}}}};
      case 6:
        return {{path, {{"$contains", std::vector<std::string>{"a", "b", ""}[pick(3)]}}}};
      case 7:
        return {{path, {{"$gte", -1}, {"$lt", 2}}}};
      default:
        return {{"tags", {{"$contains", scalar()}}}, {path, {{"$exists", true}}}};
    }
  }
  json filter(int depth = 0) {
    if (depth >= 3 || pick(3) == 0) return field_condition();
    switch (pick(3)) {
      case 0:
        return {{"$not", filter(depth + 1)}};
      default: {
        json list = json::array();
        for (std::size_t i = 1 + pick(3); i > 0; --i) list.push_back(filter(depth + 1));
        return {{pick(2) ? "$and" : "$or", list}};
      }
    }
  }

 private:
  std::mt19937 rng_;
};

class MemoryFilterProperty : public entity::test::backend_test {};
ENTITY_INSTANTIATE_ON_EVERY_BACKEND_AND_COLLATION(MemoryFilterProperty);

TEST_P(MemoryFilterProperty, SearchReturnsWhatTheReferenceSemanticsSelect) {
  memory mem(open());
  generator gen(20261201);
  memory::items items;
  std::vector<std::pair<std::string, json>> docs;
  for (int i = 0; i < 120; ++i) {
    std::string key = "k" + std::to_string(1000 + i);
    json d = gen.doc();
    items.emplace_back(key, d);
    docs.emplace_back(key, d);
  }
  mem.batch_store(items);
  int nonempty = 0, partial = 0;
  for (int round = 0; round < 150; ++round) {
    const json filter = gen.filter();
    std::vector<std::string> expected;
    for (const auto& [key, d] : docs)
      if (matches(d, filter)) expected.push_back(key);
    search_query q;
    q.filter = filter;
    q.limit = memory::max_search_limit;
    std::vector<std::string> got;
    for (const auto& h : mem.search(q)) got.push_back(h.key);
    EXPECT_EQ(got, expected) << "filter " << filter.dump();
    nonempty += !expected.empty();
    partial += !expected.empty() && expected.size() < docs.size();
    // A page of it: offset and limit apply after the filter.
    if (expected.size() > 3) {
      q.limit = 2;
      q.offset = 1;
      std::vector<std::string> page;
      for (const auto& h : mem.search(q)) page.push_back(h.key);
      EXPECT_EQ(page, (std::vector<std::string>{expected[1], expected[2]})) << filter.dump();
    }
  }
  // The generator exercises selective filters, not only all-or-nothing ones.
  EXPECT_GT(partial, 50);
  EXPECT_GT(nonempty, 60);
}

}  // namespace
