#include "entity/value.hpp"

#include <cstdio>
#include <cstring>

#include "entity/error.hpp"
#include "entity/infrastructure.hpp"

namespace entity {
namespace {
[[noreturn]] void wrong_type(const char* wanted, const value& v) {
  const char* held = v.is_null()     ? "NULL"
                     : v.is_int()    ? "an integer"
                     : v.is_double() ? "a real"
                     : v.is_text()   ? "text"
                                     : "a blob";
  throw error(errc::decode_error, {std::string("value is ") + held + ", not " + wanted, {}});
}
}  // namespace

blob::blob(const void* data, std::size_t size) : bytes(size) {
  if (size) std::memcpy(bytes.data(), data, size);
}

std::int64_t value::as_int() const {
  if (auto* i = std::get_if<std::int64_t>(&v_)) return *i;
  wrong_type("an integer", *this);
}

double value::as_double() const {
  if (auto* d = std::get_if<double>(&v_)) return *d;
  if (auto* i = std::get_if<std::int64_t>(&v_)) return static_cast<double>(*i);
  wrong_type("a real", *this);
}

const std::string& value::as_text() const {
  if (auto* s = std::get_if<std::string>(&v_)) return *s;
  wrong_type("text", *this);
}

const blob& value::as_blob() const {
  if (auto* b = std::get_if<blob>(&v_)) return *b;
  wrong_type("a blob", *this);
}

std::string value::to_string() const {
  struct visitor {
    std::string operator()(null_t) const { return "NULL"; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", d);
      // Shortest text that reads back to the same double.
      for (int prec = 1; prec <= 17; ++prec) {
        char tmp[32];
        std::snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (std::strtod(tmp, nullptr) == d) return tmp;
      }
      return buf;
    }
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(const blob& b) const {
      static const char* hex = "0123456789abcdef";
      std::string out = "x'";
      for (std::byte c : b.bytes) {
        out += hex[static_cast<unsigned>(c) >> 4];
        out += hex[static_cast<unsigned>(c) & 15];
      }
      return out + "'";
    }
  };
  return std::visit(visitor{}, v_);
}

const value& row::at(std::size_t i) const {
  if (i >= values_.size())
    throw error(errc::invalid_argument,
                {"column index " + std::to_string(i) + " is out of range (the row has " +
                     std::to_string(values_.size()) + " columns)",
                 {}});
  return values_[i];
}

const value& row::at(std::string_view name) const {
  if (names_) {
    for (std::size_t i = 0; i < names_->size() && i < values_.size(); ++i)
      if ((*names_)[i] == name) return values_[i];
  }
  throw error(errc::invalid_argument, {"no column named '" + std::string(name) + "'", {}});
}

const std::vector<std::string>& row::column_names() const {
  static const std::vector<std::string> none;
  return names_ ? *names_ : none;
}

std::optional<row> session::fetch_one(std::string_view sql, const params& args) {
  result r = query(sql, args, 1);
  if (r.rows.empty()) return std::nullopt;
  return std::move(r.rows.front());
}

std::vector<row> session::fetch_all(std::string_view sql, const params& args) {
  return std::move(query(sql, args).rows);
}

}  // namespace entity
