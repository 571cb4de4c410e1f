#include "commands.hpp"

namespace entitydb {
void add_bench_command(CLI::App& app) { app.add_subcommand("bench", "(not built yet)"); }
}  // namespace entitydb
