#include "postgres/placeholders.hpp"

#include <algorithm>

#include "common/sql_lexer.hpp"

namespace entity::postgres_detail {

using detail::sql_token;
using detail::sql_token_kind;

translated_sql translate(std::string_view sql) {
  translated_sql out;
  out.text.reserve(sql.size() + 16);
  std::size_t next = 1;
  std::size_t highest_dollar = 0;
  bool ended = false;   // a ';' was seen: anything but blanks and comments after it is more SQL
  bool first = true;    // no token but blanks seen yet
  bool select = false;  // the statement starts with SELECT
  int depth = 0;        // parentheses open
  // out.text holds sql up to `copied`, then each `?` from there on as it comes.
  std::size_t copied = 0;
  detail::sql_lexer lexer(sql, sql_dialect::postgresql);
  for (sql_token t{}; lexer.next(t);) {
    if (t.kind == sql_token_kind::placeholder) {
      if (t.text == "?") {
        out.text.append(sql.substr(copied, t.begin - copied));
        out.text += '$';
        out.text += std::to_string(next++);
        copied = t.end();
      } else {  // $n, copied as is
        std::size_t n = 0;
        for (char digit : t.text.substr(1))
          n = std::min<std::size_t>(n * 10 + static_cast<std::size_t>(digit - '0'), 1'000'000);
        highest_dollar = std::max(highest_dollar, n);
      }
    }
    if (first && !t.blank()) {
      first = false;
      if (t.kind == sql_token_kind::word)
        for (std::string_view keyword :
             {"select", "insert", "update", "delete", "merge", "values", "table"})
          if (t.is_word(keyword)) out.preparable = true;
      select = t.is_word("select");
    }
    if (t.kind == sql_token_kind::punctuation) depth += t.text == "(" ? 1 : t.text == ")" ? -1 : 0;
    // SELECT ... INTO creates a table: DDL, whatever its first word.
    if (select && depth == 0 && t.is_word("into")) out.preparable = false;
    if (t.kind == sql_token_kind::separator)
      ended = true;
    else if (!t.blank() && ended)
      out.several_statements = true;
  }
  out.text.append(sql.substr(copied));
  out.parameters = std::max(next - 1, highest_dollar);
  return out;
}

std::string translate_placeholders(std::string_view sql) { return translate(sql).text; }

std::vector<std::string_view> split_statements(std::string_view sql) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  bool has_sql = false;  // the current piece holds more than blanks and comments
  bool atomic = false;
  bool after_begin = false;  // the previous word was BEGIN
  detail::sql_lexer lexer(sql, sql_dialect::postgresql);
  for (sql_token t{}; lexer.next(t);) {
    if (t.kind == sql_token_kind::word) {
      if (after_begin && t.is_word("atomic")) atomic = true;
      after_begin = t.is_word("begin");
    }
    if (t.kind == sql_token_kind::separator) {
      if (has_sql) out.push_back(sql.substr(start, t.end() - start));
      start = t.end();
      has_sql = false;
    } else if (!t.blank()) {
      has_sql = true;
    }
  }
  if (has_sql) out.push_back(sql.substr(start));
  if (atomic) return {sql};
  // Leading blanks and comments stay with their statement (the server ignores them) but a
  // statement named in an error reads better without the blank lines before it.
  for (auto& piece : out) {
    std::size_t k = 0;
    while (k < piece.size() &&
           (piece[k] == ' ' || piece[k] == '\t' || piece[k] == '\n' || piece[k] == '\r'))
      ++k;
    piece.remove_prefix(k);
  }
  return out;
}

}  // namespace entity::postgres_detail
