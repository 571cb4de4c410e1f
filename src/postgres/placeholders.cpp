#include "postgres/placeholders.hpp"

#include <algorithm>
#include <cctype>

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

// One token of SQL as the scanner sees it.
enum class token { blank, comment, semicolon, placeholder, dollar_param, word, other };

// Calls `on(kind, begin, end)` for each token of `sql`, in order.
template <class F>
void scan(std::string_view sql, F&& on) {
  std::size_t i = 0;
  while (i < sql.size()) {
    char c = sql[i];
    std::size_t end = i + 1;
    token kind = token::other;
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
      kind = token::comment;
    } else if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
      end = skip_block_comment(sql, i);
      kind = token::comment;
    } else if (c == '$' && (i == 0 || !ident_char(sql[i - 1]))) {
      std::string_view tag = dollar_tag(sql, i);
      if (!tag.empty()) {
        std::size_t close = sql.find(tag, i + tag.size());
        end = close == std::string_view::npos ? sql.size() : close + tag.size();
      } else {
        // $n, or a lone '$': copied as is, digits included.
        while (end < sql.size() && sql[end] >= '0' && sql[end] <= '9') ++end;
        if (end > i + 1) kind = token::dollar_param;
      }
    } else if (ident_start(c)) {
      // A whole word at once, so that a '$' inside an identifier (a$b) is never a quote.
      while (end < sql.size() && ident_char(sql[end])) ++end;
      // ...except the E of an E'...' string, which the quote branch must see next.
      kind = token::word;
    } else if (c == '?') {
      kind = token::placeholder;
    } else if (c == ';') {
      kind = token::semicolon;
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      kind = token::blank;
    }
    on(kind, i, end);
    i = end;
  }
}

bool same_word(std::string_view word, std::string_view lower) {
  if (word.size() != lower.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i)
    if (static_cast<char>(std::tolower(static_cast<unsigned char>(word[i]))) != lower[i]) return false;
  return true;
}

}  // namespace

translated_sql translate(std::string_view sql) {
  translated_sql out;
  out.text.reserve(sql.size() + 16);
  std::size_t next = 1;
  std::size_t highest_dollar = 0;
  bool ended = false;  // a ';' was seen: anything but blanks and comments after it is more SQL
  scan(sql, [&](token kind, std::size_t begin, std::size_t end) {
    switch (kind) {
      case token::placeholder:
        out.text += '$';
        out.text += std::to_string(next++);
        break;
      case token::dollar_param: {
        std::size_t n = 0;
        for (std::size_t j = begin + 1; j < end; ++j)
          n = std::min<std::size_t>(n * 10 + static_cast<std::size_t>(sql[j] - '0'), 1'000'000);
        highest_dollar = std::max(highest_dollar, n);
        out.text.append(sql.substr(begin, end - begin));
        break;
      }
      default: out.text.append(sql.substr(begin, end - begin));
    }
    if (kind == token::semicolon)
      ended = true;
    else if (kind != token::blank && kind != token::comment && ended)
      out.several_statements = true;
  });
  out.parameters = std::max(next - 1, highest_dollar);
  return out;
}

std::string translate_placeholders(std::string_view sql) { return translate(sql).text; }

std::vector<std::string_view> split_statements(std::string_view sql) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  bool has_sql = false;  // the current piece holds more than blanks and comments
  bool atomic = false;
  std::string_view previous_word;
  scan(sql, [&](token kind, std::size_t begin, std::size_t end) {
    if (kind == token::word) {
      std::string_view word = sql.substr(begin, end - begin);
      if (same_word(word, "atomic") && same_word(previous_word, "begin")) atomic = true;
      previous_word = word;
    }
    if (kind == token::semicolon) {
      if (has_sql) out.push_back(sql.substr(start, end - start));
      start = end;
      has_sql = false;
    } else if (kind != token::blank && kind != token::comment) {
      has_sql = true;
    }
  });
  if (has_sql) out.push_back(sql.substr(start));
  if (atomic) return {sql};
  // Leading blanks and comments stay with their statement (the server ignores them) but a
  // statement named in an error reads better without the blank lines before it.
  for (auto& piece : out) {
    std::size_t k = 0;
    while (k < piece.size() && (piece[k] == ' ' || piece[k] == '\t' || piece[k] == '\n' ||
                                piece[k] == '\r'))
      ++k;
    piece.remove_prefix(k);
  }
  return out;
}

}  // namespace entity::postgres_detail
