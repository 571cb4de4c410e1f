// entity-db layer 2: named collections of float32 vectors with JSON metadata (the seed's
// VectorStoreResource), persisted in the same database as everything else and searched exactly
// (a flat scan) or approximately (HNSW).
//
// The database is the source of truth:
//   vector_collections(name TEXT PRIMARY KEY, dim INTEGER NOT NULL, metric TEXT NOT NULL,
//                      version INTEGER NOT NULL)              -- the registry
//   vec_<name>(id TEXT PRIMARY KEY, embedding BLOB NOT NULL, metadata TEXT)
// `embedding` holds the vector as little-endian float32, `metadata` a JSON object as text
// (on PostgreSQL the types are BYTEA and BIGINT for `embedding` and `version`). Every write
// transaction raises its collection's `version` by one; a new collection's version starts from
// the clock in microseconds, so one dropped and created anew never repeats an old version.
//
// Searches run over an in-memory index of the collection, loaded from its table on first use
// and kept in step with this store's own writes once they commit. Before every search and
// count the store reads the stored version (one point select); a version its own writes do not
// explain means another process (or another vector_store) wrote, and the collection is
// reloaded. Writes made without going through a vector_store, which do not raise the version,
// go unnoticed until the collection is reloaded for another reason.
//
// Distances (smaller is nearer, for every metric):
//   cosine         1 - cos(a, b), in [0, 2]; zero vectors are rejected (they have no direction)
//   l2             the SQUARED Euclidean distance, sum((a - b)^2)
//   inner_product  -dot(a, b)
//
// Every operation exists sync (throws entity::error) and async with any asio completion token
// (use_awaitable, deferred, use_future, as_tuple(...), a plain callback): the handler takes
// (error_code, T) and runs on its associated executor. A search's own work (the scan, the graph
// walk) runs on that executor too.
//
// Errors: bad input is reported before anything is written, with a diagnostics message that
// says what was wrong: errc::invalid_argument (a collection name, an empty id, NaN or infinity,
// k < 1, metadata that is not a JSON object, a zero vector in a cosine collection, a dimension
// out of range), errc::dimension_mismatch (a vector whose size is not the collection's
// dimension), errc::not_found (no such collection). errc::decode_error reports a stored row
// that cannot be read back (a blob of the wrong size, metadata that is not JSON).
//
// Thread safety: a vector_store is a cheap handle; copies share their indexes. Any thread may
// call any member of any copy at any time.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "entity/database.hpp"
#include "entity/detail/initiate.hpp"
#include "entity/detail/unique_function.hpp"
#include "entity/vector_types.hpp"

namespace entity {

class vector_writes;

/// The body of a vector_store::transaction: the caller's own statements through the session,
/// vector writes through the vector_writes. Like a transaction_body it may run more than once
/// (see database::transaction); its database effects commit once.
using vector_transaction_body = detail::unique_function<void(session&, vector_writes&)>;

/// Vector collections over a database. Cheap to copy; copies share the in-memory indexes.
class vector_store {
 public:
  using items = std::vector<vector_item>;
  using matches = std::vector<vector_match>;
  template <class T>
  using handler = boost::asio::any_completion_handler<void(error_code, T)>;
  using void_handler = boost::asio::any_completion_handler<void(error_code)>;

  /// The largest dimension a collection may have.
  static constexpr std::size_t max_dim = 65536;

  /// The engine need not be started yet; the registry table is created on first use.
  explicit vector_store(database db, vector_store_params p = {});

  const database& db() const noexcept;
  const vector_store_params& params() const noexcept;

  /// True when `name` may name a collection: 1 to 63 ASCII letters, digits or '_', not starting
  /// with a digit (^[A-Za-z_][A-Za-z0-9_]{0,62}$). It becomes part of a table name, so nothing
  /// else is accepted.
  static bool valid_name(std::string_view name) noexcept;

  // ---- sync -----------------------------------------------------------------------------

  /// Creates an empty collection of vectors of `dim` floats (1..max_dim). True when created;
  /// false when one of that name already exists with the same dimension and metric. One with
  /// another dimension or metric is an invalid_argument error.
  bool create_collection(std::string name, std::size_t dim, metric m = metric::cosine) const;
  bool create_collection(std::string name, std::size_t dim, metric m, error_code& ec,
                         diagnostics& diag) const;
  /// Removes the collection, its table and its vectors; true when it existed.
  bool drop_collection(std::string name) const;
  bool drop_collection(std::string name, error_code& ec, diagnostics& diag) const;
  /// Every collection, sorted by name, with its vector count.
  std::vector<collection_info> list_collections() const;
  std::vector<collection_info> list_collections(error_code& ec, diagnostics& diag) const;

  /// Stores `vector` under `id` (replacing any vector and metadata `id` had). `metadata` must be
  /// a JSON object (null stands for {}).
  void upsert(std::string collection, std::string id, std::span<const float> vector,
              json metadata = json::object()) const;
  void upsert(std::string collection, std::string id, std::vector<float> vector,
              json metadata = json::object()) const;
  void upsert(std::string collection, std::string id, std::vector<float> vector, json metadata,
              error_code& ec, diagnostics& diag) const;
  /// Stores every item in one transaction: all or nothing. Every item is checked before
  /// anything is written; an id given twice keeps its last vector.
  void upsert_batch(std::string collection, items batch) const;
  void upsert_batch(std::string collection, items batch, error_code& ec, diagnostics& diag) const;
  /// Removes `id`; true when it existed.
  bool erase(std::string collection, std::string id) const;
  bool erase(std::string collection, std::string id, error_code& ec, diagnostics& diag) const;
  /// The vector and metadata stored under `id`, or nullopt.
  std::optional<vector_item> get(std::string collection, std::string id) const;
  std::optional<vector_item> get(std::string collection, std::string id, error_code& ec,
                                 diagnostics& diag) const;
  /// How many vectors the collection holds.
  std::int64_t count(std::string collection) const;
  std::int64_t count(std::string collection, error_code& ec, diagnostics& diag) const;
  /// The `k` stored vectors nearest to `query` whose metadata matches `filter`, nearest first
  /// (ties by id). `filter` is a JSON object whose every key must be present in a vector's
  /// metadata with an equal value ({} or null matches everything). An approximate search with
  /// a filter still returns k results when k vectors match: it widens its search, and scans
  /// when few vectors match. Fewer than k results means fewer match.
  matches search(std::string collection, std::span<const float> query, std::int64_t k,
                 json filter = json::object(), search_mode mode = search_mode::approximate) const;
  matches search(std::string collection, std::vector<float> query, std::int64_t k,
                 json filter = json::object(), search_mode mode = search_mode::approximate) const;
  matches search(std::string collection, std::vector<float> query, std::int64_t k, json filter,
                 search_mode mode, error_code& ec, diagnostics& diag) const;

  /// Runs `body` in one transaction on the writer: its own statements (through the session)
  /// and its vector writes (through the vector_writes) commit together or not at all, so rows
  /// of the caller's tables and the vectors that belong to them can never disagree. This
  /// store's indexes follow the vector writes once the transaction commits. A body that throws
  /// rolls everything back; the sync form rethrows, the async form completes with the
  /// entity::error's code (or errc::aborted). Keep the body short: it runs on the writer.
  void transaction(vector_transaction_body body) const;
  void transaction(vector_transaction_body body, error_code& ec, diagnostics& diag) const;

  // ---- async ----------------------------------------------------------------------------
  // The handler runs on its associated executor, never inside the call that starts the
  // operation. The overloads taking `diagnostics&` fill it when the operation fails; the caller
  // keeps it alive until the handler runs.

  template <class Token>
  auto async_transaction(vector_transaction_body body, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_transaction,
                            nullptr, std::move(body));
  }
  template <class Token>
  auto async_transaction(vector_transaction_body body, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_transaction,
                            &diag, std::move(body));
  }

  template <class Token>
  auto async_create_collection(std::string name, std::size_t dim, metric m, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this,
                            &vector_store::start_create_collection, nullptr, std::move(name), dim,
                            m);
  }
  template <class Token>
  auto async_create_collection(std::string name, std::size_t dim, metric m, diagnostics& diag,
                               Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this,
                            &vector_store::start_create_collection, &diag, std::move(name), dim, m);
  }
  template <class Token>
  auto async_drop_collection(std::string name, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_drop_collection,
                            nullptr, std::move(name));
  }
  template <class Token>
  auto async_drop_collection(std::string name, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_drop_collection,
                            &diag, std::move(name));
  }
  template <class Token>
  auto async_list_collections(Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this,
                            &vector_store::start_list_collections, nullptr);
  }
  template <class Token>
  auto async_list_collections(diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this,
                            &vector_store::start_list_collections, &diag);
  }
  template <class Token>
  auto async_upsert(std::string collection, std::string id, std::vector<float> vector,
                    Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_upsert_batch,
                            nullptr, std::move(collection),
                            one_item(std::move(id), std::move(vector), json::object()));
  }
  template <class Token>
  auto async_upsert(std::string collection, std::string id, std::vector<float> vector,
                    json metadata, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_upsert_batch,
                            nullptr, std::move(collection),
                            one_item(std::move(id), std::move(vector), std::move(metadata)));
  }
  template <class Token>
  auto async_upsert(std::string collection, std::string id, std::vector<float> vector,
                    json metadata, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_upsert_batch,
                            &diag, std::move(collection),
                            one_item(std::move(id), std::move(vector), std::move(metadata)));
  }
  template <class Token>
  auto async_upsert_batch(std::string collection, items batch, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_upsert_batch,
                            nullptr, std::move(collection), std::move(batch));
  }
  template <class Token>
  auto async_upsert_batch(std::string collection, items batch, diagnostics& diag,
                          Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_upsert_batch,
                            &diag, std::move(collection), std::move(batch));
  }
  template <class Token>
  auto async_erase(std::string collection, std::string id, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_erase, nullptr,
                            std::move(collection), std::move(id));
  }
  template <class Token>
  auto async_erase(std::string collection, std::string id, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_erase, &diag,
                            std::move(collection), std::move(id));
  }
  template <class Token>
  auto async_get(std::string collection, std::string id, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_get, nullptr,
                            std::move(collection), std::move(id));
  }
  template <class Token>
  auto async_get(std::string collection, std::string id, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_get, &diag,
                            std::move(collection), std::move(id));
  }
  template <class Token>
  auto async_count(std::string collection, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_count, nullptr,
                            std::move(collection));
  }
  template <class Token>
  auto async_count(std::string collection, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_count, &diag,
                            std::move(collection));
  }
  /// The approximate search with no filter.
  template <class Token>
  auto async_search(std::string collection, std::vector<float> query, std::int64_t k,
                    Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_search, nullptr,
                            std::move(collection), std::move(query), k, json::object(),
                            search_mode::approximate);
  }
  /// The approximate search with a filter.
  template <class Token>
  auto async_search(std::string collection, std::vector<float> query, std::int64_t k, json filter,
                    Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_search, nullptr,
                            std::move(collection), std::move(query), k, std::move(filter),
                            search_mode::approximate);
  }
  template <class Token>
  auto async_search(std::string collection, std::vector<float> query, std::int64_t k, json filter,
                    search_mode mode, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_search, nullptr,
                            std::move(collection), std::move(query), k, std::move(filter), mode);
  }
  template <class Token>
  auto async_search(std::string collection, std::vector<float> query, std::int64_t k, json filter,
                    search_mode mode, diagnostics& diag, Token&& token) const {
    return detail::initiate(std::forward<Token>(token), *this, &vector_store::start_search, &diag,
                            std::move(collection), std::move(query), k, std::move(filter), mode);
  }

 private:
  friend struct detail::access;
  struct shared;

  static items one_item(std::string id, std::vector<float> vector, json metadata) {
    items batch;
    batch.push_back(vector_item{std::move(id), std::move(vector), std::move(metadata)});
    return batch;
  }

  // The compiled bodies behind the templates.
  void start_create_collection(diagnostics* diag, handler<bool> h, std::string name,
                               std::size_t dim, metric m) const;
  void start_drop_collection(diagnostics* diag, handler<bool> h, std::string name) const;
  void start_list_collections(diagnostics* diag, handler<std::vector<collection_info>> h) const;
  void start_upsert_batch(diagnostics* diag, void_handler h, std::string collection,
                          items batch) const;
  void start_erase(diagnostics* diag, handler<bool> h, std::string collection,
                   std::string id) const;
  void start_get(diagnostics* diag, handler<std::optional<vector_item>> h, std::string collection,
                 std::string id) const;
  void start_count(diagnostics* diag, handler<std::int64_t> h, std::string collection) const;
  void start_search(diagnostics* diag, handler<matches> h, std::string collection,
                    std::vector<float> query, std::int64_t k, json filter, search_mode mode) const;
  void start_transaction(diagnostics* diag, void_handler h, vector_transaction_body body) const;

  std::shared_ptr<shared> shared_;
};

/// The vector half of a vector_store::transaction, handed to its body: what is written through
/// it commits or rolls back with the body's own statements. Valid only inside that body, on the
/// body's thread. Every member checks its input as vector_store's own members do and throws
/// entity::error, which rolls the whole transaction back.
class vector_writes {
 public:
  vector_writes(const vector_writes&) = delete;
  vector_writes& operator=(const vector_writes&) = delete;

  /// The collection's name, dimension and metric (count is not filled: -1), or nullopt when
  /// there is no such collection.
  std::optional<collection_info> find(const std::string& collection);
  /// As vector_store::create_collection, inside the transaction.
  bool create_collection(const std::string& name, std::size_t dim, metric m = metric::cosine);
  /// As vector_store::upsert_batch, inside the transaction.
  void upsert(const std::string& collection, vector_store::items batch);
  /// Removes those of `ids` that are stored and returns how many were. A collection that does
  /// not exist holds nothing to remove: 0, not an error.
  std::int64_t erase(const std::string& collection, const std::vector<std::string>& ids);

 private:
  friend struct detail::access;
  struct state;  // what the transaction records for the indexes
  vector_writes(session& s, state& st) noexcept : session_(s), state_(st) {}

  session& session_;
  state& state_;
};

}  // namespace entity
