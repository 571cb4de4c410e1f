#include "entity/error.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>

namespace entity {
namespace {

class entity_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "entity"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::not_started:
        return "the database has not been started (call startup() first)";
      case errc::shut_down:
        return "the database has been shut down";
      case errc::query_timeout:
        return "query timeout: the deadline passed";
      case errc::pool_exhausted:
        return "pool exhausted: no connection became free in time";
      case errc::invalid_argument:
        return "invalid argument";
      case errc::decode_error:
        return "stored data could not be decoded";
      case errc::dimension_mismatch:
        return "vector dimension does not match the collection";
      case errc::not_found:
        return "not found";
      case errc::connection_error:
        return "connection error";
      case errc::open_failed:
        return "the database could not be opened";
      case errc::transaction_open:
        return "a statement left a transaction open; it was rolled back";
      case errc::aborted:
        return "an exception ended the operation (a transaction body's, or one met inside the "
               "library); nothing of it was committed";
      case errc::cancelled:
        return "the operation was cancelled by its caller";
      case errc::rolled_back:
        return "a statement of the transaction failed; the transaction was rolled back";
      case errc::conflict:
        return "the data changed concurrently while the operation read it; nothing was changed";
      case errc::over_budget:
        return "the statement ran past the inline budget and was interrupted";
    }
    return "unknown entity error";
  }
  boost::system::error_condition default_error_condition(int ev) const noexcept override {
    switch (static_cast<errc>(ev)) {
      case errc::query_timeout:
      case errc::pool_exhausted:
        return make_error_condition(condition::timeout);
      case errc::cancelled:
        return make_error_condition(boost::system::errc::operation_canceled);
      default:
        return {ev, *this};
    }
  }
};

class sqlite_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sqlite"; }
  std::string message(int ev) const override { return sqlite3_errstr(ev); }
  boost::system::error_condition default_error_condition(int ev) const noexcept override {
    switch (ev & 0xff) {
      case SQLITE_BUSY:
      case SQLITE_LOCKED:
        return make_error_condition(condition::busy);
      case SQLITE_CONSTRAINT:
        return make_error_condition(condition::constraint);
      case SQLITE_ERROR:
        return make_error_condition(condition::syntax);
      case SQLITE_INTERRUPT:
        return make_error_condition(condition::timeout);
      case SQLITE_FULL:
      case SQLITE_IOERR:
      case SQLITE_READONLY:
      case SQLITE_CORRUPT:
      case SQLITE_NOTADB:
      case SQLITE_CANTOPEN:
        return make_error_condition(condition::io);
      default:
        return {ev, *this};
    }
  }
};

// SQLSTATEs are five characters of [0-9A-Z]; base 36 fits them in an int.
int encode_sqlstate(std::string_view s) {
  std::int64_t v = 0;
  for (char c : s.substr(0, 5)) {
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'Z') ? c - 'A' + 10 : 0;
    v = v * 36 + d;
  }
  return static_cast<int>(v);
}

std::string decode_sqlstate(int ev) {
  std::string s(5, '0');
  for (int i = 4; i >= 0; --i) {
    int d = ev % 36;
    ev /= 36;
    s[i] = static_cast<char>(d < 10 ? '0' + d : 'A' + d - 10);
  }
  return s;
}

class postgres_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "postgres"; }
  std::string message(int ev) const override { return "SQLSTATE " + decode_sqlstate(ev); }
  boost::system::error_condition default_error_condition(int ev) const noexcept override {
    std::string s = decode_sqlstate(ev);
    std::string cls = s.substr(0, 2);
    if (cls == "23") return make_error_condition(condition::constraint);
    if (cls == "42") return make_error_condition(condition::syntax);
    if (s == "57014") return make_error_condition(condition::timeout);
    if (s == "55P03" || s == "40001" || s == "40P01") return make_error_condition(condition::busy);
    if (cls == "53" || cls == "58" || cls == "XX") return make_error_condition(condition::io);
    return {ev, *this};
  }
};

class condition_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "entity.condition"; }
  std::string message(int ev) const override {
    switch (static_cast<condition>(ev)) {
      case condition::busy:
        return "the database is busy";
      case condition::constraint:
        return "a constraint failed";
      case condition::syntax:
        return "the SQL is invalid";
      case condition::timeout:
        return "the operation timed out";
      case condition::io:
        return "the storage failed";
    }
    return "unknown condition";
  }
};

}  // namespace

const boost::system::error_category& entity_category() noexcept {
  static const entity_category_impl c;
  return c;
}
const boost::system::error_category& sqlite_category() noexcept {
  static const sqlite_category_impl c;
  return c;
}
const boost::system::error_category& postgres_category() noexcept {
  static const postgres_category_impl c;
  return c;
}
const boost::system::error_category& condition_category() noexcept {
  static const condition_category_impl c;
  return c;
}

error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), entity_category()}; }
boost::system::error_condition make_error_condition(condition c) noexcept {
  return {static_cast<int>(c), condition_category()};
}
error_code make_sqlite_error(int extended_code) noexcept {
  return {extended_code, sqlite_category()};
}
error_code make_postgres_error(std::string_view sqlstate) noexcept {
  return {encode_sqlstate(sqlstate), postgres_category()};
}
std::string postgres_sqlstate(const error_code& ec) { return decode_sqlstate(ec.value()); }

std::string sql_excerpt(std::string_view sql) {
  constexpr std::size_t limit = 100;
  while (!sql.empty() && (sql.front() == ' ' || sql.front() == '\n' || sql.front() == '\t'))
    sql.remove_prefix(1);
  if (sql.size() <= limit) return std::string(sql);
  std::size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(sql[cut]) & 0xC0) == 0x80) --cut;  // UTF-8
  return std::string(sql.substr(0, cut)) + "...";
}

std::string diagnostics::to_string() const {
  if (sql.empty()) return message;
  if (message.empty()) return "(sql: " + sql + ")";
  return message + " (sql: " + sql + ")";
}

namespace {
std::string what_of(const error_code& ec, const diagnostics& d) {
  // The backend's message often is the code's own text ("disk I/O error"), or starts with it
  // ("disk I/O error (File too large)"): say it once.
  std::string w = ec.message();
  diagnostics rest = d;
  bool continues = false;  // rest.message carries on from w
  if (rest.message.starts_with(w) &&
      (rest.message.size() == w.size() || rest.message.compare(w.size(), 2, " (") == 0)) {
    rest.message.erase(0, std::min(rest.message.size(), w.size() + 1));
    continues = true;
  }
  std::string detail = rest.to_string();
  if (!detail.empty()) w += (continues || rest.message.empty() ? " " : ": ") + detail;
  return w;
}
}  // namespace

error::error(error_code ec, diagnostics diag)
    : boost::system::system_error(ec), diag_(std::move(diag)), what_(what_of(ec, diag_)) {}

void throw_if(const error_code& ec, const diagnostics& diag) {
  if (ec) throw error(ec, diag);
}

}  // namespace entity
