#include "postgres/placeholders.hpp"

namespace entity::postgres_detail {
namespace {

bool ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool ident_char(char c) { return ident_start(c) || (c >= '0' && c <= '9') || c == '$'; }

// The end (one past) of the quoted run starting at `i` (the opening `quote`); a doubled quote
// stays inside. `backslash` makes a backslash escape the next character (E'...' strings).
std::size_t skip_quoted(std::string_view s, std::size_t i, char quote, bool backslash) {
  for (++i; i < s.size(); ++i) {
    if (backslash && s[i] == '\\') {
      ++i;
    } else if (s[i] == quote) {
      if (i + 1 < s.size() && s[i + 1] == quote) {
        ++i;
      } else {
        return i + 1;
      }
    }
  }
  return s.size();
}

// The end of the block comment starting at `i`; PostgreSQL's block comments nest.
std::size_t skip_block_comment(std::string_view s, std::size_t i) {
  int depth = 0;
  while (i < s.size()) {
    if (s.compare(i, 2, "/*") == 0) {
      ++depth;
      i += 2;
    } else if (s.compare(i, 2, "*/") == 0) {
      i += 2;
      if (--depth == 0) return i;
    } else {
      ++i;
    }
  }
  return s.size();
}

// When a dollar quote ($$ or $tag$) opens at `i`, its delimiter; empty otherwise.
std::string_view dollar_tag(std::string_view s, std::size_t i) {
  std::size_t j = i + 1;
  if (j < s.size() && s[j] == '$') return s.substr(i, 2);
  if (j >= s.size() || !ident_start(s[j])) return {};
  while (j < s.size() && ident_char(s[j]) && s[j] != '$') ++j;
  if (j < s.size() && s[j] == '$') return s.substr(i, j - i + 1);
  return {};
}

}  // namespace

std::string translate_placeholders(std::string_view sql) {
  std::string out;
  out.reserve(sql.size() + 16);
  int next = 1;
  std::size_t i = 0;
  while (i < sql.size()) {
    char c = sql[i];
    std::size_t end = i + 1;
    if (c == '\'') {
      // E'...' (and e'...') strings take backslash escapes.
      bool escaped = i > 0 && (sql[i - 1] == 'E' || sql[i - 1] == 'e') &&
                     (i < 2 || !ident_char(sql[i - 2]));
      end = skip_quoted(sql, i, '\'', escaped);
    } else if (c == '"') {
      end = skip_quoted(sql, i, '"', false);
    } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      end = sql.find('\n', i);
      end = end == std::string_view::npos ? sql.size() : end + 1;
    } else if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
      end = skip_block_comment(sql, i);
    } else if (c == '$' && (i == 0 || !ident_char(sql[i - 1]))) {
      std::string_view tag = dollar_tag(sql, i);
      if (!tag.empty()) {
        std::size_t close = sql.find(tag, i + tag.size());
        end = close == std::string_view::npos ? sql.size() : close + tag.size();
      } else {
        // $n, or a lone '$': copied as is, digits included.
        while (end < sql.size() && sql[end] >= '0' && sql[end] <= '9') ++end;
      }
    } else if (ident_start(c)) {
      // A whole word at once, so that a '$' inside an identifier (a$b) is never a quote.
      while (end < sql.size() && ident_char(sql[end])) ++end;
      // ...except the E of an E'...' string, which the quote branch must see next.
    } else if (c == '?') {
      out += '$';
      out += std::to_string(next++);
      i = end;
      continue;
    }
    out.append(sql.substr(i, end - i));
    i = end;
  }
  return out;
}

}  // namespace entity::postgres_detail
