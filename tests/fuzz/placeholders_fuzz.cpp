// The `?` -> `$n` translator of the PostgreSQL engine on arbitrary text: the output is the
// input with some `?` replaced by $1, $2, ... in order and nothing else changed; in text with
// no quote, comment or dollar sign every `?` is a placeholder.
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "postgres/placeholders.hpp"

using entity::postgres_detail::translate_placeholders;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view sql(reinterpret_cast<const char*>(data), size);
  std::string out = translate_placeholders(sql);

  // Walk both texts together: a `?` either stays or becomes the next $n; all else is copied.
  std::size_t j = 0;
  int next = 1;
  std::size_t questions = 0;
  for (char c : sql) {
    ENTITY_FUZZ_CHECK(j < out.size());
    if (c == '?') ++questions;
    if (c == '?' && out[j] == '$') {
      std::string n = "$" + std::to_string(next++);
      ENTITY_FUZZ_CHECK(out.compare(j, n.size(), n) == 0);
      j += n.size();
    } else {
      ENTITY_FUZZ_CHECK(out[j] == c);
      ++j;
    }
  }
  ENTITY_FUZZ_CHECK(j == out.size());

  if (sql.find_first_of("'\"-/$") == std::string_view::npos)
    ENTITY_FUZZ_CHECK(std::size_t(next - 1) == questions);
  return 0;
}
