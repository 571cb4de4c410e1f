#include "sqlite/classify.hpp"

#include <cctype>

namespace entity::sqlite_detail {
namespace {

// Skips whitespace and comments from `i`; returns the index of the next significant character.
std::size_t skip_blank(std::string_view s, std::size_t i) {
  while (i < s.size()) {
    char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '-' && i + 1 < s.size() && s[i + 1] == '-') {
      while (i < s.size() && s[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      std::size_t end = s.find("*/", i + 2);
      i = end == std::string_view::npos ? s.size() : end + 2;
    } else {
      break;
    }
  }
  return i;
}

bool is(std::string_view kw, std::string_view want) { return kw == want; }

}  // namespace

std::string_view first_keyword(std::string_view sql, char (&buf)[17]) {
  std::size_t i = skip_blank(sql, 0);
  std::size_t n = 0;
  while (i < sql.size() && n < 16 && std::isalpha(static_cast<unsigned char>(sql[i])))
    buf[n++] = static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i++])));
  buf[n] = '\0';
  return {buf, n};
}

route classify(std::string_view sql) {
  char buf[17];
  std::string_view kw = first_keyword(sql, buf);
  if (is(kw, "SELECT") || is(kw, "WITH") || is(kw, "VALUES") || is(kw, "EXPLAIN"))
    return route::read;
  if (is(kw, "BEGIN") || is(kw, "COMMIT") || is(kw, "END") || is(kw, "ROLLBACK") ||
      is(kw, "SAVEPOINT") || is(kw, "RELEASE") || is(kw, "VACUUM") || is(kw, "PRAGMA") ||
      is(kw, "ATTACH") || is(kw, "DETACH"))
    return route::solo;
  return route::write;
}

bool is_blank(std::string_view sql) {
  std::size_t i = 0;
  while (true) {
    i = skip_blank(sql, i);
    if (i >= sql.size()) return true;
    if (sql[i] != ';') return false;
    ++i;
  }
}

bool has_several_statements(std::string_view s) {
  bool seen_statement = false;  // significant text since the last ';'
  int statements = 0;
  std::size_t i = 0;
  while (true) {
    i = skip_blank(s, i);
    if (i >= s.size()) break;
    char c = s[i];
    if (c == ';') {
      if (seen_statement) ++statements;
      seen_statement = false;
      ++i;
      continue;
    }
    if (statements >= 1) return true;  // significant text after a complete statement
    seen_statement = true;
    if (c == '\'' || c == '"' || c == '`' || c == '[') {
      char close = c == '[' ? ']' : c;
      ++i;
      while (i < s.size()) {
        if (s[i] == close) {
          if (close != ']' && i + 1 < s.size() && s[i + 1] == close) {
            i += 2;  // doubled quote
            continue;
          }
          break;
        }
        ++i;
      }
      ++i;
      continue;
    }
    ++i;
  }
  return false;
}

}  // namespace entity::sqlite_detail
