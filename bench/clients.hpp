// The benchmark's clients: the same operations done by the backend's raw C client (SQLite's or
// libpq), by entity-db's sync API, by the sync API handed to a thread pool, and by entity-db's
// async API.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "entity/memory.hpp"

namespace entity::bench {

using json = nlohmann::json;
template <class T = void>
using awaitable = boost::asio::awaitable<T>;

/// The value the seed's benchmark stored for item i.
json value_of(int i);
std::string key_of(int i);

/// The memory_search_* and memory_sweep workloads' items: agent facts, drawn deterministically
/// from i. {"kind": one of fact_kinds, "text": a sentence of common words with one of
/// fact_topics rarer words in it, "n": i, "score": a float, "tags": 2 or 3 common words,
/// "user": "u<id>"}, under "fact:000123". Each kind, and each topic word, is in about 1% of
/// the facts.
json fact_of(int i);
std::string fact_key_of(int i);
memory::items facts_of(int n);
inline constexpr int fact_kinds = 100;
inline constexpr int fact_topics = 100;
/// The kind the i-th filter search asks for ("k<j>"), the topic word the i-th text search asks
/// for.
std::string kind_of(int i);
std::string topic_of(int i);

/// Results per search (search_query::limit).
inline constexpr int search_limit = 10;

/// A clock that memory_sweep moves forward, instead of waiting for items to expire.
class bench_clock {
 public:
  memory_time now() const;
  void advance(std::chrono::milliseconds d) { ahead_ms_ += d.count(); }

 private:
  std::atomic<std::int64_t> ahead_ms_{0};
};

/// Where a client's database lives and how it is tuned.
struct client_config {
  std::string path;
  bool durable = false;
  /// Stores per transaction (raw SQLite only). 1: each store commits by itself (autocommit).
  /// More: the stores are committed in groups of that many, as entity-db's group commit
  /// commits concurrent ones: BEGIN IMMEDIATE, each store inside SAVEPOINT / RELEASE, COMMIT
  /// after the last of the group (every control statement prepared once).
  int group = 1;
  /// Raw SQLite only: each store also writes the item's times, as entity-db keeps them, in a
  /// row of a side table (key, created_ms, updated_ms, expires_ms, ttl_ms; WITHOUT ROWID, with
  /// a partial index on expires_ms), in the store's own transaction: the floor of a store that
  /// keeps its times beside the seed's two-column table.
  bool times = false;
  /// Where the raw clients' "now" comes from for expiry times (memory_sweep). Empty: the
  /// system clock.
  std::shared_ptr<bench_clock> clock;
};

/// What a sweep did: the items it deleted and the transactions it committed to delete them.
struct swept {
  std::int64_t items = 0;
  std::int64_t transactions = 0;
};

/// Operations that complete before they return.
class sync_client {
 public:
  virtual ~sync_client() = default;
  /// False when the client must not be used from several threads at once.
  virtual bool thread_safe() const = 0;
  virtual void store(const std::string& key, const json& value) = 0;
  /// True when the key was found (its value is decoded).
  virtual bool load(const std::string& key) = 0;
  virtual void batch_store(memory::items items) = 0;
  /// How many of the keys were found.
  virtual std::size_t batch_load(std::vector<std::string> keys) = 0;
  virtual void create_table() = 0;
  /// Inserts row i of bench_table (id, name, value, data).
  virtual void insert(int i, const std::string& name) = 0;
  /// Inserts rows 0..n-1 in one call, all or nothing.
  virtual void insert_many(int n) = 0;
  /// True when row `id` exists (its columns are read).
  virtual bool select(int id) = 0;
  /// Rows named `name`, at most 10 (each row's columns are read).
  virtual std::size_t select_named(const std::string& name) = 0;
  virtual std::int64_t count(const std::string& table) = 0;
  /// The first search_limit items whose "kind" is `kind`, in key order (their values decoded).
  virtual std::size_t search_kind(const std::string& kind) = 0;
  /// What the text searches need before the first of them, untimed: entity-db's first text
  /// search builds its full-text index; the raw client builds an FTS5 table of its own.
  virtual void index_text() = 0;
  /// The best search_limit items whose text holds `word` (their values decoded).
  virtual std::size_t search_text(const std::string& word) = 0;
  /// Stores the items in one transaction, each expiring an hour after the store.
  virtual void batch_store_expiring(memory::items items) = 0;
  /// Deletes the expired items.
  virtual swept sweep() = 0;
};

/// The same operations, as coroutines.
class async_client {
 public:
  virtual ~async_client() = default;
  virtual awaitable<> store(std::string key, json value) = 0;
  virtual awaitable<bool> load(std::string key) = 0;
  virtual awaitable<> batch_store(memory::items items) = 0;
  virtual awaitable<std::size_t> batch_load(std::vector<std::string> keys) = 0;
  virtual awaitable<> create_table() = 0;
  virtual awaitable<> insert(int i, std::string name) = 0;
  virtual awaitable<> insert_many(int n) = 0;
  virtual awaitable<bool> select(int id) = 0;
  virtual awaitable<std::size_t> select_named(std::string name) = 0;
  virtual awaitable<std::int64_t> count(std::string table) = 0;
  virtual awaitable<std::size_t> search_kind(std::string kind) = 0;
  virtual awaitable<> index_text() = 0;
  virtual awaitable<std::size_t> search_text(std::string word) = 0;
  virtual awaitable<> batch_store_expiring(memory::items items) = 0;
  virtual awaitable<swept> sweep() = 0;
};

/// Raw SQLite C API: one connection, prepared statements reused. The floor. With
/// `c.group` > 1, a transaction open between two stores holds until the group is full.
/// Expiry times live in a table of its own, expiry(key, expires), indexed on the time; the
/// stores of the other workloads write none.
std::unique_ptr<sync_client> make_raw_sqlite_client(const client_config& c);
/// Blocking libpq: one connection to the server at `url`, prepared statements, batches in
/// pipeline mode. The floor on PostgreSQL. It has no search or sweep: those workloads run on
/// SQLite only.
std::unique_ptr<sync_client> make_raw_libpq_client(const std::string& url);
/// entity-db's sync API on an engine that is running, its memory opened with `params`.
std::unique_ptr<sync_client> make_entity_sync_client(const database& db,
                                                     const memory_params& params = {});
/// entity-db's async API.
std::unique_ptr<async_client> make_entity_async_client(const database& db,
                                                       const memory_params& params = {});
/// `inner` handed per operation to a thread pool and awaited (the seed's asyncio.to_thread).
std::unique_ptr<async_client> make_threadpool_client(std::unique_ptr<sync_client> inner,
                                                     int threads);

}  // namespace entity::bench
