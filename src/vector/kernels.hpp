// The arithmetic of exact search: distances between one query and many stored vectors laid
// out one after another in a single float array.
#pragma once

#include <cstddef>

#include "entity/vector_types.hpp"

namespace entity::vector_detail {

/// Which kernels this process uses: "avx2" (AVX2 and FMA, where the processor has them) or
/// "portable". ENTITY_VECTOR_KERNELS=portable in the environment forces the portable ones.
const char* kernel_name() noexcept;

/// dot(a, b) over `dim` floats.
float dot(const float* a, const float* b, std::size_t dim) noexcept;
/// The squared Euclidean distance between a and b.
float l2_squared(const float* a, const float* b, std::size_t dim) noexcept;
/// 1 / |a|, or 0 for a zero vector.
float inverse_norm(const float* a, std::size_t dim) noexcept;

/// out[i] = the distance between `query` and row i of `rows` (n rows of `dim` floats), by
/// `m`'s definition (vector_types.hpp). For cosine, `query_inv_norm` is 1 / |query| and
/// `inv_norms[i]` is 1 / |row i|; both are ignored for the other metrics.
void distances(metric m, const float* query, float query_inv_norm, const float* rows,
               const float* inv_norms, std::size_t n, std::size_t dim, float* out) noexcept;

}  // namespace entity::vector_detail
