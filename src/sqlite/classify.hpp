// How the SQLite engine routes a statement, decided from its text before it is prepared.
// The statement's own read-only flag (sqlite3_stmt_readonly) is the final authority: a
// statement classified `read` that turns out to write is moved to the writer. The text is
// read with common/sql_lexer's SQLite dialect.
#pragma once

#include <string_view>

namespace entity::sqlite_detail {

enum class route {
  read,   ///< may be read-only: try a reader (SELECT, WITH, VALUES, EXPLAIN)
  write,  ///< runs on the writer inside a group commit
  solo,   ///< runs on the writer alone, outside any group (transaction control, VACUUM, PRAGMA,
          ///< ATTACH, DETACH): these cannot run inside a transaction or change its state
};

/// The first keyword of `sql`, upper-cased, skipping whitespace and comments ("" if none).
/// At most 16 characters are looked at.
std::string_view first_keyword(std::string_view sql, char (&buf)[17]);

route classify(std::string_view sql);

/// True when `sql` holds more than one statement (ignoring trailing ';', whitespace and
/// comments; ';' inside literals, quoted identifiers and comments does not count).
bool has_several_statements(std::string_view sql);

/// The journal mode a `PRAGMA [main.]journal_mode = MODE` (or `(MODE)`) asks for, lower-cased
/// into `buf` ("wal", "delete", ...; at most 16 characters); "" when `sql` does not set the
/// main database's journal mode (it only reads it, names another schema, or is no such PRAGMA).
std::string_view journal_mode_requested(std::string_view sql, char (&buf)[17]);

/// True when `sql` holds nothing but whitespace, comments and ';'.
bool is_blank(std::string_view sql);

}  // namespace entity::sqlite_detail
