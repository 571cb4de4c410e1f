// entitydb: the command-line face of entity-db.
//   entitydb sql | memory | vector | bench | check ...     (entitydb --help lists them)
// Exit codes: 0 success, 1 the operation failed, 2 a usage error.
#include <iostream>

#include "commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"entitydb: an agent's memory on SQLite, from the command line"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "entitydb 0.1.0");
  entitydb::add_sql_command(app);
  entitydb::add_check_command(app);
  entitydb::add_memory_command(app);
  entitydb::add_vector_command(app);
  entitydb::add_bench_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // a subcommand failed; it has said why on stderr
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  return 0;
}
