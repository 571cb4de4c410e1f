// The entitydb tool: one file per subcommand, each adding itself to the app.
#pragma once

#include <CLI/CLI.hpp>

namespace entitydb {

void add_sql_command(CLI::App& app);
void add_check_command(CLI::App& app);
void add_memory_command(CLI::App& app);
void add_vector_command(CLI::App& app);
void add_bench_command(CLI::App& app);

}  // namespace entitydb
