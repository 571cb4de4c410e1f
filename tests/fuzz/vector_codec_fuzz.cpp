// The vector blob codec on arbitrary bytes: a blob decodes only into exactly its number of
// floats, re-encoding a decoded blob gives the same bytes, and decode(encode(v)) == v bit for
// bit (NaNs included). vector_problem accepts exactly the non-empty, all-finite vectors.
#include <cmath>
#include <cstring>
#include <vector>

#include "fuzz_check.hpp"
#include "vector/codec.hpp"

using namespace entity::vector_detail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  entity::blob stored(data, size);

  const std::size_t dim = size / 4;
  std::vector<float> v(dim + 1);
  if (dim > 0) ENTITY_FUZZ_CHECK(!decode_vector(stored, dim - 1, v.data()));
  ENTITY_FUZZ_CHECK(!decode_vector(stored, dim + 1, v.data()));
  bool decoded = decode_vector(stored, dim, v.data());
  ENTITY_FUZZ_CHECK(decoded == (size % 4 == 0));
  if (!decoded) return 0;
  v.resize(dim);

  entity::blob again = encode_vector(v);
  ENTITY_FUZZ_CHECK(again == stored);
  std::vector<float> back(dim);
  ENTITY_FUZZ_CHECK(decode_vector(again, dim, back.data()));
  ENTITY_FUZZ_CHECK(dim == 0 || std::memcmp(back.data(), v.data(), dim * 4) == 0);

  bool fine = dim > 0;
  for (float f : v) fine = fine && std::isfinite(f);
  ENTITY_FUZZ_CHECK(vector_problem(v).has_value() == !fine);
  return 0;
}
