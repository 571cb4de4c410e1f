// Helpers for the test programs that link the library: a started SQLite engine, a database file
// with an engine on it, running a coroutine to its end, and small data makers. (test_support.hpp
// holds what every test program uses, the CLI's too, which does not link the library.)
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <initializer_list>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "entity/entity.hpp"
#include "test_support.hpp"

namespace entity::test {

/// A SQLite engine on `p`, started.
inline std::shared_ptr<sqlite_infrastructure> started(sqlite_params p = {}) {
  auto infra = std::make_shared<sqlite_infrastructure>(std::move(p));
  infra->startup();
  return infra;
}

/// A SQLite engine on the database file `path`, with every other setting the default, started.
inline std::shared_ptr<sqlite_infrastructure> started(const std::string& path) {
  sqlite_params p;
  p.path = path;
  return started(std::move(p));
}

/// A database file `name` in a fresh temporary folder, and a started engine on it. The folder
/// goes when the object does (after the engine: members are destroyed in reverse order).
struct sqlite_file {
  explicit sqlite_file(const std::string& name) : path(dir.file(name)), infra(started(path)) {}

  temp_dir dir;
  std::string path;
  std::shared_ptr<sqlite_infrastructure> infra;
};

/// The number of rows in `table`.
inline std::int64_t count_rows(const database& db, const std::string& table) {
  return db.fetch_one("SELECT count(*) FROM " + table)->get<std::int64_t>(0);
}

/// Runs the coroutine `make()` returns on a fresh io_context until it finishes; rethrows what it
/// threw. `make` outlives the run, so a lambda may capture by reference.
template <class F>
void run_coroutine(F&& make) {
  boost::asio::io_context io;
  std::exception_ptr failure;
  boost::asio::co_spawn(io, make(), [&](std::exception_ptr e) { failure = e; });
  io.run();
  if (failure) std::rethrow_exception(failure);
}

/// A blob of the given byte values.
inline blob bytes(std::initializer_list<int> b) {
  std::vector<std::byte> v;
  for (int x : b) v.push_back(static_cast<std::byte>(x));
  return blob(std::move(v));
}

/// A vector of `dim` components drawn uniformly from [-1, 1).
inline std::vector<float> random_vector(std::mt19937& rng, std::size_t dim) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(dim);
  for (float& x : v) x = u(rng);
  return v;
}

/// The i-th key of a numbered set: "k0000000", "k0000001", ... (they sort in numeric order).
inline std::string numbered_key(std::size_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "k%07zu", i);
  return buf;
}

/// `levels` JSON arrays nested in one another ([[[...]]]), built without recursion.
inline nlohmann::json nested_arrays(std::size_t levels) {
  nlohmann::json root = nlohmann::json::array();
  nlohmann::json* at = &root;
  for (std::size_t i = 1; i < levels; ++i) {
    at->push_back(nlohmann::json::array());
    at = &at->back();
  }
  return root;
}

/// The same as JSON text.
inline std::string nested_text(std::size_t levels) {
  return std::string(levels, '[') + std::string(levels, ']');
}

/// The entity::error that `f` throws; a test failure, and an empty error, when it throws none.
template <class F>
entity::error error_of(F&& f) {
  try {
    f();
  } catch (const entity::error& e) {
    return e;
  }
  ADD_FAILURE() << "no entity::error was thrown";
  return entity::error(entity::error_code(), {});
}

/// The keys of what a search or a recall returned, in its order.
template <class Results>
std::vector<std::string> keys_of(const Results& results) {
  std::vector<std::string> keys;
  keys.reserve(results.size());
  for (const auto& r : results) keys.push_back(r.key);
  return keys;
}

}  // namespace entity::test
