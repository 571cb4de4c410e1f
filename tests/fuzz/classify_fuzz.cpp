// The SQLite engine's statement classifier on arbitrary text: it never throws or reads out of
// bounds, and its answers agree with each other and ignore letter case.
#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "sqlite/classify.hpp"

using namespace entity::sqlite_detail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view sql(reinterpret_cast<const char*>(data), size);

  char buf[17];
  std::string keyword(first_keyword(sql, buf));
  ENTITY_FUZZ_CHECK(keyword.size() <= 16);
  ENTITY_FUZZ_CHECK(
      std::all_of(keyword.begin(), keyword.end(), [](char c) { return c >= 'A' && c <= 'Z'; }));

  // The route depends on the first keyword alone.
  route r = classify(sql);
  ENTITY_FUZZ_CHECK(r == classify(keyword));

  bool blank = is_blank(sql);
  bool several = has_several_statements(sql);
  ENTITY_FUZZ_CHECK(!(blank && several));
  if (blank) ENTITY_FUZZ_CHECK(keyword.empty() && r == route::write);

  // A trailing ';' ends the last statement (or lands in an unterminated literal or comment):
  // it never adds a statement nor makes blank text significant.
  std::string terminated(sql);
  terminated += ';';
  ENTITY_FUZZ_CHECK(has_several_statements(terminated) == several);
  ENTITY_FUZZ_CHECK(is_blank(terminated) == blank);

  // Letter case changes no boundary: quotes, comments and ';' are not letters.
  std::string lower(sql);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  char lower_buf[17];
  ENTITY_FUZZ_CHECK(first_keyword(lower, lower_buf) == keyword);
  ENTITY_FUZZ_CHECK(classify(lower) == r);
  ENTITY_FUZZ_CHECK(is_blank(lower) == blank);
  ENTITY_FUZZ_CHECK(has_several_statements(lower) == several);
  return 0;
}
