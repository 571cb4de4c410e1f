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
#include <cstdint>
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

/// What memory::search looks for (see README, "Searching memory", for the filter language).
struct search_query {
  /// A filter on the stored value, in the language of mem0 and MongoDB: {"a.b": 1},
  /// {"n": {"$gte": 3}}, {"$or": [...]}, with $eq $ne $gt $gte $lt $lte $in $nin $exists
  /// $contains, $and $or $not, on dotted paths of plain names. {} (the default) matches every
  /// item. Every path and value is a bound parameter.
  json filter = json::object();
  std::int64_t limit = 10;  ///< at most this many results, 1 to max_search_limit
  std::int64_t offset = 0;  ///< results skipped first (0 or more)
};

/// One result of memory::search: a key (relative to the view searched) and its value.
struct search_hit {
  std::string key;
  json value;
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

  /// `recall` tuning: the embeddings collection's HNSW settings (vector_store_params).
  explicit memory(database db, vector_store_params recall = {});

  /// A view whose keys live under "<name>:" inside this memory's keyspace, isolated from other
  /// scopes: keys, clear and size see only its own keys (names are compared byte for byte:
  /// "User" and "user" are two scopes, and '%' or '_' in a name are plain characters). A scope
  /// of a scope nests: scope("a").scope("b") is the same view as scope("a:b"), and scope("a")
  /// sees its keys as "b:<key>". The file format does not change.
  /// Throws invalid_argument for an empty name or one that is not UTF-8.
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
  void store(std::string key, json value) const;
  void store(std::string key, json value, error_code& ec, diagnostics& diag) const;
  /// Stores `value` under `key` with its `embedding`, both in one transaction. Fails with
  /// dimension_mismatch when the memory's embeddings have another dimension, invalid_argument
  /// for an empty embedding, a NaN or infinity, or a vector without a direction for cosine
  /// (zero, or whose float32 norm underflows to 0 or overflows); for a key or value store()
  /// refuses. On failure nothing is written.
  void store(std::string key, json value, std::vector<float> embedding) const;
  void store(std::string key, json value, std::vector<float> embedding, error_code& ec,
             diagnostics& diag) const;
  /// The value, or nullopt when the key is absent. A stored value that is not JSON, or is
  /// nested deeper than max_json_depth (written by another program), fails with decode_error
  /// naming the key.
  std::optional<json> load(std::string key) const;
  std::optional<json> load(std::string key, error_code& ec, diagnostics& diag) const;
  json load(std::string key, json default_value) const;
  json load(std::string key, json default_value, error_code& ec, diagnostics& diag) const;
  /// Removes the key; true when it existed.
  bool erase(std::string key) const;
  bool erase(std::string key, error_code& ec, diagnostics& diag) const;
  bool exists(std::string key) const;
  bool exists(std::string key, error_code& ec, diagnostics& diag) const;
  /// Keys matching a LIKE pattern ('%' any run, '_' one character; letter case as the backend's
  /// LIKE has it: SQLite matches ASCII letters of either case), sorted.
  std::vector<std::string> keys(std::string pattern = "%") const;
  std::vector<std::string> keys(std::string pattern, error_code& ec, diagnostics& diag) const;
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
  /// The items of this view whose values match `q.filter`, in key order (byte order, on both
  /// backends), from `q.offset` on, at most `q.limit`. invalid_argument, naming the problem and
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
                            std::move(key), std::move(value));
  }
  template <class Token>
  auto async_store(std::string key, json value, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_store, &diag,
                            std::move(key), std::move(value));
  }
  template <class Token>
  auto async_store(std::string key, json value, std::vector<float> embedding, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_store_embedded,
                            nullptr, std::move(key), std::move(value), std::move(embedding));
  }
  template <class Token>
  auto async_store(std::string key, json value, std::vector<float> embedding, diagnostics& diag,
                   Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_store_embedded, &diag,
                            std::move(key), std::move(value), std::move(embedding));
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
                            std::move(pattern));
  }
  template <class Token>
  auto async_keys(std::string pattern, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_keys, &diag,
                            std::move(pattern));
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
                            std::move(values));
  }
  template <class Token>
  auto async_batch_store(items values, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &memory::start_batch_store, &diag,
                            std::move(values));
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
  void start_store(diagnostics* diag, void_handler h, std::string key, json value) const;
  void start_store_embedded(diagnostics* diag, void_handler h, std::string key, json value,
                            std::vector<float> embedding) const;
  void start_recall(diagnostics* diag, handler<recollection> h, std::vector<float> query,
                    std::int64_t k) const;
  void start_load(diagnostics* diag, handler<std::optional<json>> h, std::string key) const;
  void start_load_or(diagnostics* diag, handler<json> h, std::string key, json default_value) const;
  void start_erase(diagnostics* diag, handler<bool> h, std::string key) const;
  void start_exists(diagnostics* diag, handler<bool> h, std::string key) const;
  void start_keys(diagnostics* diag, handler<std::vector<std::string>> h,
                  std::string pattern) const;
  void start_search(diagnostics* diag, handler<search_results> h, search_query q) const;
  void start_clear(diagnostics* diag, handler<std::int64_t> h, std::string pattern) const;
  void start_size(diagnostics* diag, handler<std::int64_t> h) const;
  void start_stats(diagnostics* diag, handler<memory_stats> h) const;
  void start_batch_store(diagnostics* diag, void_handler h, items values) const;
  void start_batch_load(diagnostics* diag, handler<loaded> h, std::vector<std::string> keys) const;

  std::string prefix_;
  std::shared_ptr<shared> shared_;
};

}  // namespace entity
