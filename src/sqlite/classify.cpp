#include "sqlite/classify.hpp"

#include "common/sql_lexer.hpp"

namespace entity::sqlite_detail {
namespace {

using detail::sql_token;
using detail::sql_token_kind;

// The first token of `lexer` that is not whitespace or a comment; false when none is left.
bool next_significant(detail::sql_lexer& lexer, sql_token& t) {
  while (lexer.next(t))
    if (!t.blank()) return true;
  return false;
}

}  // namespace

std::string_view first_keyword(std::string_view sql, char (&buf)[17]) {
  // The letters that start the first word, upper-cased.
  auto letters_of = [&](std::string_view word) {
    std::size_t n = 0;
    for (; n < word.size() && n < 16; ++n) {
      char c = word[n];
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      if (c < 'A' || c > 'Z') break;
      buf[n] = c;
    }
    buf[n] = '\0';
    return std::string_view(buf, n);
  };
  // The usual statement starts with its keyword: nothing before it for the lexer to skip.
  if (!sql.empty() && ((sql[0] >= 'A' && sql[0] <= 'Z') || (sql[0] >= 'a' && sql[0] <= 'z')))
    return letters_of(sql);
  detail::sql_lexer lexer(sql, sql_dialect::sqlite);
  sql_token t{};
  if (next_significant(lexer, t) && t.kind == sql_token_kind::word) return letters_of(t.text);
  return letters_of({});
}

route classify(std::string_view sql) {
  char buf[17];
  std::string_view kw = first_keyword(sql, buf);
  if (kw == "SELECT" || kw == "WITH" || kw == "VALUES" || kw == "EXPLAIN") return route::read;
  if (kw == "BEGIN" || kw == "COMMIT" || kw == "END" || kw == "ROLLBACK" || kw == "SAVEPOINT" ||
      kw == "RELEASE" || kw == "VACUUM" || kw == "PRAGMA" || kw == "ATTACH" || kw == "DETACH")
    return route::solo;
  return route::write;
}

std::string_view journal_mode_requested(std::string_view sql, char (&buf)[17]) {
  detail::sql_lexer lexer(sql, sql_dialect::sqlite);
  sql_token t{};
  if (!next_significant(lexer, t) || !t.is_word("PRAGMA")) return {};
  if (!next_significant(lexer, t)) return {};
  // An optional schema: only the main database's mode is the engine's.
  sql_token name = t;
  if (next_significant(lexer, t) && t.text == ".") {
    if (!name.is_word("main") && name.text != "\"main\"") return {};
    if (!next_significant(lexer, name) || !next_significant(lexer, t)) return {};
  }
  if (!name.is_word("journal_mode") && name.text != "\"journal_mode\"") return {};
  if (t.text != "=" && t.text != "(") return {};  // reading it, not setting it
  if (!next_significant(lexer, t)) return {};
  std::string_view mode = t.text;
  if (t.kind == sql_token_kind::string || t.kind == sql_token_kind::quoted_identifier) {
    if (mode.size() < 2) return {};
    mode = mode.substr(1, mode.size() - 2);
  }
  std::size_t n = 0;
  for (; n < mode.size() && n < 16; ++n) {
    char c = mode[n];
    buf[n] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  }
  buf[n] = '\0';
  return {buf, n};
}

bool is_blank(std::string_view sql) {
  detail::sql_lexer lexer(sql, sql_dialect::sqlite);
  sql_token t{};
  while (next_significant(lexer, t))
    if (t.kind != sql_token_kind::separator) return false;
  return true;
}

bool has_several_statements(std::string_view sql) {
  detail::sql_lexer lexer(sql, sql_dialect::sqlite);
  sql_token t{};
  bool seen_statement = false;  // significant text since the last ';'
  bool ended = false;           // a statement was complete before it
  while (next_significant(lexer, t)) {
    if (t.kind == sql_token_kind::separator) {
      ended = ended || seen_statement;
      seen_statement = false;
    } else if (ended) {
      return true;  // significant text after a complete statement
    } else {
      seen_statement = true;
    }
  }
  return false;
}

}  // namespace entity::sqlite_detail
