// entity-db: values, rows and results, shared by every backend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace entity {

/// SQL NULL.
struct null_t {
  friend bool operator==(null_t, null_t) { return true; }
};
inline constexpr null_t null{};

/// Binary data, kept apart from text so that binding chooses BLOB, not TEXT.
struct blob {
  std::vector<std::byte> bytes;
  blob() = default;
  explicit blob(std::vector<std::byte> b) : bytes(std::move(b)) {}
  blob(const void* data, std::size_t size);
  friend bool operator==(const blob&, const blob&) = default;
};

/// One SQL value: NULL, 64-bit integer, double, text or blob.
class value {
 public:
  using variant_type = std::variant<null_t, std::int64_t, double, std::string, blob>;

  value() = default;
  value(null_t) {}
  value(std::nullptr_t) {}
  template <class I>
  requires(std::is_integral_v<I> && !std::is_same_v<I, bool>) value(I i)
      : v_(static_cast<std::int64_t>(i)) {}
  value(bool b) : v_(std::int64_t{b ? 1 : 0}) {}
  value(double d) : v_(d) {}
  value(float f) : v_(static_cast<double>(f)) {}
  value(std::string s) : v_(std::move(s)) {}
  value(std::string_view s) : v_(std::string(s)) {}
  value(const char* s) : v_(std::string(s)) {}
  value(blob b) : v_(std::move(b)) {}

  bool is_null() const noexcept { return std::holds_alternative<null_t>(v_); }
  bool is_int() const noexcept { return std::holds_alternative<std::int64_t>(v_); }
  bool is_double() const noexcept { return std::holds_alternative<double>(v_); }
  bool is_text() const noexcept { return std::holds_alternative<std::string>(v_); }
  bool is_blob() const noexcept { return std::holds_alternative<blob>(v_); }

  /// Typed access. Integers convert to double on request; anything else that does not hold
  /// the requested type throws entity::error with errc::decode_error.
  std::int64_t as_int() const;
  double as_double() const;
  const std::string& as_text() const;
  const blob& as_blob() const;

  /// T is one of int64_t (or any integer), double, std::string, blob, or std::optional of those
  /// (NULL becomes std::nullopt).
  template <class T>
  T get() const;

  const variant_type& raw() const noexcept { return v_; }
  variant_type& raw() noexcept { return v_; }

  /// A readable rendering: NULL, 42, 1.5, text as is, blobs as x'0a0b'.
  std::string to_string() const;

  friend bool operator==(const value&, const value&) = default;

 private:
  variant_type v_;
};

/// Bound parameters, in `?` order.
using params = std::vector<value>;

/// Column names shared by all rows of one result.
using columns = std::shared_ptr<const std::vector<std::string>>;

/// One result row: values with their column names.
class row {
 public:
  row() = default;
  row(columns names, std::vector<value> values)
      : names_(std::move(names)), values_(std::move(values)) {}

  std::size_t size() const noexcept { return values_.size(); }
  const value& operator[](std::size_t i) const { return values_[i]; }
  /// The value of column `name`; throws entity::error (invalid_argument) when there is none.
  const value& at(std::string_view name) const;
  const value& at(std::size_t i) const;
  /// Typed getters, by index or by column name.
  template <class T>
  T get(std::size_t i) const {
    return at(i).template get<T>();
  }
  template <class T>
  T get(std::string_view name) const {
    return at(name).template get<T>();
  }

  const std::vector<std::string>& column_names() const;
  const std::vector<value>& values() const noexcept { return values_; }
  std::vector<value>& values() noexcept { return values_; }

 private:
  columns names_;
  std::vector<value> values_;
};

/// What a statement produced: its rows (if any), the rows it changed, the last rowid inserted.
struct result {
  std::vector<row> rows;
  std::int64_t rows_affected = 0;
  std::int64_t last_insert_id = 0;

  bool empty() const noexcept { return rows.empty(); }
};

namespace detail {
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
}  // namespace detail

template <class T>
T value::get() const {
  if constexpr (std::is_same_v<T, value>) {
    return *this;
  } else if constexpr (detail::is_optional<T>::value) {
    if (is_null()) return std::nullopt;
    return get<typename T::value_type>();
  } else if constexpr (std::is_same_v<T, bool>) {
    return as_int() != 0;
  } else if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(as_int());
  } else if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(as_double());
  } else if constexpr (std::is_same_v<T, std::string>) {
    return as_text();
  } else if constexpr (std::is_same_v<T, blob>) {
    return as_blob();
  } else {
    static_assert(sizeof(T) == 0, "entity::value::get: unsupported type");
  }
}

}  // namespace entity
