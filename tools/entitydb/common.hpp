// What the entitydb subcommands share: the --db option and the engine it names, the one way a
// failure reaches the user ("error: ..." on stderr, exit code 1), and typed parameters.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <entity/entity.hpp>
#include <functional>
#include <istream>
#include <memory>
#include <optional>
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

/// Checks an option of SECONDS: a finite number above zero, fractions allowed ("0.5", "1e-3").
/// Anything else is a usage error: "'TEXT' is not a positive number of seconds".
extern const CLI::Validator positive_seconds;

/// The longest time to live memory::store takes, in seconds (10,000 years).
inline constexpr double longest_ttl_seconds = 10'000.0 * 366 * 24 * 3600;

/// `seconds` (above zero) as milliseconds, rounded up: a fraction of a millisecond must not
/// become "no time at all". Saturates at milliseconds::max().
std::chrono::milliseconds millis_of_seconds(double seconds);

/// An instant given on the command line, to the millisecond: `millis` since the Unix epoch,
/// rounded down, and whether the text held a finer fraction that the rounding dropped.
struct utc_instant {
  std::int64_t millis = 0;
  bool finer = false;
};

/// Reads a TIME: ISO-8601 in UTC, YYYY-MM-DDTHH:MM:SS with an optional fraction of a second
/// (any number of digits) and "Z" or "+00:00" ("2026-12-01T10:00:00Z",
/// "2026-12-01T10:00:00.250Z"), or an integer number of milliseconds since the Unix epoch
/// ("1796119200000"). nullopt for anything else: another offset, a date that does not exist
/// (2026-02-30), a field out of range, blanks.
std::optional<utc_instant> parse_utc_time(std::string_view text);

/// Checks an option of TIME (parse_utc_time); anything else is a usage error.
extern const CLI::Validator utc_time;

/// `millis` since the Unix epoch as ISO-8601 UTC with milliseconds: "2026-12-01T10:00:00.000Z"
/// (a year past 9999 in the expanded form: "+12026-12-01T10:00:00.000Z").
std::string format_utc_time(std::int64_t millis);

/// JSON text that never throws on invalid UTF-8 (such bytes become U+FFFD): text read back
/// from SQL is not guaranteed to be UTF-8. For display only: what is exported must not change
/// (memory_line refuses instead).
template <class Json>
std::string dump_json(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

/// nlohmann's message without its "[json.exception...] " tag.
std::string json_reason(const entity::json::exception& e);

/// Makes the failure for the current line of a JSON Lines file: "FILE:LINE: why".
using line_failure = std::function<failure(const std::string& why)>;

/// The longest line a JSON Lines file may have by default, in bytes before its newline: 64 MiB
/// (`--max-line-bytes` of the imports raises it). A reader never holds more than this of a line.
inline constexpr std::size_t default_max_line_bytes = std::size_t{64} << 20;

/// Reads JSON Lines from `file` ("-" for stdin), skipping blank lines, and calls `each` with
/// every line parsed as a JSON object. A line longer than `max_line_bytes` (reading stops
/// there), one that is not JSON, is nested deeper than entity::max_json_depth or is not an
/// object throws a FILE:LINE failure; `each` throws `bad(why)` for a line whose fields are
/// wrong. Nothing is kept, so the caller decides what to store once every line has passed.
void for_each_json_line(
    const std::string& file,
    const std::function<void(entity::json& object, const line_failure& bad)>& each,
    std::size_t max_line_bytes = default_max_line_bytes);

/// The same over a stream already open; `name` is the FILE of the messages.
void for_each_json_line(
    std::istream& in, const std::string& name,
    const std::function<void(entity::json& object, const line_failure& bad)>& each,
    std::size_t max_line_bytes = default_max_line_bytes);

/// Adds `--max-line-bytes N` (default default_max_line_bytes) to an import verb.
CLI::Option* add_max_line_bytes_option(CLI::App& cmd, std::size_t& max_line_bytes);

/// Writes `text` to `file` through a temporary file in the same folder, renamed over `file`
/// once it is complete and synced: a failure leaves no half-written file and the previous one
/// whole. A symlink is followed (the file it names is replaced); an existing file keeps its
/// permissions. Throws a failure ("cannot write 'FILE': why").
void replace_file(const std::string& file, const std::string& text);

/// Throws a failure when `file` is the SQLite database `db_url` names, or its -wal, -shm or
/// -journal file, whether by path or by identity (the same device and inode: another spelling,
/// a symlink, a hard link). Nothing for PostgreSQL or :memory:.
void refuse_database_file(const std::string& db_url, const std::string& file);

}  // namespace entitydb
