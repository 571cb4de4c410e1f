// The PostgreSQL half of the command-line tests: the server of ENTITYDB_PG_URL
// (scripts/with-postgres starts a throwaway one), in a schema of the running test's own, made
// and dropped through the tool itself. Without ENTITYDB_PG_URL these tests fail and say how to
// run them: a suite that silently skips its server half proves nothing.
#pragma once

#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <string>

#include "test_support.hpp"

namespace entity::test {

inline std::string cli_postgres_base_url() {
  const char* u = std::getenv("ENTITYDB_PG_URL");
  return u ? u : "";
}

inline const char* cli_missing_server_message =
    "ENTITYDB_PG_URL is not set: the PostgreSQL tests need a server. Run them through "
    "scripts/with-postgres (e.g. `cd build && ../scripts/with-postgres ctest`), as `make test` "
    "does.";

/// A fresh schema for the running test on the server of ENTITYDB_PG_URL, dropped with the
/// object; url() is a --db value whose connections use it.
class cli_postgres_schema {
 public:
  explicit cli_postgres_schema(std::string entitydb) : bin_(std::move(entitydb)) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = info ? std::string(info->test_suite_name()) + "_" + info->name() : "cli";
    name_ = "cli_";
    for (char c : name.substr(0, 40))
      name_ += std::isalnum(static_cast<unsigned char>(c))
                   ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
                   : '_';
    name_ += "_" + std::to_string(::getpid());
    base_ = cli_postgres_base_url();
    if (base_.empty()) return;
    auto r = admin("DROP SCHEMA IF EXISTS " + name_ + " CASCADE; CREATE SCHEMA " + name_);
    if (r.exit_code != 0) ADD_FAILURE() << "cannot create schema " << name_ << ": " << r.err;
  }
  ~cli_postgres_schema() {
    if (!base_.empty()) admin("DROP SCHEMA IF EXISTS " + name_ + " CASCADE");
  }
  cli_postgres_schema(const cli_postgres_schema&) = delete;
  cli_postgres_schema& operator=(const cli_postgres_schema&) = delete;

  bool available() const { return !base_.empty(); }
  const std::string& name() const { return name_; }
  std::string url() const {
    return base_ + (base_.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" +
           name_;
  }

 private:
  command_result admin(const std::string& sql) const {
    return run_command(command_line(bin_, {"sql", "--db", base_, sql}));
  }
  std::string bin_;
  std::string base_;
  std::string name_;
};

}  // namespace entity::test
