// entitydb bench: every workload in every variant, raw SQLite beside entity-db, in one run.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "bench.hpp"
#include "commands.hpp"
#include "entity/error.hpp"

namespace entitydb {
namespace {

struct bench_options {
  entity::bench::bench_params params;
  bool quick = false;
  std::string json_file;
  std::string svg_file;
};

// A one-line bar on stderr, redrawn in place on a terminal and printed once per step otherwise.
void draw_progress(int done, int total, const std::string& what) {
  static const bool tty = ::isatty(STDERR_FILENO) == 1;
  const int width = 30;
  int filled = total > 0 ? done * width / total : width;
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

void run_bench(const bench_options& o) {
  entity::bench::bench_params p = o.params;
  if (o.quick) {
    p.ops = 200;
    p.repeat = 1;
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
      "Measure every workload in every variant (sqlite_c = raw SQLite, the floor; sync; "
      "threadpool; async) in one run, on fresh database files");
  cmd->add_option("--ops", opts->params.ops, "operations per workload (N)")
      ->default_val(1000)
      ->check(CLI::Range(20, 10'000'000));
  cmd->add_option("--repeat", opts->params.repeat, "runs per workload and variant; the median is shown")
      ->default_val(3)
      ->check(CLI::Range(1, 100));
  cmd->add_option("--db", opts->params.db_dir,
                  "folder for the database files (default: a temporary folder, removed afterwards)");
  cmd->add_flag("--durable", opts->params.durable, "synchronous=FULL (survives power loss)");
  cmd->add_flag("--quick", opts->quick, "N=200, one run each");
  cmd->add_option("--json", opts->json_file, "write the results as JSON to FILE");
  cmd->add_option("--svg", opts->svg_file, "write a bar chart as SVG to FILE");
  cmd->add_option("--workload", opts->params.workloads, "run only these workloads (repeatable)");
  cmd->add_option("--variant", opts->params.variants, "run only these variants (repeatable)");
  cmd->callback([opts] {
    try {
      run_bench(*opts);
    } catch (const std::exception& e) {
      std::cerr << "error: bench failed: " << e.what() << "\n";
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace entitydb
