#include "entity/memory.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string_view>
#include <unordered_set>
#include <variant>

#include "common/json_filter.hpp"
#include "common/op_runner.hpp"
#include "common/thread_safety.hpp"
#include "memory_sql.hpp"
#include "vector/kernels.hpp"

namespace entity {

// What every view of one memory shares: the SQL of its backend, fixed when the memory is made
// (views are made from any thread while others use the memory, so nothing here is rewritten),
// and whether the table is known to exist.
//
// Whether the embeddings collection exists decides how writes go: while it does not, a write is
// the single statement it always was; once it may, every write of a value goes through a
// vector_store transaction that also removes or replaces the key's embedding. The state is
// probed once, with the table; "absent" turns into "present" when this memory stores an
// embedding or a recall finds the collection. A collection another handle creates meanwhile
// can leave an embedding behind a value this handle replaces; recall checks every embedding's
// value digest, so such an embedding is never recalled.
namespace {
// How a batch_store writes its rows (see batch_store_rows); fixed per backend.
struct batch_sql {
  // sized[i]: the upsert of 2^i rows, up to rows_per_insert (the full chunk). A shorter chunk
  // is written as the powers of two it sums to, so any batch uses at most these statements,
  // each prepared once per connection and then taken from its statement cache.
  std::vector<std::string> sized;
  // PostgreSQL's ON CONFLICT may not update a row twice in one statement: a key met again
  // within a chunk ends the chunk. SQLite's INSERT OR REPLACE takes the rows in order, so the
  // later value wins within one statement too.
  bool one_row_per_key = false;
};
std::shared_ptr<const batch_sql> make_batch_sql(const detail::memory_sql& sql);

// What store(), batch_store() and memory_params::default_ttl refuse of a time to live.
void check_ttl(const memory::ttl& t, const char* what = "a time to live") {
  if (!t || *t == memory::no_expiry) return;
  constexpr std::int64_t longest = 10'000LL * 366 * 24 * 3600 * 1000;  // 10,000 years
  if (t->count() <= 0 || t->count() > longest)
    throw error(errc::invalid_argument,
                {std::string(what) +
                     " must be positive and at most 10,000 years (memory::no_expiry: never "
                     "expires); got " +
                     std::to_string(t->count()) + " ms",
                 {}});
}

// What a memory stores of a key's time to live (`t`, or the default): null for none.
value ttl_value(const memory::ttl& t, const memory_params& p) {
  const memory::ttl& chosen = t ? t : p.default_ttl;
  if (!chosen || *chosen == memory::no_expiry) return value(null);
  return value(chosen->count());
}
}  // namespace

struct memory::shared {
  enum class embeddings_state : int { unknown, absent, present };

  shared(const database& d, memory_params settings)
      : db(d),
        params(checked(std::move(settings))),
        sql(d.dialect(), params.text_fields),
        upsert(sql.write_rows(1)),
        // Bytes, not characters: SQLite's length() of TEXT counts characters.
        stats_columns(std::string("count(*), coalesce(sum(") +
                      (pg(d) ? "octet_length(m.value)" : "length(CAST(m.value AS BLOB))") +
                      "), 0)"),
        batch(make_batch_sql(sql)),
        vectors(d, params.recall),
        next_sweep_ms(steady_ms() + params.sweep_interval.count()) {
    if (!vector_store::valid_name(embeddings_collection))
      throw error(errc::invalid_argument, {"the embeddings collection name is not valid", {}});
  }
  static memory_params checked(memory_params p) {
    check_ttl(p.default_ttl, "memory_params.default_ttl");
    if (p.sweep_interval.count() < 0)
      throw error(errc::invalid_argument,
                  {"memory_params.sweep_interval must not be negative", {}});
    if (p.sweep_batch < 1)
      throw error(errc::invalid_argument, {"memory_params.sweep_batch must be at least 1", {}});
    detail::check_text_fields(p.text_fields);
    return p;
  }
  // The items' clock, in ms since the epoch.
  std::int64_t now_ms() const {
    memory_time t =
        params.clock ? params.clock()
                     : std::chrono::time_point_cast<std::chrono::milliseconds>(memory_clock::now());
    return t.time_since_epoch().count();
  }
  // The background sweep's clock, which a test's item clock does not move.
  static std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  // True once per sweep_interval, for the caller that is to start the background sweep.
  bool sweep_due() noexcept {
    if (params.sweep_interval.count() == 0) return false;
    std::int64_t due = next_sweep_ms.load(std::memory_order_relaxed);
    const std::int64_t now = steady_ms();
    return now >= due && next_sweep_ms.compare_exchange_strong(
                             due, now + params.sweep_interval.count(), std::memory_order_relaxed);
  }
  static bool pg(const database& db) { return db.dialect() == sql_dialect::postgresql; }

  bool embeddings_possible() const noexcept {
    return embeddings.load(std::memory_order_acquire) != embeddings_state::absent;
  }
  void embeddings_present() noexcept {
    embeddings.store(embeddings_state::present, std::memory_order_release);
  }
  // The probe's answer: a missing registry (a syntax-class error: no such table) or no row
  // means absent; any other failure assumes present, the state that is correct either way.
  void probed(error_code ec, bool found) noexcept {
    auto expected = embeddings_state::unknown;
    bool absent = (!ec && !found) || (ec && ec == condition::syntax);
    embeddings.compare_exchange_strong(
        expected, absent ? embeddings_state::absent : embeddings_state::present,
        std::memory_order_acq_rel);
  }

  const database db;
  const memory_params params;
  const detail::memory_sql sql;
  const std::string upsert;
  const std::string stats_columns;  // count and bytes of JSON text
  const std::shared_ptr<const batch_sql> batch;
  const vector_store vectors;
  std::atomic<bool> table_ready{false};
  std::atomic<bool> text_ready{false};
  std::atomic<embeddings_state> embeddings{embeddings_state::unknown};
  std::atomic<std::int64_t> next_sweep_ms;
};

namespace {
using memory_shared = detail::shared_state_t<memory>;
}  // namespace

namespace {

constexpr const char* probe_sql = "SELECT 1 FROM vector_collections WHERE name = ?";

const std::string& collection_name() {
  static const std::string name(memory::embeddings_collection);
  return name;
}

// FNV-1a over the value's JSON text, in hex: what an embedding records of the value it was
// stored with.
std::string value_digest(std::string_view text) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) out[static_cast<std::size_t>(i)] = hex[h & 15];
  return out;
}

constexpr const char* digest_field = "value_digest";

// The embedding's metadata: the value's digest, and one field "in:<prefix>" for every scope the
// key lies in (every prefix that ends with ':'), so that a recall in a scope is an equality
// filter of the vector store.
json embedding_metadata(const std::string& full_key, std::string_view text) {
  json meta = {{digest_field, value_digest(text)}};
  for (std::size_t i = full_key.find(':'); i != std::string::npos; i = full_key.find(':', i + 1))
    meta["in:" + full_key.substr(0, i + 1)] = true;
  return meta;
}

json scope_filter(const std::string& prefix) {
  if (prefix.empty()) return json::object();
  return json{{"in:" + prefix, true}};
}

// What a recall or an embedded store is checked for before anything runs.
void check_vector(const std::vector<float>& v, const std::string& what) {
  if (v.empty()) throw error(errc::invalid_argument, {what + " is empty", {}});
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i]))
      throw error(errc::invalid_argument,
                  {what + " has " + (std::isnan(v[i]) ? "a NaN" : "an infinity") + " at index " +
                       std::to_string(i),
                   {}});
  }
  // Zero, or a norm float32 cannot hold (a denormal's squared norm underflows to 0).
  if (vector_detail::inverse_norm(v.data(), v.size()) == 0)
    throw error(errc::invalid_argument,
                {what + " has no direction: it is zero, or its norm is out of float32's range "
                        "(a cosine distance needs one)",
                 {}});
}

void check_k(std::int64_t k) {
  if (k < 1)
    throw error(errc::invalid_argument,
                {"k must be at least 1 (got " + std::to_string(k) + ")", {}});
}

// The least key above every key that starts with `prefix` (a scope's keys end before it).
// REQUIRES: prefix ends with ':'.
std::string upper_bound_of(const std::string& prefix) {
  std::string upper = prefix;
  upper.back() = static_cast<char>(upper.back() + 1);
  return upper;
}

// '%', '_' and the escape character itself become literal in a LIKE pattern.
std::string escape_like(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// The conditions selecting keys of the view `prefix` that match `pattern`, with their
// parameters. A scope is a key range [prefix, prefix with its last byte raised): exact byte
// comparison, unlike LIKE, which ignores ASCII case. SQLite compares TEXT by its bytes;
// PostgreSQL by the column's collation, which need not be bytewise (under ICU's en-US ';'
// sorts before ':', so the range of scope "a", ['a:', 'a;'), would be empty): there the
// comparisons are made in the "C" collation. A key column declared COLLATE "C" (every table
// this library creates) keeps its index usable for them; one in the database's collation is
// still searched through the LIKE's fixed prefix when that collation is C, and scanned
// otherwise, correctly either way.
// The pattern "%" (every key: size, stats, search, keys() and clear() without a pattern) adds
// no LIKE to evaluate on every row: the range alone selects a scope's keys, and NOT NULL is
// all "%" asks of a key.
// `key` is the column: "m.key" in a read of items (memory_sql::from_items), "key" in a DELETE.
// The conditions, for a WHERE.
std::string where_matching(sql_dialect d, const std::string& prefix, const std::string& pattern,
                           params& args, const std::string& key = "m.key") {
  const bool every_key = pattern == "%";
  if (prefix.empty()) {
    if (every_key) return key + " IS NOT NULL";
    args.emplace_back(pattern);
    return key + " LIKE ? ESCAPE '\\'";
  }
  args.emplace_back(prefix);
  args.emplace_back(upper_bound_of(prefix));
  std::string range = d == sql_dialect::postgresql
                          ? key + " COLLATE \"C\" >= ? AND " + key + " COLLATE \"C\" < ?"
                          : key + " >= ? AND " + key + " < ?";
  if (every_key) return range;
  args.emplace_back(escape_like(prefix) + pattern);
  return range + " AND " + key + " LIKE ? ESCAPE '\\'";
}

// Keys in the order of their bytes, as SQLite sorts TEXT, on PostgreSQL too.
std::string order_by_key(sql_dialect d) {
  return d == sql_dialect::postgresql ? " ORDER BY m.key COLLATE \"C\"" : " ORDER BY m.key";
}

// The conditions of a time window, with their parameters (" AND ..." each).
std::string window_conditions(const time_window& w, params& args) {
  std::string sql;
  auto bound = [&](const std::optional<memory_time>& t, const char* condition) {
    if (!t) return;
    sql += condition;
    args.emplace_back(t->time_since_epoch().count());
  };
  bound(w.created_after, " AND t.created_ms > ?");
  bound(w.created_before, " AND t.created_ms < ?");
  bound(w.updated_after, " AND t.updated_ms > ?");
  bound(w.updated_before, " AND t.updated_ms < ?");
  return sql;
}

// The live items of a view that match a pattern and a window: " WHERE ..." and its parameters.
std::string where_items(const memory_shared& s, const std::string& prefix,
                        const std::string& pattern, const time_window& w, std::int64_t now,
                        params& args, const std::string& key = "m.key") {
  std::string sql = where_matching(s.db.dialect(), prefix, pattern, args, key);
  sql += std::string(" AND ") + detail::memory_sql::live();
  args.emplace_back(now);
  return sql + window_conditions(w, args);
}

// The JSON text of a value to store, after its key and value are checked (json.hpp): nothing
// reaches the table that would read back as something else, or not at all.
// Written into `text` (replacing what it held, in its capacity: a batch reuses one string per
// row of a chunk).
void encode_into(const json& v, const std::string& key, std::string& text) {
  if (!valid_utf8(key))
    throw error(errc::invalid_argument, {"the key " + printable(key) + " is not valid UTF-8", {}});
  if (auto why = json_storage_problem(v))
    throw error(errc::invalid_argument, {"the value of key " + printable(key) + " " + *why, {}});
  try {
    text.clear();
    // What json::dump() does, into `text` instead of a new string.
    nlohmann::detail::serializer<json> out(nlohmann::detail::output_adapter<char>(text), ' ');
    out.dump(v, /*pretty_print=*/false, /*ensure_ascii=*/false, /*indent_step=*/0);
  } catch (const json::exception& e) {
    throw error(
        errc::invalid_argument,
        {"the value of key " + printable(key) + " cannot be written as JSON: " + e.what(), {}});
  }
}
std::string encode(const json& v, const std::string& key) {
  std::string text;
  encode_into(v, key, text);
  return text;
}

// Decodes a stored value; a value that is not JSON, or too deep to decode, is reported with its
// key, never dropped.
json decode(const value& stored, const std::string& key, error_code& ec, diagnostics* diag) {
  if (stored.is_null()) return json(nullptr);
  const std::string* text = stored.is_text() ? &stored.as_text() : nullptr;
  std::string from_blob;
  if (!text && stored.is_blob()) {
    const auto& b = stored.as_blob().bytes;
    from_blob.assign(reinterpret_cast<const char*>(b.data()), b.size());
    text = &from_blob;
  }
  json_text_problem problem;
  if (text) {
    if (std::optional<json> j = parse_json(*text, problem)) return std::move(*j);
  }
  ec = make_error_code(errc::decode_error);
  if (diag) {
    diag->clear();  // a caller's diagnostics may hold an earlier failure
    diag->message = "the stored value of key " + printable(key) +
                    (problem.too_deep ? " is " + problem.reason
                                      : " is not valid JSON" +
                                            (text ? ": " + sql_excerpt(*text) : std::string()));
  }
  return json();
}

// The live ones of load_chunk keys, then now: key, value, ttl_ms.
std::string in_list_sql() {
  std::string sql = std::string("SELECT m.key, m.value, t.ttl_ms ") +
                    detail::memory_sql::from_items() + " WHERE m.key IN (";
  for (std::size_t i = 0; i < memory::load_chunk; ++i) sql += i ? ",?" : "?";
  return sql + ") AND " + detail::memory_sql::live();
}
const std::string& batch_load_sql() {
  static const std::string sql = in_list_sql();
  return sql;
}

// The parameters of one chunk of a batch_load; short chunks repeat their last key so that
// every chunk shares one prepared statement.
params chunk_params(const std::vector<std::string>& keys, std::size_t from,
                    const std::string& prefix, std::int64_t now) {
  params args;
  args.reserve(memory::load_chunk + 1);
  std::size_t to = std::min(keys.size(), from + memory::load_chunk);
  for (std::size_t i = from; i < to; ++i) args.emplace_back(prefix + keys[i]);
  while (args.size() < memory::load_chunk) args.push_back(args.back());
  args.emplace_back(now);
  return args;
}

// Rows (key, value, ttl_ms, ...) read into `out`; the full keys of those with a time to live
// into `to_refresh`, unless it is null (the memory does not refresh on read).
void collect(std::vector<row>& rows, const std::string& prefix, memory::loaded& out,
             json* to_refresh, error_code& ec, diagnostics* diag) {
  for (row& r : rows) {
    std::string key = r[0].as_text().substr(prefix.size());
    json j = decode(r[1], key, ec, diag);
    if (ec) return;
    if (to_refresh && !r[2].is_null()) to_refresh->push_back(r[0].as_text());
    out.emplace(std::move(key), std::move(j));
  }
}

// ---- the bodies of writes that keep embeddings in step -----------------------------------------
// Each may run more than once (see database::transaction): they only read what they capture.

// A value without an embedding: the key's embedding, if any, goes. `row`: the parameters of
// memory_sql::write_rows(1).
vector_transaction_body plain_store_body(std::string upsert, params row) {
  return [upsert = std::move(upsert), row = std::move(row)](session& s, vector_writes& w) {
    s.execute(upsert, row);
    w.erase(collection_name(), {row[0].as_text()});
  };
}

// A value with its embedding. The first embedding creates the collection with its dimension.
vector_transaction_body embedded_store_body(std::string upsert, std::string key, params row,
                                            std::shared_ptr<const std::vector<float>> embedding) {
  return [upsert = std::move(upsert), key = std::move(key), row = std::move(row),
          embedding = std::move(embedding)](session& s, vector_writes& w) {
    const std::string& full_key = row[0].as_text();
    const std::string& text = row[1].as_text();
    const std::string& name = collection_name();
    auto info = w.find(name);
    if (!info)
      w.create_collection(name, embedding->size(), metric::cosine);
    else if (info->dim != embedding->size())
      throw error(
          errc::dimension_mismatch,
          {"the memory's embeddings have dimension " + std::to_string(info->dim) +
               ", but the embedding of key '" + key + "' has " + std::to_string(embedding->size()),
           {}});
    s.execute(upsert, row);
    vector_store::items items;
    items.push_back(vector_item{full_key, *embedding, embedding_metadata(full_key, text)});
    w.upsert(name, std::move(items));
  };
}

vector_transaction_body erase_body(std::string sql, params args,
                                   std::shared_ptr<std::int64_t> erased) {
  return [sql = std::move(sql), args = std::move(args), erased = std::move(erased)](
             session& s, vector_writes& w) {
    *erased = s.execute(sql, args).rows_affected;
    w.erase(collection_name(), {args[0].as_text()});
  };
}

// DELETE ... RETURNING (SQLite 3.35 and later, PostgreSQL) names the keys whose embeddings go.
vector_transaction_body clear_body(std::string sql, params args,
                                   std::shared_ptr<std::int64_t> removed) {
  return [sql = std::move(sql) + " RETURNING key", args = std::move(args),
          removed = std::move(removed)](session& s, vector_writes& w) {
    result r = s.execute(sql, args);
    std::vector<std::string> keys;
    keys.reserve(r.rows.size());
    for (const row& rw : r.rows) keys.push_back(rw[0].as_text());
    *removed = static_cast<std::int64_t>(keys.size());
    w.erase(collection_name(), keys);
  };
}

// ---- recall ------------------------------------------------------------------------------------

// Whether a key's current value `v` is still the value embedding `m` was stored with.
bool embedding_is_current(const vector_match& m, const value& v) {
  if (!v.is_text()) return false;
  auto digest = m.metadata.find(digest_field);
  return digest != m.metadata.end() && digest->is_string() &&
         digest->get_ref<const std::string&>() == value_digest(v.as_text());
}

// The recalled memories among `found` (nearest first) whose key still holds the value their
// embedding was stored with, given the current values in `rows`. `stale` counts the others.
memory::recollection pick_recalled(const vector_store::matches& found, std::vector<row>& rows,
                                   const std::string& prefix, std::size_t& stale, error_code& ec,
                                   diagnostics* diag) {
  std::unordered_map<std::string, const value*> current;
  current.reserve(rows.size());
  for (row& r : rows) current.emplace(r[0].as_text(), &r[1]);
  memory::recollection out;
  out.reserve(found.size());
  stale = 0;
  for (const vector_match& m : found) {
    auto it = current.find(m.id);
    if (it == current.end() || !embedding_is_current(m, *it->second)) {
      ++stale;
      continue;
    }
    std::string key = m.id.substr(prefix.size());
    json j = decode(*it->second, key, ec, diag);
    if (ec) return {};
    out.push_back(recalled{std::move(key), std::move(j), m.distance});
  }
  return out;
}

params keys_of(const vector_store::matches& found) {
  json ids = json::array();
  for (const vector_match& m : found) ids.push_back(m.id);
  return {ids.dump()};
}

// How many neighbours the next round asks for, or 0 when this round's answer is final: it has
// k memories, or the search found fewer than it was asked for (there are no more).
std::int64_t next_round(std::size_t recalled, std::size_t found, std::int64_t asked,
                        std::int64_t k) {
  if (recalled >= static_cast<std::size_t>(k) || found < static_cast<std::size_t>(asked)) return 0;
  return asked * 2;
}

// Items per INSERT of a batch_store: 512 bound values, far under either backend's limit. A
// power of two (see batch_sql).
constexpr std::size_t rows_per_insert = 128;
static_assert((rows_per_insert & (rows_per_insert - 1)) == 0);

std::shared_ptr<const batch_sql> make_batch_sql(const detail::memory_sql& m) {
  auto sql = std::make_shared<batch_sql>();
  for (std::size_t rows = 1; rows <= rows_per_insert; rows *= 2)
    sql->sized.push_back(m.write_rows(rows));
  sql->one_row_per_key = m.dialect == sql_dialect::postgresql;
  return sql;
}

// What a batch_store writes: its items under the view's prefix, each with the same time.
struct batch_input {
  std::shared_ptr<const memory::items> values;
  std::string prefix;
  std::int64_t now = 0;
  value ttl;
  std::shared_ptr<const batch_sql> sql;
};

// The body of a batch_store: rows_per_insert items per statement, bound one chunk at a time,
// so nothing beyond the items and one chunk is held however many there are; the later value of
// a key given twice wins (see batch_sql).
void batch_store_rows(session& s, const batch_input& in) {
  constexpr std::size_t per_row = detail::memory_sql::params_per_row;
  const batch_sql& sql = *in.sql;
  // The bound values of a full chunk: a key's and a value's text rewritten in place chunk after
  // chunk, and the same time in every row.
  params args;
  args.reserve(per_row * rows_per_insert);
  for (std::size_t r = 0; r < rows_per_insert; ++r) {
    args.emplace_back(std::string());
    args.emplace_back(std::string());
    args.emplace_back(in.now);
    args.push_back(in.ttl);
  }
  auto text = [&](std::size_t i) -> std::string& { return std::get<std::string>(args[i].raw()); };
  std::size_t rows = 0;
  std::unordered_set<std::string_view> chunk_keys;  // with one_row_per_key
  params part;  // the values of a shorter statement, moved out of `args` and back
  auto write_chunk = [&] {
    if (rows == rows_per_insert) {
      s.execute(sql.sized.back(), args);
    } else {
      std::size_t from = 0;
      for (std::size_t i = sql.sized.size(); i-- > 0;) {
        const std::size_t n = std::size_t{1} << i;
        if (!(rows & n)) continue;
        part.resize(per_row * n);
        for (std::size_t j = 0; j < per_row * n; ++j) std::swap(part[j], args[per_row * from + j]);
        s.execute(sql.sized[i], part);
        for (std::size_t j = 0; j < per_row * n; ++j) std::swap(part[j], args[per_row * from + j]);
        from += n;
      }
    }
    rows = 0;
    chunk_keys.clear();
  };
  for (const auto& [key, v] : *in.values) {
    if (sql.one_row_per_key && !chunk_keys.insert(key).second) {
      write_chunk();
      chunk_keys.insert(key);
    }
    text(per_row * rows).assign(in.prefix).append(key);
    encode_into(v, key, text(per_row * rows + 1));
    if (++rows == rows_per_insert) write_chunk();
  }
  if (rows) write_chunk();
}

// What a restore writes: its items under the view's prefix, with the time it runs at.
struct restore_input {
  std::shared_ptr<const std::vector<memory_item>> items;
  std::string prefix;
  std::int64_t now = 0;
  std::string value_sql, times_sql;  // memory_sql::restore_value and restore_times
};

// The body of a restore: each item's value, then its times (memory_sql::restore_times).
void restore_rows(session& s, const restore_input& in) {
  auto ms = [](const std::optional<memory_time>& t) {
    return t ? value(t->time_since_epoch().count()) : value(null);
  };
  std::string text;
  for (const memory_item& item : *in.items) {
    std::string full_key = in.prefix + item.key;
    encode_into(item.value, item.key, text);
    s.execute(in.value_sql, {full_key, text});
    value expires = item.expires ? ms(item.expires)
                    : item.ttl   ? value(in.now + item.ttl->count())
                                 : value(null);
    s.execute(in.times_sql, {std::move(full_key), ms(item.created), in.now,
                             item.updated ? ms(item.updated) : value(in.now), std::move(expires),
                             item.ttl ? value(item.ttl->count()) : value(null)});
  }
}

// ---- how operations run ------------------------------------------------------------------------
// Each operation is written once, as a chain of steps on a detail::runner (common/op_runner.hpp):
// inline for the sync and error_code& forms, through the async API with every continuation on
// the caller's executor for the async form.

template <class R>
using step_result = detail::step_result<R>;

// The state of one operation: the memory's shared state (let go before the caller hears the
// end) and the view's prefix.
template <class T>
struct memory_op : detail::operation<std::shared_ptr<memory_shared>, T> {
  using detail::operation<std::shared_ptr<memory_shared>, T>::operation;
  std::string prefix;
};

void start_background_sweep(const std::shared_ptr<memory_shared>& st);

// The memory's schema (memory_sql::setup), in one transaction.
transaction_body setup_body(const detail::memory_sql& sql) {
  return [probe = sql.setup_probe, setup = sql.setup](session& s) {
    result complete = s.execute(probe);
    if (complete.rows.at(0)[0].as_int() == 1) return;
    for (const std::string& statement : setup) s.execute(statement);
  };
}

// Runs `next(op)` once the table exists and whether the embeddings collection exists is known
// (see memory::shared): the first use of a memory creates the tables, and asks. Several callers
// may do so at once: CREATE ... IF NOT EXISTS makes that harmless. An async first use does not
// wait for the table: waiting would block the caller's executor, and a caller running on the
// engine's writer thread (a plain callback of a write) would wait for itself forever.
// Once it has, an operation may start the background sweep (memory::shared::sweep_due).
template <class Op>
void with_table(std::shared_ptr<Op> op, void (*next)(std::shared_ptr<Op>)) {
  if (op->st->table_ready.load(std::memory_order_acquire)) {
    if (op->st->sweep_due()) start_background_sweep(op->st);
    return next(std::move(op));
  }
  // Whether the embeddings collection exists, then next.
  auto probe_embeddings = [](std::shared_ptr<Op> o, void (*then)(std::shared_ptr<Op>)) {
    o->run.fetch_one(o->st->db, probe_sql, {collection_name()},
                     [o, then](step_result<std::optional<row>> probe) mutable {
                       // Cancelled, the probe answered nothing: the next operation asks again.
                       if (probe.ec == errc::cancelled)
                         return o->fail_with(probe.ec, std::move(probe.diag));
                       o->st->probed(probe.ec, probe.value.has_value());
                       o->st->table_ready.store(true, std::memory_order_release);
                       then(std::move(o));
                     });
  };
  // A read first: a memory whose schema is complete (every use but a database's first) needs
  // no write, so a read-only database or user can read it.
  op->run.fetch_one(op->st->db, op->st->sql.setup_probe, {},
                    [op, next, probe_embeddings](step_result<std::optional<row>> r) mutable {
                      if (r.ec == errc::cancelled) return op->fail_with(r.ec, std::move(r.diag));
                      if (!r.ec && r.value && (*r.value)[0].as_int() == 1)
                        return probe_embeddings(std::move(op), next);
                      op->run.transaction(
                          op->st->db, setup_body(op->st->sql),
                          [op, next, probe_embeddings](step_result<std::monostate> t) mutable {
                            if (t.ec) return op->fail_with(t.ec, std::move(t.diag));
                            probe_embeddings(std::move(op), next);
                          });
                    });
}

// A vector_store transaction as a step of `op`.
template <class Op, class Next>
void vector_transaction(const std::shared_ptr<Op>& op, vector_transaction_body body, Next&& next) {
  const vector_store& vs = op->st->vectors;
  op->run.template step<std::monostate>(
      [&](error_code& ec, diagnostics& d) { vs.transaction(std::move(body), ec, d); },
      [&](diagnostics& d, auto h) { vs.async_transaction(std::move(body), d, std::move(h)); },
      std::forward<Next>(next));
}

// The two ways a write of the value table goes. Once embeddings may exist, through a
// vector_store transaction whose body keeps the key's embedding in step (and sets *affected to
// the rows it changed); before, as the single statement it always was. `done(op, rows)` ends
// the operation.
template <class Op>
void vector_write(std::shared_ptr<Op> op, vector_transaction_body body,
                  std::shared_ptr<std::int64_t> affected, void (*done)(Op&, std::int64_t)) {
  vector_transaction(op, std::move(body), [op, affected, done](step_result<std::monostate> r) {
    if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
    done(*op, affected ? *affected : 0);
  });
}
template <class Op>
void plain_write(std::shared_ptr<Op> op, std::string sql, params args,
                 void (*done)(Op&, std::int64_t)) {
  op->run.execute(op->st->db, std::move(sql), std::move(args), [op, done](step_result<result> r) {
    if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
    done(*op, r.value.rows_affected);
  });
}

// A write of many items in one transaction (batch_store, restore) that ends `op`: rows(s, *in)
// writes them. Once embeddings may exist, it runs as a vector_store transaction that also
// removes the embeddings of the keys (under in->prefix) key_of(*in, i), i < count, a chunk of
// keys at a time so that a big batch is not copied whole.
template <class Op, class Input>
void write_items(std::shared_ptr<Op> op, std::shared_ptr<const Input> in, std::size_t count,
                 void (*rows)(session&, const Input&),
                 const std::string& (*key_of)(const Input&, std::size_t)) {
  auto done = [op](step_result<std::monostate> r) {
    if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
    op->succeed({});
  };
  if (!op->st->embeddings_possible())
    return op->run.transaction(
        op->st->db, [in, rows](session& s) { rows(s, *in); }, std::move(done));
  vector_transaction_body body = [in, count, rows, key_of](session& s, vector_writes& w) {
    rows(s, *in);
    constexpr std::size_t chunk = 1024;
    std::vector<std::string> keys;
    keys.reserve(std::min(chunk, count));
    for (std::size_t i = 0; i < count; ++i) {
      keys.push_back(in->prefix + key_of(*in, i));
      if (keys.size() == chunk || i + 1 == count) {
        w.erase(collection_name(), keys);
        keys.clear();
      }
    }
  };
  vector_transaction(op, std::move(body), std::move(done));
}

// ---- the operations ----------------------------------------------------------------------------

// A time of memory_meta; one another program wrote as something else than an integer is a
// decode_error (thrown: it ends the operation, see op_runner.hpp).
std::optional<memory_time> time_of(const value& v) {
  if (v.is_null()) return std::nullopt;
  if (!v.is_int())
    throw error(errc::decode_error,
                {"a time in memory_meta is not an integer of milliseconds", {}});
  return memory_time(std::chrono::milliseconds(v.as_int()));
}

// Starts the time to live of `keys` (a JSON array of the full keys read that have one; a read
// collects them only when the memory refreshes on read) again from now, then `next(now)`; with
// no keys, `next(0)` at once.
template <class Op, class Next>
void refresh_then(const std::shared_ptr<Op>& op, json keys, Next&& next) {
  if (keys.empty()) return next(std::int64_t{0});
  const std::int64_t now = op->st->now_ms();
  op->run.execute(op->st->db, op->st->sql.refresh, {now, keys.dump(), now},
                  [op, now, next = std::forward<Next>(next)](step_result<result> r) mutable {
                    if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
                    next(now);
                  });
}

struct store_op : memory_op<std::monostate> {
  using memory_op::memory_op;
  std::string key;
  json value;
  memory::ttl ttl;
  std::string text;

  static void start(std::shared_ptr<store_op> op) {
    check_ttl(op->ttl);
    op->text = encode(op->value, op->key);
    with_table(op, &store_op::write);
  }
  static void write(std::shared_ptr<store_op> op) {
    auto done = [](store_op& o, std::int64_t) { o.succeed({}); };
    params row{op->prefix + op->key, std::move(op->text), op->st->now_ms(),
               ttl_value(op->ttl, op->st->params)};
    if (op->st->embeddings_possible())
      return vector_write(op, plain_store_body(op->st->upsert, std::move(row)), nullptr, +done);
    plain_write(op, op->st->upsert, std::move(row), +done);
  }
};

struct store_embedded_op : memory_op<std::monostate> {
  using memory_op::memory_op;
  std::string key;
  json value;
  std::vector<float> embedding;
  memory::ttl ttl;
  std::string text;

  static void start(std::shared_ptr<store_embedded_op> op) {
    check_ttl(op->ttl);
    check_vector(op->embedding, "the embedding of key '" + op->key + "'");
    op->text = encode(op->value, op->key);
    with_table(op, &store_embedded_op::write);
  }
  static void write(std::shared_ptr<store_embedded_op> op) {
    params row{op->prefix + op->key, std::move(op->text), op->st->now_ms(),
               ttl_value(op->ttl, op->st->params)};
    auto body =
        embedded_store_body(op->st->upsert, op->key, std::move(row),
                            std::make_shared<const std::vector<float>>(std::move(op->embedding)));
    vector_transaction(op, std::move(body), [op](step_result<std::monostate> r) {
      if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
      op->st->embeddings_present();
      op->succeed({});
    });
  }
};

// A read of one key's row: `sql` (memory_sql::load or load_item) with the key and now, then
// `found(op, row)` for a live key (absent: the operation ends with T{}). Its ttl_ms is the
// row's column `ttl_column`; a key with one is refreshed first when the memory refreshes on
// read, and `found` is told when (0: not refreshed).
template <class T>
struct key_read_op : memory_op<T> {
  using memory_op<T>::memory_op;
  std::string key;
  const std::string* sql = nullptr;
  std::size_t ttl_column = 0;
  void (*found)(key_read_op&, row&, std::int64_t refreshed_at) = nullptr;
  row hit;

  static void start(std::shared_ptr<key_read_op> op) { with_table(op, &key_read_op::read); }
  static void read(std::shared_ptr<key_read_op> op) {
    op->run.fetch_one(op->st->db, *op->sql, {op->prefix + op->key, op->st->now_ms()},
                      [op](step_result<std::optional<row>> r) {
                        if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
                        if (!r.value) return op->succeed(T{});
                        op->hit = std::move(*r.value);
                        json keys = json::array();
                        if (op->st->params.refresh_on_read && !op->hit[op->ttl_column].is_null())
                          keys.push_back(op->prefix + op->key);
                        refresh_then(op, std::move(keys), [op](std::int64_t refreshed_at) {
                          op->found(*op, op->hit, refreshed_at);
                        });
                      });
  }
};

// load: value, ttl_ms
void loaded_value(key_read_op<std::optional<json>>& op, row& r, std::int64_t) {
  error_code ec;
  diagnostics diag;
  json j = decode(r[0], op.key, ec, &diag);
  if (ec) return op.fail_with(ec, std::move(diag));
  op.succeed(std::move(j));
}
// load_item: value, created_ms, updated_ms, expires_ms, ttl_ms
void loaded_item(key_read_op<std::optional<memory_item>>& op, row& r, std::int64_t refreshed_at) {
  error_code ec;
  diagnostics diag;
  memory_item item;
  item.value = decode(r[0], op.key, ec, &diag);
  if (ec) return op.fail_with(ec, std::move(diag));
  item.key = op.key;
  item.created = time_of(r[1]);
  item.updated = time_of(r[2]);
  item.expires = time_of(r[3]);
  // The ttl column holds milliseconds, read as time_of reads a time (and refused the same way).
  if (std::optional<memory_time> ttl = time_of(r[4])) {
    item.ttl = ttl->time_since_epoch();
    if (refreshed_at) item.expires = *ttl + std::chrono::milliseconds(refreshed_at);
  }
  op.succeed(std::move(item));
}
using load_op = key_read_op<std::optional<json>>;
using load_item_op = key_read_op<std::optional<memory_item>>;

struct erase_op : memory_op<bool> {
  using memory_op::memory_op;
  std::string key;

  static void start(std::shared_ptr<erase_op> op) { with_table(op, &erase_op::write); }
  static void write(std::shared_ptr<erase_op> op) {
    auto done = [](erase_op& o, std::int64_t rows) { o.succeed(rows > 0); };
    params args{op->prefix + op->key, op->st->now_ms()};
    if (op->st->embeddings_possible()) {
      auto erased = std::make_shared<std::int64_t>(0);
      return vector_write(op, erase_body(op->st->sql.erase, std::move(args), erased), erased,
                          +done);
    }
    plain_write(op, op->st->sql.erase, std::move(args), +done);
  }
};

struct exists_op : memory_op<bool> {
  using memory_op::memory_op;
  std::string key;

  static void start(std::shared_ptr<exists_op> op) { with_table(op, &exists_op::read); }
  static void read(std::shared_ptr<exists_op> op) {
    op->run.fetch_one(op->st->db, op->st->sql.exists, {op->prefix + op->key, op->st->now_ms()},
                      [op](step_result<std::optional<row>> r) {
                        if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
                        op->succeed(r.value.has_value());
                      });
  }
};

struct keys_op : memory_op<std::vector<std::string>> {
  using memory_op::memory_op;
  std::string pattern;
  time_window window;

  static void start(std::shared_ptr<keys_op> op) { with_table(op, &keys_op::read); }
  static void read(std::shared_ptr<keys_op> op) {
    params args;
    std::string sql =
        std::string("SELECT m.key ") + detail::memory_sql::from_items() + " WHERE " +
        where_items(*op->st, op->prefix, op->pattern, op->window, op->st->now_ms(), args) +
        order_by_key(op->st->db.dialect());
    op->run.fetch_all(op->st->db, std::move(sql), std::move(args),
                      [op](step_result<database::rows> r) {
                        if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
                        std::vector<std::string> out;
                        out.reserve(r.value.size());
                        for (const row& rw : r.value)
                          out.push_back(rw[0].as_text().substr(op->prefix.size()));
                        op->succeed(std::move(out));
                      });
  }
};

// The scope paths of the view's live keys, cut to max_depth names, each once, sorted.
struct scopes_op : memory_op<std::vector<std::string>> {
  using memory_op::memory_op;
  std::string within;  // the prefix asked for, as a scope path ("" for all)
  std::size_t max_depth = 0;

  static void start(std::shared_ptr<scopes_op> op) {
    if (op->max_depth == 0)
      throw error(errc::invalid_argument, {"scopes: max_depth must be at least 1", {}});
    if (!valid_utf8(op->within))
      throw error(errc::invalid_argument,
                  {"scopes: the prefix " + printable(op->within) + " is not valid UTF-8", {}});
    with_table(op, &scopes_op::read);
  }
  static void read(std::shared_ptr<scopes_op> op) {
    params args;
    const std::string range = op->within.empty() ? op->prefix : op->prefix + op->within + ":";
    std::string sql = std::string("SELECT m.key ") + detail::memory_sql::from_items() + " WHERE " +
                      where_items(*op->st, range, "%", {}, op->st->now_ms(), args);
    op->run.fetch_all(op->st->db, std::move(sql), std::move(args),
                      [op](step_result<database::rows> r) {
                        if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
                        std::set<std::string> found;
                        for (const row& rw : r.value) {
                          std::string_view key = rw[0].as_text();
                          key.remove_prefix(op->prefix.size());
                          std::size_t end = key.rfind(':');
                          if (end == std::string_view::npos) continue;  // in no scope
                          std::size_t cut = 0, depth = 0;
                          while (cut < end && depth < op->max_depth) {
                            cut = key.find(':', cut + (depth ? 1 : 0));
                            ++depth;
                          }
                          found.emplace(key.substr(0, std::min(cut, end)));
                        }
                        op->succeed(std::vector<std::string>(found.begin(), found.end()));
                      });
  }
};

// ---- search ------------------------------------------------------------------------------------

// A result being ranked, and whether its key has a time to live (refresh_on_read).
struct candidate {
  search_hit hit;
  std::string full_key;
  bool has_ttl = false;
};

// Rows key, value, ttl_ms, created_ms, updated_ms[, score] as candidates.
std::vector<candidate> candidates_of(std::vector<row>& rows, const std::string& prefix,
                                     error_code& ec, diagnostics& diag) {
  std::vector<candidate> out;
  out.reserve(rows.size());
  for (row& r : rows) {
    candidate c;
    c.full_key = r[0].as_text();
    c.hit.key = c.full_key.substr(prefix.size());
    c.hit.value = decode(r[1], c.hit.key, ec, &diag);
    if (ec) return {};
    c.has_ttl = !r[2].is_null();
    c.hit.created = time_of(r[3]);
    c.hit.updated = time_of(r[4]);
    if (r.size() > 5) c.hit.score = r[5].as_double();
    out.push_back(std::move(c));
  }
  return out;
}

// Text and vector lists fused by reciprocal rank: ranks from 1, best first, ties by key.
std::vector<candidate> fuse(std::vector<candidate> text, std::vector<candidate> vec) {
  std::map<std::string, candidate> by_key;
  auto add = [&](std::vector<candidate>& list, bool is_text) {
    for (std::size_t i = 0; i < list.size(); ++i) {
      auto [it, fresh] = by_key.try_emplace(list[i].hit.key, std::move(list[i]));
      if (fresh) it->second.hit.score = 0;
      it->second.hit.score += 1.0 / (memory::rrf_k + static_cast<double>(i + 1));
      (is_text ? it->second.hit.matched_text : it->second.hit.matched_vector) = true;
    }
  };
  add(text, true);
  add(vec, false);
  std::vector<candidate> out;
  out.reserve(by_key.size());
  for (auto& [key, c] : by_key) out.push_back(std::move(c));
  std::stable_sort(out.begin(), out.end(), [](const candidate& a, const candidate& b) {
    return a.hit.score > b.hit.score;
  });
  return out;
}

struct search_op : memory_op<memory::search_results> {
  using memory_op::memory_op;
  search_query query;
  std::int64_t now = 0;
  std::string words;              // the text query as the backend's query text
  std::string conditions;         // the view, liveness, window and filter: " AND ..."
  params condition_args;          // their parameters
  bool unfiltered = false;        // no filter on the values: text ranks on its index alone
  std::string ranked_conditions;  // the view, liveness and window on the text index's rows
  params ranked_args;
  std::int64_t need = 0;   // offset + limit: what each signal of a fused search contributes
  std::int64_t asked = 0;  // neighbours asked of the vector store this round
  std::vector<candidate> text_hits;

  static void start(std::shared_ptr<search_op> op) {
    // A malformed query is refused before the table is touched.
    prepare(*op);
    with_table(op, &search_op::route);
  }
  static void route(std::shared_ptr<search_op> op) {
    if (!op->query.text.empty()) return with_text_index(op);
    if (!op->query.vector.empty()) return vector_round(op);
    filter_only(op);
  }

  static void filter_only(std::shared_ptr<search_op> op) {
    params args = op->condition_args;
    args.emplace_back(op->query.limit);
    args.emplace_back(op->query.offset);
    fetch(op,
          std::string("SELECT m.key, m.value, t.ttl_ms, t.created_ms, t.updated_ms ") +
              detail::memory_sql::from_items() + " WHERE " + op->conditions.substr(5) +
              order_by_key(op->st->db.dialect()) + " LIMIT ? OFFSET ?",
          std::move(args), [](std::shared_ptr<search_op> o, std::vector<candidate> found) {
            finish(std::move(o), std::move(found));
          });
  }

  // The text index exists (memory_sql::build_text_index) before the first text search reads it.
  static void with_text_index(std::shared_ptr<search_op> op) {
    if (op->st->text_ready.load(std::memory_order_acquire)) return text_search(op);
    const detail::memory_sql& sql = op->st->sql;
    transaction_body body = [state = sql.text_index_state(), build = sql.build_text_index(),
                             want = sql.text_fields_json()](session& s) {
      s.execute(state[0]);
      result r = s.execute(state[1]);
      if (r.rows.size() == 1 && r.rows[0][0].is_text() && r.rows[0][0].as_text() == want) return;
      for (const std::string& statement : build) s.execute(statement);
    };
    op->run.transaction(op->st->db, std::move(body), [op](step_result<std::monostate> r) {
      if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
      op->st->text_ready.store(true, std::memory_order_release);
      text_search(op);
    });
  }
  static void text_search(std::shared_ptr<search_op> op) {
    const detail::memory_sql& sql = op->st->sql;
    const bool fused = !op->query.vector.empty();
    const bool pg = op->st->db.dialect() == sql_dialect::postgresql;
    params args{op->words};
    for (const value& v : op->unfiltered ? op->ranked_args : op->condition_args) args.push_back(v);
    args.emplace_back(fused ? op->need : op->query.limit);
    args.emplace_back(fused ? 0 : op->query.offset);
    const std::string by_m_key = order_by_key(op->st->db.dialect()).substr(10);
    std::string text;
    if (op->unfiltered) {
      // One page of matches ranked on the index, then the values of that page only.
      const std::string key = sql.text_key();
      const std::string by_key = key + (pg ? " COLLATE \"C\"" : "");
      text = "SELECT m.key, m.value, t.ttl_ms, t.created_ms, t.updated_ms, r.score FROM (SELECT " +
             key + " AS key, " + sql.text_score() + " AS score " + sql.text_ranked_from() +
             " WHERE " + sql.text_condition() + op->ranked_conditions + " ORDER BY score DESC, " +
             by_key + " LIMIT ? OFFSET ?) AS r JOIN memory m ON m.key = r.key " +
             "LEFT JOIN memory_meta t ON t.key = m.key ORDER BY r.score DESC, " + by_m_key;
    } else {
      text = "SELECT m.key, m.value, t.ttl_ms, t.created_ms, t.updated_ms, " + sql.text_score() +
             " AS score " + sql.text_from() + " WHERE " + sql.text_condition() + op->conditions +
             " ORDER BY score DESC, " + by_m_key + " LIMIT ? OFFSET ?";
    }
    fetch(op, std::move(text), std::move(args),
          [fused](std::shared_ptr<search_op> o, std::vector<candidate> found) {
            for (candidate& c : found) c.hit.matched_text = true;
            if (!fused) return finish(std::move(o), std::move(found));
            o->text_hits = std::move(found);
            vector_round(std::move(o));
          });
  }

  // Rounds of (nearest neighbours, then which of them are live items that pass the filter)
  // until `need` are found or there are no more, as recall does.
  static void vector_round(std::shared_ptr<search_op> op) {
    const vector_store& vs = op->st->vectors;
    const std::string& name = collection_name();
    const json scope = scope_filter(op->prefix);
    op->run.step<vector_store::matches>(
        [&](error_code& ec, diagnostics& d) {
          return vs.search(name, op->query.vector, op->asked, scope, search_mode::approximate, ec,
                           d);
        },
        [&](diagnostics& d, auto h) {
          vs.async_search(name, op->query.vector, op->asked, scope, search_mode::approximate, d,
                          std::move(h));
        },
        [op](step_result<vector_store::matches> r) {
          if (r.ec == errc::not_found) return vector_done(op, {});  // no embedding stored yet
          if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
          op->st->embeddings_present();
          if (r.value.empty()) return vector_done(op, {});
          vector_values(op, std::move(r.value));
        });
  }
  static void vector_values(std::shared_ptr<search_op> op, vector_store::matches found) {
    params args = keys_of(found);
    for (const value& v : op->condition_args) args.push_back(v);
    std::string sql = std::string("SELECT m.key, m.value, t.ttl_ms, t.created_ms, t.updated_ms ") +
                      detail::memory_sql::from_items() + " WHERE m.key " +
                      op->st->sql.in_json_array() + op->conditions;
    auto found_ptr = std::make_shared<vector_store::matches>(std::move(found));
    op->run.fetch_all(op->st->db, std::move(sql), std::move(args),
                      [op, found_ptr](step_result<database::rows> r) {
                        if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
                        std::unordered_map<std::string, row*> current;
                        for (row& rw : r.value) current.emplace(rw[0].as_text(), &rw);
                        std::vector<row> ranked;
                        std::vector<float> distances;
                        for (const vector_match& m : *found_ptr) {
                          auto it = current.find(m.id);
                          if (it == current.end() || !embedding_is_current(m, (*it->second)[1]))
                            continue;
                          ranked.push_back(std::move(*it->second));
                          distances.push_back(m.distance);
                          current.erase(it);
                        }
                        error_code ec;
                        diagnostics diag;
                        std::vector<candidate> hits;
                        hits = candidates_of(ranked, op->prefix, ec, diag);
                        if (ec) return op->fail_with(ec, std::move(diag));
                        for (std::size_t i = 0; i < hits.size(); ++i) {
                          hits[i].hit.score = 1.0 - static_cast<double>(distances[i]);
                          hits[i].hit.matched_vector = true;
                        }
                        op->asked = next_round(hits.size(), found_ptr->size(), op->asked, op->need);
                        if (op->asked != 0) return vector_round(op);
                        vector_done(op, std::move(hits));
                      });
  }
  static void vector_done(std::shared_ptr<search_op> op, std::vector<candidate> hits) {
    if (hits.size() > static_cast<std::size_t>(op->need))
      hits.resize(static_cast<std::size_t>(op->need));
    if (!op->query.text.empty()) hits = fuse(std::move(op->text_hits), std::move(hits));
    // One page of the ranked list.
    const auto from = std::min(hits.size(), static_cast<std::size_t>(op->query.offset));
    hits.erase(hits.begin(), hits.begin() + static_cast<std::ptrdiff_t>(from));
    if (hits.size() > static_cast<std::size_t>(op->query.limit))
      hits.resize(static_cast<std::size_t>(op->query.limit));
    finish(std::move(op), std::move(hits));
  }

  // Runs `sql`, then `then(op, candidates)`.
  template <class Then>
  static void fetch(std::shared_ptr<search_op> op, std::string sql, params args, Then then) {
    op->run.fetch_all(op->st->db, std::move(sql), std::move(args),
                      [op, then = std::move(then)](step_result<database::rows> r) mutable {
                        if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
                        error_code ec;
                        diagnostics diag;
                        std::vector<candidate> found;
                        found = candidates_of(r.value, op->prefix, ec, diag);
                        if (ec) return op->fail_with(ec, std::move(diag));
                        then(std::move(op), std::move(found));
                      });
  }
  static void finish(std::shared_ptr<search_op> op, std::vector<candidate> found) {
    json keys = json::array();
    if (op->st->params.refresh_on_read)
      for (const candidate& c : found)
        if (c.has_ttl) keys.push_back(c.full_key);
    auto hits = std::make_shared<memory::search_results>();
    hits->reserve(found.size());
    for (candidate& c : found) hits->push_back(std::move(c.hit));
    refresh_then(op, std::move(keys), [op, hits](std::int64_t) { op->succeed(std::move(*hits)); });
  }

 private:
  // Checks the query and compiles what every signal shares: the view, liveness, the window
  // and the filter.
  static void prepare(search_op& op) {
    const search_query& q = op.query;
    if (q.limit < 1 || q.limit > memory::max_search_limit)
      throw error(errc::invalid_argument,
                  {"search: the limit is " + std::to_string(q.limit) + "; it must be 1 to " +
                       std::to_string(memory::max_search_limit),
                   {}});
    if (q.offset < 0 || q.offset > std::numeric_limits<std::int64_t>::max() - q.limit)
      throw error(
          errc::invalid_argument,
          {"search: the offset is " + std::to_string(q.offset) + "; it must be 0 or more", {}});
    if (!q.text.empty()) {
      if (!valid_utf8(q.text))
        throw error(errc::invalid_argument, {"search: the text is not valid UTF-8", {}});
      std::vector<std::string> words = detail::text_words(q.text);
      if (words.empty())
        throw error(errc::invalid_argument,
                    {"search: the text " + printable(q.text) +
                         " has no words (runs of letters and digits) to search for",
                     {}});
      op.words = detail::text_query(op.st->db.dialect(), words);
    }
    if (!q.vector.empty()) check_vector(q.vector, "the search vector");
    const sql_dialect d = op.st->db.dialect();
    detail::compiled_filter filter = detail::compile_json_filter(q.filter, d, "m.value");
    op.now = op.st->now_ms();
    params args;
    op.conditions = " AND " + where_items(*op.st, op.prefix, "%", q.times, op.now, args) +
                    " AND (" + filter.sql + ")";
    for (value& v : filter.bound) args.push_back(std::move(v));
    op.condition_args = std::move(args);
    op.unfiltered = q.filter.is_object() && q.filter.empty();
    if (op.unfiltered && !q.text.empty())
      op.ranked_conditions = " AND " + where_items(*op.st, op.prefix, "%", q.times, op.now,
                                                   op.ranked_args, op.st->sql.text_key());
    op.need = q.offset + q.limit;
    op.asked = op.need;
  }
};

struct clear_op : memory_op<std::int64_t> {
  using memory_op::memory_op;
  std::string pattern;

  static void start(std::shared_ptr<clear_op> op) { with_table(op, &clear_op::write); }
  static void write(std::shared_ptr<clear_op> op) {
    auto done = [](clear_op& o, std::int64_t rows) { o.succeed(rows); };
    params args;
    // Expired keys stay for the sweep: a clear counts what it took from view.
    std::string sql = "DELETE FROM memory WHERE " +
                      where_matching(op->st->db.dialect(), op->prefix, op->pattern, args, "key") +
                      " AND NOT EXISTS (SELECT 1 FROM memory_meta t WHERE t.key = memory.key AND "
                      "t.expires_ms <= ?)";
    args.emplace_back(op->st->now_ms());
    if (op->st->embeddings_possible()) {
      auto removed = std::make_shared<std::int64_t>(0);
      return vector_write(op, clear_body(std::move(sql), std::move(args), removed), removed, +done);
    }
    plain_write(op, std::move(sql), std::move(args), +done);
  }
};

// One row of one statement over the view's live items: size and stats.
template <class T>
struct count_op : memory_op<T> {
  using memory_op<T>::memory_op;
  // What the statement selects (count_op adds the items of the view) and what its row means.
  const char* columns = nullptr;
  T (*value_of)(const row&, const database&) = nullptr;

  static void start(std::shared_ptr<count_op> op) { with_table(op, &count_op::read); }
  static void read(std::shared_ptr<count_op> op) {
    params args;
    std::string sql = std::string("SELECT ") + op->columns + " " +
                      detail::memory_sql::from_items() + " WHERE " +
                      where_items(*op->st, op->prefix, "%", {}, op->st->now_ms(), args);
    op->run.fetch_one(op->st->db, std::move(sql), std::move(args),
                      [op](step_result<std::optional<row>> r) {
                        if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
                        op->succeed(op->value_of(r.value.value(), op->st->db));
                      });
  }
};

std::int64_t size_of(const row& r, const database&) { return r.get<std::int64_t>(0); }
memory_stats stats_of(const row& r, const database& db) {
  memory_stats s;
  s.keys = r.get<std::int64_t>(0);
  s.value_bytes = r.get<std::int64_t>(1);
  s.engine = db.stats();
  return s;
}

struct batch_store_op : memory_op<std::monostate> {
  using memory_op::memory_op;
  std::shared_ptr<const memory::items> values;
  memory::ttl ttl;

  static void start(std::shared_ptr<batch_store_op> op) {
    check_ttl(op->ttl);
    with_table(op, &batch_store_op::write);
  }
  static void write(std::shared_ptr<batch_store_op> op) {
    if (op->values->empty()) return op->succeed({});
    auto in = std::make_shared<const batch_input>(
        batch_input{op->values, op->prefix, op->st->now_ms(), ttl_value(op->ttl, op->st->params),
                    op->st->batch});
    write_items<batch_store_op, batch_input>(
        op, std::move(in), op->values->size(), &batch_store_rows,
        [](const batch_input& i, std::size_t n) -> const std::string& {
          return (*i.values)[n].first;
        });
  }
};

struct restore_op : memory_op<std::monostate> {
  using memory_op::memory_op;
  std::shared_ptr<const std::vector<memory_item>> items;

  static void start(std::shared_ptr<restore_op> op) {
    for (const memory_item& item : *op->items)
      if (item.ttl) check_ttl(item.ttl, "the time to live of a restored item");
    with_table(op, &restore_op::write);
  }
  static void write(std::shared_ptr<restore_op> op) {
    if (op->items->empty()) return op->succeed({});
    const detail::memory_sql& sql = op->st->sql;
    auto in = std::make_shared<const restore_input>(restore_input{
        op->items, op->prefix, op->st->now_ms(), sql.restore_value, sql.restore_times});
    write_items<restore_op, restore_input>(
        op, std::move(in), op->items->size(), &restore_rows,
        [](const restore_input& i, std::size_t n) -> const std::string& {
          return (*i.items)[n].key;
        });
  }
};

// The keys are read load_chunk at a time: one after the other inline, side by side on the
// readers for an async caller (each chunk with a runner, and so a cancellation slot, of its
// own). The last chunk to finish ends the operation, with the first failure if any.
struct batch_load_op : memory_op<memory::loaded> {
  using memory_op::memory_op;
  std::vector<std::string> keys;
  std::vector<detail::runner> chunk_runs;
  // What the chunks share: each one's completion may run on another thread.
  detail::mutex mu;
  std::size_t remaining ENTITY_GUARDED_BY(mu) = 0;
  error_code ec ENTITY_GUARDED_BY(mu);
  diagnostics first_failure ENTITY_GUARDED_BY(mu);
  memory::loaded out ENTITY_GUARDED_BY(mu);
  json to_refresh ENTITY_GUARDED_BY(mu) = json::array();

  static void start(std::shared_ptr<batch_load_op> op) { with_table(op, &batch_load_op::read); }
  static void read(std::shared_ptr<batch_load_op> op) {
    if (op->keys.empty()) return op->succeed({});
    const std::size_t chunks = (op->keys.size() + memory::load_chunk - 1) / memory::load_chunk;
    {
      detail::lock_guard lk(op->mu);  // no chunk runs yet: uncontended
      op->out.reserve(op->keys.size());
      op->remaining = chunks;
    }
    const std::int64_t now = op->st->now_ms();
    op->chunk_runs = op->run.fan_out(chunks);
    for (std::size_t i = 0; i < chunks; ++i) {
      if (!op->run.is_async()) {  // inline, a failure ends the reading
        detail::unique_lock lk(op->mu);
        if (op->ec) {
          chunk_done(op, lk);
          continue;
        }
      }
      op->chunk_runs[i].fetch_all(
          op->st->db, batch_load_sql(),
          chunk_params(op->keys, i * memory::load_chunk, op->prefix, now),
          [op](step_result<database::rows> r) {
            detail::unique_lock lk(op->mu);
            if (!op->ec && r.ec) {
              op->ec = r.ec;
              op->first_failure = std::move(r.diag);
            } else if (!op->ec) {
              collect(r.value, op->prefix, op->out,
                      op->st->params.refresh_on_read ? &op->to_refresh : nullptr, op->ec,
                      &op->first_failure);
            }
            chunk_done(op, lk);
          });
    }
  }
  // A chunk is done: `lk` holds mu, which is released. The last chunk ends the operation with
  // what the chunks found, taken under the lock, completing it without.
  static void chunk_done(const std::shared_ptr<batch_load_op>& op, detail::unique_lock& lk)
      ENTITY_RELEASE(op->mu) {
    if (--op->remaining > 0) return lk.unlock(op->mu);
    error_code failed = op->ec;
    diagnostics failure = std::move(op->first_failure);
    auto found = std::make_shared<memory::loaded>(std::move(op->out));
    json keys = std::move(op->to_refresh);
    lk.unlock(op->mu);
    if (failed) return op->fail_with(failed, std::move(failure));
    refresh_then(op, std::move(keys),
                 [op, found](std::int64_t) { op->succeed(std::move(*found)); });
  }
};

// Rounds of (search, then the current values of what it found) until k memories are found or
// there are no more.
struct recall_op : memory_op<memory::recollection> {
  using memory_op::memory_op;
  std::vector<float> query;
  std::int64_t k = 0;
  std::int64_t asked = 0;
  json filter;

  static void start(std::shared_ptr<recall_op> op) {
    check_k(op->k);
    check_vector(op->query, "the query vector");
    op->asked = op->k;
    op->filter = scope_filter(op->prefix);
    with_table(op, &recall_op::search);
  }
  static void search(std::shared_ptr<recall_op> op) {
    const vector_store& vs = op->st->vectors;
    const std::string& name = collection_name();
    op->run.step<vector_store::matches>(
        [&](error_code& ec, diagnostics& d) {
          return vs.search(name, op->query, op->asked, op->filter, search_mode::approximate, ec, d);
        },
        [&](diagnostics& d, auto h) {
          vs.async_search(name, op->query, op->asked, op->filter, search_mode::approximate, d,
                          std::move(h));
        },
        [op](step_result<vector_store::matches> r) {
          if (r.ec == errc::not_found) return op->succeed({});  // no embedding stored yet
          if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
          op->st->embeddings_present();
          if (r.value.empty()) return op->succeed({});
          fetch(op, std::move(r.value));
        });
  }
  static void fetch(std::shared_ptr<recall_op> op, vector_store::matches found) {
    params args = keys_of(found);
    args.emplace_back(op->st->now_ms());
    op->run.fetch_all(op->st->db, op->st->sql.values_of_keys, std::move(args),
                      [op, found = std::move(found)](step_result<database::rows> r) {
                        if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
                        error_code ec;
                        diagnostics diag;
                        std::size_t stale = 0;
                        memory::recollection out =
                            pick_recalled(found, r.value, op->prefix, stale, ec, &diag);
                        if (ec) return op->fail_with(ec, std::move(diag));
                        op->asked = next_round(out.size(), found.size(), op->asked, op->k);
                        if (op->asked != 0) return search(op);
                        if (out.size() > static_cast<std::size_t>(op->k))
                          out.resize(static_cast<std::size_t>(op->k));
                        op->succeed(std::move(out));
                      });
  }
};

// ---- sweeps ------------------------------------------------------------------------------------

// One batch of a sweep: the oldest expired keys of the view, their rows (their meta rows and
// text go with them by trigger), and meta rows left without a memory row. Sets *found to the
// expired keys found and *deleted to the items deleted; returns the keys.
std::vector<std::string> sweep_one_batch(session& s, const detail::memory_sql& sql,
                                         const params& args, bool scoped, std::int64_t& found,
                                         std::int64_t& deleted) {
  result expired = s.execute(sql.expired_keys(scoped), args);
  json keys = json::array();
  std::vector<std::string> out;
  for (const row& r : expired.rows) {
    keys.push_back(r[0].as_text());
    out.push_back(r[0].as_text());
  }
  found = static_cast<std::int64_t>(out.size());
  deleted = 0;
  if (out.empty()) return out;
  const std::string list = keys.dump();
  deleted = static_cast<std::int64_t>(s.execute(sql.delete_keys, {list}).rows.size());
  s.execute(sql.delete_meta, {list});
  return out;
}

struct sweep_op : memory_op<std::int64_t> {
  using memory_op::memory_op;
  std::int64_t total = 0;
  std::shared_ptr<std::int64_t> found = std::make_shared<std::int64_t>(0);
  std::shared_ptr<std::int64_t> deleted = std::make_shared<std::int64_t>(0);
  params args;

  static void start(std::shared_ptr<sweep_op> op) { with_table(op, &sweep_op::begin); }
  static void begin(std::shared_ptr<sweep_op> op) {
    op->args.emplace_back(op->st->now_ms());
    if (!op->prefix.empty()) {
      op->args.emplace_back(op->prefix);
      op->args.emplace_back(upper_bound_of(op->prefix));
    }
    op->args.emplace_back(op->st->params.sweep_batch);
    batch(op);
  }
  static void batch(std::shared_ptr<sweep_op> op) {
    auto next = [op](step_result<std::monostate> r) {
      if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
      op->total += *op->deleted;
      if (*op->found < op->st->params.sweep_batch) return op->succeed(op->total);
      batch(op);
    };
    const bool scoped = !op->prefix.empty();
    if (op->st->embeddings_possible()) {
      vector_transaction_body body = [st = op->st, args = op->args, scoped, found = op->found,
                                      deleted = op->deleted](session& s, vector_writes& w) {
        w.erase(collection_name(), sweep_one_batch(s, st->sql, args, scoped, *found, *deleted));
      };
      return vector_transaction(op, std::move(body), std::move(next));
    }
    transaction_body body = [st = op->st, args = op->args, scoped, found = op->found,
                             deleted = op->deleted](session& s) {
      sweep_one_batch(s, st->sql, args, scoped, *found, *deleted);
    };
    op->run.transaction(op->st->db, std::move(body), std::move(next));
  }
};

// The background sweep of the whole memory: nobody waits for it, and a failure (the engine
// shutting down, a busy database) leaves the expired items, invisible, for the next one.
void start_background_sweep(const std::shared_ptr<memory_shared>& st) {
  detail::run_async<sweep_op>(st, nullptr,
                              memory::handler<std::int64_t>([](error_code, std::int64_t) {}),
                              [](sweep_op&) {});
}

}  // namespace

// ---- the public face ---------------------------------------------------------------------------
// Each operation: the error_code& form runs it inline, the throwing form is that one and a
// throw, the async form runs it on the caller's executor. `Init` sets the operation's inputs.

namespace {
template <class Op, class Init>
typename Op::value_type run_inline(const std::shared_ptr<memory_shared>& s,
                                   const std::string& prefix, error_code& ec, diagnostics& diag,
                                   Init&& init) {
  return detail::run_inline<Op>(s, ec, diag, [&](Op& op) {
    op.prefix = prefix;
    init(op);
  });
}
template <class Op, class Handler, class Init>
void run_async(const std::shared_ptr<memory_shared>& s, const std::string& prefix,
               diagnostics* diag, Handler h, Init&& init) {
  detail::run_async<Op>(s, diag, std::move(h), [&](Op& op) {
    op.prefix = prefix;
    init(op);
  });
}
}  // namespace

memory::memory(database db, memory_params settings)
    : memory("", std::make_shared<shared>(db, std::move(settings))) {}

namespace {
memory_params with_recall(vector_store_params recall) {
  memory_params p;
  p.recall = std::move(recall);
  return p;
}
}  // namespace

memory::memory(database db, vector_store_params recall)
    : memory(std::move(db), with_recall(std::move(recall))) {}

memory::memory(std::string prefix, std::shared_ptr<shared> s)
    : prefix_(std::move(prefix)), shared_(std::move(s)) {}

const database& memory::db() const noexcept { return shared_->db; }
const vector_store& memory::vectors() const noexcept { return shared_->vectors; }

memory memory::scope(std::string_view name) const {
  if (name.empty()) throw error(errc::invalid_argument, {"a scope name must not be empty", {}});
  if (!valid_utf8(name))
    throw error(errc::invalid_argument,
                {"the scope name " + printable(name) + " is not valid UTF-8", {}});
  return memory(prefix_ + std::string(name) + ":", shared_);
}

namespace {
auto store_inputs(std::string& key, json& value, memory::ttl ttl) {
  return [&key, &value, ttl](store_op& op) {
    op.key = std::move(key);
    op.value = std::move(value);
    op.ttl = ttl;
  };
}
auto store_inputs(std::string& key, json& value, std::vector<float>& embedding, memory::ttl ttl) {
  return [&key, &value, &embedding, ttl](store_embedded_op& op) {
    op.key = std::move(key);
    op.value = std::move(value);
    op.embedding = std::move(embedding);
    op.ttl = ttl;
  };
}
// load and load_item: which statement, where its ttl_ms is, what a row becomes.
auto load_inputs(std::string& key) {
  return [&](load_op& op) {
    op.key = std::move(key);
    op.sql = &op.st->sql.load;
    op.ttl_column = 1;
    op.found = &loaded_value;
  };
}
auto load_item_inputs(std::string& key) {
  return [&](load_item_op& op) {
    op.key = std::move(key);
    op.sql = &op.st->sql.load_item;
    op.ttl_column = 4;
    op.found = &loaded_item;
  };
}
auto recall_inputs(std::vector<float>& query, std::int64_t k) {
  return [&query, k](recall_op& op) {
    op.query = std::move(query);
    op.k = k;
  };
}
template <class Op>
auto key_inputs(std::string& key) {
  return [&](Op& op) { op.key = std::move(key); };
}
template <class Op>
auto pattern_inputs(std::string& pattern) {
  return [&](Op& op) { op.pattern = std::move(pattern); };
}
auto keys_inputs(std::string& pattern, const time_window& window) {
  return [&](keys_op& op) {
    op.pattern = std::move(pattern);
    op.window = window;
  };
}
auto scopes_inputs(std::string& prefix, std::size_t max_depth) {
  return [&prefix, max_depth](scopes_op& op) {
    op.within = std::move(prefix);
    op.max_depth = max_depth;
  };
}
template <class T>
auto count_inputs(const char* columns, T (*value_of)(const row&, const database&)) {
  return [columns, value_of](count_op<T>& op) {
    op.columns = columns;
    op.value_of = value_of;
  };
}
auto stats_inputs() {
  return [](count_op<memory_stats>& op) {
    // The memory's own columns, which live as long as the operation's shared state.
    op.columns = op.st->stats_columns.c_str();
    op.value_of = &stats_of;
  };
}
auto batch_store_inputs(memory::items& values, memory::ttl ttl) {
  return [&values, ttl](batch_store_op& op) {
    op.values = std::make_shared<const memory::items>(std::move(values));
    op.ttl = ttl;
  };
}
auto restore_inputs(std::vector<memory_item>& restored) {
  return [&](restore_op& op) {
    op.items = std::make_shared<const std::vector<memory_item>>(std::move(restored));
  };
}
auto batch_load_inputs(std::vector<std::string>& keys) {
  return [&](batch_load_op& op) { op.keys = std::move(keys); };
}
auto search_inputs(search_query& q) {
  return [&](search_op& op) { op.query = std::move(q); };
}
auto no_inputs() {
  return [](auto&) {};
}
}  // namespace

// store

void memory::store(std::string key, json value, error_code& ec, diagnostics& diag) const {
  run_inline<store_op>(shared_, prefix_, ec, diag, store_inputs(key, value, ttl()));
}
void memory::store(std::string key, json value) const {
  detail::throwing(
      [&](error_code& ec, diagnostics& d) { store(std::move(key), std::move(value), ec, d); });
}
void memory::store(std::string key, json value, std::chrono::milliseconds time_to_live,
                   error_code& ec, diagnostics& diag) const {
  run_inline<store_op>(shared_, prefix_, ec, diag, store_inputs(key, value, time_to_live));
}
void memory::store(std::string key, json value, std::chrono::milliseconds time_to_live) const {
  detail::throwing([&](error_code& ec, diagnostics& d) {
    store(std::move(key), std::move(value), time_to_live, ec, d);
  });
}
void memory::start_store(diagnostics* diag, void_handler h, std::string key, json value,
                         ttl time_to_live) const {
  run_async<store_op>(shared_, prefix_, diag, std::move(h), store_inputs(key, value, time_to_live));
}

void memory::store(std::string key, json value, std::vector<float> embedding, error_code& ec,
                   diagnostics& diag) const {
  run_inline<store_embedded_op>(shared_, prefix_, ec, diag,
                                store_inputs(key, value, embedding, ttl()));
}
void memory::store(std::string key, json value, std::vector<float> embedding) const {
  detail::throwing([&](error_code& ec, diagnostics& d) {
    store(std::move(key), std::move(value), std::move(embedding), ec, d);
  });
}
void memory::store(std::string key, json value, std::vector<float> embedding,
                   std::chrono::milliseconds time_to_live, error_code& ec,
                   diagnostics& diag) const {
  run_inline<store_embedded_op>(shared_, prefix_, ec, diag,
                                store_inputs(key, value, embedding, time_to_live));
}
void memory::store(std::string key, json value, std::vector<float> embedding,
                   std::chrono::milliseconds time_to_live) const {
  detail::throwing([&](error_code& ec, diagnostics& d) {
    store(std::move(key), std::move(value), std::move(embedding), time_to_live, ec, d);
  });
}
void memory::start_store_embedded(diagnostics* diag, void_handler h, std::string key, json value,
                                  std::vector<float> embedding, ttl time_to_live) const {
  run_async<store_embedded_op>(shared_, prefix_, diag, std::move(h),
                               store_inputs(key, value, embedding, time_to_live));
}

// load

std::optional<json> memory::load(std::string key, error_code& ec, diagnostics& diag) const {
  return run_inline<load_op>(shared_, prefix_, ec, diag, load_inputs(key));
}
std::optional<json> memory::load(std::string key) const {
  return detail::throwing(
      [&](error_code& ec, diagnostics& d) { return load(std::move(key), ec, d); });
}
void memory::start_load(diagnostics* diag, handler<std::optional<json>> h, std::string key) const {
  run_async<load_op>(shared_, prefix_, diag, std::move(h), load_inputs(key));
}

json memory::load(std::string key, json default_value, error_code& ec, diagnostics& diag) const {
  auto v = load(std::move(key), ec, diag);
  return v ? std::move(*v) : ec ? json() : std::move(default_value);
}
json memory::load(std::string key, json default_value) const {
  return detail::throwing([&](error_code& ec, diagnostics& d) {
    return load(std::move(key), std::move(default_value), ec, d);
  });
}
void memory::start_load_or(diagnostics* diag, handler<json> h, std::string key,
                           json default_value) const {
  auto to = detail::caller_of(h);  // before h moves into the continuation
  start_load(diag,
             handler<std::optional<json>>(to([h = std::move(h), d = std::move(default_value)](
                                                 error_code ec, std::optional<json> v) mutable {
               std::move(h)(ec, v ? std::move(*v) : ec ? json() : std::move(d));
             })),
             std::move(key));
}

std::optional<memory_item> memory::load_item(std::string key, error_code& ec,
                                             diagnostics& diag) const {
  return run_inline<load_item_op>(shared_, prefix_, ec, diag, load_item_inputs(key));
}
std::optional<memory_item> memory::load_item(std::string key) const {
  return detail::throwing(
      [&](error_code& ec, diagnostics& d) { return load_item(std::move(key), ec, d); });
}
void memory::start_load_item(diagnostics* diag, handler<std::optional<memory_item>> h,
                             std::string key) const {
  run_async<load_item_op>(shared_, prefix_, diag, std::move(h), load_item_inputs(key));
}

// erase, exists

bool memory::erase(std::string key, error_code& ec, diagnostics& diag) const {
  return run_inline<erase_op>(shared_, prefix_, ec, diag, key_inputs<erase_op>(key));
}
bool memory::erase(std::string key) const {
  return detail::throwing(
      [&](error_code& ec, diagnostics& d) { return erase(std::move(key), ec, d); });
}
void memory::start_erase(diagnostics* diag, handler<bool> h, std::string key) const {
  run_async<erase_op>(shared_, prefix_, diag, std::move(h), key_inputs<erase_op>(key));
}

bool memory::exists(std::string key, error_code& ec, diagnostics& diag) const {
  return run_inline<exists_op>(shared_, prefix_, ec, diag, key_inputs<exists_op>(key));
}
bool memory::exists(std::string key) const {
  return detail::throwing(
      [&](error_code& ec, diagnostics& d) { return exists(std::move(key), ec, d); });
}
void memory::start_exists(diagnostics* diag, handler<bool> h, std::string key) const {
  run_async<exists_op>(shared_, prefix_, diag, std::move(h), key_inputs<exists_op>(key));
}

// keys, scopes, clear, sweep

std::vector<std::string> memory::keys(std::string pattern, time_window window, error_code& ec,
                                      diagnostics& diag) const {
  return run_inline<keys_op>(shared_, prefix_, ec, diag, keys_inputs(pattern, window));
}
std::vector<std::string> memory::keys(std::string pattern, time_window window) const {
  return detail::throwing(
      [&](error_code& ec, diagnostics& d) { return keys(std::move(pattern), window, ec, d); });
}
std::vector<std::string> memory::keys(std::string pattern, error_code& ec,
                                      diagnostics& diag) const {
  return keys(std::move(pattern), time_window{}, ec, diag);
}
std::vector<std::string> memory::keys(std::string pattern) const {
  return keys(std::move(pattern), time_window{});
}
void memory::start_keys(diagnostics* diag, handler<std::vector<std::string>> h, std::string pattern,
                        time_window window) const {
  run_async<keys_op>(shared_, prefix_, diag, std::move(h), keys_inputs(pattern, window));
}

std::vector<std::string> memory::scopes(std::string prefix, std::size_t max_depth, error_code& ec,
                                        diagnostics& diag) const {
  return run_inline<scopes_op>(shared_, prefix_, ec, diag, scopes_inputs(prefix, max_depth));
}
std::vector<std::string> memory::scopes(std::string prefix, std::size_t max_depth) const {
  return detail::throwing(
      [&](error_code& ec, diagnostics& d) { return scopes(std::move(prefix), max_depth, ec, d); });
}
void memory::start_scopes(diagnostics* diag, handler<std::vector<std::string>> h,
                          std::string prefix, std::size_t max_depth) const {
  run_async<scopes_op>(shared_, prefix_, diag, std::move(h), scopes_inputs(prefix, max_depth));
}

memory::search_results memory::search(search_query q, error_code& ec, diagnostics& diag) const {
  return run_inline<search_op>(shared_, prefix_, ec, diag, search_inputs(q));
}
memory::search_results memory::search(search_query q) const {
  return detail::throwing(
      [&](error_code& ec, diagnostics& d) { return search(std::move(q), ec, d); });
}
void memory::start_search(diagnostics* diag, handler<search_results> h, search_query q) const {
  run_async<search_op>(shared_, prefix_, diag, std::move(h), search_inputs(q));
}

std::int64_t memory::clear(std::string pattern, error_code& ec, diagnostics& diag) const {
  return run_inline<clear_op>(shared_, prefix_, ec, diag, pattern_inputs<clear_op>(pattern));
}
std::int64_t memory::clear(std::string pattern) const {
  return detail::throwing(
      [&](error_code& ec, diagnostics& d) { return clear(std::move(pattern), ec, d); });
}
void memory::start_clear(diagnostics* diag, handler<std::int64_t> h, std::string pattern) const {
  run_async<clear_op>(shared_, prefix_, diag, std::move(h), pattern_inputs<clear_op>(pattern));
}

std::int64_t memory::sweep(error_code& ec, diagnostics& diag) const {
  return run_inline<sweep_op>(shared_, prefix_, ec, diag, no_inputs());
}
std::int64_t memory::sweep() const {
  return detail::throwing([&](error_code& ec, diagnostics& d) { return sweep(ec, d); });
}
void memory::start_sweep(diagnostics* diag, handler<std::int64_t> h) const {
  run_async<sweep_op>(shared_, prefix_, diag, std::move(h), no_inputs());
}

// size, stats

std::int64_t memory::size(error_code& ec, diagnostics& diag) const {
  return run_inline<count_op<std::int64_t>>(shared_, prefix_, ec, diag,
                                            count_inputs("count(*)", &size_of));
}
std::int64_t memory::size() const {
  return detail::throwing([&](error_code& ec, diagnostics& d) { return size(ec, d); });
}
void memory::start_size(diagnostics* diag, handler<std::int64_t> h) const {
  run_async<count_op<std::int64_t>>(shared_, prefix_, diag, std::move(h),
                                    count_inputs("count(*)", &size_of));
}

memory_stats memory::stats(error_code& ec, diagnostics& diag) const {
  return run_inline<count_op<memory_stats>>(shared_, prefix_, ec, diag, stats_inputs());
}
memory_stats memory::stats() const {
  return detail::throwing([&](error_code& ec, diagnostics& d) { return stats(ec, d); });
}
void memory::start_stats(diagnostics* diag, handler<memory_stats> h) const {
  run_async<count_op<memory_stats>>(shared_, prefix_, diag, std::move(h), stats_inputs());
}

// batches

void memory::batch_store(items values, error_code& ec, diagnostics& diag) const {
  run_inline<batch_store_op>(shared_, prefix_, ec, diag, batch_store_inputs(values, ttl()));
}
void memory::batch_store(items values) const {
  detail::throwing([&](error_code& ec, diagnostics& d) { batch_store(std::move(values), ec, d); });
}
void memory::batch_store(items values, std::chrono::milliseconds time_to_live, error_code& ec,
                         diagnostics& diag) const {
  run_inline<batch_store_op>(shared_, prefix_, ec, diag, batch_store_inputs(values, time_to_live));
}
void memory::batch_store(items values, std::chrono::milliseconds time_to_live) const {
  detail::throwing(
      [&](error_code& ec, diagnostics& d) { batch_store(std::move(values), time_to_live, ec, d); });
}
void memory::start_batch_store(diagnostics* diag, void_handler h, items values,
                               ttl time_to_live) const {
  run_async<batch_store_op>(shared_, prefix_, diag, std::move(h),
                            batch_store_inputs(values, time_to_live));
}

void memory::restore(std::vector<memory_item> restored, error_code& ec, diagnostics& diag) const {
  run_inline<restore_op>(shared_, prefix_, ec, diag, restore_inputs(restored));
}
void memory::restore(std::vector<memory_item> restored) const {
  detail::throwing([&](error_code& ec, diagnostics& d) { restore(std::move(restored), ec, d); });
}
void memory::start_restore(diagnostics* diag, void_handler h,
                           std::vector<memory_item> restored) const {
  run_async<restore_op>(shared_, prefix_, diag, std::move(h), restore_inputs(restored));
}

memory::loaded memory::batch_load(std::vector<std::string> keys, error_code& ec,
                                  diagnostics& diag) const {
  return run_inline<batch_load_op>(shared_, prefix_, ec, diag, batch_load_inputs(keys));
}
memory::loaded memory::batch_load(std::vector<std::string> keys) const {
  return detail::throwing(
      [&](error_code& ec, diagnostics& d) { return batch_load(std::move(keys), ec, d); });
}
void memory::start_batch_load(diagnostics* diag, handler<loaded> h,
                              std::vector<std::string> keys) const {
  run_async<batch_load_op>(shared_, prefix_, diag, std::move(h), batch_load_inputs(keys));
}

// recall

memory::recollection memory::recall(std::vector<float> query, std::int64_t k, error_code& ec,
                                    diagnostics& diag) const {
  return run_inline<recall_op>(shared_, prefix_, ec, diag, recall_inputs(query, k));
}
memory::recollection memory::recall(std::vector<float> query, std::int64_t k) const {
  return detail::throwing(
      [&](error_code& ec, diagnostics& d) { return recall(std::move(query), k, ec, d); });
}
void memory::start_recall(diagnostics* diag, handler<recollection> h, std::vector<float> query,
                          std::int64_t k) const {
  run_async<recall_op>(shared_, prefix_, diag, std::move(h), recall_inputs(query, k));
}

}  // namespace entity
