// The SQL of a memory, per backend: plain text, made once per memory and tested without a
// database (memory_sql_test) and with one (memory_*_test).
//
// The seed's table memory(key, value) is never altered: the Python original reads and writes it
// as it always did. What a memory knows beyond it lives beside it:
//   memory_meta(key, created_ms, updated_ms, expires_ms, ttl_ms)  -- times, in ms since the epoch
//     with a partial index on expires_ms (the sweeps' and nothing else's), and a trigger that
//     deletes a key's row with the key, whoever deletes it.
//   the full-text index, made by the first text search: on SQLite the FTS5 table memory_fts
//     (rowid = memory_text_ids.id, which VACUUM keeps), on PostgreSQL memory_meta.tsv with a GIN
//     index; kept by triggers on memory, so it follows every write of every program, in that
//     write's own transaction.
// A write of this library is one statement (so it is group-committed like any other): on
// SQLite an INSERT into the view memory_put, whose trigger writes both tables; on PostgreSQL a
// data-modifying WITH. An item is live when it has no expiry or its expiry is after "now", a
// bound parameter of every read.
#pragma once

#include <string>
#include <vector>

#include "entity/database.hpp"

namespace entity::detail {

/// Every item of a memory: `m` the memory row, `t` its memory_meta row (LEFT JOIN).
struct memory_sql {
  /// REQUIRES: every text field is a dotted path of plain names (check_text_fields).
  memory_sql(sql_dialect d, std::vector<std::string> text_fields);

  sql_dialect dialect;
  std::vector<std::string> text_fields;

  /// One row, 1 when the memory's schema is complete: then setup is not needed (and takes no
  /// lock on the tables).
  std::string setup_probe;
  /// The tables, index, triggers and view of the memory, IF NOT EXISTS: run in one transaction.
  std::vector<std::string> setup;

  /// Parameters of a row written: key, value, now_ms, ttl_ms (null: no expiry).
  static constexpr std::size_t params_per_row = 4;
  /// The write of `rows` rows (1 to the most a statement holds).
  std::string write_rows(std::size_t rows) const;

  /// A restored item (memory::restore), two statements: (key, value), then (key, created_ms or
  /// null: as a store would, now_ms, updated_ms, expires_ms, ttl_ms).
  std::string restore_value;
  std::string restore_times;

  /// "FROM memory m LEFT JOIN memory_meta t ON t.key = m.key"
  static const char* from_items();
  /// The condition that `t` is not expired; binds now_ms.
  static const char* live();

  /// (key, now) -> value, ttl_ms
  std::string load;
  /// (key, now) -> value, created_ms, updated_ms, expires_ms, ttl_ms
  std::string load_item;
  /// (key, now) -> 1
  std::string exists;
  /// (key, now): deletes a live key.
  std::string erase;
  /// (now, keys as a JSON array, now): starts the time to live of the live keys that have one
  /// again from now.
  std::string refresh;
  /// (keys as a JSON array, now) -> key, value: the live ones of the keys (recall).
  std::string values_of_keys;
  /// `IN (...)` of keys given as one bound JSON array.
  std::string in_json_array() const;

  /// The next sweep batch, oldest expiry first: (now, [lower, upper,] limit) -> key.
  std::string expired_keys(bool scoped) const;
  /// (keys as a JSON array) -> key: deletes the memory rows (their meta rows go with them).
  std::string delete_keys;
  /// (keys as a JSON array): deletes meta rows whose memory row went without them.
  std::string delete_meta;

  /// The statements that build the full-text index over the current items and the triggers
  /// that keep it, replacing an index built for other fields: run in one transaction, after
  /// text_index_fields says whether it is needed.
  std::vector<std::string> build_text_index() const;
  /// The statements that say which fields the index covers: a JSON array of the fields, read
  /// from the table the first statement creates (no row: there is no index).
  std::vector<std::string> text_index_state() const;
  /// The JSON array text_index_state reads back when the index is this memory's.
  std::string text_fields_json() const;

  /// FROM, the text condition and the score of a text search; binds the query (text_query).
  std::string text_from() const;
  /// The same without the values, for a search without a filter on them: it ranks the
  /// matches on the index alone and reads the values of one page. `text_key` names the key
  /// column there.
  std::string text_ranked_from() const;
  const char* text_key() const;
  std::string text_condition() const;
  std::string text_score() const;
};

/// The words of a text query: runs of ASCII letters and digits and of bytes of non-ASCII
/// UTF-8, ASCII letters lowered. Empty when it has none.
std::vector<std::string> text_words(std::string_view text);
/// The words as the backend's query text (an FTS5 MATCH expression, a tsquery): any of them.
std::string text_query(sql_dialect d, const std::vector<std::string>& words);

/// Throws invalid_argument for a text field that is not a dotted path of plain names.
void check_text_fields(const std::vector<std::string>& fields);

}  // namespace entity::detail
