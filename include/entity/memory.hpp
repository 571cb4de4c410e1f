// entity-db layer 3: an agent's memory (the seed's AsyncMemory).
//
// JSON values under string keys, in exactly the seed's table
//   memory(key TEXT PRIMARY KEY, value TEXT)   -- value holds JSON text
// so a memory file written by the Python Entity framework opens here and the other way round.
// The table is created on first use. Every operation exists async (any asio completion token)
// and sync (throws entity::error); a missing key is not an error.
//
// Semantic recall. A value may be stored with an embedding (store(key, value, embedding));
// recall(query, k) returns the k memories whose embeddings are nearest to `query`. Embeddings
// live in the vector collection embeddings_collection ("memory_embeddings", table
// vec_memory_embeddings, cosine distance) of the same database, managed by the vector store
// (vector_store.hpp): the collection is created by the first embedding stored, and its dimension
// is that embedding's. A value and its embedding are written in one transaction, so they commit
// together or not at all. Storing a value without an embedding removes the embedding the key had
// (a replaced value never keeps the meaning of the old one); erase and clear remove embeddings
// with their keys. The embedding's metadata records a digest of the value it was stored with and
// the scopes its key lies in; recall only returns a memory whose current value still has that
// digest, so a value replaced by another writer (another process, an older program that knows
// nothing of embeddings) is never recalled through its old embedding. Works on every backend the
// vector store works on (SQLite and PostgreSQL).
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "entity/database.hpp"
#include "entity/detail/initiate.hpp"
#include "entity/json.hpp"
#include "entity/vector_store.hpp"

namespace entity {

/// One recalled memory: its key (relative to the view it was recalled through), its value and
/// the cosine distance of its embedding to the query (1 - cos, in [0, 2]; smaller is nearer).
struct recalled {
  std::string key;
  json value;
  float distance = 0;
};

/// The clock of item times: milliseconds since the Unix epoch, as they are stored.
using memory_clock = std::chrono::system_clock;
using memory_time = std::chrono::time_point<memory_clock, std::chrono::milliseconds>;

/// How a memory behaves beyond its table (see README, "Expiry and time" and "Searching memory").
/// Every field has a documented default.
struct memory_params {
  /// `recall` tuning: the embeddings collection's HNSW settings.
  vector_store_params recall = {};
  /// The time to live of an item stored without one; none (the default): such items never
  /// expire.
  std::optional<std::chrono::milliseconds> default_ttl;
  /// A load, batch_load or search that returns an item with a time to live starts its time to
  /// live again from the read. Default false.
  bool refresh_on_read = false;
  /// Expired items are deleted in the background at most once per sweep_interval, by a
  /// sweep an operation of this memory starts when the interval has passed. Zero: only
  /// memory::sweep() deletes them. Default 60 s. Expired items are invisible either way.
  std::chrono::milliseconds sweep_interval = std::chrono::seconds(60);
  /// Items deleted per transaction of a sweep. Default 1000.
  std::int64_t sweep_batch = 1000;
  /// The fields of a value the full-text index covers, as dotted paths ("title", "note.body"):
  /// their string leaves. Empty (the default): every string leaf of the value.
  std::vector<std::string> text_fields;
  /// Where "now" comes from (tests set a clock of their own). Default: memory_clock::now.
  std::function<memory_time()> clock;
};

/// A window on item times for keys() and search(): an item matches when each bound given
/// holds (after: strictly later; before: strictly earlier). Items written by another program
/// that knows nothing of times (the Python original) have none, and match no bound.
struct time_window {
  std::optional<memory_time> created_after, created_before;
  std::optional<memory_time> updated_after, updated_before;
  bool empty() const noexcept {
    return !created_after && !created_before && !updated_after && !updated_before;
  }
};

/// What memory::search looks for (see README, "Searching memory", for the filter language and
/// the ranking).
struct search_query {
  /// A filter on the stored value, in the language of mem0 and MongoDB: {"a.b": 1},
  /// {"n": {"$gte": 3}}, {"$or": [...]}, with $eq $ne $gt $gte $lt $lte $in $nin $exists
  /// $contains, $and $or $not, on dotted paths of plain names. {} (the default) matches every
  /// item. Every path and value is a bound parameter.
  json filter = json::object();
  /// Full-text: items whose indexed text holds any of the words of `text`, best first (BM25 on
  /// SQLite, ts_rank on PostgreSQL). Words are runs of letters and digits, compared without
  /// ASCII case. Empty (the default): no text signal.
  std::string text;
  /// Semantic: items whose embeddings are nearest to `vector` (cosine). Empty (the default): no
  /// vector signal.
  std::vector<float> vector;
  /// Only items whose times fall in this window.
  time_window times;
  std::int64_t limit = 10;  ///< at most this many results, 1 to max_search_limit
  std::int64_t offset = 0;  ///< results skipped first (0 or more)
};

/// One result of memory::search: a key (relative to the view searched), its value, its times
/// and how it ranked.
struct search_hit {
  std::string key;
  json value;
  /// Higher is better. Filter only: 0. Text only: the text relevance (-bm25 on SQLite, ts_rank
  /// on PostgreSQL). Vector only: the cosine similarity (1 - distance). Text and vector: the
  /// reciprocal rank fusion of the two (memory::rrf_k).
  double score = 0;
  bool matched_text = false;    ///< found by the text signal
  bool matched_vector = false;  ///< found by the vector signal
  std::optional<memory_time> created, updated;
};

/// An item with its times (memory::load_item, memory::restore).
struct memory_item {
  std::string key;
  json value;
  std::optional<memory_time> created;  ///< none for an item written by another program
  std::optional<memory_time> updated;
  std::optional<memory_time> expires;  ///< none: it never expires
  /// The time to live it was stored with, which refresh_on_read starts again; none without.
  std::optional<std::chrono::milliseconds> ttl;
};

struct memory_stats {
  std::int64_t keys = 0;         ///< keys in this memory (or scope)
  std::int64_t value_bytes = 0;  ///< bytes of JSON text they hold
  infrastructure_stats engine;   ///< the engine's counters
};

/// A memory over a database. Cheap to copy; copies share the database.
/// Thread safety: any thread may call any member, on one memory or on copies of it.
///
/// Every operation has three forms, one implementation beneath:
///   op(args...)                      throws entity::error;
///   op(args..., error_code&, diagnostics&)  sets them on failure and returns an empty value;
///   async_op(args..., [diagnostics&,] token)  any asio completion token.
/// Errors, on every form: the engine's own (not_started, shut_down, query_timeout,
/// pool_exhausted, cancelled for async), the backend's (condition::busy, ::io, ...), and the
/// ones each operation names below. A missing key is never an error.
class memory {
 public:
  using items = std::vector<std::pair<std::string, json>>;
  using loaded = std::unordered_map<std::string, json>;
  using recollection = std::vector<recalled>;
  using search_results = std::vector<search_hit>;

  /// The largest search_query::limit.
  static constexpr std::int64_t max_search_limit = 10'000;

  /// The vector collection holding the embeddings of the memory table.
  static constexpr std::string_view embeddings_collection = "memory_embeddings";
  template <class T>
  using handler = boost::asio::any_completion_handler<void(error_code, T)>;
  using void_handler = boost::asio::any_completion_handler<void(error_code)>;

  /// Keys of a batch_load are looked up this many at a time (well under SQLite's limit of
  /// bound parameters).
  static constexpr std::size_t load_chunk = 500;

  /// The default time to live of store() and batch_store(): memory_params::default_ttl.
  /// A ttl is either positive or no_expiry (the item never expires, whatever the default).
  using ttl = std::optional<std::chrono::milliseconds>;
  static constexpr std::chrono::milliseconds no_expiry = std::chrono::milliseconds::max();

  /// The constant k of search's reciprocal rank fusion: an item's score is the sum over the
  /// signals that found it of 1 / (rrf_k + its rank there), ranks from 1.
  static constexpr double rrf_k = 60;

  explicit memory(database db, memory_params settings = {});
  /// `recall` tuning: the embeddings collection's HNSW settings (vector_store_params).
  memory(database db, vector_store_params recall);

  /// A view whose keys live under "<name>:" inside this memory's keyspace, isolated from other
  /// scopes: every read, clear, sweep, search and recall sees only its own keys (names are compared
  /// byte for byte: "User" and "user" are two scopes, and '%' or '_' in a name are plain
  /// characters). A scope of a scope nests: scope("a").scope("b") is the same view as scope("a:b"),
  /// and scope("a") sees its keys as "b:<key>". The file format does not change. Throws
  /// invalid_argument for an empty name or one that is not UTF-8.
  memory scope(std::string_view name) const;
  /// The key prefix of this view ("" for the whole memory).
  const std::string& prefix() const noexcept { return prefix_; }
  const database& db() const noexcept;
  /// The vector store behind recall (it shares its in-memory index with this memory).
  const vector_store& vectors() const noexcept;

  // ---- sync -----------------------------------------------------------------------------

  /// Stores `value` under `key`. A key that had an embedding loses it. invalid_argument when
  /// the key is not UTF-8 (valid_utf8) or the value cannot be written as JSON faithfully: text
  /// that is not UTF-8, a NaN or infinity, nesting deeper than max_json_depth (json.hpp);
  /// nothing is written.
  /// With a `time_to_live` (or memory_params::default_ttl), the item expires that long after
  /// the store: from then on no read sees it, and a sweep deletes it. Storing a key again
  /// replaces its time to live (none given: the default's). invalid_argument for a ttl that
  /// is zero or negative.
  void store(std::string key, json value) const;
  void store(std::string key, json value, error_code& ec, diagnostics& diag) const;
  void store(std::string key, json value, std::chrono::milliseconds time_to_live) const;
  void store(std::string key, json value, std::chrono::milliseconds time_to_live, error_code& ec,
             diagnostics& diag) const;
  /// Stores `value` under `key` with its `embedding`, both in one transaction. Fails with
  /// dimension_mismatch when the memory's embeddings have another dimension, invalid_argument
  /// for an empty embedding, a NaN or infinity, or a vector without a direction for cosine
  /// (zero, or whose float32 norm underflows to 0 or overflows); for a key or value store()
  /// refuses. On failure nothing is written.
  void store(std::string key, json value, std::vector<float> embedding) const;
  void store(std::string key, json value, std::vector<float> embedding, error_code& ec,
             diagnostics& diag) const;
  void store(std::string key, json value, std::vector<float> embedding,
             std::chrono::milliseconds time_to_live) const;
  void store(std::string key, json value, std::vector<float> embedding,
             std::chrono::milliseconds time_to_live, error_code& ec, diagnostics& diag) const;
  /// The value, or nullopt when the key is absent. A stored value that is not JSON, or is
  /// nested deeper than max_json_depth (written by another program), fails with decode_error
  /// naming the key.
  std::optional<json> load(std::string key) const;
  std::optional<json> load(std::string key, error_code& ec, diagnostics& diag) const;
  json load(std::string key, json default_value) const;
  json load(std::string key, json default_value, error_code& ec, diagnostics& diag) const;
  /// The item with its times, or nullopt when the key is absent (or expired).
  std::optional<memory_item> load_item(std::string key) const;
  std::optional<memory_item> load_item(std::string key, error_code& ec, diagnostics& diag) const;
  /// Removes the key; true when it existed.
  bool erase(std::string key) const;
  bool erase(std::string key, error_code& ec, diagnostics& diag) const;
  bool exists(std::string key) const;
  bool exists(std::string key, error_code& ec, diagnostics& diag) const;
  /// Keys matching a LIKE pattern ('%' any run, '_' one character; letter case as the backend's
  /// LIKE has it: SQLite matches ASCII letters of either case), sorted.
  std::vector<std::string> keys(std::string pattern = "%") const;
  std::vector<std::string> keys(std::string pattern, error_code& ec, diagnostics& diag) const;
  /// The same, only the items whose times fall in `window`.
  std::vector<std::string> keys(std::string pattern, time_window window) const;
  std::vector<std::string> keys(std::string pattern, time_window window, error_code& ec,
                                diagnostics& diag) const;
  /// The scopes of this view that hold items, like LangGraph's list_namespaces: the scope path
  /// of every key ("a:b" for the key "a:b:note"), cut to its first `max_depth` names and each
  /// listed once, sorted. With a `prefix` (a scope path: "user-42" or "user-42:session-7"),
  /// only that scope and the scopes inside it (by whole names: "user-4" is not a prefix of
  /// "user-42"). invalid_argument for max_depth 0 or a prefix that is not UTF-8.
  std::vector<std::string> scopes(std::string prefix = {},
                                  std::size_t max_depth = static_cast<std::size_t>(-1)) const;
  std::vector<std::string> scopes(std::string prefix, std::size_t max_depth, error_code& ec,
                                  diagnostics& diag) const;
  /// Deletes this view's expired items now, memory_params::sweep_batch per transaction, each
  /// batch found through the index on the expiry time; returns how many.
  std::int64_t sweep() const;
  std::int64_t sweep(error_code& ec, diagnostics& diag) const;
  /// Removes the keys matching a LIKE pattern; returns how many.
  std::int64_t clear(std::string pattern = "%") const;
  std::int64_t clear(std::string pattern, error_code& ec, diagnostics& diag) const;
  std::int64_t size() const;
  std::int64_t size(error_code& ec, diagnostics& diag) const;
  memory_stats stats() const;
  memory_stats stats(error_code& ec, diagnostics& diag) const;
  /// Stores every item in one transaction: all or nothing, any number of items.
  /// invalid_argument for a key or value store() refuses (nothing is written).
  void batch_store(items values) const;
  void batch_store(items values, error_code& ec, diagnostics& diag) const;
  /// The same, every item with this time to live (see store).
  void batch_store(items values, std::chrono::milliseconds time_to_live) const;
  void batch_store(items values, std::chrono::milliseconds time_to_live, error_code& ec,
                   diagnostics& diag) const;
  /// Stores items as they were (what load_item returned, a backup), in one transaction: all or
  /// nothing, any number of items, the later of a key given twice winning. Each keeps its
  /// created and updated times and its expiry; a time not given is what store() would give
  /// (created: now, or kept when the key holds a live item; updated: now), and an expiry not
  /// given is `ttl` from now when the item has a ttl, else none. An expiry in the past stores
  /// an item no read sees (the next sweep deletes it). invalid_argument for a key or value
  /// store() refuses and for a ttl it refuses (nothing is written). The keys' embeddings go,
  /// as with store().
  void restore(std::vector<memory_item> restored) const;
  void restore(std::vector<memory_item> restored, error_code& ec, diagnostics& diag) const;
  /// The values of the keys that exist; missing keys are omitted. Any number of keys: they are
  /// looked up load_chunk at a time. decode_error naming the key for a value load() cannot
  /// decode.
  loaded batch_load(std::vector<std::string> keys) const;
  loaded batch_load(std::vector<std::string> keys, error_code& ec, diagnostics& diag) const;
  /// The `k` memories of this view whose embeddings are nearest to `query`, nearest first (ties
  /// by key). Approximate (HNSW) once the embeddings outnumber the vector store's
  /// hnsw_threshold, exact below it. Fewer than k when fewer keys of this view have embeddings;
  /// none before the first embedding is stored. Fails with invalid_argument for k < 1, a NaN or
  /// infinity, an empty query or one without a direction (as store's); dimension_mismatch when the
  /// query's dimension is not the embeddings'.
  recollection recall(std::vector<float> query, std::int64_t k) const;
  recollection recall(std::vector<float> query, std::int64_t k, error_code& ec,
                      diagnostics& diag) const;
  /// The items of this view whose values match `q.filter` (and fall in `q.times`), from
  /// `q.offset` on, at most `q.limit`. Without text or vector, in key order (byte order, on
  /// both backends). With one, that signal's items, best first; with both, the union of
  /// each signal's best `offset + limit` items, ranked by reciprocal rank fusion (rrf_k). Ties
  /// go by key. Each signal honours the filter before it counts its items, so a filter that
  /// matches at least offset + limit items yields limit results. A vector search on a memory
  /// without embeddings finds nothing; dimension_mismatch for a vector of another dimension.
  /// The first text search of a memory builds its full-text index (every item, in one
  /// transaction); from then on every write keeps it, in the write's own transaction,
  /// whichever program writes. invalid_argument, naming the problem and
  /// where it is in the filter, for a filter that is malformed (an unknown operator, $in without
  /// a list, a path that is not a dotted path of plain names, ...), and for a limit outside 1 to
  /// max_search_limit or a negative offset. A stored value that is not JSON fails the search:
  /// with decode_error naming its key, or, when the filter reads it in SQL, with the backend's
  /// error; it is never skipped.
  search_results search(search_query q) const;
  search_results search(search_query q, error_code& ec, diagnostics& diag) const;

  // ---- async ----------------------------------------------------------------------------
  // The handler runs on its associated executor, never inside the call that starts the
  // operation. The overloads taking `diagnostics&` fill it when the operation fails (with the
  // key, for a value that is not JSON); the caller keeps it alive until the handler runs.
  template <class Token>
  auto async_store(std::string key, json value, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_store, nullptr,
                            std::move(key), std::move(value), ttl());
  }
  template <class Token>
  auto async_store(std::string key, json value, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_store, &diag,
                            std::move(key), std::move(value), ttl());
  }
  template <class Token>
  auto async_store(std::string key, json value, std::chrono::milliseconds time_to_live,
                   Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_store, nullptr,
                            std::move(key), std::move(value), ttl(time_to_live));
  }
  template <class Token>
  auto async_store(std::string key, json value, std::chrono::milliseconds time_to_live,
                   diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_store, &diag,
                            std::move(key), std::move(value), ttl(time_to_live));
  }
  template <class Token>
  auto async_store(std::string key, json value, std::vector<float> embedding, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_store_embedded,
                            nullptr, std::move(key), std::move(value), std::move(embedding), ttl());
  }
  template <class Token>
  auto async_store(std::string key, json value, std::vector<float> embedding, diagnostics& diag,
                   Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_store_embedded, &diag,
                            std::move(key), std::move(value), std::move(embedding), ttl());
  }
  template <class Token>
  auto async_store(std::string key, json value, std::vector<float> embedding,
                   std::chrono::milliseconds time_to_live, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_store_embedded,
                            nullptr, std::move(key), std::move(value), std::move(embedding),
                            ttl(time_to_live));
  }
  template <class Token>
  auto async_store(std::string key, json value, std::vector<float> embedding,
                   std::chrono::milliseconds time_to_live, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_store_embedded, &diag,
                            std::move(key), std::move(value), std::move(embedding),
                            ttl(time_to_live));
  }
  template <class Token>
  auto async_load_item(std::string key, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_load_item, nullptr,
                            std::move(key));
  }
  template <class Token>
  auto async_load_item(std::string key, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_load_item, &diag,
                            std::move(key));
  }
  template <class Token>
  auto async_scopes(std::string prefix, std::size_t max_depth, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_scopes, nullptr,
                            std::move(prefix), max_depth);
  }
  template <class Token>
  auto async_scopes(std::string prefix, std::size_t max_depth, diagnostics& diag,
                    Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_scopes, &diag,
                            std::move(prefix), max_depth);
  }
  template <class Token>
  auto async_sweep(Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_sweep, nullptr);
  }
  template <class Token>
  auto async_sweep(diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_sweep, &diag);
  }
  template <class Token>
  auto async_recall(std::vector<float> query, std::int64_t k, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_recall, nullptr,
                            std::move(query), k);
  }
  template <class Token>
  auto async_recall(std::vector<float> query, std::int64_t k, diagnostics& diag,
                    Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_recall, &diag,
                            std::move(query), k);
  }
  template <class Token>
  auto async_load(std::string key, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_load, nullptr,
                            std::move(key));
  }
  template <class Token>
  auto async_load(std::string key, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_load, &diag,
                            std::move(key));
  }
  /// The value, or `default_value` when the key is absent.
  template <class Token>
  auto async_load(std::string key, json default_value, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_load_or, nullptr,
                            std::move(key), std::move(default_value));
  }
  template <class Token>
  auto async_load(std::string key, json default_value, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_load_or, &diag,
                            std::move(key), std::move(default_value));
  }
  template <class Token>
  auto async_erase(std::string key, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_erase, nullptr,
                            std::move(key));
  }
  template <class Token>
  auto async_erase(std::string key, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_erase, &diag,
                            std::move(key));
  }
  template <class Token>
  auto async_exists(std::string key, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_exists, nullptr,
                            std::move(key));
  }
  template <class Token>
  auto async_exists(std::string key, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_exists, &diag,
                            std::move(key));
  }
  template <class Token>
  auto async_search(search_query q, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_search, nullptr,
                            std::move(q));
  }
  template <class Token>
  auto async_search(search_query q, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_search, &diag,
                            std::move(q));
  }
  template <class Token>
  auto async_keys(std::string pattern, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_keys, nullptr,
                            std::move(pattern), time_window{});
  }
  template <class Token>
  auto async_keys(std::string pattern, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_keys, &diag,
                            std::move(pattern), time_window{});
  }
  template <class Token>
  auto async_keys(std::string pattern, time_window window, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_keys, nullptr,
                            std::move(pattern), window);
  }
  template <class Token>
  auto async_keys(std::string pattern, time_window window, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_keys, &diag,
                            std::move(pattern), window);
  }
  template <class Token>
  auto async_clear(std::string pattern, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_clear, nullptr,
                            std::move(pattern));
  }
  template <class Token>
  auto async_clear(std::string pattern, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_clear, &diag,
                            std::move(pattern));
  }
  template <class Token>
  auto async_size(Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_size, nullptr);
  }
  template <class Token>
  auto async_size(diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_size, &diag);
  }
  template <class Token>
  auto async_stats(Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_stats, nullptr);
  }
  template <class Token>
  auto async_stats(diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_stats, &diag);
  }
  template <class Token>
  auto async_batch_store(items values, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_batch_store, nullptr,
                            std::move(values), ttl());
  }
  template <class Token>
  auto async_batch_store(items values, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_batch_store, &diag,
                            std::move(values), ttl());
  }
  template <class Token>
  auto async_batch_store(items values, std::chrono::milliseconds time_to_live,
                         Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_batch_store, nullptr,
                            std::move(values), ttl(time_to_live));
  }
  template <class Token>
  auto async_batch_store(items values, std::chrono::milliseconds time_to_live, diagnostics& diag,
                         Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_batch_store, &diag,
                            std::move(values), ttl(time_to_live));
  }
  template <class Token>
  auto async_restore(std::vector<memory_item> restored, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_restore, nullptr,
                            std::move(restored));
  }
  template <class Token>
  auto async_restore(std::vector<memory_item> restored, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_restore, &diag,
                            std::move(restored));
  }
  template <class Token>
  auto async_batch_load(std::vector<std::string> keys, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_batch_load, nullptr,
                            std::move(keys));
  }
  template <class Token>
  auto async_batch_load(std::vector<std::string> keys, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_batch_load, &diag,
                            std::move(keys));
  }

 private:
  friend struct detail::access;
  struct shared;

  memory(std::string prefix, std::shared_ptr<shared> s);

  // The compiled bodies behind the templates. `diag` may be null.
  void start_store(diagnostics* diag, void_handler h, std::string key, json value,
                   ttl time_to_live) const;
  void start_store_embedded(diagnostics* diag, void_handler h, std::string key, json value,
                            std::vector<float> embedding, ttl time_to_live) const;
  void start_load_item(diagnostics* diag, handler<std::optional<memory_item>> h,
                       std::string key) const;
  void start_scopes(diagnostics* diag, handler<std::vector<std::string>> h, std::string prefix,
                    std::size_t max_depth) const;
  void start_sweep(diagnostics* diag, handler<std::int64_t> h) const;
  void start_recall(diagnostics* diag, handler<recollection> h, std::vector<float> query,
                    std::int64_t k) const;
  void start_load(diagnostics* diag, handler<std::optional<json>> h, std::string key) const;
  void start_load_or(diagnostics* diag, handler<json> h, std::string key, json default_value) const;
  void start_erase(diagnostics* diag, handler<bool> h, std::string key) const;
  void start_exists(diagnostics* diag, handler<bool> h, std::string key) const;
  void start_keys(diagnostics* diag, handler<std::vector<std::string>> h, std::string pattern,
                  time_window window) const;
  void start_search(diagnostics* diag, handler<search_results> h, search_query q) const;
  void start_clear(diagnostics* diag, handler<std::int64_t> h, std::string pattern) const;
  void start_size(diagnostics* diag, handler<std::int64_t> h) const;
  void start_stats(diagnostics* diag, handler<memory_stats> h) const;
  void start_batch_store(diagnostics* diag, void_handler h, items values, ttl time_to_live) const;
  void start_batch_load(diagnostics* diag, handler<loaded> h, std::vector<std::string> keys) const;
  void start_restore(diagnostics* diag, void_handler h, std::vector<memory_item> restored) const;

  std::string prefix_;
  std::shared_ptr<shared> shared_;
};

}  // namespace entity
