#include "common/sql_lexer.hpp"

namespace entity::detail {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }
// Names (keywords, identifiers, dollar-quote tags): ASCII letters, '_' and every byte of a
// multi-byte UTF-8 character first; digits and '$' after.
bool name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool name_char(char c) { return name_start(c) || is_digit(c) || c == '$'; }
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

bool sql_token::is_word(std::string_view keyword) const noexcept {
  if (kind != sql_token_kind::word || text.size() != keyword.size()) return false;
  for (std::size_t i = 0; i < text.size(); ++i)
    if (lower(text[i]) != lower(keyword[i])) return false;
  return true;
}

// The end (one past) of the quoted run opening at `i`; a doubled `close` stays inside when
// `doubled`, and `backslash` makes a backslash escape the next byte.
std::size_t sql_lexer::string_end(std::size_t i, char close, bool doubled,
                                  bool backslash) const noexcept {
  const std::string_view s = sql_;
  for (++i; i < s.size(); ++i) {
    if (backslash && s[i] == '\\') {
      ++i;
    } else if (s[i] == close) {
      if (doubled && i + 1 < s.size() && s[i + 1] == close) {
        ++i;
      } else {
        return i + 1;
      }
    }
  }
  return s.size();
}

// The end of the block comment opening at `i`.
std::size_t sql_lexer::block_comment_end(std::size_t i) const noexcept {
  const std::string_view s = sql_;
  if (dialect_ == sql_dialect::sqlite) {
    std::size_t close = s.find("*/", i + 2);
    return close == std::string_view::npos ? s.size() : close + 2;
  }
  int depth = 0;  // PostgreSQL's block comments nest
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

// PostgreSQL, at a '$': a dollar-quoted body ($$...$$, $tag$...$tag$), a $n placeholder, or a
// lone '$'. A '$' right after a name character continues no quote (a$b$ is a name and a '$').
std::size_t sql_lexer::dollar_end(std::size_t i, sql_token_kind& kind) const noexcept {
  const std::string_view s = sql_;
  kind = sql_token_kind::punctuation;
  if (i > 0 && name_char(s[i - 1])) return i + 1;
  std::size_t tag = 0;  // the delimiter's length, 0 when none opens here
  std::size_t j = i + 1;
  if (j < s.size() && s[j] == '$') {
    tag = 2;
  } else if (j < s.size() && name_start(s[j])) {
    while (j < s.size() && (name_start(s[j]) || is_digit(s[j]))) ++j;
    if (j < s.size() && s[j] == '$') tag = j - i + 1;
  }
  if (tag > 0) {
    kind = sql_token_kind::dollar_quoted;
    std::size_t close = s.find(s.substr(i, tag), i + tag);
    return close == std::string_view::npos ? s.size() : close + tag;
  }
  std::size_t end = i + 1;
  while (end < s.size() && is_digit(s[end])) ++end;
  if (end > i + 1) kind = sql_token_kind::placeholder;
  return end;
}

// SQLite, at ':', '@' or '$': past the name of a named parameter (just the one byte if no name
// follows).
std::size_t sql_lexer::named_end(std::size_t i) const noexcept {
  std::size_t end = i + 1;
  while (end < sql_.size() && name_char(sql_[end])) ++end;
  return end;
}

bool sql_lexer::next(sql_token& out) noexcept {
  const std::string_view s = sql_;
  const std::size_t i = pos_;
  if (i >= s.size()) return false;
  const bool pg = dialect_ == sql_dialect::postgresql;
  const char c = s[i];
  const char after = i + 1 < s.size() ? s[i + 1] : '\0';
  sql_token_kind kind = sql_token_kind::punctuation;
  std::size_t end = i + 1;

  if (is_space(c)) {
    kind = sql_token_kind::whitespace;
    while (end < s.size() && is_space(s[end])) ++end;
  } else if (c == '-' && after == '-') {
    kind = sql_token_kind::comment;
    end = s.find('\n', i);
    if (end == std::string_view::npos) end = s.size();
  } else if (c == '/' && after == '*') {
    kind = sql_token_kind::comment;
    end = block_comment_end(i);
  } else if (c == '\'') {
    // E'...' (e'...'): the E right before the quote, not the end of a longer name.
    bool escapes =
        pg && i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e') && (i < 2 || !name_char(s[i - 2]));
    kind = sql_token_kind::string;
    end = string_end(i, '\'', true, escapes);
  } else if (c == '"' || (!pg && c == '`')) {
    kind = sql_token_kind::quoted_identifier;
    end = string_end(i, c, true, false);
  } else if (!pg && c == '[') {
    kind = sql_token_kind::quoted_identifier;
    end = string_end(i, ']', false, false);
  } else if (c == ';') {
    kind = sql_token_kind::separator;
  } else if (c == '?') {
    kind = sql_token_kind::placeholder;
    if (!pg)
      while (end < s.size() && is_digit(s[end])) ++end;  // ?NNN
  } else if (name_start(c)) {
    kind = sql_token_kind::word;
    while (end < s.size() && name_char(s[end])) ++end;
  } else if (is_digit(c)) {
    kind = sql_token_kind::number;
    while (end < s.size() && is_digit(s[end])) ++end;
    if (end < s.size() && s[end] == '.')
      for (++end; end < s.size() && is_digit(s[end]);) ++end;
  } else if (pg && c == '$') {
    end = dollar_end(i, kind);
  } else if (!pg && (c == '$' || c == ':' || c == '@')) {
    end = named_end(i);
    if (end > i + 1) kind = sql_token_kind::placeholder;
  }

  out = sql_token{kind, i, s.substr(i, end - i)};
  pos_ = end;
  return true;
}

std::vector<sql_token> lex_sql(std::string_view sql, sql_dialect dialect) {
  std::vector<sql_token> tokens;
  sql_lexer lexer(sql, dialect);
  for (sql_token t{}; lexer.next(t);) tokens.push_back(t);
  return tokens;
}

}  // namespace entity::detail
