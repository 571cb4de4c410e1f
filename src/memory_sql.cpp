#include "memory_sql.hpp"

#include "common/json_filter.hpp"
#include "entity/error.hpp"
#include "entity/json.hpp"

namespace entity::detail {

namespace {

bool pg(sql_dialect d) { return d == sql_dialect::postgresql; }

// The segments of a text field, checked as a filter's path is (json_filter.hpp): only then is
// it spliced into the index's SQL.
std::vector<std::string> segments_of(const std::string& field) {
  filter_node node = parse_json_filter(json{{field, {{"$exists", true}}}});
  return node.path;
}

// The text the index holds of the JSON text `x` (an SQL expression): its string leaves (of
// `fields`, or all), joined by spaces. A value that is not JSON is indexed as it is.
std::string sqlite_body(const std::vector<std::string>& fields, const std::string& x) {
  if (fields.empty())
    return "CASE WHEN json_valid(" + x + ") THEN (SELECT group_concat(value, ' ') FROM json_tree(" +
           x + ") WHERE type = 'text') ELSE " + x + " END";
  std::string parts;
  for (const std::string& f : fields) {
    std::string path = "$";
    for (const std::string& s : segments_of(f)) path += ".\"" + s + '"';
    if (!parts.empty()) parts += " UNION ALL ";
    parts += "SELECT value FROM json_tree(" + x + ", '" + path + "') WHERE type = 'text'";
  }
  return "CASE WHEN json_valid(" + x + ") THEN (SELECT group_concat(value, ' ') FROM (" + parts +
         ")) ELSE " + x + " END";
}

// PostgreSQL's: a function of the value, so the trigger and the first build share it. Words
// are split as text_words splits them, then lowered by the 'simple' configuration.
std::string pg_body_function(const std::vector<std::string>& fields) {
  std::string leaves;
  if (fields.empty()) {
    leaves =
        "SELECT s #>> '{}' FROM jsonb_path_query(j, 'strict $.**') s "
        "WHERE jsonb_typeof(s) = 'string'";
  } else {
    for (const std::string& f : fields) {
      std::string path = "{";
      bool first = true;
      for (const std::string& s : segments_of(f)) {
        path += (first ? "\"" : ",\"") + s + '"';
        first = false;
      }
      path += "}";
      if (!leaves.empty()) leaves += " UNION ALL ";
      leaves += "SELECT s #>> '{}' FROM jsonb_path_query(j #> '" + path +
                "', 'strict $.**') s WHERE jsonb_typeof(s) = 'string'";
    }
  }
  return "CREATE OR REPLACE FUNCTION memory_text_of(v text) RETURNS tsvector LANGUAGE plpgsql "
         "IMMUTABLE AS $f$ DECLARE j jsonb; body text; BEGIN "
         "BEGIN j := v::jsonb; EXCEPTION WHEN others THEN body := v; END; "
         "IF j IS NOT NULL THEN SELECT string_agg(w, ' ') INTO body FROM (" +
         leaves +
         ") AS l(w); END IF; "
         "RETURN to_tsvector('simple', regexp_replace(coalesce(body, ''), "
         "'[^[:alnum:]\\x80-\\U0010FFFF]+', ' ', 'g')); END $f$";
}

}  // namespace

memory_sql::memory_sql(sql_dialect d, std::vector<std::string> fields)
    : dialect(d), text_fields(std::move(fields)) {
  const std::string live_t = live();
  if (pg(d)) {
    setup_probe =
        "SELECT CASE WHEN to_regclass('memory_meta_expiry') IS NOT NULL AND EXISTS (SELECT 1 FROM "
        "pg_trigger WHERE tgname = 'memory_gone' AND tgrelid = to_regclass('memory')) THEN 1 "
        "ELSE 0 END";
    setup = {
        // Two handles (or processes) making the schema at once wait for each other.
        "SELECT pg_advisory_xact_lock(4242016013)",
        // The key column in the "C" collation: keys are bytes and a scope is a byte range
        // (memory.cpp, where_matching), and the primary key's index is in that order.
        "CREATE TABLE IF NOT EXISTS memory (key TEXT COLLATE \"C\" PRIMARY KEY, value TEXT)",
        "CREATE TABLE IF NOT EXISTS memory_meta (key TEXT COLLATE \"C\" PRIMARY KEY, "
        "created_ms BIGINT, updated_ms BIGINT, expires_ms BIGINT, ttl_ms BIGINT, tsv tsvector)",
        // Locks in the order of the writes (memory, then memory_meta), so that a write running
        // meanwhile waits for this or this for it, never both for each other.
        "CREATE OR REPLACE FUNCTION memory_meta_gone() RETURNS trigger LANGUAGE plpgsql AS "
        "$f$ BEGIN DELETE FROM memory_meta WHERE key = OLD.key; RETURN NULL; END $f$",
        "CREATE OR REPLACE TRIGGER memory_gone AFTER DELETE ON memory FOR EACH ROW "
        "EXECUTE FUNCTION memory_meta_gone()",
        "CREATE INDEX IF NOT EXISTS memory_meta_expiry ON memory_meta (expires_ms) "
        "WHERE expires_ms IS NOT NULL",
    };
  } else {
    setup_probe =
        "SELECT CASE WHEN count(*) = 6 THEN 1 ELSE 0 END FROM sqlite_schema WHERE (type, name) IN "
        "(VALUES ('table', 'memory'), ('table', 'memory_meta'), ('index', 'memory_meta_expiry'), "
        "('trigger', 'memory_gone'), ('trigger', 'memory_rewritten'), ('trigger', 'memory_put'))";
    setup = {
        "CREATE TABLE IF NOT EXISTS memory (key TEXT PRIMARY KEY, value TEXT)",
        // Keyed by the key alone (WITHOUT ROWID): a store writes one b-tree of it, not two.
        "CREATE TABLE IF NOT EXISTS memory_meta (key TEXT PRIMARY KEY, created_ms INTEGER, "
        "updated_ms INTEGER, expires_ms INTEGER, ttl_ms INTEGER) WITHOUT ROWID",
        "CREATE INDEX IF NOT EXISTS memory_meta_expiry ON memory_meta (expires_ms) "
        "WHERE expires_ms IS NOT NULL",
        "CREATE TRIGGER IF NOT EXISTS memory_gone AFTER DELETE ON memory BEGIN "
        "DELETE FROM memory_meta WHERE key = old.key; END",
        // A value another program writes with INSERT (OR REPLACE) has no time to live, and was
        // updated then (by SQLite's clock). This library's own writes of an existing key are
        // UPDATEs, and of a new key insert the meta row after this trigger ran.
        "CREATE TRIGGER IF NOT EXISTS memory_rewritten AFTER INSERT ON memory BEGIN "
        "UPDATE memory_meta SET expires_ms = NULL, ttl_ms = NULL, updated_ms = "
        "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) WHERE key = new.key; END",
        "CREATE VIEW IF NOT EXISTS memory_put (key, value, now_ms, ttl_ms) AS "
        "SELECT NULL, NULL, NULL, NULL WHERE 0",
        // An item stored again after it expired is created again.
        "CREATE TRIGGER IF NOT EXISTS memory_put INSTEAD OF INSERT ON memory_put BEGIN "
        "INSERT INTO memory (key, value) VALUES (new.key, new.value) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value; "
        "INSERT INTO memory_meta (key, created_ms, updated_ms, expires_ms, ttl_ms) "
        "VALUES (new.key, new.now_ms, new.now_ms, new.now_ms + new.ttl_ms, new.ttl_ms) "
        "ON CONFLICT (key) DO UPDATE SET created_ms = CASE WHEN memory_meta.created_ms IS NULL "
        "OR memory_meta.expires_ms <= excluded.updated_ms THEN excluded.created_ms "
        "ELSE memory_meta.created_ms END, updated_ms = excluded.updated_ms, "
        "expires_ms = excluded.expires_ms, ttl_ms = excluded.ttl_ms; END",
    };
  }
  // The n-th parameter (from 1), which the restore's times use twice.
  auto n = [&](int i, const char* type = "bigint") {
    return pg(d) ? "CAST($" + std::to_string(i) + " AS " + type + ")" : "?" + std::to_string(i);
  };
  restore_value =
      "INSERT INTO memory (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
      "excluded.value";
  restore_times =
      "INSERT INTO memory_meta AS t (key, created_ms, updated_ms, expires_ms, ttl_ms) "
      "VALUES (" +
      n(1, "text") + ", coalesce(" + n(2) + ", " + n(3) + "), " + n(4) + ", " + n(5) + ", " + n(6) +
      ") ON CONFLICT (key) DO UPDATE SET created_ms = CASE WHEN " + n(2) +
      " IS NOT NULL OR t.created_ms IS NULL OR t.expires_ms <= " + n(3) +
      " THEN excluded.created_ms ELSE t.created_ms END, updated_ms = "
      "excluded.updated_ms, expires_ms = excluded.expires_ms, ttl_ms = excluded.ttl_ms";
  load = std::string("SELECT m.value, t.ttl_ms ") + from_items() + " WHERE m.key = ? AND " + live_t;
  load_item = std::string("SELECT m.value, t.created_ms, t.updated_ms, t.expires_ms, t.ttl_ms ") +
              from_items() + " WHERE m.key = ? AND " + live_t;
  exists = std::string("SELECT 1 ") + from_items() + " WHERE m.key = ? AND " + live_t;
  const std::string not_expired_here =
      " AND NOT EXISTS (SELECT 1 FROM memory_meta t WHERE t.key = memory.key AND "
      "t.expires_ms <= ?)";
  erase = "DELETE FROM memory WHERE key = ?" + not_expired_here;
  refresh = "UPDATE memory_meta SET expires_ms = ? + ttl_ms WHERE key " + in_json_array() +
            " AND ttl_ms IS NOT NULL AND expires_ms > ?";
  values_of_keys = std::string("SELECT m.key, m.value ") + from_items() + " WHERE m.key " +
                   in_json_array() + " AND " + live_t;
  delete_keys = "DELETE FROM memory WHERE key " + in_json_array() + " RETURNING key";
  delete_meta = "DELETE FROM memory_meta WHERE key " + in_json_array();
}

const char* memory_sql::from_items() {
  return "FROM memory m LEFT JOIN memory_meta t ON t.key = m.key";
}
const char* memory_sql::live() { return "(t.expires_ms IS NULL OR t.expires_ms > ?)"; }

std::string memory_sql::in_json_array() const {
  return pg(dialect) ? "IN (SELECT jsonb_array_elements_text(CAST(? AS jsonb)))"
                     : "IN (SELECT value FROM json_each(?))";
}

std::string memory_sql::write_rows(std::size_t rows) const {
  std::string sql;
  if (pg(dialect)) {
    sql = "WITH v (key, value, now_ms, ttl_ms) AS (VALUES ";
    for (std::size_t i = 0; i < rows; ++i)
      sql += std::string(i ? ", " : "") +
             "(CAST(? AS text), CAST(? AS text), CAST(? AS bigint), CAST(? AS bigint))";
    sql +=
        "), m AS (INSERT INTO memory (key, value) SELECT key, value FROM v "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value) "
        "INSERT INTO memory_meta AS t (key, created_ms, updated_ms, expires_ms, ttl_ms) "
        "SELECT key, now_ms, now_ms, now_ms + ttl_ms, ttl_ms FROM v "
        "ON CONFLICT (key) DO UPDATE SET created_ms = CASE WHEN t.created_ms IS NULL "
        "OR t.expires_ms <= excluded.updated_ms THEN excluded.created_ms ELSE t.created_ms END, "
        "updated_ms = excluded.updated_ms, expires_ms = excluded.expires_ms, "
        "ttl_ms = excluded.ttl_ms";
    return sql;
  }
  sql = "INSERT INTO memory_put (key, value, now_ms, ttl_ms) VALUES ";
  for (std::size_t i = 0; i < rows; ++i) sql += i ? ", (?, ?, ?, ?)" : "(?, ?, ?, ?)";
  return sql;
}

std::string memory_sql::expired_keys(bool scoped) const {
  std::string range;
  if (scoped)
    range = pg(dialect) ? " AND key COLLATE \"C\" >= ? AND key COLLATE \"C\" < ?"
                        : " AND key >= ? AND key < ?";
  return "SELECT key FROM memory_meta WHERE expires_ms <= ?" + range +
         " ORDER BY expires_ms LIMIT ?";
}

std::string memory_sql::text_fields_json() const {
  json fields = json::array();
  for (const std::string& f : text_fields) fields.push_back(f);
  return fields.dump();
}

std::vector<std::string> memory_sql::text_index_state() const {
  return {"CREATE TABLE IF NOT EXISTS memory_text_config (fields TEXT NOT NULL)",
          "SELECT fields FROM memory_text_config"};
}

std::vector<std::string> memory_sql::build_text_index() const {
  // The fields are recorded as a literal of this file's own JSON text of checked paths: no
  // quote can occur in it.
  const std::string record =
      "INSERT INTO memory_text_config (fields) VALUES ('" + text_fields_json() + "')";
  if (pg(dialect)) {
    return {
        "SELECT pg_advisory_xact_lock(4242016013)",
        pg_body_function(text_fields),
        "CREATE OR REPLACE FUNCTION memory_text_set() RETURNS trigger LANGUAGE plpgsql AS "
        "$f$ BEGIN INSERT INTO memory_meta (key, tsv) VALUES (NEW.key, memory_text_of(NEW.value)) "
        "ON CONFLICT (key) DO UPDATE SET tsv = excluded.tsv; RETURN NULL; END $f$",
        "CREATE OR REPLACE TRIGGER memory_text AFTER INSERT OR UPDATE OF value ON memory "
        "FOR EACH ROW EXECUTE FUNCTION memory_text_set()",
        "INSERT INTO memory_meta (key, tsv) SELECT key, memory_text_of(value) FROM memory "
        "ON CONFLICT (key) DO UPDATE SET tsv = excluded.tsv",
        "CREATE INDEX IF NOT EXISTS memory_meta_text ON memory_meta USING gin (tsv)",
        "DELETE FROM memory_text_config",
        record,
    };
  }
  const std::string body_new = sqlite_body(text_fields, "new.value");
  // Inside a trigger FTS5 takes the outer statement's conflict handling, not its own OR
  // REPLACE: the old row goes first.
  // The full-text rows are keyed by memory_text_ids.id, an INTEGER PRIMARY KEY: VACUUM keeps
  // it (it may renumber memory's own rowids).
  const std::string index_new =
      "INSERT INTO memory_text_ids (key) VALUES (new.key) ON CONFLICT (key) DO NOTHING; "
      "DELETE FROM memory_fts WHERE rowid = (SELECT id FROM memory_text_ids WHERE key = new.key); "
      "INSERT INTO memory_fts (rowid, body) SELECT id, " +
      body_new + " FROM memory_text_ids WHERE key = new.key; ";
  return {
      "CREATE TABLE IF NOT EXISTS memory_text_ids (id INTEGER PRIMARY KEY, key TEXT NOT NULL "
      "UNIQUE)",
      "CREATE VIRTUAL TABLE IF NOT EXISTS memory_fts USING fts5 "
      "(body, tokenize = 'unicode61 remove_diacritics 0')",
      "DROP TRIGGER IF EXISTS memory_text_insert",
      "DROP TRIGGER IF EXISTS memory_text_update",
      "DROP TRIGGER IF EXISTS memory_text_gone",
      "CREATE TRIGGER memory_text_insert AFTER INSERT ON memory BEGIN " + index_new + "END",
      "CREATE TRIGGER memory_text_update AFTER UPDATE OF value ON memory BEGIN " + index_new +
          "END",
      "CREATE TRIGGER memory_text_gone AFTER DELETE ON memory BEGIN "
      "DELETE FROM memory_fts WHERE rowid = (SELECT id FROM memory_text_ids WHERE key = old.key); "
      "DELETE FROM memory_text_ids WHERE key = old.key; END",
      "DELETE FROM memory_fts",
      "DELETE FROM memory_text_ids",
      "INSERT INTO memory_text_ids (key) SELECT key FROM memory",
      "INSERT INTO memory_fts (rowid, body) SELECT i.id, " + sqlite_body(text_fields, "m.value") +
          " FROM memory m JOIN memory_text_ids i ON i.key = m.key",
      "DELETE FROM memory_text_config",
      record,
  };
}

std::string memory_sql::text_from() const {
  if (pg(dialect))
    return "FROM memory m JOIN memory_meta t ON t.key = m.key, "
           "to_tsquery('simple', ?) AS q";
  return "FROM memory_fts JOIN memory_text_ids i ON i.id = memory_fts.rowid "
         "JOIN memory m ON m.key = i.key LEFT JOIN memory_meta t ON t.key = m.key";
}
std::string memory_sql::text_ranked_from() const {
  if (pg(dialect)) return "FROM memory_meta t, to_tsquery('simple', ?) AS q";
  return "FROM memory_fts JOIN memory_text_ids i ON i.id = memory_fts.rowid "
         "LEFT JOIN memory_meta t ON t.key = i.key";
}
const char* memory_sql::text_key() const { return pg(dialect) ? "t.key" : "i.key"; }
std::string memory_sql::text_condition() const {
  return pg(dialect) ? "t.tsv @@ q" : "memory_fts MATCH ?";
}
std::string memory_sql::text_score() const {
  return pg(dialect) ? "ts_rank(t.tsv, q)" : "-bm25(memory_fts)";
}

std::vector<std::string> text_words(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    const bool part =
        (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u >= 0x80;
    if (part) {
      word += (u >= 'A' && u <= 'Z') ? static_cast<char>(u - 'A' + 'a') : c;
    } else if (!word.empty()) {
      words.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

std::string text_query(sql_dialect d, const std::vector<std::string>& words) {
  // A word holds no quote of either kind, so it is quoted as it is.
  std::string q;
  for (const std::string& w : words) {
    if (!q.empty()) q += pg(d) ? " | " : " OR ";
    q += pg(d) ? "'" + w + "'" : "\"" + w + "\"";
  }
  return q;
}

void check_text_fields(const std::vector<std::string>& fields) {
  for (const std::string& f : fields) {
    try {
      (void)segments_of(f);
    } catch (const error& e) {
      throw error(errc::invalid_argument,
                  {"memory_params.text_fields: " + std::string(e.what()), {}});
    }
  }
}

}  // namespace entity::detail
