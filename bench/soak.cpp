// entitydb bench --soak SECONDS: a bounded soak. Mixed stores, loads, batches, vector upserts
// and searches from 20 coroutines and 2 threads on one database for a fixed time; it must end
// with zero errors and resident memory that did not grow by more than 10% after the warm-up.
//
// Memory moves in steps while the run is steady (an HNSW graph rebuilt beside the old one, a
// thread's first allocation opening a malloc arena), so single samples mislead. The figures
// compared are the highest seen in the second quarter of the run (after the warm-up) and in
// the last quarter: a leak keeps raising the second, a step that the run repeats does not.
//
// "Resident memory" here is the process's own (anonymous) resident memory: heap, stacks,
// caches. The database file's pages that SQLite reads through its memory map are counted by the
// kernel as resident too, but they are the operating system's file cache, shared and bounded by
// the file's size; they are reported beside it and not held against the limit.
#include "soak.hpp"

#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "clients.hpp"
#include "common/latency_histogram.hpp"
#include "entity/sqlite.hpp"
#include "entity/vector_store.hpp"

namespace entity::bench {
namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

namespace {

constexpr int keyspace = 10'000;  // bounded, so the file stops growing and memory can settle
constexpr int batch = 10;
constexpr int vector_ids = 2'000;  // above the HNSW threshold: approximate searches use the graph
constexpr std::size_t vector_dim = 32;
const std::string collection_name = "soak";

// A line of /proc/self/status ("RssAnon:  1234 kB"), in bytes.
std::int64_t status_bytes(std::string_view field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.compare(0, field.size(), field) == 0 && line.size() > field.size() &&
        line[field.size()] == ':')
      return std::stoll(line.substr(field.size() + 1)) * 1024;
  return 0;
}
std::int64_t anonymous_bytes() { return status_bytes("RssAnon"); }
std::int64_t file_bytes() { return status_bytes("RssFile"); }

std::vector<float> vector_of(std::mt19937& rng) {
  std::normal_distribution<float> gauss;
  std::vector<float> v(vector_dim);
  for (float& x : v) x = gauss(rng);
  return v;
}
std::string vector_id(int i) { return "v" + std::to_string(i); }

struct counters {
  std::atomic<std::int64_t> ops{0};
  std::atomic<std::int64_t> errors{0};
  detail::latency_histogram latency;
  std::mutex first_error_mu;
  std::string first_error;

  void fail(const std::string& what) {
    errors.fetch_add(1);
    std::lock_guard lk(first_error_mu);
    if (first_error.empty()) first_error = what;
  }
  void done(clock::time_point since) {
    ops.fetch_add(1, std::memory_order_relaxed);
    latency.record(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - since).count()));
  }
};

memory::items batch_items(std::mt19937& rng) {
  memory::items items;
  for (int i = 0; i < batch; ++i) {
    int k = static_cast<int>(rng() % keyspace);
    items.emplace_back(key_of(k), value_of(k));
  }
  return items;
}
std::vector<std::string> batch_keys(std::mt19937& rng) {
  std::vector<std::string> keys;
  for (int i = 0; i < batch; ++i) keys.push_back(key_of(static_cast<int>(rng() % keyspace)));
  return keys;
}

awaitable<> async_worker(memory mem, vector_store vs, int seed, clock::time_point until,
                         counters& c) {
  std::mt19937 rng(static_cast<unsigned>(seed));
  while (clock::now() < until) {
    int k = static_cast<int>(rng() % keyspace);
    auto t = clock::now();
    try {
      switch (rng() % 6) {
        case 0:
          co_await mem.async_store(key_of(k), value_of(k), asio::use_awaitable);
          break;
        case 1:
          co_await mem.async_load(key_of(k), asio::use_awaitable);
          break;
        case 2:
          co_await mem.async_batch_store(batch_items(rng), asio::use_awaitable);
          break;
        case 3:
          co_await mem.async_batch_load(batch_keys(rng), asio::use_awaitable);
          break;
        case 4: {
          std::vector<float> v = vector_of(rng);
          co_await vs.async_upsert(collection_name, vector_id(k % vector_ids), std::move(v),
                                   json::object(), asio::use_awaitable);
          break;
        }
        default: {
          std::vector<float> q = vector_of(rng);
          auto found = co_await vs.async_search(collection_name, std::move(q), 10, json::object(),
                                                search_mode::approximate, asio::use_awaitable);
          if (found.size() != 10) c.fail("a search found " + std::to_string(found.size()));
          break;
        }
      }
      c.done(t);
    } catch (const std::exception& e) {
      c.fail(e.what());
    }
  }
}

void sync_worker(memory mem, vector_store vs, int seed, clock::time_point until, counters& c) {
  std::mt19937 rng(static_cast<unsigned>(seed));
  while (clock::now() < until) {
    int k = static_cast<int>(rng() % keyspace);
    auto t = clock::now();
    try {
      switch (rng() % 6) {
        case 0:
          mem.store(key_of(k), value_of(k));
          break;
        case 1:
          mem.load(key_of(k));
          break;
        case 2:
          mem.batch_store(batch_items(rng));
          break;
        case 3:
          mem.batch_load(batch_keys(rng));
          break;
        case 4:
          vs.upsert(collection_name, vector_id(k % vector_ids), vector_of(rng));
          break;
        default: {
          auto found = vs.search(collection_name, vector_of(rng), 10);
          if (found.size() != 10) c.fail("a search found " + std::to_string(found.size()));
          break;
        }
      }
      c.done(t);
    } catch (const std::exception& e) {
      c.fail(e.what());
    }
  }
}

}  // namespace

soak_result soak(const soak_params& p, const std::function<void(double)>& progress) {
  namespace fs = std::filesystem;
  fs::path dir = p.db_dir.empty()
                     ? fs::temp_directory_path() / ("entitydb-soak-" + std::to_string(::getpid()))
                     : fs::path(p.db_dir);
  fs::create_directories(dir);
  std::string path = (dir / "soak.db").string();
  for (const char* s : {"", "-wal", "-shm"}) fs::remove(path + s);

  sqlite_params sp;
  sp.path = path;
  auto infra = std::make_shared<sqlite_infrastructure>(sp);
  infra->startup();
  memory mem{database(infra)};
  vector_store vs{database(infra)};

  // Every key and vector exists before the clock starts, so the file is at its full size and
  // the run measures a steady state.
  {
    memory::items all;
    for (int k = 0; k < keyspace; ++k) all.emplace_back(key_of(k), value_of(k));
    mem.batch_store(std::move(all));
    vs.create_collection(collection_name, vector_dim);
    std::mt19937 rng(7);
    vector_store::items vectors;
    for (int i = 0; i < vector_ids; ++i) vectors.push_back({vector_id(i), vector_of(rng), {}});
    vs.upsert_batch(collection_name, std::move(vectors));
  }

  counters c;
  auto start = clock::now();
  auto length = std::chrono::duration_cast<clock::duration>(p.duration);
  clock::time_point until = start + length;
  // Warm-up: statement caches, page caches and the HNSW graph fill in the first quarter.
  clock::time_point warm = start + length / 4, half = start + length / 2,
                    last = start + length * 3 / 4;

  asio::io_context io;
  for (int i = 0; i < 20; ++i)
    asio::co_spawn(io, async_worker(mem, vs, i + 1, until, c), [&](std::exception_ptr e) {
      if (e) c.fail("a coroutine ended with an exception");
    });
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back(sync_worker, mem, vs, 100 + i, until, std::ref(c));

  std::int64_t rss_start = 0, rss_end = 0, mapped_start = 0, mapped_end = 0;
  std::thread watcher([&] {
    while (clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      auto now = clock::now();
      if (now >= warm && now < half) {
        rss_start = std::max(rss_start, anonymous_bytes());
        mapped_start = std::max(mapped_start, file_bytes());
      } else if (now >= last) {
        rss_end = std::max(rss_end, anonymous_bytes());
        mapped_end = std::max(mapped_end, file_bytes());
      }
      if (progress)
        progress(std::min(1.0, std::chrono::duration<double>(now - start) / p.duration));
    }
  });
  io.run();
  for (auto& t : threads) t.join();
  watcher.join();

  soak_result r;
  r.seconds = std::chrono::duration<double>(clock::now() - start).count();
  r.ops = c.ops.load();
  r.errors = c.errors.load();
  r.first_error = c.first_error;
  r.p99_us = c.latency.quantile(0.99) / 1000.0;
  r.p50_us = c.latency.quantile(0.50) / 1000.0;
  // A run too short for the watcher's samples compares the end with itself.
  r.rss_end = std::max(rss_end, anonymous_bytes());
  r.rss_start = rss_start ? rss_start : r.rss_end;
  r.mapped_end = std::max(mapped_end, file_bytes());
  r.mapped_start = mapped_start ? mapped_start : r.mapped_end;
  r.growth = r.rss_start > 0 ? static_cast<double>(r.rss_end - r.rss_start) / r.rss_start : 0;
  r.keys = mem.size();
  infra->shutdown();
  if (p.db_dir.empty()) fs::remove_all(dir);
  return r;
}

}  // namespace entity::bench
