// A connection's named prepared statements, as bookkeeping: which statement texts the server
// holds prepared under which name, least recently used first, and which names were given up
// and are still to be deallocated on the server. No I/O: the fronts (connection.cpp, the io
// thread's requests) send what it says and tell it what the server answered, so every rule is
// tested without a server (tests/unit/postgres/statement_cache_test.cpp).
//
// A statement's lifecycle: lookup() of a text not held reserves a fresh name (a miss: the
// caller sends PQsendPrepare before using it, in the same round trip); prepared() then says
// whether the server took it, and a name the server refused is forgotten at once, so nothing
// uses a name that does not exist. A text held is a hit: the caller sends PQsendQueryPrepared
// with its name. A name the server says is stale (stale_statement: the plan's result type
// changed, or the server lost it) is forgotten; the next lookup prepares the text again under a
// new name. Names are never reused on a connection, so a late answer or a deallocation still
// due can never touch a statement prepared since.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace entity::postgres_detail {

/// The hits and misses of every connection of one engine (infrastructure_stats).
struct statement_counters {
  std::atomic<std::uint64_t> hits{0};
  std::atomic<std::uint64_t> misses{0};
};

class statement_cache {
 public:
  /// Holds at most `capacity` statements; 0 holds none (lookup() is never called then).
  /// `counters`, when given, counts every lookup's hit or miss; it must outlive the cache.
  explicit statement_cache(std::size_t capacity, statement_counters* counters = nullptr);

  bool enabled() const noexcept { return capacity_ > 0; }

  struct use {
    std::string_view name;  ///< valid until the next call that changes the cache
    bool prepare;           ///< a miss: send PQsendPrepare under `name` first
  };
  /// The prepared statement for `key` (the translated text and the parameter types, see
  /// statement_key in connection.hpp), most recently used now. A miss reserves a new name and, when
  /// the cache is full, gives up the least recently used statement (its name joins closing()).
  /// REQUIRES: enabled().
  use lookup(const std::string& key);

  /// The server answered the prepare of `name`: `ok` false forgets it (nothing was prepared).
  /// A name no longer held (given up meanwhile) is ignored.
  void prepared(std::string_view name, bool ok);
  /// The server refused to run `name` as stale: the entry goes, and its name joins closing()
  /// (a plan whose result type changed is still prepared on the server).
  void forget(std::string_view name);

  /// Names given up whose server statements are still to be deallocated, oldest first.
  const std::vector<std::string>& closing() const noexcept { return closing_; }
  /// The caller sent DEALLOCATE for every name of closing().
  void closed() noexcept { closing_.clear(); }

  std::size_t size() const noexcept { return index_.size(); }
  /// Whether `key` is held (tests).
  bool holds(const std::string& key) const { return index_.count(key) != 0; }

 private:
  struct entry {
    std::string key;
    std::string name;
  };
  void drop(std::list<entry>::iterator it, bool close);

  std::size_t capacity_;
  statement_counters* counters_;
  std::uint64_t next_name_ = 1;
  std::list<entry> order_;  ///< most recently used first
  std::unordered_map<std::string_view, std::list<entry>::iterator> index_;  ///< keys in order_
  std::unordered_map<std::string_view, std::list<entry>::iterator> by_name_;
  std::vector<std::string> closing_;
};

}  // namespace entity::postgres_detail
