// entitydb bench --vectors. Every figure is measured in the same run as its floor: the exact
// scan against the bandwidth of a plain memcpy on this machine, HNSW against the exact scan.
#include "vectors.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>
#include <stdexcept>
#include <vector>

#include "bench.hpp"
#include "entity/entity.hpp"
#include "vector/kernels.hpp"

namespace entity::bench {
namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

// The data sets. `gaussian`: every component independent, N(0, 1). Directions spread evenly
// over the sphere and distances concentrate (the nearest neighbour of a query is barely
// nearer than a random vector), so a graph walk has no gradient to follow: the worst case of
// approximate search, far from what embeddings look like.
// `clustered`: n / 100 centres with N(0, 1) components, and each vector a centre plus its own
// N(0, 1) noise, so that two vectors of one cluster have a cosine of about 0.5 and two of
// different clusters about 0, the way embeddings of related texts group. Queries are drawn
// the same way, as a question resembles the memories it is about.
struct vector_source {
  std::normal_distribution<float> g{0.0f, 1.0f};
  std::vector<float> centres;
  std::size_t dim;

  vector_source(std::mt19937_64& rng, const std::string& data, std::size_t n, std::size_t d)
      : dim(d) {
    if (data == "gaussian") return;
    if (data != "clustered")
      throw std::invalid_argument("--vector-data must be clustered or gaussian, not " + data);
    centres.resize(std::max<std::size_t>(n / 100, 1) * dim);
    for (float& x : centres) x = g(rng);
  }

  std::vector<float> rows(std::mt19937_64& rng, std::size_t n) {
    std::vector<float> out(n * dim);
    const std::size_t clusters = centres.size() / dim;
    for (std::size_t i = 0; i < n; ++i) {
      const float* centre = clusters ? &centres[(rng() % clusters) * dim] : nullptr;
      for (std::size_t j = 0; j < dim; ++j) out[i * dim + j] = g(rng) + (centre ? centre[j] : 0.0f);
    }
    return out;
  }
};

// The copy bandwidth of this machine: bytes copied per second by memcpy over a buffer far
// larger than the caches, the best of several passes (the least disturbed by other work).
double copy_bandwidth(std::size_t bytes) {
  std::vector<char> from(bytes, 1), to(bytes, 0);
  std::memcpy(to.data(), from.data(), bytes);  // the pages are touched before timing
  double best = 0;
  for (int pass = 0; pass < 5; ++pass) {
    auto start = clock_type::now();
    std::memcpy(to.data(), from.data(), bytes);
    double s = seconds_since(start);
    // Keep the copy observable, so it is not optimised away.
    if (to[bytes / 2] != 1) throw std::runtime_error("memcpy check failed");
    from[pass] = static_cast<char>(pass + 2);
    best = std::max(best, static_cast<double>(bytes) / s);
  }
  return best;
}

std::string temporary_dir() {
  std::random_device rd;
  return (std::filesystem::temp_directory_path() /
          ("entitydb-bench-vectors-" + std::to_string(::getpid()) + "-" + std::to_string(rd())))
      .string();
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string rate(double v) {
  if (v >= 1e6) return fmt("%.2fM/s", v / 1e6);
  if (v >= 1e4) return fmt("%.1fk/s", v / 1e3);
  return fmt("%.0f/s", v);
}

}  // namespace

vectors_report run_vectors(const vectors_params& p, const vectors_progress_fn& progress) {
  if (p.n < 1 || p.queries < 1 || p.dim < 1 || p.k < 1)
    throw std::invalid_argument("--vectors-n, --queries and --dim must be at least 1");
  if (p.dim > vector_store::max_dim)
    throw std::invalid_argument("--dim must be at most " + std::to_string(vector_store::max_dim));

  vectors_report r;
  r.params = p;
  r.machine = machine_info();
  r.kernels = vector_detail::kernel_name();

  vector_store_params vp;
  if (p.hnsw_m) vp.hnsw_m = p.hnsw_m;
  if (p.hnsw_ef_construction) vp.hnsw_ef_construction = p.hnsw_ef_construction;
  if (p.hnsw_ef) vp.hnsw_ef = p.hnsw_ef;
  vp.hnsw_threshold = std::min<std::size_t>(vp.hnsw_threshold, p.n > 1 ? p.n - 1 : 0);
  vp.hnsw_build_in_background = false;  // the first approximate search builds, and is timed
  r.hnsw_m = vp.hnsw_m;
  r.hnsw_ef_construction = vp.hnsw_ef_construction;
  r.hnsw_ef = vp.hnsw_ef;

  // Steps: generate, bandwidth, insert (10), load, exact (10), build, hnsw (10).
  const int total = 1 + 1 + 10 + 1 + 10 + 1 + 10;
  int done = 0;
  auto step = [&](const std::string& what) {
    if (progress) progress(done, total, what);
  };
  // Ten steps for item i of `count`, from step `base` on.
  auto tenths = [&](int base, std::size_t i, std::size_t count, const std::string& what) {
    int now = base + static_cast<int>(i * 10 / count);
    if (now != done || i == 0) {
      done = now;
      step(what);
    }
  };

  step("vectors: generating");
  std::mt19937_64 rng(p.seed);
  vector_source source(rng, p.data, p.n, p.dim);
  std::vector<float> data = source.rows(rng, p.n);
  std::vector<float> queries = source.rows(rng, p.queries);
  ++done;

  step("vectors: memcpy bandwidth");
  // At least 256 MiB, and at least the data itself: no cache holds it.
  std::size_t copy_bytes = std::max<std::size_t>(std::size_t(256) << 20, data.size() * 4);
  r.copy_bytes_per_sec = copy_bandwidth(copy_bytes);
  ++done;

  std::string dir = p.db_dir.empty() ? temporary_dir() : p.db_dir;
  const bool temporary = p.db_dir.empty();
  std::filesystem::create_directories(dir);
  std::string path = (std::filesystem::path(dir) / "vectors.db").string();
  std::filesystem::remove(path);
  std::filesystem::remove(path + "-wal");
  std::filesystem::remove(path + "-shm");
  try {
    sqlite_params sp;
    sp.path = path;
    auto infra = std::make_shared<sqlite_infrastructure>(sp);
    infra->startup();
    vector_store store(database(infra), vp);
    const std::string name = "bench";
    store.create_collection(name, p.dim, metric::cosine);

    // Insert, 1,000 vectors per transaction.
    const std::size_t batch = 1000;
    auto start = clock_type::now();
    for (std::size_t from = 0; from < p.n; from += batch) {
      tenths(2, from, p.n, "vectors: insert");
      vector_store::items items;
      const std::size_t to = std::min(p.n, from + batch);
      items.reserve(to - from);
      for (std::size_t i = from; i < to; ++i)
        items.push_back({"v" + std::to_string(i),
                         std::vector<float>(data.begin() + std::ptrdiff_t(i * p.dim),
                                            data.begin() + std::ptrdiff_t((i + 1) * p.dim)),
                         json::object()});
      store.upsert_batch(name, std::move(items));
    }
    r.insert_vectors_per_sec = static_cast<double>(p.n) / seconds_since(start);
    done = 12;
    std::vector<float>().swap(data);  // the store holds its own copy from here on

    // The first search reads the collection into memory.
    step("vectors: load");
    auto q_at = [&](std::size_t i) {
      return std::vector<float>(queries.begin() + std::ptrdiff_t(i * p.dim),
                                queries.begin() + std::ptrdiff_t((i + 1) * p.dim));
    };
    start = clock_type::now();
    store.search(name, q_at(0), 1, json::object(), search_mode::exact);
    r.load_seconds = seconds_since(start);
    ++done;

    const auto k = static_cast<std::int64_t>(p.k);
    std::vector<std::set<std::string>> truth(p.queries);
    start = clock_type::now();
    for (std::size_t i = 0; i < p.queries; ++i) {
      tenths(13, i, p.queries, "vectors: exact search");
      for (const auto& m : store.search(name, q_at(i), k, json::object(), search_mode::exact))
        truth[i].insert(m.id);
    }
    double exact_s = seconds_since(start);
    done = 23;
    r.exact_queries_per_sec = static_cast<double>(p.queries) / exact_s;

    // The first approximate search builds the graph: its time is the build's (one query more
    // is noise beside n inserts into the graph).
    step("vectors: HNSW build");
    start = clock_type::now();
    store.search(name, q_at(0), k, json::object(), search_mode::approximate);
    r.build_vectors_per_sec = static_cast<double>(p.n) / seconds_since(start);
    ++done;

    std::size_t hits = 0;
    start = clock_type::now();
    for (std::size_t i = 0; i < p.queries; ++i) {
      tenths(24, i, p.queries, "vectors: HNSW search");
      for (const auto& m : store.search(name, q_at(i), k, json::object(), search_mode::approximate))
        hits += truth[i].count(m.id);
    }
    double hnsw_s = seconds_since(start);
    done = total;
    r.hnsw_queries_per_sec = static_cast<double>(p.queries) / hnsw_s;
    std::size_t expected = 0;
    for (const auto& t : truth) expected += t.size();
    r.recall_at_k = expected ? static_cast<double>(hits) / static_cast<double>(expected) : 1.0;
    infra->shutdown();
  } catch (...) {
    if (temporary) std::filesystem::remove_all(dir);
    throw;
  }
  if (temporary) std::filesystem::remove_all(dir);
  if (progress) progress(total, total, "vectors: done");

  // A cosine scan reads every vector and its inverse norm.
  r.bytes_per_query = static_cast<double>(p.n) * static_cast<double>(p.dim * 4 + 4);
  r.floor_queries_per_sec = r.copy_bytes_per_sec / r.bytes_per_query;
  r.exact_floor_ratio = r.exact_queries_per_sec / r.floor_queries_per_sec;
  r.hnsw_speedup = r.hnsw_queries_per_sec / r.exact_queries_per_sec;
  return r;
}

std::string format_vectors(const vectors_report& r) {
  const auto& p = r.params;
  const auto& t = r.targets;
  auto met = [](bool ok) { return ok ? "met" : "MISSED"; };
  std::string out;
  out += "vectors: " + std::to_string(p.n) + " x " + std::to_string(p.dim) + " float32 " + p.data +
         " (cosine), " + std::to_string(p.queries) + " queries, k=" + std::to_string(p.k) +
         ", seed " + std::to_string(p.seed) + ", kernels " + r.kernels +
         ", HNSW M=" + std::to_string(r.hnsw_m) +
         " ef_construction=" + std::to_string(r.hnsw_ef_construction) +
         " ef=" + std::to_string(r.hnsw_ef) + "\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-28s %14s\n", "memcpy bandwidth",
                fmt("%.2f GB/s", r.copy_bytes_per_sec / 1e9).c_str());
  out += line;
  std::snprintf(line, sizeof line, "%-28s %14s   (%.1f MB per query)\n", "bandwidth floor",
                fmt("%.1f q/s", r.floor_queries_per_sec).c_str(), r.bytes_per_query / 1e6);
  out += line;
  std::snprintf(line, sizeof line, "%-28s %14s   %.2f of the floor, target >= %.2f: %s\n",
                "exact search", fmt("%.1f q/s", r.exact_queries_per_sec).c_str(),
                r.exact_floor_ratio, t.exact_floor_ratio,
                met(r.exact_floor_ratio >= t.exact_floor_ratio));
  out += line;
  std::snprintf(line, sizeof line, "%-28s %14s   %.1fx exact, target >= %.0fx: %s\n", "HNSW search",
                fmt("%.1f q/s", r.hnsw_queries_per_sec).c_str(), r.hnsw_speedup, t.hnsw_speedup,
                met(r.hnsw_speedup >= t.hnsw_speedup));
  out += line;
  std::snprintf(line, sizeof line, "%-28s %14s   target >= %.2f: %s\n",
                ("HNSW recall@" + std::to_string(p.k)).c_str(), fmt("%.4f", r.recall_at_k).c_str(),
                t.recall_at_k, met(r.recall_at_k >= t.recall_at_k));
  out += line;
  std::snprintf(line, sizeof line, "%-28s %14s\n", "HNSW build",
                (rate(r.build_vectors_per_sec) + " vec").c_str());
  out += line;
  std::snprintf(line, sizeof line, "%-28s %14s\n", "insert (1,000 per commit)",
                (rate(r.insert_vectors_per_sec) + " vec").c_str());
  out += line;
  std::snprintf(line, sizeof line, "%-28s %14s\n", "load into memory",
                fmt("%.2f s", r.load_seconds).c_str());
  out += line;
  return out;
}

nlohmann::json to_json(const vectors_report& r) {
  const auto& p = r.params;
  const auto& t = r.targets;
  return {
      {"machine", r.machine},
      {"params",
       {{"n", p.n},
        {"queries", p.queries},
        {"dim", p.dim},
        {"k", p.k},
        {"seed", p.seed},
        {"data", p.data},
        {"metric", "cosine"},
        {"kernels", r.kernels},
        {"hnsw_m", r.hnsw_m},
        {"hnsw_ef_construction", r.hnsw_ef_construction},
        {"hnsw_ef", r.hnsw_ef}}},
      {"figures",
       {{"copy_bytes_per_sec", r.copy_bytes_per_sec},
        {"bytes_per_query", r.bytes_per_query},
        {"floor_queries_per_sec", r.floor_queries_per_sec},
        {"exact_queries_per_sec", r.exact_queries_per_sec},
        {"exact_floor_ratio", r.exact_floor_ratio},
        {"hnsw_queries_per_sec", r.hnsw_queries_per_sec},
        {"hnsw_speedup", r.hnsw_speedup},
        {"recall_at_k", r.recall_at_k},
        {"build_vectors_per_sec", r.build_vectors_per_sec},
        {"insert_vectors_per_sec", r.insert_vectors_per_sec},
        {"load_seconds", r.load_seconds}}},
      {"targets",
       {{"exact_floor_ratio", t.exact_floor_ratio},
        {"recall_at_k", t.recall_at_k},
        {"hnsw_speedup", t.hnsw_speedup}}},
      {"met",
       {{"exact_floor_ratio", r.exact_floor_ratio >= t.exact_floor_ratio},
        {"recall_at_k", r.recall_at_k >= t.recall_at_k},
        {"hnsw_speedup", r.hnsw_speedup >= t.hnsw_speedup}}},
  };
}

}  // namespace entity::bench
