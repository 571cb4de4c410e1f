// entitydb bench --vectors: the vector store's exact and HNSW search on random vectors, each
// figure beside its floor or its target, measured in one run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace entity::bench {

struct vectors_params {
  std::size_t n = 100'000;     ///< vectors stored
  std::size_t queries = 1000;  ///< queries of each kind
  std::size_t dim = 384;       ///< floats per vector
  std::size_t k = 10;          ///< neighbours per query (recall@k)
  std::uint64_t seed = 42;     ///< the vectors and queries are the same in every run
  /// How the vectors are drawn: "clustered" (n / 100 clusters, the way embeddings of related
  /// texts group) or "gaussian" (independent components: no structure at all).
  std::string data = "clustered";
  std::size_t hnsw_m = 0;                ///< 0: the vector store's default
  std::size_t hnsw_ef_construction = 0;  ///< 0: the vector store's default
  std::size_t hnsw_ef = 0;               ///< 0: the vector store's default
  std::string db_dir;  ///< where the database file goes (empty: a temporary folder)
};

/// The targets every run is held to.
struct vectors_targets {
  double exact_floor_ratio = 0.5;  ///< exact queries/s >= half the memory-bandwidth floor
  double recall_at_k = 0.95;       ///< HNSW recall@k against exact search
  double hnsw_speedup = 20;        ///< HNSW queries/s >= 20x exact queries/s
};

struct vectors_report {
  vectors_params params;
  vectors_targets targets;
  nlohmann::json machine;
  std::string kernels;               ///< "avx2" or "portable"
  double copy_bytes_per_sec = 0;     ///< memcpy of a buffer far larger than the caches
  double bytes_per_query = 0;        ///< what one exact scan reads
  double floor_queries_per_sec = 0;  ///< copy_bytes_per_sec / bytes_per_query
  double exact_queries_per_sec = 0;
  double exact_floor_ratio = 0;  ///< exact / floor
  double hnsw_queries_per_sec = 0;
  double hnsw_speedup = 0;            ///< hnsw / exact
  double recall_at_k = 0;             ///< mean share of exact's k ids that HNSW found
  double build_vectors_per_sec = 0;   ///< the HNSW graph over all n vectors
  double insert_vectors_per_sec = 0;  ///< upsert_batch of 1,000 at a time, committed
  double load_seconds = 0;            ///< reading the collection into memory
  std::size_t hnsw_m = 0, hnsw_ef_construction = 0, hnsw_ef = 0;  ///< as used
};

/// Called as work proceeds: (steps done, steps in all, what is running).
using vectors_progress_fn = std::function<void(int, int, const std::string&)>;

/// Runs the vector benchmark. Throws entity::error or std::runtime_error on failure.
vectors_report run_vectors(const vectors_params& p, const vectors_progress_fn& progress);

/// Each figure with its target and whether it is met.
std::string format_vectors(const vectors_report& r);
nlohmann::json to_json(const vectors_report& r);

}  // namespace entity::bench
