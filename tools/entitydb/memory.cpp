#include "commands.hpp"

namespace entitydb {
void add_memory_command(CLI::App& app) { app.add_subcommand("memory", "(not built yet)"); }
}  // namespace entitydb
