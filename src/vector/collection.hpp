// The in-memory index of one collection: its vectors in one contiguous float array (the exact
// scan reads it front to back), their ids and metadata, and the HNSW graph once it is built.
// It mirrors the collection's table at one stored `version` and is kept in step with this
// store's own writes as they commit.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/thread_safety.hpp"
#include "entity/vector_store.hpp"
#include "vector/hnsw_index.hpp"

namespace entity::vector_detail {

/// A collection's rows as read from its table, all at one stored version.
struct snapshot {
  std::int64_t version = 0;
  std::size_t dim = 0;
  metric m = metric::cosine;
  std::vector<std::string> ids;
  std::vector<float> data;  ///< ids.size() * dim floats, row after row
  std::vector<json> metadata;
};

/// One committed write of ours, replayed on the index: upserts in order, or erases.
struct change {
  std::shared_ptr<const vector_store::items> upserts;
  std::vector<std::string> erased;  ///< when `upserts` is null
};

/// Thread safety: every member may be called from any thread. Searches share the index; applying
/// a write or installing a snapshot takes it alone. The HNSW graph is built from a copy of the
/// rows without the index's lock (on a thread of its own unless the parameters say otherwise),
/// so searches and writes go on while it is built; it is then adopted, with the writes made
/// meanwhile replayed on it.
class collection {
 public:
  explicit collection(const vector_store_params& p) : p_(p) {}
  /// Stops a build in progress and waits for its thread.
  ~collection();
  collection(const collection&) = delete;
  collection& operator=(const collection&) = delete;

  // ---- what this store's writes report ----------------------------------------------------
  // A write transaction claims the version it wrote before it commits, so that a reader who
  // sees that version in the registry knows it is ours and on its way, not another process's.

  /// Called inside the write transaction, once the write is complete.
  void claim(std::int64_t version);
  /// The claimed write failed (rolled back): the version is not ours after all.
  void unclaim(std::int64_t version);
  /// The claimed write committed: applies it now, or once the writes before it are applied.
  void committed(std::int64_t version, change c);

  // ---- loading ----------------------------------------------------------------------------

  /// Replaces the index with `s` (unless it already mirrors that very version).
  void install(snapshot s);

  // ---- reading ----------------------------------------------------------------------------

  /// The search, or nullopt when the index must be (re)loaded first: it is not loaded, has
  /// another dimension or metric, or does not reflect the registry's `stored` version (apart
  /// from writes of ours still being committed). Without `stored`, any loaded index of the right
  /// shape is used (the caller has just loaded it). REQUIRES: query.size() == dim, k >= 1.
  std::optional<vector_store::matches> search(std::optional<std::int64_t> stored, std::size_t dim,
                                              metric m, std::span<const float> query, std::size_t k,
                                              const json& filter, search_mode mode);
  /// How many vectors, or nullopt when the index does not reflect `stored` (as for search).
  std::optional<std::int64_t> count(std::int64_t stored, std::size_t dim, metric m);
  /// Whether approximate searches walk an HNSW graph now (it is built and adopted).
  bool indexed() const;

 private:
  using position = std::uint32_t;
  static constexpr position npos = ~position(0);

  // mu_ is held shared or exclusive (REQUIRES_SHARED), exclusive (REQUIRES), or not at all
  // (EXCLUDES: the function takes it, or waits for a build that does).
  bool reflects(std::int64_t stored) ENTITY_REQUIRES_SHARED(mu_) ENTITY_EXCLUDES(book_mu_);
  void drain() ENTITY_REQUIRES(mu_, book_mu_);
  void apply(const change& c) ENTITY_REQUIRES(mu_) ENTITY_EXCLUDES(build_mu_);
  void apply_upsert(const vector_item& item) ENTITY_REQUIRES(mu_);
  void apply_erase(const std::string& id) ENTITY_REQUIRES(mu_);
  void unload() noexcept ENTITY_REQUIRES(mu_);
  void drop_graph() noexcept ENTITY_REQUIRES(mu_);
  void add_to_graph(position p) ENTITY_REQUIRES(mu_);  // gives row p a new label
  void remove_from_graph(position p) ENTITY_REQUIRES(mu_);
  // Builds in the background.
  void start_build() ENTITY_REQUIRES_SHARED(mu_) ENTITY_EXCLUDES(build_mu_);
  // Builds here, or waits for the build in progress.
  void build_and_wait() ENTITY_EXCLUDES(mu_, build_mu_);
  void run_build() noexcept ENTITY_EXCLUDES(mu_, build_mu_);  // the build itself
  void adopt(std::unique_ptr<hnsw_index> g, const std::vector<std::string>& labelled)
      ENTITY_REQUIRES(mu_, build_mu_);
  float distance_to(const float* query, float query_inv_norm, position p) const
      ENTITY_REQUIRES_SHARED(mu_);
  using scored = std::vector<std::pair<float, position>>;
  scored scan(const float* query, float query_inv_norm, std::size_t k, const json& filter) const
      ENTITY_REQUIRES_SHARED(mu_);
  scored walk(const float* query, float query_inv_norm, std::size_t k, const json& filter) const
      ENTITY_REQUIRES_SHARED(mu_);
  vector_store::matches results(scored found, std::size_t k) const ENTITY_REQUIRES_SHARED(mu_);

  const vector_store_params p_;

  // The index: read under mu_ shared, written under mu_ exclusive.
  mutable detail::shared_mutex mu_;
  bool loaded_ ENTITY_GUARDED_BY(mu_) = false;
  std::int64_t version_ ENTITY_GUARDED_BY(mu_) = 0;  // the stored version the index reflects
  std::size_t dim_ ENTITY_GUARDED_BY(mu_) = 0;
  metric metric_ ENTITY_GUARDED_BY(mu_) = metric::cosine;
  std::vector<std::string> ids_ ENTITY_GUARDED_BY(mu_);
  std::vector<json> meta_ ENTITY_GUARDED_BY(mu_);
  std::vector<float> data_ ENTITY_GUARDED_BY(mu_);       // ids_.size() * dim_
  std::vector<float> inv_norms_ ENTITY_GUARDED_BY(mu_);  // 1 / |row|, for cosine only
  std::unordered_map<std::string, position> pos_of_id_ ENTITY_GUARDED_BY(mu_);
  // Raised when the rows are replaced wholesale (a snapshot installed, the index unloaded): a
  // graph built from the rows before that is thrown away. Written under mu_ exclusive; the
  // builder reads it without the lock to stop early.
  std::atomic<std::uint64_t> generation_{0};
  // The graph, once built. Its labels outlive positions (an erase moves the last row into the
  // hole it leaves), so each row has a label and each label a row. A label is used once: an
  // erased vector leaves a tombstone in the graph, and once the tombstones outnumber the live
  // vectors the graph is dropped, to be rebuilt by the next approximate search.
  // (The graph is searched under mu_ shared: hnswlib's searches may run side by side.)
  std::unique_ptr<hnsw_index> graph_ ENTITY_GUARDED_BY(mu_) ENTITY_PT_GUARDED_BY(mu_);
  // Per position; empty while there is no graph.
  std::vector<hnsw_index::label> label_of_ ENTITY_GUARDED_BY(mu_);
  std::vector<position> pos_of_label_ ENTITY_GUARDED_BY(mu_);  // npos for a tombstone
  std::size_t tombstones_ ENTITY_GUARDED_BY(mu_) = 0;

  // The build, guarded by build_mu_ (taken after mu_, or alone).
  detail::mutex build_mu_;
  std::condition_variable build_done_;
  bool building_ ENTITY_GUARDED_BY(build_mu_) = false;
  // Between the build's copy and its adoption: the ids written meanwhile.
  bool tracking_ ENTITY_GUARDED_BY(build_mu_) = false;
  std::unordered_set<std::string> touched_ ENTITY_GUARDED_BY(build_mu_);
  // The last background build's thread.
  std::thread builder_ ENTITY_GUARDED_BY(build_mu_);
  std::atomic<bool> closing_{false};  // set by the destructor: stop building

  // Our writes in flight, guarded by book_mu_ (taken after mu_, or alone).
  detail::mutex book_mu_;
  std::multiset<std::int64_t> claims_ ENTITY_GUARDED_BY(book_mu_);
  // Committed, waiting for an earlier version.
  std::map<std::int64_t, change> pending_ ENTITY_GUARDED_BY(book_mu_);
};

}  // namespace entity::vector_detail
