#include "vector/kernels.hpp"

#include <cmath>

namespace entity::vector_detail {
namespace {

// Eight independent running sums: each lane only ever adds its own products, so the compiler
// needs no licence to reorder float additions and g++ -O2 turns the lane loop into SIMD
// (two SSE registers, or one AVX register where the target has it).
constexpr std::size_t lanes = 8;

inline float sum_lanes(const float (&acc)[lanes]) noexcept {
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

inline float dot_inline(const float* __restrict a, const float* __restrict b,
                        std::size_t dim) noexcept {
  float acc[lanes] = {};
  std::size_t j = 0;
  for (; j + lanes <= dim; j += lanes)
    for (std::size_t l = 0; l < lanes; ++l) acc[l] += a[j + l] * b[j + l];
  float tail = 0;
  for (; j < dim; ++j) tail += a[j] * b[j];
  return sum_lanes(acc) + tail;
}

inline float l2_inline(const float* __restrict a, const float* __restrict b,
                       std::size_t dim) noexcept {
  float acc[lanes] = {};
  std::size_t j = 0;
  for (; j + lanes <= dim; j += lanes)
    for (std::size_t l = 0; l < lanes; ++l) {
      float d = a[j + l] - b[j + l];
      acc[l] += d * d;
    }
  float tail = 0;
  for (; j < dim; ++j) {
    float d = a[j] - b[j];
    tail += d * d;
  }
  return sum_lanes(acc) + tail;
}

}  // namespace

float dot(const float* a, const float* b, std::size_t dim) noexcept {
  return dot_inline(a, b, dim);
}

float l2_squared(const float* a, const float* b, std::size_t dim) noexcept {
  return l2_inline(a, b, dim);
}

float inverse_norm(const float* a, std::size_t dim) noexcept {
  float n = std::sqrt(dot_inline(a, a, dim));
  return n > 0 ? 1.0f / n : 0.0f;
}

void distances(metric m, const float* query, float query_inv_norm, const float* rows,
               const float* inv_norms, std::size_t n, std::size_t dim, float* out) noexcept {
  switch (m) {
    case metric::l2:
      for (std::size_t i = 0; i < n; ++i) out[i] = l2_inline(query, rows + i * dim, dim);
      break;
    case metric::inner_product:
      for (std::size_t i = 0; i < n; ++i) out[i] = -dot_inline(query, rows + i * dim, dim);
      break;
    case metric::cosine:
      for (std::size_t i = 0; i < n; ++i)
        out[i] = 1.0f - dot_inline(query, rows + i * dim, dim) * query_inv_norm * inv_norms[i];
      break;
  }
}

}  // namespace entity::vector_detail
