// entitydb check: is this database healthy? Opens it, runs the engine's health check and
// SQLite's PRAGMA integrity_check, and prints "ok" or what is wrong.
#include <chrono>
#include <filesystem>
#include <iostream>

#include "commands.hpp"
#include "common.hpp"

namespace entitydb {
namespace {

// integrity_check reads every page: a big file must not be cut short by the engine's default
// query_timeout, which is sized for an agent's queries, not for a full scan.
constexpr std::chrono::hours integrity_timeout{24};

// The file a --db value names, or "" when it names none (":memory:").
std::string file_of(std::string_view url) {
  for (std::string_view prefix : {"sqlite://", "sqlite:"}) {
    if (url.substr(0, prefix.size()) == prefix) {
      url.remove_prefix(prefix.size());
      break;
    }
  }
  return url == ":memory:" ? std::string() : std::string(url);
}

void run_check(const std::string& url) {
  // Opening creates a missing file; checking a mistyped path must not report a new, empty
  // database as healthy.
  std::string file = file_of(url);
  std::error_code ec;
  if (!file.empty() && !std::filesystem::exists(file, ec))
    throw failure("no database at '" + file + "'");

  engine e(url);
  entity::database db = e.db();
  if (!db.health_check()) throw failure("health check failed: the database does not answer");
  std::vector<entity::row> rows;
  try {
    rows = db.with_timeout(integrity_timeout).fetch_all("PRAGMA integrity_check");
  } catch (const entity::error& err) {
    // Damage bad enough stops the check itself ("database disk image is malformed").
    throw failure(std::string("integrity check failed: ") + err.what());
  }
  if (rows.size() == 1 && rows[0][0] == entity::value("ok")) {
    std::cout << "ok\n";
    return;
  }
  std::string report = "integrity check failed:";
  for (const entity::row& r : rows) report += "\n  " + r[0].to_string();
  throw failure(report);
}

}  // namespace

void add_check_command(CLI::App& app) {
  auto url = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("check", "Check that a database is healthy and intact");
  add_db_option(*cmd, *url);
  cmd->footer(
      "Opens the database, checks that it answers, and runs PRAGMA integrity_check.\n"
      "Prints 'ok' and exits 0, or says what is wrong on stderr and exits 1 (also for a file\n"
      "that is missing or is not a database).");
  on_run(*cmd, [url] { run_check(*url); });
}

}  // namespace entitydb
