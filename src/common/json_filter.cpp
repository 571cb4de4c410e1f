#include "common/json_filter.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>

#include "entity/error.hpp"

namespace entity::detail {
namespace {

// ---- parsing -----------------------------------------------------------------------------

// At most this many bytes of a key or a pointer in a message: a filter's key may be as long
// as its author likes.
constexpr std::size_t shown_bytes = 120;

std::string shown(std::string_view text) {
  if (text.size() <= shown_bytes) return printable(text);
  std::string s = printable(text.substr(0, shown_bytes));
  s.insert(s.size() - 1, "...");  // inside the closing quote
  return s;
}

std::string kind_of(const json& j) {
  switch (j.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return "a number";
    case json::value_t::string:
      return "a string";
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "binary data";
  }
}

// `key` as a JSON pointer's reference token, appended to `pointer`.
std::string child(const std::string& pointer, std::string_view key) {
  return pointer + '/' + nlohmann::detail::escape(std::string(key));  // RFC 6901
}

std::string child(const std::string& pointer, std::size_t index) {
  return pointer + '/' + std::to_string(index);
}

[[noreturn]] void refuse(const std::string& pointer, const std::string& why) {
  std::string message = pointer.empty() ? "filter: " : "filter at " + shown(pointer) + ": ";
  throw error(errc::invalid_argument, {message + why, {}});
}

bool segment_byte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

struct op_name {
  std::string_view name;
  filter_op op;
};
constexpr op_name field_ops[] = {
    {"$eq", filter_op::eq},         {"$ne", filter_op::ne},
    {"$gt", filter_op::gt},         {"$gte", filter_op::gte},
    {"$lt", filter_op::lt},         {"$lte", filter_op::lte},
    {"$in", filter_op::in},         {"$nin", filter_op::nin},
    {"$exists", filter_op::exists}, {"$contains", filter_op::contains},
};

const op_name* find_field_op(std::string_view name) {
  for (const op_name& o : field_ops)
    if (o.name == name) return &o;
  return nullptr;
}

filter_node node_of(filter_node::kind type) {
  filter_node n;
  n.type = type;
  return n;
}

class parser {
 public:
  // The filter object `j`, `depth` levels deep (the top is 1).
  filter_node filter(const json& j, const std::string& pointer, std::size_t depth) {
    if (depth > max_filter_depth)
      refuse(pointer,
             "nested deeper than " + std::to_string(max_filter_depth) + " levels (the limit)");
    if (!j.is_object()) refuse(pointer, "a filter is a JSON object, not " + kind_of(j));
    filter_node all = node_of(filter_node::kind::all_of);
    for (const auto& [key, member] : j.items()) {
      const std::string at = child(pointer, key);
      if (key.starts_with('$')) {
        all.children.push_back(logical(key, member, at, depth));
      } else {
        std::vector<std::string> path = parse_path(key, at);
        field(std::move(path), member, at, all.children);
      }
    }
    if (all.children.empty()) return filter_node{};  // {}: only the top may be empty
    if (all.children.size() == 1) return std::move(all.children.front());
    return all;
  }

 private:
  void count(const std::string& pointer, std::size_t n = 1) {
    terms_ += n;
    if (terms_ > max_filter_terms)
      refuse(pointer, "more than " + std::to_string(max_filter_terms) + " terms (the limit)");
  }

  // A filter that is an operand of $and, $or or $not: an object, and not an empty one (an
  // empty filter there is true or, negated, false for every value: a mistake, not a query).
  filter_node operand_filter(const json& j, const std::string& pointer, std::size_t depth,
                             std::string_view op) {
    if (depth + 1 <= max_filter_depth && j.is_object() && j.empty())
      refuse(pointer, std::string(op) + " needs non-empty filters, not {}");
    return filter(j, pointer, depth + 1);
  }

  filter_node logical(const std::string& key, const json& operand, const std::string& pointer,
                      std::size_t depth) {
    if (key == "$and" || key == "$or") {
      if (!operand.is_array() || operand.empty())
        refuse(pointer, key + " needs a non-empty list of filters, not " +
                            (operand.is_array() ? std::string("an empty list") : kind_of(operand)));
      count(pointer);
      filter_node n =
          node_of(key == "$and" ? filter_node::kind::all_of : filter_node::kind::any_of);
      for (std::size_t i = 0; i < operand.size(); ++i)
        n.children.push_back(operand_filter(operand[i], child(pointer, i), depth, key));
      return n;
    }
    if (key == "$not") {
      count(pointer);
      filter_node n = node_of(filter_node::kind::negation);
      n.children.push_back(operand_filter(operand, pointer, depth, key));
      return n;
    }
    if (find_field_op(key))
      refuse(pointer, shown(key) +
                          " is a field operator: it goes inside a field's object, as "
                          "in {\"field\": {\"" +
                          key + "\": ...}}");
    refuse(pointer, "unknown operator " + shown(key));
  }

  std::vector<std::string> parse_path(const std::string& key, const std::string& pointer) {
    std::vector<std::string> segments;
    std::size_t begin = 0;
    for (;;) {
      std::size_t end = key.find('.', begin);
      if (end == std::string::npos) end = key.size();
      std::string_view segment = std::string_view(key).substr(begin, end - begin);
      if (segment.empty())
        refuse(pointer, "the field path " + shown(key) + " has an empty segment");
      if (segment.size() > max_path_segment_size)
        refuse(pointer, "the field path " + shown(key) + " has a segment longer than " +
                            std::to_string(max_path_segment_size) + " bytes (the limit)");
      for (char c : segment)
        if (!segment_byte(c))
          refuse(pointer, "the field path " + shown(key) + " holds " +
                              shown(std::string_view(&c, 1)) +
                              ": a segment is made of A-Z, a-z, 0-9, '_' and '-' only, and "
                              "segments are separated by '.'");
      segments.emplace_back(segment);
      if (segments.size() > max_path_segments)
        refuse(pointer, "the field path " + shown(key) + " has more than " +
                            std::to_string(max_path_segments) + " segments (the limit)");
      if (end == key.size()) return segments;
      begin = end + 1;
    }
  }

  // The conditions of one field: `value` is a bare scalar ($eq) or an object of operators.
  void field(std::vector<std::string> path, const json& value, const std::string& pointer,
             std::vector<filter_node>& out) {
    if (value.is_array())
      refuse(pointer,
             "a field cannot equal an array (for an element of an array use "
             "$contains, for one of several values $in)");
    if (!value.is_object()) {
      out.push_back(condition(path, filter_op::eq, value, pointer, "$eq"));
      return;
    }
    if (value.empty()) refuse(pointer, "an empty operator object");
    std::optional<std::string> an_operator, a_plain_key;
    for (auto it = value.begin(); it != value.end(); ++it)
      (it.key().starts_with('$') ? an_operator : a_plain_key) = it.key();
    if (an_operator && a_plain_key)
      refuse(pointer, "an operator object mixes operators and plain keys (" + shown(*an_operator) +
                          " and " + shown(*a_plain_key) + ")");
    if (a_plain_key)
      refuse(pointer,
             "a field cannot equal an object (a nested field is a dotted path, as "
             "in \"a.b\")");
    for (const auto& [key, member] : value.items()) {
      const std::string at = child(pointer, key);
      const op_name* o = find_field_op(key);
      if (!o) {
        if (key == "$and" || key == "$or" || key == "$not")
          refuse(at, key + " takes filters, not a field's operand: write {\"" + key +
                         "\": ...} beside the fields");
        refuse(at, "unknown operator " + shown(key));
      }
      out.push_back(condition(path, o->op, member, at, o->name));
    }
  }

  filter_node condition(const std::vector<std::string>& path, filter_op op, const json& operand,
                        const std::string& pointer, std::string_view name) {
    count(pointer);
    const std::string op_text(name);
    switch (op) {
      case filter_op::eq:
      case filter_op::ne:
      case filter_op::contains:
        scalar(operand, pointer, op_text);
        break;
      case filter_op::gt:
      case filter_op::gte:
      case filter_op::lt:
      case filter_op::lte:
        if (!operand.is_number() && !operand.is_string())
          refuse(pointer, op_text + " needs a number or a string, not " + kind_of(operand));
        scalar(operand, pointer, op_text);
        break;
      case filter_op::in:
      case filter_op::nin:
        if (!operand.is_array())
          refuse(pointer, op_text + " needs an array, not " + kind_of(operand));
        count(pointer, operand.size());
        for (std::size_t i = 0; i < operand.size(); ++i)
          scalar(operand[i], child(pointer, i), op_text);
        break;
      case filter_op::exists:
        if (!operand.is_boolean())
          refuse(pointer, "$exists needs true or false, not " + kind_of(operand));
        break;
    }
    filter_node n = node_of(filter_node::kind::condition);
    n.path = path;
    n.op = op;
    n.operand = operand;
    return n;
  }

  // A value compared with stored JSON: a scalar both backends bind and read alike.
  void scalar(const json& v, const std::string& pointer, const std::string& op) {
    if (v.is_structured() || v.is_binary())
      refuse(pointer,
             op + " needs a scalar (null, a boolean, a number or a string), not " + kind_of(v));
    if (v.is_number_float() && !std::isfinite(v.get<double>()))
      refuse(pointer, op + ": a number that is not finite (JSON has no such number)");
    if (v.is_number_unsigned() &&
        v.get<std::uint64_t>() > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
      refuse(pointer, op + ": the integer " + v.dump() + " is past the 64-bit signed range");
    if (v.is_string()) {
      const std::string& s = v.get_ref<const std::string&>();
      if (!valid_utf8(s)) refuse(pointer, op + ": a string that is not UTF-8");
      if (s.find('\0') != std::string::npos)
        refuse(pointer, op + ": a string holding a NUL character");
    }
  }

  std::size_t terms_ = 0;
};

// ---- SQL ---------------------------------------------------------------------------------
//
// SQLite reads the stored text with JSON1: json_type(col, path) tells the JSON type ('null',
// 'true', 'false', 'integer', 'real', 'text', 'array', 'object'; SQL NULL when the path leads
// nowhere) and json_extract the value as SQL (1 and 0 for true and false, hence the type
// tests). The path is bound as $."a"."b": quoted, each segment is an object key, digits too.
//
// PostgreSQL reads it as jsonb, stepping with `jsonb -> text`, which only ever looks up an
// object's key (an array, a scalar or a missing key give SQL NULL; `#>` would index arrays by
// digits). Equality is jsonb's own, which is type-strict and numeric for numbers; ordering
// casts to numeric or compares text in COLLATE "C", each behind a CASE on the type so that no
// cast meets a value of the wrong type.
//
// Every leaf is strictly TRUE or FALSE: a comparison on a missing path (SQL NULL) is closed by
// COALESCE, or lies in the THEN of a CASE whose WHEN it made false.

class emitter {
 public:
  emitter(sql_dialect dialect, std::string_view column)
      : pg_(dialect == sql_dialect::postgresql), column_(column) {}

  void node(const filter_node& n) {
    switch (n.type) {
      case filter_node::kind::match_all:
        sql() += "TRUE";
        return;
      case filter_node::kind::all_of:
      case filter_node::kind::any_of: {
        const char* glue = n.type == filter_node::kind::all_of ? " AND " : " OR ";
        sql() += '(';
        for (std::size_t i = 0; i < n.children.size(); ++i) {
          if (i > 0) sql() += glue;
          node(n.children[i]);
        }
        sql() += ')';
        return;
      }
      case filter_node::kind::negation:
        sql() += "(NOT ";
        node(n.children.front());
        sql() += ')';
        return;
      case filter_node::kind::condition:
        condition(n);
        return;
    }
  }

  compiled_filter take() { return std::move(out_); }

 private:
  std::string& sql() { return out_.sql; }
  void bind(value v) {
    sql() += '?';
    out_.bound.push_back(std::move(v));
  }

  void condition(const filter_node& n) {
    const std::vector<std::string>& path = n.path;
    switch (n.op) {
      case filter_op::eq:
        return member_of(path, json::array({n.operand}), false);
      case filter_op::ne:
        return member_of(path, json::array({n.operand}), true);
      case filter_op::in:
        return member_of(path, n.operand, false);
      case filter_op::nin:
        return member_of(path, n.operand, true);
      case filter_op::exists:
        return exists(path, !n.operand.get<bool>());
      case filter_op::gt:
        return order(path, ">", n.operand);
      case filter_op::gte:
        return order(path, ">=", n.operand);
      case filter_op::lt:
        return order(path, "<", n.operand);
      case filter_op::lte:
        return order(path, "<=", n.operand);
      case filter_op::contains:
        return contains(path, n.operand);
    }
  }

  // ---- the stored value at a path

  // SQLite: the path argument of the JSON1 functions.
  void sqlite_path(const std::vector<std::string>& path) {
    std::string p = "$";
    for (const std::string& segment : path) p += ".\"" + segment + '"';
    bind(std::move(p));
  }
  void sqlite_type(const std::vector<std::string>& path) {
    sql() += "json_type(";
    sql() += column_;
    sql() += ", ";
    sqlite_path(path);
    sql() += ')';
  }
  void sqlite_extract(const std::vector<std::string>& path) {
    sql() += "json_extract(";
    sql() += column_;
    sql() += ", ";
    sqlite_path(path);
    sql() += ')';
  }
  // PostgreSQL: the jsonb at `path` (`as_text`: its text, ->> at the last step).
  void pg_value(const std::vector<std::string>& path, bool as_text = false) {
    sql() += "(CAST((";
    sql() += column_;
    sql() += ") AS jsonb)";
    for (std::size_t i = 0; i < path.size(); ++i) {
      sql() += as_text && i + 1 == path.size() ? " ->> CAST(" : " -> CAST(";
      bind(path[i]);
      sql() += " AS text)";
    }
    sql() += ')';
  }
  void pg_text(const std::vector<std::string>& path) { pg_value(path, true); }

  // ---- parameters

  // A scalar as SQLite compares it with json_extract's result.
  static value sqlite_scalar(const json& v) {
    if (v.is_number_float()) return value(v.get<double>());
    if (v.is_number()) return value(v.get<std::int64_t>());
    return value(v.get<std::string>());
  }
  // json_type's name of a null or a boolean.
  static const char* sqlite_type_name(const json& v) {
    return v.is_null() ? "null" : v.get<bool>() ? "true" : "false";
  }

  void list(const std::vector<value>& values) {
    if (values.size() == 1) {
      sql() += " = ";
      bind(values.front());
      return;
    }
    sql() += " IN (";
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (i > 0) sql() += ", ";
      bind(values[i]);
    }
    sql() += ')';
  }

  // ---- conditions

  // $eq / $in (`negate`: $ne / $nin): the stored value equals one of `scalars`.
  void member_of(const std::vector<std::string>& path, const json& scalars, bool negate) {
    if (negate) sql() += "(NOT ";
    if (scalars.empty()) {
      sql() += "FALSE";
    } else if (pg_) {
      sql() += "COALESCE(";
      pg_value(path);
      sql() += scalars.size() == 1 ? " = " : " IN (";
      for (std::size_t i = 0; i < scalars.size(); ++i) {
        if (i > 0) sql() += ", ";
        sql() += "CAST(";
        bind(scalars[i].dump());
        sql() += " AS jsonb)";
      }
      if (scalars.size() > 1) sql() += ')';
      sql() += ", FALSE)";
    } else {
      sqlite_member_of(
          scalars, [&] { sqlite_type(path); }, [&] { sqlite_extract(path); });
    }
    if (negate) sql() += ')';
  }

  // SQLite: a value whose JSON type `type_sql()` writes and whose SQL value `value_sql()` writes
  // equals one of `scalars` (at least one), each compared only with values of its own JSON type.
  template <class TypeSql, class ValueSql>
  void sqlite_member_of(const json& scalars, TypeSql type_sql, ValueSql value_sql) {
    std::vector<value> names, numbers, strings;
    for (const json& v : scalars) {
      if (v.is_null() || v.is_boolean())
        names.emplace_back(sqlite_type_name(v));
      else if (v.is_number())
        numbers.push_back(sqlite_scalar(v));
      else
        strings.push_back(sqlite_scalar(v));
    }
    int parts = !names.empty() + !numbers.empty() + !strings.empty();
    if (parts > 1) sql() += '(';
    const char* glue = "";
    if (!names.empty()) {
      sql() += "COALESCE(";
      type_sql();
      list(names);
      sql() += ", FALSE)";
      glue = " OR ";
    }
    // The values of one JSON type, compared only where the stored value is of that type.
    auto of_type = [&](const char* type_test, const std::vector<value>& values) {
      if (values.empty()) return;
      sql() += glue;
      sql() += "CASE WHEN ";
      type_sql();
      sql() += type_test;
      value_sql();
      list(values);
      sql() += " ELSE FALSE END";
      glue = " OR ";
    };
    of_type(" IN ('integer', 'real') THEN ", numbers);
    of_type(" = 'text' THEN ", strings);
    if (parts > 1) sql() += ')';
  }

  void exists(const std::vector<std::string>& path, bool negate) {
    sql() += '(';
    if (pg_)
      pg_value(path);
    else
      sqlite_type(path);
    sql() += negate ? " IS NULL)" : " IS NOT NULL)";
  }

  // $gt $gte $lt $lte: `v` is a number or a string.
  void order(const std::vector<std::string>& path, const char* op, const json& v) {
    const bool number = v.is_number();
    sql() += "CASE WHEN ";
    if (pg_) {
      sql() += "jsonb_typeof(";
      pg_value(path);
      if (number) {
        // The operand as its JSON text, which numeric reads exactly.
        sql() += ") = 'number' THEN CAST(";
        pg_text(path);
        sql() += " AS numeric) ";
        sql() += op;
        sql() += " CAST(";
        bind(v.dump());
        sql() += " AS numeric)";
      } else {
        sql() += ") = 'string' THEN ";
        pg_text(path);
        sql() += " COLLATE \"C\" ";
        sql() += op;
        sql() += " CAST(";
        bind(v.get<std::string>());
        sql() += " AS text)";
      }
    } else {
      sqlite_type(path);
      sql() += number ? " IN ('integer', 'real') THEN " : " = 'text' THEN ";
      sqlite_extract(path);
      sql() += ' ';
      sql() += op;
      sql() += ' ';
      bind(sqlite_scalar(v));
    }
    sql() += " ELSE FALSE END";
  }

  // $contains: an element of a stored array equals `v`, or `v` is a string within a stored
  // string.
  void contains(const std::vector<std::string>& path, const json& v) {
    const bool text = v.is_string();
    sql() += "CASE ";
    if (pg_) {
      sql() += "jsonb_typeof(";
      pg_value(path);
      sql() += ") WHEN 'array' THEN ";
      pg_value(path);
      // Containment of [v]: an element of the array itself equal to v (jsonb's equality, as
      // $eq's), never one inside a nested array.
      sql() += " @> jsonb_build_array(CAST(";
      bind(v.dump());
      sql() += " AS jsonb))";
      if (text) {
        sql() += " WHEN 'string' THEN strpos(";
        pg_text(path);
        sql() += ", CAST(";
        bind(v.get<std::string>());
        sql() += " AS text)) > 0";
      }
    } else {
      sqlite_type(path);
      // The elements come from json_each in a subquery, whose own columns (value among them)
      // would capture the column's name were it written in json_each's arguments; the derived
      // table reads the column in the enclosing query's scope.
      sql() += " WHEN 'array' THEN EXISTS (SELECT 1 FROM (SELECT ";
      sql() += column_;
      sql() += " AS doc) AS filter_doc, json_each(filter_doc.doc, ";
      sqlite_path(path);
      sql() += ") AS filter_elem WHERE ";
      sqlite_member_of(
          json::array({v}), [&] { sql() += "filter_elem.type"; },
          [&] { sql() += "filter_elem.value"; });
      sql() += ')';
      if (text) {
        sql() += " WHEN 'text' THEN instr(";
        sqlite_extract(path);
        sql() += ", ";
        bind(v.get<std::string>());
        sql() += ") > 0";
      }
    }
    sql() += " ELSE FALSE END";
  }

  bool pg_;
  std::string_view column_;
  compiled_filter out_;
};

}  // namespace

filter_node parse_json_filter(const json& filter) { return parser().filter(filter, "", 1); }

compiled_filter emit_json_filter(const filter_node& filter, sql_dialect dialect,
                                 std::string_view column) {
  emitter e(dialect, column);
  e.node(filter);
  return e.take();
}

compiled_filter compile_json_filter(const json& filter, sql_dialect dialect,
                                    std::string_view column) {
  return emit_json_filter(parse_json_filter(filter), dialect, column);
}

}  // namespace entity::detail
