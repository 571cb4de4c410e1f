#include "commands.hpp"

namespace entitydb {
void add_check_command(CLI::App& app) { app.add_subcommand("check", "(not built yet)"); }
}  // namespace entitydb
