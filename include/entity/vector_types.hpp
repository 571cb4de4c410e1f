// entity-db: the plain types of the vector store (vector_store.hpp): metrics, search modes, its
// settings, items, matches and collection descriptions. No asio, no engine: what the vector
// internals (kernels, the HNSW index) and light users need.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "entity/json.hpp"

namespace entity {

/// How the distance between two vectors is measured (see the table at the top of this file).
enum class metric { cosine, l2, inner_product };

/// How a search finds its neighbours.
enum class search_mode {
  exact,        ///< a scan of every vector: always the true nearest neighbours
  approximate,  ///< HNSW once the collection is larger than hnsw_threshold, a scan below it
};

/// "cosine", "l2" or "inner_product" (the text stored in the registry).
std::string_view to_string(metric m) noexcept;
/// The metric a name means: "cosine", "l2", "inner_product" or its short form "ip".
std::optional<metric> parse_metric(std::string_view name) noexcept;

/// Tuning of a vector_store. Every field has a documented default.
struct vector_store_params {
  /// An approximate search uses HNSW only when the collection holds more than this many
  /// vectors; below it a scan is as fast and exact. The first approximate search past the
  /// threshold starts building the graph, which is kept in step with writes after that.
  /// Default 1,000.
  std::size_t hnsw_threshold = 1000;
  /// Where that graph is built. true (the default): on a thread of its own, from a copy of the
  /// vectors; until it is ready, approximate searches scan (exact answers, at the scan's
  /// speed) and writes go on, and it is then adopted with those writes replayed on it.
  /// false: the search that needs the graph builds it and waits, and so do approximate
  /// searches that arrive meanwhile. A build inserts a few hundred to a few thousand vectors a
  /// second (dimension and hnsw_ef_construction decide), so 100,000 vectors take minutes.
  bool hnsw_build_in_background = true;
  /// Links per node of the HNSW graph (hnswlib's M). Default 16.
  std::size_t hnsw_m = 16;
  /// Candidates considered while inserting into the graph. Higher builds slower and finds
  /// better links. Default 200.
  std::size_t hnsw_ef_construction = 200;
  /// Candidates kept while searching the graph (raised to k when k is larger). Higher is
  /// slower and finds more of the true neighbours. Default 100: recall@10 of 1.0 on the
  /// benchmark's 100,000 clustered vectors of 384 dimensions, and of at least 0.9 on 20,000
  /// uniformly random vectors of 32 dimensions (the store's test). Vectors without structure in
  /// many dimensions need far more (README, Performance).
  std::size_t hnsw_ef = 100;
};

/// One stored vector: its id, the vector and its metadata (a JSON object).
struct vector_item {
  std::string id;
  std::vector<float> vector;
  json metadata = json::object();
};

/// One search result. `distance` follows the collection's metric (smaller is nearer).
struct vector_match {
  std::string id;
  float distance = 0;
  json metadata = json::object();
};

/// A collection as list_collections reports it.
struct collection_info {
  std::string name;
  std::size_t dim = 0;
  entity::metric metric = entity::metric::cosine;
  std::int64_t count = 0;  ///< vectors stored
  /// Whether approximate searches of this store walk an HNSW graph of the collection now (it
  /// has been built in this process); false while they scan.
  bool indexed = false;
};

}  // namespace entity
