// entitydb bench: the seed's DatabaseBenchmark done properly. Every workload runs in every
// variant in one run, the backend's raw C client beside entity-db's paths as the physical floor:
// `sqlite_c` on SQLite files, `libpq_sync` on a PostgreSQL server.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace entity::bench {

struct bench_params {
  int ops = 1000;      ///< N: operations per workload
  int repeat = 3;      ///< runs per workload x variant; the median run is reported
  std::string db_dir;  ///< where the database files go (empty: a temporary folder)
  /// A PostgreSQL server ("postgresql://..."): the benchmark runs there instead of on SQLite
  /// files, in a schema of its own that it drops afterwards. Empty: SQLite.
  std::string pg_url;
  /// Items in the memory the memory_search_* workloads search; memory_sweep sweeps a tenth as
  /// many.
  int items = 100'000;
  bool durable = false;                ///< synchronous=FULL (SQLite only)
  std::vector<std::string> workloads;  ///< empty: all
  std::vector<std::string> variants;   ///< empty: all
};

/// The median run of one workload in one variant.
struct run_result {
  std::string workload;
  std::string variant;
  std::int64_t ops = 0;
  double seconds = 0;
  double ops_per_sec = 0;
  double p50_us = 0;
  double p99_us = 0;
  std::int64_t rows = 0;          ///< what the run left behind or found: equal across variants
  std::int64_t transactions = 0;  ///< memory_sweep: the transactions the sweep committed
};

struct report {
  bool postgres = false;  ///< ran on a PostgreSQL server
  nlohmann::json machine;
  nlohmann::json params;
  std::vector<run_result> results;
};

/// The workload and variant names, in report order. The first variant is the floor the
/// others are compared with: sqlite_c, or libpq_sync on PostgreSQL. In group_commit_20,
/// sqlite_c commits its stores in groups of 20 (BEGIN IMMEDIATE, a SAVEPOINT around each,
/// COMMIT), as entity-db's group commit does; sqlite_c_autocommit, which runs in that workload
/// only, commits the same stores one by one. sqlite_c_times, in memory_store,
/// memory_batch_store and group_commit_20, is sqlite_c writing each item's times too, in a
/// side table in the store's transaction, as entity-db keeps them (client_config::times).
const std::vector<std::string>& workload_names();
const std::vector<std::string>& variant_names(bool postgres = false);
/// Whether `variant` runs in `workload` (every variant but sqlite_c_autocommit and
/// sqlite_c_times runs in all).
bool runs_in(const std::string& workload, const std::string& variant);
/// memory_search_filter, memory_search_text and memory_sweep run on SQLite only: a run on
/// PostgreSQL leaves them out, and refuses them when they are asked for by name.
bool sqlite_only(const std::string& workload);
/// The workload whose code a workload runs: memory_store for memory_store_ttl (the same
/// operations, every item stored with a time to live of an hour: memory_params::default_ttl;
/// the floor, which has no expiry, does the plain workload's work), memory_load for
/// memory_load_ttl; the workload itself for every other.
std::string plain_workload_of(const std::string& workload);

/// Called before each run: (runs done, runs in all, "workload/variant").
using progress_fn = std::function<void(int, int, const std::string&)>;

/// What the machine is: processors, OS, SQLite and compiler versions.
nlohmann::json machine_info();

/// Runs the benchmark. Throws entity::error or std::runtime_error on failure.
report run(const bench_params& p, const progress_fn& progress);

/// An aligned table: one row per workload, each variant's ops/s and its time per op as a
/// multiple of the floor's (sqlite_c, or libpq_sync on PostgreSQL).
std::string format_table(const report& r);
nlohmann::json to_json(const report& r);
/// A grouped bar chart of ops/s per workload and variant, log scale.
std::string to_svg(const report& r);

}  // namespace entity::bench
