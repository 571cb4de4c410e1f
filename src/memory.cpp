#include "entity/memory.hpp"

#include <algorithm>
#include <atomic>
#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/system_executor.hpp>
#include <cmath>
#include <mutex>
#include <string_view>
#include <unordered_set>

#include "common/caller_binding.hpp"

namespace entity {
namespace asio = boost::asio;

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
struct memory::shared {
  enum class embeddings_state : int { unknown, absent, present };

  shared(const database& db, const vector_store_params& recall)
      : upsert(pg(db) ? "INSERT INTO memory (key, value) VALUES (?, ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                      : "INSERT OR REPLACE INTO memory (key, value) VALUES (?, ?)"),
        // Bytes, not characters: SQLite's length() of TEXT counts characters.
        value_bytes(pg(db) ? "octet_length(value)" : "length(CAST(value AS BLOB))"),
        // Any number of keys in one bound parameter (a JSON array of strings).
        values_of_keys(pg(db) ? "SELECT key, value FROM memory WHERE key IN "
                                "(SELECT jsonb_array_elements_text(CAST(? AS jsonb)))"
                              : "SELECT key, value FROM memory WHERE key IN "
                                "(SELECT value FROM json_each(?))"),
        vectors(db, recall) {
    if (!vector_store::valid_name(embeddings_collection))
      throw error(errc::invalid_argument, {"the embeddings collection name is not valid", {}});
  }
  static bool pg(const database& db) { return db.backend_name() == "postgres"; }

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

  const std::string upsert;
  const std::string value_bytes;
  const std::string values_of_keys;
  const vector_store vectors;
  std::atomic<bool> table_ready{false};
  std::atomic<embeddings_state> embeddings{embeddings_state::unknown};
};

namespace {

constexpr const char* create_sql =
    "CREATE TABLE IF NOT EXISTS memory (key TEXT PRIMARY KEY, value TEXT)";
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
  bool all_zero = true;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i]))
      throw error(errc::invalid_argument,
                  {what + " has " + (std::isnan(v[i]) ? "a NaN" : "an infinity") + " at index " +
                       std::to_string(i),
                   {}});
    if (v[i] != 0) all_zero = false;
  }
  if (all_zero)
    throw error(errc::invalid_argument,
                {what + " is zero: a cosine distance needs a direction", {}});
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
// comparison, unlike LIKE, which ignores ASCII case.
std::string where_matching(const std::string& prefix, const std::string& pattern, params& args) {
  if (prefix.empty()) {
    args.emplace_back(pattern);
    return " WHERE key LIKE ? ESCAPE '\\'";
  }
  std::string upper = prefix;
  upper.back() = static_cast<char>(upper.back() + 1);
  args.emplace_back(prefix);
  args.emplace_back(upper);
  args.emplace_back(escape_like(prefix) + pattern);
  return " WHERE key >= ? AND key < ? AND key LIKE ? ESCAPE '\\'";
}

std::string encode(const json& v, const std::string& key) {
  try {
    return v.dump();
  } catch (const json::exception& e) {
    throw error(errc::invalid_argument,
                {"the value of key '" + key + "' cannot be written as JSON: " + e.what(), {}});
  }
}

// Decodes a stored value; a value that is not JSON is reported with its key, never dropped.
json decode(const value& stored, const std::string& key, error_code& ec, diagnostics* diag) {
  if (stored.is_null()) return json(nullptr);
  const std::string* text = stored.is_text() ? &stored.as_text() : nullptr;
  std::string from_blob;
  if (!text && stored.is_blob()) {
    const auto& b = stored.as_blob().bytes;
    from_blob.assign(reinterpret_cast<const char*>(b.data()), b.size());
    text = &from_blob;
  }
  if (text) {
    json j = json::parse(*text, nullptr, false);
    if (!j.is_discarded()) return j;
  }
  ec = make_error_code(errc::decode_error);
  if (diag) {
    diag->clear();  // a caller's diagnostics may hold an earlier failure
    diag->message = "the stored value of key '" + key + "' is not valid JSON" +
                    (text ? ": " + sql_excerpt(*text) : std::string());
  }
  return json();
}

json decode_or_throw(const value& stored, const std::string& key) {
  error_code ec;
  diagnostics diag;
  json j = decode(stored, key, ec, &diag);
  throw_if(ec, diag);
  return j;
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

// Completes `h` with (ec, args...) outside the call that started the operation, as asio
// requires: through a thread of the system executor, then on the handler's own executor. A
// type-erased handler's executor cannot be required to be non-blocking, hence the hop.
template <class... A>
void complete_later(asio::any_completion_handler<void(error_code, A...)>& h, error_code ec,
                    std::type_identity_t<A>... args) {
  auto work = asio::make_work_guard(h);  // keeps the caller's executor running meanwhile
  asio::post(asio::system_executor(),
             [h = std::move(h), work = std::move(work), ec, ... args = std::move(args)]() mutable {
               auto ex = work.get_executor();
               asio::dispatch(ex, [h = std::move(h), ec, ... args = std::move(args)]() mutable {
                 std::move(h)(ec, std::move(args)...);
               });
             });
}

// Fails `h` with `ec` and empty results.
template <class... A>
void fail_later(asio::any_completion_handler<void(error_code, A...)>& h, error_code ec) {
  complete_later(h, ec, A{}...);
}

// The database's async calls, with or without the caller's diagnostics.
template <class Cont>
void run_execute(const database& db, std::string sql, params args, diagnostics* diag, Cont&& c) {
  if (diag)
    db.async_execute(std::move(sql), std::move(args), *diag, std::forward<Cont>(c));
  else
    db.async_execute(std::move(sql), std::move(args), std::forward<Cont>(c));
}
template <class Cont>
void run_fetch_one(const database& db, std::string sql, params args, diagnostics* diag, Cont&& c) {
  if (diag)
    db.async_fetch_one(std::move(sql), std::move(args), *diag, std::forward<Cont>(c));
  else
    db.async_fetch_one(std::move(sql), std::move(args), std::forward<Cont>(c));
}
template <class Cont>
void run_fetch_all(const database& db, std::string sql, params args, diagnostics* diag, Cont&& c) {
  if (diag)
    db.async_fetch_all(std::move(sql), std::move(args), *diag, std::forward<Cont>(c));
  else
    db.async_fetch_all(std::move(sql), std::move(args), std::forward<Cont>(c));
}
template <class Cont>
void run_transaction(const database& db, transaction_body body, diagnostics* diag, Cont&& c) {
  if (diag)
    db.async_transaction(std::move(body), *diag, std::forward<Cont>(c));
  else
    db.async_transaction(std::move(body), std::forward<Cont>(c));
}

// The first async use of a memory: creates the table without waiting for it, then `retry(h)`
// starts the operation again (the table is known from then on), or `h` fails with the
// creation's error. Waiting would block the caller's executor, and a caller running on the
// engine's writer thread (a plain callback of a write) would wait for itself forever. Each step
// continues on the caller's executor with the caller's cancellation slot: the operation
// `retry` starts connects that slot, which asio allows only where the caller may emit.
template <class H, class Retry>
void create_table_then(const database& db, std::shared_ptr<memory::shared> s, diagnostics* diag,
                       H h, Retry retry) {
  auto work = asio::make_work_guard(h);  // the caller's executor has nothing else to wait on
  auto to = detail::caller_of(h);        // before h moves into the continuation
  run_execute(db, create_sql, {}, diag,
              to([db, s = std::move(s), h = std::move(h), retry = std::move(retry),
                  work = std::move(work), to](error_code ec, result) mutable {
                if (ec) return fail_later(h, ec);
                // Then whether the embeddings collection exists (see memory::shared).
                db.async_fetch_one(
                    probe_sql, {collection_name()},
                    to([s = std::move(s), h = std::move(h), retry = std::move(retry),
                        work = std::move(work)](error_code ec, std::optional<row> r) mutable {
                      // Cancelled, the probe answered nothing: the next operation asks again.
                      if (ec == errc::cancelled) return fail_later(h, ec);
                      s->probed(ec, r.has_value());
                      s->table_ready.store(true, std::memory_order_release);
                      retry(std::move(h));
                    }));
              }));
}

template <class Cont>
void run_vector_transaction(const vector_store& vs, vector_transaction_body body, diagnostics* diag,
                            Cont&& c) {
  if (diag)
    vs.async_transaction(std::move(body), *diag, std::forward<Cont>(c));
  else
    vs.async_transaction(std::move(body), std::forward<Cont>(c));
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

vector_transaction_body erase_body(std::string full_key, std::shared_ptr<bool> existed) {
  return
      [full_key = std::move(full_key), existed = std::move(existed)](session& s, vector_writes& w) {
        *existed = s.execute(erase_sql, {full_key}).rows_affected > 0;
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

}  // namespace

memory::memory(database db, vector_store_params recall)
    : memory(db, "", std::make_shared<shared>(db, recall)) {}

const vector_store& memory::vectors() const noexcept { return shared_->vectors; }

memory::memory(database db, std::string prefix, std::shared_ptr<shared> s)
    : db_(std::move(db)), prefix_(std::move(prefix)), shared_(std::move(s)) {}

memory memory::scope(std::string_view name) const {
  if (name.empty()) throw error(errc::invalid_argument, {"a scope name must not be empty", {}});
  return memory(db_, prefix_ + std::string(name) + ":", shared_);
}

bool memory::table_known() const noexcept {
  return shared_->table_ready.load(std::memory_order_acquire);
}

// Several threads may each create the table on a first use at once: CREATE ... IF NOT EXISTS
// makes that harmless, so no lock is held across the statement.
void memory::ensure_table() const {
  if (table_known()) return;
  db_.execute(create_sql);
  error_code ec;
  diagnostics diag;
  auto found = db_.fetch_one(probe_sql, {collection_name()}, ec, diag);
  shared_->probed(ec, found.has_value());
  shared_->table_ready.store(true, std::memory_order_release);
}

// ---- sync ---------------------------------------------------------------------------------

void memory::store(std::string key, json value) const {
  ensure_table();
  if (!shared_->embeddings_possible()) {
    db_.execute(shared_->upsert, {prefix_ + key, encode(value, key)});
    return;
  }
  shared_->vectors.transaction(
      plain_store_body(shared_->upsert, prefix_ + key, encode(value, key)));
}

void memory::store(std::string key, json value, std::vector<float> embedding) const {
  check_vector(embedding, "the embedding of key '" + key + "'");
  std::string text = encode(value, key);
  ensure_table();
  std::string full_key = prefix_ + key;
  shared_->vectors.transaction(
      embedded_store_body(shared_->upsert, std::move(key), std::move(full_key), std::move(text),
                          std::make_shared<const std::vector<float>>(std::move(embedding))));
  shared_->embeddings_present();
}

memory::recollection memory::recall(std::vector<float> query, std::int64_t k) const {
  check_k(k);
  check_vector(query, "the query vector");
  ensure_table();
  json filter = scope_filter(prefix_);
  for (std::int64_t asked = k;;) {
    vector_store::matches found;
    try {
      found = shared_->vectors.search(collection_name(), query, asked, filter);
    } catch (const error& e) {
      if (e.code() == errc::not_found) return {};  // no embedding stored yet
      throw;
    }
    shared_->embeddings_present();
    if (found.empty()) return {};
    auto rows = db_.fetch_all(shared_->values_of_keys, keys_of(found));
    error_code ec;
    diagnostics diag;
    std::size_t stale = 0;
    recollection out = pick_recalled(found, rows, prefix_, stale, ec, &diag);
    throw_if(ec, diag);
    asked = next_round(out.size(), found.size(), asked, k);
    if (asked == 0) {
      if (out.size() > static_cast<std::size_t>(k)) out.resize(static_cast<std::size_t>(k));
      return out;
    }
  }
}

std::optional<json> memory::load(std::string key) const {
  ensure_table();
  auto r = db_.fetch_one(load_sql, {prefix_ + key});
  if (!r) return std::nullopt;
  return decode_or_throw((*r)[0], key);
}

json memory::load(std::string key, json default_value) const {
  auto v = load(std::move(key));
  return v ? std::move(*v) : std::move(default_value);
}

bool memory::erase(std::string key) const {
  ensure_table();
  if (!shared_->embeddings_possible())
    return db_.execute(erase_sql, {prefix_ + key}).rows_affected > 0;
  auto existed = std::make_shared<bool>(false);
  shared_->vectors.transaction(erase_body(prefix_ + key, existed));
  return *existed;
}

bool memory::exists(std::string key) const {
  ensure_table();
  return db_.fetch_one(exists_sql, {prefix_ + key}).has_value();
}

std::vector<std::string> memory::keys(std::string pattern) const {
  ensure_table();
  params args;
  std::string sql =
      "SELECT key FROM memory" + where_matching(prefix_, pattern, args) + " ORDER BY key";
  std::vector<std::string> out;
  for (const row& r : db_.fetch_all(std::move(sql), std::move(args)))
    out.push_back(r[0].as_text().substr(prefix_.size()));
  return out;
}

std::int64_t memory::clear(std::string pattern) const {
  ensure_table();
  params args;
  std::string sql = "DELETE FROM memory" + where_matching(prefix_, pattern, args);
  if (!shared_->embeddings_possible())
    return db_.execute(std::move(sql), std::move(args)).rows_affected;
  auto removed = std::make_shared<std::int64_t>(0);
  shared_->vectors.transaction(clear_body(std::move(sql), std::move(args), removed));
  return *removed;
}

std::int64_t memory::size() const {
  ensure_table();
  params args;
  std::string sql = "SELECT count(*) FROM memory" + where_matching(prefix_, "%", args);
  return db_.fetch_one(std::move(sql), std::move(args))->get<std::int64_t>(0);
}

namespace {
// The count and JSON bytes of the keys under `prefix`; read back by stats_of.
std::string stats_sql(const std::string& value_bytes, const std::string& prefix, params& args) {
  return "SELECT count(*), coalesce(sum(" + value_bytes + "), 0) FROM memory" +
         where_matching(prefix, "%", args);
}
memory_stats stats_of(const row& r, const database& db) {
  memory_stats s;
  s.keys = r.get<std::int64_t>(0);
  s.value_bytes = r.get<std::int64_t>(1);
  s.engine = db.stats();
  return s;
}
}  // namespace

memory_stats memory::stats() const {
  ensure_table();
  params args;
  std::string sql = stats_sql(shared_->value_bytes, prefix_, args);
  return stats_of(*db_.fetch_one(std::move(sql), std::move(args)), db_);
}

namespace {
// Items per INSERT of a batch_store: 256 bound values, far under either backend's limit.
constexpr std::size_t rows_per_insert = 128;

// `upsert` (one row: "... VALUES (?, ?) ...") made to insert `rows` rows.
std::string upsert_of_rows(const std::string& upsert, std::size_t rows) {
  constexpr std::string_view one = "(?, ?)";
  const std::size_t at = upsert.find(one);
  std::string sql = upsert.substr(0, at);
  for (std::size_t i = 0; i < rows; ++i) sql.append(i ? ", " : "").append(one);
  return sql + upsert.substr(at + one.size());
}

// The body of a batch_store: rows_per_insert items per statement, bound one chunk at a time,
// so nothing beyond the items and one chunk is held however many there are. A key met again
// within a chunk ends the chunk first: PostgreSQL's ON CONFLICT may not update a row twice in
// one statement, and the later value must win.
void batch_store_rows(session& s, const memory::items& values, const std::string& prefix,
                      const std::string& upsert) {
  const std::string full_chunk = upsert_of_rows(upsert, rows_per_insert);
  params args;
  args.reserve(2 * rows_per_insert);
  std::unordered_set<std::string_view> chunk_keys;
  auto write_chunk = [&] {
    const std::size_t rows = args.size() / 2;
    s.execute(rows == rows_per_insert ? full_chunk : upsert_of_rows(upsert, rows), args);
    args.clear();
    chunk_keys.clear();
  };
  for (const auto& [key, v] : values) {
    if (chunk_keys.contains(key)) write_chunk();
    chunk_keys.insert(key);
    args.emplace_back(prefix + key);
    args.emplace_back(encode(v, key));
    if (chunk_keys.size() == rows_per_insert) write_chunk();
  }
  if (!args.empty()) write_chunk();
}
transaction_body batch_store_body(std::shared_ptr<const memory::items> values, std::string prefix,
                                  std::string upsert) {
  return [values = std::move(values), prefix = std::move(prefix),
          upsert = std::move(upsert)](session& s) { batch_store_rows(s, *values, prefix, upsert); };
}
// The same, removing the embeddings the keys had.
vector_transaction_body batch_store_vector_body(std::shared_ptr<const memory::items> values,
                                                std::string prefix, std::string upsert) {
  return [values = std::move(values), prefix = std::move(prefix), upsert = std::move(upsert)](
             session& s, vector_writes& w) {
    batch_store_rows(s, *values, prefix, upsert);
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
}  // namespace

void memory::batch_store(items values) const {
  ensure_table();
  if (values.empty()) return;
  auto shared_values = std::make_shared<const items>(std::move(values));
  if (shared_->embeddings_possible())
    return shared_->vectors.transaction(
        batch_store_vector_body(std::move(shared_values), prefix_, shared_->upsert));
  db_.transaction(batch_store_body(std::move(shared_values), prefix_, shared_->upsert));
}

memory::loaded memory::batch_load(std::vector<std::string> keys) const {
  ensure_table();
  loaded out;
  out.reserve(keys.size());
  for (std::size_t from = 0; from < keys.size(); from += load_chunk) {
    auto rows = db_.fetch_all(batch_load_sql(), chunk_params(keys, from, prefix_));
    error_code ec;
    diagnostics diag;
    collect(rows, prefix_, out, ec, &diag);
    throw_if(ec, diag);
  }
  return out;
}

// ---- async --------------------------------------------------------------------------------
// Each continuation is bound to the executor of the caller's handler: the database dispatches
// it there, so the handler runs where asio's rules say it must.

void memory::start_store(diagnostics* diag, void_handler h, std::string key, json value) const {
  if (!table_known())
    return create_table_then(db_, shared_, diag, std::move(h),
                             [self = *this, diag, key = std::move(key),
                              value = std::move(value)](void_handler h) mutable {
                               self.start_store(diag, std::move(h), std::move(key),
                                                std::move(value));
                             });
  std::string text;
  try {
    text = encode(value, key);
  } catch (const error& e) {
    if (diag) *diag = e.diag();
    return fail_later(h, e.code());
  }
  auto to = detail::caller_of(h);  // before h moves into the continuation
  if (shared_->embeddings_possible()) {
    auto cont = to([h = std::move(h)](error_code ec) mutable { std::move(h)(ec); });
    return run_vector_transaction(shared_->vectors,
                                  plain_store_body(shared_->upsert, prefix_ + key, std::move(text)),
                                  diag, std::move(cont));
  }
  auto cont = to([h = std::move(h)](error_code ec, result) mutable { std::move(h)(ec); });
  run_execute(db_, shared_->upsert, {prefix_ + key, std::move(text)}, diag, std::move(cont));
}

void memory::start_store_embedded(diagnostics* diag, void_handler h, std::string key, json value,
                                  std::vector<float> embedding) const {
  std::string text;
  try {
    check_vector(embedding, "the embedding of key '" + key + "'");
    text = encode(value, key);
  } catch (const error& e) {
    if (diag) *diag = e.diag();
    return fail_later(h, e.code());
  }
  if (!table_known())
    return create_table_then(db_, shared_, diag, std::move(h),
                             [self = *this, diag, key = std::move(key), value = std::move(value),
                              embedding = std::move(embedding)](void_handler h) mutable {
                               self.start_store_embedded(diag, std::move(h), std::move(key),
                                                         std::move(value), std::move(embedding));
                             });
  auto to = detail::caller_of(h);  // before h moves into the continuation
  auto cont = to([h = std::move(h), s = shared_](error_code ec) mutable {
    if (!ec) s->embeddings_present();
    s.reset();  // see recall_op::finish
    std::move(h)(ec);
  });
  std::string full_key = prefix_ + key;
  run_vector_transaction(
      shared_->vectors,
      embedded_store_body(shared_->upsert, std::move(key), std::move(full_key), std::move(text),
                          std::make_shared<const std::vector<float>>(std::move(embedding))),
      diag, std::move(cont));
}

namespace {

// An asynchronous recall: rounds of (search, then the current values of what it found) on the
// caller's executor until k memories are found or there are no more.
struct recall_op : std::enable_shared_from_this<recall_op> {
  recall_op(memory::handler<memory::recollection> handler, detail::caller_binding caller,
            const memory& m, std::vector<float> q, std::int64_t n, diagnostics* d)
      : h(std::move(handler)),
        to(std::move(caller)),
        db(m.db()),
        prefix(m.prefix()),
        query(std::move(q)),
        filter(scope_filter(prefix)),
        k(n),
        asked(n),
        diag(d) {}
  memory::handler<memory::recollection> h;  // only ever move-constructed (Boost 1.81)
  detail::caller_binding to;   // each step, one after the other, runs with the caller's slot
  std::optional<database> db;  // with `shared`, let go before the handler runs
  std::string values_sql;
  std::string prefix;
  std::vector<float> query;
  json filter;
  std::int64_t k;
  std::int64_t asked;
  diagnostics* diag;
  diagnostics step_diag;  // the steps' own, copied to the caller's on failure
  std::shared_ptr<memory::shared> shared;

  // The engine is let go before the caller hears the end: a caller who then drops its own
  // handles must not leave the engine's last owner on one of the engine's threads (this op
  // dies on the thread that ran the last step), which cannot shut the engine down from there.
  void finish(error_code ec, memory::recollection out) {
    db.reset();
    shared.reset();
    if (ec && diag) *diag = std::move(step_diag);
    if (ec) out.clear();
    std::move(h)(ec, std::move(out));
  }

  void search() {
    auto self = shared_from_this();
    shared->vectors.async_search(collection_name(), query, asked, filter, search_mode::approximate,
                                 step_diag,
                                 to([self](error_code ec, vector_store::matches found) mutable {
                                   if (ec == errc::not_found) return self->finish({}, {});
                                   if (ec) return self->finish(ec, {});
                                   self->fetch(std::move(found));
                                 }));
  }

  void fetch(vector_store::matches found);
};

}  // namespace

void memory::start_recall(diagnostics* diag, handler<recollection> h, std::vector<float> query,
                          std::int64_t k) const {
  try {
    check_k(k);
    check_vector(query, "the query vector");
  } catch (const error& e) {
    if (diag) *diag = e.diag();
    return fail_later(h, e.code());
  }
  if (!table_known())
    return create_table_then(
        db_, shared_, diag, std::move(h),
        [self = *this, diag, query = std::move(query), k](handler<recollection> h) mutable {
          self.start_recall(diag, std::move(h), std::move(query), k);
        });
  auto to = detail::caller_of(h);  // before h moves into the operation
  auto op = std::make_shared<recall_op>(std::move(h), to, *this, std::move(query), k, diag);
  op->values_sql = shared_->values_of_keys;
  op->shared = shared_;
  op->search();
}

void recall_op::fetch(vector_store::matches found) {
  shared->embeddings_present();
  if (found.empty()) return finish({}, {});
  auto self = shared_from_this();
  params args = keys_of(found);
  db->async_fetch_all(
      values_sql, std::move(args), step_diag,
      to([self, found = std::move(found)](error_code ec, std::vector<row> rows) mutable {
        if (ec) return self->finish(ec, {});
        std::size_t stale = 0;
        memory::recollection out =
            pick_recalled(found, rows, self->prefix, stale, ec, &self->step_diag);
        if (ec) return self->finish(ec, {});
        self->asked = next_round(out.size(), found.size(), self->asked, self->k);
        if (self->asked != 0) return self->search();
        if (out.size() > static_cast<std::size_t>(self->k))
          out.resize(static_cast<std::size_t>(self->k));
        self->finish({}, std::move(out));
      }));
}

void memory::start_load(diagnostics* diag, handler<std::optional<json>> h, std::string key) const {
  if (!table_known())
    return create_table_then(
        db_, shared_, diag, std::move(h),
        [self = *this, diag, key = std::move(key)](handler<std::optional<json>> h) mutable {
          self.start_load(diag, std::move(h), std::move(key));
        });
  std::string stored_key = prefix_ + key;
  auto to = detail::caller_of(h);  // before h moves into the continuation
  auto cont = to(
      [h = std::move(h), key = std::move(key), diag](error_code ec, std::optional<row> r) mutable {
        std::optional<json> out;
        if (!ec && r) out = decode((*r)[0], key, ec, diag);
        if (ec) out.reset();
        std::move(h)(ec, std::move(out));
      });
  run_fetch_one(db_, load_sql, {std::move(stored_key)}, diag, std::move(cont));
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

void memory::start_erase(diagnostics* diag, handler<bool> h, std::string key) const {
  if (!table_known())
    return create_table_then(db_, shared_, diag, std::move(h),
                             [self = *this, diag, key = std::move(key)](handler<bool> h) mutable {
                               self.start_erase(diag, std::move(h), std::move(key));
                             });
  auto to = detail::caller_of(h);  // before h moves into the continuation
  if (shared_->embeddings_possible()) {
    auto existed = std::make_shared<bool>(false);
    auto cont = to(
        [h = std::move(h), existed](error_code ec) mutable { std::move(h)(ec, !ec && *existed); });
    return run_vector_transaction(shared_->vectors, erase_body(prefix_ + key, existed), diag,
                                  std::move(cont));
  }
  auto cont = to([h = std::move(h)](error_code ec, result r) mutable {
    std::move(h)(ec, !ec && r.rows_affected > 0);
  });
  run_execute(db_, erase_sql, {prefix_ + key}, diag, std::move(cont));
}

void memory::start_exists(diagnostics* diag, handler<bool> h, std::string key) const {
  if (!table_known())
    return create_table_then(db_, shared_, diag, std::move(h),
                             [self = *this, diag, key = std::move(key)](handler<bool> h) mutable {
                               self.start_exists(diag, std::move(h), std::move(key));
                             });
  auto to = detail::caller_of(h);  // before h moves into the continuation
  auto cont = to([h = std::move(h)](error_code ec, std::optional<row> r) mutable {
    std::move(h)(ec, !ec && r.has_value());
  });
  run_fetch_one(db_, exists_sql, {prefix_ + key}, diag, std::move(cont));
}

void memory::start_keys(diagnostics* diag, handler<std::vector<std::string>> h,
                        std::string pattern) const {
  if (!table_known())
    return create_table_then(db_, shared_, diag, std::move(h),
                             [self = *this, diag, pattern = std::move(pattern)](
                                 handler<std::vector<std::string>> h) mutable {
                               self.start_keys(diag, std::move(h), std::move(pattern));
                             });
  params args;
  std::string sql =
      "SELECT key FROM memory" + where_matching(prefix_, pattern, args) + " ORDER BY key";
  auto to = detail::caller_of(h);  // before h moves into the continuation
  auto cont =
      to([h = std::move(h), n = prefix_.size()](error_code ec, std::vector<row> rows) mutable {
        std::vector<std::string> out;
        if (!ec) {
          out.reserve(rows.size());
          for (const row& r : rows) out.push_back(r[0].as_text().substr(n));
        }
        std::move(h)(ec, std::move(out));
      });
  run_fetch_all(db_, std::move(sql), std::move(args), diag, std::move(cont));
}

void memory::start_clear(diagnostics* diag, handler<std::int64_t> h, std::string pattern) const {
  if (!table_known())
    return create_table_then(
        db_, shared_, diag, std::move(h),
        [self = *this, diag, pattern = std::move(pattern)](handler<std::int64_t> h) mutable {
          self.start_clear(diag, std::move(h), std::move(pattern));
        });
  params args;
  std::string sql = "DELETE FROM memory" + where_matching(prefix_, pattern, args);
  auto to = detail::caller_of(h);  // before h moves into the continuation
  if (shared_->embeddings_possible()) {
    auto removed = std::make_shared<std::int64_t>(0);
    auto cont = to([h = std::move(h), removed](error_code ec) mutable {
      std::move(h)(ec, ec ? 0 : *removed);
    });
    return run_vector_transaction(shared_->vectors,
                                  clear_body(std::move(sql), std::move(args), removed), diag,
                                  std::move(cont));
  }
  auto cont = to([h = std::move(h)](error_code ec, result r) mutable {
    std::move(h)(ec, ec ? 0 : r.rows_affected);
  });
  run_execute(db_, std::move(sql), std::move(args), diag, std::move(cont));
}

void memory::start_size(diagnostics* diag, handler<std::int64_t> h) const {
  if (!table_known())
    return create_table_then(db_, shared_, diag, std::move(h),
                             [self = *this, diag](handler<std::int64_t> h) mutable {
                               self.start_size(diag, std::move(h));
                             });
  params args;
  std::string sql = "SELECT count(*) FROM memory" + where_matching(prefix_, "%", args);
  auto to = detail::caller_of(h);  // before h moves into the continuation
  auto cont = to([h = std::move(h)](error_code ec, std::optional<row> r) mutable {
    std::move(h)(ec, (!ec && r) ? r->get<std::int64_t>(0) : 0);
  });
  run_fetch_one(db_, std::move(sql), std::move(args), diag, std::move(cont));
}

void memory::start_stats(diagnostics* diag, handler<memory_stats> h) const {
  if (!table_known())
    return create_table_then(db_, shared_, diag, std::move(h),
                             [self = *this, diag](handler<memory_stats> h) mutable {
                               self.start_stats(diag, std::move(h));
                             });
  params args;
  std::string sql = stats_sql(shared_->value_bytes, prefix_, args);
  auto to = detail::caller_of(h);  // before h moves into the continuation
  auto cont = to([h = std::move(h), db = db_](error_code ec, std::optional<row> r) mutable {
    std::move(h)(ec, (!ec && r) ? stats_of(*r, db) : memory_stats{});
  });
  run_fetch_one(db_, std::move(sql), std::move(args), diag, std::move(cont));
}

void memory::start_batch_store(diagnostics* diag, void_handler h, items values) const {
  if (!table_known())
    return create_table_then(
        db_, shared_, diag, std::move(h),
        [self = *this, diag, values = std::move(values)](void_handler h) mutable {
          self.start_batch_store(diag, std::move(h), std::move(values));
        });
  if (values.empty()) return complete_later(h, error_code{});
  auto to = detail::caller_of(h);  // before h moves into the continuation
  auto cont = to([h = std::move(h)](error_code ec) mutable { std::move(h)(ec); });
  auto shared_values = std::make_shared<const items>(std::move(values));
  if (shared_->embeddings_possible())
    return run_vector_transaction(
        shared_->vectors,
        batch_store_vector_body(std::move(shared_values), prefix_, shared_->upsert), diag,
        std::move(cont));
  run_transaction(db_, batch_store_body(std::move(shared_values), prefix_, shared_->upsert), diag,
                  std::move(cont));
}

void memory::start_batch_load(diagnostics* diag, handler<loaded> h,
                              std::vector<std::string> keys) const {
  if (!table_known())
    return create_table_then(
        db_, shared_, diag, std::move(h),
        [self = *this, diag, keys = std::move(keys)](handler<loaded> h) mutable {
          self.start_batch_load(diag, std::move(h), std::move(keys));
        });
  if (keys.empty()) return complete_later(h, error_code{}, loaded{});
  // The chunks run concurrently on the readers; the last one to finish completes the handler.
  // Each chunk has diagnostics of its own: the engine fills them from its own threads.
  struct gather {
    // Boost 1.81's any_completion_handler move-assignment wraps the handler in itself; only
    // ever move-construct it.
    gather(handler<loaded> handler, std::size_t chunks, diagnostics* caller)
        : remaining(chunks), h(std::move(handler)), diag(caller) {
      if (diag) chunk_diags.resize(chunks);
    }
    std::mutex mu;
    std::size_t remaining;
    error_code ec;
    loaded out;
    handler<loaded> h;
    diagnostics* diag;
    std::vector<diagnostics> chunk_diags;
    diagnostics first_failure;
    std::shared_ptr<detail::cancellation_fan_out> cancel;  // lives as long as the chunks
  };
  const std::size_t chunks = (keys.size() + load_chunk - 1) / load_chunk;
  auto to = detail::caller_of(h);  // before h moves into the state
  auto state = std::make_shared<gather>(std::move(h), chunks, diag);
  state->out.reserve(keys.size());
  // The chunks wait side by side: each needs a cancellation slot of its own.
  if (to.slot.is_connected())
    state->cancel = detail::cancellation_fan_out::connect(to.slot, chunks);
  for (std::size_t i = 0; i < chunks; ++i) {
    diagnostics* chunk_diag = diag ? &state->chunk_diags[i] : nullptr;
    detail::caller_binding chunk_to{
        to.executor, state->cancel ? state->cancel->slot(i) : asio::cancellation_slot()};
    auto cont =
        chunk_to([state, chunk_diag, prefix = prefix_](error_code ec, std::vector<row> rows) {
          std::unique_lock lk(state->mu);
          if (ec) {
            if (!state->ec && chunk_diag) state->first_failure = std::move(*chunk_diag);
          } else if (!state->ec) {
            collect(rows, prefix, state->out, ec, state->diag ? &state->first_failure : nullptr);
          }
          if (ec && !state->ec) state->ec = ec;
          if (--state->remaining > 0) return;
          lk.unlock();
          if (state->ec) {
            state->out.clear();
            if (state->diag) *state->diag = std::move(state->first_failure);
          }
          std::move(state->h)(state->ec, std::move(state->out));
        });
    run_fetch_all(db_, batch_load_sql(), chunk_params(keys, i * load_chunk, prefix_), chunk_diag,
                  std::move(cont));
  }
}

}  // namespace entity
