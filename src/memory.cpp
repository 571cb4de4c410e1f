#include "entity/memory.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string_view>
#include <unordered_set>
#include <variant>

#include "common/json_filter.hpp"
#include "common/op_runner.hpp"
#include "common/thread_safety.hpp"
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
std::shared_ptr<const batch_sql> make_batch_sql(std::string upsert, bool one_row_per_key);
}  // namespace

struct memory::shared {
  enum class embeddings_state : int { unknown, absent, present };

  shared(const database& d, const vector_store_params& recall)
      : db(d),
        upsert(pg(d) ? "INSERT INTO memory (key, value) VALUES (?, ?) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                     : "INSERT OR REPLACE INTO memory (key, value) VALUES (?, ?)"),
        // Bytes, not characters: SQLite's length() of TEXT counts characters.
        value_bytes(pg(d) ? "octet_length(value)" : "length(CAST(value AS BLOB))"),
        // Any number of keys in one bound parameter (a JSON array of strings).
        values_of_keys(pg(d) ? "SELECT key, value FROM memory WHERE key IN "
                               "(SELECT jsonb_array_elements_text(CAST(? AS jsonb)))"
                             : "SELECT key, value FROM memory WHERE key IN "
                               "(SELECT value FROM json_each(?))"),
        batch(make_batch_sql(upsert, pg(d))),
        vectors(d, recall) {
    if (!vector_store::valid_name(embeddings_collection))
      throw error(errc::invalid_argument, {"the embeddings collection name is not valid", {}});
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
  const std::string upsert;
  const std::string value_bytes;
  const std::string values_of_keys;
  const std::shared_ptr<const batch_sql> batch;
  const vector_store vectors;
  std::atomic<bool> table_ready{false};
  std::atomic<embeddings_state> embeddings{embeddings_state::unknown};
};

namespace {

// The seed's table. On PostgreSQL the key column is declared with the "C" collation: keys are
// bytes and a scope is a byte range (see where_matching), whatever the database's collation,
// and the primary key's index is then in that order, so scoped reads use it.
const char* create_sql(sql_dialect d) {
  return d == sql_dialect::postgresql
             ? "CREATE TABLE IF NOT EXISTS memory (key TEXT COLLATE \"C\" PRIMARY KEY, value TEXT)"
             : "CREATE TABLE IF NOT EXISTS memory (key TEXT PRIMARY KEY, value TEXT)";
}
constexpr const char* load_sql = "SELECT value FROM memory WHERE key = ?";
constexpr const char* erase_sql = "DELETE FROM memory WHERE key = ?";
constexpr const char* exists_sql = "SELECT 1 FROM memory WHERE key = ?";
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

// The WHERE clause selecting keys of the view `prefix` that match `pattern`, with its
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
std::string where_matching(sql_dialect d, const std::string& prefix, const std::string& pattern,
                           params& args) {
  const bool every_key = pattern == "%";
  if (prefix.empty()) {
    if (every_key) return " WHERE key IS NOT NULL";
    args.emplace_back(pattern);
    return " WHERE key LIKE ? ESCAPE '\\'";
  }
  std::string upper = prefix;
  upper.back() = static_cast<char>(upper.back() + 1);
  args.emplace_back(prefix);
  args.emplace_back(upper);
  std::string range = d == sql_dialect::postgresql
                          ? " WHERE key COLLATE \"C\" >= ? AND key COLLATE \"C\" < ?"
                          : " WHERE key >= ? AND key < ?";
  if (every_key) return range;
  args.emplace_back(escape_like(prefix) + pattern);
  return range + " AND key LIKE ? ESCAPE '\\'";
}

// Keys in the order of their bytes, as SQLite sorts TEXT, on PostgreSQL too.
const char* order_by_key(sql_dialect d) {
  return d == sql_dialect::postgresql ? " ORDER BY key COLLATE \"C\"" : " ORDER BY key";
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

std::string in_list_sql() {
  std::string sql = "SELECT key, value FROM memory WHERE key IN (";
  for (std::size_t i = 0; i < memory::load_chunk; ++i) sql += i ? ",?" : "?";
  return sql + ")";
}
const std::string& batch_load_sql() {
  static const std::string sql = in_list_sql();
  return sql;
}

// The parameters of one chunk of a batch_load; short chunks repeat their last key so that
// every chunk shares one prepared statement.
params chunk_params(const std::vector<std::string>& keys, std::size_t from,
                    const std::string& prefix) {
  params args;
  args.reserve(memory::load_chunk);
  std::size_t to = std::min(keys.size(), from + memory::load_chunk);
  for (std::size_t i = from; i < to; ++i) args.emplace_back(prefix + keys[i]);
  while (args.size() < memory::load_chunk) args.push_back(args.back());
  return args;
}

void collect(std::vector<row>& rows, const std::string& prefix, memory::loaded& out, error_code& ec,
             diagnostics* diag) {
  for (row& r : rows) {
    std::string key = r[0].as_text().substr(prefix.size());
    json j = decode(r[1], key, ec, diag);
    if (ec) return;
    out.emplace(std::move(key), std::move(j));
  }
}

// ---- the bodies of writes that keep embeddings in step -----------------------------------------
// Each may run more than once (see database::transaction): they only read what they capture.

// A value without an embedding: the key's embedding, if any, goes.
vector_transaction_body plain_store_body(std::string upsert, std::string full_key,
                                         std::string text) {
  return [upsert = std::move(upsert), full_key = std::move(full_key), text = std::move(text)](
             session& s, vector_writes& w) {
    s.execute(upsert, {full_key, text});
    w.erase(collection_name(), {full_key});
  };
}

// A value with its embedding. The first embedding creates the collection with its dimension.
vector_transaction_body embedded_store_body(std::string upsert, std::string key,
                                            std::string full_key, std::string text,
                                            std::shared_ptr<const std::vector<float>> embedding) {
  return [upsert = std::move(upsert), key = std::move(key), full_key = std::move(full_key),
          text = std::move(text), embedding = std::move(embedding)](session& s, vector_writes& w) {
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
    s.execute(upsert, {full_key, text});
    vector_store::items items;
    items.push_back(vector_item{full_key, *embedding, embedding_metadata(full_key, text)});
    w.upsert(name, std::move(items));
  };
}

vector_transaction_body erase_body(std::string full_key, std::shared_ptr<std::int64_t> erased) {
  return
      [full_key = std::move(full_key), erased = std::move(erased)](session& s, vector_writes& w) {
        *erased = s.execute(erase_sql, {full_key}).rows_affected;
        w.erase(collection_name(), {full_key});
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
    const value* v = it == current.end() ? nullptr : it->second;
    std::string_view text;
    if (v && v->is_text()) text = v->as_text();
    auto digest = m.metadata.find(digest_field);
    if (!v || !v->is_text() || digest == m.metadata.end() || !digest->is_string() ||
        digest->get_ref<const std::string&>() != value_digest(text)) {
      ++stale;
      continue;
    }
    std::string key = m.id.substr(prefix.size());
    json j = decode(*v, key, ec, diag);
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

// Items per INSERT of a batch_store: 256 bound values, far under either backend's limit. A
// power of two (see batch_sql).
constexpr std::size_t rows_per_insert = 128;
static_assert((rows_per_insert & (rows_per_insert - 1)) == 0);

// `upsert` (one row: "... VALUES (?, ?) ...") made to insert `rows` rows.
std::string upsert_of_rows(const std::string& upsert, std::size_t rows) {
  constexpr std::string_view one = "(?, ?)";
  const std::size_t at = upsert.find(one);
  std::string sql = upsert.substr(0, at);
  for (std::size_t i = 0; i < rows; ++i) sql.append(i ? ", " : "").append(one);
  return sql + upsert.substr(at + one.size());
}

std::shared_ptr<const batch_sql> make_batch_sql(std::string upsert, bool one_row_per_key) {
  auto sql = std::make_shared<batch_sql>();
  for (std::size_t rows = 1; rows <= rows_per_insert; rows *= 2)
    sql->sized.push_back(upsert_of_rows(upsert, rows));
  sql->one_row_per_key = one_row_per_key;
  return sql;
}

// The body of a batch_store: rows_per_insert items per statement, bound one chunk at a time,
// so nothing beyond the items and one chunk is held however many there are; the later value of
// a key given twice wins (see batch_sql).
void batch_store_rows(session& s, const memory::items& values, const std::string& prefix,
                      const batch_sql& sql) {
  // One text per bound value of a full chunk, rewritten in place chunk after chunk.
  params args(2 * rows_per_insert, value(std::string()));
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
        part.resize(2 * n);
        for (std::size_t j = 0; j < 2 * n; ++j) std::swap(part[j], args[2 * from + j]);
        s.execute(sql.sized[i], part);
        for (std::size_t j = 0; j < 2 * n; ++j) std::swap(part[j], args[2 * from + j]);
        from += n;
      }
    }
    rows = 0;
    chunk_keys.clear();
  };
  for (const auto& [key, v] : values) {
    if (sql.one_row_per_key && !chunk_keys.insert(key).second) {
      write_chunk();
      chunk_keys.insert(key);
    }
    text(2 * rows).assign(prefix).append(key);
    encode_into(v, key, text(2 * rows + 1));
    if (++rows == rows_per_insert) write_chunk();
  }
  if (rows) write_chunk();
}
transaction_body batch_store_body(std::shared_ptr<const memory::items> values, std::string prefix,
                                  std::shared_ptr<const batch_sql> sql) {
  return [values = std::move(values), prefix = std::move(prefix),
          sql = std::move(sql)](session& s) { batch_store_rows(s, *values, prefix, *sql); };
}
// The same, removing the embeddings the keys had.
vector_transaction_body batch_store_vector_body(std::shared_ptr<const memory::items> values,
                                                std::string prefix,
                                                std::shared_ptr<const batch_sql> sql) {
  return [values = std::move(values), prefix = std::move(prefix), sql = std::move(sql)](
             session& s, vector_writes& w) {
    batch_store_rows(s, *values, prefix, *sql);
    // A chunk of keys at a time, so a big batch is not copied whole.
    constexpr std::size_t chunk = 1024;
    std::vector<std::string> keys;
    keys.reserve(std::min(chunk, values->size()));
    for (std::size_t i = 0; i < values->size(); ++i) {
      keys.push_back(prefix + (*values)[i].first);
      if (keys.size() == chunk || i + 1 == values->size()) {
        w.erase(collection_name(), keys);
        keys.clear();
      }
    }
  };
}

// ---- how operations run ------------------------------------------------------------------------
// Each operation is written once, as a chain of steps on a detail::runner (common/op_runner.hpp):
// inline for the sync and error_code& forms, through the async API with every continuation on
// the caller's executor for the async form.

using memory_shared = detail::shared_state_t<memory>;
template <class R>
using step_result = detail::step_result<R>;

// The state of one operation: the memory's shared state (let go before the caller hears the
// end) and the view's prefix.
template <class T>
struct memory_op : detail::operation<std::shared_ptr<memory_shared>, T> {
  using detail::operation<std::shared_ptr<memory_shared>, T>::operation;
  std::string prefix;
};

// Runs `next(op)` once the table exists and whether the embeddings collection exists is known
// (see memory::shared): the first use of a memory creates the table, and asks. Several callers
// may do so at once: CREATE ... IF NOT EXISTS makes that harmless. An async first use does not
// wait for the table: waiting would block the caller's executor, and a caller running on the
// engine's writer thread (a plain callback of a write) would wait for itself forever.
template <class Op>
void with_table(std::shared_ptr<Op> op, void (*next)(std::shared_ptr<Op>)) {
  if (op->st->table_ready.load(std::memory_order_acquire)) return next(std::move(op));
  op->run.execute(op->st->db, create_sql(op->st->db.dialect()), {},
                  [op, next](step_result<result> r) mutable {
                    if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
                    op->run.fetch_one(op->st->db, probe_sql, {collection_name()},
                                      [op, next](step_result<std::optional<row>> probe) mutable {
                                        // Cancelled, the probe answered nothing: the next operation
                                        // asks again.
                                        if (probe.ec == errc::cancelled)
                                          return op->fail_with(probe.ec, std::move(probe.diag));
                                        op->st->probed(probe.ec, probe.value.has_value());
                                        op->st->table_ready.store(true, std::memory_order_release);
                                        next(std::move(op));
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

// ---- the operations ----------------------------------------------------------------------------

struct store_op : memory_op<std::monostate> {
  using memory_op::memory_op;
  std::string key;
  json value;
  std::string text;

  static void start(std::shared_ptr<store_op> op) {
    if (!op->attempt([&] { op->text = encode(op->value, op->key); })) return;
    with_table(op, &store_op::write);
  }
  static void write(std::shared_ptr<store_op> op) {
    auto done = [](store_op& o, std::int64_t) { o.succeed({}); };
    std::string full_key = op->prefix + op->key;
    if (op->st->embeddings_possible())
      return vector_write(op, plain_store_body(op->st->upsert, full_key, std::move(op->text)),
                          nullptr, +done);
    plain_write(op, op->st->upsert, {std::move(full_key), std::move(op->text)}, +done);
  }
};

struct store_embedded_op : memory_op<std::monostate> {
  using memory_op::memory_op;
  std::string key;
  json value;
  std::vector<float> embedding;
  std::string text;

  static void start(std::shared_ptr<store_embedded_op> op) {
    if (!op->attempt([&] {
          check_vector(op->embedding, "the embedding of key '" + op->key + "'");
          op->text = encode(op->value, op->key);
        }))
      return;
    with_table(op, &store_embedded_op::write);
  }
  static void write(std::shared_ptr<store_embedded_op> op) {
    auto body =
        embedded_store_body(op->st->upsert, op->key, op->prefix + op->key, std::move(op->text),
                            std::make_shared<const std::vector<float>>(std::move(op->embedding)));
    vector_transaction(op, std::move(body), [op](step_result<std::monostate> r) {
      if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
      op->st->embeddings_present();
      op->succeed({});
    });
  }
};

struct load_op : memory_op<std::optional<json>> {
  using memory_op::memory_op;
  std::string key;

  static void start(std::shared_ptr<load_op> op) { with_table(op, &load_op::read); }
  static void read(std::shared_ptr<load_op> op) {
    op->run.fetch_one(op->st->db, load_sql, {op->prefix + op->key},
                      [op](step_result<std::optional<row>> r) {
                        if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
                        if (!r.value) return op->succeed(std::nullopt);
                        error_code ec;
                        diagnostics diag;
                        json j = decode((*r.value)[0], op->key, ec, &diag);
                        if (ec) return op->fail_with(ec, std::move(diag));
                        op->succeed(std::move(j));
                      });
  }
};

struct erase_op : memory_op<bool> {
  using memory_op::memory_op;
  std::string key;

  static void start(std::shared_ptr<erase_op> op) { with_table(op, &erase_op::write); }
  static void write(std::shared_ptr<erase_op> op) {
    auto done = [](erase_op& o, std::int64_t rows) { o.succeed(rows > 0); };
    std::string full_key = op->prefix + op->key;
    if (op->st->embeddings_possible()) {
      auto erased = std::make_shared<std::int64_t>(0);
      return vector_write(op, erase_body(full_key, erased), erased, +done);
    }
    plain_write(op, erase_sql, {std::move(full_key)}, +done);
  }
};

struct exists_op : memory_op<bool> {
  using memory_op::memory_op;
  std::string key;

  static void start(std::shared_ptr<exists_op> op) { with_table(op, &exists_op::read); }
  static void read(std::shared_ptr<exists_op> op) {
    op->run.fetch_one(op->st->db, exists_sql, {op->prefix + op->key},
                      [op](step_result<std::optional<row>> r) {
                        if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
                        op->succeed(r.value.has_value());
                      });
  }
};

struct keys_op : memory_op<std::vector<std::string>> {
  using memory_op::memory_op;
  std::string pattern;

  static void start(std::shared_ptr<keys_op> op) { with_table(op, &keys_op::read); }
  static void read(std::shared_ptr<keys_op> op) {
    params args;
    const sql_dialect d = op->st->db.dialect();
    std::string sql = "SELECT key FROM memory" + where_matching(d, op->prefix, op->pattern, args) +
                      order_by_key(d);
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

struct search_op : memory_op<memory::search_results> {
  using memory_op::memory_op;
  search_query query;

  static void start(std::shared_ptr<search_op> op) {
    // A malformed query is refused before the table is touched.
    std::string sql;
    params args;
    if (!op->attempt([&] { sql = search_sql(*op, args); })) return;
    op->sql = std::move(sql);
    op->args = std::move(args);
    with_table(op, &search_op::read);
  }
  static void read(std::shared_ptr<search_op> op) {
    op->run.fetch_all(op->st->db, std::move(op->sql), std::move(op->args),
                      [op](step_result<database::rows> r) {
                        if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
                        memory::search_results out;
                        out.reserve(r.value.size());
                        for (const row& rw : r.value) {
                          std::string key = rw[0].as_text().substr(op->prefix.size());
                          error_code ec;
                          diagnostics diag;
                          json value = decode(rw[1], key, ec, &diag);
                          if (ec) return op->fail_with(ec, std::move(diag));
                          out.push_back({std::move(key), std::move(value)});
                        }
                        op->succeed(std::move(out));
                      });
  }

 private:
  // The items of the view, those the filter matches, in key order, one page.
  static std::string search_sql(const search_op& op, params& args) {
    const search_query& q = op.query;
    if (q.limit < 1 || q.limit > memory::max_search_limit)
      throw error(errc::invalid_argument,
                  {"search: the limit is " + std::to_string(q.limit) + "; it must be 1 to " +
                       std::to_string(memory::max_search_limit),
                   {}});
    if (q.offset < 0)
      throw error(
          errc::invalid_argument,
          {"search: the offset is " + std::to_string(q.offset) + "; it must be 0 or more", {}});
    const sql_dialect d = op.st->db.dialect();
    detail::compiled_filter filter = detail::compile_json_filter(q.filter, d, "value");
    std::string sql = "SELECT key, value FROM memory" + where_matching(d, op.prefix, "%", args) +
                      " AND (" + filter.sql + ")" + order_by_key(d) + " LIMIT ? OFFSET ?";
    for (value& v : filter.bound) args.push_back(std::move(v));
    args.emplace_back(q.limit);
    args.emplace_back(q.offset);
    return sql;
  }

  std::string sql;
  params args;
};

struct clear_op : memory_op<std::int64_t> {
  using memory_op::memory_op;
  std::string pattern;

  static void start(std::shared_ptr<clear_op> op) { with_table(op, &clear_op::write); }
  static void write(std::shared_ptr<clear_op> op) {
    auto done = [](clear_op& o, std::int64_t rows) { o.succeed(rows); };
    params args;
    std::string sql =
        "DELETE FROM memory" + where_matching(op->st->db.dialect(), op->prefix, op->pattern, args);
    if (op->st->embeddings_possible()) {
      auto removed = std::make_shared<std::int64_t>(0);
      return vector_write(op, clear_body(std::move(sql), std::move(args), removed), removed, +done);
    }
    plain_write(op, std::move(sql), std::move(args), +done);
  }
};

// One row of one statement over the view's keys: size and stats.
template <class T>
struct count_op : memory_op<T> {
  using memory_op<T>::memory_op;
  // The statement (given the view's prefix, it adds its parameters) and what its row means.
  std::string (*sql_of)(const memory_shared&, const std::string& prefix, params&) = nullptr;
  T (*value_of)(const row&, const database&) = nullptr;

  static void start(std::shared_ptr<count_op> op) { with_table(op, &count_op::read); }
  static void read(std::shared_ptr<count_op> op) {
    params args;
    std::string sql = op->sql_of(*op->st, op->prefix, args);
    op->run.fetch_one(op->st->db, std::move(sql), std::move(args),
                      [op](step_result<std::optional<row>> r) {
                        if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
                        op->succeed(op->value_of(r.value.value(), op->st->db));
                      });
  }
};

std::string size_sql(const memory_shared& s, const std::string& prefix, params& args) {
  return "SELECT count(*) FROM memory" + where_matching(s.db.dialect(), prefix, "%", args);
}
std::int64_t size_of(const row& r, const database&) { return r.get<std::int64_t>(0); }

// The count and JSON bytes of the keys under `prefix`.
std::string stats_sql(const memory_shared& s, const std::string& prefix, params& args) {
  return "SELECT count(*), coalesce(sum(" + s.value_bytes + "), 0) FROM memory" +
         where_matching(s.db.dialect(), prefix, "%", args);
}
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

  static void start(std::shared_ptr<batch_store_op> op) { with_table(op, &batch_store_op::write); }
  static void write(std::shared_ptr<batch_store_op> op) {
    if (op->values->empty()) return op->succeed({});
    auto done = [op](step_result<std::monostate> r) {
      if (r.ec) return op->fail_with(r.ec, std::move(r.diag));
      op->succeed({});
    };
    if (op->st->embeddings_possible())
      return vector_transaction(op, batch_store_vector_body(op->values, op->prefix, op->st->batch),
                                std::move(done));
    op->run.transaction(op->st->db, batch_store_body(op->values, op->prefix, op->st->batch),
                        std::move(done));
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

  static void start(std::shared_ptr<batch_load_op> op) { with_table(op, &batch_load_op::read); }
  static void read(std::shared_ptr<batch_load_op> op) {
    if (op->keys.empty()) return op->succeed({});
    const std::size_t chunks = (op->keys.size() + memory::load_chunk - 1) / memory::load_chunk;
    {
      detail::lock_guard lk(op->mu);  // no chunk runs yet: uncontended
      op->out.reserve(op->keys.size());
      op->remaining = chunks;
    }
    op->chunk_runs = op->run.fan_out(chunks);
    for (std::size_t i = 0; i < chunks; ++i) {
      if (!op->run.is_async()) {  // inline, a failure ends the reading
        detail::unique_lock lk(op->mu);
        if (op->ec) {
          op->chunk_done(lk);
          continue;
        }
      }
      op->chunk_runs[i].fetch_all(
          op->st->db, batch_load_sql(), chunk_params(op->keys, i * memory::load_chunk, op->prefix),
          [op](step_result<database::rows> r) {
            detail::unique_lock lk(op->mu);
            if (!op->ec && r.ec) {
              op->ec = r.ec;
              op->first_failure = std::move(r.diag);
            } else if (!op->ec) {
              collect(r.value, op->prefix, op->out, op->ec, &op->first_failure);
            }
            op->chunk_done(lk);
          });
    }
  }
  // A chunk is done: `lk` holds mu, which is released. The last chunk ends the operation with
  // what the chunks found, taken under the lock, completing it without.
  void chunk_done(detail::unique_lock& lk) ENTITY_RELEASE(mu) {
    if (--remaining > 0) return lk.unlock(mu);
    error_code failed = ec;
    diagnostics failure = std::move(first_failure);
    memory::loaded found = std::move(out);
    lk.unlock(mu);
    if (failed) return fail_with(failed, std::move(failure));
    succeed(std::move(found));
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
    if (!op->attempt([&] {
          check_k(op->k);
          check_vector(op->query, "the query vector");
        }))
      return;
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
    op->run.fetch_all(op->st->db, op->st->values_of_keys, std::move(args),
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

memory::memory(database db, vector_store_params recall)
    : memory("", std::make_shared<shared>(db, recall)) {}

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

// store

namespace {
auto store_inputs(std::string& key, json& value) {
  return [&](store_op& op) {
    op.key = std::move(key);
    op.value = std::move(value);
  };
}
auto store_inputs(std::string& key, json& value, std::vector<float>& embedding) {
  return [&](store_embedded_op& op) {
    op.key = std::move(key);
    op.value = std::move(value);
    op.embedding = std::move(embedding);
  };
}
auto load_inputs(std::string& key) {
  return [&](load_op& op) { op.key = std::move(key); };
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
template <class T>
auto count_inputs(std::string (*sql_of)(const memory_shared&, const std::string&, params&),
                  T (*value_of)(const row&, const database&)) {
  return [sql_of, value_of](count_op<T>& op) {
    op.sql_of = sql_of;
    op.value_of = value_of;
  };
}
auto batch_store_inputs(memory::items& values) {
  return [&](batch_store_op& op) {
    op.values = std::make_shared<const memory::items>(std::move(values));
  };
}
auto batch_load_inputs(std::vector<std::string>& keys) {
  return [&](batch_load_op& op) { op.keys = std::move(keys); };
}
}  // namespace

void memory::store(std::string key, json value, error_code& ec, diagnostics& diag) const {
  run_inline<store_op>(shared_, prefix_, ec, diag, store_inputs(key, value));
}
void memory::store(std::string key, json value) const {
  detail::throwing(
      [&](error_code& ec, diagnostics& d) { store(std::move(key), std::move(value), ec, d); });
}
void memory::start_store(diagnostics* diag, void_handler h, std::string key, json value) const {
  run_async<store_op>(shared_, prefix_, diag, std::move(h), store_inputs(key, value));
}

void memory::store(std::string key, json value, std::vector<float> embedding, error_code& ec,
                   diagnostics& diag) const {
  run_inline<store_embedded_op>(shared_, prefix_, ec, diag, store_inputs(key, value, embedding));
}
void memory::store(std::string key, json value, std::vector<float> embedding) const {
  detail::throwing([&](error_code& ec, diagnostics& d) {
    store(std::move(key), std::move(value), std::move(embedding), ec, d);
  });
}
void memory::start_store_embedded(diagnostics* diag, void_handler h, std::string key, json value,
                                  std::vector<float> embedding) const {
  run_async<store_embedded_op>(shared_, prefix_, diag, std::move(h),
                               store_inputs(key, value, embedding));
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

// keys, clear

std::vector<std::string> memory::keys(std::string pattern, error_code& ec,
                                      diagnostics& diag) const {
  return run_inline<keys_op>(shared_, prefix_, ec, diag, pattern_inputs<keys_op>(pattern));
}
std::vector<std::string> memory::keys(std::string pattern) const {
  return detail::throwing(
      [&](error_code& ec, diagnostics& d) { return keys(std::move(pattern), ec, d); });
}
void memory::start_keys(diagnostics* diag, handler<std::vector<std::string>> h,
                        std::string pattern) const {
  run_async<keys_op>(shared_, prefix_, diag, std::move(h), pattern_inputs<keys_op>(pattern));
}

namespace {
auto search_inputs(search_query& q) {
  return [&](search_op& op) { op.query = std::move(q); };
}
}  // namespace

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

// size, stats

std::int64_t memory::size(error_code& ec, diagnostics& diag) const {
  return run_inline<count_op<std::int64_t>>(shared_, prefix_, ec, diag,
                                            count_inputs(&size_sql, &size_of));
}
std::int64_t memory::size() const {
  return detail::throwing([&](error_code& ec, diagnostics& d) { return size(ec, d); });
}
void memory::start_size(diagnostics* diag, handler<std::int64_t> h) const {
  run_async<count_op<std::int64_t>>(shared_, prefix_, diag, std::move(h),
                                    count_inputs(&size_sql, &size_of));
}

memory_stats memory::stats(error_code& ec, diagnostics& diag) const {
  return run_inline<count_op<memory_stats>>(shared_, prefix_, ec, diag,
                                            count_inputs(&stats_sql, &stats_of));
}
memory_stats memory::stats() const {
  return detail::throwing([&](error_code& ec, diagnostics& d) { return stats(ec, d); });
}
void memory::start_stats(diagnostics* diag, handler<memory_stats> h) const {
  run_async<count_op<memory_stats>>(shared_, prefix_, diag, std::move(h),
                                    count_inputs(&stats_sql, &stats_of));
}

// batches

void memory::batch_store(items values, error_code& ec, diagnostics& diag) const {
  run_inline<batch_store_op>(shared_, prefix_, ec, diag, batch_store_inputs(values));
}
void memory::batch_store(items values) const {
  detail::throwing([&](error_code& ec, diagnostics& d) { batch_store(std::move(values), ec, d); });
}
void memory::start_batch_store(diagnostics* diag, void_handler h, items values) const {
  run_async<batch_store_op>(shared_, prefix_, diag, std::move(h), batch_store_inputs(values));
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
