#include "common.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <cmath>
#include <iostream>
#include <string_view>

namespace entitydb {
std::string on_one_line(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else
      out += c;
  }
  return out;
}

void on_run(CLI::App& cmd, std::function<void()> body) {
  cmd.callback([body = std::move(body)] {
    try {
      body();
      std::cout.flush();
      if (!std::cout) throw failure("cannot write to standard output");
      return;
    } catch (const CLI::Error&) {
      throw;
    } catch (const std::exception& e) {
      std::cerr << "error: " << on_one_line(e.what()) << "\n";
    }
    throw CLI::RuntimeError(1);
  });
}

CLI::Option* add_db_option(CLI::App& cmd, std::string& url) {
  url = "./entity.db";
  return cmd.add_option("--db", url,
                        "the database: a file path, sqlite:PATH, :memory: or a postgresql:// URL")
      ->envname("ENTITYDB_PATH")
      ->capture_default_str();
}

namespace {
// `url` as it may be shown: a postgresql:// URL's password is replaced by "***".
std::string shown_url(const std::string& url) {
  std::size_t scheme = url.find("://");
  if (scheme == std::string::npos || url.rfind("postgres", 0) != 0) return url;
  std::size_t start = scheme + 3;
  std::size_t at = url.find('@', start);
  std::size_t end = url.find_first_of("/?", start);
  if (at == std::string::npos || (end != std::string::npos && at > end)) return url;
  std::size_t colon = url.find(':', start);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}
}  // namespace

engine::engine(const std::string& url) {
  try {
    infra_ = entity::make_infrastructure(url);
    infra_->startup();
  } catch (const entity::error& e) {
    // The engine's own message already names the file when opening it failed; a bad url or
    // a folder that cannot be created is explained without it.
    const std::string& why = e.diag().message;
    if (why.rfind("cannot open", 0) == 0) throw failure(why);
    throw failure("cannot open database '" + shown_url(url) + "': " + e.what());
  }
}

engine::~engine() { infra_->shutdown(); }

entity::value parse_param(const std::string& text) {
  std::string_view s = text;
  // from_chars takes no '+'; "+-1" must stay text.
  if (s.size() > 1 && s[0] == '+' && s[1] != '-') s.remove_prefix(1);
  const char* end = s.data() + s.size();
  std::int64_t i = 0;
  if (auto [p, ec] = std::from_chars(s.data(), end, i); ec == std::errc() && p == end) return i;
  double d = 0;
  // inf and nan parse as reals but no SQL literal means them: they stay text.
  if (auto [p, ec] = std::from_chars(s.data(), end, d);
      ec == std::errc() && p == end && std::isfinite(d))
    return d;
  return text;
}

std::string json_reason(const entity::json::exception& e) {
  std::string_view what = e.what();
  auto tag_end = what.find("] ");
  return std::string(tag_end == std::string_view::npos ? what : what.substr(tag_end + 2));
}

void for_each_json_line(const std::string& file,
                        const std::function<void(entity::json&, const line_failure&)>& each) {
  if (file == "-") return for_each_json_line(std::cin, file, each);
  std::ifstream in(file, std::ios::binary);
  if (!in) throw failure("cannot read '" + file + "': " + std::strerror(errno));
  for_each_json_line(in, file, each);
}

void for_each_json_line(std::istream& in, const std::string& name,
                        const std::function<void(entity::json&, const line_failure&)>& each) {
  std::string line;
  for (std::size_t number = 1; std::getline(in, line); ++number) {
    line_failure bad = [&](const std::string& why) {
      return failure(name + ":" + std::to_string(number) + ": " + why);
    };
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    entity::json j;
    try {
      j = entity::json::parse(line);
    } catch (const entity::json::exception& e) {
      throw bad("not JSON: " + json_reason(e));
    }
    if (!j.is_object()) throw bad("not a JSON object");
    each(j, bad);
  }
  if (in.bad()) throw failure("cannot read '" + name + "': " + std::strerror(errno));
}

}  // namespace entitydb
