// What the entitydb subcommands share: the --db option and the engine it names, the one way a
// failure reaches the user ("error: ..." on stderr, exit code 1), and typed parameters.
#pragma once

#include <CLI/CLI.hpp>
#include <entity/entity.hpp>
#include <functional>
#include <istream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace entitydb {

/// A failure whose message says everything: the subcommand ends with "error: <message>".
class failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Sets `cmd`'s callback to `body`. Any exception it throws (a failure, an entity::error, a
/// std::exception) is printed as "error: <what>" on one line (see on_one_line) and ends the
/// program with exit code 1; CLI11's own errors (usage errors) pass through untouched.
void on_run(CLI::App& cmd, std::function<void()> body);

/// `text` with line breaks and tabs written as \n, \r and \t: an error report or a table
/// cell stays on one line (the SQL an error quotes may span lines).
std::string on_one_line(std::string_view text);

/// Adds --db to `cmd`, stored in `url`: a path, sqlite:PATH or :memory:, defaulting to
/// $ENTITYDB_PATH, else ./entity.db.
CLI::Option* add_db_option(CLI::App& cmd, std::string& url);

/// The engine a --db value names, started for the life of the object, shut down after.
/// Throws a failure ("cannot open ...") when it cannot be opened.
class engine {
 public:
  explicit engine(const std::string& url);
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  entity::database db() const { return entity::database(infra_); }

 private:
  std::shared_ptr<entity::infrastructure> infra_;
};

/// Types a command-line parameter: an integer becomes int64, a finite real double, anything
/// else text. An integer too big for int64 becomes a real, as it does in SQL.
entity::value parse_param(const std::string& text);

/// JSON text that never throws on invalid UTF-8 (such bytes become U+FFFD): text read back
/// from SQL is not guaranteed to be UTF-8.
template <class Json>
std::string dump_json(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

/// nlohmann's message without its "[json.exception...] " tag.
std::string json_reason(const entity::json::exception& e);

/// Makes the failure for the current line of a JSON Lines file: "FILE:LINE: why".
using line_failure = std::function<failure(const std::string& why)>;

/// Reads JSON Lines from `file` ("-" for stdin), skipping blank lines, and calls `each` with
/// every line parsed as a JSON object. A line that is not a JSON object throws a FILE:LINE
/// failure; `each` throws `bad(why)` for a line whose fields are wrong. Nothing is kept, so the
/// caller decides what to store once every line has passed.
void for_each_json_line(const std::string& file,
                        const std::function<void(entity::json& object, const line_failure& bad)>& each);

/// The same over a stream already open; `name` is the FILE of the messages.
void for_each_json_line(std::istream& in, const std::string& name,
                        const std::function<void(entity::json& object, const line_failure& bad)>& each);

}  // namespace entitydb
