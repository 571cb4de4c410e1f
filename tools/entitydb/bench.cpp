// entitydb bench: every workload in every variant, the backend's raw C client beside entity-db,
// in one run.
#include "bench.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "commands.hpp"
#include "entity/error.hpp"
#include "soak.hpp"
#include "vectors.hpp"

namespace entitydb {
namespace {

struct bench_options {
  entity::bench::bench_params params;
  bool quick = false;
  std::string json_file;
  std::string svg_file;
  double soak_seconds = 0;
  bool vectors = false;
  entity::bench::vectors_params vector_params;
};

// A one-line bar on stderr, redrawn in place on a terminal. Elsewhere (a log) a line is
// printed only when the bar gains a mark, so a long run writes at most a few dozen lines.
void draw_progress(int done, int total, const std::string& what) {
  static const bool tty = ::isatty(STDERR_FILENO) == 1;
  static int last_filled = -1;
  const int width = 30;
  int filled = total > 0 ? done * width / total : width;
  if (!tty) {
    if (filled == last_filled && done != total) return;
    last_filled = done == total ? -1 : filled;
  }
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "%s[%s] %3d/%d %-40s%s", tty ? "\r" : "", bar.c_str(), done, total,
               what.c_str(), tty ? "" : "\n");
  if (tty && done == total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

// The soak fails (exit 1) on any error or on resident memory growing more than 10%.
void run_soak(const bench_options& o) {
  entity::bench::soak_params p;
  p.duration = std::chrono::duration<double>(o.soak_seconds);
  p.db_dir = o.params.db_dir;
  auto r = entity::bench::soak(
      p, [](double f) { draw_progress(std::min(99, static_cast<int>(f * 100)), 100, "soak"); });
  draw_progress(100, 100, "soak");
  nlohmann::json j = {{"seconds", r.seconds},
                      {"ops", r.ops},
                      {"ops_per_sec", r.ops / r.seconds},
                      {"errors", r.errors},
                      {"p50_us", r.p50_us},
                      {"p99_us", r.p99_us},
                      {"rss_start_bytes", r.rss_start},
                      {"rss_end_bytes", r.rss_end},
                      {"rss_growth", r.growth},
                      {"mapped_start_bytes", r.mapped_start},
                      {"mapped_end_bytes", r.mapped_end},
                      {"keys", r.keys}};
  std::printf("soak: %.1f s, %lld operations (%.0f/s), %lld errors, p50 %.1f us, p99 %.1f us\n",
              r.seconds, static_cast<long long>(r.ops), r.ops / r.seconds,
              static_cast<long long>(r.errors), r.p50_us, r.p99_us);
  std::printf("resident memory (peak): %.1f MiB after the warm-up, %.1f MiB at the end (%+.1f%%)\n",
              r.rss_start / 1048576.0, r.rss_end / 1048576.0, r.growth * 100);
  std::printf(
      "mapped file pages (database, code): %.1f MiB after the warm-up, %.1f MiB at the end\n",
      r.mapped_start / 1048576.0, r.mapped_end / 1048576.0);
  if (!o.json_file.empty()) write_file(o.json_file, j.dump(2) + "\n");
  if (r.errors > 0) throw std::runtime_error("the soak saw errors, the first: " + r.first_error);
  if (r.growth > 0.10) throw std::runtime_error("resident memory grew by more than 10%");
}

// Each figure with its target; the run itself succeeds whether or not the targets are met.
void run_vectors(const bench_options& o) {
  entity::bench::vectors_params p = o.vector_params;
  p.db_dir = o.params.db_dir;
  if (o.quick) {
    p.n = std::min<std::size_t>(p.n, 5000);
    p.queries = std::min<std::size_t>(p.queries, 100);
  }
  auto r = entity::bench::run_vectors(p, draw_progress);
  std::cout << entity::bench::format_vectors(r) << std::flush;
  if (!o.json_file.empty()) write_file(o.json_file, entity::bench::to_json(r).dump(2) + "\n");
}

void run_bench(const bench_options& o) {
  if (o.soak_seconds > 0) {
    if (!o.params.pg_url.empty())
      throw std::invalid_argument("--soak runs on SQLite files; --db must be a folder");
    return run_soak(o);
  }
  if (o.vectors) return run_vectors(o);
  entity::bench::bench_params p = o.params;
  if (o.quick) {
    p.ops = 200;
    p.repeat = 1;
    p.items = std::min(p.items, 20'000);
  }
  auto report = entity::bench::run(p, draw_progress);
  std::cout << format_table(report) << std::flush;
  if (!o.json_file.empty()) write_file(o.json_file, to_json(report).dump(2) + "\n");
  if (!o.svg_file.empty()) write_file(o.svg_file, to_svg(report));
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto opts = std::make_shared<bench_options>();
  auto* cmd = app.add_subcommand(
      "bench",
      "Measure every workload in every variant (sqlite_c = raw SQLite, the floor, which in "
      "group_commit_20 commits in groups of 20; sqlite_c_autocommit = the same stores committed "
      "one by one, group_commit_20 only; sqlite_c_times = sqlite_c also writing each item's "
      "times in a side table, as entity-db keeps them, in the store workloads; sync; "
      "threadpool; async) in one run, on fresh database "
      "files; with --db postgresql://... on a PostgreSQL server, with libpq_sync (blocking "
      "libpq) as the floor (the memory_search_* and memory_sweep workloads run on SQLite "
      "only)");
  cmd->add_option("--ops", opts->params.ops, "operations per workload (N)")
      ->default_val(1000)
      ->check(CLI::Range(20, 10'000'000));
  cmd->add_option("--repeat", opts->params.repeat,
                  "runs per workload and variant; the median is shown")
      ->default_val(3)
      ->check(CLI::Range(1, 100));
  cmd->add_option("--db", opts->params.db_dir,
                  "folder for the database files (default: a temporary folder, removed "
                  "afterwards), or a PostgreSQL URL (postgresql://...): the runs then use a "
                  "schema of their own on that server, dropped afterwards");
  cmd->add_option("--items", opts->params.items,
                  "facts in the memory that memory_search_filter and memory_search_text search "
                  "(memory_sweep sweeps a tenth as many)")
      ->default_val(100000)
      ->check(CLI::Range(1000, 10'000'000));
  cmd->add_flag("--durable", opts->params.durable, "synchronous=FULL (survives power loss)");
  cmd->add_flag("--quick", opts->quick, "N=200, at most 20,000 --items, one run each");
  cmd->add_option("--json", opts->json_file, "write the results as JSON to FILE");
  cmd->add_option("--svg", opts->svg_file, "write a bar chart as SVG to FILE");
  cmd->add_option(
         "--soak", opts->soak_seconds,
         "instead of the benchmark, a soak of SECONDS: mixed operations from 20 coroutines "
         "and 2 threads; fails on any error or on memory growth over 10%")
      ->check(CLI::Range(1.0, 86400.0));
  cmd->add_flag("--vectors", opts->vectors,
                "instead of the benchmark, the vector store: exact search against the memory-"
                "bandwidth floor, HNSW speed and recall@10 against exact, index build rate "
                "(--quick: at most 5,000 vectors and 100 queries)");
  cmd->add_option("--vectors-n", opts->vector_params.n, "--vectors: vectors stored")
      ->default_val(100000)
      ->check(CLI::Range(std::size_t{1}, std::size_t{100'000'000}));
  cmd->add_option("--queries", opts->vector_params.queries, "--vectors: queries of each kind")
      ->default_val(1000)
      ->check(CLI::Range(std::size_t{1}, std::size_t{10'000'000}));
  cmd->add_option("--dim", opts->vector_params.dim, "--vectors: floats per vector")
      ->default_val(384)
      ->check(CLI::Range(std::size_t{1}, std::size_t{65536}));
  cmd->add_option("--vector-data", opts->vector_params.data,
                  "--vectors: clustered (groups, like embeddings) or gaussian (no structure)")
      ->default_val("clustered")
      ->check(CLI::IsMember({"clustered", "gaussian"}));
  cmd->add_option("--hnsw-m", opts->vector_params.hnsw_m,
                  "--vectors: HNSW links per node (default: the vector store's)");
  cmd->add_option("--hnsw-ef-construction", opts->vector_params.hnsw_ef_construction,
                  "--vectors: HNSW candidates while building (default: the vector store's)");
  cmd->add_option("--hnsw-ef", opts->vector_params.hnsw_ef,
                  "--vectors: HNSW candidates while searching (default: the vector store's)");
  cmd->add_option("--workload", opts->params.workloads, "run only these workloads (repeatable)");
  cmd->add_option("--variant", opts->params.variants, "run only these variants (repeatable)");
  cmd->callback([opts] {
    auto& dir = opts->params.db_dir;
    if (dir.rfind("postgresql://", 0) == 0 || dir.rfind("postgres://", 0) == 0) {
      opts->params.pg_url = dir;
      dir.clear();
    }
    try {
      run_bench(*opts);
    } catch (const std::exception& e) {
      std::cerr << "error: bench failed: " << e.what() << "\n";
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace entitydb
