#include "vector/kernels.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ENTITY_VECTOR_AVX2 1
#endif

namespace entity::vector_detail {
namespace {

// ---- portable -----------------------------------------------------------------------------
// Eight independent running sums: each lane only ever adds its own products, so the compiler
// needs no licence to reorder float additions and g++ -O2 turns the lane loop into SIMD
// (two SSE registers).
constexpr std::size_t lanes = 8;

inline float sum_lanes(const float (&acc)[lanes]) noexcept {
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

float dot_portable(const float* __restrict a, const float* __restrict b, std::size_t dim) noexcept {
  float acc[lanes] = {};
  std::size_t j = 0;
  for (; j + lanes <= dim; j += lanes)
    for (std::size_t l = 0; l < lanes; ++l) acc[l] += a[j + l] * b[j + l];
  float tail = 0;
  for (; j < dim; ++j) tail += a[j] * b[j];
  return sum_lanes(acc) + tail;
}

float l2_portable(const float* __restrict a, const float* __restrict b, std::size_t dim) noexcept {
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

// out[i] = dot(query, row i) or l2(query, row i) for n rows.
void dots_portable(const float* q, const float* rows, std::size_t n, std::size_t dim,
                   float* out) noexcept {
  for (std::size_t i = 0; i < n; ++i) out[i] = dot_portable(q, rows + i * dim, dim);
}
void l2s_portable(const float* q, const float* rows, std::size_t n, std::size_t dim,
                  float* out) noexcept {
  for (std::size_t i = 0; i < n; ++i) out[i] = l2_portable(q, rows + i * dim, dim);
}

#ifdef ENTITY_VECTOR_AVX2
// ---- AVX2 + FMA, chosen at run time where the processor has them ---------------------------
// The scan is bound by memory bandwidth, not arithmetic: the kernel's job is to keep enough
// loads in flight. Four rows are walked side by side, so each query chunk is loaded once for
// four rows and four independent FMA chains hide the FMA latency; the hardware prefetcher
// sees four sequential streams.
#define ENTITY_AVX2 __attribute__((target("avx2,fma")))

ENTITY_AVX2 inline float hsum(__m256 v) noexcept {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

ENTITY_AVX2 float dot_avx2(const float* a, const float* b, std::size_t dim) noexcept {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  std::size_t j = 0;
  for (; j + 32 <= dim; j += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), _mm256_loadu_ps(b + j + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 16), _mm256_loadu_ps(b + j + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 24), _mm256_loadu_ps(b + j + 24), s3);
  }
  for (; j + 8 <= dim; j += 8)
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), s0);
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; j < dim; ++j) sum += a[j] * b[j];
  return sum;
}

ENTITY_AVX2 float l2_avx2(const float* a, const float* b, std::size_t dim) noexcept {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  std::size_t j = 0;
  for (; j + 32 <= dim; j += 32) {
    __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j));
    __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(a + j + 8), _mm256_loadu_ps(b + j + 8));
    __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(a + j + 16), _mm256_loadu_ps(b + j + 16));
    __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(a + j + 24), _mm256_loadu_ps(b + j + 24));
    s0 = _mm256_fmadd_ps(d0, d0, s0);
    s1 = _mm256_fmadd_ps(d1, d1, s1);
    s2 = _mm256_fmadd_ps(d2, d2, s2);
    s3 = _mm256_fmadd_ps(d3, d3, s3);
  }
  for (; j + 8 <= dim; j += 8) {
    __m256 d = _mm256_sub_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j));
    s0 = _mm256_fmadd_ps(d, d, s0);
  }
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; j < dim; ++j) {
    float d = a[j] - b[j];
    sum += d * d;
  }
  return sum;
}

// Four rows at a time; Op is the per-chunk accumulation (dot or squared difference).
template <bool L2>
ENTITY_AVX2 inline void four_rows(const float* q, const float* r, std::size_t dim,
                                  float* out) noexcept {
  const float* r0 = r;
  const float* r1 = r + dim;
  const float* r2 = r + 2 * dim;
  const float* r3 = r + 3 * dim;
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  std::size_t j = 0;
  for (; j + 8 <= dim; j += 8) {
    __m256 qv = _mm256_loadu_ps(q + j);
    __m256 v0 = _mm256_loadu_ps(r0 + j), v1 = _mm256_loadu_ps(r1 + j);
    __m256 v2 = _mm256_loadu_ps(r2 + j), v3 = _mm256_loadu_ps(r3 + j);
    if constexpr (L2) {
      v0 = _mm256_sub_ps(v0, qv);
      v1 = _mm256_sub_ps(v1, qv);
      v2 = _mm256_sub_ps(v2, qv);
      v3 = _mm256_sub_ps(v3, qv);
      s0 = _mm256_fmadd_ps(v0, v0, s0);
      s1 = _mm256_fmadd_ps(v1, v1, s1);
      s2 = _mm256_fmadd_ps(v2, v2, s2);
      s3 = _mm256_fmadd_ps(v3, v3, s3);
    } else {
      s0 = _mm256_fmadd_ps(qv, v0, s0);
      s1 = _mm256_fmadd_ps(qv, v1, s1);
      s2 = _mm256_fmadd_ps(qv, v2, s2);
      s3 = _mm256_fmadd_ps(qv, v3, s3);
    }
  }
  float t[4] = {hsum(s0), hsum(s1), hsum(s2), hsum(s3)};
  for (; j < dim; ++j) {
    const float rows_j[4] = {r0[j], r1[j], r2[j], r3[j]};
    for (int i = 0; i < 4; ++i) {
      if constexpr (L2) {
        float d = rows_j[i] - q[j];
        t[i] += d * d;
      } else {
        t[i] += q[j] * rows_j[i];
      }
    }
  }
  std::memcpy(out, t, sizeof t);
}

ENTITY_AVX2 void dots_avx2(const float* q, const float* rows, std::size_t n, std::size_t dim,
                           float* out) noexcept {
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) four_rows<false>(q, rows + i * dim, dim, out + i);
  for (; i < n; ++i) out[i] = dot_avx2(q, rows + i * dim, dim);
}

ENTITY_AVX2 void l2s_avx2(const float* q, const float* rows, std::size_t n, std::size_t dim,
                          float* out) noexcept {
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) four_rows<true>(q, rows + i * dim, dim, out + i);
  for (; i < n; ++i) out[i] = l2_avx2(q, rows + i * dim, dim);
}
#endif

struct kernel_set {
  float (*dot)(const float*, const float*, std::size_t) noexcept;
  float (*l2)(const float*, const float*, std::size_t) noexcept;
  void (*dots)(const float*, const float*, std::size_t, std::size_t, float*) noexcept;
  void (*l2s)(const float*, const float*, std::size_t, std::size_t, float*) noexcept;
  const char* name;
};

// The widest kernels this processor runs; ENTITY_VECTOR_KERNELS=portable forces the portable
// ones (to compare the two, or to rule the SIMD path out).
kernel_set choose() noexcept {
  kernel_set portable{&dot_portable, &l2_portable, &dots_portable, &l2s_portable, "portable"};
  const char* forced = std::getenv("ENTITY_VECTOR_KERNELS");
  if (forced && std::strcmp(forced, "portable") == 0) return portable;
#ifdef ENTITY_VECTOR_AVX2
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return {&dot_avx2, &l2_avx2, &dots_avx2, &l2s_avx2, "avx2"};
#endif
  return portable;
}

const kernel_set& kernels() noexcept {
  static const kernel_set k = choose();
  return k;
}

}  // namespace

const char* kernel_name() noexcept { return kernels().name; }

float dot(const float* a, const float* b, std::size_t dim) noexcept {
  return kernels().dot(a, b, dim);
}

float l2_squared(const float* a, const float* b, std::size_t dim) noexcept {
  return kernels().l2(a, b, dim);
}

float inverse_norm(const float* a, std::size_t dim) noexcept {
  float n = std::sqrt(dot(a, a, dim));
  return n > 0 ? 1.0f / n : 0.0f;
}

void distances(metric m, const float* query, float query_inv_norm, const float* rows,
               const float* inv_norms, std::size_t n, std::size_t dim, float* out) noexcept {
  const kernel_set& k = kernels();
  switch (m) {
    case metric::l2:
      k.l2s(query, rows, n, dim, out);
      break;
    case metric::inner_product:
      k.dots(query, rows, n, dim, out);
      for (std::size_t i = 0; i < n; ++i) out[i] = -out[i];
      break;
    case metric::cosine:
      k.dots(query, rows, n, dim, out);
      for (std::size_t i = 0; i < n; ++i) out[i] = 1.0f - out[i] * query_inv_norm * inv_norms[i];
      break;
  }
}

}  // namespace entity::vector_detail
