// entity-db layer 3: an agent's memory (the seed's AsyncMemory).
//
// JSON values under string keys, in exactly the seed's table
//   memory(key TEXT PRIMARY KEY, value TEXT)   -- value holds JSON text
// so a memory file written by the Python Entity framework opens here and the other way round.
// The table is created on first use. Every operation exists async (any asio completion token)
// and sync (throws entity::error); a missing key is not an error.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "entity/database.hpp"

namespace entity {

using json = nlohmann::json;

struct memory_stats {
  std::int64_t keys = 0;         ///< keys in this memory (or scope)
  std::int64_t value_bytes = 0;  ///< bytes of JSON text they hold
  infrastructure_stats engine;   ///< the engine's counters
};

/// A memory over a database. Cheap to copy; copies share the database.
/// Thread safety: any thread may call any member.
class memory {
 public:
  using items = std::vector<std::pair<std::string, json>>;
  using loaded = std::unordered_map<std::string, json>;
  template <class T>
  using handler = boost::asio::any_completion_handler<void(error_code, T)>;
  using void_handler = boost::asio::any_completion_handler<void(error_code)>;

  /// Keys of a batch_load are looked up this many at a time (well under SQLite's limit of
  /// bound parameters).
  static constexpr std::size_t load_chunk = 500;

  explicit memory(database db);

  /// A view whose keys live under "<name>:" inside this memory's keyspace, isolated from other
  /// scopes: keys, clear and size see only its own keys. The file format does not change.
  /// Throws invalid_argument for an empty name.
  memory scope(std::string_view name) const;
  /// The key prefix of this view ("" for the whole memory).
  const std::string& prefix() const noexcept { return prefix_; }
  const database& db() const noexcept { return db_; }

  // ---- sync -----------------------------------------------------------------------------

  void store(std::string key, json value) const;
  /// The value, or nullopt when the key is absent. A stored value that is not JSON fails with
  /// decode_error naming the key.
  std::optional<json> load(std::string key) const;
  json load(std::string key, json default_value) const;
  /// Removes the key; true when it existed.
  bool erase(std::string key) const;
  bool exists(std::string key) const;
  /// Keys matching a LIKE pattern ('%' any run, '_' one character), sorted.
  std::vector<std::string> keys(std::string pattern = "%") const;
  /// Removes the keys matching a LIKE pattern; returns how many.
  std::int64_t clear(std::string pattern = "%") const;
  std::int64_t size() const;
  memory_stats stats() const;
  /// Stores every item in one transaction: all or nothing, any number of items.
  void batch_store(items values) const;
  /// The values of the keys that exist; missing keys are omitted.
  loaded batch_load(std::vector<std::string> keys) const;

  // ---- async ----------------------------------------------------------------------------

  template <class Token>
  auto async_store(std::string key, json value, Token&& token) const {
    return boost::asio::async_initiate<Token, void(error_code)>(
        [self = *this](auto h, std::string k, json v) {
          self.start_store(std::move(k), std::move(v), void_handler(std::move(h)));
        },
        token, std::move(key), std::move(value));
  }
  template <class Token>
  auto async_load(std::string key, Token&& token) const {
    return boost::asio::async_initiate<Token, void(error_code, std::optional<json>)>(
        [self = *this](auto h, std::string k) {
          self.start_load(std::move(k), handler<std::optional<json>>(std::move(h)));
        },
        token, std::move(key));
  }
  template <class Token>
  auto async_erase(std::string key, Token&& token) const {
    return boost::asio::async_initiate<Token, void(error_code, bool)>(
        [self = *this](auto h, std::string k) {
          self.start_erase(std::move(k), handler<bool>(std::move(h)));
        },
        token, std::move(key));
  }
  template <class Token>
  auto async_exists(std::string key, Token&& token) const {
    return boost::asio::async_initiate<Token, void(error_code, bool)>(
        [self = *this](auto h, std::string k) {
          self.start_exists(std::move(k), handler<bool>(std::move(h)));
        },
        token, std::move(key));
  }
  template <class Token>
  auto async_keys(std::string pattern, Token&& token) const {
    return boost::asio::async_initiate<Token, void(error_code, std::vector<std::string>)>(
        [self = *this](auto h, std::string p) {
          self.start_keys(std::move(p), handler<std::vector<std::string>>(std::move(h)));
        },
        token, std::move(pattern));
  }
  template <class Token>
  auto async_clear(std::string pattern, Token&& token) const {
    return boost::asio::async_initiate<Token, void(error_code, std::int64_t)>(
        [self = *this](auto h, std::string p) {
          self.start_clear(std::move(p), handler<std::int64_t>(std::move(h)));
        },
        token, std::move(pattern));
  }
  template <class Token>
  auto async_size(Token&& token) const {
    return boost::asio::async_initiate<Token, void(error_code, std::int64_t)>(
        [self = *this](auto h) { self.start_size(handler<std::int64_t>(std::move(h))); }, token);
  }
  template <class Token>
  auto async_batch_store(items values, Token&& token) const {
    return boost::asio::async_initiate<Token, void(error_code)>(
        [self = *this](auto h, items v) {
          self.start_batch_store(std::move(v), void_handler(std::move(h)));
        },
        token, std::move(values));
  }
  template <class Token>
  auto async_batch_load(std::vector<std::string> keys, Token&& token) const {
    return boost::asio::async_initiate<Token, void(error_code, loaded)>(
        [self = *this](auto h, std::vector<std::string> k) {
          self.start_batch_load(std::move(k), handler<loaded>(std::move(h)));
        },
        token, std::move(keys));
  }

  // The compiled bodies behind the templates.
  void start_store(std::string key, json value, void_handler h) const;
  void start_load(std::string key, handler<std::optional<json>> h) const;
  void start_erase(std::string key, handler<bool> h) const;
  void start_exists(std::string key, handler<bool> h) const;
  void start_keys(std::string pattern, handler<std::vector<std::string>> h) const;
  void start_clear(std::string pattern, handler<std::int64_t> h) const;
  void start_size(handler<std::int64_t> h) const;
  void start_batch_store(items values, void_handler h) const;
  void start_batch_load(std::vector<std::string> keys, handler<loaded> h) const;

  struct shared;

 private:
  memory(database db, std::string prefix, std::shared_ptr<shared> s);
  void ensure_table() const;
  error_code table_error() const noexcept;

  database db_;
  std::string prefix_;
  std::shared_ptr<shared> shared_;
};

}  // namespace entity
