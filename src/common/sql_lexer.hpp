// The one SQL lexer of the engines: it cuts SQL text into tokens so that the SQLite engine can
// route a statement (sqlite/classify) and the PostgreSQL engine can rewrite its `?`
// placeholders and split scripts (postgres/placeholders), each without being fooled by a `;`
// or a `?` inside a literal, a quoted identifier, a comment or a dollar-quoted body.
//
// It lexes, it does not parse: every byte of the text belongs to exactly one token, tokens
// come in order and back to back, and any input (unterminated quotes and comments, NUL bytes,
// invalid UTF-8) lexes without failing: an unterminated string, identifier or comment runs to
// the end of the text. Plain code: no allocation (but for lex_sql), no threads, no I/O.
//
// Where the dialects differ (sql_dialect::sqlite / postgresql):
//   quoted identifiers  sqlite: "..." `...` (a doubled quote stays inside) and [...] (no
//                       escape); postgresql: "..." only (` and [ are punctuation)
//   strings             both '...' with '' inside; postgresql also E'...' (an E or e right
//                       before the quote, not ending a longer name), where a backslash escapes
//                       the next byte. The E stays a word token of its own.
//   block comments      postgresql's nest (/* a /* b */ c */ is one comment); sqlite's do not
//   dollar quotes       postgresql only: $$...$$ and $tag$...$tag$ (a '$' right after a name
//                       character, as in a$b or x$$, opens none)
//   placeholders        both `?`; sqlite also ?NNN, :name, @name and $name; postgresql also
//                       $n (the '$' not right after a name character)
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "entity/infrastructure.hpp"  // entity::sql_dialect

namespace entity::detail {

enum class sql_token_kind {
  whitespace,         ///< a run of ' ', \t, \n, \v, \f, \r
  comment,            ///< -- to the end of the line (the '\n' not included), or /* ... */
  word,               ///< a keyword or name: [A-Za-z_] or a byte >= 0x80 first, then those,
                      ///< digits and '$'
  number,             ///< ASCII digits, optionally '.' and more digits (1, 3.14, 2.)
  string,             ///< '...', quotes included
  quoted_identifier,  ///< "..." (and, in SQLite, `...` and [...]), quotes included
  dollar_quoted,      ///< postgresql: $tag$ ... $tag$, delimiters included
  placeholder,        ///< a bound parameter: ? (and the dialect's other spellings, above)
  separator,          ///< ';', the end of a statement
  punctuation,        ///< any other single byte: operators, parentheses, commas, a lone '$'
};

struct sql_token {
  sql_token_kind kind;
  std::size_t begin;      ///< offset of the token's first byte in the lexed text
  std::string_view text;  ///< the token's bytes, a view into the lexed text

  std::size_t end() const noexcept { return begin + text.size(); }
  /// Whitespace or a comment: nothing the server runs.
  bool blank() const noexcept {
    return kind == sql_token_kind::whitespace || kind == sql_token_kind::comment;
  }
  /// A word equal to `keyword` ignoring ASCII letter case.
  bool is_word(std::string_view keyword) const noexcept;
};

/// Lexes one text; the text must outlive the lexer and its tokens.
class sql_lexer {
 public:
  sql_lexer(std::string_view sql, sql_dialect dialect) noexcept : sql_(sql), dialect_(dialect) {}

  /// The next token into `out`; false (out unchanged) once the text is used up.
  bool next(sql_token& out) noexcept;

 private:
  std::size_t string_end(std::size_t i, char close, bool doubled, bool backslash) const noexcept;
  std::size_t block_comment_end(std::size_t i) const noexcept;
  std::size_t dollar_end(std::size_t i, sql_token_kind& kind) const noexcept;
  std::size_t named_end(std::size_t i) const noexcept;

  std::string_view sql_;
  sql_dialect dialect_;
  std::size_t pos_ = 0;
};

/// Every token of `sql`, in order.
std::vector<sql_token> lex_sql(std::string_view sql, sql_dialect dialect);

}  // namespace entity::detail
