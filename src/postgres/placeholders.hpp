// Portable placeholders for PostgreSQL: entity's SQL binds parameters with `?` (SQLite's
// spelling); PostgreSQL numbers them `$1, $2, ...`. The text is read with common/sql_lexer's
// PostgreSQL dialect.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace entity::postgres_detail {

/// Rewrites each `?` of `sql` that is a placeholder into `$1`, `$2`, ... in order. A `?` inside a
/// string literal ('it''s ?', E'\' ?'), a quoted identifier ("a?b"), a comment (-- ?, /* ? */,
/// nested block comments too) or a dollar-quoted body ($$ ? $$, $tag$ ? $tag$) is left alone,
/// and `$n` already in the SQL passes through untouched. The `?` numbering starts at 1 whatever
/// `$n` the SQL holds, so one statement should use one style. PostgreSQL's jsonb operators that
/// are spelled with `?` (`?`, `?|`, `?&`) are therefore unavailable in `?`-style SQL: write
/// `$n` placeholders or jsonb_exists() in such a statement.
std::string translate_placeholders(std::string_view sql);

/// What the engine must know of one statement's SQL before it is sent.
struct translated_sql {
  std::string text;  ///< `?` rewritten as translate_placeholders does
  /// The parameters the SQL takes: its `?` count, or its highest `$n` when that is higher.
  std::size_t parameters = 0;
  /// A `;` outside literals and comments is followed by more SQL: several statements, which
  /// the extended query protocol refuses (the caller wants execute_script).
  bool several_statements = false;
  /// The statement starts with SELECT, INSERT, UPDATE, DELETE, MERGE, VALUES or TABLE (and is
  /// no SELECT ... INTO): a query or a data change, which the server may keep prepared and run
  /// again. Anything else (BEGIN, COMMIT, SET, SHOW, DDL, DISCARD, ...) changes the session or
  /// the schema, or is run once: it never goes through the statement cache. Nor does a WITH:
  /// run again by name, a statement takes its tables' locks in the order of its range table,
  /// which puts the tables of a WITH's common table expressions after the main statement's,
  /// the reverse of a fresh parse. DDL that takes them in the parse's order, so that a write
  /// running meanwhile waits for it (the memory's schema setup and its text index do), would
  /// deadlock with the prepared form instead.
  bool preparable = false;
};
translated_sql translate(std::string_view sql);

/// The statements of a script, split at each `;` outside literals, quoted identifiers,
/// comments and dollar-quoted bodies; pieces holding only blanks and comments are dropped.
/// A script holding `BEGIN ATOMIC` (a function body whose statements end in `;` of their own)
/// is returned whole.
std::vector<std::string_view> split_statements(std::string_view sql);

}  // namespace entity::postgres_detail
