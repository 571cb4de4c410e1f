#include "vector/collection.hpp"

#include <algorithm>
#include <numeric>
#include <system_error>

#include "vector/codec.hpp"
#include "vector/kernels.hpp"

namespace entity::vector_detail {

// ---- bookkeeping of our own writes ----------------------------------------------------------

void collection::claim(std::int64_t version) {
  detail::lock_guard b(book_mu_);
  claims_.insert(version);
}

void collection::unclaim(std::int64_t version) {
  detail::lock_guard b(book_mu_);
  if (auto it = claims_.find(version); it != claims_.end()) claims_.erase(it);
}

void collection::committed(std::int64_t version, change c) {
  detail::lock_guard lk(mu_);
  detail::lock_guard b(book_mu_);
  if (auto it = claims_.find(version); it != claims_.end()) claims_.erase(it);
  // Not loaded: the first load reads the table, this write included. Already past it: a
  // reload has read it.
  if (!loaded_ || version <= version_) return;
  pending_.emplace(version, std::move(c));
  drain();
}

void collection::drain() {
  while (!pending_.empty() && pending_.begin()->first <= version_) pending_.erase(pending_.begin());
  while (!pending_.empty() && pending_.begin()->first == version_ + 1) {
    try {
      apply(pending_.begin()->second);
    } catch (...) {
      // Half applied (out of memory, most likely): forget the index; the next reader loads it.
      unload();
      pending_.clear();
      return;
    }
    version_ = pending_.begin()->first;
    pending_.erase(pending_.begin());
  }
}

// The registry says `stored`. The index is current when it is at that version or past it, or
// behind it only by versions our own transactions wrote and have not applied yet (a read racing
// our own write may see it or not). A version nobody here claims is another process's write.
// An older version than the index's is a read that started before one of our own commits: a
// collection dropped and created anew starts from the clock, past every version it had.
bool collection::reflects(std::int64_t stored) {
  if (!loaded_) return false;
  if (stored <= version_) return true;
  detail::lock_guard b(book_mu_);
  auto gap = static_cast<std::uint64_t>(stored - version_);
  if (gap > claims_.size() + pending_.size()) return false;
  for (std::int64_t v = version_ + 1; v <= stored; ++v)
    if (!claims_.contains(v) && !pending_.contains(v)) return false;
  return true;
}

void collection::unload() noexcept {
  ++generation_;
  loaded_ = false;
  ids_.clear();
  meta_.clear();
  data_.clear();
  inv_norms_.clear();
  pos_of_id_.clear();
  drop_graph();
}

void collection::drop_graph() noexcept {
  graph_.reset();
  label_of_.clear();
  pos_of_label_.clear();
  tombstones_ = 0;
}

void collection::add_to_graph(position p) {
  auto l = static_cast<hnsw_index::label>(pos_of_label_.size());
  pos_of_label_.push_back(p);
  label_of_[p] = l;
  graph_->add(&data_[std::size_t(p) * dim_], l);
}

void collection::remove_from_graph(position p) {
  hnsw_index::label l = label_of_[p];
  graph_->remove(l);
  pos_of_label_[l] = npos;
  ++tombstones_;
}

// ---- changing the rows -----------------------------------------------------------------------

void collection::apply(const change& c) {
  {
    // A graph being built from a copy of the rows: these ids are relinked when it is adopted.
    detail::lock_guard b(build_mu_);
    if (tracking_) {
      if (c.upserts)
        for (const vector_item& item : *c.upserts) touched_.insert(item.id);
      else
        touched_.insert(c.erased.begin(), c.erased.end());
    }
  }
  if (c.upserts) {
    for (const vector_item& item : *c.upserts) apply_upsert(item);
  } else {
    for (const std::string& id : c.erased) apply_erase(id);
  }
  if (graph_ && tombstones_ > std::max<std::size_t>(ids_.size(), 1000)) drop_graph();
}

void collection::apply_upsert(const vector_item& item) {
  if (item.vector.size() != dim_) throw error(errc::dimension_mismatch, {"index out of step", {}});
  const float* v = item.vector.data();
  json meta = item.metadata.is_null() ? json::object() : item.metadata;
  if (auto it = pos_of_id_.find(item.id); it != pos_of_id_.end()) {
    position p = it->second;
    std::copy(v, v + dim_, data_.begin() + std::ptrdiff_t(p) * dim_);
    meta_[p] = std::move(meta);
    if (metric_ == metric::cosine) inv_norms_[p] = inverse_norm(v, dim_);
    // Given a label it already holds, hnswlib moves that node in place and relinks it: no
    // tombstone, so replacing vectors never grows the graph nor forces a rebuild.
    if (graph_) graph_->add(&data_[std::size_t(p) * dim_], label_of_[p]);
    return;
  }
  auto p = static_cast<position>(ids_.size());
  data_.insert(data_.end(), v, v + dim_);
  ids_.push_back(item.id);
  meta_.push_back(std::move(meta));
  if (metric_ == metric::cosine) inv_norms_.push_back(inverse_norm(v, dim_));
  pos_of_id_.emplace(item.id, p);
  if (graph_) {
    label_of_.push_back(0);
    add_to_graph(p);
  }
}

void collection::apply_erase(const std::string& id) {
  auto it = pos_of_id_.find(id);
  if (it == pos_of_id_.end()) return;
  position p = it->second;
  pos_of_id_.erase(it);
  if (graph_) remove_from_graph(p);
  // The last row moves into the hole, so the rows stay contiguous for the scan.
  auto last = static_cast<position>(ids_.size() - 1);
  if (p != last) {
    std::copy(data_.begin() + std::ptrdiff_t(last) * dim_,
              data_.begin() + std::ptrdiff_t(last + 1) * dim_,
              data_.begin() + std::ptrdiff_t(p) * dim_);
    ids_[p] = std::move(ids_[last]);
    meta_[p] = std::move(meta_[last]);
    if (metric_ == metric::cosine) inv_norms_[p] = inv_norms_[last];
    pos_of_id_[ids_[p]] = p;
    if (graph_) {
      label_of_[p] = label_of_[last];
      pos_of_label_[label_of_[p]] = p;
    }
  }
  data_.resize(data_.size() - dim_);
  ids_.pop_back();
  meta_.pop_back();
  if (metric_ == metric::cosine) inv_norms_.pop_back();
  if (graph_) label_of_.pop_back();
}

void collection::install(snapshot s) {
  // Everything that takes time happens before the lock.
  const std::size_t n = s.ids.size();
  std::vector<float> inv_norms;
  if (s.m == metric::cosine) {
    inv_norms.resize(n);
    for (std::size_t i = 0; i < n; ++i) inv_norms[i] = inverse_norm(&s.data[i * s.dim], s.dim);
  }
  std::unordered_map<std::string, position> pos_of_id;
  pos_of_id.reserve(n);
  for (std::size_t i = 0; i < n; ++i) pos_of_id.emplace(s.ids[i], static_cast<position>(i));

  std::unique_ptr<hnsw_index> old_graph;  // freed after the lock is released
  detail::lock_guard lk(mu_);
  // A snapshot read before one of our own commits was applied is older than the index.
  if (loaded_ && s.version <= version_ && s.dim == dim_ && s.m == metric_) return;
  old_graph = std::move(graph_);
  ++generation_;
  loaded_ = true;
  version_ = s.version;
  dim_ = s.dim;
  metric_ = s.m;
  ids_ = std::move(s.ids);
  meta_ = std::move(s.metadata);
  data_ = std::move(s.data);
  inv_norms_ = std::move(inv_norms);
  pos_of_id_ = std::move(pos_of_id);
  drop_graph();
  detail::lock_guard b(book_mu_);
  drain();
}

// ---- the graph -------------------------------------------------------------------------------

collection::~collection() {
  closing_ = true;
  if (builder_.joinable()) builder_.join();
}

void collection::start_build() {
  detail::lock_guard b(build_mu_);
  if (building_ || closing_) return;
  // The previous build's thread has finished (building_ is cleared as its last step).
  if (builder_.joinable()) builder_.join();
  building_ = true;
  try {
    builder_ = std::thread([this] { run_build(); });
  } catch (const std::system_error&) {
    building_ = false;  // no thread to be had: the next approximate search tries again
  }
}

void collection::build_and_wait() {
  detail::unique_lock b(build_mu_);
  if (building_) {
    build_done_.wait(b.native(), [&]() ENTITY_REQUIRES(build_mu_) { return !building_; });
    return;
  }
  building_ = true;
  b.unlock();
  run_build();
}

// Copies the rows under the shared lock (a memcpy: writes wait that long, not for the build),
// builds the graph from the copy without any lock, and adopts it under the exclusive lock
// unless the rows were replaced wholesale meanwhile.
void collection::run_build() noexcept {
  std::vector<std::string> ids;
  std::unique_ptr<hnsw_index> graph;
  try {
    std::vector<float> rows;
    metric m = metric::cosine;
    std::size_t dim = 0;
    std::uint64_t generation = 0;
    {
      detail::shared_lock lk(mu_);
      detail::lock_guard b(build_mu_);
      if (loaded_ && !graph_ && !closing_) {
        ids = ids_;
        rows = data_;
        m = metric_;
        dim = dim_;
        generation = generation_;
        touched_.clear();
        tracking_ = true;
      }
    }
    if (!ids.empty()) {
      const std::size_t n = ids.size();
      graph =
          std::make_unique<hnsw_index>(m, dim, n + n / 4 + 64, p_.hnsw_m, p_.hnsw_ef_construction);
      for (std::size_t i = 0; i < n && graph; ++i) {
        // Every few hundred vectors: stop when the store closes or the rows were replaced.
        if (i % 256 == 0 && (closing_ || generation_ != generation)) graph.reset();
        if (graph) graph->add(&rows[i * dim], static_cast<hnsw_index::label>(i));
      }
    }
    detail::lock_guard x(mu_);
    detail::lock_guard b(build_mu_);
    if (graph && generation_ == generation && loaded_ && !graph_) adopt(std::move(graph), ids);
  } catch (...) {
    // Out of memory, most likely: no graph this time; the next approximate search tries again.
  }
  {
    detail::lock_guard b(build_mu_);
    tracking_ = false;
    touched_.clear();
    building_ = false;
  }
  build_done_.notify_all();
  graph.reset();  // not adopted: freed here, outside every lock
}

// Label l of `g` is the vector labelled[l] had when the rows were copied. Rows erased or
// written since then leave their label behind as a tombstone; written and new rows get new
// labels.
void collection::adopt(std::unique_ptr<hnsw_index> g, const std::vector<std::string>& labelled) {
  constexpr auto unlabelled = ~hnsw_index::label{0};
  graph_ = std::move(g);
  label_of_.assign(ids_.size(), unlabelled);
  pos_of_label_.assign(labelled.size(), npos);
  tombstones_ = 0;
  for (std::size_t l = 0; l < labelled.size(); ++l) {
    auto it = pos_of_id_.find(labelled[l]);
    if (it == pos_of_id_.end() || touched_.contains(labelled[l])) {
      graph_->remove(static_cast<hnsw_index::label>(l));
      ++tombstones_;
      continue;
    }
    pos_of_label_[l] = it->second;
    label_of_[it->second] = static_cast<hnsw_index::label>(l);
  }
  for (std::size_t p = 0; p < ids_.size(); ++p)
    if (label_of_[p] == unlabelled) add_to_graph(static_cast<position>(p));
}

bool collection::indexed() const {
  detail::shared_lock lk(mu_);
  return graph_ != nullptr;
}

// ---- reading ---------------------------------------------------------------------------------

std::optional<std::int64_t> collection::count(std::int64_t stored, std::size_t dim, metric m) {
  detail::shared_lock lk(mu_);
  if (!loaded_ || dim_ != dim || metric_ != m || !reflects(stored)) return std::nullopt;
  return static_cast<std::int64_t>(ids_.size());
}

std::optional<vector_store::matches> collection::search(std::optional<std::int64_t> stored,
                                                        std::size_t dim, metric m,
                                                        std::span<const float> query, std::size_t k,
                                                        const json& filter, search_mode mode) {
  const float* q = query.data();
  const float q_inv = m == metric::cosine ? inverse_norm(q, dim) : 1.0f;
  for (int attempt = 0;; ++attempt) {
    detail::shared_lock lk(mu_);
    if (!loaded_ || dim_ != dim || metric_ != m) return std::nullopt;
    if (stored && !reflects(*stored)) return std::nullopt;
    // Current now; whatever the index holds after this point is newer still.
    stored.reset();
    bool use_graph = mode == search_mode::approximate && ids_.size() > p_.hnsw_threshold;
    if (use_graph && !graph_) {
      if (p_.hnsw_build_in_background || attempt >= 3) {
        // Exact until the graph is ready (or when the rows keep being replaced under the
        // build): slower, never wrong.
        if (p_.hnsw_build_in_background) start_build();
        use_graph = false;
      } else {
        lk.unlock();
        build_and_wait();
        continue;
      }
    }
    scored found = use_graph ? walk(q, q_inv, k, filter) : scan(q, q_inv, k, filter);
    return results(std::move(found), k);
  }
}

float collection::distance_to(const float* query, float query_inv_norm, position p) const {
  float d;
  distances(metric_, query, query_inv_norm, &data_[std::size_t(p) * dim_],
            metric_ == metric::cosine ? &inv_norms_[p] : nullptr, 1, dim_, &d);
  return d;
}

// The exact search: distances a block at a time (one tight loop over contiguous floats), then
// a bounded max-heap of the k best. The filter is only consulted for a row that would enter
// the heap.
collection::scored collection::scan(const float* query, float query_inv_norm, std::size_t k,
                                    const json& filter) const {
  constexpr std::size_t block = 256;
  const std::size_t n = ids_.size();
  const bool filtered = !filter.empty();
  const bool cosine = metric_ == metric::cosine;
  scored heap;
  heap.reserve(std::min(k, n) + 1);
  float d[block];
  for (std::size_t start = 0; start < n; start += block) {
    const std::size_t count = std::min(block, n - start);
    distances(metric_, query, query_inv_norm, &data_[start * dim_],
              cosine ? &inv_norms_[start] : nullptr, count, dim_, d);
    for (std::size_t i = 0; i < count; ++i) {
      if (heap.size() == k && !(d[i] < heap.front().first)) continue;
      auto p = static_cast<position>(start + i);
      if (filtered && !matches_filter(meta_[p], filter)) continue;
      if (heap.size() == k) {
        std::pop_heap(heap.begin(), heap.end());
        heap.pop_back();
      }
      heap.emplace_back(d[i], p);
      std::push_heap(heap.begin(), heap.end());
    }
  }
  return heap;
}

// The approximate search: a walk of the graph with a candidate list of max(ef, k). With a
// filter, the list widens fourfold until k candidates match; when it would have to cover an
// eighth of the collection, so few rows match that a scan is the cheaper way to find them.
collection::scored collection::walk(const float* query, float query_inv_norm, std::size_t k,
                                    const json& filter) const {
  const std::size_t n = ids_.size();
  const bool filtered = !filter.empty();
  std::size_t breadth = std::max(p_.hnsw_ef, k);
  scored found;
  while (true) {
    std::vector<hnsw_index::label> labels = graph_->search(query, breadth);
    found.clear();
    // The graph's order is the metric's (it measures the same distance, on normalised copies
    // for cosine), so the first k live matches are the answer: only they are measured again.
    for (hnsw_index::label l : labels) {
      position p = l < pos_of_label_.size() ? pos_of_label_[l] : npos;
      if (p == npos) continue;  // erased: never returned
      if (filtered && !matches_filter(meta_[p], filter)) continue;
      found.emplace_back(distance_to(query, query_inv_norm, p), p);
      if (found.size() == k) break;
    }
    if (found.size() >= k || labels.size() < breadth) return found;
    breadth *= 4;
    if (breadth > n / 8) return scan(query, query_inv_norm, k, filter);
  }
}

vector_store::matches collection::results(scored found, std::size_t k) const {
  std::sort(found.begin(), found.end(),
            [&](const auto& a, const auto& b) ENTITY_REQUIRES_SHARED(mu_) {
              if (a.first != b.first) return a.first < b.first;
              return ids_[a.second] < ids_[b.second];
            });
  if (found.size() > k) found.resize(k);
  vector_store::matches out;
  out.reserve(found.size());
  for (const auto& [d, p] : found) out.push_back(vector_match{ids_[p], d, meta_[p]});
  return out;
}

}  // namespace entity::vector_detail
