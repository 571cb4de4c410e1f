// entitydb check: is this database healthy? Opens it and runs the engine's health check; on
// SQLite, PRAGMA integrity_check too; on PostgreSQL, a report of the server, the pool and
// entity-db's tables. Prints "ok" last, or says what is wrong.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.hpp"
#include "common.hpp"

namespace entitydb {
namespace {

// integrity_check reads every page: a big file must not be cut short by the engine's default
// query_timeout, which is sized for an agent's queries, not for a full scan.
constexpr std::chrono::hours integrity_timeout{24};

// The processes that still hold the database's write-ahead log or its index open although the
// file was deleted ("PID (NAME)"): what they commit goes where no other process looks, and is
// lost when they end. Linux's /proc shows it: the link of such a descriptor ends in
// " (deleted)". Processes of other users are not visible, and are not reported.
std::vector<std::string> holders_of_a_deleted_log(const std::string& file) {
  std::error_code ec;
  const std::string base = std::filesystem::canonical(file, ec).string();
  if (ec) return {};
  const std::string wal = base + "-wal (deleted)", shm = base + "-shm (deleted)";
  std::vector<std::string> holders;
  for (const auto& proc : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid = proc.path().filename().string();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code fec;
    for (const auto& fd : std::filesystem::directory_iterator(proc.path() / "fd", fec)) {
      std::error_code lec;
      const std::string to = std::filesystem::read_symlink(fd.path(), lec).string();
      if (lec || (to != wal && to != shm)) continue;
      std::string name;
      std::getline(std::ifstream(proc.path() / "comm"), name);
      holders.push_back(pid + " (" + name + ")");
      break;
    }
  }
  return holders;
}

// What a PostgreSQL check reports: the server, the pool, and entity-db's tables in the schema
// the connection uses (the memory with its keys, the vector collections with their vectors).
// Nothing is created: the layers above are asked only about tables that exist.
void report_postgres(const entity::database& db) {
  auto server = db.fetch_one(
      "SELECT current_setting('server_version'), current_database(), current_user, "
      "coalesce(current_schema(), '(none)')");
  std::cout << "server: PostgreSQL " << server->get<std::string>(0) << ", database "
            << server->get<std::string>(1) << " as " << server->get<std::string>(2) << "\n";
  const std::string schema = server->get<std::string>(3);
  auto exists = [&](const char* table) {
    return db.fetch_one("SELECT to_regclass(?) IS NOT NULL", {std::string(table)})
               ->get<std::int64_t>(0) != 0;
  };
  std::vector<std::string> lines;
  if (exists("memory"))
    lines.push_back("memory: " + std::to_string(entity::memory(db).size()) + " keys");
  if (exists("vector_collections")) {
    auto collections = entity::vector_store(db).list_collections();
    if (collections.empty()) lines.push_back("vector collections: none");
    for (const entity::collection_info& c : collections)
      lines.push_back("vector collection " + c.name + " (dim " + std::to_string(c.dim) + ", " +
                      std::string(entity::to_string(c.metric)) + "): " + std::to_string(c.count) +
                      " vectors");
  }
  if (lines.empty()) {
    std::cout << "schema " << schema << ": no entity-db tables\n";
  } else {
    std::cout << "schema " << schema << ":\n";
    for (const std::string& l : lines) std::cout << "  " << l << "\n";
  }
  // Last, so that it counts the connections the report used.
  entity::infrastructure_stats s = db.stats();
  std::cout << "pool: size " << s.pool_size << ", open " << s.open_connections << ", idle "
            << s.idle_connections << ", in use " << s.busy_connections << "\n";
  std::cout << "statement cache: " << s.statement_cache_hits << " hits, "
            << s.statement_cache_misses << " misses\n";
}

void run_check(const std::string& url) {
  entity::engine_target target;
  try {
    target = entity::parse_target(url);
  } catch (const entity::error& e) {
    throw failure("cannot open database '" + url + "': " + e.what());
  }
  // Opening creates a missing file; checking a mistyped path must not report a new, empty
  // database as healthy.
  // The SQLite file --db names ("" for PostgreSQL and ":memory:").
  std::string file =
      target.postgres || target.location == ":memory:" ? std::string() : target.location;
  std::error_code ec;
  if (!file.empty() && !std::filesystem::exists(file, ec))
    throw failure("no database at '" + file + "'");
  // Before opening, which would start a new log beside the one they write into.
  if (!file.empty()) {
    std::vector<std::string> holders = holders_of_a_deleted_log(file);
    if (!holders.empty()) {
      std::string who;
      for (const std::string& h : holders) who += (who.empty() ? "" : ", ") + h;
      throw failure("the write-ahead log of '" + file + "' was deleted while process " + who +
                    " had the database open: what it committed since is not in the file and may be "
                    "lost when it ends; stop it, then check again");
    }
  }

  engine e(url);
  entity::database db = e.db();
  if (!db.health_check()) throw failure("health check failed: the database does not answer");
  if (db.dialect() == entity::sql_dialect::postgresql) {
    report_postgres(db);
    std::cout << "ok\n";
    return;
  }
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
      "Opens the database and checks that it answers. SQLite: runs PRAGMA integrity_check.\n"
      "PostgreSQL (--db postgresql://...): reports the server's version, entity-db's tables\n"
      "in the connection's schema (memory keys, vector collections and their vectors), the\n"
      "pool (size, open, idle, in use) and the prepared-statement cache (hits, misses) of the\n"
      "check's own statements. Prints 'ok' last and exits 0, or says what is wrong on\n"
      "stderr and exits 1 (also for a file that is missing or is not a database, or a server\n"
      "that cannot be reached, or a SQLite database whose write-ahead log was deleted while a\n"
      "process of this user still has it open).");
  on_run(*cmd, [url] { run_check(*url); });
}

}  // namespace entitydb
