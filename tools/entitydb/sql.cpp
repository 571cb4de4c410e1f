#include "commands.hpp"

namespace entitydb {
void add_sql_command(CLI::App& app) { app.add_subcommand("sql", "(not built yet)"); }
}  // namespace entitydb
