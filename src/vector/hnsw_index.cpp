#include "vector/hnsw_index.hpp"

// hnswlib 0.6.2's graph walk prefetches the neighbour after the current one, so at the end of
// a node's top link list it reads one id past a malloc'd block (nmslib/hnswlib#107, #578).
// The read cannot fault (it ends at most 3 bytes past the block, inside the heap) and its value
// only feeds a prefetch hint, so normal builds keep the hint. AddressSanitizer rightly reports
// the read; its builds compile the hint out, arguments unevaluated, so the rest stays checked.
#if defined(__SANITIZE_ADDRESS__) && defined(__SSE__)
#include <xmmintrin.h>
#undef _mm_prefetch
#define _mm_prefetch(address, hint) ((void)0)
#endif
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <cmath>

#include "vector/kernels.hpp"

namespace entity::vector_detail {

namespace {

// hnswlib's own spaces pick their SIMD at compile time (SSE unless the whole file is built for
// AVX); this space measures with the kernels of kernels.cpp, chosen at run time.
// Distances as hnswlib's spaces define them: 1 - dot, and the squared L2 distance.
class kernel_space final : public hnswlib::SpaceInterface<float> {
 public:
  kernel_space(metric m, std::size_t dim) : dim_(dim), l2_(m == metric::l2) {}
  std::size_t get_data_size() override { return dim_ * sizeof(float); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return l2_ ? &l2 : &ip; }
  void* get_dist_func_param() override { return &dim_; }

 private:
  static float ip(const void* a, const void* b, const void* dim) {
    return 1.0f - dot(static_cast<const float*>(a), static_cast<const float*>(b),
                      *static_cast<const std::size_t*>(dim));
  }
  static float l2(const void* a, const void* b, const void* dim) {
    return l2_squared(static_cast<const float*>(a), static_cast<const float*>(b),
                      *static_cast<const std::size_t*>(dim));
  }
  std::size_t dim_;
  bool l2_;
};

}  // namespace

// Cosine is the inner product of unit vectors, so cosine collections give the graph
// normalised copies.
struct hnsw_index::impl {
  metric m;
  std::size_t dim;
  std::unique_ptr<hnswlib::SpaceInterface<float>> space;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> graph;
  std::vector<float> scratch;  // add()'s normalised copy; add runs alone

  const float* prepared(const float* v, std::vector<float>& buf) const {
    if (m != metric::cosine) return v;
    buf.assign(v, v + dim);
    float inv = inverse_norm(v, dim);
    for (float& x : buf) x *= inv;
    return buf.data();
  }
};

hnsw_index::hnsw_index(metric m, std::size_t dim, std::size_t capacity, std::size_t links,
                       std::size_t ef_construction)
    : impl_(std::make_unique<impl>()) {
  impl_->m = m;
  impl_->dim = dim;
  impl_->space = std::make_unique<kernel_space>(m, dim);
  impl_->graph = std::make_unique<hnswlib::HierarchicalNSW<float>>(
      impl_->space.get(), std::max<std::size_t>(capacity, 16), std::max<std::size_t>(links, 2),
      std::max<std::size_t>(ef_construction, 1));
  // The search breadth is given per query (search's n); the graph's own setting stays minimal
  // so that it never widens a query beyond what the caller asked for.
  impl_->graph->setEf(1);
}

hnsw_index::~hnsw_index() = default;

void hnsw_index::add(const float* vector, label l) {
  auto& g = *impl_->graph;
  if (l >= g.max_elements_) g.resizeIndex(std::max<std::size_t>(g.max_elements_ * 2, l + 1));
  const float* v = impl_->prepared(vector, impl_->scratch);
  if (g.cur_element_count > 0) {
    g.addPoint(v, l);
    return;
  }
  // The first node enters on a level no later node will reach (a node reaches level L with
  // probability M^-L; here that is below 2^-48). hnswlib holds its global lock through any
  // insert that raises the top level, while other inserts take it under a node's lock: with the
  // top fixed from the start, the locks are only ever taken newest node first.
  double per_level = std::log2(static_cast<double>(std::max<std::size_t>(g.M_, 2)));
  g.addPoint(v, l, static_cast<int>(std::ceil(48.0 / per_level)));
}

void hnsw_index::remove(label l) { impl_->graph->markDelete(l); }

std::vector<hnsw_index::label> hnsw_index::search(const float* query, std::size_t n) const {
  std::vector<float> buf;
  auto found = impl_->graph->searchKnn(impl_->prepared(query, buf), n);
  std::vector<label> out(found.size());
  // The queue yields the farthest first.
  for (std::size_t i = found.size(); i-- > 0;) {
    out[i] = static_cast<label>(found.top().second);
    found.pop();
  }
  return out;
}

}  // namespace entity::vector_detail
