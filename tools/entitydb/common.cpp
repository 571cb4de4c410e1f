#include "common.hpp"

#include <charconv>
#include <cmath>
#include <iostream>

namespace entitydb {

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
      std::cerr << "error: " << e.what() << "\n";
    }
    throw CLI::RuntimeError(1);
  });
}

CLI::Option* add_db_option(CLI::App& cmd, std::string& url) {
  url = "./entity.db";
  return cmd.add_option("--db", url, "the database: a file path, sqlite:PATH or :memory:")
      ->envname("ENTITYDB_PATH")
      ->capture_default_str();
}

engine::engine(const std::string& url) {
  try {
    infra_ = entity::make_infrastructure(url);
    infra_->startup();
  } catch (const entity::error& e) {
    // The engine's own message already names the file when opening it failed; a bad url or
    // a folder that cannot be created is explained without it.
    const std::string& why = e.diag().message;
    if (why.rfind("cannot open", 0) == 0) throw failure(why);
    throw failure("cannot open database '" + url + "': " + e.what());
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

}  // namespace entitydb
