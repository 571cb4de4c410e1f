#include "entity/json.hpp"

#include <boost/container/small_vector.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "entity/error.hpp"

namespace entity {
namespace {

const std::string& too_deep() {
  static const std::string why =
      "nested deeper than " + std::to_string(max_json_depth) + " levels (the limit)";
  return why;
}

// nlohmann's DOM builder, refusing to open a level past max_json_depth: returning false stops
// the parser there, before anything deeper is built.
class bounded_dom {
 public:
  using base = nlohmann::detail::json_sax_dom_parser<json>;
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  bounded_dom(json& result, json_text_problem& problem)
      : dom_(result, /*allow_exceptions=*/false), problem_(problem) {}

  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(number_float_t v, const string_t& text) { return dom_.number_float(v, text); }
  bool string(string_t& v) { return dom_.string(v); }
  bool binary(binary_t& v) { return dom_.binary(v); }
  bool start_object(std::size_t n) { return open() && dom_.start_object(n); }
  bool key(string_t& k) { return dom_.key(k); }
  bool end_object() { return close(dom_.end_object()); }
  bool start_array(std::size_t n) { return open() && dom_.start_array(n); }
  bool end_array() { return close(dom_.end_array()); }
  template <class Exception>
  bool parse_error(std::size_t at, const std::string& token, const Exception& e) {
    // nlohmann's message without its "[json.exception.parse_error.101] " tag.
    std::string_view what = e.what();
    auto tag_end = what.find("] ");
    problem_.reason = tag_end == std::string_view::npos ? what : what.substr(tag_end + 2);
    return dom_.parse_error(at, token, e);
  }

 private:
  bool open() {
    if (depth_ == max_json_depth) {
      problem_.too_deep = true;
      problem_.reason = too_deep();
      return false;
    }
    ++depth_;
    return true;
  }
  bool close(bool ok) {
    --depth_;
    return ok;
  }

  base dom_;
  json_text_problem& problem_;
  std::size_t depth_ = 0;
};

// `key` as a JSON pointer's reference token (RFC 6901: '~' as "~0", '/' as "~1").
void append_token(std::string& pointer, std::string_view key) {
  pointer += '/';
  pointer += nlohmann::detail::escape(std::string(key));
}

// The length of the UTF-8 sequence at the start of `s`, or 0 when it is not one.
std::size_t utf8_sequence(std::string_view s) noexcept {
  auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  auto cont = [&](std::size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
  unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;  // a continuation byte, or an overlong two-byte form
  if (c < 0xE0) return cont(1) ? 2 : 0;
  if (c < 0xF0) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(1) >= 0xA0) return 0;  // a surrogate
    return 3;
  }
  if (c < 0xF5) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && b(1) >= 0x90) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

}  // namespace

std::optional<json> parse_json(std::string_view text, json_text_problem& problem) {
  json result;
  problem = {};
  bounded_dom sax(result, problem);
  if (!json::sax_parse(text, &sax, json::input_format_t::json, /*strict=*/true)) {
    if (problem.reason.empty()) problem.reason = "not JSON";
    return std::nullopt;
  }
  return result;
}

json parse_json(std::string_view text, std::string_view what) {
  json_text_problem problem;
  std::optional<json> j = parse_json(text, problem);
  if (!j)
    throw error(
        errc::invalid_argument,
        {std::string(what) + (problem.too_deep ? " is " : " is not JSON: ") + problem.reason, {}});
  return std::move(*j);
}

namespace {
// True when `j` (at `depth` levels of nesting) holds nothing json_storage_problem would refuse:
// the walk of the usual value, over the containers themselves, recursing at most
// max_json_depth levels. The walk below finds the problem and where it is.
bool storable(const json& j, std::size_t depth) noexcept {
  switch (j.type()) {
    case json::value_t::object:
      if (depth == max_json_depth) return false;
      for (const auto& [key, member] : *j.get_ptr<const json::object_t*>())
        if (!storable(member, depth + 1)) return false;
      return true;
    case json::value_t::array:
      if (depth == max_json_depth) return false;
      for (const json& member : *j.get_ptr<const json::array_t*>())
        if (!storable(member, depth + 1)) return false;
      return true;
    case json::value_t::number_float:
      return std::isfinite(*j.get_ptr<const json::number_float_t*>());
    default:
      return true;
  }
}
}  // namespace

std::optional<std::string> json_storage_problem(const json& j) {
  if (storable(j, 0)) return std::nullopt;
  if (!j.is_structured()) {
    if (j.is_number_float() && !std::isfinite(j.get<double>()))
      return std::string(std::isnan(j.get<double>()) ? "is NaN" : "is an infinity") +
             " (JSON has no such number)";
    return std::nullopt;
  }
  // Depth-first, one frame per open array or object.
  struct frame {
    const json* node;
    json::const_iterator next;
    std::size_t index = 0;
  };
  // The usual value is a few levels deep: its walk allocates nothing.
  boost::container::small_vector<frame, 16> stack;
  auto where = [&](std::size_t upto) {
    std::string pointer;
    for (std::size_t i = 0; i < upto; ++i) {
      const frame& f = stack[i];
      auto at = std::prev(f.next);  // the member being looked at
      if (f.node->is_object())
        append_token(pointer, at.key());
      else
        pointer += '/' + std::to_string(f.index - 1);
    }
    if (pointer.size() > 120) {
      pointer.resize(120);
      pointer += "...";
    }
    return pointer.empty() ? std::string("/") : pointer;
  };
  stack.push_back({&j, j.cbegin()});
  while (!stack.empty()) {
    frame& f = stack.back();
    if (f.next == f.node->cend()) {
      stack.pop_back();
      continue;
    }
    const json& member = *f.next;
    ++f.next;
    ++f.index;
    if (member.is_structured()) {
      if (stack.size() == max_json_depth) return "is " + too_deep() + " at " + where(stack.size());
      stack.push_back({&member, member.cbegin()});
    } else if (member.is_number_float() && !std::isfinite(member.get<double>())) {
      return std::string(std::isnan(member.get<double>()) ? "has a NaN" : "has an infinity") +
             " at " + where(stack.size()) + " (JSON has no such number)";
    }
  }
  return std::nullopt;
}

bool valid_utf8(std::string_view text) noexcept {
  std::size_t i = 0;
  // ASCII, the usual key, eight bytes at a time.
  constexpr std::uint64_t high_bits = 0x8080808080808080ULL;
  for (; i + 8 <= text.size(); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, text.data() + i, 8);
    if (word & high_bits) break;
  }
  while (i < text.size()) {
    std::size_t n = utf8_sequence(text.substr(i));
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string printable(std::string_view text) {
  std::string out = "'";
  for (std::size_t i = 0; i < text.size();) {
    std::size_t n = utf8_sequence(text.substr(i));
    auto c = static_cast<unsigned char>(text[i]);
    if (n == 0 || c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      ++i;
    } else if (c == '\\') {
      out += "\\\\";
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out + "'";
}

}  // namespace entity
