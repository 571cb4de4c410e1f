// An HNSW graph over one collection's vectors (hnswlib, kept out of every other file: its
// header defines functions that may be compiled into one translation unit only).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "entity/vector_types.hpp"

namespace entity::vector_detail {

/// A label is given to one vector at a time: adding a label the graph holds moves its node to
/// the new vector in place (hnswlib relinks it), and a removed label stays a tombstone.
///
/// Thread safety: search may run concurrently with other searches; add and remove need the
/// index to themselves (the owner's exclusive lock).
class hnsw_index {
 public:
  using label = std::uint32_t;

  /// Room for `capacity` labels at first; it grows as labels beyond it are added.
  hnsw_index(metric m, std::size_t dim, std::size_t capacity, std::size_t links,
             std::size_t ef_construction);
  ~hnsw_index();
  hnsw_index(const hnsw_index&) = delete;
  hnsw_index& operator=(const hnsw_index&) = delete;

  /// Inserts `vector` under `label`; a label already in the graph (and not removed) is moved to
  /// the new vector in place.
  void add(const float* vector, label l);
  /// Marks `label` deleted: searches never return it again until it is added anew.
  /// REQUIRES: `l` is present and not removed.
  void remove(label l);
  /// Up to `n` labels nearest to `query`, nearest first, found with a candidate list of `n`.
  std::vector<label> search(const float* query, std::size_t n) const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace entity::vector_detail
