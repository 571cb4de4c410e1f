// Portable placeholders for PostgreSQL: entity's SQL binds parameters with `?` (SQLite's
// spelling); PostgreSQL numbers them `$1, $2, ...`.
#pragma once

#include <string>
#include <string_view>

namespace entity::postgres_detail {

/// Rewrites each `?` of `sql` that is a placeholder into `$1`, `$2`, ... in order. A `?` inside a
/// string literal ('it''s ?', E'\' ?'), a quoted identifier ("a?b"), a comment (-- ?, /* ? */,
/// nested block comments too) or a dollar-quoted body ($$ ? $$, $tag$ ? $tag$) is left alone,
/// and `$n` already in the SQL passes through untouched. The `?` numbering starts at 1 whatever
/// `$n` the SQL holds, so one statement should use one style. PostgreSQL's jsonb operators that
/// are spelled with `?` (`?`, `?|`, `?&`) are therefore unavailable in `?`-style SQL: write
/// `$n` placeholders or jsonb_exists() in such a statement.
std::string translate_placeholders(std::string_view sql);

}  // namespace entity::postgres_detail
